//! The MCP router: backends, the merged catalog, and the dispatch of every
//! client request and every server-initiated message.
//!
//! Requests from a session are answered from the catalog (lists), locally
//! (`ping`, `logging/setLevel`), or forwarded to the backend that owns the name
//! with only the gateway-owned parts rewritten. Messages a backend sends on its
//! own go back to the session whose call caused them (progress, logging,
//! sampling, elicitation, roots, `notifications/cancelled`) under ids the hub
//! rewrites per hop, or fan out to the sessions that can see the backend
//! (`list_changed`) or subscribed (resource updates).
//!
//! Which call a server message belongs to: the transport says so (streamable
//! HTTP: the call's response stream), a progress token the hub substituted
//! says so, or the connection has calls of one session only. The floor
//! ([`super::floor`]) keeps the last case true on connections that cannot tell
//! calls apart; a message that still cannot be attributed is refused or, for
//! notifications, sent to every session the connection serves, never guessed.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use dashmap::DashMap;
use gatehouse_proto::jsonrpc::to_raw;
use gatehouse_proto::mcp::{self, code, method};
use gatehouse_proto::{ErrorObject, Message, Notification, RawObject, Request, RequestId, Response};
use gatehouse_upstream::{CallError, CallOptions, ClientIdentity, Health, Status, Upstream, UpstreamEvent, UpstreamSpec};
use parking_lot::RwLock;
use serde_json::value::RawValue;
use serde_json::{Map, Value, json};
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;

use super::catalog::{self, BackendCatalog, Catalog, Kind};
use super::floor::Holder;
use super::gate::{Asker, Gate, Note};
use super::pool::{BackendOptions, Instance, InstanceKey, Pool};
use super::session::{Scope, Session, Sessions, TooManySessions};
use super::tasks::{self, TaskBook};
use crate::auth::Principal;
use crate::config::Isolation;

/// How long `/mcp/{backend}` waits for a starting backend at `initialize`.
const INIT_WAIT: Duration = Duration::from_secs(10);
/// Longest wait for a backend's earlier events to be handled before an answer is passed on.
const FLUSH_WAIT: Duration = Duration::from_secs(2);
/// Most pages fetched from one backend for one list (a runaway-cursor guard).
const MAX_PAGES: usize = 200;

/// Why `initialize` did not start a session.
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    /// Answer the request with this error.
    #[error("{0}")]
    Rpc(ErrorObject),
    #[error(transparent)]
    Full(#[from] TooManySessions),
}

/// Settings of the MCP router.
#[derive(Clone, Debug)]
pub struct HubSettings {
    pub request_timeout: Duration,
    pub session_idle_timeout: Duration,
    pub max_sessions: usize,
    /// A POST whose answer takes longer gets a resumable SSE stream; `None`: only when something comes first.
    pub sse_after: Option<Duration>,
    /// For 2025-11-25 clients: close a POST's stream after this long; the client resumes it.
    pub sse_close_after: Option<Duration>,
    /// Messages each SSE stream keeps for replay.
    pub replay_events: usize,
}

impl HubSettings {
    /// The defaults of `[mcp]` with these three values.
    pub fn new(request_timeout: Duration, session_idle_timeout: Duration, max_sessions: usize) -> Self {
        Self {
            request_timeout,
            session_idle_timeout,
            max_sessions,
            sse_after: Some(Duration::from_secs(1)),
            sse_close_after: None,
            replay_events: super::session::DEFAULT_REPLAY_EVENTS,
        }
    }
}

/// One backend: its connections and its latest catalog.
pub struct Backend {
    pub name: Arc<str>,
    /// The shared connection: it serves the catalog, and every call unless the backend is isolated.
    pub upstream: Upstream,
    /// The agent this backend is a local server of, for agent backends.
    pub agent: Option<Arc<str>>,
    catalog: RwLock<Arc<BackendCatalog>>,
    refresh: Notify,
    shared: Arc<Instance>,
    options: BackendOptions,
    /// Processes of sessions or users when isolated.
    pool: Pool,
}

impl Backend {
    pub fn status(&self) -> Status {
        self.upstream.status()
    }

    pub fn options(&self) -> BackendOptions {
        self.options
    }

    /// How many isolated processes run now (the shared one not counted).
    pub fn process_count(&self) -> usize {
        self.pool.len()
    }

    /// Every connection: the shared one first.
    fn instances(&self) -> Vec<Arc<Instance>> {
        let mut all = vec![self.shared.clone()];
        all.extend(self.pool.all());
        all
    }

    /// Stops every connection.
    async fn shut_down(&self) {
        let pooled = self.pool.drain();
        let stops = pooled.iter().map(|i| i.upstream.shutdown()).chain(std::iter::once(self.upstream.shutdown()));
        futures::future::join_all(stops).await;
    }

    pub fn catalog(&self) -> Arc<BackendCatalog> {
        self.catalog.read().clone()
    }

    /// Asks for the backend's lists to be fetched again (coalesced with other requests).
    pub fn request_refresh(&self) {
        self.refresh.notify_one();
    }
}

/// Where messages about one forwarded call go.
struct CallRoute {
    session: Arc<Session>,
    sink: mpsc::Sender<Message>,
    /// The connection the call runs on ([`Instance::id`]).
    instance: u64,
    /// The client's own progress token, restored on the way back.
    progress_token: Option<Box<RawValue>>,
    /// Fires when the client cancels the call or its session ends.
    cancel: CancellationToken,
    /// Its place on the connection's floor, if the connection has one.
    seat: Option<Arc<super::floor::Seat>>,
}

/// Where a server message goes: the stream of the client call it belongs to,
/// or (no call) the session's own stream.
#[derive(Clone)]
struct Target {
    session: Arc<Session>,
    sink: Option<mpsc::Sender<Message>>,
    /// The call's cancellation, when there is a call.
    cancel: Option<CancellationToken>,
}

impl Target {
    fn of_call(r: &CallRoute) -> Self {
        Self { session: r.session.clone(), sink: Some(r.sink.clone()), cancel: Some(r.cancel.clone()) }
    }

    fn of_session(session: Arc<Session>) -> Self {
        Self { session, sink: None, cancel: None }
    }

    /// Sends without waiting: on the call's stream while it is open, else the session's.
    fn deliver(&self, msg: Message) -> bool {
        let msg = match &self.sink {
            Some(tx) => match tx.try_send(msg) {
                Ok(()) => return true,
                Err(mpsc::error::TrySendError::Full(m) | mpsc::error::TrySendError::Closed(m)) => m,
            },
            None => msg,
        };
        self.session.push(msg)
    }

    /// Sends a request, waiting for room on the call's stream.
    async fn send(&self, msg: Message) -> bool {
        match &self.sink {
            Some(tx) => match tx.send(msg).await {
                Ok(()) => true,
                Err(mpsc::error::SendError(m)) => self.session.push(m),
            },
            None => self.session.push(msg),
        }
    }
}

/// A server→client request waiting for the client's answer.
struct ServerRequest {
    target: Target,
    /// The id the client sees.
    ours: RequestId,
    /// Fires when the server cancels its request.
    withdrawn: CancellationToken,
}

