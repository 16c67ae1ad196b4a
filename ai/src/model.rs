//! The internal model every format is translated through.
//!
//! A client body is parsed into a [`Request`], written out in the provider's format, and the
//! provider's answer comes back as a [`Response`] (whole body) or as a sequence of
//! [`StreamEvent`]s (SSE), which the client-side writer re-encodes. With four formats this
//! needs four parsers and four writers instead of twelve pairwise translations.
//!
//! The model is shaped after Anthropic Messages because it is the richest of the four:
//! content is a list of typed parts (text, image, tool use, tool result, thinking), and a
//! stream is a sequence of blocks with explicit starts and stops. Formats without explicit
//! blocks (OpenAI Chat, Gemini) have their block boundaries synthesised by their parsers.

use serde::Serialize;
use serde_json::{Map, Value};

use crate::Format;
use crate::error::ErrorKind;

/// A model request in no particular format.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Request {
    /// Model name as the client sent it (empty for Gemini, whose model is in the URL).
    pub model: String,
    /// The leading system/developer instructions, in order.
    pub system: Vec<SystemPart>,
    /// The conversation.
    pub messages: Vec<Message>,
    /// Function tools the model may call.
    pub tools: Vec<Tool>,
    /// How the model must use the tools; `None` leaves it to the provider's default (auto).
    pub tool_choice: Option<ToolChoice>,
    /// `Some(false)` forbids more than one tool call per turn.
    pub parallel_tool_calls: Option<bool>,
    /// Output token limit (`max_tokens`, `max_completion_tokens`, `max_output_tokens`, `maxOutputTokens`).
    pub max_tokens: Option<u32>,
    /// Sampling temperature.
    pub temperature: Option<f64>,
    /// Nucleus sampling.
    pub top_p: Option<f64>,
    /// Stop sequences.
    pub stop: Vec<String>,
    /// The client wants a stream.
    pub stream: bool,
    /// The client asked for usage in the stream (OpenAI Chat `stream_options.include_usage`).
    /// Writers always ask upstream for usage; this only decides what the client is shown.
    pub include_usage: bool,
    /// End-user identifier (OpenAI `user`, Anthropic `metadata.user_id`).
    pub user: Option<String>,
    /// Other request metadata (OpenAI `metadata`).
    pub metadata: Map<String, Value>,
    /// The format the request was parsed from; writers of the same format put [`Request::extra`] back.
    pub source: Option<Format>,
    /// Top-level fields the parser could not map, by their name in the source format
    /// (`seed`, `response_format`, `thinking`, `top_k`, ...). Writers of the source format
    /// forward them unchanged; writers of any other format report each as [`crate::Dropped`].
    pub extra: Map<String, Value>,
}

/// One part of the system prompt.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct SystemPart {
    /// The instruction text.
    pub text: String,
    /// Anthropic prompt-caching marker (`{"type":"ephemeral"}`), kept as sent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache_control: Option<Value>,
}

/// Who speaks a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// A system/developer instruction that appears after the conversation started. Leading
    /// instructions live in [`Request::system`]; formats without mid-conversation system turns
    /// fold this into a user turn.
    System,
    /// The end user (also carries tool results in Anthropic and Gemini).
    User,
    /// The model.
    Assistant,
    /// Tool results, one [`Part::ToolResult`] per OpenAI `role:"tool"` message.
    Tool,
}

/// One conversation turn.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Message {
    /// Speaker.
    pub role: Role,
    /// Content parts in order.
    pub content: Vec<Part>,
}

/// A typed piece of content.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Part {
    /// Plain text.
    Text {
        /// The text.
        text: String,
        /// Anthropic prompt-caching marker.
        #[serde(skip_serializing_if = "Option::is_none")]
        cache_control: Option<Value>,
    },
    /// An image, by URL or inline.
    Image {
        /// Where the bytes are.
        source: ImageSource,
        /// OpenAI `detail` (`low`, `high`, `auto`).
        #[serde(skip_serializing_if = "Option::is_none")]
        detail: Option<String>,
    },
    /// A tool call made by the model.
    ToolUse {
        /// Call id, echoed by the matching [`Part::ToolResult`].
        id: String,
        /// Tool name.
        name: String,
        /// Arguments as a JSON object. Argument strings that are not a JSON object are carried
        /// as `{"_raw": "<the string>"}` (see [`arguments_to_input`]).
        input: Value,
    },
    /// The outcome of a tool call.
    ToolResult {
        /// Id of the [`Part::ToolUse`] this answers.
        tool_use_id: String,
        /// Result content (text and images).
        content: Vec<Part>,
        /// The tool failed.
        is_error: bool,
    },
    /// Model reasoning.
    Thinking {
        /// Reasoning text (or summary).
        text: String,
        /// Opaque provider token that must be sent back with the reasoning (Anthropic
        /// `signature`, Gemini `thoughtSignature`, OpenAI Responses `encrypted_content`).
        #[serde(skip_serializing_if = "Option::is_none")]
        signature: Option<String>,
    },
    /// Anthropic reasoning the provider encrypted; opaque, only meaningful to Anthropic.
    RedactedThinking {
        /// Encrypted payload.
        data: String,
    },
}

