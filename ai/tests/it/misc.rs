//! Error bodies, bad input, and the dispatch helpers.

use gatehouse_ai::{ErrorKind, Format, ParseError, parse_request, parse_response, stream_parser, write_error};
use serde_json::json;

#[test]
fn error_bodies_match_each_apis_shape() {
    let kind = ErrorKind::RateLimit;
    assert_eq!(
        write_error(Format::OpenAiChat, 429, &kind, "slow down"),
        json!({"error": {"message": "slow down", "type": "rate_limit_error", "param": null, "code": null}})
    );
    assert_eq!(
        write_error(Format::AnthropicMessages, 429, &kind, "slow down"),
        json!({"type": "error", "error": {"type": "rate_limit_error", "message": "slow down"}})
    );
    assert_eq!(
        write_error(Format::Gemini, 429, &kind, "slow down"),
        json!({"error": {"code": 429, "message": "slow down", "status": "RESOURCE_EXHAUSTED"}})
    );
    assert_eq!(ErrorKind::from_status(529), ErrorKind::Overloaded);
    assert_eq!(ErrorKind::from_anthropic_type("overloaded_error").status(), 529);
}

#[test]
fn bad_input_is_an_error_never_a_panic() {
    let common: [&[u8]; 4] = [b"", b"not json", b"[]", b"{\"model\": 5}"];
    let specific = |format: Format| -> Vec<&'static [u8]> {
        match format {
            Format::OpenAiChat | Format::AnthropicMessages => vec![
                b"{\"model\": \"m\", \"messages\": {}}",
                b"{\"model\": \"m\", \"messages\": [{\"role\": \"wizard\"}]}",
                b"{\"model\": \"m\", \"max_tokens\": -1, \"messages\": []}",
                b"{\"model\": \"m\", \"messages\": [{\"role\": \"user\", \"content\": 7}]}",
            ],
            Format::OpenAiResponses => vec![
                b"{\"model\": \"m\", \"input\": {}}",
                b"{\"model\": \"m\", \"input\": [{\"type\": \"function_call\"}]}",
                b"{\"model\": \"m\", \"input\": [{\"role\": \"wizard\", \"content\": \"x\"}]}",
            ],
            Format::Gemini => vec![b"{\"contents\": {}}", b"{\"contents\": [{\"parts\": [7]}]}"],
        }
    };
    for format in Format::ALL {
        for body in common.into_iter().chain(specific(format)) {
            assert!(parse_request(format, body).is_err(), "{format:?} accepted {}", String::from_utf8_lossy(body));
        }
        assert!(parse_response(format, b"{\"unexpected\": true}").is_ok(), "responses are read leniently");
        // Garbage streams end in an error event, not a panic.
        let mut p = stream_parser(format);
        let mut evs = p.feed(b"data: {not json\n\ndata: \xff\xfe\n\n");
        evs.extend(p.finish());
        assert!(matches!(evs.last(), Some(gatehouse_ai::StreamEvent::Error { .. })), "{format:?}");
    }
    assert!(matches!(parse_request(Format::OpenAiChat, b"{}"), Err(ParseError::Invalid { .. })));
}

#[test]
fn truncated_upstream_stream_ends_in_an_error_event() {
    for format in Format::ALL {
        let bytes = crate::support::fixture(&format!("stream_{}_tool.sse", crate::support::slug(format)));
        let evs = crate::support::decode(format, &bytes[..bytes.len() / 2], 7);
        assert!(matches!(evs.last(), Some(gatehouse_ai::StreamEvent::Error { kind: ErrorKind::Api, .. })), "{format:?}");
    }
}
