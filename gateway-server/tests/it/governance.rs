//! Governance through `/mcp`, end to end: what `tools/list` shows is exactly
//! what `tools/call` allows, for every combination of role, key allowlist and
//! risk the rules mention; admin disables survive restarts; changed tool
//! definitions are held; limits refuse with the rule's name; calls reach the
//! audit log.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use crate::support::{Client, TestHub, api_as, fixture_file};

const NOTES_TOOLS: [&str; 4] = ["read_notes", "delete_notes", "rename_note", "search_notes"];

fn governed(name: &str) -> String {
    format!(
        "[[backends]]\nname = \"{name}\"\ntransport = \"stdio\"\ncommand = \"python3\"\nargs = [\"{}\"]\n",
        fixture_file("governed.py").display()
    )
}

/// Creates user `username` with `role` and a key for it through the admin API.
async fn user_with_key(hub: &TestHub, username: &str, role: &str, tools: &[&str]) -> String {
    let (status, body) = hub.api("POST", "/users", Some(json!({ "username": username, "role": role }))).await;
    assert!(status == 201 || status == 200 || status == 409, "create user {username}: {status} {body}");
    new_key(hub, username, tools).await
}

async fn new_key(hub: &TestHub, username: &str, tools: &[&str]) -> String {
    let (status, body) =
        hub.api("POST", "/keys", Some(json!({ "name": format!("{username}-key"), "user": username, "tools": tools }))).await;
    assert_eq!(status, 201, "create key for {username}: {body}");
    body["key"].as_str().expect("the new key is shown once").to_owned()
}

async fn session(hub: &TestHub, key: &str) -> Client {
    let mut c = Client::new(format!("{}/mcp", hub.base), Some(key.to_owned()));
    c.initialize().await;
    c
}

async fn listed_tools(c: &mut Client) -> BTreeSet<String> {
    let r = c.call("tools/list", json!({})).await;
    r["tools"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap().to_owned()).collect()
}

/// The JSON-RPC error of a call, or `None` when it succeeded.
async fn call_error(c: &mut Client, tool: &str) -> Option<Value> {
    let r = c.request("tools/call", json!({ "name": tool, "arguments": {} })).await;
    assert_eq!(r.status, 200, "{r:?}");
    let body = r.body().clone();
    body.get("error").cloned()
}

fn exposed(backend: &str, tool: &str) -> String {
    format!("{backend}__{tool}")
}

fn all_exposed() -> BTreeSet<String> {
    ["notes", "ops"].iter().flat_map(|b| NOTES_TOOLS.iter().map(move |t| exposed(b, t))).collect()
}

