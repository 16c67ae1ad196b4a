//! Rate limits through the admin API and the limiter, `/metrics`, and the
//! readiness probe's backend summary.

use std::time::{Duration, Instant};

use gateway_server::limits::LimitInput;
use serde_json::{Value, json};

use crate::support::TestHub;

const CONFIG_RULE: &str = "[[limits.rules]]\nid = \"per-user\"\nscope = \"user\"\nwindow = \"minute\"\nmax_requests = 2\n";

fn api(hub: &TestHub, path: &str) -> String {
    format!("{}/api/v1{path}", hub.base)
}

/// Sends `method path` with the hub's admin key; returns status and JSON.
async fn send(hub: &TestHub, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
    crate::backends_api::call(hub, &hub.key, method, path, body).await
}

fn user<'a>(name: &'a str, key: Option<&'a str>, tool: Option<&'a str>) -> LimitInput<'a> {
    LimitInput { user_id: name, username: name, key_id: key, backend: tool.and_then(|t| t.split("__").next()), tool, ai: false }
}

#[tokio::test]
async fn per_user_rule_refuses_the_third_call_and_recovers_after_the_window() {
    let hub = TestHub::start(CONFIG_RULE).await;
    let limits = &hub.state.limits;
    let t0 = Instant::now();
    limits.check_at(&user("alice", Some("k1"), None), t0).unwrap();
    limits.check_at(&user("alice", Some("k2"), None), t0 + Duration::from_secs(5)).unwrap();
    let refusal = limits.check_at(&user("alice", Some("k1"), None), t0 + Duration::from_secs(10)).unwrap_err();
    assert_eq!(refusal.rule_id, "per-user");
    assert!(refusal.message().contains("2 requests per minute per user (rule per-user)"), "{}", refusal.message());
    assert_eq!(refusal.to_error_object().code, -32013);
    // Refused calls do not count: after the window two more go through, then the third is refused.
    for _ in 0..5 {
        assert!(limits.check_at(&user("alice", None, None), t0 + Duration::from_secs(20)).is_err());
    }
    let later = t0 + Duration::from_secs(66);
    limits.check_at(&user("alice", None, None), later).unwrap();
    limits.check_at(&user("alice", None, None), later).unwrap();
    assert!(limits.check_at(&user("alice", None, None), later).is_err());
    // Every refusal was counted in the metrics.
    let text = reqwest::get(format!("{}/metrics", hub.base)).await.unwrap().text().await.unwrap();
    assert!(text.contains("gatehouse_rate_limited_total{scope=\"user\"} 7"), "{text}");
}

