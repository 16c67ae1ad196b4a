//! Translation between the 2026-07-28 stateless era and the session eras
//! (2025-03-26 … 2025-11-25), one hop at a time.
//!
//! The hub's router, catalog and backends speak the session eras. A
//! stateless client's request is turned into a session-era request on the way
//! in (its per-request `_meta` becomes a throw-away session, `inputResponses`
//! and `requestState` are taken out), and the answer is turned back on the way
//! out (`resultType`, caching hints, the error codes that changed). A
//! server→client request a backend sends during a call (sampling,
//! elicitation, roots) has no stream to travel on in the stateless era: it
//! becomes an entry of an `InputRequiredResult`, and the client's retry carries
//! the answer back. Everything here is pure: no I/O, no state.

use std::collections::BTreeMap;

use gatehouse_proto::jsonrpc::to_raw;
use gatehouse_proto::mcp::{code, meta, method};
use gatehouse_proto::{ErrorObject, RawObject, Request};
use serde_json::value::RawValue;
use serde_json::{Map, Value, json};

/// How long a stateless client may cache a list or a read. Zero: what a
/// caller may see follows policy, the registry and backends, any of which
/// can change at any moment.
pub const CACHE_TTL_MS: u64 = 0;

/// What a stateless request says about itself in `params._meta`.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestMeta {
    /// `io.modelcontextprotocol/protocolVersion`.
    pub version: String,
    /// `io.modelcontextprotocol/clientCapabilities` (an object).
    pub capabilities: Value,
    /// `io.modelcontextprotocol/clientInfo` (`null` when absent: it is a SHOULD).
    pub client_info: Value,
    /// `io.modelcontextprotocol/logLevel`: without it the client gets no log messages.
    pub log_level: Option<String>,
}

/// The protocol version a stateless request names in `_meta`, if any.
pub fn meta_version(params: Option<&RawValue>) -> Option<String> {
    let obj = RawObject::parse(params).ok()?;
    obj.get_as::<RawObject>("_meta")?.get_str(meta::PROTOCOL_VERSION)
}

/// Reads and checks the `_meta` every stateless request must carry
/// (`-32602` naming what is missing or malformed).
pub fn request_meta(params: Option<&RawValue>) -> Result<RequestMeta, ErrorObject> {
    let obj = RawObject::parse(params).map_err(|_| ErrorObject::invalid_params("params must be an object"))?;
    let Some(m) = obj.get_as::<Map<String, Value>>("_meta") else {
        return Err(ErrorObject::invalid_params("params._meta is required in protocol revision 2026-07-28"));
    };
    let missing: Vec<&str> = [meta::PROTOCOL_VERSION, meta::CLIENT_CAPABILITIES].into_iter().filter(|k| !m.contains_key(*k)).collect();
    if !missing.is_empty() {
        return Err(
            ErrorObject::invalid_params(format!("params._meta is missing {}", missing.join(", "))).with_data(json!({ "missing": missing }))
        );
    }
    let version = match &m[meta::PROTOCOL_VERSION] {
        Value::String(v) => v.clone(),
        _ => return Err(ErrorObject::invalid_params(format!("_meta {} must be a string", meta::PROTOCOL_VERSION))),
    };
    let capabilities = match &m[meta::CLIENT_CAPABILITIES] {
        v @ Value::Object(_) => v.clone(),
        _ => return Err(ErrorObject::invalid_params(format!("_meta {} must be an object", meta::CLIENT_CAPABILITIES))),
    };
    let log_level = m.get(meta::LOG_LEVEL).and_then(Value::as_str).map(str::to_owned);
    Ok(RequestMeta { version, capabilities, client_info: m.get(meta::CLIENT_INFO).cloned().unwrap_or(Value::Null), log_level })
}

/// The multi-round-trip members of a stateless request (SEP-2322).
#[derive(Debug, Default, PartialEq)]
pub struct RoundTrip {
    /// `inputResponses`: the client's answers, by the keys the server gave.
    pub responses: Map<String, Value>,
    /// `requestState`: the opaque state of an earlier `InputRequiredResult`.
    pub state: Option<String>,
}

