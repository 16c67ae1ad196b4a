//! The official `openai` and `anthropic` Python SDKs against the hub's AI proxy, with the
//! project's mock provider behind it. The script `peers/ai_sdk_client.py` runs each scenario
//! and reports what the SDK returned as JSON; this file asserts on it and on the audit log.
//!
//! The SDKs come from `scripts/install-peers.sh` (`.peers/venv`); without them the test says
//! loudly that it skipped, or fails when `GATEHOUSE_REQUIRE_PEERS=1`.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use gatehouse_test_support::mock_ai::MockAi;
use gatehouse_test_support::paths::peers_python;
use gateway_server::audit::{EventKind, EventStatus};
use gateway_server::store::AuditFilter;
use serde_json::Value;

use crate::support::TestHub;

const HUB: &str = r#"
[ai]
retry_base_ms = 10
[[ai.providers]]
name = "openai"
kind = "openai"
base_url = "{mock}"
[[ai.providers]]
name = "anthropic"
kind = "anthropic"
base_url = "{mock}"
[[ai.models]]
name = "gpt-4o-mini"
provider = "openai"
[[ai.budgets]]
id = "broke-user"
scope = "user"
subject = "broke"
period = "month"
limit_usd = 0.0
"#;

/// The venv's python when it has both SDKs, else `None` after the skip notice.
async fn python() -> Option<PathBuf> {
    let found = match peers_python() {
        Some(py) => {
            let ok = tokio::process::Command::new(&py)
                .args(["-c", "import openai, anthropic"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .await
                .is_ok_and(|s| s.success());
            ok.then_some(py)
        }
        None => None,
    };
    if found.is_none() {
        assert!(
            std::env::var("GATEHOUSE_REQUIRE_PEERS").as_deref() != Ok("1"),
            "GATEHOUSE_REQUIRE_PEERS=1 but the Python openai/anthropic SDKs are missing: run scripts/install-peers.sh"
        );
        eprintln!("\n*** SKIPPED: ai_peers: the Python openai/anthropic SDKs are not installed; run scripts/install-peers.sh ***\n");
    }
    found
}

async fn key_for(hub: &TestHub, user: &str) -> String {
    use gateway_server::auth::keys;
    let key = keys::generate_api_key();
    let secret = gateway_server::auth::load_secret(&hub.state.config.auth, &hub.state.store).await.unwrap();
    let u = hub.state.store.ensure_user(user, gateway_server::store::Role::Developer).await.unwrap();
    hub.state
        .store
        .insert_api_key(gateway_server::store::NewApiKey {
            user_id: u.id,
            name: "sdk".into(),
            prefix: keys::key_prefix(&key),
            key_hash: keys::hash_key(&secret, &key),
            surfaces: vec!["ai".into()],
            tools: vec![],
            expires_at: None,
        })
        .await
        .unwrap();
    key
}

#[tokio::test]
async fn official_python_sdks_through_the_ai_proxy() {
    let Some(python) = python().await else { return };
    let mock = MockAi::start().await.unwrap();
    let hub = TestHub::start(&HUB.replace("{mock}", &mock.url())).await;
    let broke = key_for(&hub, "broke").await;
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/it/peers/ai_sdk_client.py");
    let home = tempfile::tempdir().unwrap();
    let out = tokio::time::timeout(
        Duration::from_secs(180),
        tokio::process::Command::new(&python)
            .arg(&script)
            .arg(&hub.base)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", home.path())
            .env("LANG", "C.UTF-8")
            .env("GATEHOUSE_KEY", &hub.key)
            .env("GATEHOUSE_BROKE_KEY", &broke)
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("the SDK script finishes")
    .expect("python runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "script failed: {}\n{stdout}", String::from_utf8_lossy(&out.stderr));
    let r: Value = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    let show = |name: &str| format!("{name}: {}", r[name]);

    assert_eq!(r["openai_chat"]["text"], "echo: hello sdk", "{}", show("openai_chat"));
    assert_eq!(r["openai_chat"]["finish"], "stop");
    assert_eq!(r["openai_stream"]["text"], "echo: stream sdk [mock chunk=3]", "{}", show("openai_stream"));
    assert!(r["openai_stream"]["usage"].as_u64().is_some_and(|n| n > 0), "{}", show("openai_stream"));

    let t = &r["openai_sdk_calls_claude_with_tools"];
    assert_eq!(t["finish1"], "tool_calls", "{t}");
    assert_eq!(t["tool"], "lookup");
    assert_eq!(t["arguments"]["query"], "please use tool now");
    assert_eq!(t["text2"], "tool said: 42", "{t}");

    assert_eq!(r["anthropic_sdk_calls_gpt"]["text"], "echo: hi from anthropic", "{}", show("anthropic_sdk_calls_gpt"));
    assert_eq!(r["anthropic_sdk_calls_gpt"]["stop"], "end_turn");
    assert_eq!(r["anthropic_stream_gpt"]["text"], "echo: stream é日本 [mock chunk=2]", "{}", show("anthropic_stream_gpt"));
    assert!(r["anthropic_stream_gpt"]["output_tokens"].as_u64().is_some_and(|n| n > 0));
    let t = &r["anthropic_tools_gpt"];
    assert_eq!(t["stop1"], "tool_use", "{t}");
    assert_eq!(t["input"]["query"], "use tool please");
    assert_eq!(t["text2"], "tool said: sunny", "{t}");

    assert!(r["count_tokens"]["input_tokens"].as_u64().is_some_and(|n| n > 0), "{}", show("count_tokens"));
    for format in ["openai", "anthropic"] {
        let ids = r["models"][format].as_array().unwrap_or_else(|| panic!("{}", show("models")));
        assert!(ids.iter().any(|m| m == "gpt-4o-mini"), "{}", show("models"));
    }
    assert!(r["error_mid_stream"]["raised"].is_string(), "{}", show("error_mid_stream"));
    assert!(r["error_mid_stream"]["message"].as_str().unwrap_or("").contains("mock stream error"), "{}", show("error_mid_stream"));
    assert!(r["openai_error_mid_stream"]["raised"].is_string(), "{}", show("openai_error_mid_stream"));
    assert!(r["disconnect_mid_stream"]["first"].is_string(), "{}", show("disconnect_mid_stream"));
    let b = &r["budget_exhausted"];
    assert_eq!(b["status"], 429, "{b}");
    assert!(b["message"].as_str().unwrap_or("").contains("broke-user"), "{b}");
    assert!(b["retry_after"].as_str().is_some_and(|s| s.parse::<u64>().is_ok()), "{b}");

    // The disconnected stream was charged once, with the provider's final usage.
    let deadline = Instant::now() + Duration::from_secs(15);
    let aborted = loop {
        hub.state.audit.flush().await;
        let filter = AuditFilter { kind: Some(EventKind::Ai), status: Some(EventStatus::ClientAbort), ..AuditFilter::default() };
        let items = hub.state.store.audit_query(&filter, None, 100).await.unwrap().items;
        if !items.is_empty() || Instant::now() > deadline {
            break items;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(aborted.len(), 1, "{aborted:?}");
    assert_eq!((aborted[0].input_tokens, aborted[0].output_tokens), (Some(5), Some(9)));
    let abort_marker = mock.requests().iter().filter(|q| q.body.to_string().contains("abort_marker")).count();
    assert_eq!(abort_marker, 1, "the aborted request went upstream once");
}
