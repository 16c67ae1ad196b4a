//! The 2024-11-05 HTTP+SSE transport: `GET /sse` opens the one stream that
//! carries every server→client message, its first `endpoint` event names
//! `POST /messages?sessionId=…`, where the client sends its messages (each
//! answered `202 Accepted`; the replies arrive on the stream).
//!
//! Behind the transport the session is an ordinary aggregated session of the
//! router, so old clients see the same merged catalog as new ones.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use dashmap::DashMap;
use futures::StreamExt;
use gatehouse_proto::jsonrpc::Body;
use gatehouse_proto::mcp::{code, method};
use gatehouse_proto::{ErrorObject, Message, Request};
use parking_lot::Mutex;
use rand::RngCore;
use tokio::sync::mpsc;

use super::guard::Caller;
use super::http::{read_body, rpc_error};
use super::hub::{Hub, InitError};
use super::session::{Scope, Session};
use crate::server::AppState;

/// Capacity of a connection's stream.
const STREAM_CAPACITY: usize = 256;

/// One open `GET /sse` connection; its session exists once `initialize` arrived.
pub struct LegacyConn {
    owner: String,
    /// Who opened the stream; every request on it acts as them.
    principal: Arc<crate::auth::Principal>,
    tx: mpsc::Sender<Message>,
    session: Mutex<Option<Arc<Session>>>,
}

/// Open 2024-11-05 connections by their `sessionId`.
#[derive(Default)]
pub struct LegacyConns(DashMap<String, Arc<LegacyConn>>);

/// Routes of the 2024-11-05 transport.
pub fn routes() -> Router<AppState> {
    Router::new().route("/sse", get(open)).route("/messages", post(message))
}

/// Ends the connection's session when its stream goes away.
struct CloseOnDrop {
    id: String,
    st: AppState,
}

impl Drop for CloseOnDrop {
    fn drop(&mut self) {
        if let Some((_, conn)) = self.st.legacy.0.remove(&self.id)
            && let Some(s) = conn.session.lock().take()
        {
            self.st.hub.sessions.remove(&s.id, &conn.owner);
        }
    }
}

async fn open(State(st): State<AppState>, caller: Caller) -> Response {
    let mut b = [0u8; 16];
    rand::rng().fill_bytes(&mut b);
    let id = hex::encode(b);
    let (tx, rx) = mpsc::channel(STREAM_CAPACITY);
    st.legacy.0.insert(
        id.clone(),
        Arc::new(LegacyConn { owner: caller.owner(), principal: caller.principal.clone(), tx, session: Mutex::new(None) }),
    );
    let endpoint = Event::default().event("endpoint").data(format!("/messages?sessionId={id}"));
    let guard = CloseOnDrop { id, st };
    let messages = tokio_stream::wrappers::ReceiverStream::new(rx).map(move |m| {
        let _keep = &guard;
        Ok::<_, Infallible>(Event::default().event("message").data(m.to_json()))
    });
    let stream = futures::stream::once(async move { Ok(endpoint) }).chain(messages);
    Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))).into_response()
}

#[derive(serde::Deserialize)]
struct Target {
    #[serde(rename = "sessionId")]
    session_id: Option<String>,
}

async fn message(
    State(st): State<AppState>,
    caller: Caller,
    Query(target): Query<Target>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let Some(id) = target.session_id else {
        return rpc_error(StatusCode::BAD_REQUEST, code::INVALID_REQUEST, "Bad Request: the sessionId query parameter is required");
    };
    let conn = match st.legacy.0.get(&id).map(|c| c.clone()) {
        Some(c) if c.owner == caller.owner() => c,
        _ => return rpc_error(StatusCode::NOT_FOUND, code::SESSION_NOT_FOUND, "Session not found: open a new stream with GET /sse"),
    };
    let body = match read_body(body, st.config.server.max_body_bytes) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let items = match Body::parse(&body) {
        Ok(Body::Single(m)) => vec![Ok(m)],
        Ok(Body::Batch(items)) => items,
        Err(e) => return rpc_error(StatusCode::BAD_REQUEST, e.code, e.message),
    };
    for item in items {
        match item {
            Ok(Message::Request(req)) if req.method == method::INITIALIZE => initialize(&st, &conn, req).await,
            Ok(msg) => {
                let session = conn.session.lock().clone();
                let Some(session) = session else {
                    if let Message::Request(r) = msg {
                        reply(&conn, gatehouse_proto::Response::err(Some(r.id), ErrorObject::invalid_request("send initialize first")))
                            .await;
                    }
                    continue;
                };
                session.touch();
                dispatch(st.hub.clone(), &conn, session, msg).await;
            }
            Err((id, e)) => reply(&conn, gatehouse_proto::Response::err(id, e)).await,
        }
    }
    StatusCode::ACCEPTED.into_response()
}

async fn reply(conn: &LegacyConn, r: gatehouse_proto::Response) {
    let _ = conn.tx.send(Message::Response(r)).await;
}

async fn dispatch(hub: Arc<Hub>, conn: &Arc<LegacyConn>, session: Arc<Session>, msg: Message) {
    match msg {
        Message::Request(req) => {
            let tx = conn.tx.clone();
            let principal = conn.principal.clone();
            tokio::spawn(async move {
                if let Some(resp) = hub.answer(&session, &principal, req, &tx).await {
                    let _ = tx.send(Message::Response(resp)).await;
                }
            });
        }
        Message::Notification(n) => hub.handle_notification(&session, n).await,
        Message::Response(r) => hub.handle_response(&session, r),
    }
}

async fn initialize(st: &AppState, conn: &LegacyConn, req: Request) {
    if conn.session.lock().is_some() {
        return reply(
            conn,
            gatehouse_proto::Response::err(Some(req.id), ErrorObject::invalid_request("the session is already initialized")),
        )
        .await;
    }
    match st.hub.start_session(&conn.principal, Scope::Aggregate, &req).await {
        Ok((session, result)) => {
            session.attach_stream(conn.tx.clone());
            *conn.session.lock() = Some(session);
            reply(conn, gatehouse_proto::Response::ok(req.id, result)).await;
        }
        Err(InitError::Rpc(e)) => reply(conn, gatehouse_proto::Response::err(Some(req.id), e)).await,
        Err(e @ InitError::Full(_)) => reply(conn, gatehouse_proto::Response::err(Some(req.id), ErrorObject::internal(e))).await,
    }
}