/// The MCP router shared by every front door.
pub struct Hub {
    me: Weak<Hub>,
    backends: RwLock<BTreeMap<Arc<str>, Arc<Backend>>>,
    catalog: RwLock<Arc<Catalog>>,
    pub sessions: Sessions,
    calls: DashMap<u64, CallRoute>,
    next_call: AtomicU64,
    /// Server→client requests in flight, by (connection, the server's id).
    server_requests: DashMap<(u64, RequestId), ServerRequest>,
    next_instance: AtomicU64,
    identity: ClientIdentity,
    settings: HubSettings,
    shutdown: CancellationToken,
    /// Policy, registry, limits, audit and metrics.
    pub gate: Arc<Gate>,
    /// Stateless (2026-07-28) calls waiting for their client's input.
    pub stateless: super::stateless::Parked,
    /// Tasks created through the aggregate endpoint, and by whom.
    tasks: TaskBook,
}

/// Prefix of the progress tokens the gateway substitutes upstream.
const PROGRESS_PREFIX: &str = "gh-progress-";

impl Hub {
    pub fn new(settings: HubSettings, gate: Arc<Gate>) -> Arc<Self> {
        let identity = ClientIdentity {
            client_info: json!({ "name": "gatehouse", "title": "Gatehouse", "version": env!("CARGO_PKG_VERSION") }),
            capabilities: json!({ "roots": { "listChanged": true }, "sampling": {}, "elicitation": { "form": {}, "url": {} } }),
            protocol_version: mcp::LATEST_VERSION.to_owned(),
        };
        let hub = Arc::new_cyclic(|me| Self {
            me: me.clone(),
            backends: RwLock::new(BTreeMap::new()),
            catalog: RwLock::new(Arc::new(Catalog::default())),
            sessions: Sessions::new(settings.max_sessions, settings.session_idle_timeout).with_replay(settings.replay_events),
            calls: DashMap::new(),
            next_call: AtomicU64::new(1),
            server_requests: DashMap::new(),
            next_instance: AtomicU64::new(1),
            identity,
            settings,
            shutdown: CancellationToken::new(),
            gate,
            stateless: super::stateless::Parked::default(),
            tasks: TaskBook::default(),
        });
        hub.spawn_reaper();
        hub
    }

