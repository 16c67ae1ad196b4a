//! OpenAI Responses (`/v1/responses`): parser and writer for requests, responses and streams.
//!
//! Responses speaks in output *items* (`message`, `function_call`, `reasoning`) rather than
//! messages, and its stream is a series of named events, each with a `sequence_number`,
//! ending in `response.completed` (or `response.incomplete`) with no `[DONE]`.
//!
//! `previous_response_id` makes a request depend on state the server kept. Without a
//! [`ResponseStore`] such requests are refused with [`ParseError::Unsupported`] rather than
//! answered without the earlier turns; `conversation` (server-side conversations) is always
//! refused.

use serde_json::{Map, Value, json};

use crate::error::{Dropped, ErrorKind, ParseError};
use crate::json::{self as j};
use crate::model::{
    BlockKind, ImageSource, Message, Part, Request, Response, Role, StopReason, StreamEvent, SystemPart, Tool, ToolChoice, Usage,
    arguments_to_input, input_to_arguments,
};
use crate::sse::{SseDecoder, encode};
use crate::store::ResponseStore;
use crate::stream::{StreamOptions, each_data, end_unfinished, fail, impl_stream_traits, now_unix, parse_payload};
use crate::{Format, put_extra};

const NOT_CARRIED: &str = "not carried by the translation";

// ---------------------------------------------------------------------------------------
// Requests
// ---------------------------------------------------------------------------------------

/// Parse a Responses request body; `previous_response_id` is refused.
pub fn parse_request(body: &[u8]) -> Result<(Request, Vec<Dropped>), ParseError> {
    parse_request_with_store(body, None)
}

/// Parse a Responses request body, resolving `previous_response_id` through `store`: the
/// stored conversation is put before the new input. An unknown id is an error.
pub fn parse_request_with_store(body: &[u8], store: Option<&dyn ResponseStore>) -> Result<(Request, Vec<Dropped>), ParseError> {
    let root = j::parse_object(body)?;
    let mut d = Vec::new();
    let mut req = Request { source: Some(Format::OpenAiResponses), ..Request::default() };
    let mut history = Vec::new();
    for (key, value) in &root {
        match key.as_str() {
            "model" => req.model = j::string(value, "model")?,
            "input" => parse_input(value, &mut req, &mut d)?,
            "instructions" => {
                if let Some(text) = j::get_str(&root, key, "")? {
                    // Instructions come before any system message found in `input`.
                    req.system.insert(0, SystemPart { text: text.to_owned(), cache_control: None });
                }
            }
            "previous_response_id" if !value.is_null() => {
                let id = j::string(value, key)?;
                let Some(store) = store else {
                    return Err(ParseError::Unsupported {
                        field: key.clone(),
                        message: "this gateway does not keep responses; send the whole conversation in `input`".into(),
                    });
                };
                history = store.get(&id).ok_or_else(|| ParseError::invalid(key.clone(), format!("no stored response with id `{id}`")))?;
            }
            "conversation" if !value.is_null() => {
                return Err(ParseError::Unsupported {
                    field: key.clone(),
                    message: "server-side conversations are not kept; send the whole conversation in `input`".into(),
                });
            }
            "tools" => {
                for (i, t) in j::array(value, "tools")?.iter().enumerate() {
                    let at = j::index("tools", i);
                    let o = j::object(t, &at)?;
                    let kind = j::req_str(o, "type", &at)?;
                    if kind != "function" {
                        d.push(Dropped::new(at, format!("built-in tool `{kind}` is not supported")));
                        continue;
                    }
                    j::report_unknown(o, &["type", "name", "description", "parameters", "strict"], &at, NOT_CARRIED, &mut d);
                    req.tools.push(Tool {
                        name: j::req_str(o, "name", &at)?.to_owned(),
                        description: j::get_str(o, "description", &at)?.map(str::to_owned),
                        input_schema: o
                            .get("parameters")
                            .filter(|p| !p.is_null())
                            .cloned()
                            .unwrap_or_else(|| json!({"type": "object", "properties": {}})),
                        strict: o.get("strict").and_then(Value::as_bool),
                        cache_control: None,
                    });
                }
            }
            "tool_choice" => {
                req.tool_choice = match value {
                    Value::Null => None,
                    Value::String(s) => Some(match s.as_str() {
                        "auto" => ToolChoice::Auto,
                        "none" => ToolChoice::None,
                        "required" => ToolChoice::Required,
                        other => return Err(ParseError::invalid(key.clone(), format!("unknown tool choice `{other}`"))),
                    }),
                    Value::Object(o) if o.get("type").and_then(Value::as_str) == Some("function") => {
                        Some(ToolChoice::Tool { name: j::req_str(o, "name", key)?.to_owned() })
                    }
                    _ => {
                        d.push(Dropped::new(key.clone(), "only auto, none, required and function tool choices are supported"));
                        None
                    }
                }
            }
            "parallel_tool_calls" => req.parallel_tool_calls = j::opt_bool(value, key)?,
            "max_output_tokens" => req.max_tokens = j::opt_u32(value, key)?,
            "temperature" => req.temperature = j::opt_f64(value, key)?,
            "top_p" => req.top_p = j::opt_f64(value, key)?,
            "stream" => req.stream = j::opt_bool(value, key)?.unwrap_or(false),
            "user" => req.user = j::get_str(&root, key, "")?.map(str::to_owned),
            "metadata" if !value.is_null() => req.metadata = j::object(value, key)?.clone(),
            _ if value.is_null() => {}
            _ => {
                req.extra.insert(key.clone(), value.clone());
            }
        }
    }
    if !history.is_empty() {
        history.append(&mut req.messages);
        req.messages = history;
    }
    if req.model.is_empty() {
        return Err(ParseError::invalid("model", "required"));
    }
    Ok((req, d))
}

