//! A mock AI provider: OpenAI Chat and Responses, Anthropic Messages (with `count_tokens`),
//! Gemini `generateContent`, Azure OpenAI deployments and Bedrock `InvokeModel`, whole and
//! streamed, with deterministic answers.
//!
//! The wire formats are written by hand here, not with the hub's translation crate, so a
//! translation bug cannot hide behind the same bug in the mock.
//!
//! # Answers
//!
//! The answer to a request is `echo: <last user text>`. When the request offers tools and the
//! last user text contains `use tool`, the answer is a call of the first tool with arguments
//! `{"query": "<last user text>"}` instead. The text after a tool result is
//! `tool said: <result text>`.
//!
//! # Knobs
//!
//! Each knob can come from the instance defaults ([`MockAi::set_knobs`]), from request headers
//! (`x-mock-<name>: value`), from the query string (`?<name>=value`), or from the last user
//! text (`[mock <name>=value <name>=value]`), later sources winning:
//!
//! | knob | effect |
//! |---|---|
//! | `latency_ms` | wait before answering |
//! | `status` | answer with this HTTP error status and the format's error body |
//! | `fail_first` | only the first N requests to this instance get `status` |
//! | `retry_after` | `Retry-After` header (seconds) on error answers |
//! | `error_after` | streams: after N events send the format's error event and stop |
//! | `abort_after` | streams: after N events close the connection without a proper end |
//! | `event_delay_ms` | streams: wait between events |
//! | `chunk` | streams: split the body into slices of 1–N bytes (deterministic pattern) |
//! | `input_tokens`, `output_tokens`, `cache_read`, `cache_write` | usage figures to report |
//!
//! Every request is recorded ([`MockAi::requests`]) so tests can assert what the hub sent.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use parking_lot::Mutex;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// One request the mock received.
#[derive(Clone, Debug)]
pub struct RecordedRequest {
    /// Path and query.
    pub path: String,
    /// Headers, names lowercase.
    pub headers: BTreeMap<String, String>,
    /// The JSON body (`null` when it was not JSON).
    pub body: Value,
}

#[derive(Default)]
struct Shared {
    knobs: Mutex<BTreeMap<String, String>>,
    requests: Mutex<Vec<RecordedRequest>>,
    count: AtomicU64,
    no_record: bool,
}

/// A running mock provider; dropping it stops the server.
pub struct MockAi {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: CancellationToken,
}

impl Drop for MockAi {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl MockAi {
    /// Starts a mock on `127.0.0.1:0`.
    pub async fn start() -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        Self::serve(listener)
    }

    /// Serves on `listener` until dropped.
    pub fn serve(listener: TcpListener) -> std::io::Result<Self> {
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared::default());
        let stop = CancellationToken::new();
        let app = router(shared.clone());
        let token = stop.clone();
        tokio::spawn(crate::serve_nodelay(listener, app, token));
        Ok(Self { addr, shared, stop })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Sets default knobs for every later request, replacing earlier defaults.
    pub fn set_knobs(&self, knobs: &[(&str, &str)]) {
        *self.shared.knobs.lock() = knobs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
    }

    /// Every request received so far.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.requests.lock().clone()
    }

    /// How many requests were received.
    pub fn count(&self) -> u64 {
        self.shared.count.load(Ordering::SeqCst)
    }
}

/// The mock's router for the `gatehouse-mock-ai` binary and benchmarks: requests are counted
/// but not recorded, so a long run does not grow memory.
pub fn bench_router() -> Router {
    router(Arc::new(Shared { no_record: true, ..Shared::default() }))
}

fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/v1/chat/completions", post(|s, h, q, b| handle(s, h, q, b, Wire::Chat)))
        .route("/openai/deployments/{deployment}/chat/completions", post(azure))
        .route("/v1/responses", post(|s, h, q, b| handle(s, h, q, b, Wire::Responses)))
        .route("/v1/messages", post(|s, h, q, b| handle(s, h, q, b, Wire::Anthropic)))
        .route("/v1/messages/count_tokens", post(count_tokens))
        .route("/v1beta/models/{action}", post(gemini))
        .route("/model/{model}/{action}", post(bedrock))
        .with_state(shared)
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Wire {
    Chat,
    Responses,
    Anthropic,
    Gemini,
    Bedrock,
}

