//! One test per rule of the AI proxy's fact sheet; each test name names its rule.

use gatehouse_ai::{
    Format, Message, Part, Request, ResponseStore, Role, StopReason, StreamEvent, StreamOptions, Usage, UsageMeter, anthropic,
    estimate_tokens, openai_chat, openai_responses, parse_request, write_request,
};
use serde_json::{Value, json};

use crate::support::{decode, fixture, translate_stream};

fn chat(body: Value) -> Request {
    openai_chat::parse_request(body.to_string().as_bytes()).expect("valid chat request").0
}

fn to_anthropic(body: Value) -> Value {
    anthropic::write_request(&chat(body)).0
}

fn events(provider: Format, sse: &str) -> Vec<StreamEvent> {
    decode(provider, sse.as_bytes(), 5)
}

// --- Formats -------------------------------------------------------------------------------

#[test]
fn rule_count_tokens_estimate_covers_all_text_and_tool_schemas() {
    let (req, _) = parse_request(Format::AnthropicMessages, &fixture("request_anthropic.json")).expect("fixture");
    let with_tools = estimate_tokens(&req);
    let mut without = req.clone();
    without.tools.clear();
    assert!(with_tools > estimate_tokens(&without), "tool schemas count");
    // 400 characters of text ≈ 100 tokens, plus 4 per message.
    let small = chat(json!({"model": "m", "messages": [{"role": "user", "content": "x".repeat(400)}]}));
    assert_eq!(estimate_tokens(&small), 104);
}

#[test]
fn rule_fields_that_cannot_be_carried_are_reported_not_dropped_silently() {
    let req = chat(json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}], "seed": 7, "logprobs": true}));
    let (body, dropped) = anthropic::write_request(&req);
    assert!(body.get("seed").is_none());
    let names: Vec<&str> = dropped.iter().map(|d| d.field.as_str()).collect();
    assert_eq!(names, ["seed", "logprobs"]);
    // The same request to an OpenAI-format provider keeps them.
    let (body, dropped) = openai_chat::write_request(&req);
    assert_eq!(body["seed"], 7);
    assert!(dropped.is_empty());
}

// --- Messages and tools --------------------------------------------------------------------

#[test]
fn rule_system_and_developer_messages_go_to_anthropic_top_level_system() {
    let body = to_anthropic(json!({"model": "claude-sonnet-4-5", "messages": [
        {"role": "developer", "content": "Be terse."},
        {"role": "user", "content": "hi"}
    ]}));
    assert_eq!(body["system"], "Be terse.");
    assert_eq!(body["messages"], json!([{"role": "user", "content": "hi"}]));
}

#[test]
fn rule_system_with_cache_control_becomes_anthropic_system_blocks() {
    let body = to_anthropic(json!({"model": "claude-sonnet-4-5", "messages": [
        {"role": "system", "content": [{"type": "text", "text": "Long guide", "cache_control": {"type": "ephemeral"}}]},
        {"role": "user", "content": "hi"}
    ]}));
    assert_eq!(body["system"], json!([{"type": "text", "text": "Long guide", "cache_control": {"type": "ephemeral"}}]));
    // And Anthropic's own blocks keep their cache_control through the model.
    let (req, _) = anthropic::parse_request(&fixture("request_anthropic.json")).expect("fixture");
    assert_eq!(req.system[1].cache_control, Some(json!({"type": "ephemeral"})));
}

#[test]
fn rule_mid_conversation_system_message_folds_into_a_user_turn() {
    let body = to_anthropic(json!({"model": "claude-sonnet-4-5", "messages": [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "hello"},
        {"role": "system", "content": "Answer in French from now on."},
        {"role": "user", "content": "how are you?"}
    ]}));
    assert!(body.get("system").is_none());
    assert_eq!(
        body["messages"][2],
        json!({"role": "user", "content": [{"type": "text", "text": "Answer in French from now on."}, {"type": "text", "text": "how are you?"}]})
    );
    // OpenAI keeps it as a system message in place.
    let (out, _) = openai_chat::write_request(&chat(json!({"model": "gpt-4o", "messages": [
        {"role": "user", "content": "hi"}, {"role": "system", "content": "French."}
    ]})));
    assert_eq!(out["messages"][1], json!({"role": "system", "content": "French."}));
}

