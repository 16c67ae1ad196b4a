//! The JSON-RPC 2.0 envelope, kept thin.
//!
//! Only `jsonrpc`, `id` and `method` are decoded; `params`, `result` and
//! `error.data` stay as raw JSON text, so a message that passes through the
//! gateway keeps every field, including ones this crate has never heard of.

use std::fmt;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;

use crate::mcp::code;

/// A request id: a string or an integer (JSON-RPC forbids `null` for requests).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(untagged)]
pub enum RequestId {
    Number(i64),
    String(String),
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Number(n) => write!(f, "{n}"),
            Self::String(s) => f.write_str(s),
        }
    }
}

impl From<i64> for RequestId {
    fn from(n: i64) -> Self {
        Self::Number(n)
    }
}

impl From<String> for RequestId {
    fn from(s: String) -> Self {
        Self::String(s)
    }
}

/// A JSON-RPC error object. `data` is kept as a JSON value.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ErrorObject {
    pub code: i64,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<serde_json::Value>,
}

impl ErrorObject {
    pub fn new(code: i64, message: impl Into<String>) -> Self {
        Self { code, message: message.into(), data: None }
    }

    #[must_use]
    pub fn with_data(mut self, data: serde_json::Value) -> Self {
        self.data = Some(data);
        self
    }

    pub fn parse_error(detail: impl fmt::Display) -> Self {
        Self::new(code::PARSE_ERROR, format!("Parse error: {detail}"))
    }

    pub fn invalid_request(detail: impl fmt::Display) -> Self {
        Self::new(code::INVALID_REQUEST, format!("Invalid request: {detail}"))
    }

    pub fn method_not_found(method: &str) -> Self {
        Self::new(code::METHOD_NOT_FOUND, format!("Method not found: {method}")).with_data(serde_json::json!({ "method": method }))
    }

    pub fn invalid_params(detail: impl fmt::Display) -> Self {
        Self::new(code::INVALID_PARAMS, format!("Invalid params: {detail}"))
    }

    pub fn internal(detail: impl fmt::Display) -> Self {
        Self::new(code::INTERNAL_ERROR, format!("Internal error: {detail}"))
    }
}

impl fmt::Display for ErrorObject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.message, self.code)
    }
}

impl std::error::Error for ErrorObject {}

/// A request: has an id and a method.
#[derive(Clone, Debug)]
pub struct Request {
    pub id: RequestId,
    pub method: String,
    pub params: Option<Box<RawValue>>,
}

/// A notification: a method and no id.
#[derive(Clone, Debug)]
pub struct Notification {
    pub method: String,
    pub params: Option<Box<RawValue>>,
}

/// A response: `result` or `error`. The id is `None` only for errors about a
/// message whose id could not be read (JSON-RPC answers those with `id: null`).
#[derive(Clone, Debug)]
pub struct Response {
    pub id: Option<RequestId>,
    pub payload: Result<Box<RawValue>, ErrorObject>,
}

/// Any single JSON-RPC message.
#[derive(Clone, Debug)]
pub enum Message {
    Request(Request),
    Notification(Notification),
    Response(Response),
}

/// A parsed HTTP/stdio body: one message or a batch. Batch entries that are
/// not valid messages keep their error (and id, when readable) so the caller
/// can answer them one by one.
#[derive(Debug)]
pub enum Body {
    Single(Message),
    Batch(Vec<Result<Message, (Option<RequestId>, ErrorObject)>>),
}

#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(borrow, default)]
    jsonrpc: Option<&'a RawValue>,
    #[serde(default, deserialize_with = "present")]
    id: Option<Option<serde_json::Value>>,
    #[serde(default)]
    method: Option<String>,
    #[serde(default)]
    params: Option<Box<RawValue>>,
    #[serde(default)]
    result: Option<Box<RawValue>>,
    #[serde(default)]
    error: Option<serde_json::Value>,
}

/// Distinguishes an absent field (`None`) from an explicit `null` (`Some(None)`).
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<serde_json::Value>>, D::Error> {
    Option::<serde_json::Value>::deserialize(d).map(Some)
}

fn read_id(v: Option<Option<serde_json::Value>>) -> Result<Option<RequestId>, ErrorObject> {
    match v {
        None | Some(None) => Ok(None),
        Some(Some(serde_json::Value::String(s))) => Ok(Some(RequestId::String(s))),
        Some(Some(serde_json::Value::Number(n))) => {
            n.as_i64().map(|n| Some(RequestId::Number(n))).ok_or_else(|| ErrorObject::invalid_request("id must be a string or an integer"))
        }
        Some(Some(_)) => Err(ErrorObject::invalid_request("id must be a string or an integer")),
    }
}