/// Append `part` to the last message if it has `role`, else start a new message: output items
/// of one assistant turn (text, reasoning, calls) arrive as separate items.
fn push_part(req: &mut Request, role: Role, part: Part) {
    match req.messages.last_mut() {
        Some(m) if m.role == role => m.content.push(part),
        _ => req.messages.push(Message { role, content: vec![part] }),
    }
}

fn parse_input(value: &Value, req: &mut Request, d: &mut Vec<Dropped>) -> Result<(), ParseError> {
    let items = match value {
        Value::String(s) => {
            req.messages.push(Message::text(Role::User, s.clone()));
            return Ok(());
        }
        other => j::array(other, "input")?,
    };
    let mut conversation_started = false;
    for (i, item) in items.iter().enumerate() {
        let at = j::index("input", i);
        let o = j::object(item, &at)?;
        let kind = j::get_str(o, "type", &at)?.unwrap_or(if o.contains_key("role") { "message" } else { "" });
        match kind {
            "message" => {
                j::report_unknown(o, &["type", "role", "content", "id", "status"], &at, NOT_CARRIED, d);
                let content = parse_content(o.get("content").unwrap_or(&Value::Null), &j::path(&at, "content"), d)?;
                match j::req_str(o, "role", &at)? {
                    "system" | "developer" if !conversation_started => {
                        for p in content {
                            if let Part::Text { text, .. } = p {
                                req.system.push(SystemPart { text, cache_control: None });
                            }
                        }
                    }
                    "system" | "developer" => req.messages.push(Message { role: Role::System, content }),
                    "user" => {
                        conversation_started = true;
                        req.messages.push(Message { role: Role::User, content });
                    }
                    "assistant" => {
                        conversation_started = true;
                        for p in content {
                            push_part(req, Role::Assistant, p);
                        }
                    }
                    other => return Err(ParseError::invalid(j::path(&at, "role"), format!("unknown role `{other}`"))),
                }
            }
            "function_call" => {
                conversation_started = true;
                j::report_unknown(o, &["type", "call_id", "name", "arguments", "id", "status"], &at, NOT_CARRIED, d);
                let part = Part::ToolUse {
                    id: j::req_str(o, "call_id", &at)?.to_owned(),
                    name: j::req_str(o, "name", &at)?.to_owned(),
                    input: arguments_to_input(j::get_str(o, "arguments", &at)?.unwrap_or("")),
                };
                push_part(req, Role::Assistant, part);
            }
            "function_call_output" => {
                conversation_started = true;
                j::report_unknown(o, &["type", "call_id", "output", "id", "status"], &at, NOT_CARRIED, d);
                let content = parse_content(o.get("output").unwrap_or(&Value::Null), &j::path(&at, "output"), d)?;
                let part = Part::ToolResult { tool_use_id: j::req_str(o, "call_id", &at)?.to_owned(), content, is_error: false };
                req.messages.push(Message { role: Role::Tool, content: vec![part] });
            }
            "reasoning" => {
                conversation_started = true;
                j::report_unknown(o, &["type", "id", "summary", "encrypted_content", "content", "status"], &at, NOT_CARRIED, d);
                let part = Part::Thinking {
                    text: summary_text(o.get("summary")),
                    signature: j::get_str(o, "encrypted_content", &at)?.map(str::to_owned),
                };
                push_part(req, Role::Assistant, part);
            }
            other => d.push(Dropped::new(at, format!("input item type `{other}` is not supported"))),
        }
    }
    Ok(())
}

fn summary_text(summary: Option<&Value>) -> String {
    let texts: Vec<&str> =
        summary.and_then(Value::as_array).map(Vec::as_slice).unwrap_or(&[]).iter().map(|s| j::str_at(s, "text")).collect();
    texts.join("\n\n")
}