#[tokio::test]
async fn rules_through_the_api() {
    let hub = TestHub::start(CONFIG_RULE).await;
    let (status, list) = send(&hub, reqwest::Method::GET, "/limits", None).await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["source"], "config");
    assert_eq!(list[0]["id"], "per-user");

    // Bad rules: 400 with the error shape.
    for bad in [
        json!({ "scope": "user", "window": "minute", "max_requests": 0 }),
        json!({ "scope": "team", "window": "minute", "max_requests": 1 }),
        json!({ "scope": "user", "window": "week", "max_requests": 1 }),
        json!({ "scope": "tool", "match": "a[", "window": "minute", "max_requests": 1 }),
        json!({ "scope": "user", "window": "minute", "max_requests": 1, "extra": true }),
        json!({ "scope": "user", "window": "minute" }),
        json!("not an object"),
    ] {
        let (status, body) = send(&hub, reqwest::Method::POST, "/limits", Some(bad.clone())).await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert_eq!(body["error"]["code"], "bad_request", "{body}");
    }

    // A per-tool glob rule and a per-key rule added at runtime apply at once.
    let (status, glob) = send(
        &hub,
        reqwest::Method::POST,
        "/limits",
        Some(json!({ "scope": "tool", "match": "fs__*", "window": "hour", "max_requests": 1 })),
    )
    .await;
    assert_eq!(status, 201, "{glob}");
    assert_eq!(glob["source"], "runtime");
    let glob_id = glob["id"].as_str().unwrap().to_owned();
    let (status, per_key) =
        send(&hub, reqwest::Method::POST, "/limits", Some(json!({ "scope": "key", "window": "day", "max_requests": 1 }))).await;
    assert_eq!(status, 201, "{per_key}");

    let limits = &hub.state.limits;
    let t0 = Instant::now();
    limits.check_at(&user("bob", None, Some("fs__read")), t0).unwrap();
    let r = limits.check_at(&user("carol", None, Some("fs__write")), t0).unwrap_err();
    assert_eq!((r.rule_id.as_str(), r.subject.as_str(), r.scope.as_str()), (glob_id.as_str(), "fs__*", "tool"));
    limits.check_at(&user("bob", None, Some("git__log")), t0).unwrap();
    // Per key: each key on its own, whoever the user.
    limits.check_at(&user("dave", Some("key-1"), None), t0).unwrap();
    assert_eq!(limits.check_at(&user("erin", Some("key-1"), None), t0).unwrap_err().scope, "key");
    limits.check_at(&user("erin", Some("key-2"), None), t0).unwrap();

    let (status, st) = send(&hub, reqwest::Method::GET, "/limits/status?user=bob&tool=fs__x", None).await;
    assert_eq!(status, 200, "{st}");
    let rows = st.as_array().unwrap();
    let find = |id: &str| rows.iter().find(|r| r["rule_id"] == id).cloned().unwrap_or_else(|| panic!("{id} in {st}"));
    assert_eq!(find("per-user")["count"], 2);
    assert_eq!(find(&glob_id)["count"], 1);
    assert_eq!(find(&glob_id)["remaining"], 0);
    let (status, _) = send(&hub, reqwest::Method::GET, "/limits/status?nonsense=1", None).await;
    assert_eq!(status, 400);

    // Config rules are read-only; runtime ones can be replaced and deleted.
    let rule = json!({ "scope": "user", "window": "minute", "max_requests": 5 });
    let (status, body) = send(&hub, reqwest::Method::PUT, "/limits/per-user", Some(rule.clone())).await;
    assert_eq!(status, 409, "{body}");
    let (status, _) = send(&hub, reqwest::Method::DELETE, "/limits/per-user", None).await;
    assert_eq!(status, 409);
    let (status, body) = send(
        &hub,
        reqwest::Method::PUT,
        &format!("/limits/{glob_id}"),
        Some(json!({ "scope": "tool", "match": "fs__*", "window": "hour", "max_requests": 3 })),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["max_requests"], 3);
    limits.check_at(&user("carol", None, Some("fs__write")), t0).unwrap();
    let (status, _) = send(&hub, reqwest::Method::DELETE, &format!("/limits/{glob_id}"), None).await;
    assert_eq!(status, 204);
    let (status, _) = send(&hub, reqwest::Method::DELETE, &format!("/limits/{glob_id}"), None).await;
    assert_eq!(status, 404);
    let (status, _) = send(&hub, reqwest::Method::PUT, "/limits/no-such-rule", Some(rule)).await;
    assert_eq!(status, 404);
    let (_, list) = send(&hub, reqwest::Method::GET, "/limits", None).await;
    assert_eq!(list.as_array().unwrap().len(), 2, "{list}");

    // The rules survive a restart of the hub on the same database.
    let again = gateway_server::server::AppState::build((*hub.state.config).clone()).await.unwrap();
    assert_eq!(again.limits.list().len(), 2);
    again.hub.shutdown().await;
}

#[tokio::test]
async fn limits_need_permissions() {
    let hub = TestHub::start("").await;
    let viewer = crate::backends_api::key_with_role(&hub.state, "vera", gateway_server::store::Role::Viewer).await;
    let client = reqwest::Client::new();
    let r = client.get(api(&hub, "/limits")).bearer_auth(&viewer).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let r = client
        .post(api(&hub, "/limits"))
        .bearer_auth(&viewer)
        .json(&json!({ "scope": "user", "window": "minute", "max_requests": 1 }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let r = client.get(api(&hub, "/limits")).send().await.unwrap();
    assert_eq!(r.status(), 401);
}

/// Every sample line of a text exposition: `name{labels} value`.
fn parse_samples(text: &str) -> Vec<(String, f64)> {
    text.lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (series, value) = l.rsplit_once(' ').unwrap_or_else(|| panic!("no value: {l:?}"));
            let name = series.split('{').next().unwrap();
            assert!(!name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b':'), "bad name in {l:?}");
            if let Some(labels) = series.strip_prefix(name) {
                assert!(labels.is_empty() || (labels.starts_with('{') && labels.ends_with('}')), "bad labels in {l:?}");
            }
            let value: f64 = value.parse().unwrap_or_else(|_| panic!("bad value in {l:?}"));
            (series.to_owned(), value)
        })
        .collect()
}

