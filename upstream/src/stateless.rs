//! The 2026-07-28 stateless era, client side: what every request carries
//! and how answers are read.
//!
//! There is no `initialize` and no session. Each request carries the
//! protocol version, the client's capabilities and `clientInfo` (and the log
//! level, once one was set) in `params._meta`, plus the routing headers
//! `MCP-Protocol-Version`, `Mcp-Method`, `Mcp-Name` and, for `tools/call`,
//! one `Mcp-Param-*` header per argument the tool's input schema marks with
//! `x-mcp-header`. A server that needs input from the client answers with an
//! `InputRequiredResult`; the connector asks its caller (as
//! [`UpstreamEvent::Request`](crate::UpstreamEvent::Request)s) and retries
//! with `inputResponses` and the server's `requestState`, unchanged.
//!
//! Everything here is pure except [`State`], the per-connection memory of
//! the log level, resource subscriptions and tool header annotations.

use std::collections::{BTreeSet, HashMap};

use base64::Engine as _;
use gatehouse_proto::jsonrpc::to_raw;
use gatehouse_proto::mcp::{self, header, meta, method};
use gatehouse_proto::{ErrorObject, RawObject};
use http::header::{HeaderName, HeaderValue};
use parking_lot::Mutex;
use serde_json::value::RawValue;
use serde_json::{Map, Value, json};
use tokio::sync::watch;

use crate::{ClientIdentity, InitializeInfo};

/// Most `InputRequiredResult` rounds one call may take.
pub(crate) const MAX_ROUNDS: usize = 16;

/// Extra headers of one request.
pub(crate) type Headers = Vec<(HeaderName, HeaderValue)>;

/// What the connector remembers about one stateless connection.
pub(crate) struct State {
    /// Set by `logging/setLevel`, sent as `_meta` logLevel from then on.
    log_level: Mutex<Option<String>>,
    /// Resources subscribed to with `resources/subscribe`; the listen
    /// stream reopens when the set changes.
    subscriptions: watch::Sender<BTreeSet<String>>,
    /// Header annotations of the tools seen in `tools/list`, by tool name.
    tools: Mutex<HashMap<String, ToolHeaders>>,
    /// The server's capabilities (from `server/discover`).
    capabilities: Mutex<Value>,
}

/// The `x-mcp-header` annotations of one tool.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum ToolHeaders {
    /// (argument name, header suffix), in schema order.
    Valid(Vec<(String, String)>),
    /// The tool is excluded: why.
    Invalid(String),
}

impl State {
    pub(crate) fn new() -> Self {
        Self {
            log_level: Mutex::new(None),
            subscriptions: watch::channel(BTreeSet::new()).0,
            tools: Mutex::new(HashMap::new()),
            capabilities: Mutex::new(Value::Null),
        }
    }

    pub(crate) fn set_capabilities(&self, caps: Value) {
        *self.capabilities.lock() = caps;
    }

    pub(crate) fn capabilities(&self) -> Value {
        self.capabilities.lock().clone()
    }

    pub(crate) fn log_level(&self) -> Option<String> {
        self.log_level.lock().clone()
    }

    pub(crate) fn subscriptions(&self) -> watch::Receiver<BTreeSet<String>> {
        self.subscriptions.subscribe()
    }

    /// Answers the session-era methods the stateless era removed, locally:
    /// `logging/setLevel` sets the `_meta` log level, `resources/subscribe`
    /// and `resources/unsubscribe` change what the listen stream asks for.
    /// `None` for every other method.
    pub(crate) fn answer_locally(&self, m: &str, params: Option<&RawValue>) -> Option<Result<Box<RawValue>, ErrorObject>> {
        let obj = RawObject::parse(params).unwrap_or_default();
        match m {
            method::LOGGING_SET_LEVEL => Some(match obj.get_str("level") {
                Some(level) => {
                    *self.log_level.lock() = Some(level);
                    Ok(to_raw(&json!({})))
                }
                None => Err(ErrorObject::invalid_params("\"level\" must be a string")),
            }),
            method::RESOURCES_SUBSCRIBE | method::RESOURCES_UNSUBSCRIBE => Some(match obj.get_str("uri") {
                Some(uri) => {
                    let on = m == method::RESOURCES_SUBSCRIBE;
                    self.subscriptions.send_if_modified(|set| if on { set.insert(uri) } else { set.remove(&uri) });
                    Ok(to_raw(&json!({})))
                }
                None => Err(ErrorObject::invalid_params("\"uri\" must be a string")),
            }),
            _ => None,
        }
    }