#[test]
fn rule_anthropic_max_tokens_from_max_tokens_or_max_completion_tokens_else_model_default() {
    let base = json!({"model": "claude-sonnet-4-5", "messages": [{"role": "user", "content": "hi"}]});
    let with = |k: &str, v: u32| {
        let mut b = base.clone();
        b[k] = json!(v);
        to_anthropic(b)["max_tokens"].clone()
    };
    assert_eq!(with("max_tokens", 100), 100);
    assert_eq!(with("max_completion_tokens", 200), 200);
    assert_eq!(to_anthropic(base)["max_tokens"], 64_000);
    assert_eq!(gatehouse_ai::default_max_tokens("claude-3-5-haiku-20241022"), 8_192);
}

#[test]
fn rule_openai_reasoning_models_get_max_completion_tokens() {
    let req = |model: &str| {
        let (req, _) = anthropic::parse_request(
            json!({"model": model, "max_tokens": 500, "messages": [{"role": "user", "content": "hi"}]}).to_string().as_bytes(),
        )
        .expect("valid");
        openai_chat::write_request(&req).0
    };
    let o3 = req("o3-mini");
    assert_eq!(o3["max_completion_tokens"], 500);
    assert!(o3.get("max_tokens").is_none());
    let gpt4o = req("gpt-4o");
    assert_eq!(gpt4o["max_tokens"], 500);
}

#[test]
fn rule_tool_call_arguments_string_becomes_anthropic_input_object_and_back() {
    let body = to_anthropic(json!({"model": "claude-sonnet-4-5", "messages": [
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": null, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}
        ]},
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny"}
    ]}));
    assert_eq!(
        body["messages"][1]["content"][0],
        json!({"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Paris"}})
    );
    let (req, _) = anthropic::parse_request(body.to_string().as_bytes()).expect("valid");
    let (back, _) = openai_chat::write_request(&req);
    assert_eq!(back["messages"][1]["tool_calls"][0]["function"]["arguments"], "{\"city\":\"Paris\"}");
}

#[test]
fn rule_invalid_tool_call_arguments_are_carried_as_raw_and_restored_exactly() {
    let broken = "{\"city\":\"Par";
    let req = chat(json!({"model": "claude-sonnet-4-5", "messages": [
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "tool_calls": [{"id": "c", "type": "function", "function": {"name": "w", "arguments": broken}}]},
        {"role": "tool", "tool_call_id": "c", "content": "error: bad arguments"}
    ]}));
    let (body, _) = anthropic::write_request(&req);
    assert_eq!(body["messages"][1]["content"][0]["input"], json!({"_raw": broken}));
    let (back, _) = openai_chat::write_request(&anthropic::parse_request(body.to_string().as_bytes()).expect("valid").0);
    assert_eq!(back["messages"][1]["tool_calls"][0]["function"]["arguments"], broken);
    // Empty arguments (tools without parameters) are an empty object.
    assert_eq!(gatehouse_ai::model::arguments_to_input(""), json!({}));
}

#[test]
fn rule_consecutive_tool_messages_become_one_user_message_with_tool_results_first() {
    let body = to_anthropic(json!({"model": "claude-sonnet-4-5", "messages": [
        {"role": "user", "content": "weather in Paris and Rome?"},
        {"role": "assistant", "content": "Checking.", "tool_calls": [
            {"id": "a", "type": "function", "function": {"name": "w", "arguments": "{\"city\":\"Paris\"}"}},
            {"id": "b", "type": "function", "function": {"name": "w", "arguments": "{\"city\":\"Rome\"}"}}
        ]},
        {"role": "tool", "tool_call_id": "a", "content": "sunny"},
        {"role": "tool", "tool_call_id": "b", "content": "rain"},
        {"role": "user", "content": "and tomorrow?"}
    ]}));
    let messages = body["messages"].as_array().expect("messages");
    assert_eq!(messages.len(), 3, "tool results and the next user turn form one user message");
    assert_eq!(
        messages[2],
        json!({"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "a", "content": "sunny"},
            {"type": "tool_result", "tool_use_id": "b", "content": "rain"},
            {"type": "text", "text": "and tomorrow?"}
        ]})
    );
}

