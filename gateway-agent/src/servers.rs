//! The local MCP servers: one [`gatehouse_upstream::Upstream`] per configured
//! server, their status and catalogs, and the traffic they start on their own.
//!
//! [`ServerManager`] starts and stops servers as the config says (and again
//! on every hot reload, restarting only what changed), refetches a server's
//! tools, prompts, resources and resource templates (following `nextCursor`)
//! whenever it comes up or says its lists changed, and publishes the result
//! as the `Vec<ServerInfo>` the tunnel sends in `hello` and `servers_changed`.
//!
//! What a server sends on its own — progress, logging, list_changed and
//! server→client requests (sampling, elicitation, roots) — comes out of
//! [`ServerManager::start`]'s event receiver as [`ServerEvent`]s, in the order
//! each server sent them, for the tunnel to forward to the hub.

use std::collections::BTreeMap;
use std::sync::{Arc, Weak};
use std::time::Duration;

use gatehouse_proto::mcp::method;
use gatehouse_proto::tunnel::ServerInfo;
use gatehouse_proto::{ErrorObject, Request};
use gatehouse_upstream::{CallError, CallOptions, ClientIdentity, Health, TransportSpec, Upstream, UpstreamEvent, UpstreamSpec};
use parking_lot::Mutex;
use serde_json::value::RawValue;
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot, watch};

use crate::config::{ServerConfig, Transport, expand_vars};
use crate::paths::Env;
use crate::state::{AgentState, ServerRow};

/// Most pages followed when listing one catalog, against servers whose cursors never end.
const MAX_PAGES: usize = 100;

/// Something a local server sent on its own, for the hub.
#[derive(Debug)]
pub enum ServerEvent {
    /// A notification (progress, logging, list_changed, resources/updated, cancelled, ...).
    Notification { server: String, method: String, params: Option<Box<RawValue>> },
    /// A server→client request (sampling, elicitation, roots/list) under the server's own id.
    Request { server: String, request: Request, reply: oneshot::Sender<Result<Box<RawValue>, ErrorObject>> },
    /// Acknowledge once every event before this one has been handled.
    Barrier(oneshot::Sender<()>),
}

/// Timeouts for the local servers.
#[derive(Debug, Clone)]
pub struct ManagerOptions {
    /// Default per-request timeout; generous because a tool may legitimately run long
    /// and the hub enforces its own deadline.
    pub request_timeout: Duration,
    /// Time allowed to start a server and finish `initialize`.
    pub connect_timeout: Duration,
}

impl Default for ManagerOptions {
    fn default() -> Self {
        Self { request_timeout: Duration::from_secs(600), connect_timeout: Duration::from_secs(30) }
    }
}

#[derive(Debug, Default, Clone)]
struct Catalog {
    tools: Vec<Value>,
    prompts: Vec<Value>,
    resources: Vec<Value>,
    templates: Vec<Value>,
    error: Option<String>,
}

struct LocalServer {
    config: ServerConfig,
    upstream: Upstream,
    catalog: Mutex<Catalog>,
    /// Serializes catalog refreshes so an older one cannot overwrite a newer one.
    refresh: tokio::sync::Mutex<()>,
    pump: tokio::task::JoinHandle<()>,
}

struct Core {
    servers: Mutex<BTreeMap<String, Arc<LocalServer>>>,
    events: mpsc::Sender<ServerEvent>,
    infos: watch::Sender<Vec<ServerInfo>>,
    state: AgentState,
    env: Arc<dyn Env>,
    opts: ManagerOptions,
}

/// The local servers. Cheap to clone.
#[derive(Clone)]
pub struct ServerManager {
    core: Arc<Core>,
}

impl std::fmt::Debug for ServerManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerManager").field("servers", &self.names()).finish()
    }
}

/// The identity the agent presents to its local servers. It declares the
/// client capabilities the hub can route (roots, sampling, elicitation).
pub fn client_identity() -> ClientIdentity {
    ClientIdentity {
        client_info: json!({ "name": "gateway-agent", "version": crate::VERSION }),
        capabilities: json!({ "roots": { "listChanged": true }, "sampling": {}, "elicitation": {} }),
        protocol_version: gatehouse_proto::mcp::LATEST_VERSION.to_owned(),
    }
}

/// Builds the upstream spec of a configured server, expanding `${VAR}` in
/// headers from `env`. A header whose variable is unset is left out and
/// reported in the second value, so the server still starts and shows why it
/// may be refused.
pub fn upstream_spec(config: &ServerConfig, env: &dyn Env, opts: &ManagerOptions) -> (UpstreamSpec, Vec<String>) {
    let mut problems = Vec::new();
    let transport = match config.transport {
        Transport::Stdio => TransportSpec::Stdio {
            command: config.command.clone().unwrap_or_default(),
            args: config.args.clone(),
            env: config.env.clone(),
            cwd: config.cwd.clone(),
        },
        Transport::Http => {
            let mut headers = BTreeMap::new();
            for (k, v) in &config.headers {
                match expand_vars(v, env) {
                    Ok(v) => {
                        headers.insert(k.clone(), v);
                    }
                    Err(e) => problems.push(format!("header {k} left out: {e}")),
                }
            }
            TransportSpec::Http { url: config.url.clone().unwrap_or_default(), headers }
        }
    };
    let spec = UpstreamSpec {
        name: config.name.clone(),
        transport,
        request_timeout: opts.request_timeout,
        connect_timeout: opts.connect_timeout,
        protocol: gatehouse_upstream::ProtocolPreference::Auto,
    };
    (spec, problems)
}

