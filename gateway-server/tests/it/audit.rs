//! The audit log: hash chain checks against tampering (SQLite and
//! PostgreSQL, tampered through a second connection), retention, the
//! bounded queue under overload, filters and usage in the store, the admin
//! API (paging, export, permissions) and `gateway-server audit verify`.

use std::future::Future;
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeZone, Utc};
use gateway_server::audit::{Audit, AuditConfig, AuditEvent, Decision, EventKind, EventStatus, Problem, chain};
use gateway_server::store::{AuditFilter, Role, Store, UsageBucket, UsageGroupBy, UsageQuery};
use serde_json::{Value, json};
use sqlx::Connection;

use super::store::{with_postgres, with_sqlite};
use super::support::TestHub;

/// Runs each suite function against SQLite and against PostgreSQL.
macro_rules! audit_suite {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::with_sqlite(super::$name).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::with_postgres(super::$name).await;
                }
            )*
        }
    };
}

audit_suite!(
    chain_catches_an_edited_row,
    chain_catches_a_removed_row,
    chain_catches_reordered_rows,
    retention_moves_the_anchor,
    retention_task_runs_and_stops,
    two_hubs_extend_one_chain,
    overload_drops_exactly_the_overflow_without_blocking,
    filters_paging_and_usage,
);

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// A second connection to the same database, as someone tampering with it would use.
enum Raw {
    Sqlite(sqlx::SqliteConnection),
    Postgres(sqlx::PgConnection),
}

impl Raw {
    async fn open(url: &str) -> Raw {
        if url.starts_with("sqlite:") {
            Raw::Sqlite(sqlx::SqliteConnection::connect(url).await.unwrap())
        } else {
            Raw::Postgres(sqlx::PgConnection::connect(url).await.unwrap())
        }
    }

    async fn exec(&mut self, sql: &str) -> u64 {
        match self {
            Raw::Sqlite(c) => sqlx::query(sql).execute(&mut *c).await.unwrap().rows_affected(),
            Raw::Postgres(c) => sqlx::query(sql).execute(&mut *c).await.unwrap().rows_affected(),
        }
    }

    /// Takes a lock that stalls the audit writer until [`Raw::exec`]`("ROLLBACK")`.
    async fn stall_writer(&mut self) {
        match self {
            Raw::Sqlite(_) => {
                self.exec("BEGIN IMMEDIATE").await;
            }
            Raw::Postgres(_) => {
                self.exec("BEGIN").await;
                self.exec("LOCK TABLE audit_events IN ACCESS EXCLUSIVE MODE").await;
            }
        }
    }
}

async fn tamper(url: &str, statements: &[&str]) {
    let mut raw = Raw::open(url).await;
    for sql in statements {
        raw.exec(sql).await;
    }
}

fn config() -> AuditConfig {
    AuditConfig { retention_days: 0, ..AuditConfig::default() }
}

fn mcp(tool: &str) -> AuditEvent {
    AuditEvent {
        tool: Some(tool.into()),
        method: Some("tools/call".into()),
        decision: Some(Decision::Allow),
        status: Some(EventStatus::Ok),
        arguments: Some(json!({ "n": tool })),
        ..AuditEvent::new(EventKind::Mcp)
    }
}

/// An audit log on `store` holding `n` events (seq 1..=n).
async fn seeded(store: &Store, n: usize) -> Audit {
    let audit = Audit::spawn(&config(), store.clone()).unwrap();
    for i in 0..n {
        audit.record(mcp(&format!("t{i}")));
    }
    audit.flush().await;
    audit
}

async fn verify(store: &Store) -> chain::ChainReport {
    chain::verify(store).await.unwrap()
}

fn bad(report: &chain::ChainReport) -> (i64, Problem, String) {
    let b = report.first_bad.clone().unwrap_or_else(|| panic!("expected a broken chain: {report:?}"));
    assert!(!report.ok);
    (b.seq, b.problem, b.detail)
}

async fn wait_until<F: Future<Output = bool>>(what: &str, mut check: impl FnMut() -> F) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

// ---------------------------------------------------------------------------
// Chain and retention (both backends)
// ---------------------------------------------------------------------------

