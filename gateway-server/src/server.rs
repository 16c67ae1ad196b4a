//! Assembles the hub: store, authenticator, MCP router, HTTP routes, and the
//! listener with graceful shutdown.

use std::net::SocketAddr;

use axum::serve::ListenerExt as _;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Json};
use axum::routing::get;
use serde_json::json;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::auth::{Authenticator, Principal};
use crate::config::Config;
use crate::mcp::gate::Gate;
use crate::mcp::{Hub, HubSettings};
use crate::store::Store;

/// Everything a request handler may need. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub store: Store,
    pub auth: Authenticator,
    pub hub: Arc<Hub>,
    /// The principal of callers without a key, when `auth.anonymous_user` is set.
    pub anonymous: Option<Arc<Principal>>,
    /// Open connections of the 2024-11-05 HTTP+SSE transport.
    pub legacy: Arc<crate::mcp::legacy::LegacyConns>,
    /// Console sign-in (sessions, CSRF, throttling).
    pub console: crate::auth::console::Console,
    /// The audit log.
    pub audit: crate::audit::Audit,
    /// The policy rules in force.
    pub policy: crate::policy::Policies,
    /// Every tool seen, with risk, enabled flag and pinned definition.
    pub registry: crate::registry::ToolRegistry,
    /// Rate limits.
    pub limits: crate::limits::Limits,
    /// Prometheus metrics.
    pub metrics: crate::metrics::Metrics,
    /// Which agents are connected now.
    pub agents: crate::agents::AgentRegistry,
    /// The AI API proxy.
    pub ai: crate::ai::Ai,
}

impl AppState {
    /// Connects the store, loads the key secret and starts every configured
    /// backend (in the background: a backend that fails to start does not stop
    /// the hub).
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let store = Store::from_config(&config.database)
            .await
            .with_context(|| format!("database.url: cannot open {}", crate::config::redact_url_password(&config.database.url)))?;
        let secret = crate::auth::load_secret(&config.auth, &store).await.context("auth: cannot load the key secret")?;
        let auth = Authenticator::new(store.clone(), secret);
        let metrics = crate::metrics::Metrics::new(&config).context("metrics")?;
        let console = crate::auth::console::Console::start(&config, &store, auth.secret().clone()).await.context("console")?;
        let audit = crate::audit::Audit::start(&config, &store).await.context("audit")?;
        let policy = crate::policy::Policies::start(&config, &store).await.context("policy")?;
        let registry = crate::registry::ToolRegistry::start(&config, &store).await.context("tool registry")?;
        let limits = crate::limits::Limits::start(&config, &store).await.context("limits")?.with_metrics(metrics.clone());
        let agents = crate::agents::AgentRegistry::new();
        let gate = Arc::new(Gate {
            policy: policy.clone(),
            registry: registry.clone(),
            limits: limits.clone(),
            audit: audit.clone(),
            metrics: metrics.clone(),
            agents: agents.clone(),
        });
        let hub = Hub::new(
            HubSettings {
                request_timeout: Duration::from_secs(config.mcp.request_timeout_secs),
                session_idle_timeout: Duration::from_secs(config.mcp.session_idle_timeout_secs),
                max_sessions: config.mcp.max_sessions,
                sse_after: Some(Duration::from_millis(config.mcp.sse_after_ms)),
                sse_close_after: (config.mcp.sse_close_after_ms > 0).then(|| Duration::from_millis(config.mcp.sse_close_after_ms)),
                replay_events: config.mcp.sse_replay_events,
            },
            gate,
        );
        let default_timeout = Duration::from_secs(config.mcp.request_timeout_secs);
        for b in config.backends.iter().filter(|b| b.enabled) {
            hub.add_backend_with(b.to_upstream_spec(default_timeout), b.options());
        }
        // Backends added through the admin API, after the file's: the file wins a name clash.
        let stored = store.list_backends(&crate::store::SecretCipher::new(auth.secret())).await.context("cannot load runtime backends")?;
        for b in stored.into_iter().filter(|b| b.config.enabled) {
            if config.backends.iter().any(|c| c.name == b.config.name) {
                tracing::warn!(backend = %b.config.name, "a stored backend has the name of a config-file backend; skipping the stored one");
                continue;
            }
            hub.add_backend_with(b.config.to_upstream_spec(default_timeout), b.config.options());
        }
        let ai = crate::ai::Ai::start(&config.ai, &store, crate::store::SecretCipher::new(auth.secret())).await.context("ai")?;
        let anonymous = match &config.auth.anonymous_user {
            Some(name) => {
                let user =
                    store.ensure_user(name, crate::store::Role::Developer).await.context("auth.anonymous_user: cannot create the user")?;
                tracing::warn!(user = %name, "auth.anonymous_user is set: MCP callers without a key are let in as this user");
                Some(Arc::new(Principal {
                    user_id: user.id,
                    username: user.username,
                    role: user.role,
                    key_id: String::new(),
                    key_name: "anonymous".into(),
                    surfaces: vec!["mcp".into()],
                    tools: vec![],
                }))
            }
            None => None,
        };
        Ok(Self {
            config: Arc::new(config),
            store,
            auth,
            hub,
            anonymous,
            legacy: Arc::default(),
            console,
            audit,
            policy,
            registry,
            limits,
            metrics,
            agents,
            ai,
        })
    }
}