impl ServerManager {
    /// A manager with no servers yet, and the receiver of their events.
    pub fn new(state: AgentState, env: Arc<dyn Env>, opts: ManagerOptions) -> (Self, mpsc::Receiver<ServerEvent>) {
        let (events, rx) = mpsc::channel(1024);
        let core = Core { servers: Mutex::new(BTreeMap::new()), events, infos: watch::channel(Vec::new()).0, state, env, opts };
        (Self { core: Arc::new(core) }, rx)
    }

    /// Names of the running servers.
    pub fn names(&self) -> Vec<String> {
        self.core.servers.lock().keys().cloned().collect()
    }

    /// The upstream of server `name`.
    pub fn upstream(&self, name: &str) -> Option<Upstream> {
        self.core.servers.lock().get(name).map(|s| s.upstream.clone())
    }

    /// The current `ServerInfo`s (what `hello` carries).
    pub fn infos(&self) -> Vec<ServerInfo> {
        self.core.infos.borrow().clone()
    }

    /// A receiver that sees every new list of `ServerInfo`s.
    pub fn watch_infos(&self) -> watch::Receiver<Vec<ServerInfo>> {
        self.core.infos.subscribe()
    }

    /// Makes the running servers match `configs`: stops the removed ones,
    /// restarts the changed ones and starts the new ones.
    pub async fn apply(&self, configs: &[ServerConfig]) {
        let wanted: BTreeMap<&str, &ServerConfig> = configs.iter().map(|c| (c.name.as_str(), c)).collect();
        let stale: Vec<Arc<LocalServer>> = {
            let mut servers = self.core.servers.lock();
            let names: Vec<String> =
                servers.iter().filter(|(n, s)| wanted.get(n.as_str()).is_none_or(|c| **c != s.config)).map(|(n, _)| n.clone()).collect();
            names.iter().filter_map(|n| servers.remove(n)).collect()
        };
        for s in stale {
            tracing::info!(server = %s.config.name, "stopping local server");
            stop(&s).await;
        }
        for config in configs {
            if self.core.servers.lock().contains_key(&config.name) {
                continue;
            }
            self.start_one(config.clone());
        }
        self.core.publish();
    }

    fn start_one(&self, config: ServerConfig) {
        let (tx, rx) = mpsc::channel(256);
        let (spec, problems) = upstream_spec(&config, &*self.core.env, &self.core.opts);
        for p in problems {
            tracing::warn!(server = %config.name, "{p}");
        }
        tracing::info!(server = %config.name, transport = config.transport.as_str(), "starting local server");
        let upstream = Upstream::start(spec, client_identity(), tx);
        let name = config.name.clone();
        let weak = Arc::downgrade(&self.core);
        let pump = tokio::spawn(pump(weak, name.clone(), rx));
        let server =
            Arc::new(LocalServer { config, upstream, catalog: Mutex::new(Catalog::default()), refresh: tokio::sync::Mutex::new(()), pump });
        self.core.servers.lock().insert(name, server);
    }

    /// Refetches the catalogs of server `name` now.
    pub async fn refresh(&self, name: &str) {
        refresh(&self.core, name).await;
    }

    /// Stops every server and waits until they are down.
    pub async fn shutdown(&self) {
        let all: Vec<Arc<LocalServer>> = std::mem::take(&mut *self.core.servers.lock()).into_values().collect();
        for s in all {
            stop(&s).await;
        }
        self.core.publish();
    }
}

async fn stop(s: &LocalServer) {
    s.upstream.shutdown().await;
    s.pump.abort();
}

impl Core {
    /// Recomputes the `ServerInfo`s and dashboard rows and tells whoever watches.
    fn publish(&self) {
        let servers: Vec<Arc<LocalServer>> = self.servers.lock().values().cloned().collect();
        let mut infos = Vec::with_capacity(servers.len());
        let mut rows = Vec::with_capacity(servers.len());
        for s in servers {
            let st = s.upstream.status();
            let cat = s.catalog.lock().clone();
            let (status, error) = match &st.health {
                Health::Starting => ("starting", st.last_error.clone()),
                Health::Ready if cat.error.is_some() => ("degraded", cat.error.clone()),
                Health::Ready => ("ready", None),
                Health::Unhealthy { error } => ("down", Some(error.clone())),
                Health::Stopped => ("down", Some("stopped".to_owned())),
            };
            let initialize = st.init.as_ref().filter(|_| st.health == Health::Ready).and_then(|i| serde_json::from_str(i.raw.get()).ok());
            rows.push(ServerRow {
                name: s.config.name.clone(),
                transport: s.config.transport.as_str().to_owned(),
                status: status.to_owned(),
                tools: cat.tools.len(),
                restarts: st.restarts,
                last_error: error.clone().or(st.last_error.clone()),
            });
            infos.push(ServerInfo {
                name: s.config.name.clone(),
                transport: s.config.transport.as_str().to_owned(),
                status: status.to_owned(),
                error,
                initialize,
                tools: cat.tools,
                prompts: cat.prompts,
                resources: cat.resources,
                resource_templates: cat.templates,
            });
        }
        self.state.set_servers(rows);
        self.infos.send_if_modified(|old| {
            if *old == infos {
                return false;
            }
            *old = infos;
            true
        });
    }
}

