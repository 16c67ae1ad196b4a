//! The AI endpoints on the hub's port: `POST /v1/chat/completions`, `POST /v1/responses`,
//! `POST /v1/messages`, `POST /v1/messages/count_tokens`, `GET /v1/models`.
//!
//! A request goes: caller key (`Authorization: Bearer gk_…`, or `x-api-key` on the
//! Anthropic-format paths; the key must allow surface `ai` and its role `ai:use`) → parse in
//! the caller's format → resolve the model → rate limits (`backend` = provider, `tool` =
//! model) → budgets → PII redaction → the call loop → the answer in the caller's format →
//! metering (audit event, metrics, budgets). Every refusal is an error body in the caller's
//! format with the matching status.
//!
//! # The call loop
//!
//! Deployments are tried in weighted random order, skipping those whose breaker is open. A
//! 429, a 5xx, a connection error, a timeout, or a stream that ends before its first byte moves
//! on to the next deployment at once; when every deployment was tried, the next round waits
//! (exponential backoff from `ai.retry_base_ms`, or the provider's `Retry-After` when it gave
//! one, at most `ai.retry_max_ms`). A request makes at most `deployments + ai.max_retries`
//! tries in all; a deployment whose breaker is open is skipped without a try (when every
//! breaker is open the answer is a 503 at once). For streams, the first chunk of the
//! provider's body is awaited *before* the answer starts: until then nothing reached the
//! client and another deployment may still answer; after it, an upstream failure ends the
//! client's stream with the format's error event, and there is no failover.
//!
//! # Metering streams
//!
//! The provider's stream is read by a task of its own that outlives the client's connection:
//! when the client goes away, the task keeps reading (within `ai.total_timeout_secs`) so the
//! provider's final usage is known, then charges the request once, with status
//! `client_abort`.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures::StreamExt;
use gatehouse_ai::{ErrorKind, Format, Part, Request, StreamEvent, StreamOptions, Usage, UsageMeter};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::budgets::Subject;
use super::pii::{Redactions, StreamRestorer};
use super::providers::{self, ClientHeaders, Decoder};
use super::router::{Deployment, Route, weighted_order};
use super::{UserConversations, conversation_from_text, conversation_to_text};
use crate::audit::{AuditEvent, Decision, EventKind, EventStatus};
use crate::auth::roles::Permission;
use crate::auth::{AuthError, Principal};
use crate::limits::LimitInput;
use crate::server::AppState;

/// How long remembered Responses conversations stay in the store.
const CONVERSATION_DAYS: i64 = 30;
/// Longest `x-gatehouse-dropped` header.
const MAX_DROPPED_HEADER: usize = 1024;

/// The AI routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/chat/completions", post(chat))
        .route("/v1/responses", post(responses))
        .route("/v1/messages", post(messages))
        .route("/v1/messages/count_tokens", post(count_tokens))
        .route("/v1/models", get(models))
}

async fn chat(State(st): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    proxy(st, headers, body, Format::OpenAiChat, "chat/completions").await
}

async fn responses(State(st): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    proxy(st, headers, body, Format::OpenAiResponses, "responses").await
}

async fn messages(State(st): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    proxy(st, headers, body, Format::AnthropicMessages, "messages").await
}

// ---------------------------------------------------------------------------
// Errors and callers
// ---------------------------------------------------------------------------

