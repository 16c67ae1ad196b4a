//! Errors: what a parser refuses ([`ParseError`]), what a translation could not carry
//! ([`Dropped`]), and provider error classes ([`ErrorKind`]) with each API's error body shape
//! ([`write_error`]).

use std::fmt;

use serde::Serialize;
use serde_json::{Value, json};

use crate::Format;

/// A body the parser cannot accept. The hub answers these with HTTP 400 and the message.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// Not JSON, or not a JSON object.
    #[error("request body is not valid JSON: {0}")]
    Json(String),
    /// A field is missing or has the wrong shape.
    #[error("`{field}`: {message}")]
    Invalid {
        /// Path of the field, e.g. `messages[2].tool_calls[0].id`.
        field: String,
        /// What is wrong.
        message: String,
    },
    /// A feature this gateway does not offer (e.g. `previous_response_id` without a store).
    #[error("`{field}` is not supported: {message}")]
    Unsupported {
        /// The field that asks for the feature.
        field: String,
        /// Why, and what to do instead.
        message: String,
    },
}

impl ParseError {
    pub(crate) fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        ParseError::Invalid { field: field.into(), message: message.into() }
    }
}

/// A field that could not be carried into the target format. Translations never drop
/// anything silently: every loss is listed so the hub can report it (header and log).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Dropped {
    /// Where the field was, e.g. `seed` or `messages[3].content[1]`.
    pub field: String,
    /// Why it could not be carried.
    pub reason: String,
}

impl Dropped {
    pub(crate) fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Dropped { field: field.into(), reason: reason.into() }
    }
}

impl fmt::Display for Dropped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.field, self.reason)
    }
}

/// Class of an API error, independent of format.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub enum ErrorKind {
    /// Malformed or unacceptable request (400).
    InvalidRequest,
    /// Missing or wrong credentials (401).
    Authentication,
    /// Credentials lack permission (403).
    Permission,
    /// Unknown model or path (404).
    NotFound,
    /// Body too large (413).
    RequestTooLarge,
    /// Rate or quota limit (429).
    RateLimit,
    /// Provider-side failure (500).
    Api,
    /// Provider overloaded (Anthropic 529, elsewhere 503).
    Overloaded,
    /// Upstream did not answer in time (504).
    Timeout,
    /// A class this crate does not know, as the provider named it.
    Other(String),
}

impl ErrorKind {
    /// The HTTP status that goes with the class.
    pub fn status(&self) -> u16 {
        match self {
            ErrorKind::InvalidRequest => 400,
            ErrorKind::Authentication => 401,
            ErrorKind::Permission => 403,
            ErrorKind::NotFound => 404,
            ErrorKind::RequestTooLarge => 413,
            ErrorKind::RateLimit => 429,
            ErrorKind::Api | ErrorKind::Other(_) => 500,
            ErrorKind::Overloaded => 529,
            ErrorKind::Timeout => 504,
        }
    }

    /// The class of an HTTP error status.
    pub fn from_status(status: u16) -> Self {
        match status {
            401 => ErrorKind::Authentication,
            403 => ErrorKind::Permission,
            404 => ErrorKind::NotFound,
            413 => ErrorKind::RequestTooLarge,
            429 => ErrorKind::RateLimit,
            503 | 529 => ErrorKind::Overloaded,
            504 => ErrorKind::Timeout,
            400..=499 => ErrorKind::InvalidRequest,
            _ => ErrorKind::Api,
        }
    }

    /// Anthropic `error.type`.
    pub fn anthropic_type(&self) -> &str {
        match self {
            ErrorKind::InvalidRequest => "invalid_request_error",
            ErrorKind::Authentication => "authentication_error",
            ErrorKind::Permission => "permission_error",
            ErrorKind::NotFound => "not_found_error",
            ErrorKind::RequestTooLarge => "request_too_large",
            ErrorKind::RateLimit => "rate_limit_error",
            ErrorKind::Api => "api_error",
            ErrorKind::Overloaded => "overloaded_error",
            ErrorKind::Timeout => "timeout_error",
            ErrorKind::Other(name) => name,
        }
    }

    /// From Anthropic `error.type`.
    pub fn from_anthropic_type(name: &str) -> Self {
        match name {
            "invalid_request_error" => ErrorKind::InvalidRequest,
            "authentication_error" => ErrorKind::Authentication,
            "permission_error" => ErrorKind::Permission,
            "not_found_error" => ErrorKind::NotFound,
            "request_too_large" => ErrorKind::RequestTooLarge,
            "rate_limit_error" => ErrorKind::RateLimit,
            "api_error" => ErrorKind::Api,
            "overloaded_error" => ErrorKind::Overloaded,
            "timeout_error" => ErrorKind::Timeout,
            other => ErrorKind::Other(other.to_owned()),
        }
    }