/// The hub's HTTP routes.
pub fn router(state: AppState) -> Router {
    let limit = state.config.server.max_body_bytes;
    Router::new()
        .merge(crate::mcp::http::routes())
        .merge(crate::mcp::legacy::routes())
        .merge(crate::ai::routes::routes())
        .merge(crate::admin::routes().layer(axum::middleware::from_fn_with_state(state.clone(), crate::admin::changes::record_changes)))
        .merge(crate::agents::tunnel::routes())
        .merge(crate::agents::releases::routes())
        .merge(crate::agents::install::routes())
        .route("/health/live", get(|| async { "ok" }))
        .route("/health/ready", get(ready))
        .route("/metrics", get(crate::metrics::serve))
        // The dashboard: `/` and every path no route above claims.
        .fallback(crate::web::serve)
        .layer(DefaultBodyLimit::max(limit))
        .with_state(state)
}

/// How long the readiness probe waits for the store.
const READY_STORE_TIMEOUT: Duration = Duration::from_secs(2);

/// 200 when the store answers, else 503; with every backend's state and a
/// summary (`down` counts every backend not ready and not starting).
async fn ready(State(st): State<AppState>) -> impl IntoResponse {
    use crate::admin::backends::BackendHealth;
    let store_ok = matches!(tokio::time::timeout(READY_STORE_TIMEOUT, st.store.ping()).await, Ok(Ok(())));
    let (mut ready, mut starting) = (0usize, 0usize);
    let all = st.hub.backends();
    let backends: serde_json::Map<String, serde_json::Value> = all
        .iter()
        .map(|b| {
            let s = b.status();
            let health = BackendHealth::of_backend(b);
            match health {
                BackendHealth::Ready => ready += 1,
                BackendHealth::Starting => starting += 1,
                BackendHealth::Degraded | BackendHealth::Down => {}
            }
            (b.name.to_string(), json!({ "health": health, "restarts": s.restarts, "lastError": s.last_error }))
        })
        .collect();
    let summary = json!({ "total": all.len(), "ready": ready, "down": all.len() - ready - starting });
    let status = if store_ok { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (
        status,
        Json(
            json!({ "status": if store_ok { "ready" } else { "unavailable" }, "store": store_ok, "backends": backends, "backendsSummary": summary }),
        ),
    )
}

/// Serves `state` on `listener` until `shutdown` fires, then drains.
pub async fn serve_on(listener: TcpListener, state: AppState, shutdown: CancellationToken) -> anyhow::Result<()> {
    let hub = state.hub.clone();
    let audit = state.audit.clone();
    let grace = Duration::from_secs(state.config.server.shutdown_grace_secs);
    // Agents hear first, so they come back (here or elsewhere) instead of
    // holding the graceful shutdown open.
    let agents = state.agents.clone();
    let drain_ms = state.config.agents.drain_reconnect_after_ms;
    let drain = shutdown.clone();
    tokio::spawn(async move {
        drain.cancelled().await;
        let n = agents.end_all(crate::agents::EndReason::Drain(drain_ms));
        if n > 0 {
            tracing::info!(agents = n, "told the connected agents to reconnect later");
        }
    });
    let app = router(state);
    let stop = shutdown.clone();
    // Streams (SSE answers, AI chunks, the agent tunnel) are many small
    // writes: without TCP_NODELAY each one after the first can wait for the
    // client's delayed ACK, tens of milliseconds per event.
    let listener = listener.tap_io(|tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "could not set TCP_NODELAY");
        }
    });
    let server = axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
        .with_graceful_shutdown(async move { stop.cancelled().await });
    let mut server = std::pin::pin!(server.into_future());
    tokio::select! {
        r = &mut server => r?,
        () = async { shutdown.cancelled().await; tokio::time::sleep(grace).await } => {
            tracing::warn!("shutdown grace period over; closing remaining connections");
        }
    }
    hub.shutdown().await;
    // Last: requests finishing during the drain still record their events.
    audit.shutdown().await;
    Ok(())
}