/// An error answer in `format`.
pub fn error_response(format: Format, status: u16, kind: &ErrorKind, message: &str) -> Response {
    let body = gatehouse_ai::write_error(format, status, kind, message);
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut r = (code, [(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response();
    if status == 401 {
        r.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(r#"Bearer realm="gatehouse""#));
    }
    r
}

fn with_retry_after(mut r: Response, secs: u64) -> Response {
    r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
    r
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim).filter(|v| !v.is_empty())
}

/// The caller, or the refusal in `format`.
async fn authenticate(st: &AppState, headers: &HeaderMap, format: Format) -> Result<Arc<Principal>, Response> {
    if header_str(headers, "host").is_some_and(|h| !st.config.server.is_host_allowed(h)) {
        return Err(error_response(format, 403, &ErrorKind::Permission, "Host header is not allowed"));
    }
    if let Some(origin) = headers.get(header::ORIGIN)
        && !st.config.server.is_origin_allowed(origin.to_str().unwrap_or("invalid"))
    {
        return Err(error_response(format, 403, &ErrorKind::Permission, "Origin is not allowed"));
    }
    let bearer = header_str(headers, "authorization")
        .and_then(|v| v.split_once(' '))
        .and_then(|(scheme, token)| scheme.eq_ignore_ascii_case("bearer").then(|| token.trim()));
    let token = bearer.or_else(|| if format == Format::AnthropicMessages { header_str(headers, "x-api-key") } else { None });
    let Some(token) = token else {
        let how = if format == Format::AnthropicMessages { "`x-api-key` or `Authorization: Bearer`" } else { "`Authorization: Bearer`" };
        return Err(error_response(
            format,
            401,
            &ErrorKind::Authentication,
            &format!("missing API key; send a Gatehouse key (gk_…) as {how}"),
        ));
    };
    let principal = st.auth.authenticate(token).await.map_err(|e| match e {
        AuthError::Store(_) => {
            tracing::error!(error = %e, "key lookup failed");
            error_response(format, 503, &ErrorKind::Overloaded, "authentication is unavailable; try again")
        }
        e => error_response(format, 401, &ErrorKind::Authentication, &format!("invalid API key: {e}")),
    })?;
    if !principal.allows_surface("ai") {
        return Err(error_response(format, 403, &ErrorKind::Permission, "this key may not use the AI surface"));
    }
    if !st.console.permissions(&principal.role).await.contains(&Permission::AiUse) {
        return Err(error_response(format, 403, &ErrorKind::Permission, &format!("role `{}` may not use the AI surface", principal.role)));
    }
    Ok(Arc::new(principal))
}

// ---------------------------------------------------------------------------
// One proxied request
// ---------------------------------------------------------------------------

/// What settling a request needs to know.
#[derive(Clone)]
struct Ctx {
    st: AppState,
    principal: Arc<Principal>,
    format: Format,
    method: &'static str,
    started: Instant,
    /// The model as the client named it.
    model: String,
    /// The canonical model (registration name), for prices.
    route_model: String,
    /// Bounded metric label.
    label_model: String,
    request_bytes: usize,
    stream: bool,
}

/// How a request ended.
struct Outcome {
    provider: String,
    upstream_model: Option<String>,
    status: EventStatus,
    decision: Decision,
    rule: Option<String>,
    usage: Option<Usage>,
    error: Option<String>,
    metric_status: &'static str,
    response_bytes: usize,
}

impl Outcome {
    fn refused(provider: &str, rule: String, message: String, metric_status: &'static str) -> Self {
        Self {
            provider: provider.to_owned(),
            upstream_model: None,
            status: EventStatus::Error,
            decision: Decision::Deny,
            rule: Some(rule),
            usage: None,
            error: Some(message),
            metric_status,
            response_bytes: 0,
        }
    }
}

/// Charges and records a finished request: metrics, budgets, audit. Called exactly once per
/// request that reached governance.
async fn settle(ctx: &Ctx, o: Outcome) {
    let st = &ctx.st;
    let ai = &st.ai;
    let price = ai.prices().price(&ctx.route_model);
    let (cost, weighted) = match &o.usage {
        Some(u) => (price.cost(u), price.weighted_tokens(u)),
        None => (0.0, 0),
    };
    let provider_label = o.provider.as_str();
    st.metrics.ai_request(provider_label, &ctx.label_model, o.metric_status);
    st.metrics.observe_request("ai", ctx.method, o.metric_status, ctx.started.elapsed());
    if let Some(u) = &o.usage {
        st.metrics.ai_usage(provider_label, &ctx.label_model, u, cost);
        let p = &ctx.principal;
        let subject = Subject { user_id: &p.user_id, username: &p.username, key_id: &p.key_id, role: p.role.as_str() };
        for (_, threshold) in ai.budgets().charge(ai.store(), &subject, cost, weighted, crate::store::now()).await {
            st.metrics.ai_budget_alert(threshold);
        }
        // Token rate limits count the weighted tokens, like budgets.
        st.limits.record_tokens(
            &LimitInput {
                user_id: &p.user_id,
                username: &p.username,
                key_id: Some(&p.key_id),
                backend: Some(provider_label),
                tool: Some(&ctx.route_model),
                ai: true,
            },
            weighted,
        );
    }
    let p = &ctx.principal;
    let mut ev = AuditEvent::new(EventKind::Ai).by(p.user_id.clone(), p.username.clone(), Some(p.key_id.clone()));
    ev.method = Some(ctx.method.to_owned());
    ev.backend = Some(o.provider.clone());
    ev.tool = Some(ctx.model.clone());
    ev.decision = Some(o.decision);
    ev.rule = o.rule;
    ev.status = Some(o.status);
    ev.error_message = o.error;
    ev.latency_ms = Some(ctx.started.elapsed().as_secs_f64() * 1000.0);
    ev.request_bytes = i64::try_from(ctx.request_bytes).ok();
    ev.response_bytes = i64::try_from(o.response_bytes).ok();
    if let Some(u) = &o.usage {
        ev.input_tokens = i64::try_from(u.prompt_tokens()).ok();
        ev.output_tokens = i64::try_from(u.output).ok();
        ev.cost_usd = Some(cost);
        ev.details = Some(json!({
            "stream": ctx.stream,
            "upstream_model": o.upstream_model,
            "cache_read_tokens": u.cache_read,
            "cache_write_tokens": u.cache_write,
            "reasoning_tokens": u.reasoning,
            "weighted_tokens": weighted,
        }));
    }
    st.audit.record(ev);
}

/// Peeks `previous_response_id` in a Responses body.
fn previous_response_id(body: &[u8]) -> Option<String> {
    #[derive(Deserialize)]
    struct Peek {
        previous_response_id: Option<String>,
    }
    serde_json::from_slice::<Peek>(body).ok()?.previous_response_id
}

async fn proxy(st: AppState, headers: HeaderMap, body: Bytes, format: Format, method: &'static str) -> Response {
    let started = Instant::now();
    let principal = match authenticate(&st, &headers, format).await {
        Ok(p) => p,
        Err(r) => {
            st.metrics.observe_request("ai", method, "unauthorized", started.elapsed());
            return r;
        }
    };
    let ai = st.ai.clone();
    let parsed = if format == Format::OpenAiResponses {
        if let Some(prev) = previous_response_id(&body) {
            let view = UserConversations { conversations: ai.conversations(), user_id: &principal.user_id };
            if gatehouse_ai::ResponseStore::get(&view, &prev).is_none()
                && let Ok(Some(text)) = ai.store().ai_get_response(&prev, &principal.user_id).await
                && let Some(messages) = conversation_from_text(&text)
            {
                ai.conversations().insert(&prev, &principal.user_id, messages);
            }
        }
        let view = UserConversations { conversations: ai.conversations(), user_id: &principal.user_id };
        gatehouse_ai::openai_responses::parse_request_with_store(&body, Some(&view))
    } else {
        gatehouse_ai::parse_request(format, &body)
    };
    let (mut req, dropped_in) = match parsed {
        Ok(x) => x,
        Err(e) => {
            st.metrics.observe_request("ai", method, "bad_request", started.elapsed());
            return error_response(format, 400, &ErrorKind::InvalidRequest, &e.to_string());
        }
    };
    if req.model.trim().is_empty() {
        return error_response(format, 400, &ErrorKind::InvalidRequest, "`model`: required");
    }
    let catalog = ai.catalog();
    let Some(route) = catalog.resolve(&req.model) else {
        st.metrics.observe_request("ai", method, "bad_request", started.elapsed());
        return error_response(
            format,
            404,
            &ErrorKind::NotFound,
            &format!("model `{}` is not served by this gateway; GET /v1/models lists the models it serves", req.model),
        );
    };
    let label_model =
        if route.registered || ai.prices().has(&route.model) { route.model.clone() } else { crate::metrics::OTHER.to_owned() };
    let ctx = Ctx {
        st: st.clone(),
        principal: principal.clone(),
        format,
        method,
        started,
        model: req.model.clone(),
        route_model: route.model.clone(),
        label_model,
        request_bytes: body.len(),
        stream: req.stream,
    };
    let first_provider = route.deployments.first().map(|d| d.provider.name.clone()).unwrap_or_default();
    let limit_input = LimitInput {
        user_id: &principal.user_id,
        username: &principal.username,
        key_id: Some(&principal.key_id),
        backend: Some(&first_provider),
        tool: Some(&route.model),
        ai: true,
    };
    if let Err(refusal) = st.limits.check(&limit_input) {
        let message = refusal.message();
        settle(&ctx, Outcome::refused(&first_provider, refusal.rule_id.clone(), message.clone(), "rate_limited")).await;
        return with_retry_after(error_response(format, 429, &ErrorKind::RateLimit, &message), refusal.retry_after_secs);
    }
    let subject =
        Subject { user_id: &principal.user_id, username: &principal.username, key_id: &principal.key_id, role: principal.role.as_str() };
    if let Err(refusal) = ai.budgets().check(ai.store(), &subject, crate::store::now()).await {
        settle(&ctx, Outcome::refused(&first_provider, format!("budget:{}", refusal.budget), refusal.message.clone(), "budget_exceeded"))
            .await;
        return with_retry_after(error_response(format, 429, &ErrorKind::RateLimit, &refusal.message), refusal.retry_after_secs);
    }
    // The conversation for Responses' store keeps the caller's own text, not placeholders.
    let original = (format == Format::OpenAiResponses).then(|| req.clone());
    let mut redactions = Redactions::default();
    if ai.config().redact_pii {
        redactions.redact_request(&mut req);
    }
    let ch = ClientHeaders {
        anthropic_version: header_str(&headers, "anthropic-version").map(str::to_owned),
        anthropic_beta: header_str(&headers, "anthropic-beta").map(str::to_owned),
    };
    let mut dropped: Vec<String> = dropped_in.iter().map(ToString::to_string).collect();
    match call(&ctx, &route, &req, &ch, &mut dropped).await {
        Ok(up) if req.stream => stream_answer(ctx, up, redactions, original, req.include_usage, dropped),
        Ok(up) => whole_answer(ctx, up, redactions, original, dropped).await,
        Err(f) => {
            let message = f.message.clone();
            let retry = f.retry_after;
            settle(
                &ctx,
                Outcome {
                    provider: f.provider.clone(),
                    upstream_model: f.upstream_model.clone(),
                    status: EventStatus::Error,
                    decision: Decision::Allow,
                    rule: None,
                    usage: None,
                    error: Some(message.clone()),
                    metric_status: "error",
                    response_bytes: 0,
                },
            )
            .await;
            let r = error_response(format, f.status, &f.kind, &message);
            match retry {
                Some(secs) => with_retry_after(r, secs),
                None => r,
            }
        }
    }
}

/// A provider answered 2xx (and, for streams, sent its first chunk).
struct Upstream {
    dep: Deployment,
    format: Format,
    event_stream: bool,
    resp: reqwest::Response,
    first: Option<Bytes>,
    started: Instant,
}

/// Why no provider answered.
#[derive(Debug)]
struct Failure {
    status: u16,
    kind: ErrorKind,
    message: String,
    provider: String,
    upstream_model: Option<String>,
    retry_after: Option<u64>,
}

fn retry_after_secs(h: &reqwest::header::HeaderMap) -> Option<u64> {
    let v = h.get("retry-after")?.to_str().ok()?.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(secs);
    }
    let at = chrono::DateTime::parse_from_rfc2822(v).ok()?;
    u64::try_from((at.with_timezone(&chrono::Utc) - chrono::Utc::now()).num_seconds().max(0)).ok()
}

/// The provider's error message from an error body of any format.
fn provider_message(body: &[u8]) -> Option<String> {
    let v: Value = serde_json::from_slice(body).ok()?;
    let m = v["error"]["message"].as_str().or_else(|| v["message"].as_str())?;
    Some(m.chars().take(500).collect())
}

/// Tries deployments until one answers; see the module docs.
async fn call(ctx: &Ctx, route: &Route, req: &Request, ch: &ClientHeaders, dropped: &mut Vec<String>) -> Result<Upstream, Failure> {
    let ai = &ctx.st.ai;
    let metrics = &ctx.st.metrics;
    let cfg = ai.config();
    let order = weighted_order(route.deployments.clone());
    let n = order.len().max(1);
    let max_tries = n + cfg.max_retries as usize;
    let first_byte = Duration::from_secs(cfg.first_byte_timeout_secs);
    let retry_max = Duration::from_millis(cfg.retry_max_ms);
    let mut backoff = Duration::from_millis(cfg.retry_base_ms);
    let mut last: Option<Failure> = None;
    let mut wait_hint: Option<Duration> = None;
    let mut tried_this_round = false;
    for attempt in 0..max_tries {
        let dep = &order[attempt % n];
        if attempt >= n && attempt % n == 0 {
            if !tried_this_round {
                // Every breaker is open: waiting would not change that.
                break;
            }
            tried_this_round = false;
            let wait = wait_hint.take().unwrap_or(backoff).min(retry_max);
            tokio::time::sleep(wait).await;
            backoff = (backoff * 2).min(retry_max);
        }
        let key = dep.key();
        let pname = dep.provider.name.clone();
        let fail = |status: u16, kind: ErrorKind, message: String, retry_after: Option<u64>| Failure {
            status,
            kind,
            message,
            provider: pname.clone(),
            upstream_model: Some(dep.upstream_model.clone()),
            retry_after,
        };
        if !ai.breakers().allow(&key, Instant::now()) {
            metrics.ai_error(&pname, "circuit_open");
            if last.is_none() {
                last = Some(fail(
                    503,
                    ErrorKind::Overloaded,
                    format!("provider `{pname}` is unavailable (circuit open after repeated failures); try again later"),
                    Some(cfg.breaker_cooldown_secs),
                ));
            }
            continue;
        }
        tried_this_round = true;
        let mut r = req.clone();
        r.model = dep.upstream_model.clone();
        let (c, d) = providers::build_call(&dep.provider, &r, ctx.format, ch, chrono::Utc::now());
        if attempt == 0 {
            dropped.extend(d.iter().map(ToString::to_string));
            if !d.is_empty() {
                tracing::debug!(provider = %pname, dropped = ?d, "fields not carried to the provider's format");
            }
        }
        let started = Instant::now();
        let sent = tokio::time::timeout(first_byte, ai.http().post(&c.url).headers(c.headers).body(c.body).send()).await;
        let resp = match sent {
            Err(_) => {
                ai.breakers().failure(&key, Instant::now());
                metrics.ai_error(&pname, "timeout");
                last = Some(fail(504, ErrorKind::Timeout, format!("provider `{pname}` did not answer in time"), None));
                continue;
            }
            Ok(Err(e)) => {
                ai.breakers().failure(&key, Instant::now());
                let kind = if e.is_timeout() { "timeout" } else { "connect" };
                metrics.ai_error(&pname, kind);
                tracing::warn!(provider = %pname, error = %e.without_url(), "AI provider call failed");
                last = Some(fail(502, ErrorKind::Api, format!("cannot reach provider `{pname}`"), None));
                continue;
            }
            Ok(Ok(resp)) => resp,
        };
        let status = resp.status().as_u16();
        if resp.status().is_success() {
            if !req.stream {
                ai.breakers().success(&key);
                return Ok(Upstream { dep: dep.clone(), format: c.format, event_stream: c.event_stream, resp, first: None, started });
            }
            let mut resp = resp;
            let left = first_byte.saturating_sub(started.elapsed());
            match tokio::time::timeout(left, resp.chunk()).await {
                Ok(Ok(Some(bytes))) => {
                    ai.breakers().success(&key);
                    return Ok(Upstream {
                        dep: dep.clone(),
                        format: c.format,
                        event_stream: c.event_stream,
                        resp,
                        first: Some(bytes),
                        started,
                    });
                }
                Ok(Ok(None)) | Ok(Err(_)) => {
                    ai.breakers().failure(&key, Instant::now());
                    metrics.ai_error(&pname, "stream_error");
                    last = Some(fail(502, ErrorKind::Api, format!("provider `{pname}` ended the stream before sending anything"), None));
                }
                Err(_) => {
                    ai.breakers().failure(&key, Instant::now());
                    metrics.ai_error(&pname, "timeout");
                    last = Some(fail(504, ErrorKind::Timeout, format!("provider `{pname}` sent nothing in time"), None));
                }
            }
            continue;
        }
        let retry_after = retry_after_secs(resp.headers());
        let body = tokio::time::timeout(first_byte, resp.bytes()).await.ok().and_then(Result::ok).unwrap_or_default();
        let retryable = status == 429 || status >= 500;
        if status >= 500 {
            ai.breakers().failure(&key, Instant::now());
        }
        metrics.ai_error(
            &pname,
            match status {
                429 => "status_429",
                500..=599 => "status_5xx",
                _ => "status_4xx",
            },
        );
        // The provider's own words are passed on, except for credential errors, whose text
        // can quote part of the provider key and concern the gateway's setup, not the caller.
        let (client_status, kind, message) = match status {
            401 | 403 => (
                502,
                ErrorKind::Api,
                format!("provider `{pname}` refused the gateway's credentials (HTTP {status}); ask an administrator to check its API key"),
            ),
            429 => {
                (429, ErrorKind::RateLimit, format!("provider `{pname}` is rate limiting: {}", provider_message(&body).unwrap_or_default()))
            }
            503 | 529 => {
                (503, ErrorKind::Overloaded, format!("provider `{pname}` is overloaded: {}", provider_message(&body).unwrap_or_default()))
            }
            500..=599 => {
                (502, ErrorKind::Api, format!("provider `{pname}` failed (HTTP {status}): {}", provider_message(&body).unwrap_or_default()))
            }
            s => (s, ErrorKind::from_status(s), provider_message(&body).unwrap_or_else(|| format!("provider `{pname}` answered HTTP {s}"))),
        };
        let f = fail(client_status, kind, message, retry_after);
        if !retryable {
            return Err(f);
        }
        if let Some(secs) = retry_after {
            let wait = Duration::from_secs(secs);
            if wait > retry_max && n == 1 {
                // Longer than the gateway waits: the caller decides.
                return Err(f);
            }
            wait_hint = Some(wait);
        }
        last = Some(f);
    }
    Err(last.unwrap_or(Failure {
        status: 503,
        kind: ErrorKind::Overloaded,
        message: "no deployment could be tried".into(),
        provider: route.deployments.first().map(|d| d.provider.name.clone()).unwrap_or_default(),
        upstream_model: None,
        retry_after: None,
    }))
}

fn dropped_header(r: &mut Response, dropped: &[String]) {
    if dropped.is_empty() {
        return;
    }
    let mut text = dropped.join("; ");
    if text.len() > MAX_DROPPED_HEADER {
        let mut cut = MAX_DROPPED_HEADER;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
    }
    let text: String = text.chars().map(|c| if c.is_ascii() && !c.is_ascii_control() { c } else { '?' }).collect();
    if let Ok(v) = HeaderValue::from_str(&text) {
        r.headers_mut().insert("x-gatehouse-dropped", v);
    }
}

fn new_response_id() -> String {
    format!("resp_{}", uuid::Uuid::now_v7().simple())
}

/// Remembers a Responses conversation in memory and (in the background) in the store.
fn remember(ctx: &Ctx, id: &str, messages: Vec<gatehouse_ai::Message>) {
    let ai = ctx.st.ai.clone();
    let text = conversation_to_text(&messages);
    ai.conversations().insert(id, &ctx.principal.user_id, messages);
    let (id, user) = (id.to_owned(), ctx.principal.user_id.clone());
    tokio::spawn(async move {
        let keep_since = crate::store::now() - chrono::Duration::days(CONVERSATION_DAYS);
        if let Err(e) = ai.store().ai_put_response(&id, &user, &text, keep_since).await {
            tracing::warn!(error = %e, "cannot store a Responses conversation");
        }
    });
}

async fn whole_answer(ctx: Ctx, up: Upstream, redactions: Redactions, original: Option<Request>, dropped: Vec<String>) -> Response {
    let ai = &ctx.st.ai;
    let total = Duration::from_secs(ai.config().total_timeout_secs);
    let pname = up.dep.provider.name.clone();
    let read = tokio::time::timeout(total.saturating_sub(up.started.elapsed()), up.resp.bytes()).await;
    ctx.st.metrics.ai_upstream(&pname, up.started.elapsed());
    let outcome = |status, usage, error: Option<String>, metric_status, bytes| Outcome {
        provider: pname.clone(),
        upstream_model: Some(up.dep.upstream_model.clone()),
        status,
        decision: Decision::Allow,
        rule: None,
        usage,
        error,
        metric_status,
        response_bytes: bytes,
    };
    let bytes = match read {
        Ok(Ok(b)) => b,
        Ok(Err(_)) | Err(_) => {
            ctx.st.metrics.ai_error(&pname, "timeout");
            let message = format!("provider `{pname}` did not finish its answer in time");
            settle(&ctx, outcome(EventStatus::Error, None, Some(message.clone()), "error", 0)).await;
            return error_response(ctx.format, 504, &ErrorKind::Timeout, &message);
        }
    };
    let (mut response, d) = match gatehouse_ai::parse_response(up.format, &bytes) {
        Ok(x) => x,
        Err(e) => {
            ctx.st.metrics.ai_error(&pname, "bad_response");
            let message = format!("provider `{pname}` sent an answer the gateway cannot read: {e}");
            settle(&ctx, outcome(EventStatus::Error, None, Some(message.clone()), "error", 0)).await;
            return error_response(ctx.format, 502, &ErrorKind::Api, &message);
        }
    };
    redactions.restore_response(&mut response);
    if ctx.format == Format::OpenAiResponses {
        response.id = new_response_id();
    }
    let (body, d2) = gatehouse_ai::write_response(ctx.format, &response);
    if let Some(req) = &original {
        remember(&ctx, &response.id, gatehouse_ai::openai_responses::conversation_after(req, &response));
    }
    let text = body.to_string();
    settle(&ctx, outcome(EventStatus::Ok, Some(response.usage.clone()), None, "ok", text.len())).await;
    let mut r = (StatusCode::OK, [(header::CONTENT_TYPE, "application/json")], text).into_response();
    if let Ok(v) = HeaderValue::from_str(&pname) {
        r.headers_mut().insert("x-gatehouse-provider", v);
    }
    let mut all = dropped;
    all.extend(d.iter().chain(d2.iter()).map(ToString::to_string));
    dropped_header(&mut r, &all);
    r
}

/// Rebuilds the answer's content from stream events (for Responses' conversation store).
#[derive(Default)]
struct Collected {
    parts: Vec<(u32, Part)>,
    args: std::collections::HashMap<u32, String>,
}

impl Collected {
    fn observe(&mut self, ev: &StreamEvent) {
        match ev {
            StreamEvent::BlockStart { index, kind: gatehouse_ai::BlockKind::Text } => self.parts.push((*index, Part::text(""))),
            StreamEvent::BlockStart { index, kind: gatehouse_ai::BlockKind::Thinking } => {
                self.parts.push((*index, Part::Thinking { text: String::new(), signature: None }))
            }
            StreamEvent::ToolCallStart { index, id, name } => {
                self.parts.push((*index, Part::ToolUse { id: id.clone(), name: name.clone(), input: Value::Null }))
            }
            StreamEvent::TextDelta { index, text } | StreamEvent::ThinkingDelta { index, text } => {
                if let Some((_, Part::Text { text: t, .. } | Part::Thinking { text: t, .. })) =
                    self.parts.iter_mut().find(|(i, _)| i == index)
                {
                    t.push_str(text);
                }
            }
            StreamEvent::ToolArgsDelta { index, fragment } => self.args.entry(*index).or_default().push_str(fragment),
            _ => {}
        }
    }

    fn into_response(mut self) -> gatehouse_ai::Response {
        for (index, part) in &mut self.parts {
            if let Part::ToolUse { input, .. } = part {
                *input = gatehouse_ai::model::arguments_to_input(self.args.get(index).map_or("", String::as_str));
            }
        }
        gatehouse_ai::Response { content: self.parts.into_iter().map(|(_, p)| p).collect(), ..Default::default() }
    }
}

fn stream_answer(
    ctx: Ctx,
    up: Upstream,
    redactions: Redactions,
    original: Option<Request>,
    include_usage: bool,
    dropped: Vec<String>,
) -> Response {
    let (tx, rx) = mpsc::channel::<Bytes>(64);
    let pname = up.dep.provider.name.clone();
    tokio::spawn(pump(ctx, up, tx, redactions, original, include_usage));
    let body = Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(rx).map(Ok::<_, Infallible>));
    let mut r = Response::new(body);
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if let Ok(v) = HeaderValue::from_str(&pname) {
        h.insert("x-gatehouse-provider", v);
    }
    dropped_header(&mut r, &dropped);
    r
}

/// Reads the provider's stream to its end, writes the client's stream while the client is
/// there, and settles the request once at the end.
async fn pump(ctx: Ctx, up: Upstream, tx: mpsc::Sender<Bytes>, redactions: Redactions, original: Option<Request>, include_usage: bool) {
    let ai = ctx.st.ai.clone();
    let pname = up.dep.provider.name.clone();
    let deadline = tokio::time::Instant::from_std(up.started + Duration::from_secs(ai.config().total_timeout_secs));
    let mut decoder = Decoder::new(up.format, up.event_stream);
    let mut writer = gatehouse_ai::stream_writer(ctx.format, StreamOptions { include_usage, created: None });
    let mut meter = UsageMeter::new();
    let mut final_usage: Option<Usage> = None;
    let mut restorer = StreamRestorer::default();
    let mut collected = Collected::default();
    let response_id = (ctx.format == Format::OpenAiResponses).then(new_response_id);
    let mut client_gone = false;
    let mut stream_error: Option<String> = None;
    let mut first_content = false;
    let mut sent_bytes = 0usize;
    let mut resp = up.resp;
    let mut next = up.first;
    loop {
        let (events, done) = match next.take() {
            Some(bytes) => (decoder.feed(&bytes), false),
            None => match tokio::time::timeout_at(deadline, resp.chunk()).await {
                Ok(Ok(Some(bytes))) => (decoder.feed(&bytes), false),
                Ok(Ok(None)) => (decoder.finish(), true),
                Ok(Err(e)) => {
                    tracing::warn!(provider = %pname, error = %e.without_url(), "AI provider stream failed");
                    ctx.st.metrics.ai_error(&pname, "stream_error");
                    (decoder.finish(), true)
                }
                Err(_) => {
                    ctx.st.metrics.ai_error(&pname, "timeout");
                    let mut evs = decoder.finish();
                    if !evs.iter().any(|e| matches!(e, StreamEvent::Error { .. })) {
                        evs.push(StreamEvent::Error { kind: ErrorKind::Timeout, message: "the provider's answer took too long".into() });
                    }
                    (evs, true)
                }
            },
        };
        for mut ev in events {
            match &mut ev {
                StreamEvent::MessageStart { id, .. } => {
                    if let Some(rid) = &response_id {
                        *id = rid.clone();
                    }
                }
                StreamEvent::Error { message, .. } => {
                    if stream_error.is_none() {
                        ctx.st.metrics.ai_error(&pname, "stream_error");
                    }
                    stream_error = Some(message.clone());
                }
                _ => {}
            }
            if let Some(u) = meter.observe(&ev) {
                final_usage = Some(u);
            }
            for ev in restorer.apply(&redactions, ev) {
                collected.observe(&ev);
                if !first_content
                    && matches!(ev, StreamEvent::TextDelta { .. } | StreamEvent::ToolCallStart { .. } | StreamEvent::ThinkingDelta { .. })
                {
                    first_content = true;
                    ctx.st.metrics.ai_ttft(&pname, ctx.started.elapsed());
                }
                let bytes = writer.write(&ev);
                if !bytes.is_empty() && !client_gone {
                    sent_bytes += bytes.len();
                    if tx.send(Bytes::from(bytes)).await.is_err() {
                        client_gone = true;
                    }
                }
            }
        }
        if done {
            break;
        }
        if !client_gone && tx.is_closed() {
            client_gone = true;
        }
    }
    let tail = writer.finish();
    if !tail.is_empty() && !client_gone {
        sent_bytes += tail.len();
        if tx.send(Bytes::from(tail)).await.is_err() {
            client_gone = true;
        }
    }
    drop(tx);
    ctx.st.metrics.ai_upstream(&pname, up.started.elapsed());
    let usage = final_usage.or_else(|| meter.finish());
    let (status, metric_status) = if client_gone {
        ctx.st.metrics.ai_error(&pname, "client_abort");
        (EventStatus::ClientAbort, "client_abort")
    } else if stream_error.is_some() {
        (EventStatus::Error, "error")
    } else {
        (EventStatus::Ok, "ok")
    };
    if let (Some(req), Some(rid), None) = (&original, &response_id, &stream_error) {
        let resp = collected.into_response();
        remember(&ctx, rid, gatehouse_ai::openai_responses::conversation_after(req, &resp));
    }
    settle(
        &ctx,
        Outcome {
            provider: pname,
            upstream_model: Some(up.dep.upstream_model.clone()),
            status,
            decision: Decision::Allow,
            rule: None,
            usage,
            error: stream_error,
            metric_status,
            response_bytes: sent_bytes,
        },
    )
    .await;
}

// ---------------------------------------------------------------------------
// count_tokens and models
// ---------------------------------------------------------------------------

async fn count_tokens(State(st): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let format = Format::AnthropicMessages;
    let started = Instant::now();
    let _principal = match authenticate(&st, &headers, format).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let (req, _) = match gatehouse_ai::anthropic::parse_request(&body) {
        Ok(x) => x,
        Err(e) => return error_response(format, 400, &ErrorKind::InvalidRequest, &e.to_string()),
    };
    let estimate = || {
        st.metrics.observe_request("ai", "messages/count_tokens", "ok", started.elapsed());
        (StatusCode::OK, axum::Json(json!({"input_tokens": gatehouse_ai::estimate_tokens(&req)}))).into_response()
    };
    let Some(route) = st.ai.catalog().resolve(&req.model) else {
        return estimate();
    };
    let Some(dep) = route.deployments.iter().find(|d| d.provider.kind == crate::config::ProviderKind::Anthropic) else {
        return estimate();
    };
    let ch = ClientHeaders {
        anthropic_version: header_str(&headers, "anthropic-version").map(str::to_owned),
        anthropic_beta: header_str(&headers, "anthropic-beta").map(str::to_owned),
    };
    let mut r = req.clone();
    r.model = dep.upstream_model.clone();
    let c = providers::count_tokens_call(&dep.provider, &r, &ch);
    let timeout = Duration::from_secs(st.ai.config().first_byte_timeout_secs);
    let sent = tokio::time::timeout(timeout, st.ai.http().post(&c.url).headers(c.headers).body(c.body).send()).await;
    match sent {
        Ok(Ok(resp)) if resp.status().is_success() => {
            match resp.bytes().await.ok().and_then(|b| serde_json::from_slice::<Value>(&b).ok()) {
                Some(v) if v["input_tokens"].is_u64() => {
                    st.metrics.observe_request("ai", "messages/count_tokens", "ok", started.elapsed());
                    (StatusCode::OK, axum::Json(json!({"input_tokens": v["input_tokens"]}))).into_response()
                }
                _ => estimate(),
            }
        }
        Ok(Ok(resp)) if resp.status().is_client_error() && resp.status().as_u16() != 401 && resp.status().as_u16() != 403 => {
            let status = resp.status().as_u16();
            let body = resp.bytes().await.unwrap_or_default();
            let message = provider_message(&body).unwrap_or_else(|| format!("the provider answered HTTP {status}"));
            error_response(format, status, &ErrorKind::from_status(status), &message)
        }
        // The provider cannot count now: an estimate is better than failing the caller.
        _ => estimate(),
    }
}

/// `GET /v1/models` query (Anthropic paging).
#[derive(Debug, Default, Deserialize)]
struct ModelsQuery {
    limit: Option<usize>,
    after_id: Option<String>,
    before_id: Option<String>,
}

/// Unix time the hub first listed models: the `created` of every model.
fn listed_since() -> u64 {
    static T: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *T.get_or_init(|| std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0))
}

