//! OpenAI Chat Completions (`/v1/chat/completions`): parser and writer for requests, responses
//! and streams. Azure OpenAI and OpenAI-compatible servers speak the same format; the hub
//! picks the URL and auth header.
//!
//! Chat has no content blocks: an assistant turn is a `content` string plus `tool_calls`, and a
//! stream is a series of deltas. Parsers synthesise blocks (text, then tool calls in order);
//! writers flatten them. Reasoning is read from and written to `reasoning_content`, the field
//! OpenAI-compatible servers use (official OpenAI models do not return reasoning text).

use serde_json::{Map, Value, json};

use crate::Format;
use crate::error::{Dropped, ErrorKind, ParseError};
use crate::json::{self as j, Obj};
use crate::model::{
    ImageSource, Message, Part, Request, Response, Role, StopReason, StreamEvent, SystemPart, Tool, ToolChoice, Usage, arguments_to_input,
    input_to_arguments,
};
use crate::put_extra;
use crate::sse::{SseDecoder, encode};
use crate::stream::{Blocks, StreamOptions, each_data, end_unfinished, fail, impl_stream_traits, now_unix, parse_payload};
use crate::tokens::wants_max_completion_tokens;

const NOT_CARRIED: &str = "not carried by the translation";
const AUTO_CACHE: &str = "OpenAI caches prompts automatically";

// ---------------------------------------------------------------------------------------
// Requests
// ---------------------------------------------------------------------------------------

/// Parse an OpenAI Chat Completions request body.
///
/// `system`/`developer` messages before the first other message form [`Request::system`];
/// later ones stay in place as [`Role::System`] turns. `max_completion_tokens` wins over
/// `max_tokens`. Tool-call `arguments` strings become objects (see [`arguments_to_input`]).
pub fn parse_request(body: &[u8]) -> Result<(Request, Vec<Dropped>), ParseError> {
    let root = j::parse_object(body)?;
    let mut d = Vec::new();
    let mut req = Request { source: Some(Format::OpenAiChat), ..Request::default() };
    let mut max_tokens = None;
    let mut max_completion_tokens = None;
    for (key, value) in &root {
        match key.as_str() {
            "model" => req.model = j::string(value, "model")?,
            "messages" => parse_messages(j::array(value, "messages")?, &mut req, &mut d)?,
            "tools" => {
                for (i, t) in j::array(value, "tools")?.iter().enumerate() {
                    let at = j::index("tools", i);
                    let o = j::object(t, &at)?;
                    if j::get_str(o, "type", &at)?.unwrap_or("function") != "function" {
                        d.push(Dropped::new(at, "only function tools are supported"));
                        continue;
                    }
                    let f_at = j::path(&at, "function");
                    let f = j::object(o.get("function").unwrap_or(&Value::Null), &f_at)?;
                    j::report_unknown(f, &["name", "description", "parameters", "strict"], &f_at, NOT_CARRIED, &mut d);
                    req.tools.push(Tool {
                        name: j::req_str(f, "name", &f_at)?.to_owned(),
                        description: j::get_str(f, "description", &f_at)?.map(str::to_owned),
                        input_schema: f.get("parameters").cloned().unwrap_or_else(|| json!({"type": "object", "properties": {}})),
                        strict: f.get("strict").and_then(Value::as_bool),
                        cache_control: o.get("cache_control").filter(|c| !c.is_null()).cloned(),
                    });
                }
            }
            "tool_choice" => req.tool_choice = parse_tool_choice(value, &mut d)?,
            "parallel_tool_calls" => req.parallel_tool_calls = j::opt_bool(value, key)?,
            "max_tokens" => max_tokens = j::opt_u32(value, key)?,
            "max_completion_tokens" => max_completion_tokens = j::opt_u32(value, key)?,
            "temperature" => req.temperature = j::opt_f64(value, key)?,
            "top_p" => req.top_p = j::opt_f64(value, key)?,
            "stop" => req.stop = j::strings(value, key)?,
            "stream" => req.stream = j::opt_bool(value, key)?.unwrap_or(false),
            "stream_options" if !value.is_null() => {
                let o = j::object(value, key)?;
                req.include_usage =
                    j::opt_bool(o.get("include_usage").unwrap_or(&Value::Null), "stream_options.include_usage")?.unwrap_or(false);
                j::report_unknown(o, &["include_usage"], key, NOT_CARRIED, &mut d);
            }
            "user" => req.user = j::get_str(&root, key, "")?.map(str::to_owned),
            "metadata" if !value.is_null() => req.metadata = j::object(value, key)?.clone(),
            _ if value.is_null() => {}
            _ => {
                req.extra.insert(key.clone(), value.clone());
            }
        }
    }
    req.max_tokens = max_completion_tokens.or(max_tokens);
    if req.model.is_empty() {
        return Err(ParseError::invalid("model", "required"));
    }
    Ok((req, d))
}