impl Message {
    /// Parses one message from JSON text. Malformed JSON is a parse error
    /// (-32700); well-formed JSON that is not a JSON-RPC message is an invalid
    /// request (-32600), returned with the id when one could be read.
    pub fn parse(text: &str) -> Result<Self, (Option<RequestId>, ErrorObject)> {
        let env: Envelope<'_> = match serde_json::from_str(text) {
            Ok(e) => e,
            Err(e) if e.is_syntax() || e.is_eof() => return Err((None, ErrorObject::parse_error(e))),
            Err(e) => return Err((None, ErrorObject::invalid_request(e))),
        };
        Self::from_envelope(env)
    }

    fn from_envelope(env: Envelope<'_>) -> Result<Self, (Option<RequestId>, ErrorObject)> {
        let id_was_null = matches!(env.id, Some(None));
        let id = read_id(env.id).map_err(|e| (None, e))?;
        let fail = |msg: &str| Err((id.clone(), ErrorObject::invalid_request(msg)));
        if env.jsonrpc.map(RawValue::get) != Some("\"2.0\"") {
            return fail("\"jsonrpc\" must be \"2.0\"");
        }
        match (env.method, env.result, env.error) {
            (Some(method), None, None) => match id {
                Some(id) => Ok(Self::Request(Request { id, method, params: env.params })),
                None if id_was_null => fail("a request id must not be null"),
                None => Ok(Self::Notification(Notification { method, params: env.params })),
            },
            (None, Some(result), None) => match id {
                Some(id) => Ok(Self::Response(Response { id: Some(id), payload: Ok(result) })),
                None => fail("a result must carry the id of its request"),
            },
            (None, None, Some(error)) => match serde_json::from_value::<ErrorObject>(error) {
                Ok(e) => Ok(Self::Response(Response { id, payload: Err(e) })),
                Err(_) => fail("\"error\" must have an integer \"code\" and a string \"message\""),
            },
            (Some(_), _, _) => fail("a message cannot have both \"method\" and \"result\"/\"error\""),
            (None, Some(_), Some(_)) => fail("a response cannot have both \"result\" and \"error\""),
            (None, None, None) => fail("a message needs \"method\", \"result\" or \"error\""),
        }
    }

    /// The method of a request or notification.
    pub fn method(&self) -> Option<&str> {
        match self {
            Self::Request(r) => Some(&r.method),
            Self::Notification(n) => Some(&n.method),
            Self::Response(_) => None,
        }
    }

    /// Serializes to compact JSON text.
    pub fn to_json(&self) -> String {
        // Serialization of these types cannot fail: every field is already JSON.
        serde_json::to_string(self).unwrap_or_default()
    }
}

impl Body {
    /// Parses an HTTP or stdio body that may be a batch.
    pub fn parse(bytes: &[u8]) -> Result<Self, ErrorObject> {
        let text = std::str::from_utf8(bytes).map_err(ErrorObject::parse_error)?;
        let trimmed = text.trim_start();
        if trimmed.starts_with('[') {
            let items: Vec<&RawValue> = serde_json::from_str(text)
                .map_err(|e| if e.is_syntax() || e.is_eof() { ErrorObject::parse_error(e) } else { ErrorObject::invalid_request(e) })?;
            if items.is_empty() {
                return Err(ErrorObject::invalid_request("empty batch"));
            }
            Ok(Self::Batch(items.into_iter().map(|raw| Message::parse(raw.get())).collect()))
        } else {
            Message::parse(text).map(Self::Single).map_err(|(_, e)| e)
        }
    }
}

impl Request {
    pub fn new(id: impl Into<RequestId>, method: impl Into<String>, params: Option<Box<RawValue>>) -> Self {
        Self { id: id.into(), method: method.into(), params }
    }

    /// Decodes the params into `T` (absent params decode from `{}`).
    pub fn params_as<T: DeserializeOwned>(&self) -> Result<T, ErrorObject> {
        params_as(self.params.as_deref())
    }
}

impl Notification {
    pub fn new(method: impl Into<String>, params: Option<Box<RawValue>>) -> Self {
        Self { method: method.into(), params }
    }

    pub fn params_as<T: DeserializeOwned>(&self) -> Result<T, ErrorObject> {
        params_as(self.params.as_deref())
    }
}

fn params_as<T: DeserializeOwned>(params: Option<&RawValue>) -> Result<T, ErrorObject> {
    let text = params.map_or("{}", RawValue::get);
    serde_json::from_str(text).map_err(ErrorObject::invalid_params)
}

impl Response {
    pub fn ok(id: RequestId, result: Box<RawValue>) -> Self {
        Self { id: Some(id), payload: Ok(result) }
    }

