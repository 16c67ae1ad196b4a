//! Admin API: the audit log. Listing with filters and cursor paging, one
//! record, a live stream (server-sent events), JSONL export, chain
//! verification and pipeline counters; all need `audit:read`.

use axum::Json;
use axum::body::Body;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Datelike, Utc};
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{AdminCtx, ApiError, ErrorBody};
use crate::audit::{AuditEvent, AuditRecord, AuditStats, ChainReport, Decision, EventKind, EventStatus};
use crate::auth::roles::Permission;
use crate::server::AppState;
use crate::store::{AUDIT_DEFAULT_PAGE, AUDIT_MAX_PAGE, AuditFilter, AuditPage};

/// Longest accepted text filter.
const MAX_FILTER_LEN: usize = 256;

/// Records read per store query of the live stream.
const STREAM_PAGE: u32 = 200;

/// How often an idle live stream sends a comment, so proxies keep it open.
const STREAM_KEEP_ALIVE: std::time::Duration = std::time::Duration::from_secs(15);

/// `/audit`, `/audit/{id}`, `/audit/stream`, `/audit/export`, `/audit/verify`, `/audit/stats`.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(stream))
        .routes(routes!(export))
        .routes(routes!(verify))
        .routes(routes!(stats))
        .routes(routes!(get_one))
}

impl AdminCtx {
    /// An audit event for a change this caller made: `action`
    /// (`backend.create`) on `target` (`backends/github`) with `details`.
    pub fn audit_event(&self, action: impl Into<String>, target: impl Into<String>, details: serde_json::Value) -> AuditEvent {
        AuditEvent::admin(action, target, details).by(self.user_id.clone(), self.username.clone(), self.key_id.clone())
    }
}

/// Which records: every given filter must match.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FilterParams {
    /// User id or username.
    #[param(max_length = 256)]
    pub user: Option<String>,
    /// API key id.
    #[param(max_length = 256)]
    pub key_id: Option<String>,
    /// Tool, prompt, resource or model name; `*` matches any run of characters.
    #[param(max_length = 256)]
    pub tool: Option<String>,
    /// Backend name.
    #[param(max_length = 256)]
    pub backend: Option<String>,
    #[param(inline)]
    pub decision: Option<Decision>,
    #[param(inline)]
    pub kind: Option<EventKind>,
    #[param(inline)]
    pub status: Option<EventStatus>,
    /// Records at or after this time (RFC 3339).
    pub from: Option<DateTime<Utc>>,
    /// Records before this time (RFC 3339).
    pub to: Option<DateTime<Utc>>,
}

/// Which page.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageParams {
    /// `next_cursor` of the previous page.
    #[param(max_length = 256)]
    pub cursor: Option<String>,
    /// Records per page (default 50).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u32>,
}

/// A text filter: empty means absent; long or control characters are refused.
fn text(name: &str, value: Option<String>) -> Result<Option<String>, ApiError> {
    match value {
        Some(v) if v.len() > MAX_FILTER_LEN || v.chars().any(char::is_control) => {
            Err(ApiError::BadRequest(format!("{name}: at most {MAX_FILTER_LEN} bytes without control characters")))
        }
        Some(v) if v.is_empty() => Ok(None),
        v => Ok(v),
    }
}

/// A time bound the store can represent (years 1 to 9999).
pub(crate) fn time(name: &str, value: Option<DateTime<Utc>>) -> Result<Option<DateTime<Utc>>, ApiError> {
    match value {
        Some(t) if !(1..=9999).contains(&t.year()) => Err(ApiError::BadRequest(format!("{name}: the year must be between 1 and 9999"))),
        t => Ok(t),
    }
}

impl FilterParams {
    fn into_filter(self) -> Result<AuditFilter, ApiError> {
        Ok(AuditFilter {
            user: text("user", self.user)?,
            key_id: text("key_id", self.key_id)?,
            tool: text("tool", self.tool)?,
            backend: text("backend", self.backend)?,
            decision: self.decision,
            kind: self.kind,
            status: self.status,
            from: time("from", self.from)?,
            to: time("to", self.to)?,
        })
    }
}

fn query<T>(q: Result<Query<T>, QueryRejection>) -> Result<T, ApiError> {
    q.map(|Query(v)| v).map_err(|e| ApiError::BadRequest(e.body_text()))
}

/// Audit records, newest first, a page at a time.
#[utoipa::path(get, path = "/audit", tag = "audit", params(FilterParams, PageParams),
    responses(
        (status = 200, body = AuditPage),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 500, body = ErrorBody),
        (status = 503, body = ErrorBody),
    ))]
async fn list(
    ctx: AdminCtx,
    State(st): State<AppState>,
    filter: Result<Query<FilterParams>, QueryRejection>,
    page: Result<Query<PageParams>, QueryRejection>,
) -> Result<Json<AuditPage>, ApiError> {
    ctx.require(Permission::AuditRead)?;
    let filter = query(filter)?.into_filter()?;
    let page = query(page)?;
    let limit = page.limit.unwrap_or(AUDIT_DEFAULT_PAGE);
    if !(1..=AUDIT_MAX_PAGE).contains(&limit) {
        return Err(ApiError::BadRequest(format!("limit: must be between 1 and {AUDIT_MAX_PAGE}")));
    }
    let cursor = text("cursor", page.cursor)?;
    Ok(Json(st.store.audit_query(&filter, cursor.as_deref(), limit).await?))
}