/// Where an image's bytes are.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ImageSource {
    /// A URL the provider fetches.
    Url {
        /// The URL.
        url: String,
    },
    /// Inline bytes.
    Base64 {
        /// MIME type, e.g. `image/png`.
        media_type: String,
        /// Base64 data without a `data:` prefix.
        data: String,
    },
}

/// A function tool.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Tool {
    /// Function name.
    pub name: String,
    /// What the tool does.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// JSON Schema of the arguments object.
    pub input_schema: Value,
    /// OpenAI strict schema adherence.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub strict: Option<bool>,
    /// Anthropic prompt-caching marker.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache_control: Option<Value>,
}

/// How the model must use tools.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ToolChoice {
    /// The model decides.
    Auto,
    /// No tool calls.
    None,
    /// At least one tool call (OpenAI `required`, Anthropic `any`, Gemini `ANY`).
    Required,
    /// This tool must be called.
    Tool {
        /// Tool name.
        name: String,
    },
}

/// A whole (non-streamed) model answer.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Response {
    /// Provider's response id.
    pub id: String,
    /// Model that answered.
    pub model: String,
    /// Creation time, Unix seconds, when the provider said (Anthropic does not).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created: Option<u64>,
    /// Answer content.
    pub content: Vec<Part>,
    /// Why generation stopped.
    pub stop_reason: Option<StopReason>,
    /// The stop sequence that matched, when the provider says.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop_sequence: Option<String>,
    /// Token usage.
    pub usage: Usage,
}

/// Why generation stopped.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub enum StopReason {
    /// Natural end of turn.
    EndTurn,
    /// Output token limit reached.
    MaxTokens,
    /// A stop sequence matched.
    StopSequence,
    /// The model called tools and waits for results.
    ToolUse,
    /// Refusal or safety filter.
    ContentFilter,
    /// Anthropic paused a long server-tool turn; the client resends to continue.
    PauseTurn,
    /// The conversation no longer fits the model's context window.
    ContextWindowExceeded,
    /// Anything else, as the provider named it.
    Other(String),
}

/// Token usage. `input` excludes cached tokens, as Anthropic counts it; the OpenAI
/// `prompt_tokens` figure is [`Usage::prompt_tokens`]. `reasoning` is the part of `output`
/// spent on reasoning, not an addition to it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Usage {
    /// Uncached input tokens.
    pub input: u64,
    /// Output tokens, reasoning included.
    pub output: u64,
    /// Input tokens read from the prompt cache.
    pub cache_read: u64,
    /// Input tokens written to the prompt cache.
    pub cache_write: u64,
    /// Output tokens spent on reasoning (included in `output`).
    pub reasoning: u64,
}

impl Usage {
    /// All input tokens, as OpenAI's `prompt_tokens` and Gemini's `promptTokenCount` count
    /// them: `input + cache_read + cache_write`.
    pub fn prompt_tokens(&self) -> u64 {
        self.input.saturating_add(self.cache_read).saturating_add(self.cache_write)
    }

    /// Input plus output.
    pub fn total_tokens(&self) -> u64 {
        self.prompt_tokens().saturating_add(self.output)
    }
}

/// What kind of content block a [`StreamEvent::BlockStart`] opens. Tool-use blocks open
/// with [`StreamEvent::ToolCallStart`] instead, because they carry an id and a name.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum BlockKind {
    /// Text, filled by [`StreamEvent::TextDelta`].
    Text,
    /// Reasoning, filled by [`StreamEvent::ThinkingDelta`] and [`StreamEvent::SignatureDelta`].
    Thinking,
    /// Encrypted reasoning, complete at start.
    RedactedThinking {
        /// Encrypted payload.
        data: String,
    },
}

