//! Agents: enrolment by the CLI and the admin API, listing, revocation,
//! sharing; and the store methods behind them (SQLite, and PostgreSQL when
//! configured), together with the limit rule and runtime backend tables.

use std::path::Path;
use std::process::Command;

use gateway_server::auth;
use gateway_server::config::{BackendConfig, MapEnv};
use gateway_server::store::{AgentSharing, NewAgent, Role, SecretCipher, Store, StoreError, StoredLimitRule};
use serde_json::json;

use crate::backends_api::{call, key_with_role};
use crate::support::TestHub;

fn bin(cwd: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_gateway-server"));
    cmd.env_clear().current_dir(cwd);
    cmd
}

#[tokio::test]
async fn cli_enroll_list_revoke() {
    let dir = tempfile::tempdir().unwrap();
    let config_path = dir.path().join("gatehouse.toml");
    std::fs::write(&config_path, "[server]\npublic_url = \"https://hub.example.com\"\n[database]\nurl = \"sqlite://hub.db\"\n").unwrap();
    let config = gateway_server::config::load(Some(&config_path), &MapEnv::new()).unwrap();
    let store = Store::from_config(&config.database).await.unwrap();
    store.create_user("alice", Role::Developer).await.unwrap();

    let run = |args: &[&str]| bin(dir.path()).args(args).arg("--config").arg(&config_path).output().unwrap();
    let out = run(&["agents", "enroll", "--user", "alice", "--name", "laptop"]);
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let token = stdout.lines().last().unwrap().to_owned();
    assert!(token.starts_with("ga_") && token.len() == 46, "{stdout}");
    assert!(stdout.contains("https://hub.example.com/install.sh"), "{stdout}");

    let secret = auth::load_secret(&config.auth, &store).await.unwrap();
    let agent = store.agent_by_token_hash(&auth::hash_key(&secret, &token)).await.unwrap().expect("the token is known");
    assert_eq!((agent.name.as_str(), agent.username.as_str()), ("laptop", "alice"));
    assert!(agent.is_active());

    // Enrolled already; unknown user; bad name.
    let out = run(&["agents", "enroll", "--user", "alice", "--name", "laptop"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--replace"), "{}", String::from_utf8_lossy(&out.stderr));
    let out = run(&["agents", "enroll", "--user", "nobody", "--name", "other"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no user `nobody`"));
    let out = run(&["agents", "enroll", "--user", "alice", "--name", "a__b"]);
    assert!(!out.status.success());

    // --replace: the old token stops working, the new one works.
    let out = run(&["agents", "enroll", "--user", "alice", "--name", "laptop", "--replace"]);
    assert!(out.status.success());
    let new_token = String::from_utf8(out.stdout).unwrap().lines().last().unwrap().to_owned();
    assert!(store.agent_by_token_hash(&auth::hash_key(&secret, &token)).await.unwrap().is_none());
    assert!(store.agent_by_token_hash(&auth::hash_key(&secret, &new_token)).await.unwrap().unwrap().is_active());

    let out = run(&["agents", "list"]);
    let listing = String::from_utf8(out.stdout).unwrap();
    assert!(listing.contains("laptop") && listing.contains("active"), "{listing}");

    let out = run(&["agents", "revoke", "laptop"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let revoked = store.agent_by_token_hash(&auth::hash_key(&secret, &new_token)).await.unwrap().unwrap();
    assert!(!revoked.is_active());
    let out = run(&["agents", "revoke", "laptop"]);
    assert!(!out.status.success());
    // A revoked name can be enrolled again without --replace.
    assert!(run(&["agents", "enroll", "--user", "alice", "--name", "laptop"]).status.success());
    store.close().await;
}

#[tokio::test]
async fn api_enroll_list_revoke_share() {
    let hub = TestHub::start("").await;
    let (status, body) = call(&hub, &hub.key, reqwest::Method::POST, "/agents", Some(json!({ "name": "build-box" }))).await;
    assert_eq!(status, 201, "{body}");
    let token = body["token"].as_str().unwrap().to_owned();
    assert!(token.starts_with("ga_"));
    assert_eq!(body["install_command"], format!("curl -fsSL http://127.0.0.1/install.sh | sh -s -- --token {token} --name build-box"));
    assert_eq!(body["agent"]["owner"], "alice");
    assert_eq!(body["agent"]["online"], false);

    let (status, list) = call(&hub, &hub.key, reqwest::Method::GET, "/agents", None).await;
    assert_eq!(status, 200);
    assert_eq!(list[0]["name"], "build-box");
    assert_eq!(list[0]["online"], false);
    assert!(!list.to_string().contains(&token), "tokens are shown once");
    hub.state.agents.set_online("build-box", true);
    let (_, list) = call(&hub, &hub.key, reqwest::Method::GET, "/agents", None).await;
    assert_eq!(list[0]["online"], true);

    // Same name: 409; bad name, unknown field: 400; unknown owner: 404.
    assert_eq!(call(&hub, &hub.key, reqwest::Method::POST, "/agents", Some(json!({ "name": "build-box" }))).await.0, 409);
    assert_eq!(call(&hub, &hub.key, reqwest::Method::POST, "/agents", Some(json!({ "name": "x__y" }))).await.0, 400);
    assert_eq!(call(&hub, &hub.key, reqwest::Method::POST, "/agents", Some(json!({ "name": "x", "owner": "a" }))).await.0, 400);
    assert_eq!(call(&hub, &hub.key, reqwest::Method::POST, "/agents", Some(json!({ "name": "x", "user": "ghost" }))).await.0, 404);

    // Sharing.
    key_with_role(&hub.state, "bob", Role::Developer).await;
    let (status, shared) = call(
        &hub,
        &hub.key,
        reqwest::Method::PUT,
        "/agents/build-box/sharing",
        Some(json!({ "users": ["bob", "bob"], "roles": ["operator"] })),
    )
    .await;
    assert_eq!(status, 200, "{shared}");
    assert_eq!(shared["shared_with"], json!({ "users": ["bob"], "roles": ["operator"] }));
    assert_eq!(call(&hub, &hub.key, reqwest::Method::PUT, "/agents/build-box/sharing", Some(json!({ "users": ["ghost"] }))).await.0, 400);
    assert_eq!(call(&hub, &hub.key, reqwest::Method::PUT, "/agents/nope/sharing", Some(json!({}))).await.0, 404);

    // A developer sees, enrolls and revokes only their own agents.
    let dev = key_with_role(&hub.state, "dave", Role::Developer).await;
    let (status, body) = call(&hub, &dev, reqwest::Method::POST, "/agents", Some(json!({ "name": "dave-laptop" }))).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(call(&hub, &dev, reqwest::Method::POST, "/agents", Some(json!({ "name": "x", "user": "alice" }))).await.0, 403);
    let (_, mine) = call(&hub, &dev, reqwest::Method::GET, "/agents", None).await;
    assert_eq!(mine.as_array().unwrap().len(), 1, "{mine}");
    assert_eq!(mine[0]["name"], "dave-laptop");
    assert_eq!(call(&hub, &dev, reqwest::Method::DELETE, "/agents/build-box", None).await.0, 404);
    assert_eq!(call(&hub, &dev, reqwest::Method::PUT, "/agents/dave-laptop/sharing", Some(json!({}))).await.0, 403);
    assert_eq!(call(&hub, &dev, reqwest::Method::DELETE, "/agents/dave-laptop", None).await.0, 204);
    // A viewer reads everything and changes nothing.
    let viewer = key_with_role(&hub.state, "vera", Role::Viewer).await;
    let (_, all) = call(&hub, &viewer, reqwest::Method::GET, "/agents", None).await;
    assert_eq!(all.as_array().unwrap().len(), 2, "{all}");
    assert_eq!(call(&hub, &viewer, reqwest::Method::POST, "/agents", Some(json!({ "name": "v" }))).await.0, 403);
    assert_eq!(call(&hub, &viewer, reqwest::Method::DELETE, "/agents/build-box", None).await.0, 403);

    // Revocation: the token is no longer valid, the agent is offline.
    assert_eq!(call(&hub, &hub.key, reqwest::Method::DELETE, "/agents/build-box", None).await.0, 204);
    assert_eq!(call(&hub, &hub.key, reqwest::Method::DELETE, "/agents/build-box", None).await.0, 404);
    let agent = hub.state.store.agent_by_token_hash(&auth::hash_key(hub.state.auth.secret(), &token)).await.unwrap().unwrap();
    assert!(!agent.is_active());
    assert!(!hub.state.agents.is_online("build-box"));
    let (_, list) = call(&hub, &hub.key, reqwest::Method::GET, "/agents", None).await;
    let listed = list.as_array().unwrap().iter().find(|a| a["name"] == "build-box").unwrap().clone();
    assert!(listed["revoked_at"].is_string());
    assert_eq!(listed["online"], false);
}

// ---- store methods, on every store ------------------------------------------------------

#[tokio::test]
async fn store_sqlite() {
    crate::store::with_sqlite(store_suite).await;
}

#[tokio::test]
async fn store_postgres() {
    crate::store::with_postgres(store_suite).await;
}

async fn store_suite(store: Store, _url: String) {
    agents_in_the_store(&store).await;
    limit_rules_in_the_store(&store).await;
    backends_in_the_store(&store).await;
}

async fn agents_in_the_store(store: &Store) {
    let alice = store.create_user("alice", Role::Developer).await.unwrap();
    let new = |name: &str, hash: &str| NewAgent {
        name: name.into(),
        user_id: alice.id.clone(),
        token_hash: hash.into(),
        token_prefix: "ga_1234567".into(),
    };
    let a = store.insert_agent(new("laptop", "h1"), false).await.unwrap();
    assert_eq!(a.username, "alice");
    assert_eq!(a.shared_with, AgentSharing::default());
    assert!(matches!(store.insert_agent(new("laptop", "h2"), false).await, Err(StoreError::Conflict(_))));
    assert!(matches!(store.insert_agent(new("other", "h1"), false).await, Err(StoreError::Conflict(_))));
    assert!(matches!(store.insert_agent(new("bad__name", "h3"), false).await, Err(StoreError::Invalid { .. })));
    assert_eq!(store.agent_by_token_hash("h1").await.unwrap().unwrap().id, a.id);

    let at = chrono::Utc::now();
    store.touch_agent(&a.id, at, Some("1.2.3")).await.unwrap();
    store.touch_agent(&a.id, at, None).await.unwrap();
    let seen = store.agent_by_name("laptop").await.unwrap().unwrap();
    assert_eq!(seen.last_version.as_deref(), Some("1.2.3"));
    assert!(seen.last_seen_at.is_some());

    let sharing = AgentSharing { users: vec!["bob".into()], roles: vec!["operator".into()] };
    assert!(store.set_agent_sharing("laptop", &sharing).await.unwrap());
    assert_eq!(store.agent_by_name("laptop").await.unwrap().unwrap().shared_with, sharing);

    assert!(store.revoke_agent("laptop").await.unwrap());
    assert!(!store.revoke_agent("laptop").await.unwrap());
    assert!(!store.agent_by_token_hash("h1").await.unwrap().unwrap().is_active());
    // A revoked name can be enrolled again; --replace removes an active one.
    let b = store.insert_agent(new("laptop", "h4"), false).await.unwrap();
    assert!(store.agent_by_token_hash("h1").await.unwrap().is_none());
    let c = store.insert_agent(new("laptop", "h5"), true).await.unwrap();
    assert_ne!(b.id, c.id);
    assert!(store.agent_by_token_hash("h4").await.unwrap().is_none());
    let bob = store.create_user("bob", Role::Developer).await.unwrap();
    store.insert_agent(NewAgent { user_id: bob.id.clone(), ..new("bobs", "h6") }, false).await.unwrap();
    assert_eq!(store.list_agents(None).await.unwrap().len(), 2);
    assert_eq!(store.list_agents(Some(&bob.id)).await.unwrap()[0].name, "bobs");
}

async fn limit_rules_in_the_store(store: &Store) {
    let rule = StoredLimitRule {
        id: uuid::Uuid::now_v7().to_string(),
        scope: "tool".into(),
        match_value: Some("fs__*".into()),
        window: "hour".into(),
        unit: "requests".to_owned(),
        max_requests: 5,
        enabled: true,
        created_at: gateway_server::store::now(),
    };
    store.insert_limit_rule(&rule).await.unwrap();
    assert_eq!(store.list_limit_rules().await.unwrap(), vec![rule.clone()]);
    let changed = StoredLimitRule { match_value: None, max_requests: 9, enabled: false, ..rule.clone() };
    assert!(store.update_limit_rule(&changed).await.unwrap());
    assert_eq!(store.list_limit_rules().await.unwrap(), vec![changed]);
    assert!(store.delete_limit_rule(&rule.id).await.unwrap());
    assert!(!store.delete_limit_rule(&rule.id).await.unwrap());
    assert!(!store.update_limit_rule(&rule).await.unwrap());
}

async fn backends_in_the_store(store: &Store) {
    let cipher = SecretCipher::new(&auth::Secret::generate());
    let cfg: BackendConfig = serde_json::from_value(json!({
        "name": "remote", "transport": "http", "url": "http://127.0.0.1:9/mcp", "headers": { "Authorization": "Bearer abc" }
    }))
    .unwrap();
    store.insert_backend(&cfg, &cipher, Some("alice")).await.unwrap();
    assert!(matches!(store.insert_backend(&cfg, &cipher, None).await, Err(StoreError::Conflict(_))));
    let got = store.backend_by_name("remote", &cipher).await.unwrap().unwrap();
    assert_eq!(got.config.headers["Authorization"], "Bearer abc");
    assert_eq!(got.created_by.as_deref(), Some("alice"));
    // Another secret cannot read it: the row is skipped, not returned garbled.
    let other = SecretCipher::new(&auth::Secret::generate());
    assert!(store.list_backends(&other).await.unwrap().is_empty());
    assert!(store.backend_by_name("remote", &other).await.is_err());
    let mut changed = cfg.clone();
    changed.enabled = false;
    assert!(store.update_backend(&changed, &cipher).await.unwrap());
    assert!(!store.list_backends(&cipher).await.unwrap()[0].config.enabled);
    assert!(store.delete_backend("remote").await.unwrap());
    assert!(!store.delete_backend("remote").await.unwrap());
}
