//! The tool registry and the policy engine: their store methods on SQLite and
//! PostgreSQL (when `GATEHOUSE_TEST_POSTGRES_URL` is set), admin decisions
//! surviving restarts and re-syncs, and the admin API (`/api/v1/tools`,
//! `/api/v1/policies`, `/api/v1/visibility`) through a running hub.

use gateway_server::config::{self, MapEnv};
use gateway_server::policy::{Effect, Policies, PolicyInput, RuleSpec};
use gateway_server::registry::{Risk, ToolRegistry, ToolStatus};
use gateway_server::store::{NewApiKey, Role, Store, StoreError, StoredTool, ToolSyncWrites};
use serde_json::{Map, Value, json};

use crate::support::{TestHub, create_key};

/// Runs each function once on SQLite and once on PostgreSQL.
macro_rules! suite {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $name() {
                    crate::store::with_sqlite(super::$name).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $name() {
                    crate::store::with_postgres(super::$name).await;
                }
            )*
        }
    };
}

suite!(tool_rows_round_trip, admin_decisions_survive_restarts_and_syncs, rule_rows_keep_a_dense_order, visibility_rows);

fn tool(v: Value) -> Map<String, Value> {
    v.as_object().cloned().expect("a JSON object")
}

fn config(toml: &str) -> config::Config {
    config::parse(toml, &MapEnv::new()).expect("valid config")
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| (*s).to_owned()).collect()
}

async fn tool_rows_round_trip(store: Store, _url: String) {
    let at = gateway_server::store::now();
    let t = StoredTool {
        id: uuid::Uuid::now_v7().to_string(),
        backend: "laptop__fs".into(),
        name: "write_file".into(),
        agent: Some("laptop".into()),
        title: Some("Write".into()),
        description: Some("Writes a file".into()),
        input_schema: Some(json!({"type": "object", "properties": {"path": {"type": "string"}}})),
        output_schema: None,
        annotations: Some(json!({"destructiveHint": true})),
        risk_auto: Risk::High,
        risk_override: None,
        enabled: true,
        definition_hash: "h1".into(),
        pinned_hash: "h1".into(),
        pending_definition: None,
        status: ToolStatus::Ok,
        first_seen: at,
        last_seen: at,
        approved_by: None,
        approved_at: None,
    };
    store.tools_apply_sync(&ToolSyncWrites { inserts: vec![t.clone()], at: Some(at), ..Default::default() }).await.unwrap();
    assert_eq!(store.tool_by_id(&t.id).await.unwrap().unwrap(), t);
    assert_eq!(store.tools_of_backend("laptop__fs").await.unwrap(), std::slice::from_ref(&t));
    assert!(store.tools_of_backend("other").await.unwrap().is_empty());

    // A second insert of the same backend and name (another hub won the race) is ignored.
    let dup = StoredTool { id: uuid::Uuid::now_v7().to_string(), ..t.clone() };
    store.tools_apply_sync(&ToolSyncWrites { inserts: vec![dup], ..Default::default() }).await.unwrap();
    assert_eq!(store.tools_all().await.unwrap().len(), 1);

    assert!(store.tool_set_enabled(&t.id, false).await.unwrap());
    assert!(store.tool_set_risk_override(&t.id, Some(Risk::Low)).await.unwrap());
    assert!(!store.tool_set_enabled("missing", false).await.unwrap());

    // A definition update never touches the admin's columns.
    let later = at + chrono::Duration::seconds(5);
    let changed = StoredTool {
        definition_hash: "h2".into(),
        status: ToolStatus::Changed,
        pending_definition: Some(json!({"name": "write_file", "description": "Now different"})),
        last_seen: later,
        enabled: true,
        risk_override: None,
        ..t.clone()
    };
    store.tools_apply_sync(&ToolSyncWrites { updates: vec![changed], at: Some(later), ..Default::default() }).await.unwrap();
    let got = store.tool_by_id(&t.id).await.unwrap().unwrap();
    assert!(!got.enabled);
    assert_eq!(got.risk_override, Some(Risk::Low));
    assert_eq!(got.status, ToolStatus::Changed);
    assert_eq!(got.definition_hash, "h2");
    assert_eq!(got.pinned_hash, "h1");
    assert_eq!(got.last_seen, later);
    assert_eq!(got.pending_definition.unwrap()["description"], "Now different");

    let even_later = later + chrono::Duration::seconds(5);
    store.tools_apply_sync(&ToolSyncWrites { touched: vec![t.id.clone()], at: Some(even_later), ..Default::default() }).await.unwrap();
    assert_eq!(store.tool_by_id(&t.id).await.unwrap().unwrap().last_seen, even_later);
    assert!(store.tool_set_risk_override(&t.id, None).await.unwrap());
    assert_eq!(store.tool_by_id(&t.id).await.unwrap().unwrap().risk_override, None);
}