/// One audit record.
#[utoipa::path(get, path = "/audit/{id}", tag = "audit",
    params(("id" = String, Path, description = "Record id (UUID)")),
    responses(
        (status = 200, body = AuditRecord),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 500, body = ErrorBody),
        (status = 503, body = ErrorBody),
    ))]
async fn get_one(
    ctx: AdminCtx,
    State(st): State<AppState>,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<AuditRecord>, ApiError> {
    ctx.require(Permission::AuditRead)?;
    let Path(id) = id.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let not_found = || ApiError::NotFound("no such audit record".to_owned());
    // Ids are UUIDs; anything else cannot exist and need not reach the store.
    if id.len() > 64 || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        return Err(not_found());
    }
    st.store.audit_get(&id).await?.map(Json).ok_or_else(not_found)
}

/// The matching records as JSON Lines, oldest first, streamed.
#[utoipa::path(get, path = "/audit/export", tag = "audit", params(FilterParams),
    responses(
        (status = 200, description = "One audit record (as in `GET /audit`) per line, oldest first", content_type = "application/x-ndjson", body = String),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
    ))]
async fn export(
    ctx: AdminCtx,
    State(st): State<AppState>,
    filter: Result<Query<FilterParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    ctx.require(Permission::AuditRead)?;
    let filter = query(filter)?.into_filter()?;
    let body = Body::from_stream(crate::audit::export_stream(st.store.clone(), filter));
    Ok(([(header::CONTENT_TYPE, "application/x-ndjson")], body).into_response())
}

/// Where a live stream starts.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StreamParams {
    /// Send records with a greater `seq` first (e.g. the newest one already
    /// shown); default: only records written after the stream opened.
    #[param(minimum = 0)]
    pub after: Option<i64>,
}

/// New audit records as they are written, oldest first, as server-sent
/// events: `event: record`, `id: <seq>`, `data: <record as in GET /audit>`.
/// Filters as in `GET /audit`. The stream stays open; an idle one carries a
/// comment every 15 s.
#[utoipa::path(get, path = "/audit/stream", tag = "audit", params(FilterParams, StreamParams),
    responses(
        (status = 200, description = "One `record` event per new audit record", content_type = "text/event-stream", body = String),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 503, body = ErrorBody),
    ))]
async fn stream(
    ctx: AdminCtx,
    State(st): State<AppState>,
    filter: Result<Query<FilterParams>, QueryRejection>,
    from: Result<Query<StreamParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    ctx.require(Permission::AuditRead)?;
    let filter = query(filter)?.into_filter()?;
    let from = query(from)?;
    let start = match from.after {
        Some(after) if after < 0 => return Err(ApiError::BadRequest("after: must be 0 or more".to_owned())),
        Some(after) => after,
        // The newest record now; only later ones are sent.
        None => st.store.audit_query(&crate::store::AuditFilter::default(), None, 1).await?.items.first().map_or(0, |r| r.seq),
    };
    let head = st.audit.watch_head();
    let events = futures::stream::try_unfold(
        (st.store.clone(), filter, head, start, std::collections::VecDeque::<Event>::new(), true),
        |(store, filter, mut head, mut last, mut ready, mut first)| async move {
            loop {
                if let Some(ev) = ready.pop_front() {
                    return Ok(Some((ev, (store, filter, head, last, ready, first))));
                }
                // The first round catches up on what was written before the
                // stream opened; later rounds wait for the writer.
                if !std::mem::take(&mut first) && head.changed().await.is_err() {
                    return Ok(None);
                }
                let written = *head.borrow_and_update();
                loop {
                    let rows = store.audit_rows_after(&filter, last, STREAM_PAGE).await?;
                    let full = rows.len() >= STREAM_PAGE as usize;
                    for row in rows {
                        last = last.max(row.seq);
                        let seq = row.seq;
                        let record = row.into_record()?;
                        let data = serde_json::to_string(&record).map_err(|e| crate::store::StoreError::Corrupt(e.to_string()))?;
                        ready.push_back(Event::default().event("record").id(seq.to_string()).data(data));
                    }
                    if !full {
                        break;
                    }
                }
                // Records up to what this hub announced are all committed:
                // filtered-out ones need not be read again.
                last = last.max(written);
            }
        },
    );
    let events = futures::StreamExt::map(events, |r: Result<Event, crate::store::StoreError>| {
        r.map_err(|e| {
            tracing::warn!(error = %e, "audit stream ended: the store failed");
            e
        })
    });
    Ok(Sse::new(events).keep_alive(KeepAlive::new().interval(STREAM_KEEP_ALIVE)).into_response())
}

/// Checks the hash chain and names the first bad record.
#[utoipa::path(get, path = "/audit/verify", tag = "audit",
    responses(
        (status = 200, body = ChainReport),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 500, body = ErrorBody),
        (status = 503, body = ErrorBody),
    ))]
async fn verify(ctx: AdminCtx, State(st): State<AppState>) -> Result<Json<ChainReport>, ApiError> {
    ctx.require(Permission::AuditRead)?;
    Ok(Json(crate::audit::chain::verify(&st.store).await?))
}

/// Queue depth, drops and writes of the audit pipeline.
#[utoipa::path(get, path = "/audit/stats", tag = "audit",
    responses((status = 200, body = AuditStats), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn stats(ctx: AdminCtx, State(st): State<AppState>) -> Result<Json<AuditStats>, ApiError> {
    ctx.require(Permission::AuditRead)?;
    Ok(Json(st.audit.stats()))
}