/// Runs the hub with `config` until SIGINT/SIGTERM.
pub async fn run(config: Config) -> anyhow::Result<()> {
    let listen = config.server.listen.clone();
    let state = AppState::build(config).await?;
    let listener = TcpListener::bind(&listen).await.with_context(|| format!("server.listen: cannot bind {listen}"))?;
    let addr = listener.local_addr()?;
    let public = advertised_url(&state.config.server.public_url, addr);
    tracing::info!(%addr, backends = state.config.backends.len(), store = state.store.kind(), "Gatehouse hub listening");
    // A closed stdout (e.g. piped into `head`) must not stop the hub: ignore write errors.
    let mut banner = format!(
        "Gatehouse {} listening on http://{addr}\n  MCP endpoint:  {public}/mcp   (one backend: {public}/mcp/<backend>)\n  Health:        {public}/health/ready\n  Next: create a key with `gateway-server keys create --user you --name laptop` and point your MCP client at {public}/mcp\n",
        env!("CARGO_PKG_VERSION")
    );
    // The link carries a secret: stdout only, never the log.
    if let Some(link) = state.console.setup_link(&public) {
        banner.push_str(&format!(
            "  Set up the first admin: {link}\n  (valid for one hour; or run `gateway-server admin create --username you`)\n"
        ));
    }
    let _ = std::io::Write::write_all(&mut std::io::stdout(), banner.as_bytes());
    let shutdown = CancellationToken::new();
    let trigger = shutdown.clone();
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!("shutting down");
        trigger.cancel();
    });
    serve_on(listener, state, shutdown).await
}

/// The URL to tell users: `public_url`, with the real port when the hub was
/// asked to pick one (`listen = "...:0"`).
fn advertised_url(public_url: &str, bound: SocketAddr) -> String {
    match url::Url::parse(public_url) {
        Ok(mut u) if u.port() == Some(0) => {
            let _ = u.set_port(Some(bound.port()));
            u.as_str().trim_end_matches('/').to_owned()
        }
        _ => public_url.trim_end_matches('/').to_owned(),
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}

#[cfg(test)]
mod tests {
    use super::advertised_url;

    #[test]
    fn advertised_url_takes_the_bound_port_when_asked_to_pick_one() {
        let bound = "127.0.0.1:4567".parse().unwrap();
        assert_eq!(advertised_url("http://127.0.0.1:0", bound), "http://127.0.0.1:4567");
        assert_eq!(advertised_url("https://hub.example.com/", bound), "https://hub.example.com");
    }
}