fn parse_tool_choice(value: &Value, d: &mut Vec<Dropped>) -> Result<Option<ToolChoice>, ParseError> {
    Ok(match value {
        Value::Null => None,
        Value::String(s) => match s.as_str() {
            "auto" => Some(ToolChoice::Auto),
            "none" => Some(ToolChoice::None),
            "required" => Some(ToolChoice::Required),
            other => return Err(ParseError::invalid("tool_choice", format!("unknown tool choice `{other}`"))),
        },
        Value::Object(o) => match j::get_str(o, "type", "tool_choice")? {
            Some("function") => {
                let f = j::object(o.get("function").unwrap_or(&Value::Null), "tool_choice.function")?;
                Some(ToolChoice::Tool { name: j::req_str(f, "name", "tool_choice.function")?.to_owned() })
            }
            other => {
                d.push(Dropped::new("tool_choice", format!("tool choice type `{}` is not supported", other.unwrap_or(""))));
                None
            }
        },
        _ => return Err(ParseError::invalid("tool_choice", "expected a string or an object")),
    })
}

fn parse_messages(items: &[Value], req: &mut Request, d: &mut Vec<Dropped>) -> Result<(), ParseError> {
    let mut conversation_started = false;
    for (i, m) in items.iter().enumerate() {
        let at = j::index("messages", i);
        let o = j::object(m, &at)?;
        let content_at = j::path(&at, "content");
        let content = o.get("content").unwrap_or(&Value::Null);
        match j::req_str(o, "role", &at)? {
            "system" | "developer" => {
                j::report_unknown(o, &["role", "content"], &at, NOT_CARRIED, d);
                let parts = parse_content(content, &content_at, d)?;
                if conversation_started {
                    req.messages.push(Message { role: Role::System, content: parts });
                } else {
                    for p in parts {
                        match p {
                            Part::Text { text, cache_control } => req.system.push(SystemPart { text, cache_control }),
                            _ => d.push(Dropped::new(&content_at, "system messages hold only text")),
                        }
                    }
                }
            }
            "user" => {
                conversation_started = true;
                j::report_unknown(o, &["role", "content"], &at, NOT_CARRIED, d);
                req.messages.push(Message { role: Role::User, content: parse_content(content, &content_at, d)? });
            }
            "assistant" => {
                conversation_started = true;
                j::report_unknown(o, &["role", "content", "tool_calls", "reasoning_content", "reasoning", "refusal"], &at, NOT_CARRIED, d);
                let mut parts = Vec::new();
                for key in ["reasoning_content", "reasoning"] {
                    if let Some(text) = j::get_str(o, key, &at)? {
                        parts.push(Part::Thinking { text: text.to_owned(), signature: None });
                    }
                }
                parts.extend(
                    parse_content(content, &content_at, d)?
                        .into_iter()
                        .filter(|p| !matches!(p, Part::Text { text, .. } if text.is_empty())),
                );
                if let Some(refusal) = j::get_str(o, "refusal", &at)? {
                    parts.push(Part::text(refusal));
                }
                for (k, call) in j::array(o.get("tool_calls").unwrap_or(&Value::Null), &j::path(&at, "tool_calls"))?.iter().enumerate() {
                    parts.push(parse_tool_call(call, &format!("{at}.tool_calls[{k}]"), d)?);
                }
                req.messages.push(Message { role: Role::Assistant, content: parts });
            }
            "tool" => {
                conversation_started = true;
                j::report_unknown(o, &["role", "content", "tool_call_id"], &at, NOT_CARRIED, d);
                let result = Part::ToolResult {
                    tool_use_id: j::req_str(o, "tool_call_id", &at)?.to_owned(),
                    content: parse_content(content, &content_at, d)?,
                    is_error: false,
                };
                req.messages.push(Message { role: Role::Tool, content: vec![result] });
            }
            "function" => d.push(Dropped::new(at, "legacy `function` messages are not supported; use tool messages")),
            other => return Err(ParseError::invalid(j::path(&at, "role"), format!("unknown role `{other}`"))),
        }
    }
    Ok(())
}