#[test]
fn rule_tool_results_follow_the_matching_tool_use() {
    let (req, _) = parse_request(Format::OpenAiChat, &fixture("request_openai_chat.json")).expect("fixture");
    let (body, _) = anthropic::write_request(&req);
    let messages = body["messages"].as_array().expect("messages");
    for (i, m) in messages.iter().enumerate() {
        let ids: Vec<&str> = m["content"]
            .as_array()
            .map(|c| c.iter().filter(|b| b["type"] == "tool_result").filter_map(|b| b["tool_use_id"].as_str()).collect())
            .unwrap_or_default();
        if ids.is_empty() {
            continue;
        }
        let prev: Vec<&str> = messages[i - 1]["content"]
            .as_array()
            .expect("assistant blocks")
            .iter()
            .filter(|b| b["type"] == "tool_use")
            .filter_map(|b| b["id"].as_str())
            .collect();
        assert_eq!(messages[i - 1]["role"], "assistant");
        assert_eq!(ids, prev);
    }
}

#[test]
fn rule_tool_choice_required_is_anthropic_any_and_back() {
    let tools = json!([{"type": "function", "function": {"name": "w", "parameters": {"type": "object"}}}]);
    let body = to_anthropic(
        json!({"model": "claude-sonnet-4-5", "messages": [{"role": "user", "content": "x"}], "tools": tools, "tool_choice": "required"}),
    );
    assert_eq!(body["tool_choice"], json!({"type": "any"}));
    let (req, _) = anthropic::parse_request(body.to_string().as_bytes()).expect("valid");
    assert_eq!(openai_chat::write_request(&req).0["tool_choice"], "required");
    // A named tool both ways.
    let body = to_anthropic(json!({"model": "claude-sonnet-4-5", "messages": [{"role": "user", "content": "x"}], "tools": tools,
        "tool_choice": {"type": "function", "function": {"name": "w"}}}));
    assert_eq!(body["tool_choice"], json!({"type": "tool", "name": "w"}));
}

#[test]
fn rule_parallel_tool_calls_false_is_disable_parallel_tool_use_and_back() {
    let tools = json!([{"type": "function", "function": {"name": "w", "parameters": {"type": "object"}}}]);
    let body = to_anthropic(
        json!({"model": "claude-sonnet-4-5", "messages": [{"role": "user", "content": "x"}], "tools": tools, "parallel_tool_calls": false}),
    );
    assert_eq!(body["tool_choice"], json!({"type": "auto", "disable_parallel_tool_use": true}));
    let (req, _) = anthropic::parse_request(body.to_string().as_bytes()).expect("valid");
    assert_eq!(req.parallel_tool_calls, Some(false));
    assert_eq!(openai_chat::write_request(&req).0["parallel_tool_calls"], false);
}

#[test]
fn rule_tool_calls_and_tool_call_ids_survive_every_translation_of_a_multi_turn_agent() {
    // The failure seen elsewhere: a narrow {role, content} struct loses tool calls and ids.
    for client in [Format::OpenAiChat, Format::OpenAiResponses, Format::AnthropicMessages] {
        let file = match client {
            Format::OpenAiChat => "request_openai_chat.json",
            Format::OpenAiResponses => "request_openai_responses.json",
            _ => "request_anthropic.json",
        };
        let (req, _) = parse_request(client, &fixture(file)).expect("fixture");
        let ids = |r: &Request| -> Vec<String> {
            r.messages
                .iter()
                .flat_map(|m| m.content.iter())
                .filter_map(|p| match p {
                    Part::ToolUse { id, .. } => Some(format!("use:{id}")),
                    Part::ToolResult { tool_use_id, .. } => Some(format!("result:{tool_use_id}")),
                    _ => None,
                })
                .collect()
        };
        let want = ids(&req);
        assert!(!want.is_empty());
        for provider in [Format::OpenAiChat, Format::OpenAiResponses, Format::AnthropicMessages] {
            let (body, _) = write_request(provider, &req);
            let (back, _) = parse_request(provider, body.to_string().as_bytes()).expect("written body parses");
            assert_eq!(ids(&back), want, "{client:?} → {provider:?}");
        }
    }
}