/// Content: a string or an array of `input_text`/`output_text`/`refusal`/`input_image` parts.
fn parse_content(v: &Value, at: &str, d: &mut Vec<Dropped>) -> Result<Vec<Part>, ParseError> {
    match v {
        Value::Null => Ok(Vec::new()),
        Value::String(s) => Ok(vec![Part::text(s.clone())]),
        Value::Array(items) => {
            let mut out = Vec::new();
            for (i, item) in items.iter().enumerate() {
                let p_at = j::index(at, i);
                let o = j::object(item, &p_at)?;
                match j::req_str(o, "type", &p_at)? {
                    "input_text" | "output_text" | "text" => {
                        if o.get("annotations").and_then(Value::as_array).is_some_and(|a| !a.is_empty()) {
                            d.push(Dropped::new(j::path(&p_at, "annotations"), NOT_CARRIED));
                        }
                        out.push(Part::text(j::req_str(o, "text", &p_at)?));
                    }
                    "refusal" => out.push(Part::text(j::req_str(o, "refusal", &p_at)?)),
                    "input_image" => match j::get_str(o, "image_url", &p_at)? {
                        Some(url) => out.push(Part::Image {
                            source: ImageSource::from_url(url),
                            detail: j::get_str(o, "detail", &p_at)?.filter(|d| *d != "auto").map(str::to_owned),
                        }),
                        None => d.push(Dropped::new(p_at, "images by file_id are not supported")),
                    },
                    other => d.push(Dropped::new(p_at, format!("content part type `{other}` is not supported"))),
                }
            }
            Ok(out)
        }
        _ => Err(ParseError::invalid(at, "expected a string or an array of content parts")),
    }
}

/// Write a request as a Responses body. Function tools are sent with `strict: false` unless
/// the client asked for strict mode, because Responses defaults to strict schemas, which
/// ordinary tool schemas do not satisfy.
pub fn write_request(req: &Request) -> (Value, Vec<Dropped>) {
    let mut d = Vec::new();
    let mut body = Map::new();
    body.insert("model".into(), json!(req.model));
    if !req.system.is_empty() {
        for (i, p) in req.system.iter().enumerate() {
            if p.cache_control.is_some() {
                d.push(Dropped::new(format!("system[{i}].cache_control"), "OpenAI caches prompts automatically"));
            }
        }
        let texts: Vec<&str> = req.system.iter().map(|p| p.text.as_str()).collect();
        body.insert("instructions".into(), json!(texts.join("\n\n")));
    }
    let mut input = Vec::new();
    for (i, m) in req.messages.iter().enumerate() {
        write_message(m, &format!("messages[{i}]"), &mut input, &mut d);
    }
    body.insert("input".into(), Value::Array(input));
    if !req.tools.is_empty() {
        let tools: Vec<Value> = req
            .tools
            .iter()
            .enumerate()
            .map(|(i, t)| {
                if t.cache_control.is_some() {
                    d.push(Dropped::new(format!("tools[{i}].cache_control"), "OpenAI caches prompts automatically"));
                }
                j::obj_of(vec![
                    ("type", Some(json!("function"))),
                    ("name", Some(json!(t.name))),
                    ("description", t.description.as_ref().map(|s| json!(s))),
                    ("parameters", Some(t.input_schema.clone())),
                    ("strict", Some(json!(t.strict.unwrap_or(false)))),
                ])
            })
            .collect();
        body.insert("tools".into(), Value::Array(tools));
        if let Some(choice) = &req.tool_choice {
            let v = match choice {
                ToolChoice::Auto => json!("auto"),
                ToolChoice::None => json!("none"),
                ToolChoice::Required => json!("required"),
                ToolChoice::Tool { name } => json!({"type": "function", "name": name}),
            };
            body.insert("tool_choice".into(), v);
        }
        if let Some(p) = req.parallel_tool_calls {
            body.insert("parallel_tool_calls".into(), json!(p));
        }
    } else if matches!(req.tool_choice, Some(ToolChoice::Required | ToolChoice::Tool { .. })) {
        d.push(Dropped::new("tool_choice", "no tools were given"));
    }
    if let Some(n) = req.max_tokens {
        body.insert("max_output_tokens".into(), json!(n));
    }
    if let Some(t) = req.temperature {
        body.insert("temperature".into(), json!(t));
    }
    if let Some(p) = req.top_p {
        body.insert("top_p".into(), json!(p));
    }
    if !req.stop.is_empty() {
        d.push(Dropped::new("stop", "OpenAI Responses has no stop sequences"));
    }
    if req.stream {
        body.insert("stream".into(), json!(true));
    }
    if let Some(user) = &req.user {
        body.insert("user".into(), json!(user));
    }
    if !req.metadata.is_empty() {
        body.insert("metadata".into(), Value::Object(req.metadata.clone()));
    }
    put_extra(req, Format::OpenAiResponses, &mut body, &mut d);
    (Value::Object(body), d)
}

/// Parts with their index in the original message, so reports point at the right place.
fn input_parts<'a>(parts: impl IntoIterator<Item = (usize, &'a Part)>, at: &str, d: &mut Vec<Dropped>) -> Vec<Value> {
    let mut out = Vec::new();
    for (k, p) in parts {
        let p_at = format!("{at}.content[{k}]");
        match p {
            Part::Text { text, cache_control } => {
                if cache_control.is_some() {
                    d.push(Dropped::new(format!("{p_at}.cache_control"), "OpenAI caches prompts automatically"));
                }
                out.push(json!({"type": "input_text", "text": text}));
            }
            Part::Image { source, detail } => {
                out.push(json!({"type": "input_image", "image_url": source.to_url(), "detail": detail.as_deref().unwrap_or("auto")}));
            }
            _ => d.push(Dropped::new(p_at, "not representable in this OpenAI Responses message")),
        }
    }
    out
}

