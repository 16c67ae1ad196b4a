//! Anthropic Messages (`/v1/messages`): parser and writer for requests, responses and streams.
//!
//! The same body goes to Bedrock's InvokeModel; the hub adapts the envelope there
//! (`anthropic_version: "bedrock-2023-05-31"` in the body, the model in the URL, AWS
//! event-stream framing around the stream events, whose JSON payloads it hands to
//! [`StreamParser::feed_json`]).
//!
//! Anthropic is the model the internal types follow, so little is lost here: server tools
//! (`web_search`, ...), documents and citations are reported as dropped, and `thinking`,
//! `top_k` and other unmapped top-level fields travel in [`Request::extra`].

use serde_json::{Map, Value, json};

use crate::Format;
use crate::error::{Dropped, ErrorKind, ParseError};
use crate::json::{self as j, Obj};
use crate::model::{
    BlockKind, ImageSource, Message, Part, Request, Response, Role, StopReason, StreamEvent, SystemPart, Tool, ToolChoice, Usage,
};
use crate::sse::{SseDecoder, encode};
use crate::stream::{each_data, end_unfinished, fail, impl_stream_traits, parse_payload};
use crate::tokens::default_max_tokens;

const NOT_CARRIED: &str = "not carried by the translation";

// ---------------------------------------------------------------------------------------
// Requests
// ---------------------------------------------------------------------------------------

/// Parse an Anthropic Messages request body.
pub fn parse_request(body: &[u8]) -> Result<(Request, Vec<Dropped>), ParseError> {
    let root = j::parse_object(body)?;
    let mut d = Vec::new();
    let mut req = Request { source: Some(Format::AnthropicMessages), ..Request::default() };
    for (key, value) in &root {
        match key.as_str() {
            "model" => req.model = j::string(value, "model")?,
            "max_tokens" => req.max_tokens = j::opt_u32(value, "max_tokens")?,
            "system" => req.system = parse_system(value, &mut d)?,
            "messages" => {
                for (i, m) in j::array(value, "messages")?.iter().enumerate() {
                    req.messages.push(parse_message(m, &j::index("messages", i), &mut d)?);
                }
            }
            "tools" => {
                for (i, t) in j::array(value, "tools")?.iter().enumerate() {
                    if let Some(tool) = parse_tool(t, &j::index("tools", i), &mut d)? {
                        req.tools.push(tool);
                    }
                }
            }
            "tool_choice" if !value.is_null() => {
                let o = j::object(value, "tool_choice")?;
                req.tool_choice = Some(match j::req_str(o, "type", "tool_choice")? {
                    "auto" => ToolChoice::Auto,
                    "any" => ToolChoice::Required,
                    "none" => ToolChoice::None,
                    "tool" => ToolChoice::Tool { name: j::req_str(o, "name", "tool_choice")?.to_owned() },
                    other => return Err(ParseError::invalid("tool_choice.type", format!("unknown tool choice `{other}`"))),
                });
                if let Some(disable) = o.get("disable_parallel_tool_use").map(|v| j::opt_bool(v, "tool_choice.disable_parallel_tool_use")) {
                    req.parallel_tool_calls = disable?.map(|d| !d);
                }
                j::report_unknown(o, &["type", "name", "disable_parallel_tool_use"], "tool_choice", NOT_CARRIED, &mut d);
            }
            "temperature" => req.temperature = j::opt_f64(value, "temperature")?,
            "top_p" => req.top_p = j::opt_f64(value, "top_p")?,
            "stop_sequences" => req.stop = j::strings(value, "stop_sequences")?,
            "stream" => req.stream = j::opt_bool(value, "stream")?.unwrap_or(false),
            "metadata" if !value.is_null() => {
                for (k, v) in j::object(value, "metadata")? {
                    if k == "user_id" {
                        req.user = v.as_str().map(str::to_owned);
                    } else {
                        req.metadata.insert(k.clone(), v.clone());
                    }
                }
            }
            _ if value.is_null() => {}
            _ => {
                req.extra.insert(key.clone(), value.clone());
            }
        }
    }
    if req.model.is_empty() {
        return Err(ParseError::invalid("model", "required"));
    }
    Ok((req, d))
}