// --- Stop reasons and usage ----------------------------------------------------------------

#[test]
fn rule_anthropic_stop_reasons_map_to_openai_finish_reasons() {
    for (anthropic_reason, openai_reason) in [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
        ("tool_use", "tool_calls"),
        ("refusal", "content_filter"),
        ("pause_turn", "stop"),
        ("model_context_window_exceeded", "length"),
    ] {
        let stop = anthropic::stop_from_anthropic(anthropic_reason);
        assert_eq!(openai_chat::finish_reason(Some(&stop), false), openai_reason, "{anthropic_reason}");
    }
    assert_eq!(anthropic::stop_from_anthropic("pause_turn"), StopReason::PauseTurn);
    assert_eq!(anthropic::stop_from_anthropic("model_context_window_exceeded"), StopReason::ContextWindowExceeded);
}

#[test]
fn rule_any_tool_call_emitted_reports_tool_calls() {
    assert_eq!(openai_chat::finish_reason(Some(&StopReason::EndTurn), true), "tool_calls");
    assert_eq!(openai_chat::finish_reason(Some(&StopReason::StopSequence), true), "tool_calls");
    assert_eq!(openai_chat::finish_reason(None, true), "tool_calls");
    // Gemini ends function-calling turns with STOP.
    let (resp, _) = gatehouse_ai::gemini::parse_response(&fixture("response_gemini_tool.json")).expect("fixture");
    assert_eq!(resp.stop_reason, Some(StopReason::ToolUse));
    assert_eq!(openai_chat::write_response(&resp).0["choices"][0]["finish_reason"], "tool_calls");
    // Except when output was cut short: truncated arguments must not look runnable.
    assert_eq!(openai_chat::finish_reason(Some(&StopReason::MaxTokens), true), "length");
}

#[test]
fn rule_openai_prompt_tokens_include_cache_reads_and_writes() {
    let (resp, _) = anthropic::parse_response(&fixture("response_anthropic_tool.json")).expect("fixture");
    let usage = &openai_chat::write_response(&resp).0["usage"];
    assert_eq!(usage["prompt_tokens"], 472 + 1536);
    assert_eq!(usage["completion_tokens"], 121);
    assert_eq!(usage["total_tokens"], 472 + 1536 + 121);
}

#[test]
fn rule_cache_reads_and_writes_are_kept_apart_for_pricing() {
    let (resp, _) = anthropic::parse_response(&fixture("response_anthropic_tool.json")).expect("fixture");
    assert_eq!(resp.usage, Usage { input: 472, output: 121, cache_read: 0, cache_write: 1536, reasoning: 0 });
    let (resp, _) = openai_chat::parse_response(&fixture("response_openai_chat_text.json")).expect("fixture");
    assert_eq!(resp.usage, Usage { input: 93, output: 46, cache_read: 1024, cache_write: 0, reasoning: 0 });
}

// --- Streams -------------------------------------------------------------------------------

#[test]
fn rule_sse_is_decoded_on_complete_lines_with_crlf_and_split_characters() {
    let sse =
        "data: {\"id\":\"c\",\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"日本🙂\"}}]}\r\n\r\ndata: [DONE]\r\n\r\n";
    for step in 1..=7 {
        let evs = decode(Format::OpenAiChat, sse.as_bytes(), step);
        assert!(evs.contains(&StreamEvent::TextDelta { index: 0, text: "日本🙂".into() }), "{step}");
    }
}