    fn spawn_reaper(self: &Arc<Self>) {
        let weak = Arc::downgrade(self);
        let stop = self.shutdown.clone();
        // Isolated processes idle out on their own clock; check them at least every few seconds.
        let every = (self.settings.session_idle_timeout / 4).clamp(Duration::from_secs(1), Duration::from_secs(5));
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tokio::select! {
                    () = stop.cancelled() => break,
                    _ = tick.tick() => {}
                }
                let Some(hub) = weak.upgrade() else { break };
                let n = hub.sessions.reap();
                if n > 0 {
                    tracing::debug!(reaped = n, "ended idle MCP sessions");
                }
                for b in hub.backends() {
                    for inst in b.pool.take_idle(b.options.process_idle) {
                        tracing::info!(backend = %b.name, "stopping an isolated process that sat idle");
                        tokio::spawn(async move { inst.upstream.shutdown().await });
                    }
                }
            }
        });
    }

    pub fn settings(&self) -> &HubSettings {
        &self.settings
    }

    /// Starts a backend; it connects in the background and joins the catalog
    /// when ready. A backend that fails to start is retried by its supervisor
    /// and never stops the hub.
    pub fn add_backend(self: &Arc<Self>, spec: UpstreamSpec) -> Arc<Backend> {
        self.add_backend_with(spec, BackendOptions::default())
    }

    /// [`Hub::add_backend`] with process isolation options.
    pub fn add_backend_with(self: &Arc<Self>, spec: UpstreamSpec, options: BackendOptions) -> Arc<Backend> {
        let (backend, rx) = self.new_backend(spec, None, options);
        if let Some(old) = self.backends.write().insert(backend.name.clone(), backend.clone()) {
            tokio::spawn(async move { old.shut_down().await });
        }
        self.spawn_backend_tasks(&backend, rx);
        backend
    }

    fn new_backend(
        &self,
        spec: UpstreamSpec,
        agent: Option<Arc<str>>,
        options: BackendOptions,
    ) -> (Arc<Backend>, mpsc::Receiver<UpstreamEvent>) {
        let (tx, rx) = mpsc::channel(256);
        let name: Arc<str> = Arc::from(spec.name.as_str());
        let upstream = Upstream::start(spec, self.identity.clone(), tx);
        let shared = Arc::new(Instance::new(self.next_instance.fetch_add(1, Ordering::Relaxed), upstream.clone(), None));
        let backend = Arc::new(Backend {
            name,
            upstream,
            agent,
            catalog: RwLock::default(),
            refresh: Notify::new(),
            shared,
            options,
            pool: Pool::default(),
        });
        (backend, rx)
    }

    /// Starts a local server of agent `agent` as a backend, unless a backend
    /// of that name exists already: that one is returned in `Err`, untouched.
    pub fn add_agent_backend(self: &Arc<Self>, spec: UpstreamSpec, agent: Arc<str>) -> Result<Arc<Backend>, Arc<Backend>> {
        let name: Arc<str> = Arc::from(spec.name.as_str());
        let (backend, rx) = {
            let mut backends = self.backends.write();
            if let Some(existing) = backends.get(&name) {
                return Err(existing.clone());
            }
            let (backend, rx) = self.new_backend(spec, Some(agent), BackendOptions::default());
            backends.insert(name, backend.clone());
            (backend, rx)
        };
        self.spawn_backend_tasks(&backend, rx);
        Ok(backend)
    }

    /// Removes exactly `backend` (not a later backend of the same name): its
    /// tools leave the catalog at once, `list_changed` fans out, and its
    /// connection shuts down in the background. `false` when it was gone.
    pub fn detach_backend(&self, backend: &Arc<Backend>) -> bool {
        {
            let mut backends = self.backends.write();
            match backends.get(&backend.name) {
                Some(cur) if Arc::ptr_eq(cur, backend) => {
                    backends.remove(&backend.name);
                }
                _ => return false,
            }
        }
        self.rebuild_catalog();
        self.notify_list_changed(&backend.name);
        let b = backend.clone();
        tokio::spawn(async move { b.shut_down().await });
        true
    }

    /// Stops and removes a backend.
    pub async fn remove_backend(&self, name: &str) -> bool {
        let removed = self.backends.write().remove(name);
        match removed {
            Some(b) => {
                b.shut_down().await;
                self.rebuild_catalog();
                self.notify_list_changed(name);
                true
            }
            None => false,
        }
    }

    pub fn backend(&self, name: &str) -> Option<Arc<Backend>> {
        self.backends.read().get(name).cloned()
    }

    pub fn backends(&self) -> Vec<Arc<Backend>> {
        self.backends.read().values().cloned().collect()
    }

    pub fn catalog(&self) -> Arc<Catalog> {
        self.catalog.read().clone()
    }

    /// Stops every backend and ends every session.
    pub async fn shutdown(&self) {
        self.shutdown.cancel();
        self.sessions.close_all();
        let backends: Vec<_> = std::mem::take(&mut *self.backends.write()).into_values().collect();
        futures::future::join_all(backends.iter().map(|b| b.shut_down())).await;
    }

    fn spawn_backend_tasks(self: &Arc<Self>, backend: &Arc<Backend>, rx: mpsc::Receiver<UpstreamEvent>) {
        self.spawn_events(backend, &backend.shared, rx);
        // Catalog refresher: coalesces bursts of list_changed into one fetch.
        let hub = Arc::downgrade(self);
        let b = backend.clone();
        let stop = self.shutdown.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    () = stop.cancelled() => break,
                    () = b.refresh.notified() => {}
                }
                let Some(hub) = hub.upgrade() else { break };
                if hub.backend(&b.name).is_none_or(|cur| !Arc::ptr_eq(&cur, &b)) {
                    break;
                }
                hub.refresh_backend(&b).await;
            }
        });
    }

    /// Handles what one connection of a backend sends on its own. Never
    /// blocks on a client; slow work is spawned.
    fn spawn_events(&self, backend: &Arc<Backend>, inst: &Arc<Instance>, mut rx: mpsc::Receiver<UpstreamEvent>) {
        let hub = self.me.clone();
        let (b, inst) = (backend.clone(), inst.clone());
        tokio::spawn(async move {
            while let Some(ev) = rx.recv().await {
                let Some(hub) = hub.upgrade() else { break };
                match ev {
                    UpstreamEvent::Barrier(ack) => {
                        let _ = ack.send(());
                    }
                    // The catalog comes from the shared connection.
                    UpstreamEvent::Health(Health::Ready) if inst.key.is_none() => b.refresh.notify_one(),
                    UpstreamEvent::Health(h) => tracing::debug!(backend = %b.name, health = ?h, "backend health changed"),
                    UpstreamEvent::Notification { method, params, context } => {
                        hub.on_backend_notification(&b, &inst, method, params, context);
                    }
                    UpstreamEvent::Request { request, context, reply } => {
                        let (b, inst) = (b.clone(), inst.clone());
                        tokio::spawn(async move {
                            let answer = hub.on_backend_request(&b, &inst, request, context).await;
                            let _ = reply.send(answer);
                        });
                    }
                }
            }
        });
    }

    /// The connection `session`'s calls to `b` run on, started when isolation asks for one.
    fn instance_for(&self, b: &Arc<Backend>, session: &Session) -> Result<Arc<Instance>, ErrorObject> {
        let key = match b.options.isolation {
            Isolation::Shared => return Ok(b.shared.clone()),
            Isolation::Session => InstanceKey::Session(session.id.clone()),
            Isolation::User => InstanceKey::User(session.owner.clone()),
        };
        let mut events = None;
        let made = b.pool.get_or_start(&key, b.options.max_processes, &b.name, || {
            let (tx, rx) = mpsc::channel(256);
            events = Some(rx);
            let upstream = Upstream::start(b.upstream.spec().clone(), self.identity.clone(), tx);
            Arc::new(Instance::new(self.next_instance.fetch_add(1, Ordering::Relaxed), upstream, Some(key.clone())))
        });
        match made {
            Ok((inst, started)) => {
                if let (true, Some(rx)) = (started, events) {
                    tracing::info!(backend = %b.name, isolation = b.options.isolation.as_str(), "started an isolated process");
                    self.spawn_events(b, &inst, rx);
                }
                Ok(inst)
            }
            Err(full) => Err(ErrorObject::new(code::UPSTREAM_UNAVAILABLE, format!("{full}; try again later"))
                .with_data(json!({ "backend": &*b.name, "reason": "max_processes", "maxProcesses": full.max }))),
        }
    }

    /// Cleans up after a session: its subscriptions, and its own process or
    /// (its user's last session) its user's.
    async fn session_ended(&self, s: &Session) {
        for b in self.backends() {
            for inst in b.instances() {
                for uri in inst.subscriptions.drop_session(&s.id) {
                    let params = to_raw(&json!({ "uri": uri }));
                    let _ = inst.upstream.request(method::RESOURCES_UNSUBSCRIBE, Some(params), CallOptions::default()).await;
                }
            }
            let gone = match b.options.isolation {
                Isolation::Shared => None,
                Isolation::Session => Some(InstanceKey::Session(s.id.clone())),
                Isolation::User => self.sessions.filter(|o| o.owner == s.owner).is_empty().then(|| InstanceKey::User(s.owner.clone())),
            };
            if let Some(inst) = gone.and_then(|k| b.pool.remove(&k)) {
                tracing::info!(backend = %b.name, "stopping the isolated process of an ended session");
                inst.upstream.shutdown().await;
            }
        }
    }

    /// Fetches every list a backend offers and swaps in the new catalog.
    async fn refresh_backend(&self, b: &Arc<Backend>) {
        let Some(init) = b.upstream.status().init else { return };
        let caps = &init.capabilities;
        let has = |k: &str| caps.get(k).is_some_and(|v| !v.is_null());
        let mut next = BackendCatalog::default();
        let old = b.catalog();
        for (kind, m, cap) in [
            (Kind::Tools, method::TOOLS_LIST, "tools"),
            (Kind::Prompts, method::PROMPTS_LIST, "prompts"),
            (Kind::Resources, method::RESOURCES_LIST, "resources"),
            (Kind::Templates, method::RESOURCES_TEMPLATES_LIST, "resources"),
        ] {
            if !has(cap) {
                continue;
            }
            *next.list_mut(kind) = match self.fetch_all(b, m, kind).await {
                Ok(items) => items,
                Err(e) => {
                    tracing::warn!(backend = %b.name, list = m, error = %e, "could not fetch list; keeping the previous one");
                    old.list(kind).clone()
                }
            };
        }
        let changed = [
            (old.tools != next.tools, method::TOOLS_LIST_CHANGED),
            (old.prompts != next.prompts, method::PROMPTS_LIST_CHANGED),
            (old.resources != next.resources || old.templates != next.templates, method::RESOURCES_LIST_CHANGED),
        ];
        tracing::info!(backend = %b.name, tools = next.tools.len(), prompts = next.prompts.len(), resources = next.resources.len(), "backend catalog loaded");
        // The registry learns every tool (risk, pinned definition) before the
        // catalog offers it, so a held tool is never listed even briefly.
        if let Err(e) = self.gate.registry.sync_backend(&b.name, b.agent.as_deref(), &next.tools).await {
            tracing::warn!(backend = %b.name, error = %e, "could not record the backend's tools in the registry");
        }
        *b.catalog.write() = Arc::new(next);
        self.rebuild_catalog();
        for (did, m) in changed {
            if did {
                self.broadcast(|s| self.sees(s, &b.name), &Notification::new(m, None));
            }
        }
    }

    async fn fetch_all(&self, b: &Backend, m: &str, kind: Kind) -> Result<Vec<Map<String, Value>>, CallError> {
        let mut out = Vec::new();
        fetch_pages(&b.upstream, m, kind.result_key(), |item| out.push(item)).await?;
        Ok(out)
    }

    fn rebuild_catalog(&self) {
        let backends = self.backends();
        let snaps: Vec<_> = backends.iter().map(|b| (b.name.clone(), b.catalog())).collect();
        let cat = Catalog::build(snaps.iter().map(|(n, c)| (&**n, &**c)));
        *self.catalog.write() = Arc::new(cat);
    }

    /// Whether aggregate session `s` can see `backend` (agent sharing and
    /// policy, for the user that opened the session).
    fn sees(&self, s: &Session, backend: &str) -> bool {
        s.scope == Scope::Aggregate && self.gate.backend_visible(Asker { principal: &s.principal, client_app: s.client_app() }, backend)
    }

    /// Tells the aggregate sessions that can see `backend` that every list may have changed.
    fn notify_list_changed(&self, backend: &str) {
        self.every_list_changed(|s| self.sees(s, backend));
    }

    /// Tells the sessions whose tool list governance just changed (a tool
    /// enabled, disabled or approved on `backend`; a policy rule, everywhere
    /// when `None`) to list their tools again. Backend-scoped sessions hear it
    /// too: the hub filters their lists as well.
    pub fn notify_tools_changed(&self, backend: Option<&str>) {
        let n = Notification::new(method::TOOLS_LIST_CHANGED, None);
        self.broadcast(
            |s| match (backend, &s.scope) {
                (None, _) => true,
                (Some(b), Scope::Backend(name)) => **name == *b,
                (Some(b), Scope::Aggregate) => self.sees(s, b),
            },
            &n,
        );
    }

    /// Tells every aggregate session that every list may have changed (when
    /// who sees what changed, e.g. an agent's sharing).
    pub fn notify_list_changed_all(&self) {
        self.every_list_changed(|s| s.scope == Scope::Aggregate);
    }

    /// Sends the three `list_changed` notifications to the sessions `pred` picks (picked once).
    fn every_list_changed(&self, pred: impl Fn(&Session) -> bool) {
        for s in self.sessions.filter(pred) {
            for m in [method::TOOLS_LIST_CHANGED, method::PROMPTS_LIST_CHANGED, method::RESOURCES_LIST_CHANGED] {
                s.push(Message::Notification(Notification::new(m, None)));
            }
        }
    }

    fn broadcast(&self, pred: impl Fn(&Session) -> bool, n: &Notification) {
        for s in self.sessions.filter(pred) {
            s.push(Message::Notification(n.clone()));
        }
    }

    // ---- server-initiated traffic -------------------------------------------------------

    fn on_backend_notification(&self, b: &Arc<Backend>, inst: &Instance, m: String, params: Option<Box<RawValue>>, context: Option<u64>) {
        match m.as_str() {
            method::TOOLS_LIST_CHANGED | method::PROMPTS_LIST_CHANGED | method::RESOURCES_LIST_CHANGED => {
                // Aggregate sessions hear about it once the merged catalog changed (refresh_backend).
                b.refresh.notify_one();
                let n = Notification::new(m, params);
                self.broadcast(|s| s.scope == Scope::Backend(b.name.clone()) && inst.serves(s), &n);
            }
            method::PROGRESS => {
                let mut obj = match RawObject::parse(params.as_deref()) {
                    Ok(o) => o,
                    Err(_) => return,
                };
                let call = obj.get_str("progressToken").and_then(|t| t.strip_prefix(PROGRESS_PREFIX).and_then(|n| n.parse::<u64>().ok()));
                let Some(route) = call.and_then(|c| self.calls.get(&c)) else {
                    tracing::debug!(backend = %b.name, "progress for no call in flight; dropped");
                    return;
                };
                if let Some(tok) = &route.progress_token {
                    obj.set("progressToken", tok.clone());
                }
                let _ = route.sink.try_send(Message::Notification(Notification::new(m, Some(obj.to_raw()))));
            }
            method::RESOURCES_UPDATED => {
                let uri = RawObject::parse(params.as_deref()).ok().and_then(|o| o.get_str("uri"));
                let Some(uri) = uri else { return };
                for (sid, exposed) in inst.subscriptions.subscribers(&uri) {
                    let Some(s) = self.sessions.filter(|s| s.id == sid).pop() else { continue };
                    let params = if exposed == uri {
                        params.clone()
                    } else {
                        // The client subscribed by the hub's collision-namespaced URI.
                        let mut obj = RawObject::parse(params.as_deref()).unwrap_or_default();
                        obj.set("uri", to_raw(&exposed));
                        Some(obj.to_raw())
                    };
                    s.push(Message::Notification(Notification::new(m.clone(), params)));
                }
            }
            method::TASKS_STATUS => {
                // Only the session that created the task hears how it goes.
                let Some(id) = RawObject::parse(params.as_deref()).ok().and_then(|o| o.get_str("taskId")) else { return };
                let Some(owner) = self.tasks.owner(&b.name, &id) else {
                    // A task of a backend-scoped session: the backend's own id is the client's.
                    let n = Notification::new(m, params);
                    self.broadcast(|s| s.scope == Scope::Backend(b.name.clone()) && inst.serves(s), &n);
                    return;
                };
                let Some(s) = self.sessions.filter(|s| s.id == owner.session).pop() else { return };
                let params = params.map(|p| tasks::expose_ids(p, &b.name));
                s.push(Message::Notification(Notification::new(m, params)));
            }
            method::CANCELLED => {
                // The server withdraws one of its requests to the client: tell
                // the client under the id it knows.
                let obj = RawObject::parse(params.as_deref()).ok();
                let Some(id) = obj.as_ref().and_then(|o| o.get_as::<RequestId>("requestId")) else { return };
                let Some((_, pending)) = self.server_requests.remove(&(inst.id, id)) else { return };
                pending.withdrawn.cancel();
                pending.target.session.forget_reply(&pending.ours);
                let reason = obj.and_then(|o| o.get_str("reason"));
                pending.target.deliver(cancelled(&pending.ours, reason.as_deref().unwrap_or("cancelled by the server")));
            }
            _ => {
                let level =
                    (m == method::MESSAGE).then(|| RawObject::parse(params.as_deref()).ok().and_then(|o| o.get_str("level"))).flatten();
                let n = Notification::new(m, params);
                if let Some(target) = self.attribute(inst, context, false) {
                    if level.as_deref().is_none_or(|l| target.session.wants_log(l)) {
                        target.deliver(Message::Notification(n));
                    }
                    return;
                }
                self.broadcast(|s| s.scope.sees(&b.name) && inst.serves(s) && level.as_deref().is_none_or(|l| s.wants_log(l)), &n);
            }
        }
    }

    /// Whom a message `inst` sent belongs to: the call the transport names,
    /// else the one session with calls in flight on the connection (a
    /// stateless call parked on its client's input does not count: it asked
    /// already), else (`own_process`) the session whose own process it is.
    fn attribute(&self, inst: &Instance, context: Option<u64>, own_process: bool) -> Option<Target> {
        if let Some(r) = context.and_then(|c| self.calls.get(&c)) {
            return Some(Target::of_call(&r));
        }
        let mut found: Option<Target> = None;
        for r in self.calls.iter().filter(|r| r.instance == inst.id && !self.stateless.holds(&r.session.id)) {
            match &found {
                Some(t) if t.session.id != r.session.id => return None,
                Some(_) => {}
                None => found = Some(Target::of_call(&r)),
            }
        }
        if found.is_some() || !own_process {
            return found;
        }
        let owner = |s: &Session| match &inst.key {
            Some(InstanceKey::Session(id)) => s.id == *id,
            Some(InstanceKey::User(user)) => s.owner == *user,
            None => false,
        };
        let mut sessions = self.sessions.filter(owner);
        (sessions.len() == 1).then(|| Target::of_session(sessions.remove(0)))
    }

    async fn on_backend_request(
        &self,
        b: &Backend,
        inst: &Instance,
        req: Request,
        context: Option<u64>,
    ) -> Result<Box<RawValue>, ErrorObject> {
        let capability = match req.method.as_str() {
            method::SAMPLING_CREATE_MESSAGE => "sampling",
            method::ELICITATION_CREATE => "elicitation",
            method::ROOTS_LIST => "roots",
            other => return Err(ErrorObject::method_not_found(other)),
        };
        let Some(target) = self.attribute(inst, context, true) else {
            if capability == "roots" {
                return Ok(to_raw(&json!({ "roots": [] })));
            }
            tracing::debug!(backend = %b.name, method = %req.method, "no single client session to route a server request to");
            return Err(ErrorObject::new(code::INTERNAL_ERROR, format!("No client session to route {} to", req.method)));
        };
        let session = target.session.clone();
        if !session.client_can(capability) {
            if capability == "roots" {
                return Ok(to_raw(&json!({ "roots": [] })));
            }
            // 2026-07-28 names this refusal; the session eras answer method-not-found.
            let (code, message) = if mcp::is_stateless_version(&session.protocol_version) {
                (code::MISSING_CLIENT_CAPABILITY, format!("Missing required client capability: {capability}"))
            } else {
                (code::METHOD_NOT_FOUND, format!("Method not found: {}", req.method))
            };
            return Err(ErrorObject::new(code, message).with_data(json!({
                "reason": format!("the client did not declare the {capability} capability"),
                "requiredCapabilities": { capability: {} },
            })));
        }
        let (ours, rx) = session.expect_reply();
        let withdrawn = CancellationToken::new();
        let key = (inst.id, req.id.clone());
        self.server_requests
            .insert(key.clone(), ServerRequest { target: target.clone(), ours: ours.clone(), withdrawn: withdrawn.clone() });
        let out = Message::Request(Request { id: ours.clone(), method: req.method, params: req.params });
        let answer = if target.send(out).await {
            let call_ended = async {
                match &target.cancel {
                    Some(t) => t.cancelled().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                r = rx => r.unwrap_or_else(|_| Err(ErrorObject::new(code::INTERNAL_ERROR, "The client session ended"))),
                () = withdrawn.cancelled() => Err(ErrorObject::new(code::INTERNAL_ERROR, "Request cancelled")),
                () = call_ended => {
                    target.deliver(cancelled(&ours, "the call that caused this request was cancelled"));
                    Err(ErrorObject::new(code::INTERNAL_ERROR, "The client cancelled the call that caused this request"))
                }
                () = tokio::time::sleep(self.settings.request_timeout) => {
                    target.deliver(cancelled(&ours, "the client did not answer in time"));
                    Err(ErrorObject::new(code::INTERNAL_ERROR, "The client did not answer in time"))
                }
            }
        } else {
            Err(ErrorObject::new(code::INTERNAL_ERROR, "The client's stream closed"))
        };
        self.server_requests.remove(&key);
        session.forget_reply(&ours);
        answer
    }

    // ---- client requests ----------------------------------------------------------------

    /// Handles a client notification.
    pub async fn handle_notification(&self, session: &Arc<Session>, n: Notification) {
        match n.method.as_str() {
            method::INITIALIZED => {}
            method::CANCELLED => {
                if let Ok(obj) = RawObject::parse(n.params.as_deref())
                    && let Some(id) = obj.get_as::<RequestId>("requestId")
                {
                    session.cancel_call(&id);
                }
            }
            _ => {
                // Other client notifications (e.g. roots/list_changed) go to the
                // backends the session sees.
                for b in self.backends().into_iter().filter(|b| session.scope.sees(&b.name)) {
                    if b.upstream.status().health == Health::Ready {
                        let _ = b.upstream.notify(&n.method, n.params.clone()).await;
                    }
                }
            }
        }
    }

    /// Handles a client response to a server→client request.
    pub fn handle_response(&self, session: &Session, r: Response) {
        if let Some(id) = r.id
            && !session.deliver_reply(&id, r.payload)
        {
            tracing::debug!(session = %session.id, %id, "answer to no pending request; dropped");
        }
    }

    /// [`Hub::handle_request`], and `None` instead of the answer when the
    /// client cancelled the request meanwhile (`notifications/cancelled`).
    pub async fn answer(
        &self,
        session: &Arc<Session>,
        principal: &Principal,
        req: Request,
        sink: &mpsc::Sender<Message>,
    ) -> Option<Response> {
        let resp = self.handle_request(session, principal, req, sink).await;
        let withdrawn = resp.id.as_ref().is_some_and(|id| session.take_withdrawn(id));
        (!withdrawn).then_some(resp)
    }

    /// Handles one client request; messages about it before its response
    /// (progress, logging, sampling, ...) go to `sink`.
    pub async fn handle_request(
        &self,
        session: &Arc<Session>,
        principal: &Principal,
        req: Request,
        sink: &mpsc::Sender<Message>,
    ) -> Response {
        let started = Instant::now();
        let id = req.id.clone();
        let method = req.method.clone();
        let who = Asker { principal, client_app: session.client_app() };
        let mut note = Note::default();
        let result = match &session.scope {
            Scope::Aggregate => self.dispatch_aggregate(session, who, req, sink, &mut note).await,
            Scope::Backend(name) => {
                let name = name.clone();
                note.backend = Some(name.to_string());
                self.dispatch_backend(session, who, &name, req, sink, &mut note).await
            }
        };
        self.gate.finish(who, &session.id, &method, note, &result, started);
        match result {
            Ok(v) => Response::ok(id, v),
            Err(e) => Response::err(Some(id), e),
        }
    }

    async fn dispatch_aggregate(
        &self,
        session: &Arc<Session>,
        who: Asker<'_>,
        req: Request,
        sink: &mpsc::Sender<Message>,
        note: &mut Note,
    ) -> Result<Box<RawValue>, ErrorObject> {
        match req.method.as_str() {
            method::PING => Ok(to_raw(&json!({}))),
            method::INITIALIZE => Err(ErrorObject::invalid_request("the session is already initialized")),
            method::TOOLS_LIST => self.list(who, &req, Kind::Tools),
            method::PROMPTS_LIST => self.list(who, &req, Kind::Prompts),
            method::RESOURCES_LIST => self.list(who, &req, Kind::Resources),
            method::RESOURCES_TEMPLATES_LIST => self.list(who, &req, Kind::Templates),
            method::TOOLS_CALL | method::PROMPTS_GET => {
                let mut params = params_object(&req)?;
                let name = params.get_str("name").ok_or_else(|| ErrorObject::invalid_params("\"name\" must be a string"))?;
                note.target = Some(name.clone());
                let cat = self.catalog();
                let is_call = req.method == method::TOOLS_CALL;
                let (route, what) = if is_call { (cat.tool(&name), "tool") } else { (cat.prompt(&name), "prompt") };
                let route = route.cloned().filter(|r| self.gate.backend_visible(who, &r.backend)).ok_or_else(|| unknown(what, &name))?;
                drop(cat);
                note.backend = Some(route.backend.to_string());
                if is_call {
                    note.arguments = params.get_as::<Value>("arguments");
                    self.check_call(who, &route.backend, &route.original, &name, note)?;
                }
                params.set("name", to_raw(&route.original));
                let as_task = is_call && params.get_as::<Value>("task").is_some_and(|t| t.is_object());
                let result = self.forward(session, &route.backend, &req, Some(params), sink).await?;
                match tasks::created(&result).filter(|_| as_task) {
                    Some((id, ttl)) => {
                        self.tasks.record(&route.backend, &id, &session.owner, &session.id, ttl);
                        Ok(tasks::expose_ids(result, &route.backend))
                    }
                    None => Ok(result),
                }
            }
            method::TASKS_GET | method::TASKS_RESULT | method::TASKS_CANCEL => {
                let mut params = params_object(&req)?;
                let exposed = params.get_str("taskId").ok_or_else(|| ErrorObject::invalid_params("\"taskId\" must be a string"))?;
                note.target = Some(exposed.clone());
                let (backend, id) = tasks::split(&exposed)
                    .filter(|(b, id)| self.tasks.owned_by(b, id, &session.owner) && self.gate.backend_visible(who, b))
                    .ok_or_else(|| ErrorObject::invalid_params(format!("Task not found: {exposed}")))?;
                note.backend = Some(backend.to_owned());
                params.set("taskId", to_raw(&id));
                let result = self.forward(session, backend, &req, Some(params), sink).await?;
                Ok(tasks::expose_ids(result, backend))
            }
            method::TASKS_LIST => self.list_tasks(session, who).await,
            method::RESOURCES_READ | method::RESOURCES_SUBSCRIBE | method::RESOURCES_UNSUBSCRIBE => {
                let mut params = params_object(&req)?;
                let uri = params.get_str("uri").ok_or_else(|| ErrorObject::invalid_params("\"uri\" must be a string"))?;
                note.target = Some(uri.clone());
                let route = self.catalog().resource(&uri).filter(|r| self.gate.backend_visible(who, &r.backend)).ok_or_else(|| {
                    ErrorObject::new(code::RESOURCE_NOT_FOUND, format!("Resource not found: {uri}")).with_data(json!({ "uri": uri }))
                })?;
                note.backend = Some(route.backend.to_string());
                if route.original != uri {
                    params.set("uri", to_raw(&route.original));
                }
                if req.method != method::RESOURCES_READ {
                    return self.subscription(session, &route.backend, &route.original, &uri, &req, Some(params), sink).await;
                }
                let result = self.forward(session, &route.backend, &req, Some(params), sink).await?;
                if route.original == uri {
                    return Ok(result);
                }
                // The client asked by the namespaced URI: answer in its terms.
                Ok(rename_contents(result, &route.original, &uri))
            }
            method::COMPLETION_COMPLETE => {
                let mut params = params_object(&req)?;
                let mut reference =
                    params.get_as::<RawObject>("ref").ok_or_else(|| ErrorObject::invalid_params("\"ref\" must be an object"))?;
                let backend = match reference.get_str("type").as_deref() {
                    Some("ref/prompt") => {
                        let name = reference.get_str("name").ok_or_else(|| ErrorObject::invalid_params("\"ref.name\" must be a string"))?;
                        let route = self
                            .catalog()
                            .prompt(&name)
                            .cloned()
                            .filter(|r| self.gate.backend_visible(who, &r.backend))
                            .ok_or_else(|| unknown("prompt", &name))?;
                        reference.set("name", to_raw(&route.original));
                        route.backend
                    }
                    Some("ref/resource") => {
                        let uri = reference.get_str("uri").ok_or_else(|| ErrorObject::invalid_params("\"ref.uri\" must be a string"))?;
                        let route = self
                            .catalog()
                            .resource(&uri)
                            .filter(|r| self.gate.backend_visible(who, &r.backend))
                            .ok_or_else(|| unknown("resource", &uri))?;
                        if route.original != uri {
                            reference.set("uri", to_raw(&route.original));
                        }
                        route.backend
                    }
                    _ => return Err(ErrorObject::invalid_params("\"ref.type\" must be \"ref/prompt\" or \"ref/resource\"")),
                };
                params.set("ref", reference.to_raw());
                self.forward(session, &backend, &req, Some(params), sink).await
            }
            method::LOGGING_SET_LEVEL => {
                let params = params_object(&req)?;
                let level = params.get_str("level").ok_or_else(|| ErrorObject::invalid_params("\"level\" must be a string"))?;
                session.set_log_level(level);
                // Connections are shared: ask them for the most verbose level
                // any session wants and filter per session on the way back.
                for b in self.backends().into_iter().filter(|b| self.gate.backend_visible(who, &b.name)) {
                    let wants_logging = b.status().init.is_some_and(|i| i.capabilities.get("logging").is_some());
                    let upstream = match b.options.isolation {
                        Isolation::Shared => Some(b.upstream.clone()),
                        _ => self.instance_for(&b, session).ok().map(|i| i.upstream.clone()),
                    };
                    if let (true, Some(up)) = (wants_logging, upstream) {
                        let _ =
                            up.request(method::LOGGING_SET_LEVEL, Some(to_raw(&json!({ "level": "debug" }))), CallOptions::default()).await;
                    }
                }
                Ok(to_raw(&json!({})))
            }
            other => Err(ErrorObject::method_not_found(other)),
        }
    }

    /// `tasks/list` on the aggregate endpoint: the caller's own tasks on
    /// every backend it sees that lists tasks, newest pages first per backend.
    async fn list_tasks(&self, session: &Arc<Session>, who: Asker<'_>) -> Result<Box<RawValue>, ErrorObject> {
        let mut all: Vec<Value> = Vec::new();
        for b in self.backends().into_iter().filter(|b| self.gate.backend_visible(who, &b.name)) {
            let lists = b.status().init.is_some_and(|i| i.capabilities.pointer("/tasks/list").is_some());
            if !lists {
                continue;
            }
            let Ok(inst) = self.instance_for(&b, session) else { continue };
            // A failing page ends this backend's part of the list; what came before stays.
            let _ = fetch_pages(&inst.upstream, method::TASKS_LIST, "tasks", |mut t| {
                let Some(id) = t.get("taskId").and_then(Value::as_str).map(str::to_owned) else { return };
                if self.tasks.owned_by(&b.name, &id, &session.owner) {
                    t.insert("taskId".into(), Value::String(tasks::exposed(&b.name, &id)));
                    all.push(Value::Object(t));
                }
            })
            .await;
        }
        Ok(to_raw(&json!({ "tasks": all })))
    }

    async fn dispatch_backend(
        &self,
        session: &Arc<Session>,
        who: Asker<'_>,
        backend: &str,
        req: Request,
        sink: &mpsc::Sender<Message>,
        note: &mut Note,
    ) -> Result<Box<RawValue>, ErrorObject> {
        if !self.gate.backend_visible(who, backend) {
            return Err(unknown("backend", backend));
        }
        match req.method.as_str() {
            method::PING => Ok(to_raw(&json!({}))),
            method::INITIALIZE => Err(ErrorObject::invalid_request("the session is already initialized")),
            method::TOOLS_LIST => {
                let result = self.forward(session, backend, &req, None, sink).await?;
                Ok(self.filter_backend_tools(who, backend, result))
            }
            method::TOOLS_CALL => {
                let params = params_object(&req)?;
                let name = params.get_str("name").ok_or_else(|| ErrorObject::invalid_params("\"name\" must be a string"))?;
                note.arguments = params.get_as::<Value>("arguments");
                let exposed = super::naming::namespaced(backend, &name, |_| false);
                note.target = Some(name.clone());
                self.check_call(who, backend, &name, &exposed, note)?;
                // Forwarded untouched unless a progress token must be rewritten.
                let params = req.params.as_ref().is_some_and(|p| p.get().contains("progressToken")).then_some(params);
                self.forward(session, backend, &req, params, sink).await
            }
            m => {
                if (m == method::RESOURCES_SUBSCRIBE || m == method::RESOURCES_UNSUBSCRIBE)
                    && let Some(uri) = params_object(&req)?.get_str("uri")
                {
                    return self.subscription(session, backend, &uri, &uri, &req, None, sink).await;
                }
                let params = match &req.params {
                    Some(p) if p.get().contains("progressToken") => Some(params_object(&req)?),
                    _ => None,
                };
                self.forward(session, backend, &req, params, sink).await
            }
        }
    }

    /// Applies governance to a `tools/call`, noting the decision for the audit record.
    fn check_call(&self, who: Asker<'_>, backend: &str, tool: &str, exposed: &str, note: &mut Note) -> Result<(), ErrorObject> {
        match self.gate.check_call(who, backend, tool, exposed) {
            Ok(rule) => {
                note.allowed = Some(true);
                note.rule = rule;
                Ok(())
            }
            Err(refusal) => {
                note.allowed = Some(false);
                note.rule = refusal.rule;
                Err(refusal.error)
            }
        }
    }

    /// Drops from a backend's own `tools/list` result the tools this caller may not call.
    fn filter_backend_tools(&self, who: Asker<'_>, backend: &str, result: Box<RawValue>) -> Box<RawValue> {
        let Ok(mut obj) = RawObject::parse(Some(&result)) else { return result };
        let Some(tools) = obj.get_as::<Vec<Map<String, Value>>>("tools") else { return result };
        let before = tools.len();
        let kept: Vec<_> = tools
            .into_iter()
            .filter(|t| {
                let Some(name) = t.get("name").and_then(Value::as_str) else { return false };
                let exposed = super::naming::namespaced(backend, name, |_| false);
                self.gate.decide_tool(who, backend, name, &exposed, Some(t)).is_ok()
            })
            .collect();
        if kept.len() == before {
            return result;
        }
        obj.set("tools", to_raw(&kept));
        obj.to_raw()
    }

    /// Serves one page of a merged list, as this caller may see it.
    fn list(&self, who: Asker<'_>, req: &Request, kind: Kind) -> Result<Box<RawValue>, ErrorObject> {
        let cursor = match &req.params {
            Some(p) => RawObject::parse(Some(p)).map_err(ErrorObject::invalid_params)?.get_as::<Option<String>>("cursor").flatten(),
            None => None,
        };
        let offset = match cursor {
            Some(c) => catalog::decode_cursor(&c).ok_or_else(|| ErrorObject::invalid_params("unknown cursor"))?,
            None => 0,
        };
        let cat = self.catalog();
        let visible: Vec<&Value> = cat
            .items_with_origin(kind)
            .filter(|(item, origin)| match kind {
                Kind::Tools => {
                    let exposed = item.get("name").and_then(Value::as_str).unwrap_or_default();
                    self.gate.decide_tool(who, &origin.backend, &origin.original, exposed, item.as_object()).is_ok()
                }
                _ => self.gate.backend_visible(who, &origin.backend),
            })
            .map(|(item, _)| item)
            .collect();
        let (items, next) = catalog::page(&visible, offset, catalog::PAGE_SIZE);
        #[derive(serde::Serialize)]
        struct Page<'a> {
            #[serde(flatten)]
            items: BTreeMap<&'static str, &'a [&'a Value]>,
            #[serde(rename = "nextCursor", skip_serializing_if = "Option::is_none")]
            next: Option<String>,
        }
        Ok(to_raw(&Page { items: BTreeMap::from([(kind.result_key(), items)]), next }))
    }

    /// Subscribes `session` to (or unsubscribes it from) `original` on
    /// `backend`, which hears of it only for the URI's first subscriber on a
    /// connection (and its last unsubscriber). `exposed` is the URI the client used.
    #[allow(clippy::too_many_arguments)]
    async fn subscription(
        &self,
        session: &Arc<Session>,
        backend: &str,
        original: &str,
        exposed: &str,
        req: &Request,
        params: Option<RawObject>,
        sink: &mpsc::Sender<Message>,
    ) -> Result<Box<RawValue>, ErrorObject> {
        let b = self.backend(backend).ok_or_else(|| not_configured(backend))?;
        let inst = self.instance_for(&b, session)?;
        let subs = &inst.subscriptions;
        if req.method == method::RESOURCES_SUBSCRIBE {
            session.subscribe(original);
            if !subs.add_subscriber(original, &session.id, exposed) {
                return Ok(to_raw(&json!({})));
            }
            let result = self.forward_to(session, &b, &inst, req, params, sink).await;
            if result.is_err() {
                subs.remove_subscriber(original, &session.id);
            }
            result
        } else {
            session.unsubscribe(original);
            if !subs.remove_subscriber(original, &session.id) {
                return Ok(to_raw(&json!({})));
            }
            self.forward_to(session, &b, &inst, req, params, sink).await
        }
    }

    /// Forwards a request to `backend`. `params` is the rewritten params
    /// object, or `None` to forward the client's params untouched.
    async fn forward(
        &self,
        session: &Arc<Session>,
        backend: &str,
        req: &Request,
        params: Option<RawObject>,
        sink: &mpsc::Sender<Message>,
    ) -> Result<Box<RawValue>, ErrorObject> {
        let b = self.backend(backend).ok_or_else(|| not_configured(backend))?;
        let inst = self.instance_for(&b, session)?;
        self.forward_to(session, &b, &inst, req, params, sink).await
    }

    /// Forwards a request on one connection of `b`.
    async fn forward_to(
        &self,
        session: &Arc<Session>,
        b: &Backend,
        inst: &Instance,
        req: &Request,
        params: Option<RawObject>,
        sink: &mpsc::Sender<Message>,
    ) -> Result<Box<RawValue>, ErrorObject> {
        let call = self.next_call.fetch_add(1, Ordering::Relaxed);
        let mut progress_token = None;
        let params = match params {
            None => req.params.clone(),
            Some(mut obj) => {
                if let Some(mut meta) = obj.get_as::<RawObject>("_meta")
                    && let Some(tok) = meta.remove("progressToken")
                {
                    meta.set("progressToken", to_raw(&format!("{PROGRESS_PREFIX}{call}")));
                    obj.set("_meta", meta.to_raw());
                    progress_token = Some(tok);
                }
                Some(obj.to_raw())
            }
        };
        let cancel = session.begin_call(req.id.clone());
        let _busy = inst.begin();
        let seat = match &inst.floor {
            Some(floor) => {
                let holder = if session.client_can("sampling") || session.client_can("elicitation") {
                    Holder::Session(session.id.clone())
                } else {
                    Holder::Open
                };
                tokio::select! {
                    seat = floor.enter(holder) => Some(Arc::new(seat)),
                    () = cancel.cancelled() => {
                        session.end_call(&req.id);
                        return Err(CallError::Cancelled.to_error_object(&b.name));
                    }
                    () = tokio::time::sleep(b.upstream.request_timeout()) => {
                        session.end_call(&req.id);
                        return Err(ErrorObject::new(
                            code::UPSTREAM_TIMEOUT,
                            format!(
                                "Backend '{}' stayed busy with another client's calls that may ask their client for input; \
                                 try again, or give the backend isolation = \"session\"",
                                b.name
                            ),
                        )
                        .with_data(json!({ "backend": &*b.name, "reason": "busy" })));
                    }
                }
            }
            None => None,
        };
        self.calls.insert(
            call,
            CallRoute {
                session: session.clone(),
                sink: sink.clone(),
                instance: inst.id,
                progress_token,
                cancel: cancel.clone(),
                seat: seat.clone(),
            },
        );
        let opts = CallOptions { timeout: None, cancel: Some(cancel), context: Some(call) };
        let upstream = &inst.upstream;
        let events_before = upstream.events_emitted();
        let result = upstream.request(&req.method, params, opts).await;
        if upstream.events_emitted() != events_before {
            // Progress or logging the backend sent before its answer must reach
            // the client before the answer does.
            upstream.flush_events(FLUSH_WAIT).await;
        }
        session.end_call(&req.id);
        self.calls.remove(&call);
        result.map_err(|e| e.to_error_object(&b.name))
    }

    /// Gives up the floor seats of `session_id`'s calls while they wait on
    /// their client (parked 2026-07-28 calls), so an abandoned call does not
    /// keep other clients off a shared connection.
    pub fn suspend_seats(&self, session_id: &str) {
        for r in self.calls.iter().filter(|r| r.session.id == session_id) {
            if let Some(seat) = &r.seat {
                seat.suspend();
            }
        }
    }

    /// Takes back the seats [`Hub::suspend_seats`] gave up, before the
    /// client's answers reach the backend.
    pub async fn resume_seats(&self, session_id: &str) {
        let seats: Vec<_> = self.calls.iter().filter(|r| r.session.id == session_id).filter_map(|r| r.seat.clone()).collect();
        for seat in seats {
            seat.resume().await;
        }
    }

    /// Answers a client's `initialize`: negotiates the version, builds the
    /// result and creates the session owned by `owner`.
    pub async fn start_session(
        &self,
        principal: &Arc<Principal>,
        scope: Scope,
        req: &Request,
    ) -> Result<(Arc<Session>, Box<RawValue>), InitError> {
        if let Scope::Backend(name) = &scope
            && !self.gate.backend_visible(Asker { principal, client_app: None }, name)
        {
            return Err(InitError::Rpc(unknown("backend", name)));
        }
        #[derive(serde::Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct InitParams {
            protocol_version: String,
            #[serde(default)]
            capabilities: Value,
            #[serde(default)]
            client_info: Value,
        }
        let params: InitParams = req.params_as().map_err(InitError::Rpc)?;
        let version = mcp::negotiate(&params.protocol_version);
        let result = self.initialize_result(&scope, version).await.map_err(InitError::Rpc)?;
        let session = self.sessions.create(principal.clone(), scope, version.to_owned(), params.client_info, params.capabilities)?;
        let hub = self.me.clone();
        let ended = session.clone();
        tokio::spawn(async move {
            ended.closed.cancelled().await;
            if let Some(hub) = hub.upgrade() {
                hub.session_ended(&ended).await;
            }
        });
        tracing::debug!(session = %session.id, user = %session.owner, version, client = %session.client_info, "MCP session started");
        Ok((session, result))
    }

    /// The `initialize` result for a new session.
    pub async fn initialize_result(&self, scope: &Scope, version: &str) -> Result<Box<RawValue>, ErrorObject> {
        match scope {
            Scope::Aggregate => {
                let instructions: Vec<String> = self
                    .backends()
                    .iter()
                    .filter_map(|b| b.status().init.and_then(|i| i.instructions.clone()).map(|t| format!("[{}] {t}", b.name)))
                    .collect();
                let mut result = json!({
                    "protocolVersion": version,
                    "capabilities": {
                        "tools": { "listChanged": true },
                        "prompts": { "listChanged": true },
                        "resources": { "subscribe": true, "listChanged": true },
                        "logging": {},
                        "completions": {},
                    },
                    "serverInfo": { "name": "gatehouse", "title": "Gatehouse", "version": env!("CARGO_PKG_VERSION") },
                });
                // Tasks (2025-11-25) when a backend runs tool calls as tasks.
                let tasks = self
                    .backends()
                    .iter()
                    .any(|b| b.status().init.is_some_and(|i| i.capabilities.pointer("/tasks/requests/tools/call").is_some()));
                if tasks && version >= mcp::V2025_11_25 {
                    result["capabilities"]["tasks"] = json!({ "list": {}, "cancel": {}, "requests": { "tools": { "call": {} } } });
                }
                if !instructions.is_empty() {
                    result["instructions"] = Value::String(instructions.join("\n\n"));
                }
                Ok(to_raw(&result))
            }
            Scope::Backend(name) => {
                let b = self.backend(name).ok_or_else(|| unknown("backend", name))?;
                let info = b.upstream.wait_ready(INIT_WAIT).await.map_err(|e| e.to_error_object(name))?;
                let mut obj = RawObject::parse(Some(&info.raw)).map_err(ErrorObject::internal)?;
                obj.set("protocolVersion", to_raw(version));
                Ok(obj.to_raw())
            }
        }
    }
}

