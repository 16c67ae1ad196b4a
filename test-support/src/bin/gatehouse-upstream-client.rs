//! `gatehouse-upstream-client URL`: the hub's upstream connector
//! (`gatehouse-upstream`, streamable HTTP) as an MCP client process, so the
//! official conformance suite's client scenarios can test the side of the
//! hub that talks to MCP servers:
//!
//! ```sh
//! conformance client --command "target/debug/gatehouse-upstream-client" --scenario tools_call
//! ```
//!
//! It connects and initializes exactly as the hub does (same client
//! capabilities), lists the server's tools, calls each one with arguments
//! made from its input schema, and answers the server's requests the way a
//! client behind the hub would: elicitation accepted with the schema's
//! defaults, a canned sampling answer, no roots. Exit status 0 when every
//! call got an answer. Logs go to stderr.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Context as _;
use gatehouse_proto::ErrorObject;
use gatehouse_proto::jsonrpc::to_raw;
use gatehouse_proto::mcp::{self, method};
use gatehouse_upstream::{CallOptions, ClientIdentity, TransportSpec, Upstream, UpstreamEvent, UpstreamSpec};
use serde_json::value::RawValue;
use serde_json::{Map, Value, json};
use tokio::sync::mpsc;

/// How long the server may take to come up.
const READY_WAIT: Duration = Duration::from_secs(20);

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt().with_writer(std::io::stderr).with_env_filter(tracing_subscriber::EnvFilter::from_default_env()).init();
    let url = std::env::args().nth(1).context("usage: gatehouse-upstream-client URL")?;
    let spec = UpstreamSpec {
        name: "conformance".into(),
        transport: TransportSpec::Http { url, headers: BTreeMap::new() },
        request_timeout: Duration::from_secs(20),
        connect_timeout: Duration::from_secs(10),
    };
    // What the hub says about itself to its backends.
    let identity = ClientIdentity {
        client_info: json!({ "name": "gatehouse", "title": "Gatehouse", "version": env!("CARGO_PKG_VERSION") }),
        capabilities: json!({ "roots": { "listChanged": true }, "sampling": {}, "elicitation": { "form": {}, "url": {} } }),
        protocol_version: mcp::LATEST_VERSION.to_owned(),
    };
    let (tx, rx) = mpsc::channel(64);
    let up = Upstream::start(spec, identity, tx);
    tokio::spawn(answer_server_requests(rx));
    let outcome = run(&up).await;
    up.shutdown().await;
    outcome
}

async fn run(up: &Upstream) -> anyhow::Result<()> {
    let init = up.wait_ready(READY_WAIT).await.context("connect and initialize")?;
    eprintln!("connected: protocol {}", init.protocol_version);
    if init.capabilities.get("tools").is_none() {
        return Ok(());
    }
    let list = up.request(method::TOOLS_LIST, None, CallOptions::default()).await.context("tools/list")?;
    let list: Value = serde_json::from_str(list.get())?;
    for tool in list["tools"].as_array().into_iter().flatten() {
        let Some(name) = tool["name"].as_str() else { continue };
        let params = json!({ "name": name, "arguments": arguments_for(&tool["inputSchema"]) });
        let result = up.request(method::TOOLS_CALL, Some(to_raw(&params)), CallOptions::default()).await;
        match result {
            Ok(r) => eprintln!("{name}: {}", r.get()),
            Err(e) => anyhow::bail!("{name}: {e}"),
        }
    }
    Ok(())
}

/// Arguments satisfying a tool's input schema: each property's default, or
/// a plain value of its type.
fn arguments_for(schema: &Value) -> Value {
    let mut args = Map::new();
    for (name, prop) in schema["properties"].as_object().into_iter().flatten() {
        args.insert(name.clone(), sample(prop));
    }
    Value::Object(args)
}

fn sample(prop: &Value) -> Value {
    if let Some(d) = prop.get("default") {
        return d.clone();
    }
    if let Some(first) = prop["enum"].as_array().and_then(|e| e.first()) {
        return first.clone();
    }
    match prop["type"].as_str() {
        Some("number" | "integer") => json!(1),
        Some("boolean") => json!(true),
        Some("array") => json!([]),
        Some("object") => json!({}),
        _ => json!("test"),
    }
}

/// Answers what the server asks, the way a client behind the hub would.
async fn answer_server_requests(mut rx: mpsc::Receiver<UpstreamEvent>) {
    while let Some(ev) = rx.recv().await {
        match ev {
            UpstreamEvent::Request { request, reply, .. } => {
                let _ = reply.send(answer(&request.method, request.params.as_deref()));
            }
            UpstreamEvent::Barrier(ack) => {
                let _ = ack.send(());
            }
            UpstreamEvent::Notification { method, .. } => eprintln!("notification: {method}"),
            UpstreamEvent::Health(h) => eprintln!("health: {h:?}"),
        }
    }
}

fn answer(m: &str, params: Option<&RawValue>) -> Result<Box<RawValue>, ErrorObject> {
    let params: Value = params.and_then(|p| serde_json::from_str(p.get()).ok()).unwrap_or(Value::Null);
    match m {
        method::ELICITATION_CREATE => {
            // Accept with every default the requested schema declares (SEP-1034).
            let content: Map<String, Value> = params["requestedSchema"]["properties"]
                .as_object()
                .into_iter()
                .flatten()
                .filter_map(|(k, p)| p.get("default").map(|d| (k.clone(), d.clone())))
                .collect();
            Ok(to_raw(&json!({ "action": "accept", "content": content })))
        }
        method::SAMPLING_CREATE_MESSAGE => Ok(to_raw(&json!({
            "role": "assistant",
            "content": { "type": "text", "text": "This is a test answer." },
            "model": "gatehouse-upstream-client",
            "stopReason": "endTurn"
        }))),
        method::ROOTS_LIST => Ok(to_raw(&json!({ "roots": [] }))),
        other => Err(ErrorObject::method_not_found(other)),
    }
}
