//! The AI API proxy end to end: a hub in-process, the project's mock provider on
//! `127.0.0.1:0`, and plain HTTP clients speaking OpenAI Chat, OpenAI Responses and Anthropic
//! Messages, whole and streamed.

use std::time::{Duration, Instant};

use gatehouse_test_support::mock_ai::MockAi;
use gateway_server::audit::{AuditRecord, EventKind, EventStatus};
use gateway_server::store::AuditFilter;
use serde_json::{Value, json};

use crate::support::TestHub;

/// A hub whose `[ai]` section is `ai_toml` (`{mock}` → the first mock's URL, `{mock2}` → the second's).
async fn hub(ai_toml: &str, mocks: &[&MockAi]) -> TestHub {
    let mut text = ai_toml.to_owned();
    for (i, m) in mocks.iter().enumerate().rev() {
        let name = if i == 0 { "{mock}".to_owned() } else { format!("{{mock{}}}", i + 1) };
        text = text.replace(&name, &m.url());
    }
    TestHub::start(&text).await
}

/// Both OpenAI and Anthropic providers on one mock, short retry settings.
const BASIC: &str = r#"
[ai]
retry_base_ms = 10
retry_max_ms = 3000
[[ai.providers]]
name = "openai"
kind = "openai"
base_url = "{mock}"
[[ai.providers]]
name = "anthropic"
kind = "anthropic"
base_url = "{mock}"
[[ai.models]]
name = "gpt-4o-mini"
provider = "openai"
input_per_mtok = 1000000.0
output_per_mtok = 2000000.0
"#;

struct Http {
    base: String,
    key: String,
    c: reqwest::Client,
}

impl Http {
    fn new(hub: &TestHub) -> Self {
        Self { base: hub.base.clone(), key: hub.key.clone(), c: reqwest::Client::new() }
    }

    async fn post(&self, path: &str, body: Value, headers: &[(&str, &str)]) -> reqwest::Response {
        let mut r = self.c.post(format!("{}{path}", self.base)).bearer_auth(&self.key).json(&body);
        for (k, v) in headers {
            r = r.header(*k, *v);
        }
        r.send().await.expect("hub answers")
    }