/// Pages through list method `m` of `up` (at most [`MAX_PAGES`] pages),
/// handing each object of the result's `key` array to `each` as it arrives.
async fn fetch_pages(up: &Upstream, m: &str, key: &str, mut each: impl FnMut(Map<String, Value>)) -> Result<(), CallError> {
    let mut cursor: Option<String> = None;
    for _ in 0..MAX_PAGES {
        let params = cursor.as_ref().map(|c| to_raw(&json!({ "cursor": c })));
        let raw = up.request(m, params, CallOptions::default()).await?;
        let mut page: Map<String, Value> =
            serde_json::from_str(raw.get()).map_err(|e| CallError::Unavailable(format!("bad {m} result: {e}")))?;
        if let Some(Value::Array(items)) = page.remove(key) {
            for item in items {
                if let Value::Object(o) = item {
                    each(o);
                }
            }
        }
        match page.remove("nextCursor") {
            Some(Value::String(c)) if !c.is_empty() => cursor = Some(c),
            _ => return Ok(()),
        }
    }
    Ok(())
}

/// Rewrites `contents[].uri == from` to `to` in a `resources/read` result,
/// keeping every other member as the backend sent it.
fn rename_contents(result: Box<RawValue>, from: &str, to: &str) -> Box<RawValue> {
    let Ok(mut obj) = RawObject::parse(Some(&result)) else { return result };
    let Some(mut contents) = obj.get_as::<Vec<RawObject>>("contents") else { return result };
    for c in &mut contents {
        if c.get_str("uri").as_deref() == Some(from) {
            c.set("uri", to_raw(to));
        }
    }
    obj.set("contents", to_raw(&contents));
    obj.to_raw()
}