async fn admin_decisions_survive_restarts_and_syncs(store: Store, _url: String) {
    let cfg = config("[policy]\nhold_changed_tools = true");
    let v1 = vec![
        tool(json!({"name": "read_file", "annotations": {"readOnlyHint": true}})),
        tool(json!({"name": "delete_file", "description": "Deletes a file"})),
        tool(json!({"name": "echo"})),
    ];
    let reg = ToolRegistry::start(&cfg, &store).await.unwrap();
    let report = reg.sync_backend("fs", None, &v1).await.unwrap();
    assert_eq!(report.added, ["read_file", "delete_file", "echo"]);
    let id = reg.lookup("fs", "delete_file").unwrap().id;
    reg.set_enabled(&id, false).await.unwrap();
    reg.set_risk_override(&reg.lookup("fs", "echo").unwrap().id, Some(Risk::High)).await.unwrap();

    // A new registry on the same store (a restart), then a re-sync.
    let reg = ToolRegistry::start(&cfg, &store).await.unwrap();
    assert!(!reg.lookup("fs", "delete_file").unwrap().enabled);
    assert_eq!(reg.lookup("fs", "echo").unwrap().risk, Risk::High);
    assert_eq!(reg.lookup("fs", "read_file").unwrap().risk, Risk::Low);
    let report = reg.sync_backend("fs", None, &v1).await.unwrap();
    assert!(report.added.is_empty() && report.changed.is_empty());
    assert!(!reg.lookup("fs", "delete_file").unwrap().enabled);
    assert_eq!(reg.lookup("fs", "echo").unwrap().risk, Risk::High);

    // A changed definition: flagged and held, still disabled, across a restart too.
    let mut v2 = v1.clone();
    v2[1] = tool(json!({"name": "delete_file", "description": "Deletes a file, and its backups"}));
    let report = reg.sync_backend("fs", None, &v2).await.unwrap();
    assert_eq!(report.changed, ["delete_file"]);
    let reg = ToolRegistry::start(&cfg, &store).await.unwrap();
    let info = reg.lookup("fs", "delete_file").unwrap();
    assert!(info.changed && info.held && !info.enabled);
    // Without the hold setting the same state is only flagged.
    let relaxed = ToolRegistry::start(&config(""), &store).await.unwrap();
    let info = relaxed.lookup("fs", "delete_file").unwrap();
    assert!(info.changed && !info.held);

    // Approval re-pins; the next sync of the new definition is quiet.
    reg.approve(&id, "alice").await.unwrap();
    let info = reg.lookup("fs", "delete_file").unwrap();
    assert!(!info.changed && !info.held && !info.enabled);
    let row = store.tool_by_id(&id).await.unwrap().unwrap();
    assert_eq!(row.description.as_deref(), Some("Deletes a file, and its backups"));
    assert_eq!(row.approved_by.as_deref(), Some("alice"));
    assert!(row.pending_definition.is_none());
    let report = reg.sync_backend("fs", None, &v2).await.unwrap();
    assert!(report.changed.is_empty());

    // A reconnecting backend that lost a tool: kept, reported, still disabled.
    let report = reg.sync_backend("fs", None, &v2[..1]).await.unwrap();
    assert_eq!(report.removed_or_missing, ["delete_file", "echo"]);
    reg.sync_backend("fs", None, &v2).await.unwrap();
    assert!(!reg.lookup("fs", "delete_file").unwrap().enabled);
}