async fn chain_catches_an_edited_row(store: Store, url: String) {
    let audit = seeded(&store, 5).await;
    let report = verify(&store).await;
    assert!(report.ok && report.checked == 5 && report.first_bad.is_none(), "{report:?}");

    tamper(&url, &["UPDATE audit_events SET tool = 'evil' WHERE seq = 3"]).await;
    let report = verify(&store).await;
    let (seq, problem, _) = bad(&report);
    assert_eq!((seq, problem, report.checked), (3, Problem::Changed, 2));
    let id = store.audit_query(&AuditFilter::default(), None, 10).await.unwrap().items.iter().find(|r| r.seq == 3).unwrap().id.clone();
    assert_eq!(report.first_bad.unwrap().id, id);

    // Rewriting the stored hash to hide the edit breaks the next link instead.
    tamper(&url, &["UPDATE audit_events SET tool = 't2' WHERE seq = 3", "UPDATE audit_events SET hash = 'ffff' WHERE seq = 4"]).await;
    let (seq, problem, _) = bad(&verify(&store).await);
    assert_eq!((seq, problem), (4, Problem::Changed));
    audit.shutdown().await;
}

async fn chain_catches_a_removed_row(store: Store, url: String) {
    let audit = seeded(&store, 5).await;
    tamper(&url, &["DELETE FROM audit_events WHERE seq = 3"]).await;
    let report = verify(&store).await;
    let (seq, problem, detail) = bad(&report);
    assert_eq!((seq, problem, report.checked), (4, Problem::Removed, 2));
    assert!(detail.contains("seq 3"), "{detail}");

    // Removing the oldest rows without moving the anchor is caught too.
    tamper(&url, &["DELETE FROM audit_events WHERE seq <= 2"]).await;
    let (seq, problem, _) = bad(&verify(&store).await);
    assert_eq!((seq, problem), (4, Problem::Removed));
    audit.shutdown().await;
}

async fn chain_catches_reordered_rows(store: Store, url: String) {
    let audit = seeded(&store, 5).await;
    tamper(
        &url,
        &[
            "UPDATE audit_events SET seq = -1 WHERE seq = 3",
            "UPDATE audit_events SET seq = 3 WHERE seq = 4",
            "UPDATE audit_events SET seq = 4 WHERE seq = -1",
        ],
    )
    .await;
    let report = verify(&store).await;
    let (seq, problem, detail) = bad(&report);
    assert_eq!((seq, problem, report.checked), (3, Problem::Reordered, 2));
    assert!(detail.contains("links to seq 4"), "{detail}");
    audit.shutdown().await;
}

async fn retention_moves_the_anchor(store: Store, url: String) {
    let audit = Audit::spawn(&config(), store.clone()).unwrap();
    let old = Utc::now() - chrono::Duration::days(100);
    for i in 0..4 {
        audit.record(AuditEvent { ts: old, ..mcp(&format!("old{i}")) });
    }
    for i in 0..3 {
        audit.record(mcp(&format!("new{i}")));
    }
    audit.flush().await;
    let head_before = store.audit_rows_after(&AuditFilter::default(), 3, 1).await.unwrap().remove(0);
    assert_eq!(store.audit_anchor().await.unwrap(), chain::Anchor::genesis());

    let deleted = store.audit_delete_before(Utc::now() - chrono::Duration::days(90)).await.unwrap();
    assert_eq!(deleted, 4);
    assert_eq!(store.audit_count().await.unwrap(), 3);
    let anchor = store.audit_anchor().await.unwrap();
    assert_eq!((anchor.seq, anchor.hash.as_str()), (4, head_before.hash.as_str()));
    let report = verify(&store).await;
    assert!(report.ok && report.checked == 3, "{report:?}");
    // Nothing more is old enough: a second run is a no-op.
    assert_eq!(store.audit_delete_before(Utc::now() - chrono::Duration::days(90)).await.unwrap(), 0);

    // The chain goes on after the anchor.
    audit.record(mcp("after"));
    audit.flush().await;
    let report = verify(&store).await;
    assert!(report.ok && report.checked == 4, "{report:?}");

    // A removal in the middle is still caught.
    tamper(&url, &["DELETE FROM audit_events WHERE seq = 6"]).await;
    let (seq, problem, _) = bad(&verify(&store).await);
    assert_eq!((seq, problem), (7, Problem::Removed));
    audit.shutdown().await;
}

