//! Google Gemini `generateContent` / `streamGenerateContent?alt=sse`: parser and writer for
//! requests, responses and streams.
//!
//! The model and the streaming mode are in Gemini's URL, not its body, so
//! [`write_request`] leaves `model` and `stream` to the hub and [`parse_request`] leaves
//! `model` empty. Field names are read in both of Gemini's JSON spellings (`inlineData` and
//! `inline_data`) and written in camelCase.
//!
//! Gemini differs from the others in ways the translation has to bridge:
//! - function calls usually have no id: ids are synthesised (`call_<responseId>_<n>`), and a
//!   `functionResponse` must name its function, found through the id of the matching call;
//! - function results are JSON objects: text results are sent as `{"output": text}` (or
//!   `{"error": text}`), JSON-object results as they are;
//! - reasoning comes as parts marked `thought: true`, and `thoughtSignature`s can sit on any
//!   part; a signature on a non-thought part is carried as an empty thinking part right before
//!   it, and written back onto the part that follows.

use serde_json::{Map, Value, json};

use crate::Format;
use crate::error::{Dropped, ErrorKind, ParseError};
use crate::json::{self as j};
use crate::model::{
    ImageSource, Message, Part, Request, Response, Role, StopReason, StreamEvent, SystemPart, Tool, ToolChoice, Usage, input_object,
};
use crate::sse::{SseDecoder, encode};
use crate::stream::{Blocks, each_data, end_unfinished, fail, impl_stream_traits, parse_payload};

const GENERATION_CONFIG: &str = "generationConfig";

/// A member by its camelCase name or its snake_case spelling.
fn g<'a>(o: &'a Value, key: &str) -> Option<&'a Value> {
    o.get(key).filter(|v| !v.is_null()).or_else(|| o.get(snake(key)).filter(|v| !v.is_null()))
}