fn parse_system(value: &Value, d: &mut Vec<Dropped>) -> Result<Vec<SystemPart>, ParseError> {
    match value {
        Value::Null => Ok(Vec::new()),
        Value::String(s) if s.is_empty() => Ok(Vec::new()),
        Value::String(s) => Ok(vec![SystemPart { text: s.clone(), cache_control: None }]),
        Value::Array(blocks) => {
            let mut out = Vec::new();
            for (i, b) in blocks.iter().enumerate() {
                let at = j::index("system", i);
                let o = j::object(b, &at)?;
                match j::req_str(o, "type", &at)? {
                    "text" => {
                        out.push(SystemPart {
                            text: j::req_str(o, "text", &at)?.to_owned(),
                            cache_control: o.get("cache_control").cloned(),
                        });
                        j::report_unknown(o, &["type", "text", "cache_control"], &at, NOT_CARRIED, d);
                    }
                    other => d.push(Dropped::new(at, format!("system block type `{other}` is not supported"))),
                }
            }
            Ok(out)
        }
        _ => Err(ParseError::invalid("system", "expected a string or an array of text blocks")),
    }
}

fn parse_message(v: &Value, at: &str, d: &mut Vec<Dropped>) -> Result<Message, ParseError> {
    let o = j::object(v, at)?;
    let role = match j::req_str(o, "role", at)? {
        "user" => Role::User,
        "assistant" => Role::Assistant,
        other => return Err(ParseError::invalid(j::path(at, "role"), format!("unknown role `{other}`"))),
    };
    j::report_unknown(o, &["role", "content"], at, NOT_CARRIED, d);
    let content = parse_content(o.get("content").unwrap_or(&Value::Null), &j::path(at, "content"), d)?;
    Ok(Message { role, content })
}

/// A content value: a string or an array of blocks.
fn parse_content(v: &Value, at: &str, d: &mut Vec<Dropped>) -> Result<Vec<Part>, ParseError> {
    match v {
        Value::Null => Ok(Vec::new()),
        Value::String(s) => Ok(vec![Part::text(s.clone())]),
        Value::Array(blocks) => {
            let mut out = Vec::new();
            for (i, b) in blocks.iter().enumerate() {
                if let Some(part) = parse_block(b, &j::index(at, i), d)? {
                    out.push(part);
                }
            }
            Ok(out)
        }
        _ => Err(ParseError::invalid(at, "expected a string or an array of content blocks")),
    }
}

/// One content block; `None` when the block type cannot be carried (reported).
fn parse_block(v: &Value, at: &str, d: &mut Vec<Dropped>) -> Result<Option<Part>, ParseError> {
    let o = j::object(v, at)?;
    let kind = j::req_str(o, "type", at)?;
    let part = match kind {
        "text" => {
            j::report_unknown(o, &["type", "text", "cache_control"], at, NOT_CARRIED, d);
            Part::Text {
                text: j::req_str(o, "text", at)?.to_owned(),
                cache_control: o.get("cache_control").filter(|c| !c.is_null()).cloned(),
            }
        }
        "image" => {
            j::report_unknown(o, &["type", "source"], at, NOT_CARRIED, d);
            let src_at = j::path(at, "source");
            let src = j::object(o.get("source").unwrap_or(&Value::Null), &src_at)?;
            let source = match j::req_str(src, "type", &src_at)? {
                "base64" => ImageSource::Base64 {
                    media_type: j::req_str(src, "media_type", &src_at)?.to_owned(),
                    data: j::req_str(src, "data", &src_at)?.to_owned(),
                },
                "url" => ImageSource::Url { url: j::req_str(src, "url", &src_at)?.to_owned() },
                other => {
                    d.push(Dropped::new(at, format!("image source type `{other}` is not supported")));
                    return Ok(None);
                }
            };
            Part::Image { source, detail: None }
        }
        "tool_use" => {
            j::report_unknown(o, &["type", "id", "name", "input"], at, NOT_CARRIED, d);
            Part::ToolUse {
                id: j::req_str(o, "id", at)?.to_owned(),
                name: j::req_str(o, "name", at)?.to_owned(),
                input: o.get("input").cloned().unwrap_or_else(|| json!({})),
            }
        }
        "tool_result" => {
            j::report_unknown(o, &["type", "tool_use_id", "content", "is_error"], at, NOT_CARRIED, d);
            let content = parse_content(o.get("content").unwrap_or(&Value::Null), &j::path(at, "content"), d)?;
            Part::ToolResult {
                tool_use_id: j::req_str(o, "tool_use_id", at)?.to_owned(),
                content,
                is_error: j::opt_bool(o.get("is_error").unwrap_or(&Value::Null), &j::path(at, "is_error"))?.unwrap_or(false),
            }
        }
        "thinking" => {
            j::report_unknown(o, &["type", "thinking", "signature"], at, NOT_CARRIED, d);
            Part::Thinking {
                text: j::get_str(o, "thinking", at)?.unwrap_or_default().to_owned(),
                // An empty signature is what this crate writes for reasoning that had none.
                signature: j::get_str(o, "signature", at)?.filter(|s| !s.is_empty()).map(str::to_owned),
            }
        }
        "redacted_thinking" => Part::RedactedThinking { data: j::req_str(o, "data", at)?.to_owned() },
        other => {
            d.push(Dropped::new(at, format!("content block type `{other}` is not supported")));
            return Ok(None);
        }
    };
    Ok(Some(part))
}