fn write_message(m: &Message, at: &str, out: &mut Vec<Value>, d: &mut Vec<Dropped>) {
    match m.role {
        Role::System => {
            let content = input_parts(m.content.iter().enumerate(), at, d);
            out.push(json!({"type": "message", "role": "system", "content": content}));
        }
        Role::User | Role::Tool => {
            let mut rest = Vec::new();
            for (k, p) in m.content.iter().enumerate() {
                match p {
                    Part::ToolResult { tool_use_id, content, is_error } => {
                        let p_at = format!("{at}.content[{k}]");
                        if *is_error {
                            d.push(Dropped::new(format!("{p_at}.is_error"), "OpenAI tool outputs have no error flag"));
                        }
                        let mut text = String::new();
                        for (n, c) in content.iter().enumerate() {
                            match c {
                                Part::Text { text: t, .. } => text.push_str(t),
                                _ => d.push(Dropped::new(format!("{p_at}.content[{n}]"), "tool outputs are sent as text")),
                            }
                        }
                        out.push(json!({"type": "function_call_output", "call_id": tool_use_id, "output": text}));
                    }
                    other => rest.push((k, other)),
                }
            }
            if !rest.is_empty() {
                let content = input_parts(rest, at, d);
                if !content.is_empty() {
                    out.push(json!({"type": "message", "role": "user", "content": content}));
                }
            }
        }
        Role::Assistant => {
            let mut texts: Vec<Value> = Vec::new();
            let flush = |texts: &mut Vec<Value>, out: &mut Vec<Value>| {
                if !texts.is_empty() {
                    out.push(json!({"type": "message", "role": "assistant", "content": std::mem::take(texts)}));
                }
            };
            for (k, p) in m.content.iter().enumerate() {
                match p {
                    Part::Text { text, .. } if !text.is_empty() => texts.push(json!({"type": "output_text", "text": text})),
                    Part::Text { .. } => {}
                    Part::ToolUse { id, name, input } => {
                        flush(&mut texts, out);
                        out.push(json!({"type": "function_call", "call_id": id, "name": name, "arguments": input_to_arguments(input)}));
                    }
                    _ => d.push(Dropped::new(
                        format!("{at}.content[{k}]"),
                        "reasoning from another provider cannot be replayed to OpenAI Responses",
                    )),
                }
            }
            flush(&mut texts, out);
        }
    }
}

/// The conversation to remember after answering `req` with `resp`: the request's messages
/// plus the answer as an assistant turn. Store it under `resp.id` with [`ResponseStore::put`].
pub fn conversation_after(req: &Request, resp: &Response) -> Vec<Message> {
    let mut messages = req.messages.clone();
    messages.push(Message { role: Role::Assistant, content: resp.content.clone() });
    messages
}

// ---------------------------------------------------------------------------------------
// Responses
// ---------------------------------------------------------------------------------------

fn parse_usage(u: &Value) -> Usage {
    let input = j::count(Some(u), "input_tokens");
    let cached = j::count(u.get("input_tokens_details"), "cached_tokens");
    Usage {
        input: input.saturating_sub(cached),
        output: j::count(Some(u), "output_tokens"),
        cache_read: cached,
        cache_write: 0,
        reasoning: j::count(u.get("output_tokens_details"), "reasoning_tokens"),
    }
}

fn write_usage(u: &Usage) -> Value {
    json!({
        "input_tokens": u.prompt_tokens(),
        "input_tokens_details": {"cached_tokens": u.cache_read},
        "output_tokens": u.output,
        "output_tokens_details": {"reasoning_tokens": u.reasoning},
        "total_tokens": u.total_tokens(),
    })
}

/// A response object's `status` + `incomplete_details` → stop reason.
fn stop_from_status(resp: &Value, had_tool_use: bool) -> Option<StopReason> {
    match j::str_at(resp, "status") {
        "completed" if had_tool_use => Some(StopReason::ToolUse),
        "completed" => Some(StopReason::EndTurn),
        "incomplete" => Some(match resp.get("incomplete_details").map(|i| j::str_at(i, "reason")) {
            Some("max_output_tokens") => StopReason::MaxTokens,
            Some("content_filter") => StopReason::ContentFilter,
            Some(other) if !other.is_empty() => StopReason::Other(other.to_owned()),
            _ => StopReason::Other("incomplete".into()),
        }),
        "" => None,
        other => Some(StopReason::Other(other.to_owned())),
    }
}

/// Stop reason → (`status`, `incomplete_details`).
fn status_of(stop: Option<&StopReason>) -> (&'static str, Value) {
    match stop {
        Some(StopReason::MaxTokens | StopReason::ContextWindowExceeded) => ("incomplete", json!({"reason": "max_output_tokens"})),
        Some(StopReason::ContentFilter) => ("incomplete", json!({"reason": "content_filter"})),
        _ => ("completed", Value::Null),
    }
}