type Req = (State<Arc<Shared>>, HeaderMap, RawQuery, Bytes);

async fn azure(st: State<Arc<Shared>>, Path(_d): Path<String>, h: HeaderMap, q: RawQuery, b: Bytes) -> Response {
    handle(st, h, q, b, Wire::Chat).await
}

async fn gemini(st: State<Arc<Shared>>, Path(action): Path<String>, h: HeaderMap, q: RawQuery, b: Bytes) -> Response {
    let stream = action.ends_with(":streamGenerateContent");
    let model = action.split(':').next().unwrap_or("").to_owned();
    handle_inner((st, h, q, b), Wire::Gemini, Some((model, stream))).await
}

async fn bedrock(st: State<Arc<Shared>>, Path((model, action)): Path<(String, String)>, h: HeaderMap, q: RawQuery, b: Bytes) -> Response {
    let stream = action == "invoke-with-response-stream";
    handle_inner((st, h, q, b), Wire::Bedrock, Some((model, stream))).await
}

async fn handle(st: State<Arc<Shared>>, h: HeaderMap, q: RawQuery, b: Bytes, wire: Wire) -> Response {
    handle_inner((st, h, q, b), wire, None).await
}

async fn count_tokens(State(st): State<Arc<Shared>>, headers: HeaderMap, RawQuery(q): RawQuery, body: Bytes) -> Response {
    let value: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    record(&st, "/v1/messages/count_tokens", q.as_deref(), &headers, &value);
    let chars = value.get("messages").map_or(0, |m| m.to_string().len()) + value.get("system").map_or(0, |s| s.to_string().len());
    json_response(StatusCode::OK, &json!({"input_tokens": chars / 4 + 1}))
}

fn record(st: &Shared, path: &str, query: Option<&str>, headers: &HeaderMap, body: &Value) {
    st.count.fetch_add(1, Ordering::SeqCst);
    if st.no_record {
        return;
    }
    let headers = headers.iter().map(|(k, v)| (k.as_str().to_owned(), String::from_utf8_lossy(v.as_bytes()).into_owned())).collect();
    let path = match query {
        Some(q) => format!("{path}?{q}"),
        None => path.to_owned(),
    };
    st.requests.lock().push(RecordedRequest { path, headers, body: body.clone() });
}

/// Knobs in effect: defaults, then headers, then query, then `[mock k=v]` in the text.
fn knobs(st: &Shared, headers: &HeaderMap, query: Option<&str>, text: &str) -> BTreeMap<String, String> {
    let mut k = st.knobs.lock().clone();
    for (name, value) in headers {
        if let Some(n) = name.as_str().strip_prefix("x-mock-")
            && let Ok(v) = value.to_str()
        {
            k.insert(n.replace('-', "_"), v.to_owned());
        }
    }
    for pair in query.unwrap_or("").split('&') {
        if let Some((n, v)) = pair.split_once('=')
            && n != "alt"
            && n != "api-version"
        {
            k.insert(n.to_owned(), v.to_owned());
        }
    }
    if let Some(start) = text.find("[mock ")
        && let Some(end) = text[start..].find(']')
    {
        for pair in text[start + 6..start + end].split_whitespace() {
            if let Some((n, v)) = pair.split_once('=') {
                k.insert(n.to_owned(), v.to_owned());
            }
        }
    }
    k
}

fn num(k: &BTreeMap<String, String>, name: &str) -> Option<u64> {
    k.get(name).and_then(|v| v.parse().ok())
}

