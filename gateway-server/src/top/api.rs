//! The admin API as `top` reads it: only the fields it shows, every one
//! defaulted, so a newer hub that adds or drops fields does not break it.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use tokio::sync::mpsc;

use super::app::{Event, Fetched};

/// `GET /info`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Info {
    pub version: String,
    pub public_url: String,
}

/// `GET /overview`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Overview {
    pub step_secs: u64,
    pub series: Vec<Point>,
    pub requests: u64,
    pub errors: u64,
    pub denials: u64,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub top_tools: Vec<TopTool>,
    pub ai_spend_today_usd: f64,
}

/// One step of the overview series.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Point {
    pub ts: Option<DateTime<Utc>>,
    pub requests: u64,
    pub errors: u64,
    pub denials: u64,
}

/// A busy tool of the overview.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct TopTool {
    pub tool: String,
    pub backend: Option<String>,
    pub calls: u64,
    pub errors: u64,
}

/// An entry of `GET /backends`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Backend {
    pub name: String,
    pub transport: String,
    pub source: String,
    pub enabled: bool,
    pub health: String,
    pub tools: u64,
    pub prompts: u64,
    pub resources: u64,
    pub restarts: u64,
    pub last_error: Option<String>,
    pub url: Option<String>,
    pub command: Option<String>,
}

/// An entry of `GET /agents`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Agent {
    pub name: String,
    pub online: bool,
    pub owner: String,
    pub revoked_at: Option<DateTime<Utc>>,
    pub last_seen: Option<DateTime<Utc>>,
    pub version: Option<String>,
}

/// An audit record of `GET /audit` and `/audit/stream`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct AuditRow {
    pub seq: i64,
    pub ts: Option<DateTime<Utc>>,
    pub kind: String,
    pub username: Option<String>,
    pub user_id: Option<String>,
    pub agent: Option<String>,
    pub method: Option<String>,
    pub backend: Option<String>,
    pub tool: Option<String>,
    pub decision: Option<String>,
    pub status: Option<String>,
    pub latency_ms: Option<f64>,
    pub error_message: Option<String>,
    pub action: Option<String>,
    pub target: Option<String>,
}

impl AuditRow {
    /// Who: the username, else the user id, else `-`.
    pub fn who(&self) -> &str {
        self.username.as_deref().or(self.user_id.as_deref()).unwrap_or("-")
    }