/// Parse a Responses response object.
pub fn parse_response(body: &[u8]) -> Result<(Response, Vec<Dropped>), ParseError> {
    let root = Value::Object(j::parse_object(body)?);
    let mut d = Vec::new();
    let mut content = Vec::new();
    for (i, item) in root.get("output").and_then(Value::as_array).map(Vec::as_slice).unwrap_or(&[]).iter().enumerate() {
        let at = format!("output[{i}]");
        match j::str_at(item, "type") {
            "message" => content.extend(parse_content(item.get("content").unwrap_or(&Value::Null), &format!("{at}.content"), &mut d)?),
            "function_call" => content.push(Part::ToolUse {
                id: j::str_at(item, "call_id").to_owned(),
                name: j::str_at(item, "name").to_owned(),
                input: arguments_to_input(j::str_at(item, "arguments")),
            }),
            "reasoning" => content.push(Part::Thinking {
                text: summary_text(item.get("summary")),
                signature: item.get("encrypted_content").and_then(Value::as_str).map(str::to_owned),
            }),
            other => d.push(Dropped::new(at, format!("output item type `{other}` is not supported"))),
        }
    }
    let had_tool_use = content.iter().any(|p| matches!(p, Part::ToolUse { .. }));
    let resp = Response {
        id: j::str_at(&root, "id").to_owned(),
        model: j::str_at(&root, "model").to_owned(),
        created: root.get("created_at").and_then(Value::as_u64),
        content,
        stop_reason: stop_from_status(&root, had_tool_use),
        stop_sequence: None,
        usage: root.get("usage").map(parse_usage).unwrap_or_default(),
    };
    Ok((resp, d))
}

/// Output item ids derived from the response id, so they are stable and unique per response.
fn item_id(prefix: &str, response_id: &str, n: usize) -> String {
    let base = response_id.split_once('_').map_or(response_id, |(_, rest)| rest);
    format!("{prefix}_{base}_{n}")
}

fn response_object(
    id: &str,
    model: &str,
    created: u64,
    stop: Option<&StopReason>,
    output: Vec<Value>,
    usage: Option<&Usage>,
    in_progress: bool,
) -> Value {
    let (status, incomplete) = if in_progress { ("in_progress", Value::Null) } else { status_of(stop) };
    json!({
        "id": id,
        "object": "response",
        "created_at": created,
        "status": status,
        "error": null,
        "incomplete_details": incomplete,
        "model": model,
        "output": output,
        "usage": usage.map(write_usage),
    })
}

fn text_item(id: String, texts: &[&str], status: &str) -> Value {
    let parts: Vec<Value> = texts.iter().map(|t| json!({"type": "output_text", "text": t, "annotations": []})).collect();
    json!({"type": "message", "id": id, "status": status, "role": "assistant", "content": parts})
}

/// A reasoning item; reasoning without text (a bare signature) has an empty summary.
fn reasoning_item(id: String, text: &str, signature: Option<&str>) -> Value {
    let summary = if text.is_empty() { json!([]) } else { json!([{"type": "summary_text", "text": text}]) };
    let mut item = json!({"type": "reasoning", "id": id, "summary": summary});
    if let Some(sig) = signature {
        item["encrypted_content"] = json!(sig);
    }
    item
}

fn call_item(id: String, call_id: &str, name: &str, arguments: &str, status: &str) -> Value {
    json!({"type": "function_call", "id": id, "call_id": call_id, "name": name, "arguments": arguments, "status": status})
}

/// Write a response as a Responses response object. Consecutive text parts share one
/// `message` item; thinking becomes a `reasoning` item whose signature travels as
/// `encrypted_content`.
pub fn write_response(resp: &Response) -> (Value, Vec<Dropped>) {
    let mut d = Vec::new();
    let mut output = Vec::new();
    let mut texts: Vec<&str> = Vec::new();
    let flush = |texts: &mut Vec<&str>, output: &mut Vec<Value>| {
        if !texts.is_empty() {
            let n = output.len();
            output.push(text_item(item_id("msg", &resp.id, n), texts, "completed"));
            texts.clear();
        }
    };
    for (i, p) in resp.content.iter().enumerate() {
        match p {
            Part::Text { text, .. } => texts.push(text),
            Part::Thinking { text, signature } => {
                flush(&mut texts, &mut output);
                let n = output.len();
                output.push(reasoning_item(item_id("rs", &resp.id, n), text, signature.as_deref()));
            }
            Part::ToolUse { id, name, input } => {
                flush(&mut texts, &mut output);
                let n = output.len();
                output.push(call_item(item_id("fc", &resp.id, n), id, name, &input_to_arguments(input), "completed"));
            }
            _ => d.push(Dropped::new(format!("content[{i}]"), "not representable in an OpenAI Responses answer")),
        }
    }
    flush(&mut texts, &mut output);
    let created = resp.created.unwrap_or_else(now_unix);
    (response_object(&resp.id, &resp.model, created, resp.stop_reason.as_ref(), output, Some(&resp.usage), false), d)
}

// ---------------------------------------------------------------------------------------
// Streams
// ---------------------------------------------------------------------------------------

/// What an open internal block belongs to in the Responses stream.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Key {
    /// A text content part: (output_index, content_index).
    Part(u64, u64),
    /// A function call or reasoning item: output_index.
    Item(u64),
}