fn parse_tool(v: &Value, at: &str, d: &mut Vec<Dropped>) -> Result<Option<Tool>, ParseError> {
    let o = j::object(v, at)?;
    match j::get_str(o, "type", at)? {
        None | Some("custom") => {}
        Some(other) => {
            d.push(Dropped::new(at, format!("server tool `{other}` is not supported")));
            return Ok(None);
        }
    }
    j::report_unknown(o, &["type", "name", "description", "input_schema", "cache_control", "strict"], at, NOT_CARRIED, d);
    Ok(Some(Tool {
        name: j::req_str(o, "name", at)?.to_owned(),
        description: j::get_str(o, "description", at)?.map(str::to_owned),
        input_schema: o.get("input_schema").cloned().unwrap_or_else(|| json!({"type": "object"})),
        strict: o.get("strict").and_then(Value::as_bool),
        cache_control: o.get("cache_control").filter(|c| !c.is_null()).cloned(),
    }))
}

/// Write a request as an Anthropic Messages body.
///
/// - `max_tokens` is mandatory here: the request's limit, else [`default_max_tokens`].
/// - The system prompt becomes top-level `system`: a string, or text blocks when any part has
///   `cache_control`. System turns in mid-conversation fold into a user turn.
/// - Tool results (OpenAI `role:"tool"` messages) go into a user message; consecutive ones
///   share one, and their `tool_result` blocks come before any other content of that turn.
/// - `tool_choice: required` → `{type:"any"}`; `parallel_tool_calls: false` →
///   `disable_parallel_tool_use: true`.
/// - `temperature` is clamped to Anthropic's 0–1 range (reported).
pub fn write_request(req: &Request) -> (Value, Vec<Dropped>) {
    let mut d = Vec::new();
    let mut body = Map::new();
    body.insert("model".into(), json!(req.model));
    body.insert("max_tokens".into(), json!(req.max_tokens.unwrap_or_else(|| default_max_tokens(&req.model))));
    if !req.system.is_empty() {
        let plain = req.system.len() == 1 && req.system[0].cache_control.is_none();
        let system = if plain {
            json!(req.system[0].text)
        } else {
            Value::Array(req.system.iter().map(|p| text_block(&p.text, p.cache_control.as_ref())).collect())
        };
        body.insert("system".into(), system);
    }
    body.insert("messages".into(), Value::Array(write_messages(&req.messages, &mut d)));
    if !req.tools.is_empty() {
        let tools = req
            .tools
            .iter()
            .enumerate()
            .map(|(i, t)| {
                if t.strict == Some(true) {
                    d.push(Dropped::new(format!("tools[{i}].strict"), "strict schema mode is not supported by Anthropic"));
                }
                j::obj_of(vec![
                    ("name", Some(json!(t.name))),
                    ("description", t.description.as_ref().map(|s| json!(s))),
                    ("input_schema", Some(schema_object(&t.input_schema))),
                    ("cache_control", t.cache_control.clone()),
                ])
            })
            .collect();
        body.insert("tools".into(), Value::Array(tools));
        let disable_parallel = req.parallel_tool_calls == Some(false);
        let choice = match &req.tool_choice {
            None | Some(ToolChoice::Auto) => Some(json!({"type": "auto"})).filter(|_| disable_parallel),
            Some(ToolChoice::None) => Some(json!({"type": "none"})),
            Some(ToolChoice::Required) => Some(json!({"type": "any"})),
            Some(ToolChoice::Tool { name }) => Some(json!({"type": "tool", "name": name})),
        };
        if let Some(mut choice) = choice {
            // `none` takes no parallelism flag: no tool is called at all.
            if disable_parallel && choice["type"] != "none" {
                choice["disable_parallel_tool_use"] = json!(true);
            }
            body.insert("tool_choice".into(), choice);
        }
    } else if matches!(req.tool_choice, Some(ToolChoice::Required | ToolChoice::Tool { .. })) {
        d.push(Dropped::new("tool_choice", "no tools were given"));
    }
    if let Some(t) = req.temperature {
        if t > 1.0 {
            d.push(Dropped::new("temperature", format!("{t} clamped to 1.0, Anthropic's maximum")));
        }
        body.insert("temperature".into(), json!(t.clamp(0.0, 1.0)));
    }
    if let Some(p) = req.top_p {
        body.insert("top_p".into(), json!(p));
    }
    if !req.stop.is_empty() {
        body.insert("stop_sequences".into(), json!(req.stop));
    }
    if req.stream {
        body.insert("stream".into(), json!(true));
    }
    if let Some(user) = &req.user {
        body.insert("metadata".into(), json!({"user_id": user}));
    }
    for key in req.metadata.keys() {
        d.push(Dropped::new(format!("metadata.{key}"), "Anthropic metadata only takes user_id"));
    }
    crate::put_extra(req, Format::AnthropicMessages, &mut body, &mut d);
    (Value::Object(body), d)
}

