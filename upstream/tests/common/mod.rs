//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::time::Duration;

use gatehouse_upstream::{ClientIdentity, TransportSpec, UpstreamEvent, UpstreamSpec};
use serde_json::value::RawValue;
use tokio::sync::mpsc;

/// A result text with odd spacing, key order and number forms: it must come
/// back byte for byte.
pub const FIXED: &str = r#"{"content":[{"type":"text","text":"hi"}],  "zz": {"b":1,"a":[1.50, 2e3]} , "_meta":{"vendor/x":null}}"#;

pub fn raw(text: &str) -> Box<RawValue> {
    RawValue::from_string(text.to_owned()).unwrap()
}

pub fn identity() -> ClientIdentity {
    ClientIdentity {
        client_info: serde_json::json!({ "name": "gatehouse-test", "version": "0.0.0" }),
        capabilities: serde_json::json!({ "roots": { "listChanged": true }, "sampling": {} }),
        protocol_version: "2025-06-18".into(),
    }
}

pub fn spec(name: &str, transport: TransportSpec) -> UpstreamSpec {
    UpstreamSpec {
        name: name.into(),
        transport,
        request_timeout: Duration::from_secs(10),
        connect_timeout: Duration::from_secs(10),
        protocol: Default::default(),
    }
}

pub fn events() -> (mpsc::Sender<UpstreamEvent>, mpsc::Receiver<UpstreamEvent>) {
    mpsc::channel(256)
}

/// Waits for the first event that `pick` accepts, skipping others.
pub async fn next_event<T>(rx: &mut mpsc::Receiver<UpstreamEvent>, mut pick: impl FnMut(UpstreamEvent) -> Option<T>) -> T {
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let ev = rx.recv().await.expect("event channel closed");
            if let Some(t) = pick(ev) {
                return t;
            }
        }
    })
    .await
    .expect("no matching event within 10 s")
}

/// Polls `f` until it returns Some, for at most 10 s.
pub async fn eventually<T>(mut f: impl FnMut() -> Option<T>) -> T {
    for _ in 0..500 {
        if let Some(t) = f() {
            return t;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("condition not met within 10 s");
}

pub fn json(raw: &RawValue) -> serde_json::Value {
    serde_json::from_str(raw.get()).unwrap()
}

/// A fake stdio MCP server, written in Python.
pub const PY_SERVER: &str = r#"
import json, os, sys

FIXED = os.environ.get("FIXED_RESULT", "{}")
notifications = []
hung = []

def send(text):
    sys.stdout.write(text + "\n")
    sys.stdout.flush()

def reply(id, result_text):
    send('{"jsonrpc":"2.0","id":%s,"result":%s}' % (json.dumps(id), result_text))

def read():
    line = sys.stdin.readline()
    if not line:
        sys.exit(0)
    return line

def wait_answer(want):
    # Reads until the answer to our own request `want`, keeping notifications.
    while True:
        msg = json.loads(read())
        if msg.get("id") == want and "method" not in msg:
            return msg
        if "method" in msg and "id" not in msg:
            notifications.append(msg)

sys.stderr.write("fake server starting\n")
sys.stderr.flush()
send("this line is not JSON and must be skipped")

while True:
    line = read()
    if not line.strip():
        continue
    msg = json.loads(line)
    method = msg.get("method")
    id = msg.get("id")
    if id is None:
        notifications.append(msg)
        continue
    if method == "initialize":
        p = msg["params"]
        reply(id, json.dumps({
            "protocolVersion": p["protocolVersion"],
            "capabilities": {"tools": {"listChanged": True}},
            "serverInfo": {"name": "py-fake", "version": "1.0"},
            "instructions": "be nice",
            "clientSeen": p,
        }))
    elif method == "echo":
        reply(id, '{"fixed":%s,"received":%s}' % (FIXED, json.dumps(line.rstrip("\n"))))
    elif method == "env":
        reply(id, json.dumps({"env": dict(os.environ)}))
    elif method == "crash":
        sys.stderr.write("crashing on purpose\n")
        sys.exit(1)
    elif method == "hang":
        hung.append(id)
    elif method == "log":
        reply(id, json.dumps({"notifications": notifications, "hung": hung}))
    elif method == "roots":
        send('{"jsonrpc":"2.0","id":"srv-1","method":"roots/list","params":{"_meta":{"k":1}}}')
        reply(id, json.dumps({"got": wait_answer("srv-1")}))
    elif method == "ping_me":
        send('{"jsonrpc":"2.0","id":"p-1","method":"ping"}')
        reply(id, json.dumps({"got": wait_answer("p-1")}))
    elif method == "notify_me":
        send('{"jsonrpc":"2.0","method":"notifications/message","params":{"level":"info","data":"hello"}}')
        reply(id, "{}")
    elif method == "big":
        n = msg["params"]["size"]
        reply(id, json.dumps({"blob": "x" * n, "paramLen": len(line)}))
    elif method == "pids":
        reply(id, json.dumps({"pid": os.getpid(), "pgid": os.getpgid(0)}))
    elif method == "fail":
        send('{"jsonrpc":"2.0","id":%s,"error":{"code":-32042,"message":"nope","data":{"why":[1,2]}}}' % json.dumps(id))
    else:
        send('{"jsonrpc":"2.0","id":%s,"error":{"code":-32601,"message":"Method not found"}}' % json.dumps(id))
"#;

/// Writes the Python server into a temp dir and returns (dir, script path).
pub fn py_server() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("server.py");
    std::fs::write(&path, PY_SERVER).unwrap();
    let path = path.to_str().unwrap().to_owned();
    (dir, path)
}

pub fn py_spec(name: &str, script: &str, mut env: BTreeMap<String, String>) -> UpstreamSpec {
    env.insert("FIXED_RESULT".into(), FIXED.into());
    spec(name, TransportSpec::Stdio { command: python().into(), args: vec!["-u".into(), script.into()], env, cwd: None })
}

/// The real interpreter behind `python3` (not a version manager's shim
/// script, which would add its own variables to the child's environment).
pub fn python() -> &'static str {
    static PYTHON: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    PYTHON.get_or_init(|| {
        let out = std::process::Command::new("python3")
            .args(["-c", "import sys; print(sys.executable)"])
            .output()
            .expect("python3 is needed for the stdio tests");
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    })
}

/// Whether `pid` is gone (or a zombie: dead, waiting for its reaper).
pub fn process_gone(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => {
            let rest = &stat[stat.rfind(')').unwrap() + 1..];
            matches!(rest.split_whitespace().next(), Some("Z" | "X"))
        }
    }
}

pub fn init_tracing() {
    let _ = tracing_subscriber::fmt().with_env_filter(tracing_subscriber::EnvFilter::from_default_env()).with_test_writer().try_init();
}
