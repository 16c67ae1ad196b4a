//! `gatehouse-upstream-client URL`: the hub's upstream connector
//! (`gatehouse-upstream`, streamable HTTP) as an MCP client process, so the
//! official conformance suite's client scenarios can test the side of the
//! hub that talks to MCP servers:
//!
//! ```sh
//! conformance client --command "target/debug/gatehouse-upstream-client" --scenario tools_call
//! ```
//!
//! It connects exactly as the hub does (same client capabilities, same era
//! choice: `server/discover` first, 2026-07-28 when the server offers it,
//! else `initialize`), lists the server's tools, resources and prompts, calls
//! each tool with arguments made from its input schema, reads each resource,
//! gets each prompt, and answers the server's requests (in 2026-07-28 the
//! entries of an `InputRequiredResult`) the way a client behind the hub
//! would: elicitation accepted with the schema's defaults, a canned sampling
//! answer, no roots. Exit status 0 when every call got an answer (a JSON-RPC
//! error counts as one). Logs go to
//! stderr.
//!
//! The suite names the scenario in `MCP_CONFORMANCE_SCENARIO` and may pass
//! `MCP_CONFORMANCE_CONTEXT` (JSON). When the context lists `toolCalls`
//! (name and arguments), those calls are made instead of the generated ones.
//! `json-schema-2020-12-preservation` asks the client to echo one tool's
//! input schema, as received, to the scenario's `json_schema_echo` tool.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Context as _;
use gatehouse_proto::ErrorObject;
use gatehouse_proto::jsonrpc::to_raw;
use gatehouse_proto::mcp::{self, method};
use gatehouse_upstream::{
    CallError, CallOptions, ClientIdentity, ProtocolPreference, TransportSpec, Upstream, UpstreamEvent, UpstreamSpec,
};
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
        protocol: ProtocolPreference::Auto,
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

/// The scenario that asks for the input schema echo.
const SCHEMA_ECHO_SCENARIO: &str = "json-schema-2020-12-preservation";
/// Its echo tool.
const SCHEMA_ECHO_TOOL: &str = "json_schema_echo";

async fn run(up: &Upstream) -> anyhow::Result<()> {
    let init = up.wait_ready(READY_WAIT).await.context("connect and initialize")?;
    eprintln!("connected: protocol {}", init.protocol_version);
    let scenario = std::env::var("MCP_CONFORMANCE_SCENARIO").unwrap_or_default();
    let context: Value = std::env::var("MCP_CONFORMANCE_CONTEXT").ok().and_then(|c| serde_json::from_str(&c).ok()).unwrap_or(Value::Null);
    let mut failed = Vec::new();
    let mut call = async |m: &str, params: Value| match up.request(m, Some(to_raw(&params)), CallOptions::default()).await {
        Ok(r) => {
            eprintln!("{m} {}: {}", params["name"].as_str().or(params["uri"].as_str()).unwrap_or(""), r.get());
            Some(r)
        }
        // A JSON-RPC error is an answer too.
        Err(CallError::Rpc(e)) => {
            eprintln!("{m} {params}: {e}");
            None
        }
        Err(e) => {
            eprintln!("{m} {params}: {e}");
            failed.push(format!("{m}: {e}"));
            None
        }
    };
    let caps = &init.capabilities;
    if caps.get("tools").is_some()
        && let Some(list) = call(method::TOOLS_LIST, json!({})).await
    {
        let list: Value = serde_json::from_str(list.get())?;
        let tools = list["tools"].as_array().cloned().unwrap_or_default();
        let calls: Vec<Value> = match context["toolCalls"].as_array() {
            Some(given) => given.clone(),
            None => tools
                .iter()
                .filter_map(|t| {
                    let name = t["name"].as_str()?;
                    let arguments = if scenario == SCHEMA_ECHO_SCENARIO && name == SCHEMA_ECHO_TOOL {
                        let other = tools.iter().find(|o| o["name"] != SCHEMA_ECHO_TOOL)?;
                        json!({ "schema": other["inputSchema"] })
                    } else {
                        arguments_for(&t["inputSchema"])
                    };
                    Some(json!({ "name": name, "arguments": arguments }))
                })
                .collect(),
        };
        for params in calls {
            call(method::TOOLS_CALL, params).await;
        }
    }
    if caps.get("resources").is_some()
        && let Some(list) = call(method::RESOURCES_LIST, json!({})).await
    {
        let list: Value = serde_json::from_str(list.get())?;
        for uri in list["resources"].as_array().into_iter().flatten().filter_map(|r| r["uri"].as_str()) {
            call(method::RESOURCES_READ, json!({ "uri": uri })).await;
        }
    }
    if caps.get("prompts").is_some()
        && let Some(list) = call(method::PROMPTS_LIST, json!({})).await
    {
        let list: Value = serde_json::from_str(list.get())?;
        for prompt in list["prompts"].as_array().into_iter().flatten() {
            let Some(name) = prompt["name"].as_str() else { continue };
            let arguments: Map<String, Value> = prompt["arguments"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|a| Some((a["name"].as_str()?.to_owned(), json!("test"))))
                .collect();
            call(method::PROMPTS_GET, json!({ "name": name, "arguments": arguments })).await;
        }
    }
    if !failed.is_empty() {
        anyhow::bail!("{} call(s) failed: {}", failed.len(), failed.join("; "));
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