/// Handles one server's events: health and list_changed feed the catalog;
/// everything the hub should see goes out on the manager's event channel.
async fn pump(core: Weak<Core>, name: String, mut rx: mpsc::Receiver<UpstreamEvent>) {
    while let Some(ev) = rx.recv().await {
        let Some(core) = core.upgrade() else { return };
        match ev {
            UpstreamEvent::Health(health) => {
                match &health {
                    Health::Ready => tracing::info!(server = %name, "local server ready"),
                    Health::Unhealthy { error } => tracing::warn!(server = %name, "local server down: {error}"),
                    Health::Starting | Health::Stopped => {}
                }
                core.publish();
                if health == Health::Ready {
                    let core = Arc::clone(&core);
                    let name = name.clone();
                    tokio::spawn(async move { refresh(&core, &name).await });
                }
            }
            UpstreamEvent::Notification { method, params, .. } => {
                if matches!(method.as_str(), method::TOOLS_LIST_CHANGED | method::PROMPTS_LIST_CHANGED | method::RESOURCES_LIST_CHANGED) {
                    let core2 = Arc::clone(&core);
                    let name2 = name.clone();
                    tokio::spawn(async move { refresh(&core2, &name2).await });
                }
                let _ = core.events.send(ServerEvent::Notification { server: name.clone(), method, params }).await;
            }
            UpstreamEvent::Request { request, reply, .. } => {
                let _ = core.events.send(ServerEvent::Request { server: name.clone(), request, reply }).await;
            }
            UpstreamEvent::Barrier(ack) => {
                // Passed on so the tunnel acknowledges it after the events before it went out.
                if let Err(mpsc::error::SendError(ServerEvent::Barrier(ack))) = core.events.send(ServerEvent::Barrier(ack)).await {
                    let _ = ack.send(());
                }
            }
        }
    }
}

async fn refresh(core: &Core, name: &str) {
    let Some(server) = core.servers.lock().get(name).cloned() else { return };
    let _serial = server.refresh.lock().await;
    let up = &server.upstream;
    let caps = up.status().init.map(|i| i.capabilities.clone()).unwrap_or_default();
    let mut cat = Catalog::default();
    let mut errors = Vec::new();
    let lists: [(&str, &str, &str, &mut Vec<Value>); 4] = [
        ("tools", method::TOOLS_LIST, "tools", &mut cat.tools),
        ("prompts", method::PROMPTS_LIST, "prompts", &mut cat.prompts),
        ("resources", method::RESOURCES_LIST, "resources", &mut cat.resources),
        ("resources", method::RESOURCES_TEMPLATES_LIST, "resourceTemplates", &mut cat.templates),
    ];
    for (cap, m, key, out) in lists {
        if caps.get(cap).is_none() {
            continue;
        }
        match list_all(up, m, key).await {
            Ok(items) => *out = items,
            // Templates are optional even for servers with resources.
            Err(CallError::Rpc(e)) if m == method::RESOURCES_TEMPLATES_LIST && e.code == gatehouse_proto::mcp::code::METHOD_NOT_FOUND => {}
            Err(e) => errors.push(format!("{m}: {e}")),
        }
    }
    if !errors.is_empty() {
        tracing::warn!(server = %name, "listing the catalog failed: {}", errors.join("; "));
        cat.error = Some(errors.join("; "));
    }
    tracing::debug!(server = %name, tools = cat.tools.len(), prompts = cat.prompts.len(), resources = cat.resources.len(), "catalog refreshed");
    *server.catalog.lock() = cat;
    core.publish();
}

/// Lists every item of one catalog, following `nextCursor`.
pub async fn list_all(up: &Upstream, method: &str, key: &str) -> Result<Vec<Value>, CallError> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..MAX_PAGES {
        let params = cursor.as_ref().map(|c| gatehouse_proto::jsonrpc::to_raw(&json!({ "cursor": c })));
        let result = up.request(method, params, CallOptions { timeout: Some(Duration::from_secs(30)), ..CallOptions::default() }).await?;
        let mut page: Value =
            serde_json::from_str(result.get()).map_err(|e| CallError::Unavailable(format!("bad {method} result: {e}")))?;
        if let Some(Value::Array(items)) = page.get_mut(key).map(Value::take) {
            out.extend(items);
        }
        match page.get("nextCursor").and_then(Value::as_str) {
            Some(next) if !next.is_empty() && cursor.as_deref() != Some(next) => cursor = Some(next.to_owned()),
            _ => return Ok(out),
        }
    }
    Ok(out)
}