    async fn json(&self, path: &str, body: Value) -> (u16, Value) {
        let r = self.post(path, body, &[]).await;
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// `(status, [(event name, data)])` of a streamed answer.
    async fn sse(&self, path: &str, body: Value, headers: &[(&str, &str)]) -> (u16, Vec<(Option<String>, Value)>) {
        let r = self.post(path, body, headers).await;
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        (status, parse_sse(&text))
    }
}

fn parse_sse(text: &str) -> Vec<(Option<String>, Value)> {
    text.split("\n\n")
        .filter_map(|ev| {
            let name = ev.lines().find_map(|l| l.strip_prefix("event: ")).map(str::to_owned);
            let data: Vec<&str> = ev.lines().filter_map(|l| l.strip_prefix("data:")).map(str::trim_start).collect();
            if data.is_empty() {
                return None;
            }
            let data = data.join("\n");
            Some((name, serde_json::from_str(&data).unwrap_or(Value::String(data))))
        })
        .collect()
}

/// The text of a streamed answer, whatever its format.
fn streamed_text(events: &[(Option<String>, Value)]) -> String {
    let mut out = String::new();
    for (_, d) in events {
        if let Some(t) = d["choices"][0]["delta"]["content"].as_str() {
            out.push_str(t);
        }
        if d["type"] == "content_block_delta"
            && let Some(t) = d["delta"]["text"].as_str()
        {
            out.push_str(t);
        }
        if d["type"] == "response.output_text.delta"
            && let Some(t) = d["delta"].as_str()
        {
            out.push_str(t);
        }
    }
    out
}

/// Waits until `n` AI audit records exist (polling the store after flushing), then returns them.
async fn ai_records(hub: &TestHub, n: usize) -> Vec<AuditRecord> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        hub.state.audit.flush().await;
        let filter = AuditFilter { kind: Some(EventKind::Ai), ..AuditFilter::default() };
        let page = hub.state.store.audit_query(&filter, None, 100).await.unwrap();
        if page.items.len() >= n || Instant::now() > deadline {
            return page.items;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn openai_chat_whole_and_streamed_with_usage_forced_upstream() {
    let mock = MockAi::start().await.unwrap();
    let hub = hub(BASIC, &[&mock]).await;
    let http = Http::new(&hub);
    let (status, body) =
        http.json("/v1/chat/completions", json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hello"}]})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["choices"][0]["message"]["content"], "echo: hello");
    assert_eq!(body["object"], "chat.completion");

    // Streamed without asking for usage: the hub asks upstream anyway, the client sees none.
    let req = json!({"model": "gpt-4o-mini", "stream": true, "messages": [{"role": "user", "content": "héllo wörld 日本 [mock chunk=7]"}]});
    let (status, events) = http.sse("/v1/chat/completions", req, &[]).await;
    assert_eq!(status, 200);
    assert_eq!(streamed_text(&events), "echo: héllo wörld 日本 [mock chunk=7]");
    assert!(events.iter().all(|(_, d)| d.get("usage").is_none_or(Value::is_null)), "{events:?}");
    assert_eq!(events.last().unwrap().1, Value::String("[DONE]".into()));
    let sent = mock.requests();
    assert_eq!(sent.last().unwrap().body["stream_options"]["include_usage"], true, "usage is always asked upstream");

    // Asking for usage: the usage chunk reaches the client.
    let req = json!({"model": "gpt-4o-mini", "stream": true, "stream_options": {"include_usage": true},
        "messages": [{"role": "user", "content": "hi [mock input_tokens=7 output_tokens=3]"}]});
    let (_, events) = http.sse("/v1/chat/completions", req, &[]).await;
    let usage = events.iter().find_map(|(_, d)| d.get("usage").filter(|u| !u.is_null())).expect("a usage chunk");
    assert_eq!((usage["prompt_tokens"].as_u64(), usage["completion_tokens"].as_u64()), (Some(7), Some(3)));

    // Metering: three records, tokens and cost from the configured price (1 USD per token in, 2 out).
    let records = ai_records(&hub, 3).await;
    assert_eq!(records.len(), 3);
    let last = &records[0];
    assert_eq!((last.input_tokens, last.output_tokens), (Some(7), Some(3)));
    assert!((last.cost_usd.unwrap() - 13.0).abs() < 1e-9, "{:?}", last.cost_usd);
    assert_eq!(last.backend.as_deref(), Some("openai"));
    assert_eq!(last.tool.as_deref(), Some("gpt-4o-mini"));
    assert_eq!(last.status, Some(EventStatus::Ok));
    let metrics = reqwest::get(format!("{}/metrics", hub.base)).await.unwrap().text().await.unwrap();
    assert!(metrics.contains(r#"gatehouse_ai_requests_total{model="gpt-4o-mini",provider="openai",status="ok"} 3"#), "{metrics}");
    assert!(metrics.contains(r#"gatehouse_ai_tokens_total{kind="output",model="gpt-4o-mini",provider="openai"}"#));
}

#[tokio::test]
async fn anthropic_client_calls_a_gpt_model_and_openai_client_calls_a_claude_model() {
    let mock = MockAi::start().await.unwrap();
    let hub = hub(BASIC, &[&mock]).await;
    let http = Http::new(&hub);
    // Anthropic format → OpenAI provider, whole: with x-api-key instead of a bearer.
    let r = reqwest::Client::new()
        .post(format!("{}/v1/messages", hub.base))
        .header("x-api-key", &hub.key)
        .header("anthropic-version", "2023-06-01")
        .json(&json!({"model": "gpt-4o-mini", "max_tokens": 50, "messages": [{"role": "user", "content": "ping"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["type"], "message");
    assert_eq!(body["content"][0]["text"], "echo: ping");
    assert_eq!(body["stop_reason"], "end_turn");
    assert_eq!(mock.requests().last().unwrap().path, "/v1/chat/completions");

    // Anthropic format → OpenAI provider, streamed, with a tool call.
    let req = json!({"model": "gpt-4o-mini", "max_tokens": 50, "stream": true,
        "tools": [{"name": "lookup", "description": "find", "input_schema": {"type": "object", "properties": {"query": {"type": "string"}}}}],
        "messages": [{"role": "user", "content": "please use tool"}]});
    let (status, events) = http.sse("/v1/messages", req, &[]).await;
    assert_eq!(status, 200);
    let names: Vec<&str> = events.iter().filter_map(|(n, _)| n.as_deref()).collect();
    assert_eq!(names.first(), Some(&"message_start"));
    assert_eq!(names.last(), Some(&"message_stop"));
    let start = events.iter().find(|(_, d)| d["type"] == "content_block_start").unwrap();
    assert_eq!(start.1["content_block"]["type"], "tool_use");
    assert_eq!(start.1["content_block"]["name"], "lookup");
    let delta = events.iter().find(|(_, d)| d["type"] == "message_delta").unwrap();
    assert_eq!(delta.1["delta"]["stop_reason"], "tool_use");

    // OpenAI format → Anthropic provider (prefix rule), whole and streamed; beta headers forwarded.
    let (status, body) = http
        .json(
            "/v1/chat/completions",
            json!({"model": "claude-sonnet-4-5", "messages": [
        {"role": "system", "content": "be brief"}, {"role": "user", "content": "bonjour"}]}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["choices"][0]["message"]["content"], "echo: bonjour");
    let sent = mock.requests().last().unwrap().clone();
    assert_eq!(sent.path, "/v1/messages");
    assert_eq!(sent.body["system"], "be brief");
    assert!(sent.body["max_tokens"].as_u64().unwrap() > 0, "Anthropic requires max_tokens");
    assert_eq!(sent.headers.get("anthropic-version").map(String::as_str), Some("2023-06-01"));

    let req = json!({"model": "claude-sonnet-4-5", "stream": true, "messages": [{"role": "user", "content": "stream me [mock chunk=3]"}]});
    let (status, events) = http.sse("/v1/chat/completions", req, &[("anthropic-beta", "prompt-caching-2024-07-31")]).await;
    assert_eq!(status, 200);
    assert_eq!(streamed_text(&events), "echo: stream me [mock chunk=3]");
    let finish = events.iter().find_map(|(_, d)| d["choices"][0]["finish_reason"].as_str()).unwrap();
    assert_eq!(finish, "stop");
    let sent = mock.requests().last().unwrap().clone();
    assert_eq!(sent.headers.get("anthropic-beta").map(String::as_str), Some("prompt-caching-2024-07-31"));
    assert!(!sent.headers.contains_key("authorization"), "the client's gatehouse key never goes upstream");
}

#[tokio::test]
async fn responses_whole_streamed_and_previous_response_id() {
    let mock = MockAi::start().await.unwrap();
    let hub = hub(BASIC, &[&mock]).await;
    let http = Http::new(&hub);
    // Responses client → Anthropic provider (no passthrough): the hub keeps the conversation.
    let (status, first) = http.json("/v1/responses", json!({"model": "claude-sonnet-4-5", "input": "my name is Ada"})).await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["output"][0]["content"][0]["text"], "echo: my name is Ada");
    let id = first["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("resp_"));
    let (status, second) =
        http.json("/v1/responses", json!({"model": "claude-sonnet-4-5", "input": "what is my name?", "previous_response_id": id})).await;
    assert_eq!(status, 200, "{second}");
    let sent = mock.requests().last().unwrap().body.clone();
    let turns = sent["messages"].as_array().unwrap();
    assert_eq!(turns.len(), 3, "earlier turns were sent: {sent}");
    assert_eq!(turns[1]["role"], "assistant");

    // An unknown id is refused clearly.
    let (status, err) =
        http.json("/v1/responses", json!({"model": "claude-sonnet-4-5", "input": "x", "previous_response_id": "resp_nope"})).await;
    assert_eq!(status, 400, "{err}");
    assert!(err["error"]["message"].as_str().unwrap().contains("previous_response_id"), "{err}");

    // Streamed, OpenAI provider (passthrough to /v1/responses).
    let (status, events) = http.sse("/v1/responses", json!({"model": "gpt-4o-mini", "input": "stream it", "stream": true}), &[]).await;
    assert_eq!(status, 200);
    assert_eq!(streamed_text(&events), "echo: stream it");
    assert_eq!(events.last().unwrap().0.as_deref(), Some("response.completed"));
    assert_eq!(mock.requests().last().unwrap().path, "/v1/responses");
}

#[tokio::test]
async fn count_tokens_and_model_listing_in_both_formats() {
    let mock = MockAi::start().await.unwrap();
    let hub = hub(BASIC, &[&mock]).await;
    let http = Http::new(&hub);
    let body = json!({"model": "claude-sonnet-4-5", "messages": [{"role": "user", "content": "count these words please"}]});
    let (status, v) = http.json("/v1/messages/count_tokens", body).await;
    assert_eq!(status, 200, "{v}");
    assert!(v["input_tokens"].as_u64().unwrap() > 0);
    assert_eq!(mock.requests().last().unwrap().path, "/v1/messages/count_tokens", "Anthropic providers count themselves");
    let before = mock.count();
    let (status, v) = http
        .json("/v1/messages/count_tokens", json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "abcd efgh"}]}))
        .await;
    assert_eq!(status, 200);
    assert!(v["input_tokens"].as_u64().unwrap() > 0);
    assert_eq!(mock.count(), before, "other providers get an estimate");

    let c = reqwest::Client::new();
    let openai: Value = c.get(format!("{}/v1/models", hub.base)).bearer_auth(&hub.key).send().await.unwrap().json().await.unwrap();
    assert_eq!(openai["object"], "list");
    assert!(openai["data"].as_array().unwrap().iter().any(|m| m["id"] == "gpt-4o-mini" && m["object"] == "model"));
    let anthropic: Value = c
        .get(format!("{}/v1/models", hub.base))
        .header("x-api-key", &hub.key)
        .header("anthropic-version", "2023-06-01")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(anthropic["data"][0]["type"], "model");
    assert_eq!(anthropic["has_more"], false);
    assert_eq!(anthropic["first_id"], "gpt-4o-mini");
}

#[tokio::test]
async fn provider_error_mid_stream_reaches_the_client_and_no_failover_after_first_byte() {
    let mock = MockAi::start().await.unwrap();
    let second = MockAi::start().await.unwrap();
    let hub = hub(
        r#"
[ai]
retry_base_ms = 10
[[ai.providers]]
name = "a"
kind = "anthropic"
base_url = "{mock}"
[[ai.providers]]
name = "b"
kind = "anthropic"
base_url = "{mock2}"
[[ai.models]]
name = "m"
provider = "a"
upstream_model = "claude-x"
weight = 1000000
[[ai.models]]
name = "m"
provider = "b"
upstream_model = "claude-x"
weight = 1
"#,
        &[&mock, &second],
    )
    .await;
    let http = Http::new(&hub);
    mock.set_knobs(&[("error_after", "3")]);
    second.set_knobs(&[("error_after", "3")]);
    let (status, events) = http
        .sse("/v1/chat/completions", json!({"model": "m", "stream": true, "messages": [{"role": "user", "content": "a b c d e"}]}), &[])
        .await;
    assert_eq!(status, 200);
    let err = events.iter().find(|(_, d)| d.get("error").is_some()).expect("an error chunk");
    assert!(err.1["error"]["message"].as_str().unwrap().contains("mock stream error"), "{err:?}");
    assert_eq!(mock.count() + second.count(), 1, "no failover once the stream started");
    let records = ai_records(&hub, 1).await;
    assert_eq!(records[0].status, Some(EventStatus::Error));
}

#[tokio::test]
async fn client_disconnect_mid_stream_is_charged_exactly_once() {
    let mock = MockAi::start().await.unwrap();
    let hub = hub(BASIC, &[&mock]).await;
    let http = Http::new(&hub);
    let req = json!({"model": "claude-sonnet-4-5", "max_tokens": 10, "stream": true, "messages": [{"role": "user",
        "content": "one two three four five six seven eight nine ten [mock event_delay_ms=30 input_tokens=11 output_tokens=22]"}]});
    let mut resp = http.post("/v1/messages", req, &[]).await;
    assert_eq!(resp.status(), 200);
    let first = resp.chunk().await.unwrap().expect("a first chunk");
    assert!(!first.is_empty());
    drop(resp);
    let records = ai_records(&hub, 1).await;
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(records[0].status, Some(EventStatus::ClientAbort));
    assert_eq!((records[0].input_tokens, records[0].output_tokens), (Some(11), Some(22)));
    // Nothing more arrives later.
    hub.state.audit.flush().await;
    assert_eq!(ai_records(&hub, 2).await.len(), 1);
}

#[tokio::test]
async fn budget_exhausted_is_refused_clearly() {
    let mock = MockAi::start().await.unwrap();
    let toml = format!("{BASIC}\n[[ai.budgets]]\nid = \"daily\"\nscope = \"user\"\nperiod = \"day\"\nlimit_usd = 5.0\n");
    let hub = hub(&toml, &[&mock]).await;
    let http = Http::new(&hub);
    // 7 input + 3 output tokens at 1 and 2 USD each: 13 USD, over the 5 USD budget.
    let (status, _) = http
        .json(
            "/v1/chat/completions",
            json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x [mock input_tokens=7 output_tokens=3]"}]}),
        )
        .await;
    assert_eq!(status, 200);
    let r = http
        .post("/v1/messages", json!({"model": "gpt-4o-mini", "max_tokens": 5, "messages": [{"role": "user", "content": "again"}]}), &[])
        .await;
    assert_eq!(r.status(), 429);
    let retry: u64 = r.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=86_400).contains(&retry));
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["type"], "error", "Anthropic shape for an Anthropic caller");
    assert_eq!(body["error"]["type"], "rate_limit_error");
    assert!(body["error"]["message"].as_str().unwrap().contains("budget `daily` exhausted"), "{body}");
    assert_eq!(mock.count(), 1, "the refused request never reached the provider");
    let metrics = reqwest::get(format!("{}/metrics", hub.base)).await.unwrap().text().await.unwrap();
    assert!(metrics.contains(r#"gatehouse_ai_budget_alerts_total{threshold="100"} 1"#), "{metrics}");
}

#[tokio::test]
async fn token_rate_limit_refuses_once_the_window_is_used() {
    let mock = MockAi::start().await.unwrap();
    let toml = format!("{BASIC}\n[[limits.rules]]\nid = \"tpm\"\nscope = \"user\"\nwindow = \"minute\"\nmax_tokens = 10\n");
    let hub = hub(&toml, &[&mock]).await;
    let http = Http::new(&hub);
    let call = |text: &str| json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text}]});
    // 7 + 3 tokens: admitted (the window was empty), then counted.
    let (status, _) = http.json("/v1/chat/completions", call("x [mock input_tokens=7 output_tokens=3]")).await;
    assert_eq!(status, 200);
    let r = http.post("/v1/chat/completions", call("again"), &[]).await;
    assert_eq!(r.status(), 429);
    assert!(r.headers().contains_key("retry-after"));
    let body: Value = r.json().await.unwrap();
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("10 tokens per minute per user (rule tpm)"), "{body}");
    assert_eq!(mock.count(), 1, "the refused request never reached the provider");
    // The same rule does not touch the MCP surface, and the status shows the tokens used.
    let (status, st) = hub.api("GET", "/limits/status?user=alice", None).await;
    assert_eq!(status, 200, "{st}");
    assert_eq!(st[0]["unit"], "tokens", "{st}");
    assert_eq!(st[0]["count"], 10, "{st}");
}

const TWO_DEPLOYMENTS: &str = r#"
[ai]
retry_base_ms = 10
max_retries = 0
breaker_failures = 2
breaker_cooldown_secs = 3600
[[ai.providers]]
name = "first"
kind = "openai"
base_url = "{mock}"
[[ai.providers]]
name = "second"
kind = "openai"
base_url = "{mock2}"
[[ai.models]]
name = "m"
provider = "first"
upstream_model = "gpt-x"
weight = 1000000
[[ai.models]]
name = "m"
provider = "second"
upstream_model = "gpt-x"
weight = 1
"#;

#[tokio::test]
async fn failover_before_first_byte_then_circuit_breaker_opens() {
    let mock = MockAi::start().await.unwrap();
    let second = MockAi::start().await.unwrap();
    mock.set_knobs(&[("status", "503")]);
    let hub = hub(TWO_DEPLOYMENTS, &[&mock, &second]).await;
    let http = Http::new(&hub);
    for stream in [false, true] {
        let r = http
            .post("/v1/chat/completions", json!({"model": "m", "stream": stream, "messages": [{"role": "user", "content": "hi"}]}), &[])
            .await;
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["x-gatehouse-provider"], "second");
    }
    assert_eq!((mock.count(), second.count()), (2, 2));
    // Two failures opened the first deployment's breaker: it is skipped now.
    let (status, _) = http.json("/v1/chat/completions", json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]})).await;
    assert_eq!(status, 200);
    assert_eq!((mock.count(), second.count()), (2, 3), "the open breaker kept traffic away");
    // Only the broken deployment left: a clear 503 without calling it.
    second.set_knobs(&[("status", "500")]);
    for _ in 0..2 {
        let _ = http.json("/v1/chat/completions", json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]})).await;
    }
    let (status, body) = http.json("/v1/chat/completions", json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]})).await;
    assert_eq!(status, 503, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("circuit open"), "{body}");
    assert_eq!(second.count(), 5);
}