async fn retention_task_runs_and_stops(store: Store, _url: String) {
    let writer = Audit::spawn(&config(), store.clone()).unwrap();
    let old = Utc::now() - chrono::Duration::days(10);
    writer.record(AuditEvent { ts: old, ..mcp("old") });
    writer.record(AuditEvent { ts: old, ..mcp("old") });
    writer.record(mcp("new"));
    // A newer record before an old one: retention removes only a prefix of the chain.
    writer.record(AuditEvent { ts: old, ..mcp("late") });
    writer.flush().await;

    // The task runs once at start, then hourly.
    let audit = Audit::spawn(&AuditConfig { retention_days: 7, ..AuditConfig::default() }, store.clone()).unwrap();
    wait_until("retention ran", || async { store.audit_count().await.unwrap() == 2 }).await;
    assert_eq!(store.audit_anchor().await.unwrap().seq, 2);
    assert!(verify(&store).await.ok);
    // Applying it on demand finds nothing more to delete.
    assert_eq!(audit.apply_retention().await.unwrap(), 0);
    audit.shutdown().await;
    writer.shutdown().await;
}

async fn two_hubs_extend_one_chain(store: Store, url: String) {
    // Two hubs: separate pools, separate writers, one table.
    let other = Store::connect(&url).await.unwrap();
    let a = Audit::spawn(&config(), store.clone()).unwrap();
    let b = Audit::spawn(&config(), other.clone()).unwrap();
    for i in 0..60 {
        a.record(mcp(&format!("a{i}")));
        b.record(mcp(&format!("b{i}")));
        if i % 20 == 0 {
            tokio::join!(a.flush(), b.flush());
        }
    }
    tokio::join!(a.flush(), b.flush());
    let report = verify(&store).await;
    assert!(report.ok && report.checked == 120, "{report:?}");
    // A burst: the writer appends it in batches of many rows per statement.
    for i in 0..300 {
        a.record(mcp(&format!("burst{i}")));
    }
    a.flush().await;
    let report = verify(&store).await;
    assert!(report.ok && report.checked == 420, "{report:?}");
    let rows = store.audit_rows_after(&AuditFilter::default(), 0, 1000).await.unwrap();
    assert_eq!(rows.iter().map(|r| r.seq).collect::<Vec<_>>(), (1..=420).collect::<Vec<_>>());
    assert_eq!(rows.last().unwrap().tool.as_deref(), Some("burst299"), "the burst kept its order");
    tokio::join!(a.shutdown(), b.shutdown());
    other.close().await;
}

async fn overload_drops_exactly_the_overflow_without_blocking(store: Store, url: String) {
    let audit = Audit::spawn(&AuditConfig { queue_capacity: 4, ..config() }, store.clone()).unwrap();
    let mut raw = Raw::open(&url).await;
    raw.stall_writer().await;

    audit.record(mcp("first"));
    // Once the writer holds the first event it is stuck on the lock and takes no more.
    wait_until("the writer took the first event", || async { audit.queue_depth() == 0 }).await;
    let started = Instant::now();
    for i in 0..104 {
        audit.record(mcp(&format!("burst{i}")));
    }
    let took = started.elapsed();
    assert_eq!(audit.queue_depth(), 4);
    assert_eq!(audit.dropped(), 100);
    assert_eq!(audit.stats().dropped, 100);
    assert!(took < Duration::from_secs(1), "record blocked for {took:?}");

    raw.exec("ROLLBACK").await;
    audit.flush().await;
    assert_eq!(store.audit_count().await.unwrap(), 5);
    assert_eq!(audit.stats().written, 5);
    assert_eq!(audit.dropped(), 100);
    assert!(verify(&store).await.ok);
    audit.shutdown().await;
}

fn at(day: u32, hour: u32, minute: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 6, day, hour, minute, 0).unwrap()
}