/// One step of a streamed answer.
///
/// A well-formed stream is `MessageStart`, then blocks (each opened by `BlockStart` or
/// `ToolCallStart`, filled by deltas with the same `index`, closed by `BlockStop`; blocks do
/// not overlap and indexes count up from 0 within the message), then `MessageDelta`, then
/// `MessageStop`. `Ping` may appear anywhere; `Error` may appear anywhere and ends the stream.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum StreamEvent {
    /// The answer begins.
    MessageStart {
        /// Provider's response id.
        id: String,
        /// Model that answers.
        model: String,
        /// Usage known at the start (Anthropic reports input tokens here).
        usage: Usage,
    },
    /// A text or thinking block opens.
    BlockStart {
        /// Block index within the message.
        index: u32,
        /// What it holds.
        kind: BlockKind,
    },
    /// Text appended to a text block.
    TextDelta {
        /// Block index.
        index: u32,
        /// The text.
        text: String,
    },
    /// A tool-use block opens.
    ToolCallStart {
        /// Block index within the message (not the OpenAI tool-call index).
        index: u32,
        /// Call id.
        id: String,
        /// Tool name.
        name: String,
    },
    /// A fragment of the tool call's JSON arguments; fragments concatenate to the whole.
    ToolArgsDelta {
        /// Block index.
        index: u32,
        /// Raw JSON fragment.
        fragment: String,
    },
    /// Reasoning text appended to a thinking block.
    ThinkingDelta {
        /// Block index.
        index: u32,
        /// The text.
        text: String,
    },
    /// Signature for a thinking block (appended).
    SignatureDelta {
        /// Block index.
        index: u32,
        /// The signature.
        signature: String,
    },
    /// A block closes.
    BlockStop {
        /// Block index.
        index: u32,
    },
    /// The answer's outcome. `usage` is cumulative (the whole message so far): consumers
    /// assign it, never add it.
    MessageDelta {
        /// Why generation stopped.
        stop_reason: Option<StopReason>,
        /// The stop sequence that matched.
        stop_sequence: Option<String>,
        /// Cumulative usage.
        usage: Usage,
    },
    /// The answer is complete.
    MessageStop,
    /// Keep-alive.
    Ping,
    /// The provider reported an error inside the stream (after HTTP 200).
    Error {
        /// Error class.
        kind: ErrorKind,
        /// Provider's message.
        message: String,
    },
}

/// The key under which tool-call arguments that are not a JSON object are carried.
///
/// OpenAI sends arguments as a JSON *string* produced by the model, which can be truncated or
/// malformed; Anthropic and Gemini require an object. Rather than failing the whole request or
/// silently replacing the arguments with `{}`, the original string is kept as
/// `{"_raw": "<string>"}`: the model sees its own output again, and writing back to OpenAI
/// restores the exact string.
pub const RAW_ARGUMENTS_KEY: &str = "_raw";

/// OpenAI `arguments` string → tool input object. Empty or blank strings become `{}` (some
/// servers send that for tools without parameters); anything that is not a JSON object is
/// carried as `{"_raw": "<string>"}`.
pub fn arguments_to_input(arguments: &str) -> Value {
    if arguments.trim().is_empty() {
        return Value::Object(Map::new());
    }
    match serde_json::from_str::<Value>(arguments) {
        Ok(Value::Object(map)) => Value::Object(map),
        _ => {
            let mut map = Map::new();
            map.insert(RAW_ARGUMENTS_KEY.to_owned(), Value::String(arguments.to_owned()));
            Value::Object(map)
        }
    }
}

/// Tool input → OpenAI `arguments` string; the inverse of [`arguments_to_input`].
pub fn input_to_arguments(input: &Value) -> String {
    if let Value::Object(map) = input
        && map.len() == 1
        && let Some(Value::String(raw)) = map.get(RAW_ARGUMENTS_KEY)
    {
        return raw.clone();
    }
    match input {
        Value::Null => "{}".to_owned(),
        other => other.to_string(),
    }
}

/// Tool input as an object for formats that require one (Anthropic `input`, Gemini `args`):
/// objects pass, `null` becomes `{}`, anything else is wrapped as `{"_raw": ...}`.
pub(crate) fn input_object(input: &Value) -> Value {
    match input {
        Value::Object(_) => input.clone(),
        Value::Null => Value::Object(Map::new()),
        other => {
            let mut map = Map::new();
            map.insert(RAW_ARGUMENTS_KEY.to_owned(), Value::String(other.to_string()));
            Value::Object(map)
        }
    }
}

impl Part {
    /// A plain text part.
    pub fn text(text: impl Into<String>) -> Self {
        Part::Text { text: text.into(), cache_control: None }
    }
}

impl Message {
    /// A message with one text part.
    pub fn text(role: Role, text: impl Into<String>) -> Self {
        Message { role, content: vec![Part::text(text)] }
    }
}

/// The text parts of `parts` concatenated.
pub fn joined_text(parts: &[Part]) -> String {
    let mut out = String::new();
    for part in parts {
        if let Part::Text { text, .. } = part {
            out.push_str(text);
        }
    }
    out
}

/// `data:<media type>;base64,<data>` → (media type, data).
pub(crate) fn parse_data_url(url: &str) -> Option<(String, String)> {
    let rest = url.strip_prefix("data:")?;
    let (meta, data) = rest.split_once(',')?;
    let media_type = meta.strip_suffix(";base64")?;
    Some((media_type.to_owned(), data.to_owned()))
}

impl ImageSource {
    /// Build from an OpenAI-style image URL, which may be a `data:` URL.
    pub fn from_url(url: &str) -> Self {
        match parse_data_url(url) {
            Some((media_type, data)) => ImageSource::Base64 { media_type, data },
            None => ImageSource::Url { url: url.to_owned() },
        }
    }

    /// As an OpenAI image URL (inline bytes become a `data:` URL).
    pub fn to_url(&self) -> String {
        match self {
            ImageSource::Url { url } => url.clone(),
            ImageSource::Base64 { media_type, data } => format!("data:{media_type};base64,{data}"),
        }
    }
}