    /// Remembers the header annotations of the tools a `tools/list` result
    /// names and drops the tools whose annotations are invalid. The result
    /// stays byte for byte when every tool is valid.
    pub(crate) fn learn_tools(&self, raw: Box<RawValue>) -> Box<RawValue> {
        let Ok(mut obj) = RawObject::parse(Some(&raw)) else { return raw };
        let Some(tools) = obj.get_as::<Vec<Box<RawValue>>>("tools") else { return raw };
        let mut kept = Vec::with_capacity(tools.len());
        let mut dropped = false;
        {
            let mut table = self.tools.lock();
            for tool in tools {
                let parsed: Value = serde_json::from_str(tool.get()).unwrap_or(Value::Null);
                let Some(name) = parsed["name"].as_str() else {
                    kept.push(tool);
                    continue;
                };
                let headers = tool_headers(&parsed["inputSchema"]);
                if let ToolHeaders::Invalid(why) = &headers {
                    tracing::warn!(tool = %name, reason = %why, "leaving out a tool with an invalid x-mcp-header annotation");
                    dropped = true;
                } else {
                    kept.push(tool);
                }
                table.insert(name.to_owned(), headers);
            }
        }
        if !dropped {
            return raw;
        }
        obj.set("tools", to_raw(&kept));
        obj.to_raw()
    }

    /// The headers of one request (`params` as sent, `_meta` included).
    /// Refuses a `tools/call` of a tool that was left out of `tools/list`.
    pub(crate) fn headers(&self, m: &str, params: Option<&RawValue>) -> Result<Headers, ErrorObject> {
        let mut out: Headers = vec![(HeaderName::from_static(header::PROTOCOL_VERSION), HeaderValue::from_static(mcp::V2026_07_28))];
        if let Ok(v) = HeaderValue::from_str(m) {
            out.push((HeaderName::from_static(header::METHOD), v));
        }
        let obj = RawObject::parse(params).unwrap_or_default();
        let name_key = match m {
            method::TOOLS_CALL | method::PROMPTS_GET => Some("name"),
            method::RESOURCES_READ => Some("uri"),
            _ => None,
        };
        let name = name_key.and_then(|k| obj.get_str(k));
        if let Some(v) = name.as_deref().and_then(|n| HeaderValue::from_str(&encode_value(n)).ok()) {
            out.push((HeaderName::from_static(header::NAME), v));
        }
        if m == method::TOOLS_CALL
            && let Some(tool) = &name
        {
            let annotations = self.tools.lock().get(tool).cloned();
            match annotations {
                Some(ToolHeaders::Invalid(why)) => {
                    return Err(ErrorObject::invalid_params(format!("Tool '{tool}' is not available: {why}")));
                }
                Some(ToolHeaders::Valid(params)) if !params.is_empty() => {
                    let args = obj.get_as::<Map<String, Value>>("arguments").unwrap_or_default();
                    out.extend(param_headers(&params, &args));
                }
                _ => {}
            }
        }
        Ok(out)
    }
}

/// The `Mcp-Param-*` headers of a `tools/call`: one per annotated argument
/// with a string, number or boolean value; null and missing ones are left out.
fn param_headers(params: &[(String, String)], args: &Map<String, Value>) -> Headers {
    let mut out = Vec::new();
    for (arg, suffix) in params {
        let text = match args.get(arg) {
            Some(Value::String(s)) => encode_value(s),
            Some(Value::Number(n)) => n.to_string(),
            Some(Value::Bool(b)) => b.to_string(),
            _ => continue,
        };
        let name = HeaderName::from_bytes(format!("mcp-param-{}", suffix.to_ascii_lowercase()).as_bytes());
        if let (Ok(name), Ok(value)) = (name, HeaderValue::from_str(&text)) {
            out.push((name, value));
        }
    }
    out
}

/// A header value as SEP-2243 wants it: as is when it is visible ASCII (and
/// spaces) without leading or trailing whitespace, else `=?base64?…?=` of
/// its UTF-8 bytes.
pub(crate) fn encode_value(s: &str) -> String {
    let plain = s.bytes().all(|b| (0x20..=0x7e).contains(&b)) && s.trim() == s;
    if plain { s.to_owned() } else { format!("=?base64?{}?=", base64::engine::general_purpose::STANDARD.encode(s.as_bytes())) }
}