    pub fn err(id: Option<RequestId>, error: ErrorObject) -> Self {
        Self { id, payload: Err(error) }
    }
}

/// Serializes any value to a raw JSON box. Panics never: on the impossible
/// failure it yields `null`.
pub fn to_raw<T: Serialize + ?Sized>(v: &T) -> Box<RawValue> {
    serde_json::value::to_raw_value(v).unwrap_or_else(|_| RawValue::from_string("null".into()).unwrap_or_default())
}

#[derive(Serialize)]
struct Out<'a> {
    jsonrpc: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<Option<&'a RequestId>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    method: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    params: Option<&'a RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    result: Option<&'a RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a ErrorObject>,
}

impl Serialize for Message {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut out = Out { jsonrpc: "2.0", id: None, method: None, params: None, result: None, error: None };
        match self {
            Self::Request(r) => {
                out.id = Some(Some(&r.id));
                out.method = Some(&r.method);
                out.params = r.params.as_deref();
            }
            Self::Notification(n) => {
                out.method = Some(&n.method);
                out.params = n.params.as_deref();
            }
            Self::Response(r) => {
                // `id: null` is written explicitly for errors about unreadable ids.
                out.id = Some(r.id.as_ref());
                match &r.payload {
                    Ok(v) => out.result = Some(v),
                    Err(e) => out.error = Some(e),
                }
            }
        }
        out.serialize(s)
    }
}

impl From<Request> for Message {
    fn from(r: Request) -> Self {
        Self::Request(r)
    }
}

impl From<Notification> for Message {
    fn from(n: Notification) -> Self {
        Self::Notification(n)
    }
}

impl From<Response> for Message {
    fn from(r: Response) -> Self {
        Self::Response(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_round_trips_unknown_fields_in_params() {
        let text = r#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"x","_meta":{"vendor/x":1},"zz":[1,2]}}"#;
        let m = Message::parse(text).unwrap();
        let Message::Request(r) = &m else { panic!("not a request") };
        assert_eq!(r.id, RequestId::Number(7));
        assert_eq!(r.params.as_ref().unwrap().get(), r#"{"name":"x","_meta":{"vendor/x":1},"zz":[1,2]}"#);
        assert_eq!(m.to_json(), text);
    }

    #[test]
    fn classifies_messages() {
        assert!(matches!(Message::parse(r#"{"jsonrpc":"2.0","method":"n"}"#), Ok(Message::Notification(_))));
        assert!(matches!(Message::parse(r#"{"jsonrpc":"2.0","id":"a","result":{}}"#), Ok(Message::Response(_))));
        let err = Message::parse(r#"{"jsonrpc":"2.0","id":1,"error":{"code":-1,"message":"m","data":{"k":1}}}"#).unwrap();
        let Message::Response(Response { payload: Err(e), .. }) = err else { panic!() };
        assert_eq!(e.data, Some(serde_json::json!({"k":1})));
    }

    #[test]
    fn rejects_bad_envelopes_with_the_right_codes() {
        assert_eq!(Message::parse("{nope").unwrap_err().1.code, code::PARSE_ERROR);
        assert_eq!(Message::parse(r#"{"id":1,"method":"x"}"#).unwrap_err().1.code, code::INVALID_REQUEST);
        let (id, e) = Message::parse(r#"{"jsonrpc":"2.0","id":3}"#).unwrap_err();
        assert_eq!((id, e.code), (Some(RequestId::Number(3)), code::INVALID_REQUEST));
        assert_eq!(Message::parse(r#"{"jsonrpc":"2.0","id":null,"method":"x"}"#).unwrap_err().1.code, code::INVALID_REQUEST);
        assert_eq!(Message::parse(r#"{"jsonrpc":"2.0","id":1.5,"method":"x"}"#).unwrap_err().1.code, code::INVALID_REQUEST);
        assert_eq!(Message::parse("[1]").unwrap_err().1.code, code::INVALID_REQUEST);
    }

    #[test]
    fn null_id_error_response_serializes_id_null() {
        let m = Message::Response(Response::err(None, ErrorObject::parse_error("x")));
        assert!(m.to_json().contains(r#""id":null"#));
    }

    #[test]
    fn batches() {
        let Body::Batch(items) = Body::parse(br#"[{"jsonrpc":"2.0","id":1,"method":"a"},{"x":1}]"#).unwrap() else { panic!() };
        assert!(items[0].is_ok());
        assert!(items[1].is_err());
        assert_eq!(Body::parse(b"[]").unwrap_err().code, code::INVALID_REQUEST);
        assert_eq!(Body::parse(b"[{").unwrap_err().code, code::PARSE_ERROR);
    }
}
