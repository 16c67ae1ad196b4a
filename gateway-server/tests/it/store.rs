//! The store suite, run against a temporary SQLite file always and against
//! PostgreSQL when `GATEHOUSE_TEST_POSTGRES_URL` is set (each test in a fresh
//! schema, dropped afterwards).

use std::future::Future;
use std::io::Write;
use std::panic::AssertUnwindSafe;
use std::sync::Once;

use chrono::{Duration, SubsecRound, Utc};
use futures::FutureExt;
use gateway_server::store::{NewApiKey, Role, Store, StoreError};

/// Runs each suite function once per backend.
macro_rules! store_suite {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $name() {
                    super::with_sqlite(super::$name).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $name() {
                    super::with_postgres(super::$name).await;
                }
            )*
        }
    };
}

store_suite!(
    kind_and_ping,
    migrations_are_idempotent,
    users,
    ensure_user_is_race_safe,
    api_keys_round_trip,
    api_key_lifecycle,
    api_key_needs_an_existing_user,
    settings_first_writer_wins,
);

pub async fn with_sqlite<F, Fut>(test: F)
where
    F: FnOnce(Store, String) -> Fut,
    Fut: Future<Output = ()>,
{
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("store.db").display());
    let store = Store::connect(&url).await.unwrap();
    assert_eq!(store.kind(), "sqlite");
    test(store.clone(), url).await;
    store.close().await;
}