/// What the request asked, read loosely from any of the formats.
struct Ask {
    model: String,
    stream: bool,
    include_usage: bool,
    last_user: String,
    tool_result: Option<String>,
    first_tool: Option<String>,
    all_text_len: usize,
}

fn text_of(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Array(items) => items.iter().map(text_of).collect::<Vec<_>>().join(""),
        Value::Object(m) => {
            if let Some(t) = m.get("text").and_then(Value::as_str) {
                t.to_owned()
            } else if m.get("type").and_then(Value::as_str) == Some("tool_result") {
                String::new()
            } else {
                m.get("content").map(text_of).unwrap_or_default()
            }
        }
        _ => String::new(),
    }
}

fn ask(wire: Wire, body: &Value) -> Ask {
    let mut last_user = String::new();
    let mut tool_result = None;
    let first_tool;
    match wire {
        Wire::Chat => {
            if let Some(msgs) = body["messages"].as_array()
                && let Some(last) = msgs.last()
            {
                if last["role"] == "tool" {
                    tool_result = Some(text_of(&last["content"]));
                } else {
                    last_user = text_of(&last["content"]);
                }
            }
            first_tool = body["tools"][0]["function"]["name"].as_str().map(str::to_owned);
        }
        Wire::Responses => {
            match &body["input"] {
                Value::String(s) => last_user = s.clone(),
                Value::Array(items) => {
                    if let Some(last) = items.last() {
                        if last["type"] == "function_call_output" {
                            tool_result = Some(text_of(&last["output"]));
                        } else {
                            last_user = text_of(&last["content"]);
                        }
                    }
                }
                _ => {}
            }
            first_tool = body["tools"][0]["name"].as_str().map(str::to_owned);
        }
        Wire::Anthropic | Wire::Bedrock => {
            if let Some(last) = body["messages"].as_array().and_then(|m| m.last()) {
                let blocks = last["content"].as_array().cloned().unwrap_or_default();
                if let Some(r) = blocks.iter().find(|b| b["type"] == "tool_result") {
                    tool_result = Some(text_of(&r["content"]));
                } else {
                    last_user = text_of(&last["content"]);
                }
            }
            first_tool = body["tools"][0]["name"].as_str().map(str::to_owned);
        }
        Wire::Gemini => {
            if let Some(last) = body["contents"].as_array().and_then(|m| m.last()) {
                let parts = last["parts"].as_array().cloned().unwrap_or_default();
                if let Some(r) = parts.iter().find(|p| p.get("functionResponse").is_some()) {
                    tool_result = Some(r["functionResponse"]["response"].to_string());
                } else {
                    last_user = parts.iter().filter_map(|p| p["text"].as_str()).collect();
                }
            }
            first_tool = body["tools"][0]["functionDeclarations"][0]["name"].as_str().map(str::to_owned);
        }
    }
    Ask {
        model: body["model"].as_str().unwrap_or("").to_owned(),
        stream: body["stream"].as_bool().unwrap_or(false),
        include_usage: body["stream_options"]["include_usage"].as_bool().unwrap_or(false),
        last_user,
        tool_result,
        first_tool,
        all_text_len: body.to_string().len(),
    }
}

/// The answer: either text or one tool call.
enum Answer {
    Text(String),
    Tool { id: String, name: String, args: String },
}

struct Figures {
    input: u64,
    output: u64,
    cache_read: u64,
    cache_write: u64,
}