/// Decodes a Responses event stream.
#[derive(Debug, Default)]
pub struct StreamParser {
    sse: SseDecoder,
    open: Vec<(Key, u32)>,
    next: u32,
    had_tool_use: bool,
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

    /// The upstream closed.
    pub fn finish(&mut self) -> Vec<StreamEvent> {
        let mut out = each_data(self.sse.finish(), |data, out| self.on_data(data, out));
        end_unfinished(&mut self.done, "response.completed", &mut out);
        out
    }

    fn find(&self, key: &Key) -> Option<u32> {
        self.open.iter().find(|(k, _)| k == key).map(|(_, i)| *i)
    }

    fn open(&mut self, key: Key) -> u32 {
        let index = self.next;
        self.next += 1;
        self.open.push((key, index));
        index
    }

    fn close(&mut self, key: &Key, out: &mut Vec<StreamEvent>) {
        if let Some(pos) = self.open.iter().position(|(k, _)| k == key) {
            let (_, index) = self.open.remove(pos);
            out.push(StreamEvent::BlockStop { index });
        }
    }

    /// The text block for a content part, opened on first sight.
    fn text_block(&mut self, key: Key, out: &mut Vec<StreamEvent>) -> u32 {
        if let Some(index) = self.find(&key) {
            return index;
        }
        let index = self.open(key);
        out.push(StreamEvent::BlockStart { index, kind: BlockKind::Text });
        index
    }

    fn on_data(&mut self, data: &str, out: &mut Vec<StreamEvent>) {
        if self.done {
            return;
        }
        let Some(ev) = parse_payload(data, "event", &mut self.done, out) else {
            return;
        };
        let output_index = ev.get("output_index").and_then(Value::as_u64).unwrap_or(0);
        let content_index = ev.get("content_index").and_then(Value::as_u64).unwrap_or(0);
        let item = ev.get("item").cloned().unwrap_or(Value::Null);
        match j::str_at(&ev, "type") {
            "response.created" => {
                let r = ev.get("response").cloned().unwrap_or(Value::Null);
                out.push(StreamEvent::MessageStart {
                    id: j::str_at(&r, "id").to_owned(),
                    model: j::str_at(&r, "model").to_owned(),
                    usage: Usage::default(),
                });
            }
            "response.output_item.added" => match j::str_at(&item, "type") {
                "function_call" => {
                    self.had_tool_use = true;
                    let index = self.open(Key::Item(output_index));
                    out.push(StreamEvent::ToolCallStart {
                        index,
                        id: j::str_at(&item, "call_id").to_owned(),
                        name: j::str_at(&item, "name").to_owned(),
                    });
                    let args = j::str_at(&item, "arguments");
                    if !args.is_empty() {
                        out.push(StreamEvent::ToolArgsDelta { index, fragment: args.to_owned() });
                    }
                }
                "reasoning" => {
                    let index = self.open(Key::Item(output_index));
                    out.push(StreamEvent::BlockStart { index, kind: BlockKind::Thinking });
                }
                _ => {}
            },
            "response.content_part.added" => {
                if matches!(ev.get("part").map(|p| j::str_at(p, "type")), Some("output_text" | "refusal")) {
                    self.text_block(Key::Part(output_index, content_index), out);
                }
            }
            "response.output_text.delta" | "response.refusal.delta" => {
                let index = self.text_block(Key::Part(output_index, content_index), out);
                out.push(StreamEvent::TextDelta { index, text: j::str_at(&ev, "delta").to_owned() });
            }
            "response.content_part.done" => self.close(&Key::Part(output_index, content_index), out),
            "response.function_call_arguments.delta" => {
                if let Some(index) = self.find(&Key::Item(output_index)) {
                    out.push(StreamEvent::ToolArgsDelta { index, fragment: j::str_at(&ev, "delta").to_owned() });
                }
            }
            // Several summary parts form one thinking block, separated like paragraphs.
            "response.reasoning_summary_part.added"
                if ev.get("summary_index").and_then(Value::as_u64).unwrap_or(0) > 0
                    && let Some(index) = self.find(&Key::Item(output_index)) =>
            {
                out.push(StreamEvent::ThinkingDelta { index, text: "\n\n".into() });
            }
            "response.reasoning_summary_text.delta" | "response.reasoning_text.delta" => {
                if let Some(index) = self.find(&Key::Item(output_index)) {
                    out.push(StreamEvent::ThinkingDelta { index, text: j::str_at(&ev, "delta").to_owned() });
                }
            }
            "response.output_item.done" => {
                if j::str_at(&item, "type") == "reasoning"
                    && let Some(index) = self.find(&Key::Item(output_index))
                    && let Some(sig) = item.get("encrypted_content").and_then(Value::as_str)
                {
                    out.push(StreamEvent::SignatureDelta { index, signature: sig.to_owned() });
                }
                self.close(&Key::Item(output_index), out);
                // Parts a provider left open close with their item.
                let parts: Vec<Key> =
                    self.open.iter().map(|(k, _)| k.clone()).filter(|k| matches!(k, Key::Part(o, _) if *o == output_index)).collect();
                for k in parts {
                    self.close(&k, out);
                }
            }
            "response.completed" | "response.incomplete" => {
                let r = ev.get("response").cloned().unwrap_or(Value::Null);
                let open: Vec<Key> = self.open.iter().map(|(k, _)| k.clone()).collect();
                for k in open {
                    self.close(&k, out);
                }
                self.done = true;
                out.push(StreamEvent::MessageDelta {
                    stop_reason: stop_from_status(&r, self.had_tool_use),
                    stop_sequence: None,
                    usage: r.get("usage").map(parse_usage).unwrap_or_default(),
                });
                out.push(StreamEvent::MessageStop);
            }
            "response.failed" => {
                let e = ev.get("response").and_then(|r| r.get("error")).cloned().unwrap_or(Value::Null);
                fail(
                    &mut self.done,
                    out,
                    ErrorKind::from_openai(None, e.get("code").and_then(Value::as_str)),
                    j::str_at(&e, "message").to_owned(),
                );
            }
            "error" => {
                fail(
                    &mut self.done,
                    out,
                    ErrorKind::from_openai(None, ev.get("code").and_then(Value::as_str)),
                    j::str_at(&ev, "message").to_owned(),
                );
            }
            _ => {}
        }
    }
}