fn parse_tool_call(call: &Value, at: &str, d: &mut Vec<Dropped>) -> Result<Part, ParseError> {
    let o = j::object(call, at)?;
    j::report_unknown(o, &["id", "type", "function", "index"], at, NOT_CARRIED, d);
    let f_at = j::path(at, "function");
    let f = j::object(o.get("function").unwrap_or(&Value::Null), &f_at)?;
    Ok(Part::ToolUse {
        id: j::req_str(o, "id", at)?.to_owned(),
        name: j::req_str(f, "name", &f_at)?.to_owned(),
        input: arguments_to_input(j::get_str(f, "arguments", &f_at)?.unwrap_or("")),
    })
}

/// Message content: a string or an array of parts (`text`, `image_url`; `refusal` read as text).
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
                    "text" => {
                        // Some clients put Anthropic's cache_control on Chat parts; keep it.
                        j::report_unknown(o, &["type", "text", "cache_control"], &p_at, NOT_CARRIED, d);
                        out.push(Part::Text {
                            text: j::req_str(o, "text", &p_at)?.to_owned(),
                            cache_control: o.get("cache_control").filter(|c| !c.is_null()).cloned(),
                        });
                    }
                    "refusal" => out.push(Part::text(j::req_str(o, "refusal", &p_at)?)),
                    "image_url" => {
                        j::report_unknown(o, &["type", "image_url"], &p_at, NOT_CARRIED, d);
                        let img_at = j::path(&p_at, "image_url");
                        let (url, detail) = match o.get("image_url") {
                            Some(Value::String(url)) => (url.as_str(), None),
                            Some(Value::Object(img)) => (j::req_str(img, "url", &img_at)?, j::get_str(img, "detail", &img_at)?),
                            _ => return Err(ParseError::invalid(img_at, "expected an object with `url`")),
                        };
                        out.push(Part::Image { source: ImageSource::from_url(url), detail: detail.map(str::to_owned) });
                    }
                    other => d.push(Dropped::new(p_at, format!("content part type `{other}` is not supported"))),
                }
            }
            Ok(out)
        }
        _ => Err(ParseError::invalid(at, "expected a string or an array of content parts")),
    }
}

/// Write a request as an OpenAI Chat Completions body.
///
/// OpenAI reasoning models get `max_completion_tokens`, others `max_tokens` (see
/// [`wants_max_completion_tokens`]). Streams always ask for usage
/// (`stream_options.include_usage`), whatever the client asked, so usage can be charged.
pub fn write_request(req: &Request) -> (Value, Vec<Dropped>) {
    let mut d = Vec::new();
    let mut body = Map::new();
    body.insert("model".into(), json!(req.model));
    let mut messages = Vec::new();
    if !req.system.is_empty() {
        for (i, p) in req.system.iter().enumerate() {
            if p.cache_control.is_some() {
                d.push(Dropped::new(format!("system[{i}].cache_control"), AUTO_CACHE));
            }
        }
        let content = if req.system.len() == 1 {
            json!(req.system[0].text)
        } else {
            Value::Array(req.system.iter().map(|p| json!({"type": "text", "text": p.text})).collect())
        };
        messages.push(json!({"role": "system", "content": content}));
    }
    for (i, m) in req.messages.iter().enumerate() {
        write_message(m, &format!("messages[{i}]"), &mut messages, &mut d);
    }
    body.insert("messages".into(), Value::Array(messages));
    if !req.tools.is_empty() {
        let tools = req
            .tools
            .iter()
            .enumerate()
            .map(|(i, t)| {
                if t.cache_control.is_some() {
                    d.push(Dropped::new(format!("tools[{i}].cache_control"), AUTO_CACHE));
                }
                let f = j::obj_of(vec![
                    ("name", Some(json!(t.name))),
                    ("description", t.description.as_ref().map(|s| json!(s))),
                    ("parameters", Some(t.input_schema.clone())),
                    ("strict", t.strict.map(|s| json!(s))),
                ]);
                json!({"type": "function", "function": f})
            })
            .collect();
        body.insert("tools".into(), Value::Array(tools));
        if let Some(choice) = &req.tool_choice {
            body.insert("tool_choice".into(), tool_choice_value(choice));
        }
        // OpenAI rejects parallel_tool_calls without tools.
        if let Some(p) = req.parallel_tool_calls {
            body.insert("parallel_tool_calls".into(), json!(p));
        }
    } else if matches!(req.tool_choice, Some(ToolChoice::Required | ToolChoice::Tool { .. })) {
        d.push(Dropped::new("tool_choice", "no tools were given"));
    }
    if let Some(n) = req.max_tokens {
        let key = if wants_max_completion_tokens(&req.model) { "max_completion_tokens" } else { "max_tokens" };
        body.insert(key.into(), json!(n));
    }
    if let Some(t) = req.temperature {
        body.insert("temperature".into(), json!(t));
    }
    if let Some(p) = req.top_p {
        body.insert("top_p".into(), json!(p));
    }
    if !req.stop.is_empty() {
        body.insert("stop".into(), json!(req.stop));
    }
    if req.stream {
        body.insert("stream".into(), json!(true));
        body.insert("stream_options".into(), json!({"include_usage": true}));
    }
    if let Some(user) = &req.user {
        body.insert("user".into(), json!(user));
    }
    if !req.metadata.is_empty() {
        body.insert("metadata".into(), Value::Object(req.metadata.clone()));
    }
    put_extra(req, Format::OpenAiChat, &mut body, &mut d);
    (Value::Object(body), d)
}

