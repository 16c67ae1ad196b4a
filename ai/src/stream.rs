//! Format-independent stream plumbing: the decoder/encoder traits the hub holds as trait
//! objects, writer options, and the block bookkeeping shared by parsers of formats that have
//! no explicit content blocks (OpenAI Chat, Gemini).

use serde_json::Value;

use crate::error::{Dropped, ErrorKind};
use crate::model::{BlockKind, StreamEvent};
use crate::sse::SseEvent;

/// Turns a provider's SSE bytes into [`StreamEvent`]s.
pub trait StreamDecode: Send {
    /// Consume one network read (any length, any split) and return the events it completed.
    fn feed(&mut self, bytes: &[u8]) -> Vec<StreamEvent>;
    /// The upstream closed: flush what is pending. A stream that ended before its natural
    /// end yields a [`StreamEvent::Error`] so the truncation is visible.
    fn finish(&mut self) -> Vec<StreamEvent>;
}

/// Turns [`StreamEvent`]s into a client's SSE bytes.
pub trait StreamEncode: Send {
    /// Encode one event (possibly to nothing, possibly to several SSE events).
    fn write(&mut self, event: &StreamEvent) -> Vec<u8>;
    /// The stream is over: trailing bytes such as OpenAI Chat's `data: [DONE]`.
    fn finish(&mut self) -> Vec<u8>;
    /// What could not be carried into this format so far.
    fn dropped(&self) -> &[Dropped];
}

/// Options for stream writers.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StreamOptions {
    /// Send OpenAI Chat's final usage chunk (`choices: []` + `usage`); set it only when the
    /// client asked with `stream_options.include_usage` (see [`crate::Request::include_usage`]).
    pub include_usage: bool,
    /// `created` timestamp (Unix seconds) for OpenAI chunks; `None` takes the current time.
    pub created: Option<u64>,
}

/// Implements [`StreamDecode`] for a format's `StreamParser` and [`StreamEncode`] for its
/// `StreamWriter` by their inherent methods, so each format module exposes one set of methods
/// and the trait objects cannot drift from them. The writer keeps its losses in `dropped`.
macro_rules! impl_stream_traits {
    ($parser:ty, $writer:ty) => {
        impl $crate::stream::StreamDecode for $parser {
            fn feed(&mut self, bytes: &[u8]) -> Vec<$crate::model::StreamEvent> {
                <$parser>::feed(self, bytes)
            }
            fn finish(&mut self) -> Vec<$crate::model::StreamEvent> {
                <$parser>::finish(self)
            }
        }

        impl $crate::stream::StreamEncode for $writer {
            fn write(&mut self, event: &$crate::model::StreamEvent) -> Vec<u8> {
                <$writer>::write(self, event)
            }
            fn finish(&mut self) -> Vec<u8> {
                <$writer>::finish(self)
            }
            fn dropped(&self) -> &[$crate::error::Dropped] {
                &self.dropped
            }
        }
    };
}
pub(crate) use impl_stream_traits;

/// Hands the `data:` payload of each decoded SSE event, in order, to a format's handler and
/// collects what it emits.
pub(crate) fn each_data(events: Vec<SseEvent>, mut on_data: impl FnMut(&str, &mut Vec<StreamEvent>)) -> Vec<StreamEvent> {
    let mut out = Vec::new();
    for ev in events {
        on_data(&ev.data, &mut out);
    }
    out
}

/// Ends a stream with an error. Setting `done` makes the parser ignore whatever upstream sends
/// afterwards, so the error is the last event the client sees.
pub(crate) fn fail(done: &mut bool, out: &mut Vec<StreamEvent>, kind: ErrorKind, message: String) {
    *done = true;
    out.push(StreamEvent::Error { kind, message });
}

/// Parses one stream payload as JSON. An unreadable payload ends the stream with an
/// [`ErrorKind::Api`] error naming it as `what` ("event", "chunk"), since nothing after it can
/// be trusted to line up.
pub(crate) fn parse_payload(data: &str, what: &str, done: &mut bool, out: &mut Vec<StreamEvent>) -> Option<Value> {
    match serde_json::from_str(data) {
        Ok(v) => Some(v),
        Err(e) => {
            fail(done, out, ErrorKind::Api, format!("unreadable stream {what} from upstream: {e}"));
            None
        }
    }
}

/// The upstream closed: unless the stream already ended, report that it stopped before `end`
/// (the format's last event), so a truncated answer is not mistaken for a whole one.
pub(crate) fn end_unfinished(done: &mut bool, end: &str, out: &mut Vec<StreamEvent>) {
    if !*done {
        fail(done, out, ErrorKind::Api, format!("upstream stream ended before {end}"));
    }
}

/// The current Unix time, for `created` fields the provider did not supply.
pub(crate) fn now_unix() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Open {
    Text,
    Thinking,
    Tool,
}

/// Synthesises block starts and stops for formats that only send deltas: a delta of another
/// kind than the open block closes it and opens a new one, so blocks never overlap.
#[derive(Debug, Default)]
pub(crate) struct Blocks {
    next: u32,
    open: Option<(u32, Open)>,
}

impl Blocks {
    fn ensure(&mut self, want: Open, kind: BlockKind, out: &mut Vec<StreamEvent>) -> u32 {
        if let Some((index, kind)) = &self.open
            && *kind == want
        {
            return *index;
        }
        self.close(out);
        let index = self.next;
        self.next += 1;
        out.push(StreamEvent::BlockStart { index, kind });
        self.open = Some((index, want));
        index
    }

    /// Index of the open text block, opening one if needed.
    pub(crate) fn text(&mut self, out: &mut Vec<StreamEvent>) -> u32 {
        self.ensure(Open::Text, BlockKind::Text, out)
    }

    /// Index of the open thinking block, opening one if needed.
    pub(crate) fn thinking(&mut self, out: &mut Vec<StreamEvent>) -> u32 {
        self.ensure(Open::Thinking, BlockKind::Thinking, out)
    }

    /// Close whatever is open and open a tool-use block.
    pub(crate) fn tool(&mut self, id: String, name: String, out: &mut Vec<StreamEvent>) -> u32 {
        self.close(out);
        let index = self.next;
        self.next += 1;
        out.push(StreamEvent::ToolCallStart { index, id, name });
        self.open = Some((index, Open::Tool));
        index
    }

    /// Close the open block, if any.
    pub(crate) fn close(&mut self, out: &mut Vec<StreamEvent>) {
        if let Some((index, _)) = self.open.take() {
            out.push(StreamEvent::BlockStop { index });
        }
    }
}