    /// OpenAI `error.type`. OpenAI's SDKs classify by HTTP status, so the type is informative.
    pub fn openai_type(&self) -> &str {
        match self {
            ErrorKind::InvalidRequest | ErrorKind::RequestTooLarge => "invalid_request_error",
            ErrorKind::Authentication => "authentication_error",
            ErrorKind::Permission => "permission_error",
            ErrorKind::NotFound => "not_found_error",
            ErrorKind::RateLimit => "rate_limit_error",
            ErrorKind::Api | ErrorKind::Overloaded => "server_error",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Other(name) => name,
        }
    }

    /// From OpenAI `error.type` / `error.code` (either may be absent; Responses streams send
    /// only a code, and that code is often a type name such as `server_error`).
    pub fn from_openai(error_type: Option<&str>, code: Option<&str>) -> Self {
        for name in [code, error_type].into_iter().flatten() {
            let kind = match name {
                "rate_limit_exceeded" | "insufficient_quota" | "rate_limit_error" | "tokens" | "requests" => ErrorKind::RateLimit,
                "invalid_api_key" | "authentication_error" => ErrorKind::Authentication,
                "context_length_exceeded" | "invalid_request_error" | "invalid_prompt" => ErrorKind::InvalidRequest,
                "model_not_found" | "not_found_error" => ErrorKind::NotFound,
                "permission_error" => ErrorKind::Permission,
                "server_error" | "api_error" => ErrorKind::Api,
                "server_is_overloaded" | "slow_down" => ErrorKind::Overloaded,
                "timeout" => ErrorKind::Timeout,
                _ => continue,
            };
            return kind;
        }
        match error_type.or(code) {
            Some(other) => ErrorKind::Other(other.to_owned()),
            None => ErrorKind::Api,
        }
    }

    /// Google RPC status name used in Gemini error bodies.
    pub fn gemini_status(&self) -> &str {
        match self {
            ErrorKind::InvalidRequest | ErrorKind::RequestTooLarge => "INVALID_ARGUMENT",
            ErrorKind::Authentication => "UNAUTHENTICATED",
            ErrorKind::Permission => "PERMISSION_DENIED",
            ErrorKind::NotFound => "NOT_FOUND",
            ErrorKind::RateLimit => "RESOURCE_EXHAUSTED",
            ErrorKind::Api | ErrorKind::Other(_) => "INTERNAL",
            ErrorKind::Overloaded => "UNAVAILABLE",
            ErrorKind::Timeout => "DEADLINE_EXCEEDED",
        }
    }

    /// From a Gemini `error.status`.
    pub fn from_gemini_status(status: &str) -> Self {
        match status {
            "INVALID_ARGUMENT" | "FAILED_PRECONDITION" | "OUT_OF_RANGE" => ErrorKind::InvalidRequest,
            "UNAUTHENTICATED" => ErrorKind::Authentication,
            "PERMISSION_DENIED" => ErrorKind::Permission,
            "NOT_FOUND" => ErrorKind::NotFound,
            "RESOURCE_EXHAUSTED" => ErrorKind::RateLimit,
            "INTERNAL" | "UNKNOWN" => ErrorKind::Api,
            "UNAVAILABLE" => ErrorKind::Overloaded,
            "DEADLINE_EXCEEDED" => ErrorKind::Timeout,
            other => ErrorKind::Other(other.to_owned()),
        }
    }
}

/// An error body in `format`'s shape, for the hub's own refusals and for relaying provider
/// errors to a client of another format.
///
/// - OpenAI (Chat and Responses): `{"error": {"message", "type", "param": null, "code": null}}`
/// - Anthropic: `{"type": "error", "error": {"type", "message"}}`
/// - Gemini: `{"error": {"code": <status>, "message", "status": "INVALID_ARGUMENT"}}`
pub fn write_error(format: Format, status: u16, kind: &ErrorKind, message: &str) -> Value {
    match format {
        Format::OpenAiChat | Format::OpenAiResponses => json!({
            "error": {"message": message, "type": kind.openai_type(), "param": null, "code": null}
        }),
        Format::AnthropicMessages => json!({
            "type": "error",
            "error": {"type": kind.anthropic_type(), "message": message}
        }),
        Format::Gemini => json!({
            "error": {"code": status, "message": message, "status": kind.gemini_status()}
        }),
    }
}