/// Anthropic requires `input_schema` to be an object schema.
fn schema_object(schema: &Value) -> Value {
    match schema {
        Value::Object(o) if !o.is_empty() => schema.clone(),
        _ => json!({"type": "object", "properties": {}}),
    }
}

fn text_block(text: &str, cache_control: Option<&Value>) -> Value {
    let mut b = json!({"type": "text", "text": text});
    if let Some(c) = cache_control {
        b["cache_control"] = c.clone();
    }
    b
}

fn write_messages(messages: &[Message], d: &mut Vec<Dropped>) -> Vec<Value> {
    let mut turns: Vec<(&'static str, Vec<Value>)> = Vec::new();
    for (i, m) in messages.iter().enumerate() {
        let role = if m.role == Role::Assistant { "assistant" } else { "user" };
        let at = format!("messages[{i}]");
        let blocks: Vec<Value> =
            m.content.iter().enumerate().filter_map(|(k, p)| write_block(p, &format!("{at}.content[{k}]"), d)).collect();
        if blocks.is_empty() {
            if m.content.is_empty() {
                d.push(Dropped::new(at, "empty message"));
            }
            continue;
        }
        // Adjacent turns of one role merge: that is how consecutive tool results, a user turn
        // right after them, and folded system turns become a single Anthropic turn.
        match turns.last_mut() {
            Some((r, b)) if *r == role => b.extend(blocks),
            _ => turns.push((role, blocks)),
        }
    }
    turns
        .into_iter()
        .map(|(role, blocks)| {
            let blocks = if role == "user" {
                let (mut results, rest): (Vec<Value>, Vec<Value>) = blocks.into_iter().partition(|b| b["type"] == "tool_result");
                results.extend(rest);
                results
            } else {
                blocks
            };
            json!({"role": role, "content": simplify(blocks)})
        })
        .collect()
}

/// A lone plain text block is sent as a string, the common form.
fn simplify(blocks: Vec<Value>) -> Value {
    if blocks.len() == 1 && blocks[0]["type"] == "text" && blocks[0].get("cache_control").is_none() {
        return blocks[0]["text"].clone();
    }
    Value::Array(blocks)
}

fn image_block(source: &ImageSource) -> Value {
    let source = match source {
        ImageSource::Base64 { media_type, data } => json!({"type": "base64", "media_type": media_type, "data": data}),
        ImageSource::Url { url } => json!({"type": "url", "url": url}),
    };
    json!({"type": "image", "source": source})
}

fn write_block(part: &Part, at: &str, d: &mut Vec<Dropped>) -> Option<Value> {
    match part {
        // Anthropic rejects empty text blocks; they carry nothing.
        Part::Text { text, .. } if text.is_empty() => None,
        Part::Text { text, cache_control } => Some(text_block(text, cache_control.as_ref())),
        Part::Image { source, detail } => {
            if detail.is_some() {
                d.push(Dropped::new(format!("{at}.detail"), "Anthropic has no image detail setting"));
            }
            Some(image_block(source))
        }
        Part::ToolUse { id, name, input } => {
            Some(json!({"type": "tool_use", "id": id, "name": name, "input": crate::model::input_object(input)}))
        }
        Part::ToolResult { tool_use_id, content, is_error } => {
            let mut b = json!({"type": "tool_result", "tool_use_id": tool_use_id});
            let inner: Vec<Value> = content
                .iter()
                .enumerate()
                .filter_map(|(k, p)| match p {
                    Part::Text { .. } | Part::Image { .. } => write_block(p, &format!("{at}.content[{k}]"), d),
                    _ => {
                        d.push(Dropped::new(format!("{at}.content[{k}]"), "tool results hold only text and images"));
                        None
                    }
                })
                .collect();
            if !inner.is_empty() {
                b["content"] = simplify(inner);
            }
            if *is_error {
                b["is_error"] = json!(true);
            }
            Some(b)
        }
        Part::Thinking { text, signature: Some(signature) } => Some(json!({"type": "thinking", "thinking": text, "signature": signature})),
        Part::Thinking { signature: None, .. } => {
            d.push(Dropped::new(at, "Anthropic accepts reasoning only with its signature"));
            None
        }
        Part::RedactedThinking { data } => Some(json!({"type": "redacted_thinking", "data": data})),
    }
}

// ---------------------------------------------------------------------------------------
// Responses
// ---------------------------------------------------------------------------------------

/// Anthropic `stop_reason` → internal.
pub fn stop_from_anthropic(reason: &str) -> StopReason {
    match reason {
        "end_turn" => StopReason::EndTurn,
        "max_tokens" => StopReason::MaxTokens,
        "stop_sequence" => StopReason::StopSequence,
        "tool_use" => StopReason::ToolUse,
        "pause_turn" => StopReason::PauseTurn,
        "refusal" => StopReason::ContentFilter,
        "model_context_window_exceeded" => StopReason::ContextWindowExceeded,
        other => StopReason::Other(other.to_owned()),
    }
}

/// Internal → Anthropic `stop_reason`. A turn that emitted tool calls ends in `tool_use`
/// unless it was cut short, whatever the provider said (Gemini says `STOP`).
pub fn stop_to_anthropic(reason: &StopReason, had_tool_use: bool) -> &'static str {
    match reason {
        StopReason::MaxTokens => "max_tokens",
        StopReason::ContentFilter => "refusal",
        StopReason::PauseTurn => "pause_turn",
        StopReason::ContextWindowExceeded => "model_context_window_exceeded",
        _ if had_tool_use => "tool_use",
        StopReason::StopSequence => "stop_sequence",
        StopReason::ToolUse => "tool_use",
        StopReason::EndTurn | StopReason::Other(_) => "end_turn",
    }
}