pub async fn with_postgres<F, Fut>(test: F)
where
    F: FnOnce(Store, String) -> Fut,
    Fut: Future<Output = ()>,
{
    let Some(base) = std::env::var("GATEHOUSE_TEST_POSTGRES_URL").ok().filter(|u| !u.is_empty()) else {
        static ANNOUNCE: Once = Once::new();
        ANNOUNCE.call_once(|| {
            // Straight to stderr: the test harness would swallow eprintln!.
            let _ = writeln!(std::io::stderr(), "\n*** PostgreSQL store tests SKIPPED (set GATEHOUSE_TEST_POSTGRES_URL) ***\n");
        });
        return;
    };
    let schema = format!("t_{}", uuid::Uuid::new_v4().simple());
    let admin = sqlx::PgPool::connect(&base).await.expect("GATEHOUSE_TEST_POSTGRES_URL must be reachable");
    sqlx::query(&format!("CREATE SCHEMA {schema}")).execute(&admin).await.unwrap();
    let mut url = url::Url::parse(&base).unwrap();
    url.query_pairs_mut().append_pair("options", &format!("-c search_path={schema}"));
    let url = url.to_string();
    let outcome = AssertUnwindSafe(async {
        let store = Store::connect(&url).await.unwrap();
        assert_eq!(store.kind(), "postgres");
        test(store.clone(), url.clone()).await;
        store.close().await;
    })
    .catch_unwind()
    .await;
    sqlx::query(&format!("DROP SCHEMA {schema} CASCADE")).execute(&admin).await.unwrap();
    admin.close().await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

async fn kind_and_ping(store: Store, _url: String) {
    store.ping().await.unwrap();
    assert!(format!("{store:?}").contains(store.kind()));
}

async fn migrations_are_idempotent(store: Store, url: String) {
    store.create_user("alice", Role::Admin).await.unwrap();
    // A second process opening the same database re-runs the migrator.
    let again = Store::connect(&url).await.unwrap();
    assert!(again.user_by_name("alice").await.unwrap().is_some());
    again.close().await;
}

async fn users(store: Store, _url: String) {
    assert_eq!(store.count_users().await.unwrap(), 0);
    assert!(store.user_by_name("alice").await.unwrap().is_none());
    let alice = store.create_user("alice", Role::Admin).await.unwrap();
    assert_eq!(alice.username, "alice");
    assert_eq!(alice.role, Role::Admin);
    assert_eq!(uuid::Uuid::parse_str(&alice.id).unwrap().get_version_num(), 7);
    assert_eq!(store.user_by_name("alice").await.unwrap().unwrap(), alice);

    let dup = store.create_user("alice", Role::Developer).await.unwrap_err();
    assert!(matches!(dup, StoreError::Conflict(_)), "{dup}");

    // ensure_user leaves an existing user alone.
    let same = store.ensure_user("alice", Role::Developer).await.unwrap();
    assert_eq!(same, alice);
    let bob = store.ensure_user("bob", Role::Developer).await.unwrap();
    assert_eq!(bob.role, Role::Developer);
    assert_eq!(store.count_users().await.unwrap(), 2);

    let bad = store.create_user("not valid", Role::Admin).await.unwrap_err();
    assert!(matches!(bad, StoreError::Invalid { .. }), "{bad}");
}

async fn ensure_user_is_race_safe(store: Store, _url: String) {
    let users = futures::future::join_all((0..8).map(|_| store.ensure_user("carol", Role::Developer))).await;
    let first = users[0].as_ref().unwrap().clone();
    for u in users {
        assert_eq!(u.unwrap().id, first.id);
    }
    assert_eq!(store.count_users().await.unwrap(), 1);
}

fn new_key(user_id: &str, hash: &str) -> NewApiKey {
    NewApiKey {
        user_id: user_id.to_owned(),
        name: format!("key-{hash}"),
        prefix: "gk_abcdefg".to_owned(),
        key_hash: hash.to_owned(),
        surfaces: vec!["mcp".to_owned()],
        tools: vec!["fs__*".to_owned(), "git__log".to_owned()],
        expires_at: None,
    }
}

async fn api_keys_round_trip(store: Store, _url: String) {
    let alice = store.create_user("alice", Role::Admin).await.unwrap();
    // Nanoseconds on input: the store keeps microseconds on both backends.
    let expires = Utc::now() + Duration::days(30);
    let created = store.insert_api_key(NewApiKey { expires_at: Some(expires), ..new_key(&alice.id, "h1") }).await.unwrap();
    assert_eq!(created.expires_at, Some(expires.trunc_subsecs(6)));
    assert!(created.last_used_at.is_none() && created.revoked_at.is_none());

    let (key, user) = store.api_key_by_hash("h1").await.unwrap().unwrap();
    assert_eq!(key, created);
    assert_eq!(user, alice);
    assert_eq!(key.tools, ["fs__*", "git__log"]);
    assert_eq!(key.surfaces, ["mcp"]);
    assert!(store.api_key_by_hash("nope").await.unwrap().is_none());

    let dup = store.insert_api_key(new_key(&alice.id, "h1")).await.unwrap_err();
    assert!(matches!(dup, StoreError::Conflict(_)), "{dup}");

    let second = store.insert_api_key(new_key(&alice.id, "h2")).await.unwrap();
    let bob = store.create_user("bob", Role::Developer).await.unwrap();
    store.insert_api_key(new_key(&bob.id, "h3")).await.unwrap();
    let listed = store.list_api_keys(&alice.id).await.unwrap();
    assert_eq!(listed.iter().map(|k| k.id.as_str()).collect::<Vec<_>>(), [created.id.as_str(), second.id.as_str()]);
}

async fn api_key_lifecycle(store: Store, _url: String) {
    let alice = store.create_user("alice", Role::Admin).await.unwrap();
    let key = store.insert_api_key(new_key(&alice.id, "h1")).await.unwrap();

    let at = Utc::now();
    store.touch_api_key(&key.id, at).await.unwrap();
    let (touched, _) = store.api_key_by_hash("h1").await.unwrap().unwrap();
    assert_eq!(touched.last_used_at, Some(at.trunc_subsecs(6)));

    assert!(store.revoke_api_key(&key.id).await.unwrap());
    assert!(!store.revoke_api_key(&key.id).await.unwrap(), "already revoked");
    assert!(!store.revoke_api_key("no-such-id").await.unwrap());
    let (revoked, _) = store.api_key_by_hash("h1").await.unwrap().unwrap();
    assert!(revoked.revoked_at.is_some());
}

async fn api_key_needs_an_existing_user(store: Store, _url: String) {
    let err = store.insert_api_key(new_key("no-such-user", "h1")).await.unwrap_err();
    assert!(matches!(err, StoreError::Database(_)), "{err}");
    let err = store.insert_api_key(NewApiKey { name: " ".to_owned(), ..new_key("x", "h2") }).await.unwrap_err();
    assert!(matches!(err, StoreError::Invalid { .. }), "{err}");
}

async fn settings_first_writer_wins(store: Store, _url: String) {
    assert!(store.get_setting("k").await.unwrap().is_none());
    assert_eq!(store.set_setting_if_absent("k", "one").await.unwrap(), "one");
    assert_eq!(store.set_setting_if_absent("k", "two").await.unwrap(), "one");
    assert_eq!(store.get_setting("k").await.unwrap().as_deref(), Some("one"));

    let values: Vec<String> = (0..8).map(|i| format!("v{i}")).collect();
    let winners = futures::future::join_all(values.iter().map(|v| store.set_setting_if_absent("race", v))).await;
    let first = winners[0].as_ref().unwrap().clone();
    assert!(values.contains(&first));
    for w in winners {
        assert_eq!(w.unwrap(), first);
    }
}