/// Rewrites a stateless request into the session-era request the router
/// serves: `inputResponses` and `requestState` are taken out (into the
/// [`RoundTrip`]), and so are the protocol's own `_meta` keys (the throw-away
/// session carries them). Every other member stays byte for byte.
pub fn to_session_request(req: Request) -> Result<(Request, RoundTrip), ErrorObject> {
    let Some(params) = &req.params else { return Ok((req, RoundTrip::default())) };
    let mut obj = RawObject::parse(Some(params)).map_err(|_| ErrorObject::invalid_params("params must be an object"))?;
    let mut round = RoundTrip::default();
    if let Some(raw) = obj.remove("inputResponses") {
        match serde_json::from_str::<Value>(raw.get()) {
            Ok(Value::Object(responses)) => {
                if let Some((key, _)) = responses.iter().find(|(_, v)| !v.is_object()) {
                    return Err(ErrorObject::invalid_params(format!("inputResponses[{key:?}] must be an object (the client's result)")));
                }
                round.responses = responses;
            }
            _ => return Err(ErrorObject::invalid_params("inputResponses must be an object")),
        }
    }
    if let Some(raw) = obj.remove("requestState") {
        match serde_json::from_str::<Value>(raw.get()) {
            Ok(Value::String(s)) => round.state = Some(s),
            _ => return Err(ErrorObject::invalid_params("requestState must be a string")),
        }
    }
    if let Some(mut m) = obj.get_as::<RawObject>("_meta") {
        m.0.retain(|(k, _)| !k.starts_with(meta::PROTOCOL_PREFIX));
        if m.0.is_empty() {
            obj.remove("_meta");
        } else {
            obj.set("_meta", m.to_raw());
        }
    }
    Ok((Request { id: req.id, method: req.method, params: Some(obj.to_raw()) }, round))
}

/// Methods whose results carry caching hints (SEP-2549).
fn cacheable(m: &str) -> bool {
    matches!(
        m,
        method::SERVER_DISCOVER
            | method::TOOLS_LIST
            | method::PROMPTS_LIST
            | method::RESOURCES_LIST
            | method::RESOURCES_TEMPLATES_LIST
            | method::RESOURCES_READ
    )
}

/// A session-era result as a 2026-07-28 complete result: `resultType` and,
/// for cacheable methods, `ttlMs` and `cacheScope` (private: lists are
/// filtered per caller). Members the backend set itself are kept.
pub fn complete(m: &str, result: Box<RawValue>) -> Box<RawValue> {
    let Ok(mut obj) = RawObject::parse(Some(&result)) else { return result };
    if obj.get("resultType").is_none() {
        obj.set("resultType", to_raw("complete"));
    }
    if cacheable(m) {
        if obj.get("ttlMs").is_none() {
            obj.set("ttlMs", to_raw(&CACHE_TTL_MS));
        }
        if obj.get("cacheScope").is_none() {
            obj.set("cacheScope", to_raw("private"));
        }
    }
    obj.to_raw()
}

/// A session-era error as the 2026-07-28 client expects it: an unknown
/// resource is `-32602` from this revision on (SEP-2164), was `-32002`.
pub fn error(mut e: ErrorObject) -> ErrorObject {
    if e.code == code::RESOURCE_NOT_FOUND {
        e.code = code::INVALID_PARAMS;
    }
    e
}

/// The key an `InputRequiredResult` gives the `n`th server→client request of
/// one call: the request's kind and a counter, unique within the call.
pub fn input_key(m: &str, n: u64) -> String {
    let kind = match m {
        method::SAMPLING_CREATE_MESSAGE => "sampling",
        method::ELICITATION_CREATE => "elicitation",
        method::ROOTS_LIST => "roots",
        other => other,
    };
    format!("{kind}-{n}")
}

/// The `InputRequiredResult` asking the client for `requests` (key → the
/// server→client request, params untouched), to be retried with `state`.
pub fn input_required(requests: &BTreeMap<String, Request>, state: &str) -> Box<RawValue> {
    #[derive(serde::Serialize)]
    struct Entry<'a> {
        method: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        params: Option<&'a RawValue>,
    }
    #[derive(serde::Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Body<'a> {
        result_type: &'static str,
        input_requests: BTreeMap<&'a str, Entry<'a>>,
        request_state: &'a str,
    }
    let input_requests = requests.iter().map(|(k, r)| (k.as_str(), Entry { method: &r.method, params: r.params.as_deref() })).collect();
    to_raw(&Body { result_type: "input_required", input_requests, request_state: state })
}

/// The `server/discover` result of an endpoint whose session-era
/// `initialize` result is `init`: its capabilities and instructions, the
/// server's identity in `_meta`, and the revisions the endpoint speaks.
pub fn discover_result(init: &RawValue, supported: &[&str]) -> Result<Box<RawValue>, ErrorObject> {
    let init: Map<String, Value> = serde_json::from_str(init.get()).map_err(ErrorObject::internal)?;
    let mut out = Map::new();
    out.insert("supportedVersions".into(), json!(supported));
    out.insert("capabilities".into(), init.get("capabilities").cloned().unwrap_or_else(|| json!({})));
    if let Some(i) = init.get("instructions").filter(|v| v.is_string()) {
        out.insert("instructions".into(), i.clone());
    }
    if let Some(Value::Object(info)) = init.get("serverInfo") {
        out.insert("_meta".into(), json!({ meta::SERVER_INFO: info }));
    }
    Ok(complete(method::SERVER_DISCOVER, to_raw(&out)))
}

