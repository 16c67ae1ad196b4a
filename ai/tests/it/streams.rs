//! Golden tests: every provider stream fixture re-encoded for every client format, fed in
//! slices of 1 to 7 bytes; the output must not depend on the slicing.

use gatehouse_ai::Format;

use crate::support::{CLIENTS, decode, fixture, slug, translate_stream};

#[test]
fn provider_streams_for_every_client_in_any_slicing() {
    for provider in Format::ALL {
        for kind in ["text", "tool", "error"] {
            let bytes = fixture(&format!("stream_{}_{kind}.sse", slug(provider)));
            for client in CLIENTS {
                let whole = translate_stream(provider, client, &bytes, bytes.len(), true);
                for step in 1..=7 {
                    let sliced = translate_stream(provider, client, &bytes, step, true);
                    assert_eq!(sliced.sse, whole.sse, "{provider:?} {kind} → {client:?}, {step}-byte reads");
                    assert_eq!(sliced.usage, whole.usage);
                }
                let name = format!("stream__{}_{kind}__to__{}", slug(provider), slug(client));
                let report = format!(
                    "usage charged: {:?}\ndropped: {}\n\n{}",
                    whole.usage,
                    serde_json::to_string(&whole.dropped).unwrap_or_default(),
                    whole.sse
                );
                insta::assert_snapshot!(name, report);
            }
        }
    }
}

#[test]
fn provider_streams_decode_to_internal_events() {
    // The internal event sequence is the contract between parsers and writers; snapshot it
    // once per provider stream.
    for provider in Format::ALL {
        for kind in ["text", "tool", "error"] {
            let bytes = fixture(&format!("stream_{}_{kind}.sse", slug(provider)));
            let events = decode(provider, &bytes, 3);
            insta::assert_json_snapshot!(format!("events__{}_{kind}", slug(provider)), events);
        }
    }
}

#[test]
fn multi_byte_characters_split_exactly_between_reads_survive() {
    for provider in Format::ALL {
        let bytes = fixture(&format!("stream_{}_text.sse", slug(provider)));
        let whole = translate_stream(provider, Format::AnthropicMessages, &bytes, bytes.len(), false);
        for needle in ["é", "日本", "東", "☀", "🍁", "°"] {
            let Some(at) = find(&bytes, needle.as_bytes()) else { continue };
            for cut in 1..needle.len() {
                let split = at + cut;
                let mut parser = gatehouse_ai::stream_parser(provider);
                let mut writer = gatehouse_ai::stream_writer(Format::AnthropicMessages, Default::default());
                let mut out = Vec::new();
                for part in [&bytes[..split], &bytes[split..]] {
                    for ev in parser.feed(part) {
                        out.extend(writer.write(&ev));
                    }
                }
                for ev in parser.finish() {
                    out.extend(writer.write(&ev));
                }
                assert_eq!(String::from_utf8(out).expect("utf-8"), whole.sse, "{provider:?} split inside {needle:?}");
            }
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[test]
fn provider_streams_for_a_gemini_writer() {
    for provider in Format::ALL {
        for kind in ["text", "tool"] {
            let bytes = fixture(&format!("stream_{}_{kind}.sse", slug(provider)));
            let whole = translate_stream(provider, Format::Gemini, &bytes, bytes.len(), false);
            assert_eq!(translate_stream(provider, Format::Gemini, &bytes, 3, false).sse, whole.sse);
            insta::assert_snapshot!(format!("stream__{}_{kind}__to__gemini", slug(provider)), whole.sse);
        }
    }
}