#[tokio::test]
async fn metrics_text_parses_and_has_every_family() {
    let hub = TestHub::start(&format!(
        "[[backends]]\nname = \"fixture\"\ntransport = \"stdio\"\ncommand = \"{}\"\n",
        gatehouse_test_support::fixture_bin().display()
    ))
    .await;
    hub.wait_backend("fixture").await;
    let m = &hub.state.metrics;
    m.observe_request("mcp", "tools/call", "ok", Duration::from_millis(12));
    m.error("mcp", "upstream_timeout");
    m.policy_decision(true);
    m.set_audit(3, 1);
    hub.state.agents.set_online("laptop", true);
    let mut c = hub.client("/mcp");
    c.initialize().await;

    let resp = reqwest::get(format!("{}/metrics", hub.base)).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["content-type"].to_str().unwrap().starts_with("text/plain; version=0.0.4"));
    let text = resp.text().await.unwrap();
    let samples = parse_samples(&text);
    let value = |series: &str| samples.iter().find(|(s, _)| s == series).map(|(_, v)| *v).unwrap_or_else(|| panic!("{series} in\n{text}"));
    for family in [
        "gatehouse_requests_total",
        "gatehouse_request_duration_seconds",
        "gatehouse_errors_total",
        "gatehouse_policy_decisions_total",
        "gatehouse_rate_limited_total",
        "gatehouse_audit_queue_depth",
        "gatehouse_audit_dropped_total",
        "gatehouse_backend_up",
        "gatehouse_backend_restarts_total",
        "gatehouse_backend_tools",
        "gatehouse_agents_connected",
        "gatehouse_sessions_active",
        "gatehouse_build_info",
    ] {
        assert!(text.contains(&format!("# TYPE {family} ")), "{family} missing in\n{text}");
    }
    assert_eq!(value("gatehouse_backend_up{backend=\"fixture\"}"), 1.0);
    assert!(value("gatehouse_backend_tools{backend=\"fixture\"}") >= 1.0);
    assert_eq!(value("gatehouse_agents_connected"), 1.0);
    assert_eq!(value("gatehouse_sessions_active"), 1.0);
    assert_eq!(value("gatehouse_audit_dropped_total"), 1.0);
    assert_eq!(value(&format!("gatehouse_build_info{{version=\"{}\"}}", env!("CARGO_PKG_VERSION"))), 1.0);
    assert_eq!(value("gatehouse_request_duration_seconds_count{method=\"tools/call\",surface=\"mcp\"}"), 1.0);
    // A backend removed at runtime disappears from the gauges.
    hub.state.hub.remove_backend("fixture").await;
    let text = reqwest::get(format!("{}/metrics", hub.base)).await.unwrap().text().await.unwrap();
    assert!(!text.contains("backend=\"fixture\""), "{text}");

    // Readiness: 200 with a summary of the backends.
    let ready: Value = reqwest::get(format!("{}/health/ready", hub.base)).await.unwrap().json().await.unwrap();
    assert_eq!(ready["backendsSummary"], json!({ "total": 0, "ready": 0, "down": 0 }));
}

#[tokio::test]
async fn ready_summarises_backends_and_fails_without_the_store() {
    let hub = TestHub::start(&format!(
        "[[backends]]\nname = \"fixture\"\ntransport = \"stdio\"\ncommand = \"{}\"\n\
         [[backends]]\nname = \"broken\"\ntransport = \"stdio\"\ncommand = \"/nonexistent/gatehouse-no-such-binary\"\n",
        gatehouse_test_support::fixture_bin().display()
    ))
    .await;
    hub.wait_backend("fixture").await;
    let ready: Value = reqwest::get(format!("{}/health/ready", hub.base)).await.unwrap().json().await.unwrap();
    assert_eq!(ready["backendsSummary"]["total"], 2, "{ready}");
    assert_eq!(ready["backendsSummary"]["ready"], 1, "{ready}");
    assert_eq!(ready["backends"]["fixture"]["health"], "ready", "{ready}");
    hub.state.store.close().await;
    let resp = reqwest::get(format!("{}/health/ready", hub.base)).await.unwrap();
    assert_eq!(resp.status(), 503);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["store"], false);
}

#[tokio::test]
async fn metrics_bearer_protection() {
    let hub = TestHub::start("[metrics]\nbearer_token = \"scrape-me\"\n").await;
    let url = format!("{}/metrics", hub.base);
    let client = reqwest::Client::new();
    for auth in [None, Some("Bearer wrong"), Some("Bearer scrape-m"), Some("Basic scrape-me")] {
        let mut req = client.get(&url);
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), 401, "{auth:?}");
        assert!(resp.headers().contains_key("www-authenticate"));
        assert!(!resp.text().await.unwrap().contains("gatehouse_"));
    }
    let resp = client.get(&url).bearer_auth("scrape-me").send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.text().await.unwrap().contains("gatehouse_build_info"));

    let off = TestHub::start("[metrics]\nenabled = false\n").await;
    assert_eq!(reqwest::get(format!("{}/metrics", off.base)).await.unwrap().status(), 404);
}
