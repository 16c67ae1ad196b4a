//! Small helpers for reading untyped JSON with field paths in every error.
//!
//! Parsers walk `serde_json::Value`s instead of deserializing into structs: every key can
//! then be accounted for (mapped, kept in `extra`, or reported as dropped), and errors name
//! the exact path (`messages[2].tool_calls[0].function.name`). `null` counts as absent
//! everywhere, because clients send `"field": null` for "not set".

use serde_json::{Map, Value};

use crate::error::{Dropped, ParseError};

pub(crate) type Obj = Map<String, Value>;

/// `parent.key`, or `key` at the top level.
pub(crate) fn path(parent: &str, key: &str) -> String {
    if parent.is_empty() { key.to_owned() } else { format!("{parent}.{key}") }
}

/// `parent[index]`.
pub(crate) fn index(parent: &str, i: usize) -> String {
    format!("{parent}[{i}]")
}

pub(crate) fn parse_object(body: &[u8]) -> Result<Obj, ParseError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(ParseError::Json("expected a JSON object".to_owned())),
        Err(e) => Err(ParseError::Json(e.to_string())),
    }
}

pub(crate) fn object<'a>(v: &'a Value, at: &str) -> Result<&'a Obj, ParseError> {
    v.as_object().ok_or_else(|| ParseError::invalid(at, "expected an object"))
}

pub(crate) fn array<'a>(v: &'a Value, at: &str) -> Result<&'a [Value], ParseError> {
    match v {
        Value::Array(items) => Ok(items),
        Value::Null => Ok(&[]),
        _ => Err(ParseError::invalid(at, "expected an array")),
    }
}

pub(crate) fn string(v: &Value, at: &str) -> Result<String, ParseError> {
    v.as_str().map(str::to_owned).ok_or_else(|| ParseError::invalid(at, "expected a string"))
}

/// Optional string member: absent or `null` → `None`, other types are an error.
pub(crate) fn get_str<'a>(obj: &'a Obj, key: &str, at: &str) -> Result<Option<&'a str>, ParseError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(ParseError::invalid(path(at, key), "expected a string")),
    }
}

/// Required string member.
pub(crate) fn req_str<'a>(obj: &'a Obj, key: &str, at: &str) -> Result<&'a str, ParseError> {
    get_str(obj, key, at)?.ok_or_else(|| ParseError::invalid(path(at, key), "required"))
}

pub(crate) fn opt_u32(v: &Value, at: &str) -> Result<Option<u32>, ParseError> {
    match v {
        Value::Null => Ok(None),
        Value::Number(n) => n
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .map(Some)
            .ok_or_else(|| ParseError::invalid(at, "expected a non-negative integer")),
        _ => Err(ParseError::invalid(at, "expected an integer")),
    }
}

pub(crate) fn opt_f64(v: &Value, at: &str) -> Result<Option<f64>, ParseError> {
    match v {
        Value::Null => Ok(None),
        Value::Number(n) => Ok(n.as_f64()),
        _ => Err(ParseError::invalid(at, "expected a number")),
    }
}

pub(crate) fn opt_bool(v: &Value, at: &str) -> Result<Option<bool>, ParseError> {
    match v {
        Value::Null => Ok(None),
        Value::Bool(b) => Ok(Some(*b)),
        _ => Err(ParseError::invalid(at, "expected a boolean")),
    }
}

/// A string or an array of strings (OpenAI `stop`).
pub(crate) fn strings(v: &Value, at: &str) -> Result<Vec<String>, ParseError> {
    match v {
        Value::Null => Ok(Vec::new()),
        Value::String(s) => Ok(vec![s.clone()]),
        Value::Array(items) => items.iter().enumerate().map(|(i, s)| string(s, &index(at, i))).collect(),
        _ => Err(ParseError::invalid(at, "expected a string or an array of strings")),
    }
}

/// Report every member of `obj` not in `known` (and not `null`) as dropped.
pub(crate) fn report_unknown(obj: &Obj, known: &[&str], at: &str, reason: &str, dropped: &mut Vec<Dropped>) {
    for (key, value) in obj {
        if !value.is_null() && !known.contains(&key.as_str()) {
            dropped.push(Dropped::new(path(at, key), reason));
        }
    }
}

/// Lenient counter read for provider usage objects: absent, `null` or not a number → 0.
pub(crate) fn count(obj: Option<&Value>, key: &str) -> u64 {
    obj.and_then(|o| o.get(key)).and_then(Value::as_u64).unwrap_or(0)
}

/// Lenient string read for provider answers.
pub(crate) fn str_at<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("")
}

/// A JSON object from key/value pairs, skipping `None`s: keeps writers free of noise.
pub(crate) fn obj_of(pairs: Vec<(&str, Option<Value>)>) -> Value {
    let mut map = Map::new();
    for (k, v) in pairs {
        if let Some(v) = v {
            map.insert(k.to_owned(), v);
        }
    }
    Value::Object(map)
}