/// True for the characters of an HTTP token (RFC 9110 `tchar`).
fn is_tchar(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c)
}

/// Reads the `x-mcp-header` annotations of a tool's input schema (top-level
/// properties). A tool is invalid when a header name is empty, not a token,
/// repeated (ignoring case), or on a property whose type is not string,
/// integer or boolean.
pub(crate) fn tool_headers(schema: &Value) -> ToolHeaders {
    let mut out = Vec::new();
    let mut seen = BTreeSet::new();
    for (arg, prop) in schema["properties"].as_object().into_iter().flatten() {
        let Some(annotation) = prop.get("x-mcp-header") else { continue };
        let Some(suffix) = annotation.as_str() else {
            return ToolHeaders::Invalid(format!("x-mcp-header of '{arg}' is not a string"));
        };
        if suffix.is_empty() {
            return ToolHeaders::Invalid(format!("x-mcp-header of '{arg}' is empty"));
        }
        if !suffix.chars().all(is_tchar) {
            return ToolHeaders::Invalid(format!("x-mcp-header of '{arg}' is not a valid header name: {suffix:?}"));
        }
        if !matches!(prop.get("type").and_then(Value::as_str), Some("string" | "integer" | "boolean")) {
            return ToolHeaders::Invalid(format!("x-mcp-header on '{arg}', which is not a string, integer or boolean"));
        }
        if !seen.insert(suffix.to_ascii_lowercase()) {
            return ToolHeaders::Invalid(format!("x-mcp-header {suffix:?} is used twice"));
        }
        out.push((arg.clone(), suffix.to_owned()));
    }
    ToolHeaders::Valid(out)
}

/// The answers of one `InputRequiredResult` round, for the retry.
pub(crate) struct Retry {
    /// `inputResponses`: the client's result for each key.
    pub responses: Vec<(String, Box<RawValue>)>,
    /// `requestState` as the server sent it (raw, so it goes back unchanged);
    /// `None` when the server sent none.
    pub state: Option<Box<RawValue>>,
}

/// `params` with the `_meta` every stateless request carries and, on a
/// retry, `inputResponses` and `requestState`. Other members stay byte for byte.
pub(crate) fn request_params(
    identity: &ClientIdentity,
    log_level: Option<&str>,
    params: Option<&RawValue>,
    retry: Option<&Retry>,
) -> Result<Box<RawValue>, ErrorObject> {
    let mut obj = RawObject::parse(params).map_err(|_| ErrorObject::invalid_params("params must be an object"))?;
    let mut m = obj.get_as::<RawObject>("_meta").unwrap_or_default();
    m.set(meta::PROTOCOL_VERSION, to_raw(mcp::V2026_07_28));
    m.set(meta::CLIENT_CAPABILITIES, to_raw(&identity.capabilities));
    m.set(meta::CLIENT_INFO, to_raw(&identity.client_info));
    if let Some(level) = log_level
        && m.get(meta::LOG_LEVEL).is_none()
    {
        m.set(meta::LOG_LEVEL, to_raw(level));
    }
    obj.set("_meta", m.to_raw());
    if let Some(retry) = retry {
        let responses = RawObject(retry.responses.iter().map(|(k, v)| (k.clone(), v.clone())).collect());
        obj.set("inputResponses", responses.to_raw());
        match &retry.state {
            Some(state) => obj.set("requestState", state.clone()),
            None => {
                obj.remove("requestState");
            }
        }
    }
    Ok(obj.to_raw())
}

/// One server→client request of an `InputRequiredResult`.
#[derive(Debug)]
pub(crate) struct InputRequest {
    pub key: String,
    pub method: String,
    pub params: Option<Box<RawValue>>,
}

/// What a stateless result says.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// The final result, `resultType` taken out (other members byte for byte;
    /// a result without `resultType` stays whole).
    Complete(Box<RawValue>),
    /// The server needs these answers first.
    InputRequired { requests: Vec<InputRequest>, state: Option<Box<RawValue>> },
}

