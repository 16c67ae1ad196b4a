//! The translation core of Gatehouse's AI API proxy: pure functions and state machines, no
//! I/O, that turn one AI API format into another.
//!
//! # Formats
//!
//! [`Format`] names the four wire formats, each with a module holding a request parser and
//! writer, a response parser and writer, a stream decoder ([`StreamDecode`]) and a stream
//! encoder ([`StreamEncode`]):
//!
//! | format | module | clients | providers |
//! |---|---|---|---|
//! | OpenAI Chat Completions | [`openai_chat`] | `/v1/chat/completions` | OpenAI, Azure OpenAI, OpenAI-compatible servers |
//! | OpenAI Responses | [`openai_responses`] | `/v1/responses` | OpenAI |
//! | Anthropic Messages | [`anthropic`] | `/v1/messages` | Anthropic, Bedrock (InvokeModel) |
//! | Gemini `generateContent` | [`gemini`] | — | Gemini |
//!
//! The hub decides which format a provider speaks and adapts the envelope: Azure and
//! OpenAI-compatible servers take OpenAI Chat bodies on their own URLs; Bedrock takes the
//! Anthropic Messages body with `anthropic_version` in the body and the model in the URL, and
//! wraps stream events in AWS event-stream frames (their JSON goes to
//! [`anthropic::StreamParser::feed_json`]); Gemini's model and streaming mode are in the URL
//! (`models/{model}:streamGenerateContent?alt=sse`), not in the body.
//!
//! # The internal model
//!
//! Every translation goes through [`model`]: a client body is parsed into a [`Request`],
//! written in the provider's format; the answer is parsed into a [`Response`], or for streams
//! into [`StreamEvent`]s (message start, content blocks with deltas, message delta with the
//! stop reason and cumulative usage, message stop, ping, error), and written in the client's
//! format. SSE is decoded on complete lines only ([`sse`]), so a read that splits a multi-byte
//! character cannot corrupt it.
//!
//! # Nothing is dropped silently
//!
//! Every parser and writer returns, next to its result, a list of [`Dropped`] fields that
//! could not be carried over, for the hub to report. Fields a parser does not map are kept in
//! [`Request::extra`] and forwarded untouched when the provider speaks the client's format.
//!
//! # Also here
//!
//! Token estimates for `count_tokens` and per-model output limits ([`tokens`]), `/v1/models`
//! bodies ([`listing`]), error bodies per format ([`write_error`]), usage accounting over a
//! stream ([`UsageMeter`]) and the store hook for Responses' `previous_response_id`
//! ([`ResponseStore`]).

#![warn(missing_docs)]

pub mod anthropic;
pub mod error;
pub mod gemini;
mod json;
pub mod listing;
pub mod model;
pub mod openai_chat;
pub mod openai_responses;
pub mod sse;
pub mod store;
pub mod stream;
pub mod tokens;
pub mod usage;

use serde::Serialize;
use serde_json::Value;

pub use error::{Dropped, ErrorKind, ParseError, write_error};
pub use listing::{ModelInfo, write_models_anthropic, write_models_openai};
pub use model::{
    BlockKind, ImageSource, Message, Part, Request, Response, Role, StopReason, StreamEvent, SystemPart, Tool, ToolChoice, Usage,
};
pub use store::ResponseStore;
pub use stream::{StreamDecode, StreamEncode, StreamOptions};
pub use tokens::{default_max_tokens, estimate_tokens, wants_max_completion_tokens};
pub use usage::UsageMeter;

/// An AI API wire format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum Format {
    /// OpenAI Chat Completions (also Azure OpenAI and OpenAI-compatible servers).
    OpenAiChat,
    /// OpenAI Responses.
    OpenAiResponses,
    /// Anthropic Messages (also Bedrock InvokeModel bodies).
    AnthropicMessages,
    /// Google Gemini `generateContent`.
    Gemini,
}

impl Format {
    /// Every format.
    pub const ALL: [Format; 4] = [Format::OpenAiChat, Format::OpenAiResponses, Format::AnthropicMessages, Format::Gemini];

    /// Human-readable name, used in [`Dropped`] reasons.
    pub fn name(self) -> &'static str {
        match self {
            Format::OpenAiChat => "OpenAI Chat",
            Format::OpenAiResponses => "OpenAI Responses",
            Format::AnthropicMessages => "Anthropic Messages",
            Format::Gemini => "Gemini",
        }
    }
}

/// Parse a request body of `format`. Responses requests with `previous_response_id` are
/// refused here; use [`openai_responses::parse_request_with_store`] to serve them.
pub fn parse_request(format: Format, body: &[u8]) -> Result<(Request, Vec<Dropped>), ParseError> {
    match format {
        Format::OpenAiChat => openai_chat::parse_request(body),
        Format::OpenAiResponses => openai_responses::parse_request(body),
        Format::AnthropicMessages => anthropic::parse_request(body),
        Format::Gemini => gemini::parse_request(body),
    }
}

/// Write a request in `format`.
pub fn write_request(format: Format, request: &Request) -> (Value, Vec<Dropped>) {
    match format {
        Format::OpenAiChat => openai_chat::write_request(request),
        Format::OpenAiResponses => openai_responses::write_request(request),
        Format::AnthropicMessages => anthropic::write_request(request),
        Format::Gemini => gemini::write_request(request),
    }
}

/// Parse a whole response body of `format`.
pub fn parse_response(format: Format, body: &[u8]) -> Result<(Response, Vec<Dropped>), ParseError> {
    match format {
        Format::OpenAiChat => openai_chat::parse_response(body),
        Format::OpenAiResponses => openai_responses::parse_response(body),
        Format::AnthropicMessages => anthropic::parse_response(body),
        Format::Gemini => gemini::parse_response(body),
    }
}

/// Write a whole response in `format`.
pub fn write_response(format: Format, response: &Response) -> (Value, Vec<Dropped>) {
    match format {
        Format::OpenAiChat => openai_chat::write_response(response),
        Format::OpenAiResponses => openai_responses::write_response(response),
        Format::AnthropicMessages => anthropic::write_response(response),
        Format::Gemini => gemini::write_response(response),
    }
}

/// A stream decoder for a provider speaking `format`.
pub fn stream_parser(format: Format) -> Box<dyn StreamDecode> {
    match format {
        Format::OpenAiChat => Box::new(openai_chat::StreamParser::new()),
        Format::OpenAiResponses => Box::new(openai_responses::StreamParser::new()),
        Format::AnthropicMessages => Box::new(anthropic::StreamParser::new()),
        Format::Gemini => Box::new(gemini::StreamParser::new()),
    }
}

/// A stream encoder for a client speaking `format`.
pub fn stream_writer(format: Format, options: StreamOptions) -> Box<dyn StreamEncode> {
    match format {
        Format::OpenAiChat => Box::new(openai_chat::StreamWriter::new(options)),
        Format::OpenAiResponses => Box::new(openai_responses::StreamWriter::new(options)),
        Format::AnthropicMessages => Box::new(anthropic::StreamWriter::new()),
        Format::Gemini => Box::new(gemini::StreamWriter::new()),
    }
}

/// Same-format extras go back into the body (mapped fields win); other formats report them.
pub(crate) fn put_extra(req: &Request, format: Format, body: &mut serde_json::Map<String, Value>, d: &mut Vec<Dropped>) {
    for (key, value) in &req.extra {
        if req.source == Some(format) {
            body.entry(key.clone()).or_insert_with(|| value.clone());
        } else {
            d.push(Dropped::new(key.clone(), format!("no {} equivalent", format.name())));
        }
    }
}
