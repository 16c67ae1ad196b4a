//! Golden tests: every provider response fixture written for every client format.

use gatehouse_ai::{Format, parse_response, write_response};
use serde_json::json;

use crate::support::{CLIENTS, CREATED, fixture, slug};

#[test]
fn provider_responses_for_every_client() {
    for provider in Format::ALL {
        for kind in ["text", "tool"] {
            let body = fixture(&format!("response_{}_{kind}.json", slug(provider)));
            let (mut response, parse_dropped) = parse_response(provider, &body).expect("fixture parses");
            response.created.get_or_insert(CREATED);
            for client in CLIENTS {
                let (out, dropped) = write_response(client, &response);
                let name = format!("response__{}_{kind}__to__{}", slug(provider), slug(client));
                insta::assert_json_snapshot!(name, json!({"parse_dropped": parse_dropped, "body": out, "dropped": dropped}));
            }
        }
    }
}

#[test]
fn provider_responses_for_a_gemini_writer() {
    // The Gemini writer serves tests and Gemini-format clients; one snapshot per provider.
    for provider in Format::ALL {
        let body = fixture(&format!("response_{}_tool.json", slug(provider)));
        let (response, _) = parse_response(provider, &body).expect("fixture parses");
        let (out, dropped) = write_response(Format::Gemini, &response);
        insta::assert_json_snapshot!(format!("response__{}_tool__to__gemini", slug(provider)), json!({"body": out, "dropped": dropped}));
    }
}