async fn models(
    State(st): State<AppState>,
    headers: HeaderMap,
    q: Result<Query<ModelsQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let anthropic = headers.contains_key("anthropic-version") || headers.contains_key("x-api-key");
    let format = if anthropic { Format::AnthropicMessages } else { Format::OpenAiChat };
    if let Err(r) = authenticate(&st, &headers, format).await {
        return r;
    }
    let created = listed_since();
    let all: Vec<gatehouse_ai::ModelInfo> = st
        .ai
        .catalog()
        .listed()
        .into_iter()
        .map(|(id, owner)| gatehouse_ai::ModelInfo { id, display_name: None, owned_by: owner, created })
        .collect();
    if !anthropic {
        return axum::Json(gatehouse_ai::write_models_openai(&all)).into_response();
    }
    let Ok(Query(q)) = q else {
        return error_response(format, 400, &ErrorKind::InvalidRequest, "invalid query: use limit, after_id or before_id");
    };
    let limit = q.limit.unwrap_or(20).clamp(1, 1000);
    let (page, has_more) = if let Some(before) = &q.before_id {
        let end = all.iter().position(|m| &m.id == before).unwrap_or(all.len());
        let start = end.saturating_sub(limit);
        (all[start..end].to_vec(), start > 0)
    } else {
        let start = q.after_id.as_ref().and_then(|a| all.iter().position(|m| &m.id == a).map(|i| i + 1)).unwrap_or(0);
        let end = (start + limit).min(all.len());
        (all[start..end].to_vec(), end < all.len())
    };
    axum::Json(gatehouse_ai::write_models_anthropic(&page, has_more)).into_response()
}