fn tool_choice_value(choice: &ToolChoice) -> Value {
    match choice {
        ToolChoice::Auto => json!("auto"),
        ToolChoice::None => json!("none"),
        ToolChoice::Required => json!("required"),
        ToolChoice::Tool { name } => json!({"type": "function", "function": {"name": name}}),
    }
}

/// Parts with their index in the original message, so reports point at the right place.
fn content_parts<'a>(parts: impl IntoIterator<Item = (usize, &'a Part)>, at: &str, d: &mut Vec<Dropped>) -> Vec<Value> {
    let mut out = Vec::new();
    for (k, p) in parts {
        let p_at = format!("{at}.content[{k}]");
        match p {
            Part::Text { text, cache_control } => {
                if cache_control.is_some() {
                    d.push(Dropped::new(format!("{p_at}.cache_control"), AUTO_CACHE));
                }
                out.push(json!({"type": "text", "text": text}));
            }
            Part::Image { source, detail } => {
                let mut img = json!({"url": source.to_url()});
                if let Some(detail) = detail {
                    img["detail"] = json!(detail);
                }
                out.push(json!({"type": "image_url", "image_url": img}));
            }
            Part::Thinking { .. } | Part::RedactedThinking { .. } => {
                d.push(Dropped::new(p_at, "OpenAI Chat does not accept reasoning in requests"));
            }
            Part::ToolUse { .. } | Part::ToolResult { .. } => d.push(Dropped::new(p_at, "tool content out of place")),
        }
    }
    out
}

/// A single text part is sent as a plain string, the common form.
fn simplify(parts: Vec<Value>) -> Value {
    if parts.len() == 1 && parts[0]["type"] == "text" {
        return parts[0]["text"].clone();
    }
    Value::Array(parts)
}

fn write_tool_result(tool_use_id: &str, content: &[Part], is_error: bool, at: &str, d: &mut Vec<Dropped>) -> Value {
    if is_error {
        d.push(Dropped::new(format!("{at}.is_error"), "OpenAI tool messages have no error flag"));
    }
    let mut text = String::new();
    for (k, p) in content.iter().enumerate() {
        match p {
            Part::Text { text: t, .. } => text.push_str(t),
            _ => d.push(Dropped::new(format!("{at}.content[{k}]"), "OpenAI tool messages hold only text")),
        }
    }
    json!({"role": "tool", "tool_call_id": tool_use_id, "content": text})
}