async fn handle_inner((State(st), headers, RawQuery(query), body): Req, wire: Wire, url_model: Option<(String, bool)>) -> Response {
    let value: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let path = match wire {
        Wire::Chat => "/v1/chat/completions",
        Wire::Responses => "/v1/responses",
        Wire::Anthropic => "/v1/messages",
        Wire::Gemini => "/v1beta/models",
        Wire::Bedrock => "/model",
    };
    let n = st.count.load(Ordering::SeqCst);
    record(&st, path, query.as_deref(), &headers, &value);
    if value.is_null() {
        return error_response(wire, 400, "body is not JSON", None);
    }
    let mut a = ask(wire, &value);
    if let Some((model, stream)) = url_model {
        a.model = model;
        a.stream = stream;
    }
    let k = knobs(&st, &headers, query.as_deref(), &a.last_user);
    if let Some(ms) = num(&k, "latency_ms") {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    if let Some(status) = num(&k, "status") {
        let applies = num(&k, "fail_first").is_none_or(|first| n < first);
        if applies {
            return error_response(wire, u16::try_from(status).unwrap_or(500), "mock error", k.get("retry_after").map(String::as_str));
        }
    }
    let answer = match (&a.tool_result, &a.first_tool) {
        (Some(result), _) => Answer::Text(format!("tool said: {result}")),
        (None, Some(tool)) if a.last_user.contains("use tool") => {
            Answer::Tool { id: "call_mock_1".into(), name: tool.clone(), args: json!({"query": a.last_user}).to_string() }
        }
        _ => Answer::Text(format!("echo: {}", a.last_user)),
    };
    let out_len = match &answer {
        Answer::Text(t) => t.len(),
        Answer::Tool { args, .. } => args.len(),
    };
    let figures = Figures {
        input: num(&k, "input_tokens").unwrap_or((a.all_text_len / 4 + 1) as u64),
        output: num(&k, "output_tokens").unwrap_or((out_len / 4 + 1) as u64),
        cache_read: num(&k, "cache_read").unwrap_or(0),
        cache_write: num(&k, "cache_write").unwrap_or(0),
    };
    if !a.stream {
        let body = whole(wire, &a, &answer, &figures);
        return json_response(StatusCode::OK, &body);
    }
    let events = stream_events(wire, &a, &answer, &figures);
    let error_after = num(&k, "error_after").map(|n| n as usize);
    let abort_after = num(&k, "abort_after").map(|n| n as usize);
    let delay = num(&k, "event_delay_ms").map(Duration::from_millis);
    let chunk = num(&k, "chunk").map(|n| n.clamp(1, 64) as usize);
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(16);
    tokio::spawn(async move {
        let mut pattern = 0usize;
        let mut send = |bytes: Vec<u8>| {
            let mut out = Vec::new();
            match chunk {
                None => out.push(Bytes::from(bytes)),
                Some(max) => {
                    let mut rest = &bytes[..];
                    while !rest.is_empty() {
                        pattern += 1;
                        let n = (pattern % max + 1).min(rest.len());
                        out.push(Bytes::copy_from_slice(&rest[..n]));
                        rest = &rest[n..];
                    }
                }
            }
            out
        };
        for (i, ev) in events.into_iter().enumerate() {
            if error_after == Some(i) {
                for b in send(stream_error(wire)) {
                    let _ = tx.send(Ok(b)).await;
                }
                return;
            }
            if abort_after == Some(i) {
                let _ = tx.send(Err(std::io::Error::other("mock abort"))).await;
                return;
            }
            if let Some(d) = delay
                && i > 0
            {
                tokio::time::sleep(d).await;
            }
            for b in send(ev) {
                if tx.send(Ok(b)).await.is_err() {
                    return;
                }
            }
        }
    });
    let stream = tokio_stream::wrappers::ReceiverStream::new(rx);
    let content_type = if wire == Wire::Bedrock { "application/vnd.amazon.eventstream" } else { "text/event-stream" };
    let mut r = Response::new(Body::from_stream(stream));
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

fn json_response(status: StatusCode, body: &Value) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response()
}

fn error_response(wire: Wire, status: u16, message: &str, retry_after: Option<&str>) -> Response {
    let body = match wire {
        Wire::Chat | Wire::Responses => json!({"error": {"message": message, "type": "server_error", "param": null, "code": null}}),
        Wire::Anthropic | Wire::Bedrock => json!({"type": "error", "error": {"type": "api_error", "message": message}}),
        Wire::Gemini => json!({"error": {"code": status, "message": message, "status": "UNAVAILABLE"}}),
    };
    let mut r = json_response(StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR), &body);
    if let Some(v) = retry_after.and_then(|v| HeaderValue::from_str(v).ok()) {
        r.headers_mut().insert(header::RETRY_AFTER, v);
    }
    r
}