    /// What was done: the tool (or model), else the method, else the admin action and target.
    pub fn what(&self) -> String {
        match (&self.tool, &self.method, &self.action) {
            (Some(t), _, _) => t.clone(),
            (None, Some(m), _) => m.clone(),
            (None, None, Some(a)) => match &self.target {
                Some(t) => format!("{a} {t}"),
                None => a.clone(),
            },
            _ => self.kind.clone(),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct AuditPage {
    items: Vec<AuditRow>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ErrorDetail {
    message: String,
}

/// Why a request to the hub failed, worded for the status line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FetchError {
    #[error("the hub at {0} refused the API key (401): check GATEHOUSE_API_KEY or --key-file")]
    Unauthorized(String),
    #[error("the API key may not read the hub's traffic (403: {0}); use an admin, operator or viewer key")]
    Forbidden(String),
    #[error("cannot reach the hub at {url}: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("the hub answered {path} with {status}: {message}")]
    Status { path: String, status: u16, message: String },
    #[error("the hub's answer to {path} is not understood: {reason}")]
    Decode { path: String, reason: String },
}

/// The innermost cause of an error: `connection refused` rather than
/// `error sending request for url (...)`.
fn root_cause(err: &(dyn std::error::Error + 'static)) -> String {
    let mut e = err;
    while let Some(next) = e.source() {
        e = next;
    }
    e.to_string()
}

/// A client of one hub's admin API with one API key.
#[derive(Clone)]
pub struct HubClient {
    http: reqwest::Client,
    base: String,
    key: String,
}

impl std::fmt::Debug for HubClient {
    // The key stays out of debug output.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HubClient").field("base", &self.base).finish_non_exhaustive()
    }
}

/// How long one API request (not the stream) may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

impl HubClient {
    /// A client of the hub at `base` (`https://hub.example.com`).
    pub fn new(base: &str, key: String) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder().connect_timeout(Duration::from_secs(5)).build()?;
        Ok(Self { http, base: base.trim_end_matches('/').to_owned(), key })
    }

    /// The hub's base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    fn request(&self, path: &str) -> reqwest::RequestBuilder {
        self.http.get(format!("{}/api/v1{path}", self.base)).bearer_auth(&self.key)
    }

    fn unreachable(&self, err: &reqwest::Error) -> FetchError {
        let reason = if err.is_timeout() { "timed out".to_owned() } else { root_cause(err) };
        FetchError::Unreachable { url: self.base.clone(), reason }
    }

    async fn check(&self, path: &str, resp: reqwest::Response) -> Result<reqwest::Response, FetchError> {
        let status = resp.status().as_u16();
        if resp.status().is_success() {
            return Ok(resp);
        }
        let text = resp.text().await.unwrap_or_default();
        let message = serde_json::from_str::<ErrorBody>(&text).map(|b| b.error.message).unwrap_or_default();
        let message = if message.is_empty() { text.chars().take(200).collect() } else { message };
        Err(match status {
            401 => FetchError::Unauthorized(self.base.clone()),
            403 => FetchError::Forbidden(message),
            _ => FetchError::Status { path: path.to_owned(), status, message: message.split_whitespace().collect::<Vec<_>>().join(" ") },
        })
    }

    async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, FetchError> {
        let resp = self.request(path).timeout(REQUEST_TIMEOUT).send().await.map_err(|e| self.unreachable(&e))?;
        let resp = self.check(path, resp).await?;
        let text = resp.text().await.map_err(|e| self.unreachable(&e))?;
        serde_json::from_str(&text).map_err(|e| FetchError::Decode { path: path.to_owned(), reason: e.to_string() })
    }

    /// Everything polled: info, the overview of the last `minutes`, backends and agents.
    pub async fn fetch(&self, minutes: u32, now_ms: u64) -> Result<Fetched, FetchError> {
        let overview_path = format!("/overview?minutes={minutes}");
        let (info, overview, backends, agents) = tokio::try_join!(
            self.get::<Info>("/info"),
            self.get::<Overview>(&overview_path),
            self.get::<Vec<Backend>>("/backends"),
            self.get::<Vec<Agent>>("/agents"),
        )?;
        Ok(Fetched { info, overview, backends, agents, at_ms: now_ms })
    }

    /// The newest `limit` audit records, oldest first.
    pub async fn recent_audit(&self, limit: u32) -> Result<Vec<AuditRow>, FetchError> {
        let page: AuditPage = self.get(&format!("/audit?limit={limit}")).await?;
        let mut items = page.items;
        items.reverse();
        Ok(items)
    }

    /// Follows `/audit/stream` from after record `after`, sending each record
    /// to `tx` (once connected, [`Event::StreamUp`] first); returns when the
    /// stream ends or fails, or `tx` is closed.
    pub async fn follow_audit(&self, after: i64, tx: &mpsc::Sender<Event>) -> Result<(), FetchError> {
        use futures::StreamExt as _;
        let path = format!("/audit/stream?after={after}");
        let resp = self.request(&path).send().await.map_err(|e| self.unreachable(&e))?;
        let resp = self.check(&path, resp).await?;
        if tx.send(Event::StreamUp).await.is_err() {
            return Ok(());
        }
        let mut body = resp.bytes_stream();
        let mut parser = SseParser::default();
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| self.unreachable(&e))?;
            let rows: Vec<AuditRow> = parser
                .push(&chunk)
                .into_iter()
                .filter(|(event, _)| event == "record")
                .filter_map(|(_, data)| serde_json::from_str(&data).ok())
                .collect();
            if !rows.is_empty() && tx.send(Event::Audit(rows)).await.is_err() {
                return Ok(());
            }
        }
        Err(FetchError::Unreachable { url: self.base.clone(), reason: "the audit stream ended".to_owned() })
    }
}

/// Server-sent events framing: bytes in, complete `(event, data)` pairs out.
#[derive(Debug, Default)]
pub struct SseParser {
    buf: Vec<u8>,
}

impl SseParser {
    /// Adds `chunk` and returns the events it completed.
    pub fn push(&mut self, chunk: &[u8]) -> Vec<(String, String)> {
        self.buf.extend(chunk.iter().copied().filter(|b| *b != b'\r'));
        let mut out = Vec::new();
        while let Some(end) = self.buf.windows(2).position(|w| w == b"\n\n") {
            let block: Vec<u8> = self.buf.drain(..end + 2).collect();
            let text = String::from_utf8_lossy(&block);
            let mut event = "message".to_owned();
            let mut data: Vec<&str> = Vec::new();
            for line in text.lines() {
                if let Some(v) = line.strip_prefix("event:") {
                    event = v.trim_start().to_owned();
                } else if let Some(v) = line.strip_prefix("data:") {
                    data.push(v.strip_prefix(' ').unwrap_or(v));
                }
            }
            if !data.is_empty() {
                out.push((event, data.join("\n")));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sse_events_split_across_chunks() {
        let mut p = SseParser::default();
        assert!(p.push(b": keep-alive\n\nevent: rec").is_empty());
        let got = p.push(b"ord\r\nid: 7\r\ndata: {\"seq\":7}\r\n\r\nevent: record\ndata: a\ndata: b\n\n");
        assert_eq!(got, [("record".to_owned(), "{\"seq\":7}".to_owned()), ("record".to_owned(), "a\nb".to_owned())]);
    }

    #[test]
    fn unknown_and_missing_fields_are_tolerated() {
        let o: Overview = serde_json::from_str(r#"{"requests": 3, "new_field": [1], "top_tools": [{"tool": "t"}]}"#).unwrap();
        assert_eq!((o.requests, o.errors, o.top_tools[0].tool.as_str(), o.top_tools[0].calls), (3, 0, "t", 0));
        let a: AuditRow =
            serde_json::from_str(r#"{"seq": 2, "kind": "admin", "action": "backend.create", "target": "backends/fs"}"#).unwrap();
        assert_eq!((a.who(), a.what()), ("-", "backend.create backends/fs".to_owned()));
    }
}