fn parse_usage(u: Option<&Value>) -> Usage {
    Usage {
        input: j::count(u, "input_tokens"),
        output: j::count(u, "output_tokens"),
        cache_read: j::count(u, "cache_read_input_tokens"),
        cache_write: j::count(u, "cache_creation_input_tokens"),
        reasoning: 0,
    }
}

/// Usage present in a `message_delta` is assigned over what `message_start` said: the
/// figures are cumulative.
fn assign_usage(usage: &mut Usage, u: &Obj) {
    let get = |k: &str| u.get(k).and_then(Value::as_u64);
    if let Some(n) = get("input_tokens") {
        usage.input = n;
    }
    if let Some(n) = get("output_tokens") {
        usage.output = n;
    }
    if let Some(n) = get("cache_read_input_tokens") {
        usage.cache_read = n;
    }
    if let Some(n) = get("cache_creation_input_tokens") {
        usage.cache_write = n;
    }
}

fn write_usage(u: &Usage) -> Value {
    json!({
        "input_tokens": u.input,
        "cache_creation_input_tokens": u.cache_write,
        "cache_read_input_tokens": u.cache_read,
        "output_tokens": u.output,
    })
}

/// Parse an Anthropic Messages response body.
pub fn parse_response(body: &[u8]) -> Result<(Response, Vec<Dropped>), ParseError> {
    let root = j::parse_object(body)?;
    let mut d = Vec::new();
    let content = parse_content(root.get("content").unwrap_or(&Value::Null), "content", &mut d)?;
    let resp = Response {
        id: j::get_str(&root, "id", "")?.unwrap_or_default().to_owned(),
        model: j::get_str(&root, "model", "")?.unwrap_or_default().to_owned(),
        created: None,
        content,
        stop_reason: j::get_str(&root, "stop_reason", "")?.map(stop_from_anthropic),
        stop_sequence: j::get_str(&root, "stop_sequence", "")?.map(str::to_owned),
        usage: parse_usage(root.get("usage")),
    };
    Ok((resp, d))
}

