//! Shared helpers of the hub's integration tests: an in-process hub on
//! `127.0.0.1:0` with a fresh SQLite store and a key, and a small MCP client
//! over reqwest that understands JSON and SSE answers.

use std::path::PathBuf;
use std::time::Duration;

use gateway_server::config::{self, MapEnv};
use gateway_server::server::{self, AppState};
use reqwest::header::{HeaderMap, HeaderValue};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

/// A running hub.
pub struct TestHub {
    pub base: String,
    pub key: String,
    pub state: AppState,
    stop: CancellationToken,
    _dir: Option<tempfile::TempDir>,
}

impl Drop for TestHub {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// Path of a file under `tests/it/fixtures`.
pub fn fixture_file(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/it/fixtures").join(name)
}

impl TestHub {
    /// Starts a hub whose config is the defaults plus `extra_toml`
    /// (backends, settings). `{dir}` in `extra_toml` is replaced by a temp dir.
    pub async fn start(extra_toml: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut hub = Self::start_at(dir.path(), extra_toml).await;
        hub._dir = Some(dir);
        hub
    }

    /// Like [`TestHub::start`], with the store (and `{dir}`) in `dir`, so a
    /// second hub started on the same `dir` finds the first one's state.
    pub async fn start_at(dir: &std::path::Path, extra_toml: &str) -> Self {
        let db = dir.join("gatehouse.db");
        let text = format!(
            "[server]\nlisten = \"127.0.0.1:0\"\npublic_url = \"http://127.0.0.1\"\n[database]\nurl = \"sqlite://{}\"\n{}",
            db.display(),
            extra_toml.replace("{dir}", &dir.display().to_string())
        );
        let config = config::parse(&text, &MapEnv::new()).expect("test config is valid");
        let state = AppState::build(config).await.expect("hub builds");
        let key = create_key(&state, "alice").await;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = CancellationToken::new();
        tokio::spawn(server::serve_on(listener, state.clone(), stop.clone()));
        Self { base: format!("http://{addr}"), key, state, stop, _dir: None }
    }

    /// Calls the admin API as the hub's admin: `(status, JSON body)`.
    pub async fn api(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        api_as(&self.base, &self.key, method, path, body).await
    }

    /// A client of `/mcp` (or `/mcp/{backend}` when `path` says so) with the hub's key.
    pub fn client(&self, path: &str) -> Client {
        Client::new(format!("{}{path}", self.base), Some(self.key.clone()))
    }