fn write_message(m: &Message, at: &str, out: &mut Vec<Value>, d: &mut Vec<Dropped>) {
    match m.role {
        Role::System => {
            let parts = content_parts(m.content.iter().enumerate(), at, d);
            out.push(json!({"role": "system", "content": simplify(parts)}));
        }
        Role::User | Role::Tool => {
            // Tool results become `role:"tool"` messages, before the rest of the turn: OpenAI
            // wants them right after the assistant message that made the calls.
            let mut rest = Vec::new();
            for (k, p) in m.content.iter().enumerate() {
                match p {
                    Part::ToolResult { tool_use_id, content, is_error } => {
                        out.push(write_tool_result(tool_use_id, content, *is_error, &format!("{at}.content[{k}]"), d));
                    }
                    other => rest.push((k, other)),
                }
            }
            if !rest.is_empty() {
                let parts = content_parts(rest, at, d);
                if !parts.is_empty() {
                    out.push(json!({"role": "user", "content": simplify(parts)}));
                }
            }
        }
        Role::Assistant => {
            let mut texts = Vec::new();
            let mut calls = Vec::new();
            for (k, p) in m.content.iter().enumerate() {
                match p {
                    Part::Text { text, .. } if !text.is_empty() => texts.push(json!({"type": "text", "text": text})),
                    Part::Text { .. } => {}
                    Part::ToolUse { id, name, input } => calls.push(json!({
                        "id": id, "type": "function", "function": {"name": name, "arguments": input_to_arguments(input)}
                    })),
                    _ => d.push(Dropped::new(format!("{at}.content[{k}]"), "OpenAI assistant messages hold only text and tool calls")),
                }
            }
            let mut msg = json!({"role": "assistant", "content": if texts.is_empty() { Value::Null } else { simplify(texts) }});
            if !calls.is_empty() {
                msg["tool_calls"] = Value::Array(calls);
            }
            out.push(msg);
        }
    }
}

// ---------------------------------------------------------------------------------------
// Responses
// ---------------------------------------------------------------------------------------

/// OpenAI `finish_reason` → internal. `stop` with tool calls means the model waits for results.
pub fn stop_from_openai(reason: &str, had_tool_use: bool) -> StopReason {
    match reason {
        "stop" if had_tool_use => StopReason::ToolUse,
        "stop" => StopReason::EndTurn,
        "length" => StopReason::MaxTokens,
        "tool_calls" | "function_call" => StopReason::ToolUse,
        "content_filter" => StopReason::ContentFilter,
        other => StopReason::Other(other.to_owned()),
    }
}

/// Internal → OpenAI `finish_reason`: `end_turn`/`stop_sequence` → `stop`, `max_tokens` →
/// `length`, `tool_use` → `tool_calls`, refusal → `content_filter`.
///
/// If any tool call was emitted the answer is `tool_calls`, whatever the provider said — except
/// when output was cut short (`length`) or filtered: the calls' arguments may be incomplete and
/// must not look runnable. `pause_turn` becomes `stop` (Chat cannot ask for a continuation),
/// and an exceeded context window `length`.
pub fn finish_reason(reason: Option<&StopReason>, had_tool_use: bool) -> &'static str {
    match reason {
        Some(StopReason::MaxTokens | StopReason::ContextWindowExceeded) => "length",
        Some(StopReason::ContentFilter) => "content_filter",
        _ if had_tool_use => "tool_calls",
        Some(StopReason::ToolUse) => "tool_calls",
        _ => "stop",
    }
}

fn parse_usage(u: &Value) -> Usage {
    let prompt = j::count(Some(u), "prompt_tokens");
    let cached = j::count(u.get("prompt_tokens_details"), "cached_tokens");
    Usage {
        input: prompt.saturating_sub(cached),
        output: j::count(Some(u), "completion_tokens"),
        cache_read: cached,
        cache_write: 0,
        reasoning: j::count(u.get("completion_tokens_details"), "reasoning_tokens"),
    }
}

/// OpenAI usage: `prompt_tokens` counts cached input too (`input + cache_read + cache_write`).
pub(crate) fn write_usage(u: &Usage) -> Value {
    json!({
        "prompt_tokens": u.prompt_tokens(),
        "completion_tokens": u.output,
        "total_tokens": u.total_tokens(),
        "prompt_tokens_details": {"cached_tokens": u.cache_read},
        "completion_tokens_details": {"reasoning_tokens": u.reasoning},
    })
}