/// `notifications/cancelled` for the client's view of request `id`.
fn cancelled(id: &RequestId, reason: &str) -> Message {
    Message::Notification(Notification::new(method::CANCELLED, Some(to_raw(&json!({ "requestId": id, "reason": reason })))))
}

fn params_object(req: &Request) -> Result<RawObject, ErrorObject> {
    RawObject::parse(req.params.as_deref()).map_err(|_| ErrorObject::invalid_params("params must be an object"))
}

fn not_configured(backend: &str) -> ErrorObject {
    ErrorObject::new(code::UPSTREAM_UNAVAILABLE, format!("Backend '{backend}' is not configured")).with_data(json!({ "backend": backend }))
}

fn unknown(what: &str, name: &str) -> ErrorObject {
    ErrorObject::new(code::INVALID_PARAMS, format!("Unknown {what}: {name}"))
        .with_data(json!({ "reason": "unknown_name", "kind": what, "name": name }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_results_are_renamed_to_the_uri_the_client_used() {
        let raw =
            to_raw(&json!({ "contents": [{ "uri": "demo://a", "text": "x", "_meta": { "k": 1 } }, { "uri": "demo://other" }], "z": 1 }));
        let out: Value = serde_json::from_str(rename_contents(raw, "demo://a", "gatehouse+b:demo://a").get()).unwrap();
        assert_eq!(
            out,
            json!({ "contents": [{ "uri": "gatehouse+b:demo://a", "text": "x", "_meta": { "k": 1 } }, { "uri": "demo://other" }], "z": 1 })
        );
    }
}