    /// Waits until backend `name` is ready and its catalog loaded.
    pub async fn wait_backend(&self, name: &str) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(b) = self.state.hub.backend(name) {
                let st = b.status();
                let cat = b.catalog();
                if st.init.is_some() && (!cat.tools.is_empty() || !cat.resources.is_empty() || !cat.prompts.is_empty()) {
                    return;
                }
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "backend {name} not ready in time: {:?}",
                self.state.hub.backend(name).map(|b| b.status())
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Calls the admin API of the hub at `base` with `key`: `(status, JSON body)`.
pub async fn api_as(base: &str, key: &str, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut req = reqwest::Client::new().request(method, format!("{base}/api/v1{path}")).bearer_auth(key);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.expect("hub answers");
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

/// Creates a user and an API key directly through the store.
pub async fn create_key(state: &AppState, user: &str) -> String {
    use gateway_server::auth::keys;
    let key = keys::generate_api_key();
    let secret = gateway_server::auth::load_secret(&state.config.auth, &state.store).await.unwrap();
    let u = state.store.ensure_user(user, gateway_server::store::Role::Admin).await.unwrap();
    state
        .store
        .insert_api_key(gateway_server::store::NewApiKey {
            user_id: u.id.clone(),
            name: "test".into(),
            prefix: keys::key_prefix(&key),
            key_hash: keys::hash_key(&secret, &key),
            surfaces: vec!["mcp".into(), "ai".into()],
            tools: vec![],
            expires_at: None,
        })
        .await
        .unwrap();
    key
}

/// An HTTP answer, decoded.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    /// JSON body, or every SSE `data:` message in order.
    pub messages: Vec<Value>,
    #[allow(dead_code)]
    pub is_sse: bool,
}

impl Reply {
    /// The last message (the response, for SSE answers).
    pub fn body(&self) -> &Value {
        self.messages.last().expect("a body")
    }
}

/// A minimal streamable HTTP MCP client.
pub struct Client {
    pub url: String,
    pub key: Option<String>,
    pub session: Option<String>,
    pub version: String,
    http: reqwest::Client,
    next: i64,
}

impl Client {
    pub fn new(url: String, key: Option<String>) -> Self {
        Self { url, key, session: None, version: "2025-11-25".into(), http: reqwest::Client::new(), next: 1 }
    }

    fn headers(&self) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("accept", HeaderValue::from_static("application/json, text/event-stream"));
        h.insert("content-type", HeaderValue::from_static("application/json"));
        if let Some(k) = &self.key {
            h.insert("authorization", HeaderValue::from_str(&format!("Bearer {k}")).unwrap());
        }
        if let Some(s) = &self.session {
            h.insert("mcp-session-id", HeaderValue::from_str(s).unwrap());
            h.insert("mcp-protocol-version", HeaderValue::from_str(&self.version).unwrap());
        }
        h
    }

    /// POSTs `msg` with the client's headers and returns the response
    /// unread, for tests that read its stream as it comes.
    pub async fn post_streaming(&self, msg: &Value) -> reqwest::Response {
        self.http.post(&self.url).headers(self.headers()).json(msg).send().await.expect("hub answers")
    }

    /// Opens the session's GET stream (server→client messages), unread.
    pub async fn open_get_stream(&self) -> reqwest::Response {
        let mut h = self.headers();
        h.insert("accept", HeaderValue::from_static("text/event-stream"));
        h.remove("content-type");
        self.http.get(&self.url).headers(h).send().await.expect("hub answers")
    }

    /// POSTs raw bytes with the client's headers plus `extra`.
    pub async fn post_raw(&self, body: impl Into<reqwest::Body>, extra: &[(&str, &str)]) -> Reply {
        let mut h = self.headers();
        for (k, v) in extra {
            h.insert(reqwest::header::HeaderName::from_bytes(k.as_bytes()).unwrap(), HeaderValue::from_str(v).unwrap());
        }
        let resp = self.http.post(&self.url).headers(h).body(body).send().await.expect("hub answers");
        decode(resp).await
    }

    pub async fn post(&self, msg: &Value) -> Reply {
        self.post_raw(msg.to_string(), &[]).await
    }

    /// Sends a request and returns its decoded reply.
    pub async fn request(&mut self, method: &str, params: Value) -> Reply {
        let id = self.next;
        self.next += 1;
        self.post(&json!({ "jsonrpc": "2.0", "id": id, "method": method, "params": params })).await
    }

    /// The `result` of a request, failing the test on an error.
    pub async fn call(&mut self, method: &str, params: Value) -> Value {
        let r = self.request(method, params).await;
        assert_eq!(r.status, 200, "{method}: {r:?}");
        let body = r.body().clone();
        assert!(body.get("error").is_none(), "{method} failed: {body}");
        body["result"].clone()
    }

    pub async fn initialize(&mut self) -> Value {
        self.initialize_with(json!({})).await
    }

    /// [`Client::initialize`] declaring `capabilities` (e.g. `{"sampling": {}}`).
    pub async fn initialize_with(&mut self, capabilities: Value) -> Value {
        let r = self
            .request(
                "initialize",
                json!({ "protocolVersion": self.version, "capabilities": capabilities, "clientInfo": { "name": "it", "version": "1" } }),
            )
            .await;
        assert_eq!(r.status, 200, "{r:?}");
        self.session = r.headers.get("mcp-session-id").map(|v| v.to_str().unwrap().to_owned());
        assert!(self.session.is_some(), "initialize must return a session id");
        let n = self.post(&json!({ "jsonrpc": "2.0", "method": "notifications/initialized" })).await;
        assert_eq!(n.status, 202);
        r.body()["result"].clone()
    }

    pub async fn delete(&self) -> u16 {
        self.http.delete(&self.url).headers(self.headers()).send().await.unwrap().status().as_u16()
    }
}

/// Decodes a JSON or SSE answer.
pub async fn decode(resp: reqwest::Response) -> Reply {
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let is_sse = headers.get("content-type").is_some_and(|v| v.to_str().unwrap_or("").starts_with("text/event-stream"));
    let text = resp.text().await.unwrap_or_default();
    let messages = if is_sse {
        text.split("\n\n")
            .filter_map(|ev| {
                let data: Vec<&str> = ev.lines().filter_map(|l| l.strip_prefix("data:")).map(str::trim_start).collect();
                // Priming events (an id and empty data) carry no message.
                let data = data.join("\n");
                (!data.trim().is_empty()).then(|| serde_json::from_str(&data).unwrap())
            })
            .collect()
    } else if text.is_empty() {
        vec![]
    } else {
        vec![serde_json::from_str(&text).unwrap_or(Value::String(text))]
    };
    Reply { status, headers, messages, is_sse }
}