/// Parse an OpenAI Chat Completions response body (the first choice).
pub fn parse_response(body: &[u8]) -> Result<(Response, Vec<Dropped>), ParseError> {
    let root = j::parse_object(body)?;
    let mut d = Vec::new();
    let choices = j::array(root.get("choices").unwrap_or(&Value::Null), "choices")?;
    if choices.len() > 1 {
        d.push(Dropped::new("choices[1..]", "only the first choice is translated"));
    }
    let mut content = Vec::new();
    let mut finish = None;
    if let Some(choice) = choices.first() {
        let msg: &Obj = j::object(choice.get("message").unwrap_or(&Value::Null), "choices[0].message")?;
        for key in ["reasoning_content", "reasoning"] {
            if let Some(text) = msg.get(key).and_then(Value::as_str) {
                content.push(Part::Thinking { text: text.to_owned(), signature: None });
            }
        }
        for p in parse_content(msg.get("content").unwrap_or(&Value::Null), "choices[0].message.content", &mut d)? {
            if !matches!(&p, Part::Text { text, .. } if text.is_empty()) {
                content.push(p);
            }
        }
        if let Some(refusal) = msg.get("refusal").and_then(Value::as_str) {
            content.push(Part::text(refusal));
        }
        let calls = j::array(msg.get("tool_calls").unwrap_or(&Value::Null), "choices[0].message.tool_calls")?;
        for (k, call) in calls.iter().enumerate() {
            content.push(parse_tool_call(call, &format!("choices[0].message.tool_calls[{k}]"), &mut d)?);
        }
        finish = choice.get("finish_reason").and_then(Value::as_str).map(str::to_owned);
    }
    let had_tool_use = content.iter().any(|p| matches!(p, Part::ToolUse { .. }));
    let resp = Response {
        id: root.get("id").and_then(Value::as_str).unwrap_or("").to_owned(),
        model: root.get("model").and_then(Value::as_str).unwrap_or("").to_owned(),
        created: root.get("created").and_then(Value::as_u64),
        content,
        stop_reason: finish.map(|f| stop_from_openai(&f, had_tool_use)),
        stop_sequence: None,
        usage: root.get("usage").map(parse_usage).unwrap_or_default(),
    };
    Ok((resp, d))
}

/// Write a response as an OpenAI Chat Completions body. Thinking goes to `reasoning_content`;
/// its signature cannot be carried.
pub fn write_response(resp: &Response) -> (Value, Vec<Dropped>) {
    let mut d = Vec::new();
    let mut text = String::new();
    let mut reasoning = String::new();
    let mut calls = Vec::new();
    for (i, p) in resp.content.iter().enumerate() {
        match p {
            Part::Text { text: t, .. } => text.push_str(t),
            Part::Thinking { text: t, signature } => {
                reasoning.push_str(t);
                if signature.is_some() {
                    d.push(Dropped::new(format!("content[{i}].signature"), "OpenAI Chat has no reasoning signature"));
                }
            }
            Part::ToolUse { id, name, input } => calls.push(json!({
                "id": id, "type": "function", "function": {"name": name, "arguments": input_to_arguments(input)}
            })),
            _ => d.push(Dropped::new(format!("content[{i}]"), "not representable in an OpenAI Chat answer")),
        }
    }
    let mut message = json!({"role": "assistant", "content": if text.is_empty() && !calls.is_empty() { Value::Null } else { json!(text) }});
    if !reasoning.is_empty() {
        message["reasoning_content"] = json!(reasoning);
    }
    if !calls.is_empty() {
        message["tool_calls"] = Value::Array(calls.clone());
    }
    message["refusal"] = Value::Null;
    let body = json!({
        "id": resp.id,
        "object": "chat.completion",
        "created": resp.created.unwrap_or_else(now_unix),
        "model": resp.model,
        "choices": [{
            "index": 0,
            "message": message,
            "logprobs": null,
            "finish_reason": finish_reason(resp.stop_reason.as_ref(), !calls.is_empty()),
        }],
        "usage": write_usage(&resp.usage),
    });
    (body, d)
}

// ---------------------------------------------------------------------------------------
// Streams
// ---------------------------------------------------------------------------------------