/// The subset of a `subscriptions/listen` filter an endpoint with these
/// server capabilities honours (only notification types it can send).
pub fn honoured_filter(requested: &Map<String, Value>, capabilities: &Value) -> Map<String, Value> {
    let flag = |area: &str, key: &str| capabilities.get(area).and_then(|a| a.get(key)).and_then(Value::as_bool).unwrap_or(false);
    let mut out = Map::new();
    for (key, area, cap) in [
        ("toolsListChanged", "tools", "listChanged"),
        ("promptsListChanged", "prompts", "listChanged"),
        ("resourcesListChanged", "resources", "listChanged"),
    ] {
        if requested.get(key).and_then(Value::as_bool) == Some(true) && flag(area, cap) {
            out.insert(key.into(), Value::Bool(true));
        }
    }
    if let Some(Value::Array(uris)) = requested.get("resourceSubscriptions")
        && flag("resources", "subscribe")
    {
        let uris: Vec<Value> = uris.iter().filter(|u| u.is_string()).cloned().collect();
        out.insert("resourceSubscriptions".into(), Value::Array(uris));
    }
    out
}

/// True when `notification` (a session-era one) is of a type the listen
/// filter asked for. Resource updates reach a listen session only for the
/// URIs it subscribed to, so their type is all that is checked here.
pub fn filter_admits(filter: &Map<String, Value>, notification: &str) -> bool {
    let on = |k: &str| filter.get(k).and_then(Value::as_bool) == Some(true);
    match notification {
        method::TOOLS_LIST_CHANGED => on("toolsListChanged"),
        method::PROMPTS_LIST_CHANGED => on("promptsListChanged"),
        method::RESOURCES_LIST_CHANGED => on("resourcesListChanged"),
        method::RESOURCES_UPDATED => filter.get("resourceSubscriptions").and_then(Value::as_array).is_some_and(|l| !l.is_empty()),
        _ => false,
    }
}

