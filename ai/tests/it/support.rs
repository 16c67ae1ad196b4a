//! Fixture loading and the translation pipelines the golden tests run.

use std::path::PathBuf;

use gatehouse_ai::{Dropped, Format, StreamEvent, StreamOptions, UsageMeter, stream_parser, stream_writer};

/// A fixed `created` so snapshots do not depend on the clock.
pub const CREATED: u64 = 1_700_000_000;

pub fn fixture(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// Short lowercase name used in snapshot names.
pub fn slug(format: Format) -> &'static str {
    match format {
        Format::OpenAiChat => "openai_chat",
        Format::OpenAiResponses => "openai_responses",
        Format::AnthropicMessages => "anthropic",
        Format::Gemini => "gemini",
    }
}

pub const CLIENTS: [Format; 3] = [Format::OpenAiChat, Format::OpenAiResponses, Format::AnthropicMessages];

/// Decode a provider stream fed in slices of `step` bytes into internal events.
pub fn decode(provider: Format, bytes: &[u8], step: usize) -> Vec<StreamEvent> {
    let mut parser = stream_parser(provider);
    let mut events = Vec::new();
    for chunk in bytes.chunks(step) {
        events.extend(parser.feed(chunk));
    }
    events.extend(parser.finish());
    events
}

/// The result of re-encoding a provider stream for a client.
pub struct Translated {
    pub sse: String,
    pub usage: Option<gatehouse_ai::Usage>,
    pub dropped: Vec<Dropped>,
}

/// Provider stream bytes → internal events → client SSE, feeding `step` bytes at a time.
pub fn translate_stream(provider: Format, client: Format, bytes: &[u8], step: usize, include_usage: bool) -> Translated {
    let mut parser = stream_parser(provider);
    let mut writer = stream_writer(client, StreamOptions { include_usage, created: Some(CREATED) });
    let mut meter = UsageMeter::new();
    let mut out = Vec::new();
    let mut usage = None;
    let mut on = |events: Vec<StreamEvent>, out: &mut Vec<u8>, writer: &mut Box<dyn gatehouse_ai::StreamEncode>| {
        for ev in events {
            if let Some(u) = meter.observe(&ev) {
                assert!(usage.is_none(), "usage yielded twice");
                usage = Some(u);
            }
            out.extend(writer.write(&ev));
        }
    };
    for chunk in bytes.chunks(step) {
        on(parser.feed(chunk), &mut out, &mut writer);
    }
    on(parser.finish(), &mut out, &mut writer);
    out.extend(writer.finish());
    if let Some(u) = meter.finish() {
        assert!(usage.is_none(), "usage yielded twice");
        usage = Some(u);
    }
    let sse = String::from_utf8(out).expect("writers emit UTF-8");
    Translated { sse, usage, dropped: writer.dropped().to_vec() }
}