/// Six events of two users over two days.
fn usage_events() -> Vec<AuditEvent> {
    let who = |ev: AuditEvent, user: &str, name: &str, key: &str| AuditEvent {
        user_id: Some(user.into()),
        username: Some(name.into()),
        key_id: Some(key.into()),
        ..ev
    };
    vec![
        who(AuditEvent { ts: at(1, 10, 0), backend: Some("fs".into()), latency_ms: Some(10.0), ..mcp("fs__read") }, "u1", "alice", "k1"),
        who(
            AuditEvent {
                ts: at(1, 10, 1),
                backend: Some("fs".into()),
                decision: Some(Decision::Deny),
                rule: Some("no-writes".into()),
                status: Some(EventStatus::Error),
                latency_ms: Some(30.0),
                ..mcp("fs__write")
            },
            "u1",
            "alice",
            "k1",
        ),
        who(AuditEvent { ts: at(1, 10, 2), backend: Some("git".into()), latency_ms: Some(20.0), ..mcp("git__log") }, "u2", "bob", "k2"),
        who(
            AuditEvent {
                ts: at(1, 11, 0),
                backend: Some("openai".into()),
                tool: Some("gpt-4o".into()),
                status: Some(EventStatus::Ok),
                input_tokens: Some(100),
                output_tokens: Some(50),
                cost_usd: Some(0.5),
                ..AuditEvent::new(EventKind::Ai)
            },
            "u2",
            "bob",
            "k2",
        ),
        who(
            AuditEvent {
                ts: at(2, 9, 30),
                backend: Some("openai".into()),
                tool: Some("gpt-4o".into()),
                status: Some(EventStatus::Error),
                input_tokens: Some(10),
                output_tokens: Some(5),
                cost_usd: Some(0.05),
                ..AuditEvent::new(EventKind::Ai)
            },
            "u1",
            "alice",
            "k1",
        ),
        AuditEvent {
            ts: at(2, 9, 31),
            ..AuditEvent::admin("backend.create", "backends/fs", json!({ "name": "fs" })).by("u1", "alice", None)
        },
    ]
}