#[tokio::test]
async fn retries_honour_retry_after() {
    let mock = MockAi::start().await.unwrap();
    mock.set_knobs(&[("status", "429"), ("fail_first", "1"), ("retry_after", "1")]);
    let hub = hub(BASIC, &[&mock]).await;
    let http = Http::new(&hub);
    let t = Instant::now();
    let (status, body) =
        http.json("/v1/chat/completions", json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(mock.count(), 2);
    assert!(t.elapsed() >= Duration::from_secs(1), "waited as the provider asked: {:?}", t.elapsed());
}

#[tokio::test]
async fn pii_is_replaced_upstream_and_restored_in_whole_and_streamed_answers() {
    let mock = MockAi::start().await.unwrap();
    let toml = BASIC.replace("[ai]\n", "[ai]\nredact_pii = true\n");
    let hub = hub(&toml, &[&mock]).await;
    let http = Http::new(&hub);
    let text = "mail ada@example.com or call +1 415-555-0100, card 4111 1111 1111 1111";
    let (status, body) =
        http.json("/v1/chat/completions", json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text}]})).await;
    assert_eq!(status, 200);
    assert_eq!(body["choices"][0]["message"]["content"], format!("echo: {text}"));
    let sent = mock.requests().last().unwrap().body.to_string();
    assert!(!sent.contains("ada@example.com") && sent.contains("<<PII_EMAIL_1>>"), "{sent}");
    assert!(sent.contains("<<PII_PHONE_1>>") && sent.contains("<<PII_CARD_1>>"), "{sent}");
    for chunk in ["1", "3", "7"] {
        let content = format!("{text} [mock chunk={chunk}]");
        let (status, events) =
            http.sse("/v1/messages", json!({"model": "claude-sonnet-4-5", "max_tokens": 100, "stream": true, "messages": [{"role": "user", "content": content}]}), &[]).await;
        assert_eq!(status, 200);
        assert_eq!(streamed_text(&events), format!("echo: {content}"), "chunk {chunk}");
    }
}