/// Write a response as an Anthropic Messages body.
pub fn write_response(resp: &Response) -> (Value, Vec<Dropped>) {
    let mut d = Vec::new();
    let had_tool_use = resp.content.iter().any(|p| matches!(p, Part::ToolUse { .. }));
    let content: Vec<Value> = resp
        .content
        .iter()
        .enumerate()
        .filter_map(|(i, p)| match p {
            // Reasoning without a signature (OpenAI-compatible `reasoning_content`) is still
            // shown; the empty signature marks it as not replayable.
            Part::Thinking { text, signature: None } => Some(json!({"type": "thinking", "thinking": text, "signature": ""})),
            Part::ToolResult { .. } => {
                d.push(Dropped::new(format!("content[{i}]"), "a tool result cannot be part of an answer"));
                None
            }
            _ => write_block(p, &format!("content[{i}]"), &mut d),
        })
        .collect();
    let body = json!({
        "id": resp.id,
        "type": "message",
        "role": "assistant",
        "model": resp.model,
        "content": content,
        "stop_reason": resp.stop_reason.as_ref().map(|r| stop_to_anthropic(r, had_tool_use)),
        "stop_sequence": resp.stop_sequence,
        "usage": write_usage(&resp.usage),
    });
    (body, d)
}

// ---------------------------------------------------------------------------------------
// Streams
// ---------------------------------------------------------------------------------------

/// Decodes an Anthropic SSE stream: `message_start` → blocks → `message_delta` →
/// `message_stop`, with `ping` anywhere and `error` possible after HTTP 200.
///
/// Blocks this crate cannot carry (server tool calls and results) are skipped with their
/// deltas, and the remaining blocks renumbered so indexes stay contiguous.
#[derive(Debug, Default)]
pub struct StreamParser {
    sse: SseDecoder,
    /// Provider block index → internal index, `None` for skipped blocks.
    blocks: Vec<(u64, Option<u32>)>,
    next: u32,
    usage: Usage,
    started: bool,
    done: bool,
}

impl StreamParser {
    /// A parser at the start of a stream.
    pub fn new() -> Self {
        Self::default()
    }

    /// Consume bytes of the SSE stream.
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<StreamEvent> {
        each_data(self.sse.feed(bytes), |data, out| self.on_data(data, out))
    }

    /// Consume one event's JSON payload directly (Bedrock event-stream frames carry these).
    pub fn feed_json(&mut self, data: &str) -> Vec<StreamEvent> {
        let mut out = Vec::new();
        self.on_data(data, &mut out);
        out
    }

    /// The upstream closed.
    pub fn finish(&mut self) -> Vec<StreamEvent> {
        let mut out = each_data(self.sse.finish(), |data, out| self.on_data(data, out));
        end_unfinished(&mut self.done, "message_stop", &mut out);
        out
    }