async fn filters_paging_and_usage(store: Store, _url: String) {
    let audit = Audit::spawn(&config(), store.clone()).unwrap();
    for ev in usage_events() {
        audit.record(ev);
    }
    audit.flush().await;

    let seqs = |f: AuditFilter| {
        let store = store.clone();
        async move { store.audit_query(&f, None, 500).await.unwrap().items.iter().map(|r| r.seq).collect::<Vec<_>>() }
    };
    assert_eq!(seqs(AuditFilter::default()).await, vec![6, 5, 4, 3, 2, 1]);
    assert_eq!(seqs(AuditFilter { user: Some("alice".into()), ..Default::default() }).await, vec![6, 5, 2, 1]);
    assert_eq!(seqs(AuditFilter { user: Some("u2".into()), ..Default::default() }).await, vec![4, 3]);
    assert_eq!(seqs(AuditFilter { key_id: Some("k2".into()), ..Default::default() }).await, vec![4, 3]);
    assert_eq!(seqs(AuditFilter { tool: Some("fs__*".into()), ..Default::default() }).await, vec![2, 1]);
    assert_eq!(seqs(AuditFilter { tool: Some("fs__read".into()), ..Default::default() }).await, vec![1]);
    assert_eq!(seqs(AuditFilter { tool: Some("*o*".into()), ..Default::default() }).await, vec![5, 4, 3]);
    // Only `*` is a wildcard; `_`, `%`, `?` and `[` are literal, and case matters.
    for literal in ["f?__*", "fs%", "fs__READ", "FS__*", "[f]s__*", "fs___*"] {
        assert_eq!(seqs(AuditFilter { tool: Some(literal.into()), ..Default::default() }).await, Vec::<i64>::new(), "{literal}");
    }
    assert_eq!(seqs(AuditFilter { backend: Some("openai".into()), ..Default::default() }).await, vec![5, 4]);
    assert_eq!(seqs(AuditFilter { decision: Some(Decision::Deny), ..Default::default() }).await, vec![2]);
    assert_eq!(seqs(AuditFilter { kind: Some(EventKind::Ai), ..Default::default() }).await, vec![5, 4]);
    assert_eq!(seqs(AuditFilter { status: Some(EventStatus::Error), ..Default::default() }).await, vec![5, 2]);
    assert_eq!(seqs(AuditFilter { from: Some(at(1, 10, 1)), to: Some(at(1, 11, 0)), ..Default::default() }).await, vec![3, 2]);
    assert_eq!(
        seqs(AuditFilter { user: Some("alice".into()), kind: Some(EventKind::Mcp), status: Some(EventStatus::Ok), ..Default::default() })
            .await,
        vec![1]
    );

    // Cursor paging, newest first.
    let mut cursor = None;
    let mut pages = Vec::new();
    loop {
        let page = store.audit_query(&AuditFilter::default(), cursor.as_deref(), 4).await.unwrap();
        pages.push(page.items.iter().map(|r| r.seq).collect::<Vec<_>>());
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    assert_eq!(pages, vec![vec![6, 5, 4, 3], vec![2, 1]]);

    // One record, as written.
    let first = store.audit_query(&AuditFilter::default(), None, 500).await.unwrap().items.pop().unwrap();
    let again = store.audit_get(&first.id).await.unwrap().unwrap();
    assert_eq!(again, first);
    assert_eq!(first.ts, at(1, 10, 0));
    assert_eq!(first.latency_ms, Some(10.0));
    assert_eq!(first.arguments, Some(json!({ "n": "fs__read" })));
    assert!(store.audit_get("nope").await.unwrap().is_none());

    // Usage: admin changes are not usage.
    let usage = |group_by, bucket, user_id: Option<&str>| {
        let store = store.clone();
        let q = UsageQuery { group_by, from: at(1, 0, 0), to: at(3, 0, 0), bucket, user_id: user_id.map(str::to_owned), ai_only: false };
        async move { store.audit_usage(&q).await.unwrap().0 }
    };
    let by_user = usage(UsageGroupBy::User, None, None).await;
    assert_eq!(by_user.len(), 2, "{by_user:?}");
    let alice = &by_user[0];
    assert_eq!((alice.group.as_deref(), alice.label.as_deref()), (Some("u1"), Some("alice")));
    assert_eq!((alice.requests, alice.errors, alice.denials, alice.input_tokens, alice.output_tokens), (3, 2, 1, 10, 5));
    assert_eq!(alice.avg_latency_ms, Some(20.0));
    assert_eq!(alice.max_latency_ms, Some(30.0));
    assert!((alice.cost_usd - 0.05).abs() < 1e-9);
    let bob = &by_user[1];
    assert_eq!((bob.group.as_deref(), bob.requests, bob.errors, bob.input_tokens), (Some("u2"), 2, 0, 100));
    assert!(bob.bucket.is_none());

    let by_model = usage(UsageGroupBy::Model, None, None).await;
    assert_eq!(by_model.len(), 1);
    assert_eq!(
        (by_model[0].group.as_deref(), by_model[0].requests, by_model[0].input_tokens, by_model[0].output_tokens),
        (Some("gpt-4o"), 2, 110, 55)
    );
    assert!((by_model[0].cost_usd - 0.55).abs() < 1e-9);

    let by_tool = usage(UsageGroupBy::Tool, None, None).await;
    let mut tools = by_tool.iter().map(|r| r.group.clone().unwrap()).collect::<Vec<_>>();
    tools.sort();
    assert_eq!(tools, vec!["fs__read", "fs__write", "git__log"]);

    let by_backend = usage(UsageGroupBy::Backend, None, None).await;
    assert_eq!(by_backend[0].group.as_deref(), Some("fs"));
    assert_eq!(by_backend.iter().map(|r| r.requests).sum::<i64>(), 5);
    let by_key = usage(UsageGroupBy::Key, None, Some("u2")).await;
    assert_eq!(by_key.len(), 1);
    assert_eq!((by_key[0].group.as_deref(), by_key[0].requests), (Some("k2"), 2));

    let daily = usage(UsageGroupBy::User, Some(UsageBucket::Day), None).await;
    let daily: Vec<_> = daily.iter().map(|r| (r.bucket.clone().unwrap(), r.group.clone().unwrap(), r.requests)).collect();
    assert_eq!(
        daily,
        vec![
            ("2025-06-01T00:00:00Z".to_owned(), "u1".to_owned(), 2),
            ("2025-06-01T00:00:00Z".to_owned(), "u2".to_owned(), 2),
            ("2025-06-02T00:00:00Z".to_owned(), "u1".to_owned(), 1),
        ]
    );
    let hourly = usage(UsageGroupBy::Backend, Some(UsageBucket::Hour), None).await;
    let hourly: Vec<_> = hourly.iter().map(|r| (r.bucket.clone().unwrap(), r.group.clone().unwrap(), r.requests)).collect();
    assert_eq!(
        hourly,
        vec![
            ("2025-06-01T10:00:00Z".to_owned(), "fs".to_owned(), 2),
            ("2025-06-01T10:00:00Z".to_owned(), "git".to_owned(), 1),
            ("2025-06-01T11:00:00Z".to_owned(), "openai".to_owned(), 1),
            ("2025-06-02T09:00:00Z".to_owned(), "openai".to_owned(), 1),
        ]
    );
    audit.shutdown().await;
}

// ---------------------------------------------------------------------------
// Admin API (TestHub, SQLite)
// ---------------------------------------------------------------------------

/// A user with `role` and an API key, made through the store.
async fn user_key(hub: &TestHub, name: &str, role: Role) -> String {
    crate::backends_api::key_with_role(&hub.state, name, role).await
}

async fn get(hub: &TestHub, key: &str, path: &str) -> (u16, String, String) {
    let resp = reqwest::Client::new().get(format!("{}/api/v1{path}", hub.base)).bearer_auth(key).send().await.unwrap();
    let status = resp.status().as_u16();
    let ctype = resp.headers().get("content-type").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
    (status, ctype, resp.text().await.unwrap())
}

async fn get_json(hub: &TestHub, key: &str, path: &str) -> (u16, Value) {
    let (status, _, body) = get(hub, key, path).await;
    (status, serde_json::from_str(&body).unwrap_or_else(|_| panic!("{path}: not JSON: {body}")))
}

fn tools(items: &Value) -> Vec<String> {
    items.as_array().unwrap().iter().map(|r| r["tool"].as_str().unwrap_or("-").to_owned()).collect()
}

#[tokio::test]
async fn api_lists_filters_pages_and_exports() {
    let hub = TestHub::start("").await;
    let audit = &hub.state.audit;
    for i in 0..7 {
        audit.record(AuditEvent {
            user_id: Some(if i % 2 == 0 { "u-even" } else { "u-odd" }.into()),
            username: Some(if i % 2 == 0 { "even" } else { "odd" }.into()),
            decision: Some(if i == 3 { Decision::Deny } else { Decision::Allow }),
            arguments: Some(json!({ "i": i, "password": "hunter2", "note": "key sk-ant-api03-AbCdEfGhIjKlMnOpQrStUvWxYz012345" })),
            ..mcp(&format!("srv__tool{i}"))
        });
    }
    audit.flush().await;

    // The contract's shape: newest first.
    let (status, body) = get_json(&hub, &hub.key, "/audit?limit=3").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(tools(&body["items"]), vec!["srv__tool6", "srv__tool5", "srv__tool4"]);
    let item = &body["items"][0];
    assert_eq!(item["arguments"], json!({ "i": 6, "password": "[REDACTED]", "note": "key [REDACTED:anthropic_key]" }));
    assert_eq!(item["kind"], "mcp");
    assert_eq!(item["hash"].as_str().unwrap().len(), 64);

    // Following the cursor visits every record once.
    let mut seen = tools(&body["items"]);
    let mut cursor = body["next_cursor"].as_str().unwrap().to_owned();
    loop {
        let (status, page) = get_json(&hub, &hub.key, &format!("/audit?limit=3&cursor={cursor}")).await;
        assert_eq!(status, 200, "{page}");
        seen.extend(tools(&page["items"]));
        match page["next_cursor"].as_str() {
            Some(c) => cursor = c.to_owned(),
            None => break,
        }
    }
    assert_eq!(seen, (0..7).rev().map(|i| format!("srv__tool{i}")).collect::<Vec<_>>());

    // Filters.
    let (_, odd) = get_json(&hub, &hub.key, "/audit?user=odd").await;
    assert_eq!(tools(&odd["items"]), vec!["srv__tool5", "srv__tool3", "srv__tool1"]);
    let (_, deny) = get_json(&hub, &hub.key, "/audit?decision=deny&kind=mcp").await;
    assert_eq!(tools(&deny["items"]), vec!["srv__tool3"]);
    let (_, glob) = get_json(&hub, &hub.key, "/audit?tool=srv__tool*&user=u-even&limit=2").await;
    assert_eq!(tools(&glob["items"]), vec!["srv__tool6", "srv__tool4"]);
    assert!(glob["next_cursor"].is_string());
    let (_, none) = get_json(&hub, &hub.key, "/audit?from=2000-01-01T00:00:00Z&to=2000-01-02T00:00:00Z").await;
    assert_eq!(none["items"], json!([]));
    assert!(none["next_cursor"].is_null());

    // Bad input is a 400 with the error shape, never a 500.
    for bad in [
        "/audit?limit=0",
        "/audit?limit=501",
        "/audit?limit=x",
        "/audit?cursor=garbage",
        "/audit?kind=web",
        "/audit?from=yesterday",
        "/audit?user=a%00b",
        "/usage?group_by=planet",
        "/usage?from=2025-02-01T00:00:00Z&to=2025-01-01T00:00:00Z",
    ] {
        let (status, body) = get_json(&hub, &hub.key, bad).await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert_eq!(body["error"]["code"], "bad_request", "{bad}");
    }

    // One record.
    let id = item["id"].as_str().unwrap();
    let (status, one) = get_json(&hub, &hub.key, &format!("/audit/{id}")).await;
    assert_eq!((status, &one), (200, item));
    let (status, missing) = get_json(&hub, &hub.key, "/audit/0190a0a0-0000-7000-8000-000000000000").await;
    assert_eq!((status, missing["error"]["code"].as_str()), (404, Some("not_found")));

    // Export: JSON Lines, oldest first, filtered.
    let (status, ctype, text) = get(&hub, &hub.key, "/audit/export").await;
    assert_eq!(status, 200);
    assert_eq!(ctype, "application/x-ndjson");
    let lines: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.iter().map(|r| r["seq"].as_i64().unwrap()).collect::<Vec<_>>(), (1..=7).collect::<Vec<_>>());
    assert_eq!(lines[6], *item);
    let (_, _, text) = get(&hub, &hub.key, "/audit/export?user=odd").await;
    assert_eq!(text.lines().count(), 3);

    // Chain and pipeline state.
    let (status, report) = get_json(&hub, &hub.key, "/audit/verify").await;
    assert_eq!((status, &report), (200, &json!({ "ok": true, "checked": 7, "first_bad": null })));
    let (status, stats) = get_json(&hub, &hub.key, "/audit/stats").await;
    assert_eq!(status, 200);
    assert_eq!((stats["written"].as_u64(), stats["dropped"].as_u64(), stats["queue_capacity"].as_u64()), (Some(7), Some(0), Some(10_000)));

    // Documented for the OpenAPI document.
    let (_, doc) = get_json(&hub, &hub.key, "/openapi.json").await;
    for path in
        ["/api/v1/audit", "/api/v1/audit/{id}", "/api/v1/audit/export", "/api/v1/audit/verify", "/api/v1/audit/stats", "/api/v1/usage"]
    {
        assert!(doc["paths"][path]["get"].is_object(), "{path} missing from the OpenAPI document");
    }
}