fn snake(key: &str) -> String {
    let mut out = String::with_capacity(key.len() + 4);
    for c in key.chars() {
        if c.is_ascii_uppercase() {
            out.push('_');
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

fn camel(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    let mut upper = false;
    for c in key.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.push(c.to_ascii_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

// ---------------------------------------------------------------------------------------
// Requests
// ---------------------------------------------------------------------------------------

/// Parses Gemini parts, assigning ids to function calls and matching responses to them.
#[derive(Default)]
struct PartReader {
    prefix: String,
    calls: usize,
    /// Calls not yet answered: (name, id).
    pending: Vec<(String, String)>,
}

impl PartReader {
    fn parts(&mut self, parts: &Value, at: &str, d: &mut Vec<Dropped>) -> Result<Vec<Part>, ParseError> {
        let mut out = Vec::new();
        for (i, p) in j::array(parts, at)?.iter().enumerate() {
            let p_at = j::index(at, i);
            if !p.is_object() {
                return Err(ParseError::invalid(p_at, "expected an object"));
            }
            let signature = g(p, "thoughtSignature").and_then(Value::as_str).map(str::to_owned);
            let is_thought = g(p, "thought").and_then(Value::as_bool).unwrap_or(false);
            if let Some(text) = g(p, "text") {
                let text = j::string(text, &j::path(&p_at, "text"))?;
                if is_thought {
                    out.push(Part::Thinking { text, signature });
                    continue;
                }
                if let Some(signature) = signature.clone() {
                    out.push(Part::Thinking { text: String::new(), signature: Some(signature) });
                }
                out.push(Part::text(text));
            } else if let Some(call) = g(p, "functionCall") {
                if let Some(signature) = signature {
                    out.push(Part::Thinking { text: String::new(), signature: Some(signature) });
                }
                let name = j::str_at(call, "name").to_owned();
                let id = call.get("id").and_then(Value::as_str).map_or_else(
                    || {
                        let id = if self.prefix.is_empty() {
                            format!("call_{}", self.calls)
                        } else {
                            format!("call_{}_{}", self.prefix, self.calls)
                        };
                        self.calls += 1;
                        id
                    },
                    str::to_owned,
                );
                self.pending.push((name.clone(), id.clone()));
                out.push(Part::ToolUse { id, name, input: g(call, "args").cloned().unwrap_or_else(|| json!({})) });
            } else if let Some(resp) = g(p, "functionResponse") {
                let name = j::str_at(resp, "name").to_owned();
                let id = match resp.get("id").and_then(Value::as_str) {
                    Some(id) => id.to_owned(),
                    None => match self.pending.iter().position(|(n, _)| *n == name) {
                        Some(pos) => self.pending.remove(pos).1,
                        None => name.clone(),
                    },
                };
                let response = g(resp, "response").cloned().unwrap_or_else(|| json!({}));
                let is_error = response.as_object().is_some_and(|o| o.len() == 1 && o.contains_key("error"));
                out.push(Part::ToolResult { tool_use_id: id, content: vec![Part::text(result_text(&response))], is_error });
            } else if let Some(data) = g(p, "inlineData") {
                let media_type = g(data, "mimeType").and_then(Value::as_str).unwrap_or("").to_owned();
                if !media_type.starts_with("image/") {
                    d.push(Dropped::new(p_at, format!("inline data of type `{media_type}` is not supported")));
                    continue;
                }
                out.push(Part::Image {
                    source: ImageSource::Base64 { media_type, data: j::str_at(data, "data").to_owned() },
                    detail: None,
                });
            } else if let Some(file) = g(p, "fileData") {
                let media_type = g(file, "mimeType").and_then(Value::as_str).unwrap_or("");
                if !media_type.starts_with("image/") {
                    d.push(Dropped::new(p_at, format!("file data of type `{media_type}` is not supported")));
                    continue;
                }
                let url = g(file, "fileUri").and_then(Value::as_str).unwrap_or("").to_owned();
                out.push(Part::Image { source: ImageSource::Url { url }, detail: None });
            } else {
                d.push(Dropped::new(p_at, "part kind is not supported"));
            }
        }
        Ok(out)
    }
}

/// A function response object as text: a lone `output`/`result`/`content`/`error` string
/// unwrapped, anything else as JSON.
fn result_text(response: &Value) -> String {
    if let Some(o) = response.as_object()
        && o.len() == 1
    {
        for key in ["output", "result", "content", "error"] {
            if let Some(Value::String(s)) = o.get(key) {
                return s.clone();
            }
        }
    }
    response.to_string()
}

/// Parse a Gemini `generateContent` request body. `model` stays empty (it is in the URL).
pub fn parse_request(body: &[u8]) -> Result<(Request, Vec<Dropped>), ParseError> {
    let root = j::parse_object(body)?;
    let mut d = Vec::new();
    let mut req = Request { source: Some(Format::Gemini), ..Request::default() };
    let mut reader = PartReader::default();
    for (key, value) in &root {
        match camel(key).as_str() {
            "model" => req.model = j::string(value, key)?.trim_start_matches("models/").to_owned(),
            "contents" => {
                for (i, c) in j::array(value, key)?.iter().enumerate() {
                    let at = j::index("contents", i);
                    j::object(c, &at)?;
                    let role = match c.get("role").and_then(Value::as_str).unwrap_or("user") {
                        "model" => Role::Assistant,
                        _ => Role::User,
                    };
                    let content = reader.parts(c.get("parts").unwrap_or(&Value::Null), &j::path(&at, "parts"), &mut d)?;
                    req.messages.push(Message { role, content });
                }
            }
            "systemInstruction" => {
                for p in reader.parts(g(value, "parts").unwrap_or(&Value::Null), "systemInstruction.parts", &mut d)? {
                    match p {
                        Part::Text { text, .. } => req.system.push(SystemPart { text, cache_control: None }),
                        _ => d.push(Dropped::new("systemInstruction.parts", "system instructions hold only text")),
                    }
                }
            }
            "tools" => {
                for (i, t) in j::array(value, key)?.iter().enumerate() {
                    let at = j::index("tools", i);
                    let Some(decls) = g(t, "functionDeclarations") else {
                        d.push(Dropped::new(at, "only function declarations are supported"));
                        continue;
                    };
                    for (k, f) in j::array(decls, &at)?.iter().enumerate() {
                        let f_at = format!("{at}.functionDeclarations[{k}]");
                        let schema = g(f, "parametersJsonSchema").cloned().or_else(|| g(f, "parameters").map(openapi_to_json_schema));
                        req.tools.push(Tool {
                            name: j::string(f.get("name").unwrap_or(&Value::Null), &j::path(&f_at, "name"))?,
                            description: f.get("description").and_then(Value::as_str).map(str::to_owned),
                            input_schema: schema.unwrap_or_else(|| json!({"type": "object", "properties": {}})),
                            strict: None,
                            cache_control: None,
                        });
                    }
                }
            }
            "toolConfig" => {
                let Some(cfg) = g(value, "functionCallingConfig") else { continue };
                let names: Vec<&str> = g(cfg, "allowedFunctionNames")
                    .and_then(Value::as_array)
                    .map(|a| a.iter().filter_map(Value::as_str).collect())
                    .unwrap_or_default();
                req.tool_choice = match cfg.get("mode").and_then(Value::as_str).unwrap_or("AUTO") {
                    "NONE" => Some(ToolChoice::None),
                    "ANY" if names.len() == 1 => Some(ToolChoice::Tool { name: names[0].to_owned() }),
                    "ANY" => {
                        if !names.is_empty() {
                            d.push(Dropped::new(
                                "toolConfig.functionCallingConfig.allowedFunctionNames",
                                "only one forced function can be carried",
                            ));
                        }
                        Some(ToolChoice::Required)
                    }
                    _ => Some(ToolChoice::Auto),
                };
            }
            GENERATION_CONFIG => {
                for (k, v) in j::object(value, key)? {
                    let at = format!("{GENERATION_CONFIG}.{}", camel(k));
                    match camel(k).as_str() {
                        "maxOutputTokens" => req.max_tokens = j::opt_u32(v, &at)?,
                        "temperature" => req.temperature = j::opt_f64(v, &at)?,
                        "topP" => req.top_p = j::opt_f64(v, &at)?,
                        "stopSequences" => req.stop = j::strings(v, &at)?,
                        _ => {
                            req.extra.insert(at, v.clone());
                        }
                    }
                }
            }
            _ if value.is_null() => {}
            _ => {
                req.extra.insert(key.clone(), value.clone());
            }
        }
    }
    Ok((req, d))
}

/// Gemini's `parameters` use an OpenAPI subset with upper-case type names (`OBJECT`,
/// `STRING`); JSON Schema, which every other format and `parametersJsonSchema` expect, spells
/// them in lower case.
fn openapi_to_json_schema(schema: &Value) -> Value {
    match schema {
        Value::Object(o) => Value::Object(
            o.iter()
                .map(|(k, v)| {
                    let v = match (k.as_str(), v) {
                        ("type", Value::String(t)) => Value::String(t.to_ascii_lowercase()),
                        _ => openapi_to_json_schema(v),
                    };
                    (k.clone(), v)
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(openapi_to_json_schema).collect()),
        other => other.clone(),
    }
}

/// MIME type of an image URL from its extension; Gemini's `fileData` requires one.
fn guess_image_type(url: &str) -> &'static str {
    let path = url.split(['?', '#']).next().unwrap_or(url).to_ascii_lowercase();
    if path.ends_with(".png") {
        "image/png"
    } else if path.ends_with(".gif") {
        "image/gif"
    } else if path.ends_with(".webp") {
        "image/webp"
    } else if path.ends_with(".heic") {
        "image/heic"
    } else {
        "image/jpeg"
    }
}

/// Writes internal parts as Gemini parts, remembering call names for function responses.
#[derive(Default)]
struct PartWriter {
    names: Vec<(String, String)>,
    signature: Option<String>,
}

impl PartWriter {
    fn with_signature(&mut self, mut part: Value) -> Value {
        if let Some(sig) = self.signature.take() {
            part["thoughtSignature"] = json!(sig);
        }
        part
    }

    fn parts(&mut self, parts: &[Part], at: &str, d: &mut Vec<Dropped>) -> Vec<Value> {
        let mut out = Vec::new();
        for (k, p) in parts.iter().enumerate() {
            let p_at = format!("{at}.content[{k}]");
            match p {
                Part::Text { text, cache_control } => {
                    if cache_control.is_some() {
                        d.push(Dropped::new(format!("{p_at}.cache_control"), "Gemini caches through cachedContents, not per part"));
                    }
                    out.push(self.with_signature(json!({"text": text})));
                }
                Part::Image { source, detail } => {
                    if detail.is_some() {
                        d.push(Dropped::new(format!("{p_at}.detail"), "Gemini has no per-image detail"));
                    }
                    let part = match source {
                        ImageSource::Base64 { media_type, data } => json!({"inlineData": {"mimeType": media_type, "data": data}}),
                        ImageSource::Url { url } => json!({"fileData": {"mimeType": guess_image_type(url), "fileUri": url}}),
                    };
                    out.push(self.with_signature(part));
                }
                Part::ToolUse { id, name, input } => {
                    self.names.push((id.clone(), name.clone()));
                    out.push(self.with_signature(json!({"functionCall": {"name": name, "args": input_object(input)}})));
                }
                Part::ToolResult { tool_use_id, content, is_error } => {
                    let name = match self.names.iter().rev().find(|(id, _)| id == tool_use_id) {
                        Some((_, name)) => name.clone(),
                        None => {
                            d.push(Dropped::new(format!("{p_at}.tool_use_id"), "no matching call; the id is sent as the function name"));
                            tool_use_id.clone()
                        }
                    };
                    let mut text = String::new();
                    for (n, c) in content.iter().enumerate() {
                        match c {
                            Part::Text { text: t, .. } => text.push_str(t),
                            _ => d.push(Dropped::new(format!("{p_at}.content[{n}]"), "Gemini function responses are sent as text")),
                        }
                    }
                    let response = match serde_json::from_str::<Value>(&text) {
                        Ok(obj @ Value::Object(_)) if !is_error => obj,
                        _ => json!({ if *is_error { "error" } else { "output" }: text }),
                    };
                    out.push(json!({"functionResponse": {"name": name, "response": response}}));
                }
                Part::Thinking { text, signature } if text.is_empty() => self.signature.clone_from(signature),
                Part::Thinking { text, signature } => {
                    let mut part = json!({"text": text, "thought": true});
                    if let Some(sig) = signature {
                        part["thoughtSignature"] = json!(sig);
                    }
                    out.push(part);
                }
                Part::RedactedThinking { .. } => d.push(Dropped::new(p_at, "redacted reasoning is only meaningful to Anthropic")),
            }
        }
        out
    }
}

/// Write a request as a Gemini body (without model and stream mode, which go in the URL).
///
/// Roles: assistant → `model`; tool results and folded system turns → `user`; adjacent turns
/// of one role merge. Function declarations use `parametersJsonSchema`, which takes JSON
/// Schema as clients write it (the older `parameters` accepts only an OpenAPI subset).
pub fn write_request(req: &Request) -> (Value, Vec<Dropped>) {
    let mut d = Vec::new();
    let mut body = Map::new();
    let mut writer = PartWriter::default();
    let mut contents: Vec<(&str, Vec<Value>)> = Vec::new();
    for (i, m) in req.messages.iter().enumerate() {
        let role = if m.role == Role::Assistant { "model" } else { "user" };
        let parts = writer.parts(&m.content, &format!("messages[{i}]"), &mut d);
        if parts.is_empty() {
            continue;
        }
        match contents.last_mut() {
            Some((r, p)) if *r == role => p.extend(parts),
            _ => contents.push((role, parts)),
        }
    }
    body.insert("contents".into(), Value::Array(contents.into_iter().map(|(role, parts)| json!({"role": role, "parts": parts})).collect()));
    if !req.system.is_empty() {
        for (i, p) in req.system.iter().enumerate() {
            if p.cache_control.is_some() {
                d.push(Dropped::new(format!("system[{i}].cache_control"), "Gemini caches through cachedContents, not per part"));
            }
        }
        let parts: Vec<Value> = req.system.iter().map(|p| json!({"text": p.text})).collect();
        body.insert("systemInstruction".into(), json!({"parts": parts}));
    }
    if !req.tools.is_empty() {
        let decls: Vec<Value> = req
            .tools
            .iter()
            .enumerate()
            .map(|(i, t)| {
                if t.cache_control.is_some() {
                    d.push(Dropped::new(format!("tools[{i}].cache_control"), "Gemini caches through cachedContents, not per tool"));
                }
                if t.strict == Some(true) {
                    d.push(Dropped::new(format!("tools[{i}].strict"), "Gemini has no strict schema mode"));
                }
                j::obj_of(vec![
                    ("name", Some(json!(t.name))),
                    ("description", t.description.as_ref().map(|s| json!(s))),
                    ("parametersJsonSchema", Some(t.input_schema.clone())),
                ])
            })
            .collect();
        body.insert("tools".into(), json!([{"functionDeclarations": decls}]));
        let mode = match &req.tool_choice {
            None => None,
            Some(ToolChoice::Auto) => Some(json!({"mode": "AUTO"})),
            Some(ToolChoice::None) => Some(json!({"mode": "NONE"})),
            Some(ToolChoice::Required) => Some(json!({"mode": "ANY"})),
            Some(ToolChoice::Tool { name }) => Some(json!({"mode": "ANY", "allowedFunctionNames": [name]})),
        };
        if let Some(mode) = mode {
            body.insert("toolConfig".into(), json!({"functionCallingConfig": mode}));
        }
    } else if matches!(req.tool_choice, Some(ToolChoice::Required | ToolChoice::Tool { .. })) {
        d.push(Dropped::new("tool_choice", "no tools were given"));
    }
    if req.parallel_tool_calls == Some(false) {
        d.push(Dropped::new("parallel_tool_calls", "Gemini cannot forbid parallel function calls"));
    }
    let mut config = Map::new();
    if let Some(n) = req.max_tokens {
        config.insert("maxOutputTokens".into(), json!(n));
    }
    if let Some(t) = req.temperature {
        config.insert("temperature".into(), json!(t));
    }
    if let Some(p) = req.top_p {
        config.insert("topP".into(), json!(p));
    }
    if !req.stop.is_empty() {
        config.insert("stopSequences".into(), json!(req.stop));
    }
    if req.user.is_some() {
        d.push(Dropped::new("user", "Gemini has no end-user field"));
    }
    for key in req.metadata.keys() {
        d.push(Dropped::new(format!("metadata.{key}"), "Gemini has no request metadata"));
    }
    for (key, value) in &req.extra {
        if req.source != Some(Format::Gemini) {
            d.push(Dropped::new(key.clone(), "no Gemini equivalent"));
        } else if let Some(inner) = key.strip_prefix("generationConfig.") {
            config.entry(inner.to_owned()).or_insert_with(|| value.clone());
        } else {
            body.entry(key.clone()).or_insert_with(|| value.clone());
        }
    }
    if !config.is_empty() {
        body.insert(GENERATION_CONFIG.into(), Value::Object(config));
    }
    (Value::Object(body), d)
}

// ---------------------------------------------------------------------------------------
// Responses
// ---------------------------------------------------------------------------------------

/// Gemini `finishReason` → internal. Function calls end with `STOP`, so `STOP` after a call
/// means the model waits for results.
pub fn stop_from_gemini(reason: &str, had_tool_use: bool) -> StopReason {
    match reason {
        "STOP" if had_tool_use => StopReason::ToolUse,
        "STOP" => StopReason::EndTurn,
        "MAX_TOKENS" => StopReason::MaxTokens,
        "SAFETY" | "RECITATION" | "BLOCKLIST" | "PROHIBITED_CONTENT" | "SPII" | "IMAGE_SAFETY" | "LANGUAGE" => StopReason::ContentFilter,
        other => StopReason::Other(other.to_owned()),
    }
}

fn finish_reason(stop: Option<&StopReason>) -> &'static str {
    match stop {
        Some(StopReason::MaxTokens | StopReason::ContextWindowExceeded) => "MAX_TOKENS",
        Some(StopReason::ContentFilter) => "SAFETY",
        _ => "STOP",
    }
}

fn parse_usage(u: Option<&Value>) -> Usage {
    let u = u.cloned().unwrap_or(Value::Null);
    let n = |k: &str| g(&u, k).and_then(Value::as_u64).unwrap_or(0);
    let cached = n("cachedContentTokenCount");
    let thoughts = n("thoughtsTokenCount");
    Usage {
        input: (n("promptTokenCount") + n("toolUsePromptTokenCount")).saturating_sub(cached),
        output: n("candidatesTokenCount") + thoughts,
        cache_read: cached,
        cache_write: 0,
        reasoning: thoughts,
    }
}

fn write_usage(u: &Usage) -> Value {
    let mut m = json!({
        "promptTokenCount": u.prompt_tokens(),
        "candidatesTokenCount": u.output.saturating_sub(u.reasoning),
        "totalTokenCount": u.total_tokens(),
    });
    if u.cache_read > 0 {
        m["cachedContentTokenCount"] = json!(u.cache_read);
    }
    if u.reasoning > 0 {
        m["thoughtsTokenCount"] = json!(u.reasoning);
    }
    m
}

/// Parse a Gemini `generateContent` response (the first candidate).
pub fn parse_response(body: &[u8]) -> Result<(Response, Vec<Dropped>), ParseError> {
    let root = Value::Object(j::parse_object(body)?);
    let mut d = Vec::new();
    let id = g(&root, "responseId").and_then(Value::as_str).unwrap_or("").to_owned();
    let candidates = g(&root, "candidates").and_then(Value::as_array).map(Vec::as_slice).unwrap_or(&[]);
    if candidates.len() > 1 {
        d.push(Dropped::new("candidates[1..]", "only the first candidate is translated"));
    }
    let mut reader = PartReader { prefix: id.clone(), ..PartReader::default() };
    let mut content = Vec::new();
    let mut stop = None;
    if let Some(c) = candidates.first() {
        let parts = c.get("content").and_then(|c| c.get("parts")).unwrap_or(&Value::Null);
        content = reader.parts(parts, "candidates[0].content.parts", &mut d)?;
        let had_tool_use = content.iter().any(|p| matches!(p, Part::ToolUse { .. }));
        stop = g(c, "finishReason").and_then(Value::as_str).map(|r| stop_from_gemini(r, had_tool_use));
    } else if g(&root, "promptFeedback").and_then(|f| g(f, "blockReason")).is_some() {
        stop = Some(StopReason::ContentFilter);
    }
    let resp = Response {
        id,
        model: g(&root, "modelVersion").and_then(Value::as_str).unwrap_or("").to_owned(),
        created: None,
        content,
        stop_reason: stop,
        stop_sequence: None,
        usage: parse_usage(g(&root, "usageMetadata")),
    };
    Ok((resp, d))
}

/// Write a response as a Gemini `generateContent` body.
pub fn write_response(resp: &Response) -> (Value, Vec<Dropped>) {
    let mut d = Vec::new();
    let mut writer = PartWriter::default();
    let mut parts = Vec::new();
    for (i, p) in resp.content.iter().enumerate() {
        if matches!(p, Part::ToolResult { .. }) {
            d.push(Dropped::new(format!("content[{i}]"), "a tool result cannot be part of an answer"));
            continue;
        }
        parts.extend(writer.parts(std::slice::from_ref(p), "content", &mut d));
    }
    let body = json!({
        "candidates": [{"content": {"role": "model", "parts": parts}, "finishReason": finish_reason(resp.stop_reason.as_ref()), "index": 0}],
        "usageMetadata": write_usage(&resp.usage),
        "modelVersion": resp.model,
        "responseId": resp.id,
    });
    (body, d)
}

// ---------------------------------------------------------------------------------------
// Streams
// ---------------------------------------------------------------------------------------

/// Decodes a Gemini `alt=sse` stream: every `data:` line is a whole `GenerateContentResponse`
/// carrying the next parts; the chunk with `finishReason` (and the final `usageMetadata`)
/// ends the answer. Each function call arrives whole and becomes a complete tool block.
#[derive(Debug, Default)]
pub struct StreamParser {
    sse: SseDecoder,
    blocks: Blocks,
    id: String,
    calls: usize,
    had_tool_use: bool,
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

    /// The upstream closed.
    pub fn finish(&mut self) -> Vec<StreamEvent> {
        let mut out = each_data(self.sse.finish(), |data, out| self.on_data(data, out));
        end_unfinished(&mut self.done, "finishReason", &mut out);
        out
    }

    fn on_data(&mut self, data: &str, out: &mut Vec<StreamEvent>) {
        if self.done {
            return;
        }
        let Some(chunk) = parse_payload(data, "chunk", &mut self.done, out) else {
            return;
        };
        if let Some(e) = chunk.get("error") {
            fail(&mut self.done, out, ErrorKind::from_gemini_status(j::str_at(e, "status")), j::str_at(e, "message").to_owned());
            return;
        }
        if let Some(u) = g(&chunk, "usageMetadata") {
            self.usage = parse_usage(Some(u));
        }
        if !self.started {
            self.started = true;
            self.id = g(&chunk, "responseId").and_then(Value::as_str).unwrap_or("").to_owned();
            // Only the input side is known at the start.
            let usage = Usage { input: self.usage.input, cache_read: self.usage.cache_read, ..Usage::default() };
            out.push(StreamEvent::MessageStart {
                id: self.id.clone(),
                model: g(&chunk, "modelVersion").and_then(Value::as_str).unwrap_or("").to_owned(),
                usage,
            });
        }
        let Some(candidate) = g(&chunk, "candidates").and_then(Value::as_array).and_then(|c| c.first()) else {
            if g(&chunk, "promptFeedback").and_then(|f| g(f, "blockReason")).is_some() {
                self.end(Some(StopReason::ContentFilter), out);
            }
            return;
        };
        let parts = candidate.get("content").and_then(|c| c.get("parts")).and_then(Value::as_array).map(Vec::as_slice).unwrap_or(&[]);
        for p in parts {
            self.on_part(p, out);
        }
        if let Some(reason) = g(candidate, "finishReason").and_then(Value::as_str) {
            self.end(Some(stop_from_gemini(reason, self.had_tool_use)), out);
        }
    }

    fn on_part(&mut self, p: &Value, out: &mut Vec<StreamEvent>) {
        let signature = g(p, "thoughtSignature").and_then(Value::as_str);
        let is_thought = g(p, "thought").and_then(Value::as_bool).unwrap_or(false);
        if is_thought {
            let index = self.blocks.thinking(out);
            let text = g(p, "text").and_then(Value::as_str).unwrap_or("");
            if !text.is_empty() {
                out.push(StreamEvent::ThinkingDelta { index, text: text.to_owned() });
            }
            if let Some(signature) = signature {
                out.push(StreamEvent::SignatureDelta { index, signature: signature.to_owned() });
            }
            return;
        }
        if let Some(signature) = signature {
            // A signature on an ordinary part travels as an empty thinking block before it.
            self.blocks.close(out);
            let index = self.blocks.thinking(out);
            out.push(StreamEvent::SignatureDelta { index, signature: signature.to_owned() });
            self.blocks.close(out);
        }
        if let Some(text) = g(p, "text").and_then(Value::as_str) {
            if !text.is_empty() {
                let index = self.blocks.text(out);
                out.push(StreamEvent::TextDelta { index, text: text.to_owned() });
            }
        } else if let Some(call) = g(p, "functionCall") {
            self.had_tool_use = true;
            let id = call.get("id").and_then(Value::as_str).map_or_else(
                || if self.id.is_empty() { format!("call_{}", self.calls) } else { format!("call_{}_{}", self.id, self.calls) },
                str::to_owned,
            );
            self.calls += 1;
            let index = self.blocks.tool(id, j::str_at(call, "name").to_owned(), out);
            let args = g(call, "args").cloned().unwrap_or_else(|| json!({}));
            out.push(StreamEvent::ToolArgsDelta { index, fragment: args.to_string() });
            self.blocks.close(out);
        }
    }

    fn end(&mut self, stop: Option<StopReason>, out: &mut Vec<StreamEvent>) {
        self.done = true;
        self.blocks.close(out);
        out.push(StreamEvent::MessageDelta { stop_reason: stop, stop_sequence: None, usage: self.usage.clone() });
        out.push(StreamEvent::MessageStop);
    }
}

/// Encodes internal events as a Gemini `alt=sse` stream: one chunk per text or thinking delta,
/// one per completed function call (arguments are buffered until the call's block stops), and
/// a last chunk with `finishReason` and `usageMetadata`.
#[derive(Debug, Default)]
pub struct StreamWriter {
    id: String,
    model: String,
    /// The open function call: its block index and name; arguments collect in `args`.
    call: Option<(u32, String)>,
    args: String,
    /// Block index of the thinking block whose text was sent.
    thought_text: Option<u32>,
    signature: Option<String>,
    dropped: Vec<Dropped>,
}

impl StreamWriter {
    /// A writer at the start of a stream.
    pub fn new() -> Self {
        Self::default()
    }

    fn chunk(&self, candidate: Value, usage: Option<Value>) -> Vec<u8> {
        let mut c = json!({"candidates": [candidate]});
        if let Some(u) = usage {
            c["usageMetadata"] = u;
        }
        c["modelVersion"] = json!(self.model);
        c["responseId"] = json!(self.id);
        encode(None, &c.to_string())
    }

    fn part(&mut self, mut part: Value) -> Vec<u8> {
        if let Some(sig) = self.signature.take() {
            part["thoughtSignature"] = json!(sig);
        }
        self.chunk(json!({"content": {"role": "model", "parts": [part]}, "index": 0}), None)
    }

    /// Encode one event.
    pub fn write(&mut self, event: &StreamEvent) -> Vec<u8> {
        match event {
            StreamEvent::MessageStart { id, model, .. } => {
                self.id.clone_from(id);
                self.model.clone_from(model);
                Vec::new()
            }
            StreamEvent::TextDelta { text, .. } => self.part(json!({"text": text})),
            StreamEvent::ThinkingDelta { index, text } => {
                self.thought_text = Some(*index);
                self.chunk(json!({"content": {"role": "model", "parts": [{"text": text, "thought": true}]}, "index": 0}), None)
            }
            StreamEvent::SignatureDelta { signature, .. } => {
                self.signature.get_or_insert_with(String::new).push_str(signature);
                Vec::new()
            }
            StreamEvent::ToolCallStart { index, name, .. } => {
                self.call = Some((*index, name.clone()));
                self.args.clear();
                Vec::new()
            }
            StreamEvent::ToolArgsDelta { fragment, .. } => {
                self.args.push_str(fragment);
                Vec::new()
            }
            StreamEvent::BlockStop { index } => match self.call.take() {
                Some((block, name)) if block == *index => {
                    let args = input_object(&crate::model::arguments_to_input(&std::mem::take(&mut self.args)));
                    self.part(json!({"functionCall": {"name": name, "args": args}}))
                }
                other => {
                    self.call = other;
                    // The signature of reasoning that had text closes that reasoning as an
                    // empty thought part; a bare signature waits for the part it belongs to.
                    if self.thought_text.take() == Some(*index) && self.signature.is_some() {
                        return self.part(json!({"text": "", "thought": true}));
                    }
                    Vec::new()
                }
            },
            StreamEvent::BlockStart { index, kind: crate::model::BlockKind::RedactedThinking { .. } } => {
                self.dropped.push(Dropped::new(format!("content[{index}]"), "redacted reasoning is only meaningful to Anthropic"));
                Vec::new()
            }
            StreamEvent::BlockStart { .. } | StreamEvent::MessageStop | StreamEvent::Ping => Vec::new(),
            StreamEvent::MessageDelta { stop_reason, usage, .. } => {
                let mut out = Vec::new();
                if self.signature.is_some() {
                    out.extend(self.part(json!({"text": ""})));
                }
                out.extend(self.chunk(json!({"finishReason": finish_reason(stop_reason.as_ref()), "index": 0}), Some(write_usage(usage))));
                out
            }
            StreamEvent::Error { kind, message } => {
                let e = crate::error::write_error(Format::Gemini, kind.status(), kind, message);
                encode(None, &e.to_string())
            }
        }
    }

    /// Gemini streams have no trailer.
    pub fn finish(&mut self) -> Vec<u8> {
        Vec::new()
    }
}

impl_stream_traits!(StreamParser, StreamWriter);
