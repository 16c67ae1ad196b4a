//! Golden tests: every client request fixture written for every provider format.

use gatehouse_ai::{Format, parse_request, write_request};
use serde_json::json;

use crate::support::{CLIENTS, fixture, slug};

#[test]
fn client_requests_for_every_provider() {
    for client in CLIENTS {
        let body = fixture(&format!("request_{}.json", slug(client)));
        let (request, parse_dropped) = parse_request(client, &body).expect("fixture parses");
        for provider in Format::ALL {
            let (out, dropped) = write_request(provider, &request);
            let name = format!("request__{}__to__{}", slug(client), slug(provider));
            insta::assert_json_snapshot!(name, json!({"parse_dropped": parse_dropped, "body": out, "dropped": dropped}));
        }
    }
}

#[test]
fn provider_requests_parse_back_to_the_same_model() {
    // Writing for a provider and parsing that body again keeps the conversation intact
    // (tool calls, tool results, images, system prompt).
    for client in CLIENTS {
        let body = fixture(&format!("request_{}.json", slug(client)));
        let (request, _) = parse_request(client, &body).expect("fixture parses");
        for provider in [Format::OpenAiChat, Format::AnthropicMessages] {
            let (out, _) = write_request(provider, &request);
            let (back, _) = parse_request(provider, out.to_string().as_bytes()).expect("written body parses");
            let tool_uses = |r: &gatehouse_ai::Request| {
                r.messages.iter().flat_map(|m| m.content.iter()).filter(|p| matches!(p, gatehouse_ai::Part::ToolUse { .. })).count()
            };
            let tool_results = |r: &gatehouse_ai::Request| {
                r.messages.iter().flat_map(|m| m.content.iter()).filter(|p| matches!(p, gatehouse_ai::Part::ToolResult { .. })).count()
            };
            assert_eq!(tool_uses(&back), tool_uses(&request), "{client:?} → {provider:?}");
            assert_eq!(tool_results(&back), tool_results(&request), "{client:?} → {provider:?}");
            assert_eq!(back.tools.len(), request.tools.len());
        }
    }
}

#[test]
fn gemini_request_for_every_provider() {
    // Gemini is not a client format of the hub, but its parser is exercised the same way:
    // synthesised call ids, responses matched by name, generationConfig extras kept for Gemini.
    let (request, parse_dropped) = parse_request(Format::Gemini, &fixture("request_gemini.json")).expect("fixture parses");
    for provider in Format::ALL {
        let mut request = request.clone();
        request.model = "gemini-2.5-pro".into();
        let (out, dropped) = write_request(provider, &request);
        let name = format!("request__gemini__to__{}", slug(provider));
        insta::assert_json_snapshot!(name, json!({"parse_dropped": parse_dropped, "body": out, "dropped": dropped}));
    }
}