#[tokio::test]
async fn audit_needs_audit_read_and_usage_is_own_without_it() {
    let hub = TestHub::start("").await;
    let dev = user_key(&hub, "dave", Role::Developer).await;
    let viewer = user_key(&hub, "vera", Role::Viewer).await;
    let dave = hub.state.store.user_by_name("dave").await.unwrap().unwrap();
    let now = gateway_server::store::now();
    for (user, name, tokens) in [(dave.id.as_str(), "dave", 7), ("u-other", "other", 1000)] {
        hub.state.audit.record(AuditEvent {
            user_id: Some(user.into()),
            username: Some(name.into()),
            tool: Some("gpt-4o".into()),
            input_tokens: Some(tokens),
            ts: now - chrono::Duration::minutes(5),
            ..AuditEvent::new(EventKind::Ai)
        });
    }
    hub.state.audit.flush().await;

    for path in
        ["/audit", "/audit?limit=1", "/audit/export", "/audit/verify", "/audit/stats", "/audit/0190a0a0-0000-7000-8000-000000000000"]
    {
        let (status, body) = get_json(&hub, &dev, path).await;
        assert_eq!(status, 403, "{path}: {body}");
        assert_eq!(body["error"]["code"], "forbidden");
        let (status, _, _) = get(&hub, &viewer, path).await;
        assert_ne!(status, 403, "a viewer may read the audit log: {path}");
    }
    let (status, _, _) = get(&hub, "gk_not_a_real_key", "/audit").await;
    assert_eq!(status, 401);

    // The developer sees only their own usage; the viewer sees everyone's.
    let (status, own) = get_json(&hub, &dev, "/usage?group_by=user").await;
    assert_eq!(status, 200, "{own}");
    assert_eq!(own["own_only"], true);
    assert_eq!(own["rows"].as_array().unwrap().len(), 1, "{own}");
    assert_eq!((own["rows"][0]["label"].as_str(), own["rows"][0]["input_tokens"].as_i64()), (Some("dave"), Some(7)));
    let (status, all) = get_json(&hub, &viewer, "/usage?group_by=model&bucket=hour").await;
    assert_eq!(status, 200, "{all}");
    assert_eq!(all["own_only"], false);
    assert_eq!((all["rows"][0]["group"].as_str(), all["rows"][0]["input_tokens"].as_i64()), (Some("gpt-4o"), Some(1007)));
    assert!(all["rows"][0]["bucket"].as_str().unwrap().ends_with(":00:00Z"));
}