/// Decodes an OpenAI Chat stream (`data:` chunks, `data: [DONE]`).
///
/// Tool calls arrive as fragments keyed by their `index`; `id` and `name` only on the first
/// fragment of each. The outcome (`finish_reason`) is held back until usage arrives (the
/// `choices: []` chunk that `stream_options.include_usage` adds) or the stream ends, so the
/// single [`StreamEvent::MessageDelta`] carries both. Only choice 0 is translated. Calls
/// stream one after another; a server that interleaves fragments of several calls still gets
/// each fragment tagged with its own call's block index, after that block was closed.
#[derive(Debug, Default)]
pub struct StreamParser {
    sse: SseDecoder,
    blocks: Blocks,
    /// OpenAI tool-call index → internal block index.
    tools: Vec<(u64, u32)>,
    started: bool,
    stop: Option<StopReason>,
    finished: bool,
    usage: Option<Usage>,
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
        if !self.done && self.finished {
            // Some servers omit `[DONE]`; a finish_reason was seen, so the answer is whole.
            self.complete(&mut out);
        }
        end_unfinished(&mut self.done, "finish_reason", &mut out);
        out
    }

    fn complete(&mut self, out: &mut Vec<StreamEvent>) {
        if self.done {
            return;
        }
        self.done = true;
        self.blocks.close(out);
        out.push(StreamEvent::MessageDelta {
            stop_reason: self.stop.take(),
            stop_sequence: None,
            usage: self.usage.take().unwrap_or_default(),
        });
        out.push(StreamEvent::MessageStop);
    }

    fn on_data(&mut self, data: &str, out: &mut Vec<StreamEvent>) {
        if self.done {
            return;
        }
        if data.trim() == "[DONE]" {
            self.complete(out);
            return;
        }
        let Some(chunk) = parse_payload(data, "chunk", &mut self.done, out) else {
            return;
        };
        if let Some(err) = chunk.get("error").filter(|e| !e.is_null()) {
            let kind = ErrorKind::from_openai(err.get("type").and_then(Value::as_str), err.get("code").and_then(Value::as_str));
            fail(&mut self.done, out, kind, j::str_at(err, "message").to_owned());
            return;
        }
        if !self.started {
            self.started = true;
            out.push(StreamEvent::MessageStart {
                id: j::str_at(&chunk, "id").to_owned(),
                model: j::str_at(&chunk, "model").to_owned(),
                usage: Usage::default(),
            });
        }
        if let Some(u) = chunk.get("usage").filter(|u| u.is_object()) {
            self.usage = Some(parse_usage(u));
        }
        for choice in chunk.get("choices").and_then(Value::as_array).map(Vec::as_slice).unwrap_or(&[]) {
            if choice.get("index").and_then(Value::as_u64).unwrap_or(0) != 0 {
                continue;
            }
            if let Some(delta) = choice.get("delta") {
                self.on_delta(delta, out);
            }
            if let Some(reason) = choice.get("finish_reason").and_then(Value::as_str) {
                self.blocks.close(out);
                self.finished = true;
                self.stop = Some(stop_from_openai(reason, !self.tools.is_empty()));
            }
        }
        if self.finished && self.usage.is_some() {
            self.complete(out);
        }
    }

    fn on_delta(&mut self, delta: &Value, out: &mut Vec<StreamEvent>) {
        for key in ["reasoning_content", "reasoning"] {
            if let Some(text) = delta.get(key).and_then(Value::as_str).filter(|t| !t.is_empty()) {
                let index = self.blocks.thinking(out);
                out.push(StreamEvent::ThinkingDelta { index, text: text.to_owned() });
            }
        }
        for key in ["content", "refusal"] {
            if let Some(text) = delta.get(key).and_then(Value::as_str).filter(|t| !t.is_empty()) {
                let index = self.blocks.text(out);
                out.push(StreamEvent::TextDelta { index, text: text.to_owned() });
            }
        }
        for call in delta.get("tool_calls").and_then(Value::as_array).map(Vec::as_slice).unwrap_or(&[]) {
            let key = call.get("index").and_then(Value::as_u64).unwrap_or(0);
            let f = call.get("function").cloned().unwrap_or(Value::Null);
            let index = match self.tools.iter().find(|(k, _)| *k == key) {
                Some((_, index)) => *index,
                None => {
                    let id = call.get("id").and_then(Value::as_str).map_or_else(|| format!("call_{key}"), str::to_owned);
                    let index = self.blocks.tool(id, j::str_at(&f, "name").to_owned(), out);
                    self.tools.push((key, index));
                    index
                }
            };
            if let Some(fragment) = f.get("arguments").and_then(Value::as_str).filter(|a| !a.is_empty()) {
                out.push(StreamEvent::ToolArgsDelta { index, fragment: fragment.to_owned() });
            }
        }
    }
}