async fn rule_rows_keep_a_dense_order(store: Store, _url: String) {
    let spec = |name: &str| RuleSpec::new(name, Effect::Allow);
    let a = store.policy_rule_insert(&spec("a"), None).await.unwrap();
    let b = store.policy_rule_insert(&spec("b"), None).await.unwrap();
    let c = store.policy_rule_insert(&spec("c"), Some(1)).await.unwrap();
    let d = store.policy_rule_insert(&spec("d"), Some(2)).await.unwrap();
    let names = |rules: Vec<gateway_server::store::PolicyRule>| rules.into_iter().map(|r| (r.name, r.position)).collect::<Vec<_>>();
    let order = |v: &[(&str, i64)]| v.iter().map(|(n, p)| ((*n).to_owned(), *p)).collect::<Vec<_>>();
    assert_eq!(names(store.policy_rules().await.unwrap()), order(&[("c", 1), ("d", 2), ("a", 3), ("b", 4)]));
    let dup = store.policy_rule_insert(&spec("a"), None).await.unwrap_err();
    assert!(matches!(dup, StoreError::Conflict(_)), "{dup}");
    assert_eq!(store.policy_rules().await.unwrap().len(), 4);

    // Every field round-trips.
    let mut full = RuleSpec::new("full", Effect::Deny);
    full.description = "everything".into();
    full.enabled = false;
    full.roles = strings(&["viewer", "auditor"]);
    full.users = strings(&["bob"]);
    full.keys = strings(&["ci"]);
    full.agents = strings(&["laptop"]);
    full.client_apps = strings(&["claude-*"]);
    full.backends = strings(&["fs", "db-*"]);
    full.tools = strings(&["delete_*"]);
    full.risks = vec![Risk::High, Risk::Medium];
    let got = store.policy_rule_update(&a.id, &full, Some(1)).await.unwrap().unwrap();
    assert_eq!(got.position, 1);
    assert_eq!((got.name.as_str(), got.description.as_str(), got.effect, got.enabled), ("full", "everything", Effect::Deny, false));
    assert_eq!(
        (got.roles.clone(), got.client_apps.clone(), got.risks.clone()),
        (full.roles.clone(), full.client_apps.clone(), full.risks.clone())
    );
    assert_eq!(store.policy_rule(&a.id).await.unwrap().unwrap(), got);
    assert!(got.updated_at >= got.created_at);
    assert_eq!(names(store.policy_rules().await.unwrap()), order(&[("full", 1), ("c", 2), ("d", 3), ("b", 4)]));
    assert!(store.policy_rule_update("missing", &full, None).await.unwrap().is_none());
    assert!(matches!(store.policy_rule_update(&b.id, &full, None).await, Err(StoreError::Conflict(_))));

    assert!(store.policy_rule_delete(&c.id).await.unwrap());
    assert!(!store.policy_rule_delete(&c.id).await.unwrap());
    assert_eq!(names(store.policy_rules().await.unwrap()), order(&[("full", 1), ("d", 2), ("b", 3)]));

    store.policy_rules_reorder(&[b.id.clone(), a.id.clone(), d.id.clone()]).await.unwrap();
    assert_eq!(names(store.policy_rules().await.unwrap()), order(&[("b", 1), ("full", 2), ("d", 3)]));
    for bad in [
        vec![b.id.clone(), a.id.clone()],
        vec![b.id.clone(), a.id.clone(), d.id.clone(), d.id.clone()],
        vec![b.id.clone(), a.id.clone(), "x".into()],
    ] {
        assert!(matches!(store.policy_rules_reorder(&bad).await, Err(StoreError::Invalid { field: "ids", .. })), "{bad:?}");
    }
    assert_eq!(names(store.policy_rules().await.unwrap()), order(&[("b", 1), ("full", 2), ("d", 3)]));

    // Seeding only fills an empty table.
    assert!(!store.policy_rules_seed(&[spec("seeded")]).await.unwrap());
    for r in store.policy_rules().await.unwrap() {
        store.policy_rule_delete(&r.id).await.unwrap();
    }
    assert!(store.policy_rules_seed(&[spec("s1"), spec("s2")]).await.unwrap());
    assert_eq!(names(store.policy_rules().await.unwrap()), order(&[("s1", 1), ("s2", 2)]));

    // The engine compiles what the store holds.
    let mut deny = RuleSpec::new("no-deletes", Effect::Deny);
    deny.tools = strings(&["delete_*"]);
    store.policy_rule_insert(&deny, Some(1)).await.unwrap();
    let p = Policies::start(&config(""), &store).await.unwrap();
    let role = Role::Developer;
    let input = |tool| PolicyInput {
        user_id: "u",
        username: "dave",
        role: &role,
        key_id: None,
        key_name: None,
        agent: None,
        client_app: None,
        backend: "fs",
        tool,
        risk: Risk::High,
    };
    let d = p.evaluate(&input("delete_file"));
    assert!(!d.allowed);
    assert_eq!(d.rule.unwrap().name, "no-deletes");
    assert_eq!(p.evaluate(&input("read_file")).rule.unwrap().name, "s1");
}