async fn add_rule(hub: &TestHub, rule: Value) -> Value {
    let (status, body) = hub.api("POST", "/policies", Some(rule.clone())).await;
    assert!(status == 201 || status == 200, "create rule {rule}: {status} {body}");
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_shows_exactly_what_call_allows_across_roles_keys_and_risk() {
    let hub = TestHub::start(&format!("{}{}", governed("notes"), governed("ops"))).await;
    hub.wait_backend("notes").await;
    hub.wait_backend("ops").await;
    let (status, body) = hub.api("POST", "/roles", Some(json!({ "name": "contractor", "permissions": ["mcp:use"] }))).await;
    assert!(status == 201 || status == 200, "create role: {status} {body}");

    let bob_all = user_with_key(&hub, "bob", "developer", &[]).await;
    let bob_narrow = new_key(&hub, "bob", &["notes__read_*"]).await;
    let carol = user_with_key(&hub, "carol", "contractor", &[]).await;

    add_rule(
        &hub,
        json!({ "name": "no-destructive-for-devs", "effect": "deny", "roles": ["developer"], "risks": ["high"], "enabled": true }),
    )
    .await;
    add_rule(
        &hub,
        json!({ "name": "contractors-read-notes", "effect": "allow", "roles": ["contractor"], "backends": ["notes"],
                "tools": ["read_*", "search_*"], "enabled": true }),
    )
    .await;
    add_rule(&hub, json!({ "name": "staff", "effect": "allow", "roles": ["admin", "developer"], "enabled": true })).await;
    // `mutate` is not part of this matrix: keep it out of everyone's way.
    let everything: BTreeSet<String> = all_exposed();

    let cases: [(&str, &str, BTreeSet<String>); 4] = [
        ("admin", &hub.key, everything.clone()),
        ("bob (all tools)", &bob_all, everything.iter().filter(|t| !t.ends_with("delete_notes")).cloned().collect()),
        ("bob (read_* key)", &bob_narrow, [exposed("notes", "read_notes")].into()),
        ("carol (contractor)", &carol, [exposed("notes", "read_notes"), exposed("notes", "search_notes")].into()),
    ];
    for (who, key, expected) in cases {
        let mut c = session(&hub, key).await;
        let listed: BTreeSet<String> = listed_tools(&mut c).await.into_iter().filter(|t| !t.ends_with("mutate")).collect();
        let mut callable = BTreeSet::new();
        for tool in &everything {
            match call_error(&mut c, tool).await {
                None => {
                    callable.insert(tool.clone());
                }
                Some(err) => {
                    let code = err["code"].as_i64().unwrap();
                    assert!(code == -32012 || code == -32602, "{who} calling {tool}: unexpected error {err}");
                }
            }
        }
        assert_eq!(listed, expected, "{who}: tools/list");
        assert_eq!(callable, expected, "{who}: tools/call");
    }

    // A refusal names the rule that decided.
    let mut c = session(&hub, &bob_all).await;
    let err = call_error(&mut c, "notes__delete_notes").await.expect("refused");
    assert_eq!(err["code"], -32012, "{err}");
    assert_eq!(err["data"]["rule"]["name"], "no-destructive-for-devs", "{err}");
    assert!(err["message"].as_str().unwrap().contains("no-destructive-for-devs"), "{err}");

    // The dry run agrees with the real thing.
    let (status, sim) =
        hub.api("POST", "/policies/simulate", Some(json!({ "username": "bob", "backend": "notes", "tool": "delete_notes" }))).await;
    assert_eq!(status, 200, "{sim}");
    assert_eq!(sim["allowed"], false, "{sim}");
    assert_eq!(sim["rule"]["name"], "no-destructive-for-devs", "{sim}");
    let (_, sim) =
        hub.api("POST", "/policies/simulate", Some(json!({ "username": "carol", "backend": "notes", "tool": "search_notes" }))).await;
    assert_eq!(sim["allowed"], true, "{sim}");
    assert_eq!(sim["rule"]["name"], "contractors-read-notes", "{sim}");

    // "Who may call it" says, per user, what the calls above showed.
    for (tool, may, may_not) in
        [("delete_notes", vec!["alice"], vec!["bob", "carol"]), ("search_notes", vec!["alice", "bob", "carol"], vec![])]
    {
        let id = tool_id(&hub, "notes", tool).await;
        let (status, access) = hub.api("GET", &format!("/tools/{id}/access"), None).await;
        assert_eq!(status, 200, "{access}");
        let allowed = |name: &str| {
            let u = access["users"].as_array().unwrap().iter().find(|u| u["username"] == name);
            u.unwrap_or_else(|| panic!("{name} is missing: {access}"))["allowed"].as_bool().unwrap()
        };
        assert!(may.iter().all(|u| allowed(u)) && may_not.iter().all(|u| !allowed(u)), "{tool}: {access}");
    }
    let id = tool_id(&hub, "notes", "delete_notes").await;
    let (_, access) = hub.api("GET", &format!("/tools/{id}/access"), None).await;
    let bob = access["users"].as_array().unwrap().iter().find(|u| u["username"] == "bob").unwrap().clone();
    assert_eq!(bob["rule"], "no-destructive-for-devs", "{access}");
    // A disabled tool: nobody.
    let (status, _) = hub.api("PATCH", &format!("/tools/{id}"), Some(json!({ "enabled": false }))).await;
    assert_eq!(status, 200);
    let (_, access) = hub.api("GET", &format!("/tools/{id}/access"), None).await;
    assert_eq!(access["callable"], false, "{access}");
    assert!(access["users"].as_array().unwrap().iter().all(|u| u["allowed"] == false), "{access}");
}

async fn tool_id(hub: &TestHub, backend: &str, name: &str) -> String {
    let (status, body) = hub.api("GET", &format!("/tools?backend={backend}"), None).await;
    assert_eq!(status, 200, "{body}");
    let items = body["items"].as_array().unwrap_or_else(|| panic!("{body}"));
    let tool = items.iter().find(|t| t["name"] == name).unwrap_or_else(|| panic!("{name} not in registry: {body}"));
    tool["id"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disabled_tool_stays_disabled_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let hub = TestHub::start_at(dir.path(), &governed("notes")).await;
    hub.wait_backend("notes").await;
    let id = tool_id(&hub, "notes", "delete_notes").await;
    let (status, body) = hub.api("PATCH", &format!("/tools/{id}"), Some(json!({ "enabled": false }))).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["enabled"], false, "{body}");

    let mut c = session(&hub, &hub.key).await;
    assert!(!listed_tools(&mut c).await.contains("notes__delete_notes"));
    let err = call_error(&mut c, "notes__delete_notes").await.expect("a disabled tool is refused");
    assert_eq!(err["code"], -32012, "{err}");
    assert!(err["message"].as_str().unwrap().contains("disabled"), "{err}");
    drop(c);
    drop(hub);

    // Same store, new process state: the backend re-syncs its tools.
    let hub = TestHub::start_at(dir.path(), &governed("notes")).await;
    hub.wait_backend("notes").await;
    let mut c = session(&hub, &hub.key).await;
    let listed = listed_tools(&mut c).await;
    assert!(listed.contains("notes__read_notes"), "{listed:?}");
    assert!(!listed.contains("notes__delete_notes"), "still disabled after a restart: {listed:?}");
    assert!(call_error(&mut c, "notes__delete_notes").await.is_some());
    // Re-enabling brings it back.
    let (status, _) = hub.api("PATCH", &format!("/tools/{id}"), Some(json!({ "enabled": true }))).await;
    assert_eq!(status, 200);
    assert!(call_error(&mut c, "notes__delete_notes").await.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_tool_definition_is_flagged_and_held_until_approved() {
    let hub = TestHub::start(&format!("[policy]\nhold_changed_tools = true\n{}", governed("notes"))).await;
    hub.wait_backend("notes").await;
    let mut c = session(&hub, &hub.key).await;
    assert!(listed_tools(&mut c).await.contains("notes__rename_note"));
    assert!(call_error(&mut c, "notes__mutate").await.is_none());

    // The backend announced list_changed; wait for the registry to see the change.
    let id = tool_id(&hub, "notes", "rename_note").await;
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let (_, t) = hub.api("GET", &format!("/tools/{id}"), None).await;
        if t["status"] == "changed" {
            assert_eq!(t["held"], true, "{t}");
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the change was never flagged: {t}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(!listed_tools(&mut c).await.contains("notes__rename_note"), "a held tool is not listed");
    let err = call_error(&mut c, "notes__rename_note").await.expect("a held tool is refused");
    assert_eq!(err["code"], -32012, "{err}");

    let (status, body) = hub.api("POST", &format!("/tools/{id}/approve"), None).await;
    assert_eq!(status, 200, "{body}");
    assert!(listed_tools(&mut c).await.contains("notes__rename_note"));
    assert!(call_error(&mut c, "notes__rename_note").await.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_refuse_with_the_rule_and_calls_reach_the_audit_log() {
    let hub = TestHub::start(&governed("notes")).await;
    hub.wait_backend("notes").await;
    let (status, rule) =
        hub.api("POST", "/limits", Some(json!({ "scope": "tool", "match": "read_*", "window": "minute", "max_requests": 2 }))).await;
    assert!(status == 201 || status == 200, "{rule}");

    let mut c = session(&hub, &hub.key).await;
    assert!(call_error(&mut c, "notes__read_notes").await.is_none());
    assert!(call_error(&mut c, "notes__read_notes").await.is_none());
    let err = call_error(&mut c, "notes__read_notes").await.expect("the third call in a minute is refused");
    assert_eq!(err["code"], -32013, "{err}");
    assert!(err["data"]["retry_after_secs"].as_u64().is_some(), "{err}");
    // Other tools are not limited by that rule.
    assert!(call_error(&mut c, "notes__search_notes").await.is_none());

    hub.state.audit.flush().await;
    let (status, body) = hub.api("GET", "/audit?limit=10", None).await;
    assert_eq!(status, 200, "{body}");
    let items = body["items"].as_array().unwrap_or_else(|| panic!("{body}"));
    let calls: Vec<&Value> = items.iter().filter(|e| e["method"] == "tools/call").collect();
    assert!(calls.len() >= 4, "{body}");
    // Newest first: the search, then the refused read.
    assert_eq!(calls[0]["tool"], "notes__search_notes", "{body}");
    assert_eq!(calls[1]["decision"], "deny", "{body}");
    assert_eq!(calls[1]["backend"], "notes", "{body}");
    assert_eq!(calls[2]["decision"], "allow", "{body}");
    assert_eq!(calls[2]["username"], "alice", "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_key_cannot_use_mcp_and_keys_cannot_widen_a_user() {
    let hub = TestHub::start(&governed("notes")).await;
    hub.wait_backend("notes").await;
    let viewer = user_with_key(&hub, "vera", "viewer", &[]).await;
    let r = Client::new(format!("{}/mcp", hub.base), Some(viewer.clone()))
        .request(
            "initialize",
            json!({ "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": { "name": "it", "version": "1" } }),
        )
        .await;
    assert_eq!(r.status, 403, "{r:?}");
    // Viewers read the admin API but change nothing.
    let (status, _) = api_as(&hub.base, &viewer, "GET", "/tools", None).await;
    assert_eq!(status, 200);
    let (status, _) = api_as(&hub.base, &viewer, "POST", "/policies", Some(json!({ "name": "x", "effect": "allow" }))).await;
    assert_eq!(status, 403);

    // A developer's key with an allowlist wider than a deny rule is still refused.
    let dev = user_with_key(&hub, "dave", "developer", &["*"]).await;
    add_rule(&hub, json!({ "name": "no-deletes", "effect": "deny", "tools": ["delete_*"], "enabled": true })).await;
    add_rule(&hub, json!({ "name": "rest", "effect": "allow", "enabled": true })).await;
    let mut c = session(&hub, &dev).await;
    let err = call_error(&mut c, "notes__delete_notes").await.expect("denied");
    assert_eq!(err["data"]["rule"]["name"], "no-deletes", "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_changes_are_audited_with_secrets_redacted() {
    let hub = TestHub::start("").await;
    let (status, _) =
        hub.api("POST", "/users", Some(json!({ "username": "erin", "role": "developer", "password": "a long enough password" }))).await;
    assert_eq!(status, 201);
    // A refused change is recorded too.
    let viewer = user_with_key(&hub, "vic", "viewer", &[]).await;
    let (status, _) = api_as(&hub.base, &viewer, "POST", "/policies", Some(json!({ "name": "x", "effect": "allow" }))).await;
    assert_eq!(status, 403);

    hub.state.audit.flush().await;
    let (status, body) = hub.api("GET", "/audit?kind=admin&limit=50", None).await;
    assert_eq!(status, 200, "{body}");
    let items = body["items"].as_array().unwrap();
    let created = items
        .iter()
        .find(|e| e["action"] == "POST /api/v1/users" && e["details"]["request"]["username"] == "erin")
        .unwrap_or_else(|| panic!("{body}"));
    assert_eq!(created["username"], "alice", "{created}");
    assert_eq!(created["details"]["status"], 201, "{created}");
    let text = created.to_string();
    assert!(!text.contains("a long enough password"), "the password reached the audit log: {text}");
    let refused = items.iter().find(|e| e["action"] == "POST /api/v1/policies").unwrap_or_else(|| panic!("{body}"));
    assert_eq!(refused["decision"], "deny", "{refused}");
    assert_eq!(refused["username"], "vic", "{refused}");
}

/// Everything a session's GET stream carries, collected in the background.
struct GetStream(std::sync::Arc<parking_lot::Mutex<String>>);

impl GetStream {
    async fn open(c: &Client) -> Self {
        use futures::StreamExt;
        let resp = c.open_get_stream().await;
        assert_eq!(resp.status(), 200);
        let seen = std::sync::Arc::new(parking_lot::Mutex::new(String::new()));
        let sink = seen.clone();
        tokio::spawn(async move {
            let mut body = resp.bytes_stream();
            while let Some(Ok(chunk)) = body.next().await {
                sink.lock().push_str(&String::from_utf8_lossy(&chunk));
            }
        });
        Self(seen)
    }

    fn count(&self, needle: &str) -> usize {
        self.0.lock().matches(needle).count()
    }

    /// Waits until `needle` appeared `n` times.
    async fn wait_for(&self, needle: &str, n: usize) {
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(15);
        while self.count(needle) < n {
            assert!(tokio::time::Instant::now() < deadline, "waited for {n}× {needle}; the stream carried: {}", self.0.lock());
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_changed_reaches_only_the_sessions_that_see_the_backend() {
    const CHANGED: &str = "notifications/tools/list_changed";
    let hub = TestHub::start(&format!("{}{}", governed("private"), governed("open"))).await;
    hub.wait_backend("private").await;
    hub.wait_backend("open").await;
    let (status, body) = hub.api("PUT", "/visibility/private", Some(json!({ "users": ["alice"] }))).await;
    assert_eq!(status, 200, "{body}");
    let mut alice = session(&hub, &user_with_key(&hub, "alice", "developer", &[]).await).await;
    let mut bob = session(&hub, &user_with_key(&hub, "bob", "developer", &[]).await).await;
    assert!(listed_tools(&mut alice).await.contains("private__mutate"));
    assert!(!listed_tools(&mut bob).await.contains("private__mutate"));
    let (a, b) = (GetStream::open(&alice).await, GetStream::open(&bob).await);

    // The private backend changes a tool: only alice hears of it.
    assert!(call_error(&mut alice, "private__mutate").await.is_none());
    a.wait_for(CHANGED, 1).await;
    // The open backend changes a tool: both hear of it, and bob's first
    // notification is this one (the broadcast above pushed to every stream
    // before alice's arrived, so a leak would already be on bob's stream).
    assert!(call_error(&mut bob, "open__mutate").await.is_none());
    a.wait_for(CHANGED, 2).await;
    b.wait_for(CHANGED, 1).await;
    assert_eq!(b.count(CHANGED), 1, "bob heard about a backend he cannot see");

    // Disabling a tool changes the lists of those who see it, at once.
    let id = tool_id(&hub, "private", "read_notes").await;
    let (status, _) = hub.api("PATCH", &format!("/tools/{id}"), Some(json!({ "enabled": false }))).await;
    assert_eq!(status, 200);
    a.wait_for(CHANGED, 3).await;
    let id = tool_id(&hub, "open", "read_notes").await;
    let (status, _) = hub.api("PATCH", &format!("/tools/{id}"), Some(json!({ "enabled": false }))).await;
    assert_eq!(status, 200);
    b.wait_for(CHANGED, 2).await;
    a.wait_for(CHANGED, 4).await;
    assert_eq!(b.count(CHANGED), 2, "bob heard about a tool of a backend he cannot see");
}