fn whole(wire: Wire, a: &Ask, answer: &Answer, f: &Figures) -> Value {
    match wire {
        Wire::Chat => {
            let (message, finish) = match answer {
                Answer::Text(t) => (json!({"role": "assistant", "content": t}), "stop"),
                Answer::Tool { id, name, args } => (
                    json!({"role": "assistant", "content": null,
                        "tool_calls": [{"id": id, "type": "function", "function": {"name": name, "arguments": args}}]}),
                    "tool_calls",
                ),
            };
            let prompt = f.input + f.cache_read + f.cache_write;
            json!({
                "id": "chatcmpl-mock", "object": "chat.completion", "created": 1_700_000_000u64, "model": a.model,
                "choices": [{"index": 0, "message": message, "finish_reason": finish}],
                "usage": {"prompt_tokens": prompt, "completion_tokens": f.output, "total_tokens": prompt + f.output,
                    "prompt_tokens_details": {"cached_tokens": f.cache_read}}
            })
        }
        Wire::Responses => {
            let output = match answer {
                Answer::Text(t) => json!([{"type": "message", "id": "msg_mock", "role": "assistant", "status": "completed",
                    "content": [{"type": "output_text", "text": t, "annotations": []}]}]),
                Answer::Tool { id, name, args } => json!([{"type": "function_call", "id": "fc_mock", "call_id": id, "name": name,
                    "arguments": args, "status": "completed"}]),
            };
            let prompt = f.input + f.cache_read + f.cache_write;
            json!({
                "id": format!("resp_mock_{}", rand_id()), "object": "response", "created_at": 1_700_000_000u64, "status": "completed",
                "model": a.model, "output": output,
                "usage": {"input_tokens": prompt, "output_tokens": f.output, "total_tokens": prompt + f.output,
                    "input_tokens_details": {"cached_tokens": f.cache_read}, "output_tokens_details": {"reasoning_tokens": 0}}
            })
        }
        Wire::Anthropic | Wire::Bedrock => {
            let (content, stop) = match answer {
                Answer::Text(t) => (json!([{"type": "text", "text": t}]), "end_turn"),
                Answer::Tool { id, name, args } => (
                    json!([{"type": "tool_use", "id": id, "name": name, "input": serde_json::from_str::<Value>(args).unwrap_or_default()}]),
                    "tool_use",
                ),
            };
            json!({
                "id": "msg_mock", "type": "message", "role": "assistant", "model": a.model, "content": content,
                "stop_reason": stop, "stop_sequence": null,
                "usage": {"input_tokens": f.input, "output_tokens": f.output,
                    "cache_read_input_tokens": f.cache_read, "cache_creation_input_tokens": f.cache_write}
            })
        }
        Wire::Gemini => {
            let (part, finish) = match answer {
                Answer::Text(t) => (json!({"text": t}), "STOP"),
                Answer::Tool { name, args, .. } => {
                    (json!({"functionCall": {"name": name, "args": serde_json::from_str::<Value>(args).unwrap_or_default()}}), "STOP")
                }
            };
            let prompt = f.input + f.cache_read;
            json!({
                "candidates": [{"content": {"role": "model", "parts": [part]}, "finishReason": finish, "index": 0}],
                "usageMetadata": {"promptTokenCount": prompt, "candidatesTokenCount": f.output, "totalTokenCount": prompt + f.output,
                    "cachedContentTokenCount": f.cache_read},
                "modelVersion": a.model
            })
        }
    }
}

fn rand_id() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

fn sse(event: Option<&str>, data: &Value) -> Vec<u8> {
    match event {
        Some(e) => format!("event: {e}\ndata: {data}\n\n").into_bytes(),
        None => format!("data: {data}\n\n").into_bytes(),
    }
}