#[tokio::test]
async fn hub_queue_overflow_is_counted_and_reported() {
    let hub = TestHub::start("[audit]\nqueue_capacity = 2\n").await;
    let audit = &hub.state.audit;
    let mut raw = Raw::open(&hub.state.config.database.url).await;
    raw.stall_writer().await;
    audit.record(mcp("first"));
    wait_until("the writer took the first event", || async { audit.queue_depth() == 0 }).await;
    for _ in 0..12 {
        audit.record(mcp("burst"));
    }
    assert_eq!((audit.queue_depth(), audit.dropped()), (2, 10));
    raw.exec("ROLLBACK").await;
    audit.flush().await;
    let (status, stats) = get_json(&hub, &hub.key, "/audit/stats").await;
    assert_eq!(status, 200);
    assert_eq!((stats["dropped"].as_u64(), stats["written"].as_u64(), stats["queue_depth"].as_u64()), (Some(10), Some(3), Some(0)));
}

// ---------------------------------------------------------------------------
// CLI
// ---------------------------------------------------------------------------

fn cli(dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_gateway-server")).env_clear().current_dir(dir).args(args).output().unwrap()
}

#[tokio::test]
async fn cli_verify_and_export() {
    let dir = tempfile::tempdir().unwrap();
    let config_path = dir.path().join("gatehouse.toml");
    std::fs::write(&config_path, "[database]\nurl = \"sqlite://hub.db\"\n").unwrap();
    let config = gateway_server::config::load(Some(&config_path), &gateway_server::config::MapEnv::new()).unwrap();
    let store = Store::from_config(&config.database).await.unwrap();
    let audit = seeded(&store, 3).await;
    audit.shutdown().await;

    let out = cli(dir.path(), &["audit", "verify", "--config", "gatehouse.toml"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "audit chain intact: 3 records\n");

    let out = cli(dir.path(), &["--config", "gatehouse.toml", "audit", "export", "--output", "audit.jsonl", "--tool", "t*"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = std::fs::read_to_string(dir.path().join("audit.jsonl")).unwrap();
    let seqs: Vec<i64> = text.lines().map(|l| serde_json::from_str::<Value>(l).unwrap()["seq"].as_i64().unwrap()).collect();
    assert_eq!(seqs, vec![1, 2, 3]);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(dir.path().join("audit.jsonl")).unwrap().permissions().mode() & 0o777, 0o600);
    }
    // An existing file is not overwritten.
    let out = cli(dir.path(), &["--config", "gatehouse.toml", "audit", "export", "--output", "audit.jsonl"]);
    assert!(!out.status.success());

    tamper(&config.database.url, &["UPDATE audit_events SET tool = 'evil' WHERE seq = 2"]).await;
    let id = store.audit_rows_after(&AuditFilter::default(), 1, 1).await.unwrap().remove(0).id;
    let out = cli(dir.path(), &["audit", "verify", "--config", "gatehouse.toml"]);
    assert!(!out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.starts_with(&format!("audit chain broken at record seq=2 id={id}: changed: ")), "{stdout}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.starts_with("error: ") && stderr.contains("seq=2"), "{stderr}");
    store.close().await;
}