#[test]
fn rule_openai_chat_tool_call_id_and_name_only_on_the_first_delta_per_index() {
    let out = translate_stream(Format::AnthropicMessages, Format::OpenAiChat, &fixture("stream_anthropic_tool.sse"), 4, true).sse;
    let chunks: Vec<Value> = out
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter(|d| *d != "[DONE]")
        .map(|d| serde_json::from_str(d).expect("json chunk"))
        .collect();
    let calls: Vec<&Value> = chunks.iter().filter_map(|c| c["choices"][0]["delta"]["tool_calls"].get(0)).collect();
    for index in [0, 1] {
        let of_index: Vec<&&Value> = calls.iter().filter(|c| c["index"] == index).collect();
        assert!(of_index.len() > 1);
        assert!(of_index[0].get("id").is_some() && of_index[0]["function"].get("name").is_some());
        for later in &of_index[1..] {
            assert!(later.get("id").is_none() && later["function"].get("name").is_none());
        }
        let args: String = of_index.iter().filter_map(|c| c["function"]["arguments"].as_str()).collect();
        assert!(serde_json::from_str::<Value>(&args).is_ok(), "fragments concatenate to JSON: {args}");
    }
}

#[test]
fn rule_openai_chat_final_usage_chunk_has_empty_choices_then_done() {
    let out = translate_stream(Format::AnthropicMessages, Format::OpenAiChat, &fixture("stream_anthropic_text.sse"), 7, true).sse;
    let datas: Vec<&str> = out.lines().filter_map(|l| l.strip_prefix("data: ")).collect();
    assert_eq!(datas.last(), Some(&"[DONE]"));
    let usage: Value = serde_json::from_str(datas[datas.len() - 2]).expect("usage chunk");
    assert_eq!(usage["choices"], json!([]));
    assert_eq!(usage["usage"]["prompt_tokens"], 93 + 1024);
}

#[test]
fn rule_usage_chunk_is_passed_to_the_client_only_if_it_asked() {
    let bytes = fixture("stream_anthropic_text.sse");
    let asked = translate_stream(Format::AnthropicMessages, Format::OpenAiChat, &bytes, 7, true);
    let not_asked = translate_stream(Format::AnthropicMessages, Format::OpenAiChat, &bytes, 7, false);
    assert!(asked.sse.contains("\"choices\":[]"));
    assert!(!not_asked.sse.contains("\"choices\":[]"));
    assert!(!not_asked.sse.contains("\"usage\""));
    // Usage is charged either way.
    assert_eq!(asked.usage, not_asked.usage);
    assert!(not_asked.usage.is_some());
    // The client's wish is read from stream_options.include_usage.
    let req = chat(json!({"model": "m", "messages": [], "stream": true, "stream_options": {"include_usage": true}}));
    assert!(req.include_usage);
}

#[test]
fn rule_always_ask_for_usage_upstream() {
    let req = chat(json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}], "stream": true}));
    assert!(!req.include_usage);
    let (body, _) = openai_chat::write_request(&req);
    assert_eq!(body["stream_options"], json!({"include_usage": true}));
}

#[test]
fn rule_anthropic_message_delta_usage_is_cumulative_assign_do_not_add() {
    let sse = concat!(
        "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"m\",\"model\":\"c\",\"usage\":{\"input_tokens\":10,\"output_tokens\":1}}}\n\n",
        "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":null},\"usage\":{\"output_tokens\":5}}\n\n",
        "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"input_tokens\":10,\"output_tokens\":12}}\n\n",
        "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
    );
    let mut meter = UsageMeter::new();
    let mut charged = Vec::new();
    for ev in events(Format::AnthropicMessages, sse) {
        charged.extend(meter.observe(&ev));
    }
    assert_eq!(charged, vec![Usage { input: 10, output: 12, ..Usage::default() }]);
}

#[test]
fn rule_anthropic_ping_may_come_anywhere() {
    let sse = concat!(
        "event: ping\ndata: {\"type\":\"ping\"}\n\n",
        "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"m\",\"model\":\"c\",\"usage\":{}}}\n\n",
        "event: ping\ndata: {\"type\":\"ping\"}\n\n",
        "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
    );
    let evs = events(Format::AnthropicMessages, sse);
    assert_eq!(evs.iter().filter(|e| **e == StreamEvent::Ping).count(), 2);
    assert_eq!(evs.last(), Some(&StreamEvent::MessageStop));
}