/// Pieces the text is streamed in: words with their following space, so multi-byte
/// characters and placeholders get split by `chunk`, not here.
fn pieces(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for c in text.chars() {
        cur.push(c);
        if c == ' ' {
            out.push(std::mem::take(&mut cur));
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    if out.is_empty() {
        out.push(String::new());
    }
    out
}

fn stream_events(wire: Wire, a: &Ask, answer: &Answer, f: &Figures) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    match wire {
        Wire::Chat => {
            let base = |delta: Value, finish: Value| {
                json!({"id": "chatcmpl-mock", "object": "chat.completion.chunk", "created": 1_700_000_000u64, "model": a.model,
                    "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
            };
            out.push(sse(None, &base(json!({"role": "assistant", "content": ""}), Value::Null)));
            let finish = match answer {
                Answer::Text(t) => {
                    for p in pieces(t) {
                        out.push(sse(None, &base(json!({"content": p}), Value::Null)));
                    }
                    "stop"
                }
                Answer::Tool { id, name, args } => {
                    out.push(sse(
                        None,
                        &base(
                            json!({"tool_calls": [{"index": 0, "id": id, "type": "function", "function": {"name": name, "arguments": ""}}]}),
                            Value::Null,
                        ),
                    ));
                    let mid = args.len() / 2;
                    let mid = (0..=mid).rev().find(|i| args.is_char_boundary(*i)).unwrap_or(0);
                    for frag in [&args[..mid], &args[mid..]] {
                        out.push(sse(None, &base(json!({"tool_calls": [{"index": 0, "function": {"arguments": frag}}]}), Value::Null)));
                    }
                    "tool_calls"
                }
            };
            out.push(sse(None, &base(json!({}), json!(finish))));
            if a.include_usage {
                let prompt = f.input + f.cache_read + f.cache_write;
                out.push(sse(
                    None,
                    &json!({"id": "chatcmpl-mock", "object": "chat.completion.chunk", "created": 1_700_000_000u64, "model": a.model,
                        "choices": [], "usage": {"prompt_tokens": prompt, "completion_tokens": f.output, "total_tokens": prompt + f.output,
                            "prompt_tokens_details": {"cached_tokens": f.cache_read}}}),
                ));
            }
            out.push(b"data: [DONE]\n\n".to_vec());
        }
        Wire::Responses => {
            let id = format!("resp_mock_{}", rand_id());
            let mut seq = 0u64;
            let mut ev = |name: &str, mut data: Value| {
                data["type"] = json!(name);
                data["sequence_number"] = json!(seq);
                seq += 1;
                sse(Some(name), &data)
            };
            let resp = |status: &str, output: Value, usage: Value| {
                json!({"id": id, "object": "response", "created_at": 1_700_000_000u64, "status": status, "model": a.model,
                    "output": output, "usage": usage})
            };
            out.push(ev("response.created", json!({"response": resp("in_progress", json!([]), Value::Null)})));
            let item = match answer {
                Answer::Text(t) => {
                    out.push(ev(
                        "response.output_item.added",
                        json!({"output_index": 0, "item": {"type": "message", "id": "msg_mock",
                        "role": "assistant", "status": "in_progress", "content": []}}),
                    ));
                    out.push(ev(
                        "response.content_part.added",
                        json!({"item_id": "msg_mock", "output_index": 0, "content_index": 0,
                        "part": {"type": "output_text", "text": "", "annotations": []}}),
                    ));
                    for p in pieces(t) {
                        out.push(ev(
                            "response.output_text.delta",
                            json!({"item_id": "msg_mock", "output_index": 0, "content_index": 0, "delta": p}),
                        ));
                    }
                    out.push(ev(
                        "response.output_text.done",
                        json!({"item_id": "msg_mock", "output_index": 0, "content_index": 0, "text": t}),
                    ));
                    let item = json!({"type": "message", "id": "msg_mock", "role": "assistant", "status": "completed",
                        "content": [{"type": "output_text", "text": t, "annotations": []}]});
                    out.push(ev("response.output_item.done", json!({"output_index": 0, "item": item})));
                    item
                }
                Answer::Tool { id: call, name, args } => {
                    out.push(ev(
                        "response.output_item.added",
                        json!({"output_index": 0, "item": {"type": "function_call", "id": "fc_mock",
                        "call_id": call, "name": name, "arguments": "", "status": "in_progress"}}),
                    ));
                    out.push(ev("response.function_call_arguments.delta", json!({"item_id": "fc_mock", "output_index": 0, "delta": args})));
                    out.push(ev(
                        "response.function_call_arguments.done",
                        json!({"item_id": "fc_mock", "output_index": 0, "arguments": args}),
                    ));
                    let item = json!({"type": "function_call", "id": "fc_mock", "call_id": call, "name": name, "arguments": args,
                        "status": "completed"});
                    out.push(ev("response.output_item.done", json!({"output_index": 0, "item": item})));
                    item
                }
            };
            let prompt = f.input + f.cache_read + f.cache_write;
            let usage = json!({"input_tokens": prompt, "output_tokens": f.output, "total_tokens": prompt + f.output,
                "input_tokens_details": {"cached_tokens": f.cache_read}, "output_tokens_details": {"reasoning_tokens": 0}});
            out.push(ev("response.completed", json!({"response": resp("completed", json!([item]), usage)})));
        }
        Wire::Anthropic | Wire::Bedrock => {
            let mut events: Vec<(&str, Value)> = vec![(
                "message_start",
                json!({"type": "message_start", "message": {"id": "msg_mock", "type": "message", "role": "assistant", "model": a.model,
                    "content": [], "stop_reason": null, "stop_sequence": null,
                    "usage": {"input_tokens": f.input, "output_tokens": 1, "cache_read_input_tokens": f.cache_read,
                        "cache_creation_input_tokens": f.cache_write}}}),
            )];
            let stop = match answer {
                Answer::Text(t) => {
                    events.push((
                        "content_block_start",
                        json!({"type": "content_block_start", "index": 0,
                        "content_block": {"type": "text", "text": ""}}),
                    ));
                    events.push(("ping", json!({"type": "ping"})));
                    for p in pieces(t) {
                        events.push((
                            "content_block_delta",
                            json!({"type": "content_block_delta", "index": 0,
                            "delta": {"type": "text_delta", "text": p}}),
                        ));
                    }
                    "end_turn"
                }
                Answer::Tool { id, name, args } => {
                    events.push((
                        "content_block_start",
                        json!({"type": "content_block_start", "index": 0,
                        "content_block": {"type": "tool_use", "id": id, "name": name, "input": {}}}),
                    ));
                    events.push((
                        "content_block_delta",
                        json!({"type": "content_block_delta", "index": 0,
                        "delta": {"type": "input_json_delta", "partial_json": args}}),
                    ));
                    "tool_use"
                }
            };
            events.push(("content_block_stop", json!({"type": "content_block_stop", "index": 0})));
            events.push((
                "message_delta",
                json!({"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": null},
                    "usage": {"input_tokens": f.input, "output_tokens": f.output, "cache_read_input_tokens": f.cache_read,
                        "cache_creation_input_tokens": f.cache_write}}),
            ));
            events.push(("message_stop", json!({"type": "message_stop"})));
            for (name, data) in events {
                if wire == Wire::Bedrock {
                    out.push(bedrock_frame(&data));
                } else {
                    out.push(sse(Some(name), &data));
                }
            }
        }
        Wire::Gemini => {
            let prompt = f.input + f.cache_read;
            let chunk = |parts: Value, finish: Option<&str>, usage: bool| {
                let mut c = json!({"content": {"role": "model", "parts": parts}, "index": 0});
                if let Some(fr) = finish {
                    c["finishReason"] = json!(fr);
                }
                let mut v = json!({"candidates": [c], "modelVersion": a.model});
                if usage {
                    v["usageMetadata"] = json!({"promptTokenCount": prompt, "candidatesTokenCount": f.output,
                        "totalTokenCount": prompt + f.output, "cachedContentTokenCount": f.cache_read});
                }
                sse(None, &v)
            };
            match answer {
                Answer::Text(t) => {
                    let ps = pieces(t);
                    let last = ps.len() - 1;
                    for (i, p) in ps.into_iter().enumerate() {
                        out.push(chunk(json!([{"text": p}]), (i == last).then_some("STOP"), i == last));
                    }
                }
                Answer::Tool { name, args, .. } => {
                    let args: Value = serde_json::from_str(args).unwrap_or_default();
                    out.push(chunk(json!([{"functionCall": {"name": name, "args": args}}]), Some("STOP"), true));
                }
            }
        }
    }
    out
}

fn stream_error(wire: Wire) -> Vec<u8> {
    match wire {
        Wire::Chat => sse(None, &json!({"error": {"message": "mock stream error", "type": "server_error", "code": null}})),
        Wire::Responses => sse(
            Some("error"),
            &json!({"type": "error", "code": "server_error", "message": "mock stream error", "param": null, "sequence_number": 99}),
        ),
        Wire::Anthropic => {
            sse(Some("error"), &json!({"type": "error", "error": {"type": "overloaded_error", "message": "mock stream error"}}))
        }
        Wire::Bedrock => bedrock_exception("modelStreamErrorException", "mock stream error"),
        Wire::Gemini => sse(None, &json!({"error": {"code": 503, "message": "mock stream error", "status": "UNAVAILABLE"}})),
    }
}

/// One AWS event-stream message: prelude (total length, headers length, prelude CRC), headers,
/// payload, message CRC. Bedrock puts `{"bytes": base64(event JSON)}` in a `chunk` event.
fn bedrock_frame(event: &Value) -> Vec<u8> {
    use base64::Engine as _;
    let payload = json!({"bytes": base64::engine::general_purpose::STANDARD.encode(event.to_string())}).to_string();
    event_stream_message(&[(":event-type", "chunk"), (":content-type", "application/json"), (":message-type", "event")], payload.as_bytes())
}

fn bedrock_exception(kind: &str, message: &str) -> Vec<u8> {
    let payload = json!({"message": message}).to_string();
    event_stream_message(
        &[(":exception-type", kind), (":content-type", "application/json"), (":message-type", "exception")],
        payload.as_bytes(),
    )
}

/// Encodes one event-stream message with string headers (type 7).
pub fn event_stream_message(headers: &[(&str, &str)], payload: &[u8]) -> Vec<u8> {
    let mut h = Vec::new();
    for (name, value) in headers {
        h.push(name.len() as u8);
        h.extend_from_slice(name.as_bytes());
        h.push(7);
        h.extend_from_slice(&(value.len() as u16).to_be_bytes());
        h.extend_from_slice(value.as_bytes());
    }
    let total = 12 + h.len() + payload.len() + 4;
    let mut out = Vec::with_capacity(total);
    out.extend_from_slice(&(total as u32).to_be_bytes());
    out.extend_from_slice(&(h.len() as u32).to_be_bytes());
    let prelude_crc = crc32(&out);
    out.extend_from_slice(&prelude_crc.to_be_bytes());
    out.extend_from_slice(&h);
    out.extend_from_slice(payload);
    let crc = crc32(&out);
    out.extend_from_slice(&crc.to_be_bytes());
    out
}

/// CRC-32 (IEEE), bitwise: the mock sends few frames.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            let mask = (crc & 1).wrapping_neg();
            crc = (crc >> 1) ^ (0xEDB8_8320 & mask);
        }
    }
    !crc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_matches_the_reference_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    }

    #[test]
    fn pieces_keep_every_character() {
        assert_eq!(pieces("a bc d").concat(), "a bc d");
    }
}