/// Reads a stateless result. A missing `resultType` means complete.
pub(crate) fn outcome(raw: Box<RawValue>) -> Result<Outcome, String> {
    let Ok(mut obj) = RawObject::parse(Some(&raw)) else { return Ok(Outcome::Complete(raw)) };
    match obj.get_str("resultType").as_deref() {
        None => Ok(Outcome::Complete(raw)),
        Some("input_required") => {
            let entries = obj.get_as::<RawObject>("inputRequests").ok_or("an input_required result without inputRequests")?.0;
            let mut requests = Vec::new();
            for (key, entry) in entries {
                let entry = RawObject::parse(Some(&entry)).map_err(|_| format!("inputRequests[{key:?}] is not an object"))?;
                let method = entry.get_str("method").ok_or_else(|| format!("inputRequests[{key:?}] has no method"))?;
                requests.push(InputRequest { key, method, params: entry.get("params").map(ToOwned::to_owned) });
            }
            if requests.is_empty() {
                return Err("an input_required result with no inputRequests".into());
            }
            Ok(Outcome::InputRequired { requests, state: obj.get("requestState").map(ToOwned::to_owned) })
        }
        Some(_) => {
            obj.remove("resultType");
            Ok(Outcome::Complete(obj.to_raw()))
        }
    }
}

/// Reads a `server/discover` result: `Some` when the server speaks
/// 2026-07-28. Server info comes from `serverInfo` or from `_meta`.
pub(crate) fn discover_info(raw: Box<RawValue>) -> Result<Option<InitializeInfo>, String> {
    let value: Value = serde_json::from_str(raw.get()).map_err(|e| format!("server/discover result is not JSON: {e}"))?;
    let supported = value["supportedVersions"].as_array().is_some_and(|v| v.iter().any(|v| v.as_str() == Some(mcp::V2026_07_28)));
    if !supported {
        return Ok(None);
    }
    let object_or_empty = |v: &Value| if v.is_object() { v.clone() } else { json!({}) };
    let server_info = if value["serverInfo"].is_object() { &value["serverInfo"] } else { &value["_meta"][meta::SERVER_INFO] };
    Ok(Some(InitializeInfo {
        protocol_version: mcp::V2026_07_28.to_owned(),
        capabilities: object_or_empty(&value["capabilities"]),
        server_info: object_or_empty(server_info),
        instructions: value["instructions"].as_str().map(str::to_owned),
        raw,
    }))
}

/// Whether an error answer to `server/discover` names 2026-07-28 among the
/// versions the server supports (worth one more try).
pub(crate) fn offers_stateless(e: &ErrorObject) -> bool {
    e.code == mcp::code::UNSUPPORTED_VERSION
        && e.data
            .as_ref()
            .is_some_and(|d| d["supported"].as_array().is_some_and(|v| v.iter().any(|v| v.as_str() == Some(mcp::V2026_07_28))))
}