#[derive(Debug)]
enum ItemKind {
    Text,
    Reasoning,
    Call { call_id: String, name: String },
    Skipped,
}

#[derive(Debug)]
struct OpenItem {
    block: u32,
    output_index: usize,
    id: String,
    kind: ItemKind,
    buf: String,
    signature: String,
    /// A reasoning summary part was announced (only once text arrives).
    part_open: bool,
}

/// Encodes internal events as a Responses event stream: each content block becomes an output
/// item with its added/delta/done events, and `response.completed` (or
/// `response.incomplete`) repeats the whole response with usage.
#[derive(Debug, Default)]
pub struct StreamWriter {
    created: u64,
    seq: u64,
    id: String,
    model: String,
    output: Vec<Value>,
    current: Option<OpenItem>,
    stop: Option<StopReason>,
    usage: Option<Usage>,
    dropped: Vec<Dropped>,
}

impl StreamWriter {
    /// A writer at the start of a stream.
    pub fn new(opts: StreamOptions) -> Self {
        StreamWriter { created: opts.created.unwrap_or_else(now_unix), ..Self::default() }
    }

    fn emit(&mut self, kind: &str, fields: Value) -> Vec<u8> {
        let mut ev = Map::new();
        ev.insert("type".into(), json!(kind));
        if let Value::Object(fields) = fields {
            ev.extend(fields);
        }
        ev.insert("sequence_number".into(), json!(self.seq));
        self.seq += 1;
        encode(Some(kind), &Value::Object(ev).to_string())
    }

    fn open_item(&mut self, block: u32, kind: ItemKind, prefix: &str) -> (usize, String) {
        let output_index = self.output.len() + usize::from(self.current.is_some());
        let id = item_id(prefix, &self.id, output_index);
        self.current =
            Some(OpenItem { block, output_index, id: id.clone(), kind, buf: String::new(), signature: String::new(), part_open: false });
        (output_index, id)
    }

