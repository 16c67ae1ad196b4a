//! Legacy HTTP+SSE transport (2024-11-05).
//!
//! A GET on the SSE URL opens the stream; its first `endpoint` event names
//! the URL to POST messages to (resolved against the SSE URL and required to
//! stay on its origin). Everything the server sends arrives as `message`
//! events on that one stream; when it ends the connection is down.

use std::collections::BTreeMap;
use std::sync::Arc;

use eventsource_stream::{EventStreamError, Eventsource};
use futures::StreamExt;
use http::header::{ACCEPT, CONTENT_TYPE, HeaderMap, HeaderValue};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use url::Url;

use crate::CallError;
use crate::conn::{Conn, Outgoing};
use crate::http::{build_client, describe, error_from_response, header_map};

pub(crate) struct SseLink {
    post: Arc<Poster>,
    stop: CancellationToken,
    reader: tokio::sync::Mutex<Option<JoinHandle<()>>>,
}

struct Poster {
    client: reqwest::Client,
    endpoint: Url,
    headers: HeaderMap,
    /// Bounds each POST: the server answers them with a quick 202.
    timeout: std::time::Duration,
}

impl Poster {
    async fn post(&self, conn: &Arc<Conn>, body: String) -> Result<(), CallError> {
        let resp = self
            .client
            .post(self.endpoint.clone())
            .headers(self.headers.clone())
            .timeout(self.timeout)
            .body(body)
            .send()
            .await
            .map_err(|e| CallError::Unavailable(describe(&e)))?;
        if !resp.status().is_success() {
            return Err(error_from_response(resp).await);
        }
        // The answer belongs on the SSE stream (202), but take one that a
        // lenient server put in the POST's body.
        let bytes = resp.bytes().await.unwrap_or_default();
        let text = String::from_utf8_lossy(&bytes);
        let text = text.trim();
        if text.starts_with('{') || text.starts_with('[') {
            conn.route_text(text, None);
        }
        Ok(())
    }
}

/// Resolves the `endpoint` event's data against the URL of the stream and
/// refuses an endpoint on another origin than the configured SSE URL.
pub fn resolve_endpoint(configured: &Url, stream_url: &Url, data: &str) -> Result<Url, String> {
    let endpoint = stream_url.join(data.trim()).map_err(|e| format!("invalid SSE endpoint `{}`: {e}", data.trim()))?;
    if endpoint.origin() != configured.origin() {
        return Err(format!("refusing the SSE endpoint {endpoint}: it is not on the origin of {configured}"));
    }
    Ok(endpoint)
}

pub(crate) async fn connect(conn: &Arc<Conn>, url: &str, headers: &BTreeMap<String, String>) -> Result<SseLink, String> {
    let configured = Url::parse(url).map_err(|e| format!("invalid URL `{url}`: {e}"))?;
    if !matches!(configured.scheme(), "http" | "https") {
        return Err(format!("unsupported URL scheme `{}`", configured.scheme()));
    }
    let client = build_client(conn.shared.spec.connect_timeout)?;
    let headers = header_map(headers)?;
    let mut get_headers = headers.clone();
    get_headers.insert(ACCEPT, HeaderValue::from_static("text/event-stream"));
    let resp = client
        .get(configured.clone())
        .headers(get_headers)
        .send()
        .await
        .map_err(|e| format!("opening the SSE stream failed: {}", describe(&e)))?;
    if !resp.status().is_success() {
        return Err(format!("opening the SSE stream failed: {}", error_from_response(resp).await));
    }
    let stream_url = resp.url().clone();
    let mut events = Box::pin(resp.bytes_stream().eventsource());
    let mut early = Vec::new();
    let endpoint = loop {
        match events.next().await {
            None => return Err("the SSE stream ended before its `endpoint` event".into()),
            Some(Err(e)) => return Err(format!("the SSE stream failed before its `endpoint` event: {}", sse_error(e))),
            Some(Ok(ev)) if ev.event == "endpoint" => break resolve_endpoint(&configured, &stream_url, &ev.data)?,
            Some(Ok(ev)) if ev.event == "message" => early.push(ev.data),
            Some(Ok(_)) => {}
        }
    };
    tracing::debug!(backend = %conn.name(), %endpoint, "legacy SSE endpoint");
    let mut post_headers = headers;
    post_headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    let stop = CancellationToken::new();
    let reader_conn = Arc::clone(conn);
    let reader_stop = stop.clone();
    let reader = tokio::spawn(async move {
        let conn = reader_conn;
        for data in early {
            conn.route_text(&data, None);
        }
        let read = async {
            while let Some(event) = events.next().await {
                match event {
                    Ok(ev) if ev.event == "message" => {
                        if !ev.data.trim().is_empty() {
                            conn.route_text(&ev.data, None);
                        }
                    }
                    Ok(ev) => tracing::debug!(backend = %conn.name(), event = %ev.event, "ignoring an SSE event of another type"),
                    Err(e) => return format!("the SSE stream failed: {}", sse_error(e)),
                }
            }
            "the SSE stream ended".to_owned()
        };
        tokio::select! {
            reason = read => conn.fail(reason),
            () = reader_stop.cancelled() => {}
            () = conn.down() => {}
        }
    });
    Ok(SseLink {
        post: Arc::new(Poster { client, endpoint, headers: post_headers, timeout: conn.shared.spec.request_timeout }),
        stop,
        reader: tokio::sync::Mutex::new(Some(reader)),
    })
}

fn sse_error(e: EventStreamError<reqwest::Error>) -> String {
    match e {
        EventStreamError::Transport(e) => describe(&e),
        e => e.to_string(),
    }
}

impl SseLink {
    pub(crate) async fn send(&self, conn: &Arc<Conn>, msg: Outgoing) -> Result<(), CallError> {
        let body = match msg {
            Outgoing::Request { body, .. } | Outgoing::Oneway { body } => body,
        };
        self.post.post(conn, body).await
    }

    pub(crate) fn send_detached(&self, conn: &Arc<Conn>, body: String) {
        let (post, conn, stop) = (Arc::clone(&self.post), Arc::clone(conn), self.stop.clone());
        tokio::spawn(async move {
            tokio::select! {
                r = post.post(&conn, body) => if let Err(e) = r {
                    tracing::debug!(backend = %conn.name(), error = %e, "sending a message upstream failed");
                },
                () = stop.cancelled() => {}
            }
        });
    }

    pub(crate) async fn close(&self) {
        self.stop.cancel();
        let reader = self.reader.lock().await.take();
        if let Some(reader) = reader {
            let _ = reader.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_resolution_stays_on_origin() {
        let sse = Url::parse("http://127.0.0.1:8080/mcp/sse").unwrap();
        assert_eq!(resolve_endpoint(&sse, &sse, "/messages?sessionId=1").unwrap().as_str(), "http://127.0.0.1:8080/messages?sessionId=1");
        assert_eq!(resolve_endpoint(&sse, &sse, "messages").unwrap().as_str(), "http://127.0.0.1:8080/mcp/messages");
        assert_eq!(resolve_endpoint(&sse, &sse, " http://127.0.0.1:8080/x \n").unwrap().as_str(), "http://127.0.0.1:8080/x");
        assert!(resolve_endpoint(&sse, &sse, "http://evil.example/messages").is_err());
        assert!(resolve_endpoint(&sse, &sse, "//evil.example/messages").is_err());
        assert!(resolve_endpoint(&sse, &sse, "https://127.0.0.1:8080/messages").is_err());
        assert!(resolve_endpoint(&sse, &sse, "http://127.0.0.1:8081/messages").is_err());
    }
}