    fn block(&self, provider_index: u64) -> Option<u32> {
        self.blocks.iter().rev().find(|(p, _)| *p == provider_index).and_then(|(_, i)| *i)
    }

    fn on_data(&mut self, data: &str, out: &mut Vec<StreamEvent>) {
        if self.done {
            return;
        }
        let Some(ev) = parse_payload(data, "event", &mut self.done, out) else {
            return;
        };
        let index = ev.get("index").and_then(Value::as_u64).unwrap_or(0);
        match j::str_at(&ev, "type") {
            "message_start" => {
                let m = ev.get("message").cloned().unwrap_or(Value::Null);
                self.started = true;
                self.usage = parse_usage(m.get("usage"));
                out.push(StreamEvent::MessageStart {
                    id: j::str_at(&m, "id").to_owned(),
                    model: j::str_at(&m, "model").to_owned(),
                    usage: self.usage.clone(),
                });
            }
            "content_block_start" => {
                let b = ev.get("content_block").cloned().unwrap_or(Value::Null);
                let internal = self.next;
                let mut opened = true;
                match j::str_at(&b, "type") {
                    "text" => {
                        out.push(StreamEvent::BlockStart { index: internal, kind: BlockKind::Text });
                        let text = j::str_at(&b, "text");
                        if !text.is_empty() {
                            out.push(StreamEvent::TextDelta { index: internal, text: text.to_owned() });
                        }
                    }
                    "thinking" => {
                        out.push(StreamEvent::BlockStart { index: internal, kind: BlockKind::Thinking });
                        let text = j::str_at(&b, "thinking");
                        if !text.is_empty() {
                            out.push(StreamEvent::ThinkingDelta { index: internal, text: text.to_owned() });
                        }
                    }
                    "redacted_thinking" => out.push(StreamEvent::BlockStart {
                        index: internal,
                        kind: BlockKind::RedactedThinking { data: j::str_at(&b, "data").to_owned() },
                    }),
                    "tool_use" => {
                        out.push(StreamEvent::ToolCallStart {
                            index: internal,
                            id: j::str_at(&b, "id").to_owned(),
                            name: j::str_at(&b, "name").to_owned(),
                        });
                        // The start carries `input: {}`; a non-empty input is sent as one fragment.
                        if let Some(input) = b.get("input").filter(|i| i.as_object().is_some_and(|o| !o.is_empty())) {
                            out.push(StreamEvent::ToolArgsDelta { index: internal, fragment: input.to_string() });
                        }
                    }
                    _ => opened = false,
                }
                if opened {
                    self.next += 1;
                    self.blocks.push((index, Some(internal)));
                } else {
                    self.blocks.push((index, None));
                }
            }
            "content_block_delta" => {
                let Some(internal) = self.block(index) else { return };
                let delta = ev.get("delta").cloned().unwrap_or(Value::Null);
                match j::str_at(&delta, "type") {
                    "text_delta" => out.push(StreamEvent::TextDelta { index: internal, text: j::str_at(&delta, "text").to_owned() }),
                    "input_json_delta" => {
                        let fragment = j::str_at(&delta, "partial_json");
                        if !fragment.is_empty() {
                            out.push(StreamEvent::ToolArgsDelta { index: internal, fragment: fragment.to_owned() });
                        }
                    }
                    "thinking_delta" => {
                        out.push(StreamEvent::ThinkingDelta { index: internal, text: j::str_at(&delta, "thinking").to_owned() });
                    }
                    "signature_delta" => {
                        out.push(StreamEvent::SignatureDelta { index: internal, signature: j::str_at(&delta, "signature").to_owned() })
                    }
                    // citations_delta and future delta types have no internal counterpart.
                    _ => {}
                }
            }
            "content_block_stop" => {
                if let Some(internal) = self.block(index) {
                    out.push(StreamEvent::BlockStop { index: internal });
                }
            }
            "message_delta" => {
                if let Some(u) = ev.get("usage").and_then(Value::as_object) {
                    assign_usage(&mut self.usage, u);
                }
                let delta = ev.get("delta").cloned().unwrap_or(Value::Null);
                out.push(StreamEvent::MessageDelta {
                    stop_reason: delta.get("stop_reason").and_then(Value::as_str).map(stop_from_anthropic),
                    stop_sequence: delta.get("stop_sequence").and_then(Value::as_str).map(str::to_owned),
                    usage: self.usage.clone(),
                });
            }
            "message_stop" => {
                self.done = true;
                out.push(StreamEvent::MessageStop);
            }
            "ping" => out.push(StreamEvent::Ping),
            "error" => {
                let e = ev.get("error").cloned().unwrap_or(Value::Null);
                fail(&mut self.done, out, ErrorKind::from_anthropic_type(j::str_at(&e, "type")), j::str_at(&e, "message").to_owned());
            }
            _ => {}
        }
    }
}