async fn visibility_rows(store: Store, _url: String) {
    assert!(store.backend_visibilities().await.unwrap().is_empty());
    assert!(store.backend_visibility("hr").await.unwrap().is_none());
    let v = store.set_backend_visibility("hr", &strings(&["auditor"]), &strings(&["erin"])).await.unwrap();
    assert_eq!(store.backend_visibility("hr").await.unwrap().unwrap(), v);
    let v2 = store.set_backend_visibility("hr", &strings(&["viewer"]), &[]).await.unwrap();
    assert_eq!(store.backend_visibilities().await.unwrap(), [v2]);
    let p = Policies::start(&config(""), &store).await.unwrap();
    assert!(p.backend_visible("x", &Role::Viewer, "hr"));
    assert!(!p.backend_visible("erin", &Role::Developer, "hr"));
    assert!(p.backend_visible("root", &Role::Admin, "hr"));
    assert!(store.clear_backend_visibility("hr").await.unwrap());
    assert!(!store.clear_backend_visibility("hr").await.unwrap());
    assert!(store.backend_visibility("hr").await.unwrap().is_none());
}

// ---------------------------------------------------------------------------
// Admin API
// ---------------------------------------------------------------------------

/// Sends `method path` with `key` and an optional JSON body; returns status and JSON.
async fn api(hub: &TestHub, key: &str, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    crate::backends_api::call(hub, key, method, path, body).await
}

/// A developer `dave` with a key.
async fn developer_key(hub: &TestHub) -> String {
    hub.state.store.create_user("dave", Role::Developer).await.unwrap();
    create_key(&hub.state, "dave").await
}

async fn sync_fs(hub: &TestHub) {
    let tools = [
        tool(json!({"name": "read_file", "description": "Reads a file", "annotations": {"readOnlyHint": true}})),
        tool(json!({"name": "delete_file", "description": "Deletes a file", "annotations": {"destructiveHint": true}})),
        tool(json!({"name": "echo", "description": "Echoes", "inputSchema": {"type": "object"}})),
    ];
    hub.state.registry.sync_backend("fs", None, &tools).await.unwrap();
}