/// Encodes internal events as an OpenAI Chat stream.
///
/// Block indexes are not choice indexes: everything goes to choice 0, and tool calls are
/// numbered 0, 1, ... in the order they start. The final usage chunk (`choices: []`) is sent
/// only with [`StreamOptions::include_usage`]; `finish()` writes `data: [DONE]`.
#[derive(Debug, Default)]
pub struct StreamWriter {
    opts: StreamOptions,
    created: u64,
    id: String,
    model: String,
    /// Internal block index → OpenAI tool-call index.
    tools: Vec<(u32, u32)>,
    usage: Usage,
    errored: bool,
    done: bool,
    signature_reported: bool,
    dropped: Vec<Dropped>,
}

impl StreamWriter {
    /// A writer at the start of a stream.
    pub fn new(opts: StreamOptions) -> Self {
        let created = opts.created.unwrap_or_else(now_unix);
        StreamWriter { opts, created, ..Self::default() }
    }

    fn chunk(&self, delta: Value, finish: Option<&str>) -> Vec<u8> {
        let mut c = json!({
            "id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.model,
            "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}],
        });
        if self.opts.include_usage {
            c["usage"] = Value::Null;
        }
        encode(None, &c.to_string())
    }

    /// Encode one event.
    pub fn write(&mut self, event: &StreamEvent) -> Vec<u8> {
        match event {
            StreamEvent::MessageStart { id, model, usage } => {
                self.id.clone_from(id);
                self.model.clone_from(model);
                self.usage = usage.clone();
                self.chunk(json!({"role": "assistant", "content": ""}), None)
            }
            StreamEvent::TextDelta { text, .. } => self.chunk(json!({"content": text}), None),
            StreamEvent::ThinkingDelta { text, .. } => self.chunk(json!({"reasoning_content": text}), None),
            StreamEvent::ToolCallStart { index, id, name } => {
                let n = u32::try_from(self.tools.len()).unwrap_or(u32::MAX);
                self.tools.push((*index, n));
                self.chunk(
                    json!({"tool_calls": [{"index": n, "id": id, "type": "function", "function": {"name": name, "arguments": ""}}]}),
                    None,
                )
            }
            StreamEvent::ToolArgsDelta { index, fragment } => {
                let n = self.tools.iter().find(|(b, _)| b == index).map_or(0, |(_, n)| *n);
                self.chunk(json!({"tool_calls": [{"index": n, "function": {"arguments": fragment}}]}), None)
            }
            StreamEvent::SignatureDelta { index, .. } => {
                if !self.signature_reported {
                    self.signature_reported = true;
                    self.dropped.push(Dropped::new(format!("content[{index}].signature"), "OpenAI Chat has no reasoning signature"));
                }
                Vec::new()
            }
            StreamEvent::BlockStart { index, kind: crate::model::BlockKind::RedactedThinking { .. } } => {
                self.dropped.push(Dropped::new(format!("content[{index}]"), "redacted reasoning has no OpenAI Chat form"));
                Vec::new()
            }
            StreamEvent::BlockStart { .. } | StreamEvent::BlockStop { .. } => Vec::new(),
            StreamEvent::MessageDelta { stop_reason, usage, .. } => {
                self.usage = usage.clone();
                let reason = finish_reason(stop_reason.as_ref(), !self.tools.is_empty());
                self.chunk(json!({}), Some(reason))
            }
            StreamEvent::MessageStop => {
                if !self.opts.include_usage {
                    return Vec::new();
                }
                let c = json!({
                    "id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.model,
                    "choices": [], "usage": write_usage(&self.usage),
                });
                encode(None, &c.to_string())
            }
            // A comment keeps idle connections open; OpenAI clients skip comments.
            StreamEvent::Ping => b": ping\n\n".to_vec(),
            StreamEvent::Error { kind, message } => {
                self.errored = true;
                let e = json!({"error": {"message": message, "type": kind.openai_type(), "param": null, "code": null}});
                encode(None, &e.to_string())
            }
        }
    }

    /// `data: [DONE]`, unless the stream ended in an error.
    pub fn finish(&mut self) -> Vec<u8> {
        if self.done || self.errored {
            return Vec::new();
        }
        self.done = true;
        b"data: [DONE]\n\n".to_vec()
    }
}

impl_stream_traits!(StreamParser, StreamWriter);