    /// Encode one event.
    pub fn write(&mut self, event: &StreamEvent) -> Vec<u8> {
        let mut out = Vec::new();
        match event {
            StreamEvent::MessageStart { id, model, .. } => {
                self.id.clone_from(id);
                self.model.clone_from(model);
                let r = response_object(id, model, self.created, None, Vec::new(), None, true);
                out.extend(self.emit("response.created", json!({"response": r})));
                out.extend(self.emit("response.in_progress", json!({"response": r})));
            }
            StreamEvent::BlockStart { index, kind } => {
                out.extend(self.close_current());
                match kind {
                    BlockKind::Text => {
                        let (n, id) = self.open_item(*index, ItemKind::Text, "msg");
                        out.extend(self.emit(
                            "response.output_item.added",
                            json!({"output_index": n, "item": text_item(id.clone(), &[], "in_progress")}),
                        ));
                        out.extend(self.emit(
                            "response.content_part.added",
                            json!({"item_id": id, "output_index": n, "content_index": 0, "part": {"type": "output_text", "text": "", "annotations": []}}),
                        ));
                    }
                    BlockKind::Thinking => {
                        let (n, id) = self.open_item(*index, ItemKind::Reasoning, "rs");
                        out.extend(self.emit(
                            "response.output_item.added",
                            json!({"output_index": n, "item": {"type": "reasoning", "id": id, "summary": []}}),
                        ));
                    }
                    BlockKind::RedactedThinking { .. } => {
                        self.dropped.push(Dropped::new(format!("content[{index}]"), "redacted reasoning has no OpenAI Responses form"));
                        self.open_item(*index, ItemKind::Skipped, "");
                    }
                }
            }
            StreamEvent::ToolCallStart { index, id: call_id, name } => {
                out.extend(self.close_current());
                let (n, id) = self.open_item(*index, ItemKind::Call { call_id: call_id.clone(), name: name.clone() }, "fc");
                out.extend(self.emit(
                    "response.output_item.added",
                    json!({"output_index": n, "item": call_item(id, call_id, name, "", "in_progress")}),
                ));
            }
            StreamEvent::TextDelta { index, text } => {
                if let Some((n, id)) = self.append(*index, text) {
                    out.extend(
                        self.emit(
                            "response.output_text.delta",
                            json!({"item_id": id, "output_index": n, "content_index": 0, "delta": text}),
                        ),
                    );
                }
            }
            StreamEvent::ThinkingDelta { index, text } => {
                if let Some((n, id)) = self.append(*index, text) {
                    // The summary part is announced with the first text, so reasoning that is
                    // only a signature has no empty summary.
                    if let Some(item) = self.current.as_mut().filter(|c| !c.part_open) {
                        item.part_open = true;
                        out.extend(self.emit(
                            "response.reasoning_summary_part.added",
                            json!({"item_id": id, "output_index": n, "summary_index": 0, "part": {"type": "summary_text", "text": ""}}),
                        ));
                    }
                    out.extend(self.emit(
                        "response.reasoning_summary_text.delta",
                        json!({"item_id": id, "output_index": n, "summary_index": 0, "delta": text}),
                    ));
                }
            }
            StreamEvent::ToolArgsDelta { index, fragment } => {
                if let Some((n, id)) = self.append(*index, fragment) {
                    out.extend(
                        self.emit("response.function_call_arguments.delta", json!({"item_id": id, "output_index": n, "delta": fragment})),
                    );
                }
            }
            StreamEvent::SignatureDelta { index, signature } => {
                if let Some(item) = self.current.as_mut().filter(|c| c.block == *index) {
                    item.signature.push_str(signature);
                }
            }
            StreamEvent::BlockStop { index } => {
                if self.current.as_ref().is_some_and(|c| c.block == *index) {
                    out.extend(self.close_current());
                }
            }
            StreamEvent::MessageDelta { stop_reason, usage, .. } => {
                out.extend(self.close_current());
                self.stop.clone_from(stop_reason);
                self.usage = Some(usage.clone());
            }
            StreamEvent::MessageStop => {
                out.extend(self.close_current());
                let output = std::mem::take(&mut self.output);
                let r = response_object(&self.id, &self.model, self.created, self.stop.as_ref(), output, self.usage.as_ref(), false);
                let kind = if r["status"] == "incomplete" { "response.incomplete" } else { "response.completed" };
                out.extend(self.emit(kind, json!({"response": r})));
            }
            StreamEvent::Ping => out.extend_from_slice(b": ping\n\n"),
            StreamEvent::Error { kind, message } => {
                out.extend(self.emit("error", json!({"code": kind.openai_type(), "message": message, "param": null})));
            }
        }
        out
    }

    /// Append to the open item if it is block `index`; its output index and id.
    fn append(&mut self, index: u32, text: &str) -> Option<(usize, String)> {
        let item = self.current.as_mut().filter(|c| c.block == index && !matches!(c.kind, ItemKind::Skipped))?;
        item.buf.push_str(text);
        Some((item.output_index, item.id.clone()))
    }

    fn close_current(&mut self) -> Vec<u8> {
        let Some(item) = self.current.take() else { return Vec::new() };
        let mut out = Vec::new();
        let (n, id) = (item.output_index, item.id.clone());
        match &item.kind {
            ItemKind::Text => {
                let part = json!({"type": "output_text", "text": item.buf, "annotations": []});
                out.extend(
                    self.emit("response.output_text.done", json!({"item_id": id, "output_index": n, "content_index": 0, "text": item.buf})),
                );
                out.extend(
                    self.emit("response.content_part.done", json!({"item_id": id, "output_index": n, "content_index": 0, "part": part})),
                );
                let done = text_item(id, &[item.buf.as_str()], "completed");
                out.extend(self.emit("response.output_item.done", json!({"output_index": n, "item": done})));
                self.output.push(done);
            }
            ItemKind::Reasoning => {
                if item.part_open {
                    out.extend(self.emit(
                        "response.reasoning_summary_text.done",
                        json!({"item_id": id, "output_index": n, "summary_index": 0, "text": item.buf}),
                    ));
                    out.extend(self.emit(
                        "response.reasoning_summary_part.done",
                        json!({"item_id": id, "output_index": n, "summary_index": 0, "part": {"type": "summary_text", "text": item.buf}}),
                    ));
                }
                let sig = Some(item.signature.as_str()).filter(|s| !s.is_empty());
                let done = reasoning_item(id, &item.buf, sig);
                out.extend(self.emit("response.output_item.done", json!({"output_index": n, "item": done})));
                self.output.push(done);
            }
            ItemKind::Call { call_id, name } => {
                out.extend(
                    self.emit("response.function_call_arguments.done", json!({"item_id": id, "output_index": n, "arguments": item.buf})),
                );
                let done = call_item(id, call_id, name, &item.buf, "completed");
                out.extend(self.emit("response.output_item.done", json!({"output_index": n, "item": done})));
                self.output.push(done);
            }
            ItemKind::Skipped => {}
        }
        out
    }

    /// Responses streams end with `response.completed`; nothing follows.
    pub fn finish(&mut self) -> Vec<u8> {
        Vec::new()
    }
}

impl_stream_traits!(StreamParser, StreamWriter);