/// Encodes internal events as an Anthropic SSE stream (named events, no `[DONE]`).
#[derive(Debug, Default)]
pub struct StreamWriter {
    had_tool_use: bool,
    dropped: Vec<Dropped>,
}

impl StreamWriter {
    /// A writer at the start of a stream.
    pub fn new() -> Self {
        Self::default()
    }

    fn emit(name: &str, data: &Value) -> Vec<u8> {
        encode(Some(name), &data.to_string())
    }

    /// Encode one event.
    pub fn write(&mut self, event: &StreamEvent) -> Vec<u8> {
        match event {
            StreamEvent::MessageStart { id, model, usage } => Self::emit(
                "message_start",
                &json!({"type": "message_start", "message": {
                    "id": id, "type": "message", "role": "assistant", "model": model, "content": [],
                    "stop_reason": null, "stop_sequence": null, "usage": write_usage(usage),
                }}),
            ),
            StreamEvent::BlockStart { index, kind } => {
                let block = match kind {
                    BlockKind::Text => json!({"type": "text", "text": ""}),
                    BlockKind::Thinking => json!({"type": "thinking", "thinking": "", "signature": ""}),
                    BlockKind::RedactedThinking { data } => json!({"type": "redacted_thinking", "data": data}),
                };
                Self::emit("content_block_start", &json!({"type": "content_block_start", "index": index, "content_block": block}))
            }
            StreamEvent::ToolCallStart { index, id, name } => {
                self.had_tool_use = true;
                Self::emit(
                    "content_block_start",
                    &json!({"type": "content_block_start", "index": index,
                            "content_block": {"type": "tool_use", "id": id, "name": name, "input": {}}}),
                )
            }
            StreamEvent::TextDelta { index, text } => Self::delta(*index, json!({"type": "text_delta", "text": text})),
            StreamEvent::ToolArgsDelta { index, fragment } => {
                Self::delta(*index, json!({"type": "input_json_delta", "partial_json": fragment}))
            }
            StreamEvent::ThinkingDelta { index, text } => Self::delta(*index, json!({"type": "thinking_delta", "thinking": text})),
            StreamEvent::SignatureDelta { index, signature } => {
                Self::delta(*index, json!({"type": "signature_delta", "signature": signature}))
            }
            StreamEvent::BlockStop { index } => Self::emit("content_block_stop", &json!({"type": "content_block_stop", "index": index})),
            StreamEvent::MessageDelta { stop_reason, stop_sequence, usage } => Self::emit(
                "message_delta",
                &json!({"type": "message_delta",
                        "delta": {"stop_reason": stop_reason.as_ref().map(|r| stop_to_anthropic(r, self.had_tool_use)),
                                  "stop_sequence": stop_sequence},
                        "usage": write_usage(usage)}),
            ),
            StreamEvent::MessageStop => Self::emit("message_stop", &json!({"type": "message_stop"})),
            StreamEvent::Ping => Self::emit("ping", &json!({"type": "ping"})),
            StreamEvent::Error { kind, message } => {
                Self::emit("error", &json!({"type": "error", "error": {"type": kind.anthropic_type(), "message": message}}))
            }
        }
    }

    fn delta(index: u32, delta: Value) -> Vec<u8> {
        Self::emit("content_block_delta", &json!({"type": "content_block_delta", "index": index, "delta": delta}))
    }

    /// Anthropic streams have no trailer.
    pub fn finish(&mut self) -> Vec<u8> {
        Vec::new()
    }
}

impl_stream_traits!(StreamParser, StreamWriter);