/// Tags a notification's params with the listen stream's subscription id.
pub fn tag_subscription(params: Option<&RawValue>, subscription: &RawValue) -> Box<RawValue> {
    let mut obj = RawObject::parse(params).unwrap_or_default();
    let mut m = obj.get_as::<RawObject>("_meta").unwrap_or_default();
    m.set(meta::SUBSCRIPTION_ID, subscription.to_owned());
    obj.set("_meta", m.to_raw());
    obj.to_raw()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(v: Value) -> Box<RawValue> {
        to_raw(&v)
    }

    fn val(r: &RawValue) -> Value {
        serde_json::from_str(r.get()).unwrap()
    }

    #[test]
    fn meta_is_required_and_checked() {
        let ok = raw(
            json!({ "_meta": { meta::PROTOCOL_VERSION: "2026-07-28", meta::CLIENT_CAPABILITIES: { "sampling": {} }, meta::LOG_LEVEL: "info" } }),
        );
        let m = request_meta(Some(&ok)).unwrap();
        assert_eq!((m.version.as_str(), m.log_level.as_deref(), m.client_info.is_null()), ("2026-07-28", Some("info"), true));
        assert_eq!(meta_version(Some(&ok)).as_deref(), Some("2026-07-28"));
        for bad in [
            json!({}),
            json!({ "_meta": { meta::CLIENT_CAPABILITIES: {} } }),
            json!({ "_meta": { meta::PROTOCOL_VERSION: "2026-07-28" } }),
            json!({ "_meta": { meta::PROTOCOL_VERSION: 7, meta::CLIENT_CAPABILITIES: {} } }),
            json!({ "_meta": { meta::PROTOCOL_VERSION: "2026-07-28", meta::CLIENT_CAPABILITIES: [] } }),
        ] {
            assert_eq!(request_meta(Some(&raw(bad.clone()))).unwrap_err().code, code::INVALID_PARAMS, "{bad}");
        }
        assert_eq!(request_meta(None).unwrap_err().code, code::INVALID_PARAMS);
    }

    #[test]
    fn session_requests_lose_only_the_stateless_members() {
        let req = Request::new(
            3,
            "tools/call",
            Some(raw(json!({
                "name": "t", "arguments": { "a": 1 },
                "inputResponses": { "elicitation-1": { "action": "accept", "content": { "x": 1 } } },
                "requestState": "s1",
                "_meta": { meta::PROTOCOL_VERSION: "2026-07-28", meta::CLIENT_CAPABILITIES: {}, "progressToken": 5, "vendor/x": true }
            }))),
        );
        let (out, round) = to_session_request(req).unwrap();
        assert_eq!(
            val(out.params.as_ref().unwrap()),
            json!({ "name": "t", "arguments": { "a": 1 }, "_meta": { "progressToken": 5, "vendor/x": true } })
        );
        assert_eq!(round.state.as_deref(), Some("s1"));
        assert_eq!(round.responses["elicitation-1"]["action"], "accept");

        let bare = Request::new(1, "tools/list", Some(raw(json!({ "_meta": { meta::PROTOCOL_VERSION: "2026-07-28" } }))));
        assert_eq!(val(to_session_request(bare).unwrap().0.params.as_ref().unwrap()), json!({}));

        for bad in [json!({ "inputResponses": null }), json!({ "inputResponses": { "k": 12345 } }), json!({ "requestState": 1 })] {
            let r = Request::new(1, "tools/call", Some(raw(bad)));
            assert_eq!(to_session_request(r).unwrap_err().code, code::INVALID_PARAMS);
        }
    }

    #[test]
    fn results_are_marked_complete_with_caching_hints_where_cacheable() {
        let list = complete(method::TOOLS_LIST, raw(json!({ "tools": [] })));
        assert_eq!(val(&list), json!({ "tools": [], "resultType": "complete", "ttlMs": CACHE_TTL_MS, "cacheScope": "private" }));
        let call = complete(method::TOOLS_CALL, raw(json!({ "content": [], "resultType": "complete" })));
        assert_eq!(val(&call), json!({ "content": [], "resultType": "complete" }));
        let kept = complete(method::RESOURCES_READ, raw(json!({ "contents": [], "ttlMs": 5, "cacheScope": "public" })));
        assert_eq!(val(&kept)["ttlMs"], 5);
        assert_eq!(val(&kept)["cacheScope"], "public");
        assert_eq!(error(ErrorObject::new(code::RESOURCE_NOT_FOUND, "x")).code, code::INVALID_PARAMS);
        assert_eq!(error(ErrorObject::new(code::POLICY_DENIED, "x")).code, code::POLICY_DENIED);
    }

    #[test]
    fn server_requests_become_an_input_required_result() {
        let mut reqs = BTreeMap::new();
        reqs.insert(
            input_key(method::ELICITATION_CREATE, 1),
            Request::new(9, method::ELICITATION_CREATE, Some(raw(json!({ "message": "m" })))),
        );
        reqs.insert(input_key(method::ROOTS_LIST, 2), Request::new(10, method::ROOTS_LIST, None));
        let out = val(&input_required(&reqs, "st"));
        assert_eq!(
            out,
            json!({
                "resultType": "input_required",
                "inputRequests": {
                    "elicitation-1": { "method": "elicitation/create", "params": { "message": "m" } },
                    "roots-2": { "method": "roots/list" }
                },
                "requestState": "st"
            })
        );
    }

    #[test]
    fn discover_comes_from_the_initialize_result() {
        let init = raw(
            json!({ "protocolVersion": "2025-11-25", "capabilities": { "tools": {} }, "serverInfo": { "name": "s", "version": "1" }, "instructions": "hi" }),
        );
        let d = val(&discover_result(&init, &["2026-07-28"]).unwrap());
        assert_eq!(d["supportedVersions"], json!(["2026-07-28"]));
        assert_eq!(d["capabilities"], json!({ "tools": {} }));
        assert_eq!(d["_meta"][meta::SERVER_INFO]["name"], "s");
        assert_eq!(d["instructions"], "hi");
        assert_eq!(d["resultType"], "complete");
        assert!(d.get("protocolVersion").is_none());
    }

    #[test]
    fn listen_filters_keep_what_the_server_can_send() {
        let caps = json!({ "tools": { "listChanged": true }, "resources": { "subscribe": true } });
        let asked = json!({ "toolsListChanged": true, "promptsListChanged": true, "resourceSubscriptions": ["a://1"] });
        let f = honoured_filter(asked.as_object().unwrap(), &caps);
        assert_eq!(Value::Object(f.clone()), json!({ "toolsListChanged": true, "resourceSubscriptions": ["a://1"] }));
        assert!(filter_admits(&f, method::TOOLS_LIST_CHANGED));
        assert!(!filter_admits(&f, method::PROMPTS_LIST_CHANGED));
        assert!(filter_admits(&f, method::RESOURCES_UPDATED));
        assert!(!filter_admits(&f, method::MESSAGE));
        let none = honoured_filter(asked.as_object().unwrap(), &json!({}));
        assert!(none.is_empty() && !filter_admits(&none, method::RESOURCES_UPDATED));
        let tagged = val(&tag_subscription(Some(&raw(json!({ "uri": "a://1" }))), &raw(json!(7))));
        assert_eq!(tagged, json!({ "uri": "a://1", "_meta": { meta::SUBSCRIPTION_ID: 7 } }));
    }
}
