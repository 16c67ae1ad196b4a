//! Stdio transport against a fake Python MCP server.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::*;
use gatehouse_proto::mcp::code;
use gatehouse_upstream::{BASELINE_ENV, CallError, CallOptions, Health, TransportSpec, Upstream, UpstreamEvent};
use tokio_util::sync::CancellationToken;

#[tokio::test]
async fn initialize_and_round_trip_keep_unknown_fields_byte_for_byte() {
    init_tracing();
    let (_dir, script) = py_server();
    let (tx, mut rx) = events();
    let up = Upstream::start(py_spec("py", &script, BTreeMap::new()), identity(), tx);
    assert_eq!(up.name(), "py");

    let init = up.wait_ready(Duration::from_secs(10)).await.unwrap();
    assert_eq!(init.protocol_version, "2025-06-18");
    assert_eq!(init.server_info["name"], "py-fake");
    assert_eq!(init.capabilities["tools"]["listChanged"], true);
    assert_eq!(init.instructions.as_deref(), Some("be nice"));
    // The handshake sent our identity.
    let seen = &json(&init.raw)["clientSeen"];
    assert_eq!(seen["protocolVersion"], "2025-06-18");
    assert_eq!(seen["clientInfo"]["name"], "gatehouse-test");
    assert_eq!(seen["capabilities"]["roots"]["listChanged"], true);
    next_event(&mut rx, |e| matches!(e, UpstreamEvent::Health(Health::Ready)).then_some(())).await;
    let status = up.status();
    assert_eq!((status.health, status.restarts), (Health::Ready, 0));
    assert!(status.init.is_some());

    // Params go out verbatim, the result comes back verbatim.
    let params = r#"{"z": 1,  "a":[true, 1.50], "_meta":{"progressToken":"t"}}"#;
    let result = up.request("echo", Some(raw(params)), CallOptions::default()).await.unwrap();
    assert!(result.get().starts_with(&format!(r#"{{"fixed":{FIXED},"received":"#)), "{}", result.get());
    assert!(received_line(&result).contains(&format!(r#""params":{params}"#)), "{}", received_line(&result));

    // Pretty-printed params still make a single line on the wire.
    let pretty = "{\n  \"k\": \"a b\",\n  \"n\": [1,\n 2]\n}";
    let result = up.request("echo", Some(raw(pretty)), CallOptions::default()).await.unwrap();
    assert!(received_line(&result).contains(r#""params":{"k":"a b","n":[1,2]}"#));

    // The initialized notification reached the server.
    let log = up.request("log", None, CallOptions::default()).await.unwrap();
    let methods: Vec<_> =
        json(&log)["notifications"].as_array().unwrap().iter().map(|n| n["method"].as_str().unwrap().to_owned()).collect();
    assert_eq!(methods, ["notifications/initialized"]);

    // JSON-RPC errors are forwarded untouched.
    match up.request("fail", None, CallOptions::default()).await {
        Err(CallError::Rpc(e)) => {
            assert_eq!((e.code, e.message.as_str()), (-32042, "nope"));
            assert_eq!(e.data, Some(serde_json::json!({"why": [1, 2]})));
        }
        other => panic!("expected an RPC error, got {other:?}"),
    }

    // Notifications go out.
    up.notify("notifications/roots/list_changed", None).await.unwrap();
    let log = eventually_log(&up, |log| log["notifications"].as_array().unwrap().len() == 2).await;
    assert_eq!(log["notifications"][1]["method"], "notifications/roots/list_changed");
    up.shutdown().await;
}

fn received_line(result: &serde_json::value::RawValue) -> String {
    json(result)["received"].as_str().unwrap().to_owned()
}

async fn eventually_log(up: &Upstream, ok: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
    for _ in 0..100 {
        let log = json(&up.request("log", None, CallOptions::default()).await.unwrap());
        if ok(&log) {
            return log;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the server's log never matched");
}

#[tokio::test]
async fn child_sees_a_clean_environment() {
    let (_dir, script) = py_server();
    let (tx, _rx) = events();
    let env = BTreeMap::from([("CONFIGURED_VAR".to_owned(), "configured value".to_owned())]);
    let up = Upstream::start(py_spec("env", &script, env), identity(), tx);
    up.wait_ready(Duration::from_secs(10)).await.unwrap();
    let result = up.request("env", None, CallOptions::default()).await.unwrap();
    let child_env = json(&result)["env"].as_object().unwrap().clone();

    // Variables cargo gives the test process must not leak into the child.
    let leaky: Vec<_> = ["CARGO", "CARGO_PKG_NAME", "CARGO_MANIFEST_DIR", "RUST_TEST_THREADS"]
        .into_iter()
        .filter(|k| std::env::var_os(k).is_some())
        .collect();
    assert!(!leaky.is_empty(), "expected cargo to set CARGO* variables for tests");
    for k in &leaky {
        assert!(!child_env.contains_key(*k), "{k} leaked into the child");
    }
    // Only the baseline plus configured variables (plus what python itself
    // adds: LC_CTYPE by its C-locale coercion).
    for k in child_env.keys() {
        assert!(
            BASELINE_ENV.contains(&k.as_str()) || ["CONFIGURED_VAR", "FIXED_RESULT", "LC_CTYPE"].contains(&k.as_str()),
            "unexpected variable {k} in the child's environment"
        );
    }
    assert_eq!(child_env["CONFIGURED_VAR"], "configured value");
    if let Ok(path) = std::env::var("PATH") {
        assert_eq!(child_env["PATH"], path.as_str());
    }
    up.shutdown().await;
}

#[tokio::test]
async fn cwd_is_honoured() {
    let (dir, script) = py_server();
    let (tx, _rx) = events();
    let spec = spec(
        "cwd",
        TransportSpec::Stdio {
            command: "sh".into(),
            args: vec!["-c".into(), format!("pwd > cwd.txt; exec {} {script}", python())],
            env: BTreeMap::new(),
            cwd: Some(dir.path().to_owned()),
        },
    );
    let up = Upstream::start(spec, identity(), tx);
    up.wait_ready(Duration::from_secs(10)).await.unwrap();
    let cwd = std::fs::read_to_string(dir.path().join("cwd.txt")).unwrap();
    assert_eq!(std::fs::canonicalize(cwd.trim()).unwrap(), std::fs::canonicalize(dir.path()).unwrap());
    up.shutdown().await;
}

#[tokio::test]
async fn crash_mid_call_fails_fast_then_restarts() {
    init_tracing();
    let (_dir, script) = py_server();
    let (tx, mut rx) = events();
    let up = Upstream::start(py_spec("crashy", &script, BTreeMap::new()), identity(), tx);
    up.wait_ready(Duration::from_secs(10)).await.unwrap();
    next_event(&mut rx, |e| matches!(e, UpstreamEvent::Health(Health::Ready)).then_some(())).await;

    // A slow call in flight is failed too, at once.
    let slow = tokio::spawn({
        let up = up.clone();
        async move { up.request("hang", None, CallOptions::default()).await }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = Instant::now();
    let err = up.request("crash", None, CallOptions::default()).await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(2), "took {:?}", started.elapsed());
    match &err {
        CallError::Unavailable(why) => assert_eq!(why, "process exited with status 1"),
        other => panic!("expected Unavailable, got {other:?}"),
    }
    let slow = slow.await.unwrap().unwrap_err();
    assert!(matches!(&slow, CallError::Unavailable(w) if w == "process exited with status 1"), "{slow:?}");

    let unhealthy = next_event(&mut rx, |e| match e {
        UpstreamEvent::Health(Health::Unhealthy { error }) => Some(error),
        _ => None,
    })
    .await;
    assert_eq!(unhealthy, "process exited with status 1");

    // The supervisor restarts the child and later calls work.
    next_event(&mut rx, |e| matches!(e, UpstreamEvent::Health(Health::Ready)).then_some(())).await;
    up.wait_ready(Duration::from_secs(10)).await.unwrap();
    let result = up.request("echo", Some(raw("{}")), CallOptions::default()).await.unwrap();
    assert!(result.get().contains(FIXED));
    let status = up.status();
    assert_eq!(status.restarts, 1);
    assert_eq!(status.health, Health::Ready);
    assert_eq!(status.last_error.as_deref(), Some("process exited with status 1"));
    up.shutdown().await;
}

#[tokio::test]
async fn timeout_sends_cancelled_upstream() {
    let (_dir, script) = py_server();
    let (tx, _rx) = events();
    let up = Upstream::start(py_spec("slow", &script, BTreeMap::new()), identity(), tx);
    up.wait_ready(Duration::from_secs(10)).await.unwrap();
    let started = Instant::now();
    let opts = CallOptions { timeout: Some(Duration::from_millis(300)), ..Default::default() };
    let err = up.request("hang", None, opts).await.unwrap_err();
    assert!(matches!(err, CallError::Timeout(d) if d == Duration::from_millis(300)), "{err:?}");
    assert!(started.elapsed() >= Duration::from_millis(300) && started.elapsed() < Duration::from_secs(3));

    let log =
        eventually_log(&up, |log| log["notifications"].as_array().unwrap().iter().any(|n| n["method"] == "notifications/cancelled")).await;
    let hung = log["hung"][0].clone();
    let cancelled = log["notifications"].as_array().unwrap().iter().find(|n| n["method"] == "notifications/cancelled").unwrap();
    assert_eq!(cancelled["params"]["requestId"], hung);
    assert!(cancelled["params"]["reason"].as_str().unwrap().contains("timed out"));
    // The default timeout is the spec's.
    assert_eq!(up.request_timeout(), Duration::from_secs(10));
    up.shutdown().await;
}

#[tokio::test]
async fn cancellation_token_cancels_upstream() {
    let (_dir, script) = py_server();
    let (tx, _rx) = events();
    let up = Upstream::start(py_spec("cancel", &script, BTreeMap::new()), identity(), tx);
    up.wait_ready(Duration::from_secs(10)).await.unwrap();
    let token = CancellationToken::new();
    let t = token.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(200)).await;
        t.cancel();
    });
    let opts = CallOptions { cancel: Some(token.clone()), context: Some(9), ..Default::default() };
    let err = up.request("hang", None, opts.clone()).await.unwrap_err();
    assert!(matches!(err, CallError::Cancelled), "{err:?}");
    let log =
        eventually_log(&up, |log| log["notifications"].as_array().unwrap().iter().any(|n| n["method"] == "notifications/cancelled")).await;
    let cancelled = log["notifications"].as_array().unwrap().iter().find(|n| n["method"] == "notifications/cancelled").unwrap();
    assert_eq!(cancelled["params"]["requestId"], log["hung"][0]);
    assert_eq!(cancelled["params"]["reason"], "cancelled by the client");
    // An already cancelled token fails at once.
    assert!(matches!(up.request("echo", None, opts).await, Err(CallError::Cancelled)));
    up.shutdown().await;
}

#[tokio::test]
async fn server_requests_surface_as_events_and_replies_reach_the_server() {
    let (_dir, script) = py_server();
    let (tx, mut rx) = events();
    let up = Upstream::start(py_spec("roots", &script, BTreeMap::new()), identity(), tx);
    up.wait_ready(Duration::from_secs(10)).await.unwrap();

    let call = tokio::spawn({
        let up = up.clone();
        async move { up.request("roots", None, CallOptions { context: Some(5), ..Default::default() }).await }
    });
    let (request, context, reply) = next_event(&mut rx, |e| match e {
        UpstreamEvent::Request { request, context, reply } => Some((request, context, reply)),
        _ => None,
    })
    .await;
    assert_eq!(request.method, "roots/list");
    assert_eq!(request.id, gatehouse_proto::RequestId::String("srv-1".into()));
    assert_eq!(request.params.as_ref().unwrap().get(), r#"{"_meta":{"k":1}}"#);
    assert_eq!(context, None, "stdio cannot tell which call a message belongs to");
    reply.send(Ok(raw(r#"{"roots":[{"uri":"file:///tmp","name":"t"}]}"#))).unwrap();
    let result = json(&call.await.unwrap().unwrap());
    assert_eq!(result["got"]["id"], "srv-1");
    assert_eq!(result["got"]["result"]["roots"][0]["uri"], "file:///tmp");

    // A dropped reply answers the server with an error instead of leaving it hanging.
    let call = tokio::spawn({
        let up = up.clone();
        async move { up.request("roots", None, CallOptions::default()).await }
    });
    let reply = next_event(&mut rx, |e| match e {
        UpstreamEvent::Request { reply, .. } => Some(reply),
        _ => None,
    })
    .await;
    drop(reply);
    let result = json(&call.await.unwrap().unwrap());
    assert_eq!(result["got"]["error"]["code"], code::INTERNAL_ERROR);
    assert_eq!(result["got"]["error"]["message"], "no client available");

    // Server pings are answered by the connector and never surface.
    let result = json(&up.request("ping_me", None, CallOptions::default()).await.unwrap());
    assert_eq!(result["got"]["result"], serde_json::json!({}));

    // Server notifications surface as events.
    up.request("notify_me", None, CallOptions::default()).await.unwrap();
    let (method, params) = next_event(&mut rx, |e| match e {
        UpstreamEvent::Notification { method, params, context: None } => Some((method, params)),
        UpstreamEvent::Request { request, .. } => panic!("unexpected request event {}", request.method),
        _ => None,
    })
    .await;
    assert_eq!(method, "notifications/message");
    assert_eq!(params.unwrap().get(), r#"{"level":"info","data":"hello"}"#);
    up.shutdown().await;
}

#[tokio::test]
async fn closed_event_channel_answers_server_requests_with_an_error() {
    let (_dir, script) = py_server();
    let (tx, rx) = events();
    drop(rx);
    let up = Upstream::start(py_spec("noclient", &script, BTreeMap::new()), identity(), tx);
    up.wait_ready(Duration::from_secs(10)).await.unwrap();
    let result = json(&up.request("roots", None, CallOptions::default()).await.unwrap());
    assert_eq!(result["got"]["error"]["code"], code::INTERNAL_ERROR);
    assert_eq!(result["got"]["error"]["message"], "no client available");
    up.shutdown().await;
}

#[tokio::test]
async fn very_long_lines_work_both_ways() {
    let (_dir, script) = py_server();
    let (tx, _rx) = events();
    let up = Upstream::start(py_spec("big", &script, BTreeMap::new()), identity(), tx);
    up.wait_ready(Duration::from_secs(10)).await.unwrap();
    let size = 6 * 1024 * 1024;
    let padding = "y".repeat(3 * 1024 * 1024);
    let params = format!(r#"{{"size":{size},"padding":"{padding}"}}"#);
    let result = up.request("big", Some(raw(&params)), CallOptions::default()).await.unwrap();
    let v = json(&result);
    assert_eq!(v["blob"].as_str().unwrap().len(), size);
    assert!(v["paramLen"].as_u64().unwrap() > 3 * 1024 * 1024);
    up.shutdown().await;
}

#[tokio::test]
async fn a_command_that_cannot_start_is_unhealthy() {
    let (tx, mut rx) = events();
    let spec =
        spec("missing", TransportSpec::Stdio { command: "/nonexistent/mcp-server".into(), args: vec![], env: BTreeMap::new(), cwd: None });
    let up = Upstream::start(spec, identity(), tx);
    let err = up.wait_ready(Duration::from_millis(500)).await.unwrap_err();
    assert!(matches!(&err, CallError::Unavailable(w) if w.contains("failed to start `/nonexistent/mcp-server`")), "{err:?}");
    let error = next_event(&mut rx, |e| match e {
        UpstreamEvent::Health(Health::Unhealthy { error }) => Some(error),
        _ => None,
    })
    .await;
    assert!(error.contains("failed to start"));
    // Calls fail fast while unhealthy rather than queueing.
    let started = Instant::now();
    assert!(matches!(up.request("x", None, CallOptions::default()).await, Err(CallError::Unavailable(_))));
    assert!(started.elapsed() < Duration::from_millis(500));
    up.shutdown().await;
    assert_eq!(up.status().health, Health::Stopped);
}

#[cfg(unix)]
#[tokio::test]
async fn shutdown_kills_the_whole_process_group() {
    let (dir, script) = py_server();
    let (tx, mut rx) = events();
    let pidfile = dir.path().join("grandchild.pid");
    let env = BTreeMap::from([("PIDFILE".to_owned(), pidfile.to_str().unwrap().to_owned())]);
    let mut spec = py_spec("group", &script, env);
    let TransportSpec::Stdio { command, args, .. } = &mut spec.transport else { unreachable!() };
    *command = "sh".into();
    *args = vec!["-c".into(), format!(r#"sleep 1000 & echo $! > "$PIDFILE"; exec {} {script}"#, python())];
    let up = Upstream::start(spec, identity(), tx);
    up.wait_ready(Duration::from_secs(10)).await.unwrap();

    let pids = json(&up.request("pids", None, CallOptions::default()).await.unwrap());
    let pid = i32::try_from(pids["pid"].as_i64().unwrap()).unwrap();
    assert_eq!(pids["pgid"].as_i64(), Some(i64::from(pid)), "the child leads its own process group");
    let grandchild: i32 = eventually(|| std::fs::read_to_string(&pidfile).ok().and_then(|s| s.trim().parse().ok())).await;
    assert!(!process_gone(grandchild));
    assert!(!process_gone(pid));

    let slow = tokio::spawn({
        let up = up.clone();
        async move { up.request("hang", None, CallOptions::default()).await }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    up.shutdown().await;
    assert!(matches!(slow.await.unwrap(), Err(CallError::Unavailable(_))));
    assert!(process_gone(pid), "the child survived shutdown");
    assert!(process_gone(grandchild), "the grandchild survived shutdown");
    assert_eq!(up.status().health, Health::Stopped);
    next_event(&mut rx, |e| matches!(e, UpstreamEvent::Health(Health::Stopped)).then_some(())).await;
    let err = up.request("echo", None, CallOptions::default()).await.unwrap_err();
    assert!(matches!(&err, CallError::Unavailable(w) if w.contains("shut down")), "{err:?}");
    // Shutting down twice is fine.
    up.shutdown().await;
}

#[cfg(unix)]
#[tokio::test]
async fn restart_reaps_grandchildren_of_the_crashed_child() {
    let (dir, script) = py_server();
    let (tx, mut rx) = events();
    let pidfile = dir.path().join("grandchild.pid");
    let env = BTreeMap::from([("PIDFILE".to_owned(), pidfile.to_str().unwrap().to_owned())]);
    let mut spec = py_spec("group2", &script, env);
    let TransportSpec::Stdio { command, args, .. } = &mut spec.transport else { unreachable!() };
    *command = "sh".into();
    // The grandchild holds stdout open: the exit must be noticed anyway.
    *args = vec!["-c".into(), format!(r#"sleep 1000 & echo $! > "$PIDFILE"; exec {} {script}"#, python())];
    let up = Upstream::start(spec, identity(), tx);
    up.wait_ready(Duration::from_secs(10)).await.unwrap();
    let first: i32 = eventually(|| std::fs::read_to_string(&pidfile).ok().and_then(|s| s.trim().parse().ok())).await;
    let started = Instant::now();
    assert!(matches!(up.request("crash", None, CallOptions::default()).await, Err(CallError::Unavailable(_))));
    assert!(started.elapsed() < Duration::from_secs(2));
    next_event(&mut rx, |e| matches!(e, UpstreamEvent::Health(Health::Unhealthy { .. })).then_some(())).await;
    eventually(|| process_gone(first).then_some(())).await;
    up.wait_ready(Duration::from_secs(10)).await.unwrap();
    up.shutdown().await;
}

#[tokio::test]
async fn dropping_every_handle_stops_the_child() {
    let (_dir, script) = py_server();
    let (tx, mut rx) = events();
    let up = Upstream::start(py_spec("dropped", &script, BTreeMap::new()), identity(), tx);
    up.wait_ready(Duration::from_secs(10)).await.unwrap();
    let pid = json(&up.request("pids", None, CallOptions::default()).await.unwrap())["pid"].as_i64().unwrap();
    drop(up);
    next_event(&mut rx, |e| matches!(e, UpstreamEvent::Health(Health::Stopped)).then_some(())).await;
    eventually(|| process_gone(i32::try_from(pid).unwrap()).then_some(())).await;
}

#[tokio::test]
async fn a_server_that_never_answers_initialize_times_out_and_is_retried() {
    let (tx, mut rx) = events();
    let mut spec = spec(
        "mute",
        TransportSpec::Stdio {
            command: "sh".into(),
            args: vec!["-c".into(), "exec cat > /dev/null".into()],
            env: BTreeMap::new(),
            cwd: None,
        },
    );
    spec.connect_timeout = Duration::from_millis(300);
    let up = Upstream::start(spec, identity(), tx);
    let error = next_event(&mut rx, |e| match e {
        UpstreamEvent::Health(Health::Unhealthy { error }) => Some(error),
        _ => None,
    })
    .await;
    assert!(error.contains("did not answer within 300ms") || error.contains("longer than 300 ms"), "{error}");
    eventually(|| (up.status().restarts >= 1).then_some(())).await;
    up.shutdown().await;
    assert_eq!(up.status().health, Health::Stopped);
}

#[cfg(unix)]
#[tokio::test]
async fn a_grandchild_that_ignores_sigterm_is_killed_after_the_grace_period() {
    let (dir, script) = py_server();
    let (tx, _rx) = events();
    let pidfile = dir.path().join("stubborn.pid");
    let env = BTreeMap::from([("PIDFILE".to_owned(), pidfile.to_str().unwrap().to_owned())]);
    let mut spec = py_spec("stubborn", &script, env);
    let TransportSpec::Stdio { command, args, .. } = &mut spec.transport else { unreachable!() };
    *command = "sh".into();
    *args = vec!["-c".into(), format!(r#"(trap '' TERM; exec sleep 1000) & echo $! > "$PIDFILE"; exec {} {script}"#, python())];
    let up = Upstream::start(spec, identity(), tx);
    up.wait_ready(Duration::from_secs(10)).await.unwrap();
    let stubborn: i32 = eventually(|| std::fs::read_to_string(&pidfile).ok().and_then(|s| s.trim().parse().ok())).await;
    assert!(!process_gone(stubborn));
    let started = Instant::now();
    up.shutdown().await;
    assert!(process_gone(stubborn), "SIGKILL should have followed SIGTERM");
    assert!(started.elapsed() < Duration::from_secs(5), "took {:?}", started.elapsed());
}