#[tokio::test]
async fn key_without_ai_surface_is_forbidden_and_missing_key_is_401() {
    let mock = MockAi::start().await.unwrap();
    let hub = hub(BASIC, &[&mock]).await;
    use gateway_server::auth::keys;
    let key = keys::generate_api_key();
    let secret = gateway_server::auth::load_secret(&hub.state.config.auth, &hub.state.store).await.unwrap();
    let u = hub.state.store.ensure_user("mcp-only", gateway_server::store::Role::Developer).await.unwrap();
    hub.state
        .store
        .insert_api_key(gateway_server::store::NewApiKey {
            user_id: u.id,
            name: "mcp".into(),
            prefix: keys::key_prefix(&key),
            key_hash: keys::hash_key(&secret, &key),
            surfaces: vec!["mcp".into()],
            tools: vec![],
            expires_at: None,
        })
        .await
        .unwrap();
    let c = reqwest::Client::new();
    let body = json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]});
    let r = c.post(format!("{}/v1/chat/completions", hub.base)).bearer_auth(&key).json(&body).send().await.unwrap();
    assert_eq!(r.status(), 403);
    let v: Value = r.json().await.unwrap();
    assert!(v["error"]["message"].as_str().unwrap().contains("AI surface"), "{v}");
    let r = c.post(format!("{}/v1/messages", hub.base)).json(&body).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.headers().contains_key("www-authenticate"));
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["type"], "error");
    assert_eq!(mock.count(), 0);
}