fn id_of(list: &Value, name: &str) -> String {
    list["items"].as_array().unwrap().iter().find(|t| t["name"] == name).unwrap()["id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn tools_api_lists_filters_patches_and_approves() {
    let hub = TestHub::start("[policy]\nhold_changed_tools = true\n").await;
    let k = hub.key.clone();
    let (s, body) = api(&hub, &k, "GET", "/tools", None).await;
    assert_eq!((s, body), (200, json!({"items": []})));
    sync_fs(&hub).await;

    let (s, all) = api(&hub, &k, "GET", "/tools", None).await;
    assert_eq!(s, 200);
    let items = all["items"].as_array().unwrap();
    assert_eq!(items.len(), 3);
    let read = items.iter().find(|t| t["name"] == "read_file").unwrap();
    assert_eq!(read["exposed_name"], "fs__read_file");
    assert_eq!(read["backend"], "fs");
    assert_eq!(read["risk"], "low");
    assert_eq!(read["risk_auto"], "low");
    assert_eq!(read["risk_override"], Value::Null);
    assert_eq!(read["enabled"], true);
    assert_eq!(read["status"], "ok");
    assert_eq!(read["held"], false);
    assert_eq!(read["annotations"], json!({"readOnlyHint": true}));
    assert!(read["first_seen"].is_string() && read["last_seen"].is_string());

    let names = |v: &Value| v["items"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap().to_owned()).collect::<Vec<_>>();
    assert_eq!(names(&api(&hub, &k, "GET", "/tools?risk=high", None).await.1), ["delete_file"]);
    assert_eq!(names(&api(&hub, &k, "GET", "/tools?q=ECHO", None).await.1), ["echo"]);
    assert_eq!(names(&api(&hub, &k, "GET", "/tools?q=deletes%20a", None).await.1), ["delete_file"]);
    assert!(names(&api(&hub, &k, "GET", "/tools?backend=git", None).await.1).is_empty());
    assert_eq!(api(&hub, &k, "GET", "/tools?risk=extreme", None).await.0, 400);
    assert_eq!(api(&hub, &k, "GET", "/tools?enabled=perhaps", None).await.0, 400);

    // PATCH: disable and override the risk; then clear the override.
    let echo = id_of(&all, "echo");
    let (s, t) = api(&hub, &k, "PATCH", &format!("/tools/{echo}"), Some(json!({"enabled": false, "risk": "high"}))).await;
    assert_eq!(s, 200, "{t}");
    assert_eq!((t["enabled"].clone(), t["risk"].clone(), t["risk_auto"].clone()), (json!(false), json!("high"), json!("medium")));
    assert!(!hub.state.registry.lookup("fs", "echo").unwrap().enabled);
    assert_eq!(names(&api(&hub, &k, "GET", "/tools?enabled=false", None).await.1), ["echo"]);
    let (s, t) = api(&hub, &k, "PATCH", &format!("/tools/{echo}"), Some(json!({"risk": null}))).await;
    assert_eq!(s, 200);
    assert_eq!((t["enabled"].clone(), t["risk"].clone(), t["risk_override"].clone()), (json!(false), json!("medium"), Value::Null));
    assert_eq!(api(&hub, &k, "PATCH", &format!("/tools/{echo}"), Some(json!({"risk": "severe"}))).await.0, 400);
    assert_eq!(api(&hub, &k, "PATCH", &format!("/tools/{echo}"), Some(json!({"enabled": "no"}))).await.0, 400);
    assert_eq!(api(&hub, &k, "PATCH", &format!("/tools/{echo}"), Some(json!({"colour": "red"}))).await.0, 400);
    assert_eq!(api(&hub, &k, "PATCH", "/tools/nope", Some(json!({"enabled": true}))).await.0, 404);
    assert_eq!(api(&hub, &k, "GET", "/tools/nope", None).await.0, 404);

    // Nothing to approve yet.
    let (s, e) = api(&hub, &k, "POST", &format!("/tools/{echo}/approve"), None).await;
    assert_eq!(s, 409, "{e}");
    assert_eq!(e["error"]["code"], "conflict");

    // A changed definition is held, shown with both definitions, and approved.
    let changed = [tool(json!({"name": "echo", "description": "Echoes, and also mails it", "inputSchema": {"type": "object"}}))];
    hub.state.registry.sync_backend("fs", None, &changed).await.unwrap();
    let (_, t) = api(&hub, &k, "GET", &format!("/tools/{echo}"), None).await;
    assert_eq!((t["status"].clone(), t["held"].clone()), (json!("changed"), json!(true)));
    assert_eq!(t["definition"]["description"], "Echoes");
    assert_eq!(t["pending_definition"]["description"], "Echoes, and also mails it");
    assert_eq!(names(&api(&hub, &k, "GET", "/tools?status=changed", None).await.1), ["echo"]);
    let (s, t) = api(&hub, &k, "POST", &format!("/tools/{echo}/approve"), None).await;
    assert_eq!(s, 200, "{t}");
    assert_eq!((t["status"].clone(), t["held"].clone(), t["approved_by"].clone()), (json!("ok"), json!(false), json!("alice")));
    assert_eq!(t["definition"]["description"], "Echoes, and also mails it");
    assert_eq!(t["pending_definition"], Value::Null);
    assert!(!hub.state.registry.lookup("fs", "echo").unwrap().held);
}

#[tokio::test]
async fn policies_api_crud_reorder_and_simulate() {
    let hub = TestHub::start("").await;
    let k = hub.key.clone();
    let dev = developer_key(&hub).await;
    sync_fs(&hub).await;
    assert_eq!(api(&hub, &k, "GET", "/policies", None).await, (200, json!({"items": []})));

    let (s, deny) = api(&hub, &k, "POST", "/policies", Some(json!({"name": "no-deletes", "effect": "deny", "tools": ["delete_*"]}))).await;
    assert_eq!(s, 201, "{deny}");
    assert_eq!((deny["position"].clone(), deny["enabled"].clone(), deny["roles"].clone()), (json!(1), json!(true), json!([])));
    let (s, devs) = api(
        &hub,
        &k,
        "POST",
        "/policies",
        Some(json!({"name": "devs-on-fs", "description": "developers use fs", "effect": "allow", "roles": ["developer"], "backends": ["fs"]})),
    )
    .await;
    assert_eq!(s, 201, "{devs}");
    assert_eq!(devs["position"], 2);
    let (s, first) =
        api(&hub, &k, "POST", "/policies", Some(json!({"name": "temp", "effect": "allow", "users": ["nobody"], "position": 1}))).await;
    assert_eq!((s, first["position"].clone()), (201, json!(1)));
    let (_, list) = api(&hub, &k, "GET", "/policies", None).await;
    let order = |v: &Value| {
        v["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| (r["name"].as_str().unwrap().to_owned(), r["position"].as_i64().unwrap()))
            .collect::<Vec<_>>()
    };
    assert_eq!(order(&list), [("temp".to_owned(), 1), ("no-deletes".to_owned(), 2), ("devs-on-fs".to_owned(), 3)]);
    let (deny_id, devs_id, temp_id) = (deny["id"].as_str().unwrap(), devs["id"].as_str().unwrap(), first["id"].as_str().unwrap());

    // Validation and conflicts.
    let (s, e) = api(&hub, &k, "POST", "/policies", Some(json!({"name": "bad", "effect": "deny", "tools": ["ok_*", "[oops"]}))).await;
    assert_eq!(s, 400);
    assert!(e["error"]["message"].as_str().unwrap().contains("tools[1]"), "{e}");
    let (s, e) = api(&hub, &k, "POST", "/policies", Some(json!({"name": "bad", "effect": "deny", "backends": ["{a,"]}))).await;
    assert_eq!(s, 400);
    assert!(e["error"]["message"].as_str().unwrap().contains("backends[0]"), "{e}");
    assert_eq!(api(&hub, &k, "POST", "/policies", Some(json!({"name": "bad", "effect": "maybe"}))).await.0, 400);
    assert_eq!(api(&hub, &k, "POST", "/policies", Some(json!({"name": "", "effect": "deny"}))).await.0, 400);
    assert_eq!(api(&hub, &k, "POST", "/policies", Some(json!({"name": "p0", "effect": "deny", "position": 0}))).await.0, 400);
    assert_eq!(api(&hub, &k, "POST", "/policies", Some(json!({"name": "x", "effect": "deny", "risks": ["extreme"]}))).await.0, 400);
    assert_eq!(api(&hub, &k, "POST", "/policies", Some(json!({"name": "no-deletes", "effect": "deny"}))).await.0, 409);
    // Custom role names are fine.
    let (s, custom) =
        api(&hub, &k, "POST", "/policies", Some(json!({"name": "auditors", "effect": "allow", "roles": ["auditor"], "enabled": false})))
            .await;
    assert_eq!(s, 201, "{custom}");
    assert_eq!(api(&hub, &k, "DELETE", &format!("/policies/{}", custom["id"].as_str().unwrap()), None).await.0, 204);

    // GET and PUT one; DELETE.
    let (s, got) = api(&hub, &k, "GET", &format!("/policies/{devs_id}"), None).await;
    assert_eq!((s, got["description"].clone()), (200, json!("developers use fs")));
    let (s, put) = api(
        &hub,
        &k,
        "PUT",
        &format!("/policies/{temp_id}"),
        Some(json!({"name": "temp2", "effect": "deny", "users": ["nobody"], "position": 3})),
    )
    .await;
    assert_eq!(s, 200, "{put}");
    assert_eq!((put["name"].clone(), put["position"].clone(), put["effect"].clone()), (json!("temp2"), json!(3), json!("deny")));
    assert_eq!(api(&hub, &k, "PUT", "/policies/nope", Some(json!({"name": "n", "effect": "deny"}))).await.0, 404);
    assert_eq!(api(&hub, &k, "PUT", &format!("/policies/{temp_id}"), Some(json!({"name": "no-deletes", "effect": "deny"}))).await.0, 409);
    assert_eq!(api(&hub, &k, "DELETE", &format!("/policies/{temp_id}"), None).await.0, 204);
    assert_eq!(api(&hub, &k, "DELETE", &format!("/policies/{temp_id}"), None).await.0, 404);
    assert_eq!(api(&hub, &k, "GET", &format!("/policies/{temp_id}"), None).await.0, 404);
    let (_, list) = api(&hub, &k, "GET", "/policies", None).await;
    assert_eq!(order(&list), [("no-deletes".to_owned(), 1), ("devs-on-fs".to_owned(), 2)]);

    // Simulate.
    let sim = |body: Value| {
        let k = k.clone();
        let hub = &hub;
        async move { api(hub, &k, "POST", "/policies/simulate", Some(body)).await }
    };
    let (s, r) = sim(json!({"username": "dave", "backend": "fs", "tool": "read_file"})).await;
    assert_eq!(s, 200, "{r}");
    assert_eq!((r["allowed"].clone(), r["rule"]["name"].clone(), r["risk"].clone()), (json!(true), json!("devs-on-fs"), json!("low")));
    assert_eq!(r["checks"]["policy"]["rule"]["position"], 2);
    for check in ["backend_visible", "tool_known", "tool_enabled", "key_allows"] {
        assert_eq!(r["checks"][check], true, "{check}: {r}");
    }
    assert_eq!(r["checks"]["tool_held"], false);
    let (_, r) = sim(json!({"username": "dave", "backend": "fs", "tool": "delete_file"})).await;
    assert_eq!((r["allowed"].clone(), r["rule"]["name"].clone(), r["risk"].clone()), (json!(false), json!("no-deletes"), json!("high")));
    // The admin is not in the allow rule, and `no-deletes` covers every backend: default deny.
    let (_, r) = sim(json!({"username": "alice", "backend": "fs", "tool": "read_file"})).await;
    assert_eq!((r["allowed"].clone(), r["rule"].clone()), (json!(false), Value::Null));
    assert!(r["reason"].as_str().unwrap().contains("default"), "{r}");
    let (_, r) = sim(json!({"username": "dave", "backend": "fs", "tool": "format_disk"})).await;
    assert_eq!((r["allowed"].clone(), r["checks"]["tool_known"].clone()), (json!(false), json!(false)));

    // Order matters: the allow rule first lets dave delete.
    let (s, list) = api(&hub, &k, "POST", "/policies/reorder", Some(json!({"ids": [devs_id, deny_id]}))).await;
    assert_eq!(s, 200, "{list}");
    assert_eq!(order(&list), [("devs-on-fs".to_owned(), 1), ("no-deletes".to_owned(), 2)]);
    let (_, r) = sim(json!({"username": "dave", "backend": "fs", "tool": "delete_file"})).await;
    assert_eq!((r["allowed"].clone(), r["rule"]["name"].clone()), (json!(true), json!("devs-on-fs")));
    assert_eq!(api(&hub, &k, "POST", "/policies/reorder", Some(json!({"ids": [devs_id]}))).await.0, 400);
    assert_eq!(api(&hub, &k, "POST", "/policies/reorder", Some(json!({"ids": [devs_id, devs_id, deny_id]}))).await.0, 400);
    assert_eq!(api(&hub, &k, "POST", "/policies/reorder", Some(json!({"ids": [devs_id, "nope"]}))).await.0, 400);

    // Registry state comes before the rules.
    let echo = hub.state.registry.lookup("fs", "echo").unwrap().id;
    hub.state.registry.set_enabled(&echo, false).await.unwrap();
    let (_, r) = sim(json!({"username": "dave", "backend": "fs", "tool": "echo"})).await;
    assert_eq!((r["allowed"].clone(), r["rule"].clone(), r["checks"]["tool_enabled"].clone()), (json!(false), Value::Null, json!(false)));
    assert_eq!(r["checks"]["policy"]["allowed"], true);

    // A key's allowlist narrows what the rules allow.
    let u = hub.state.store.user_by_name("dave").await.unwrap().unwrap();
    hub.state
        .store
        .insert_api_key(NewApiKey {
            user_id: u.id,
            name: "narrow".into(),
            prefix: "gk_narrow".into(),
            key_hash: "narrow-hash".into(),
            surfaces: vec![],
            tools: vec!["fs__delete_*".into()],
            expires_at: None,
        })
        .await
        .unwrap();
    let (_, r) = sim(json!({"username": "dave", "key_id": "narrow", "backend": "fs", "tool": "read_file"})).await;
    assert_eq!(
        (r["allowed"].clone(), r["checks"]["key_allows"].clone(), r["checks"]["policy"]["allowed"].clone()),
        (json!(false), json!(false), json!(true))
    );
    let (_, r) = sim(json!({"username": "dave", "key_id": "narrow", "backend": "fs", "tool": "delete_file"})).await;
    assert_eq!(r["allowed"], true, "{r}");

    // Visibility hides the whole backend from dave, not from the admin.
    let (s, v) = api(&hub, &k, "PUT", "/visibility/fs", Some(json!({"roles": ["auditor"], "users": ["erin"]}))).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!((v["restricted"].clone(), v["roles"].clone()), (json!(true), json!(["auditor"])));
    let (_, r) = sim(json!({"username": "dave", "backend": "fs", "tool": "read_file"})).await;
    assert_eq!((r["allowed"].clone(), r["checks"]["backend_visible"].clone()), (json!(false), json!(false)));
    assert!(hub.state.policy.backend_visible("alice", &Role::Admin, "fs"));
    let (_, all) = api(&hub, &k, "GET", "/visibility", None).await;
    assert_eq!(all["items"].as_array().unwrap().len(), 1);
    assert_eq!(api(&hub, &k, "GET", "/visibility/fs", None).await.1["users"], json!(["erin"]));
    let (s, v) = api(&hub, &k, "DELETE", "/visibility/fs", None).await;
    assert_eq!((s, v["restricted"].clone()), (200, json!(false)));
    assert_eq!(api(&hub, &k, "GET", "/visibility/fs", None).await.1["restricted"], false);
    assert_eq!(api(&hub, &k, "PUT", "/visibility/fs", Some(json!({"roles": ["Bad Role"]}))).await.0, 400);
    assert_eq!(api(&hub, &k, "GET", "/visibility/bad.name", None).await.0, 400);

    // Unknown user or key: 404; bad bodies: 400.
    assert_eq!(sim(json!({"username": "ghost", "backend": "fs", "tool": "x"})).await.0, 404);
    assert_eq!(sim(json!({"username": "dave", "key_id": "ghost", "backend": "fs", "tool": "x"})).await.0, 404);
    assert_eq!(sim(json!({"username": "dave", "backend": "fs"})).await.0, 400);
    assert_eq!(sim(json!({"username": "dave", "backend": "", "tool": "x"})).await.0, 400);

    // The developer may read tools but not policies, and writes nothing.
    assert_eq!(api(&hub, &dev, "GET", "/tools", None).await.0, 200);
    for (method, path, body) in [
        ("PATCH", format!("/tools/{echo}"), Some(json!({"enabled": true}))),
        ("POST", format!("/tools/{echo}/approve"), None),
        ("POST", "/policies".to_owned(), Some(json!({"name": "mine", "effect": "allow"}))),
        ("PUT", format!("/policies/{devs_id}"), Some(json!({"name": "mine", "effect": "allow"}))),
        ("DELETE", format!("/policies/{devs_id}"), None),
        ("POST", "/policies/reorder".to_owned(), Some(json!({"ids": [deny_id, devs_id]}))),
        ("PUT", "/visibility/fs".to_owned(), Some(json!({"roles": ["developer"]}))),
        ("DELETE", "/visibility/fs".to_owned(), None),
        ("GET", "/policies".to_owned(), None),
        ("POST", "/policies/simulate".to_owned(), Some(json!({"username": "dave", "backend": "fs", "tool": "echo"}))),
    ] {
        let (s, e) = api(&hub, &dev, method, &path, body).await;
        assert_eq!(s, 403, "{method} {path}: {e}");
        assert_eq!(e["error"]["code"], "forbidden");
    }
    assert!(!hub.state.registry.lookup("fs", "echo").unwrap().enabled);
    assert_eq!(api(&hub, &k, "GET", "/policies", None).await.1["items"].as_array().unwrap().len(), 2);
    // No key at all: 401.
    assert_eq!(api(&hub, "gk_nope", "GET", "/tools", None).await.0, 401);
}

#[tokio::test]
async fn config_rules_are_seeded_and_enforced() {
    let hub = TestHub::start("[[policy.rules]]\nname = \"no-high\"\neffect = \"deny\"\nrisks = [\"high\"]\nbackends = [\"fs\"]\n").await;
    sync_fs(&hub).await;
    let (_, list) = api(&hub, &hub.key, "GET", "/policies", None).await;
    assert_eq!(list["items"][0]["name"], "no-high");
    let (_, r) =
        api(&hub, &hub.key, "POST", "/policies/simulate", Some(json!({"username": "alice", "backend": "fs", "tool": "delete_file"}))).await;
    assert_eq!((r["allowed"].clone(), r["rule"]["name"].clone()), (json!(false), json!("no-high")));
    // The rule covers only fs: another backend keeps the default allow.
    let d = hub.state.policy.evaluate(&PolicyInput {
        user_id: "u",
        username: "alice",
        role: &Role::Admin,
        key_id: None,
        key_name: None,
        agent: None,
        client_app: None,
        backend: "git",
        tool: "push",
        risk: Risk::High,
    });
    assert!(d.allowed && d.rule.is_none());
}

#[tokio::test]
async fn openapi_documents_the_endpoints() {
    let hub = TestHub::start("").await;
    let doc: Value = reqwest::get(format!("{}/api/v1/openapi.json", hub.base)).await.unwrap().json().await.unwrap();
    for path in [
        "/api/v1/tools",
        "/api/v1/tools/{id}",
        "/api/v1/tools/{id}/approve",
        "/api/v1/policies",
        "/api/v1/policies/{id}",
        "/api/v1/policies/reorder",
        "/api/v1/policies/simulate",
        "/api/v1/visibility",
        "/api/v1/visibility/{backend}",
    ] {
        assert!(doc["paths"][path].is_object(), "{path} missing from the OpenAPI document");
    }
    assert!(doc["paths"]["/api/v1/tools/{id}"]["patch"]["responses"]["403"].is_object());
    assert!(doc["components"]["schemas"]["SimulateResult"].is_object());
}