/// The `subscriptions/listen` params for what the server can tell: list
/// changes it declared, and the subscribed resources when it supports
/// subscriptions. `None` when there is nothing to listen for.
pub(crate) fn listen_filter(caps: &Value, subscriptions: &BTreeSet<String>) -> Option<Value> {
    let flag = |area: &str, key: &str| caps[area][key].as_bool().unwrap_or(false);
    let mut filter = Map::new();
    for (key, area) in [("toolsListChanged", "tools"), ("promptsListChanged", "prompts"), ("resourcesListChanged", "resources")] {
        if flag(area, "listChanged") {
            filter.insert(key.into(), Value::Bool(true));
        }
    }
    if flag("resources", "subscribe") && !subscriptions.is_empty() {
        filter.insert("resourceSubscriptions".into(), json!(subscriptions));
    }
    (!filter.is_empty()).then(|| json!({ "notifications": filter }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(v: Value) -> Box<RawValue> {
        to_raw(&v)
    }

    fn identity() -> ClientIdentity {
        ClientIdentity {
            client_info: json!({ "name": "g" }),
            capabilities: json!({ "sampling": {} }),
            protocol_version: "2025-11-25".into(),
        }
    }

    #[test]
    fn values_are_encoded_as_sep_2243_says() {
        assert_eq!(encode_value("us-west1"), "us-west1");
        assert_eq!(encode_value("us west 1"), "us west 1");
        assert_eq!(encode_value(""), "");
        assert_eq!(encode_value(" padded "), "=?base64?IHBhZGRlZCA=?=");
        assert_eq!(encode_value("Hello, 世界"), "=?base64?SGVsbG8sIOS4lueVjA==?=");
        assert_eq!(encode_value("line1\nline2"), "=?base64?bGluZTEKbGluZTI=?=");
        assert_eq!(encode_value("\tindented"), "=?base64?CWluZGVudGVk?=");
    }

    #[test]
    fn header_annotations_are_validated() {
        let ok = json!({ "properties": { "region": { "type": "string", "x-mcp-header": "Region" }, "n": { "type": "integer", "x-mcp-header": "N" }, "q": { "type": "string" } } });
        assert_eq!(tool_headers(&ok), ToolHeaders::Valid(vec![("region".into(), "Region".into()), ("n".into(), "N".into())]));
        for bad in [
            json!({ "properties": { "v": { "type": "string", "x-mcp-header": "" } } }),
            json!({ "properties": { "v": { "type": "object", "x-mcp-header": "V" } } }),
            json!({ "properties": { "v": { "type": "number", "x-mcp-header": "V" } } }),
            json!({ "properties": { "v": { "type": "null", "x-mcp-header": "V" } } }),
            json!({ "properties": { "v": { "type": "string", "x-mcp-header": "My Region" } } }),
            json!({ "properties": { "v": { "type": "string", "x-mcp-header": "Region:Primary" } } }),
            json!({ "properties": { "v": { "type": "string", "x-mcp-header": "Région" } } }),
            json!({ "properties": { "v": { "type": "string", "x-mcp-header": "Region\t1" } } }),
            json!({ "properties": { "a": { "type": "string", "x-mcp-header": "MyField" }, "b": { "type": "string", "x-mcp-header": "myfield" } } }),
        ] {
            assert!(matches!(tool_headers(&bad), ToolHeaders::Invalid(_)), "{bad}");
        }
    }

    #[test]
    fn tools_list_drops_invalid_tools_and_calls_mirror_params() {
        let st = State::new();
        let text = r#"{"tools":[{"name":"a","inputSchema":{"type":"object","properties":{"r":{"type":"string","x-mcp-header":"Region"},"p":{"type":"integer","x-mcp-header":"Priority"},"v":{"type":"boolean","x-mcp-header":"Verbose"}}}}]}"#;
        let untouched = st.learn_tools(RawValue::from_string(text.into()).unwrap());
        assert_eq!(untouched.get(), text);
        let list = st.learn_tools(raw(json!({ "tools": [
            { "name": "ok", "inputSchema": { "$ref": "#/x" } },
            { "name": "bad", "inputSchema": { "properties": { "v": { "type": "string", "x-mcp-header": "" } } } }
        ], "nextCursor": "c" })));
        let list: Value = serde_json::from_str(list.get()).unwrap();
        assert_eq!(list, json!({ "tools": [{ "name": "ok", "inputSchema": { "$ref": "#/x" } }], "nextCursor": "c" }));
        assert!(st.headers(method::TOOLS_CALL, Some(&raw(json!({ "name": "bad" })))).is_err());

        let params = raw(json!({ "name": "a", "arguments": { "r": " x", "p": 42, "v": null } }));
        let h = st.headers(method::TOOLS_CALL, Some(&params)).unwrap();
        let get = |n: &str| h.iter().find(|(k, _)| k == n).map(|(_, v)| v.to_str().unwrap().to_owned());
        assert_eq!(get("mcp-protocol-version").as_deref(), Some("2026-07-28"));
        assert_eq!(get("mcp-method").as_deref(), Some("tools/call"));
        assert_eq!(get("mcp-name").as_deref(), Some("a"));
        assert_eq!(get("mcp-param-region").as_deref(), Some("=?base64?IHg=?="));
        assert_eq!(get("mcp-param-priority").as_deref(), Some("42"));
        assert_eq!(get("mcp-param-verbose"), None);
        let read = st.headers(method::RESOURCES_READ, Some(&raw(json!({ "uri": "file:///a%20b" })))).unwrap();
        assert!(read.iter().any(|(k, v)| k == "mcp-name" && v == "file:///a%20b"));
    }

    #[test]
    fn params_carry_meta_and_retries_echo_the_state() {
        let params = RawValue::from_string(r#"{"name":"t","arguments":{"x": 1.50},"_meta":{"progressToken":7}}"#.into()).unwrap();
        let out = request_params(&identity(), Some("info"), Some(&params), None).unwrap();
        let v: Value = serde_json::from_str(out.get()).unwrap();
        assert_eq!(v["_meta"][meta::PROTOCOL_VERSION], "2026-07-28");
        assert_eq!(v["_meta"][meta::CLIENT_CAPABILITIES], json!({ "sampling": {} }));
        assert_eq!(v["_meta"][meta::CLIENT_INFO], json!({ "name": "g" }));
        assert_eq!(v["_meta"][meta::LOG_LEVEL], "info");
        assert_eq!(v["_meta"]["progressToken"], 7);
        assert!(out.get().contains(r#""arguments":{"x": 1.50}"#));

        let state = RawValue::from_string(r#""opaque \u00e9""#.into()).unwrap();
        let retry = Retry { responses: vec![("k".into(), raw(json!({ "action": "accept" })))], state: Some(state) };
        let out = request_params(&identity(), None, Some(&params), Some(&retry)).unwrap();
        assert!(out.get().contains(r#""requestState":"opaque \u00e9""#), "{}", out.get());
        let v: Value = serde_json::from_str(out.get()).unwrap();
        assert_eq!(v["inputResponses"], json!({ "k": { "action": "accept" } }));
        assert!(v["_meta"].get(meta::LOG_LEVEL).is_none());
    }

    #[test]
    fn outcomes_are_read() {
        let plain = RawValue::from_string(r#"{"content":[] }"#.into()).unwrap();
        assert!(matches!(outcome(plain).unwrap(), Outcome::Complete(r) if r.get() == r#"{"content":[] }"#));
        let Outcome::Complete(r) = outcome(raw(json!({ "resultType": "complete", "content": [] }))).unwrap() else { panic!() };
        assert_eq!(r.get(), r#"{"content":[]}"#);
        let ir = raw(
            json!({ "resultType": "input_required", "inputRequests": { "a": { "method": "roots/list" }, "b": { "method": "elicitation/create", "params": { "m": 1 } } }, "requestState": "s" }),
        );
        let Outcome::InputRequired { requests, state } = outcome(ir).unwrap() else { panic!() };
        assert_eq!(
            requests.iter().map(|r| (r.key.as_str(), r.method.as_str())).collect::<Vec<_>>(),
            [("a", "roots/list"), ("b", "elicitation/create")]
        );
        assert_eq!(state.unwrap().get(), r#""s""#);
        assert!(outcome(raw(json!({ "resultType": "input_required" }))).is_err());
    }

    #[test]
    fn discover_results_and_errors_are_read() {
        let d = discover_info(raw(json!({ "supportedVersions": ["2026-07-28"], "capabilities": { "tools": {} }, "_meta": { meta::SERVER_INFO: { "name": "s" } }, "instructions": "i" })))
            .unwrap()
            .unwrap();
        assert_eq!(
            (d.protocol_version.as_str(), d.server_info["name"].as_str(), d.instructions.as_deref()),
            ("2026-07-28", Some("s"), Some("i"))
        );
        assert!(discover_info(raw(json!({ "supportedVersions": ["2027-01-01"] }))).unwrap().is_none());
        assert!(discover_info(raw(json!({}))).unwrap().is_none());
        let e = ErrorObject::new(mcp::code::UNSUPPORTED_VERSION, "no").with_data(json!({ "supported": ["2026-07-28"] }));
        assert!(offers_stateless(&e));
        assert!(!offers_stateless(&ErrorObject::method_not_found("server/discover")));
    }

    #[test]
    fn local_answers_and_listen_filter() {
        let st = State::new();
        assert!(st.answer_locally(method::TOOLS_LIST, None).is_none());
        st.answer_locally(method::LOGGING_SET_LEVEL, Some(&raw(json!({ "level": "debug" })))).unwrap().unwrap();
        assert_eq!(st.log_level().as_deref(), Some("debug"));
        let rx = st.subscriptions();
        st.answer_locally(method::RESOURCES_SUBSCRIBE, Some(&raw(json!({ "uri": "u" })))).unwrap().unwrap();
        assert!(rx.has_changed().unwrap());
        let caps = json!({ "tools": { "listChanged": true }, "resources": { "subscribe": true } });
        assert_eq!(
            listen_filter(&caps, &rx.borrow()),
            Some(json!({ "notifications": { "toolsListChanged": true, "resourceSubscriptions": ["u"] } }))
        );
        assert_eq!(listen_filter(&json!({ "tools": {} }), &BTreeSet::new()), None);
    }
}
