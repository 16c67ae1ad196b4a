//! Every change made through the admin API lands in the audit log: one
//! record per unsafe request (POST, PUT, PATCH, DELETE), with who made it,
//! the route, the request body (redacted by the audit writer) and the
//! outcome. Doing it here, around every handler, means no handler can forget
//! it; failed attempts (401, 403, 409) are recorded as well.

use std::sync::Arc;

use axum::body::{Body, to_bytes};
use axum::extract::{MatchedPath, Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use parking_lot::Mutex;
use serde_json::{Value, json};

use super::{AdminCtx, ApiError};
use crate::audit::{AuditEvent, Decision, EventStatus};
use crate::server::AppState;

/// Where [`AdminCtx`] leaves who the caller turned out to be, for the record.
#[derive(Clone, Default)]
pub(crate) struct ActorSlot(pub(crate) Arc<Mutex<Option<AdminCtx>>>);

fn is_change(method: &Method) -> bool {
    matches!(*method, Method::POST | Method::PUT | Method::PATCH | Method::DELETE)
}

/// Middleware recording admin changes in the audit log.
pub async fn record_changes(State(st): State<AppState>, req: Request, next: Next) -> Response {
    if !is_change(req.method()) {
        return next.run(req).await;
    }
    let method = req.method().clone();
    let route = req.extensions().get::<MatchedPath>().map_or_else(|| req.uri().path().to_owned(), |m| m.as_str().to_owned());
    let target = req.uri().path().to_owned();
    let (mut parts, body) = req.into_parts();
    let bytes = match to_bytes(body, st.config.server.max_body_bytes).await {
        Ok(b) => b,
        Err(_) => return ApiError::BadRequest("the request body is too large or unreadable".to_owned()).into_response(),
    };
    let details = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice::<Value>(&bytes).unwrap_or_else(|_| json!({ "bytes": bytes.len() }))
    };
    let slot = ActorSlot::default();
    parts.extensions.insert(slot.clone());
    let response = next.run(Request::from_parts(parts, Body::from(bytes))).await;
    let status = response.status();
    let mut ev = AuditEvent::admin(format!("{method} {route}"), target, json!({ "request": details, "status": status.as_u16() }));
    if let Some(ctx) = slot.0.lock().take() {
        ev = ev.by(ctx.user_id, ctx.username, ctx.key_id);
    }
    ev.decision = Some(if matches!(status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) { Decision::Deny } else { Decision::Allow });
    ev.status = Some(if status.is_success() { EventStatus::Ok } else { EventStatus::Error });
    ev.error_code = (!status.is_success()).then(|| i64::from(status.as_u16()));
    st.audit.record(ev);
    response
}