#[test]
fn rule_anthropic_error_event_after_http_200_becomes_an_error_for_every_client() {
    let bytes = fixture("stream_anthropic_error.sse");
    let evs = decode(Format::AnthropicMessages, &bytes, 3);
    assert_eq!(evs.last(), Some(&StreamEvent::Error { kind: gatehouse_ai::ErrorKind::Overloaded, message: "Overloaded".into() }));
    let chat = translate_stream(Format::AnthropicMessages, Format::OpenAiChat, &bytes, 3, true).sse;
    assert!(chat.contains("{\"error\":{\"message\":\"Overloaded\""));
    assert!(!chat.contains("[DONE]"), "an errored stream does not claim success");
    let responses = translate_stream(Format::AnthropicMessages, Format::OpenAiResponses, &bytes, 3, true).sse;
    assert!(responses.contains("event: error\n"));
}

#[test]
fn rule_anthropic_streams_have_no_done_marker() {
    let out = translate_stream(Format::OpenAiChat, Format::AnthropicMessages, &fixture("stream_openai_chat_text.sse"), 3, true).sse;
    assert!(!out.contains("[DONE]"));
    assert!(out.trim_end().ends_with("data: {\"type\":\"message_stop\"}"));
}

#[test]
fn rule_block_indexes_are_not_choice_indexes() {
    // Anthropic: thinking block 0, text block 1 → OpenAI: everything in choice 0.
    let out = translate_stream(Format::AnthropicMessages, Format::OpenAiChat, &fixture("stream_anthropic_text.sse"), 7, false).sse;
    for data in out.lines().filter_map(|l| l.strip_prefix("data: ")).filter(|d| *d != "[DONE]") {
        let chunk: Value = serde_json::from_str(data).expect("json");
        assert_eq!(chunk["choices"][0]["index"], 0);
    }
    // Anthropic: text block 0, tool blocks 1 and 2 → OpenAI tool calls 0 and 1.
    let out = translate_stream(Format::AnthropicMessages, Format::OpenAiChat, &fixture("stream_anthropic_tool.sse"), 7, false).sse;
    assert!(out.contains("\"tool_calls\":[{\"index\":0,\"id\":\"toolu_01A09q90qw90lq917835lq9\""));
    assert!(out.contains("\"tool_calls\":[{\"index\":1,\"id\":\"toolu_01B7xk2mJ4d8N3rT5vW9yZ0\""));
    assert!(!out.contains("\"index\":2"));
}

#[test]
fn rule_responses_events_have_sequence_numbers_end_with_completed_and_no_done() {
    let out = translate_stream(Format::AnthropicMessages, Format::OpenAiResponses, &fixture("stream_anthropic_tool.sse"), 5, true).sse;
    let mut names = Vec::new();
    let mut seqs = Vec::new();
    for block in out.split("\n\n").filter(|b| !b.is_empty()) {
        let name = block.lines().find_map(|l| l.strip_prefix("event: ")).expect("named event");
        let data: Value = serde_json::from_str(block.lines().find_map(|l| l.strip_prefix("data: ")).expect("data")).expect("json");
        assert_eq!(data["type"], name);
        names.push(name.to_owned());
        seqs.push(data["sequence_number"].as_u64().expect("sequence_number"));
    }
    assert_eq!(seqs, (0..seqs.len() as u64).collect::<Vec<_>>());
    assert_eq!(names.last().map(String::as_str), Some("response.completed"));
    assert!(!out.contains("[DONE]"));
}

#[derive(Default)]
struct MemoryStore(std::sync::Mutex<Vec<(String, Vec<Message>)>>);

impl ResponseStore for MemoryStore {
    fn get(&self, id: &str) -> Option<Vec<Message>> {
        self.0.lock().ok()?.iter().find(|(k, _)| k == id).map(|(_, v)| v.clone())
    }
    fn put(&self, id: &str, conversation: Vec<Message>) {
        if let Ok(mut v) = self.0.lock() {
            v.push((id.to_owned(), conversation));
        }
    }
}