#[tokio::test]
async fn gemini_and_bedrock_providers_whole_and_streamed() {
    let mock = MockAi::start().await.unwrap();
    let hub = hub(
        r#"
[[ai.providers]]
name = "google"
kind = "gemini"
base_url = "{mock}"
[[ai.providers]]
name = "aws"
kind = "bedrock"
base_url = "{mock}"
region = "eu-west-1"
[[ai.models]]
name = "claude-on-aws"
provider = "aws"
upstream_model = "anthropic.claude-3-5-haiku-20241022-v1:0"
"#,
        &[&mock],
    )
    .await;
    let http = Http::new(&hub);
    for model in ["gemini-2.5-flash", "claude-on-aws"] {
        let (status, body) =
            http.json("/v1/chat/completions", json!({"model": model, "messages": [{"role": "user", "content": "hey"}]})).await;
        assert_eq!(status, 200, "{model}: {body}");
        assert_eq!(body["choices"][0]["message"]["content"], "echo: hey", "{model}");
        let req = json!({"model": model, "stream": true, "stream_options": {"include_usage": true},
            "messages": [{"role": "user", "content": "streamed words here [mock chunk=5 input_tokens=4 output_tokens=6]"}]});
        let (status, events) = http.sse("/v1/chat/completions", req, &[]).await;
        assert_eq!(status, 200, "{model}");
        assert_eq!(streamed_text(&events), "echo: streamed words here [mock chunk=5 input_tokens=4 output_tokens=6]", "{model}");
        let usage = events.iter().find_map(|(_, d)| d.get("usage").filter(|u| !u.is_null())).expect("usage");
        assert_eq!(usage["completion_tokens"], 6, "{model}");
    }
    let paths: Vec<String> = mock.requests().iter().map(|r| r.path.clone()).collect();
    assert!(paths.iter().any(|p| p == "/v1beta/models?alt=sse"), "{paths:?}");
    let bedrock = mock.requests().into_iter().find(|r| r.path == "/model").unwrap();
    assert_eq!(bedrock.body["anthropic_version"], "bedrock-2023-05-31");
    assert!(!bedrock.headers.contains_key("authorization"), "no credentials configured: nothing to sign with");
}