#[test]
fn rule_previous_response_id_is_refused_clearly_without_a_store() {
    let body = json!({"model": "gpt-4.1", "previous_response_id": "resp_1", "input": "and then?"}).to_string();
    let err = openai_responses::parse_request(body.as_bytes()).expect_err("refused");
    assert!(matches!(err, gatehouse_ai::ParseError::Unsupported { ref field, .. } if field == "previous_response_id"));
    assert!(err.to_string().contains("previous_response_id"));
}

#[test]
fn rule_previous_response_id_with_a_store_restores_the_conversation() {
    let store = MemoryStore::default();
    let first = json!({"model": "gpt-4.1", "input": "My name is Zoé."}).to_string();
    let (req, _) = openai_responses::parse_request_with_store(first.as_bytes(), Some(&store)).expect("valid");
    let (resp, _) = openai_responses::parse_response(&fixture("response_openai_responses_text.json")).expect("fixture");
    store.put(&resp.id, openai_responses::conversation_after(&req, &resp));
    let next = json!({"model": "gpt-4.1", "previous_response_id": resp.id, "input": "What is my name?"}).to_string();
    let (req, _) = openai_responses::parse_request_with_store(next.as_bytes(), Some(&store)).expect("valid");
    let roles: Vec<Role> = req.messages.iter().map(|m| m.role).collect();
    assert_eq!(roles, [Role::User, Role::Assistant, Role::User]);
    let unknown = json!({"model": "gpt-4.1", "previous_response_id": "resp_unknown", "input": "?"}).to_string();
    assert!(openai_responses::parse_request_with_store(unknown.as_bytes(), Some(&store)).is_err());
}

#[test]
fn rule_usage_is_charged_exactly_once_also_when_the_client_disconnects() {
    let evs = decode(Format::AnthropicMessages, &fixture("stream_anthropic_tool.sse"), 7);
    // Normal end: once, at message_stop; finish() adds nothing.
    let mut meter = UsageMeter::new();
    let charged: Vec<Usage> = evs.iter().filter_map(|e| meter.observe(e)).collect();
    assert_eq!(charged.len(), 1);
    assert_eq!(meter.finish(), None);
    // Client gone after the first few events: finish() charges what was seen, once.
    let mut meter = UsageMeter::new();
    for e in &evs[..4] {
        assert_eq!(meter.observe(e), None);
    }
    assert_eq!(meter.finish(), Some(Usage { input: 472, output: 2, cache_write: 1536, ..Usage::default() }));
    assert_eq!(meter.finish(), None);
}

// --- Listing models ------------------------------------------------------------------------

#[test]
fn rule_models_list_in_the_callers_format() {
    let models = [
        gatehouse_ai::ModelInfo { id: "gpt-4o".into(), display_name: None, owned_by: "openai".into(), created: 1_715_367_049 },
        gatehouse_ai::ModelInfo {
            id: "claude-sonnet-4-5".into(),
            display_name: Some("Claude Sonnet 4.5".into()),
            owned_by: "anthropic".into(),
            created: 1_759_104_000,
        },
    ];
    assert_eq!(
        gatehouse_ai::write_models_openai(&models),
        json!({"object": "list", "data": [
            {"id": "gpt-4o", "object": "model", "created": 1_715_367_049, "owned_by": "openai"},
            {"id": "claude-sonnet-4-5", "object": "model", "created": 1_759_104_000, "owned_by": "anthropic"}
        ]})
    );
    assert_eq!(
        gatehouse_ai::write_models_anthropic(&models, false),
        json!({"data": [
            {"type": "model", "id": "gpt-4o", "display_name": "gpt-4o", "created_at": "2024-05-10T18:50:49Z"},
            {"type": "model", "id": "claude-sonnet-4-5", "display_name": "Claude Sonnet 4.5", "created_at": "2025-09-29T00:00:00Z"}
        ], "has_more": false, "first_id": "gpt-4o", "last_id": "claude-sonnet-4-5"})
    );
    let _ = StreamOptions::default();
}