#[tokio::test]
async fn admin_api_manages_providers_models_budgets_and_reports_usage() {
    let mock = MockAi::start().await.unwrap();
    let hub = hub("", &[&mock]).await;
    let (status, p) = hub
        .api(
            "POST",
            "/ai/providers",
            Some(json!({"name": "rt", "kind": "openai_compatible", "base_url": mock.url(), "api_key": "sk-secret-1"})),
        )
        .await;
    assert_eq!(status, 201, "{p}");
    assert_eq!(p["api_key"], "***");
    let (status, list) = hub.api("GET", "/ai/providers", None).await;
    assert_eq!(status, 200);
    assert!(!list.to_string().contains("sk-secret-1"), "keys are write-only: {list}");
    let stored = hub.state.store.ai_list(gateway_server::store::AiTable::Providers).await.unwrap();
    assert!(!stored[0].config.contains("sk-secret-1"), "keys are encrypted at rest");
    let (status, m) = hub
        .api(
            "POST",
            "/ai/models",
            Some(json!({"name": "house", "provider": "rt", "upstream_model": "llama-3", "aliases": ["h"],
            "input_per_mtok": 1000000.0, "output_per_mtok": 1000000.0})),
        )
        .await;
    assert_eq!(status, 201, "{m}");
    let (status, bad) = hub.api("POST", "/ai/models", Some(json!({"name": "x", "provider": "nope"}))).await;
    assert_eq!(status, 400, "{bad}");
    let http = Http::new(&hub);
    let (status, body) = http
        .json(
            "/v1/chat/completions",
            json!({"model": "h", "messages": [{"role": "user", "content": "x [mock input_tokens=2 output_tokens=1]"}]}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let sent = mock.requests().last().unwrap().clone();
    assert_eq!(sent.headers["authorization"], "Bearer sk-secret-1");
    assert_eq!(sent.body["model"], "llama-3");

    let (status, b) = hub.api("POST", "/ai/budgets", Some(json!({"id": "tiny", "scope": "key", "period": "week", "limit_usd": 1.0}))).await;
    assert_eq!(status, 201, "{b}");
    let r = http.post("/v1/chat/completions", json!({"model": "h", "messages": [{"role": "user", "content": "y"}]}), &[]).await;
    assert_eq!(r.status(), 429, "3 USD spent of a 1 USD budget");

    ai_records(&hub, 2).await;
    let (status, usage) = hub.api("GET", "/ai/usage?group_by=model", None).await;
    assert_eq!(status, 200, "{usage}");
    let row = &usage["rows"][0];
    assert_eq!(row["group"], "h");
    assert_eq!(row["requests"], 2);
    assert!((row["cost_usd"].as_f64().unwrap() - 3.0).abs() < 1e-9, "{usage}");
    let (status, usage) = hub.api("GET", "/ai/usage?group_by=provider", None).await;
    assert_eq!(status, 200);
    assert_eq!(usage["rows"][0]["group"], "rt");

    assert_eq!(hub.api("DELETE", "/ai/budgets/tiny", None).await.0, 204);
    let (status, _) = http.json("/v1/chat/completions", json!({"model": "h", "messages": [{"role": "user", "content": "z"}]})).await;
    assert_eq!(status, 200);
    assert_eq!(hub.api("DELETE", &format!("/ai/models/{}", m["id"].as_str().unwrap()), None).await.0, 204);
    assert_eq!(hub.api("DELETE", "/ai/providers/rt", None).await.0, 204);
    let (status, _) = http.json("/v1/chat/completions", json!({"model": "h", "messages": [{"role": "user", "content": "z"}]})).await;
    assert_eq!(status, 404);
}
