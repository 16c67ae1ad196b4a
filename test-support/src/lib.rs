//! Test support for Gatehouse: the fixture MCP server (also shipped as the
//! `gatehouse-fixture` binary), helpers to find the workspace, the third-party
//! test peers installed by `scripts/install-peers.sh` and built binaries, a
//! guard that kills spawned processes, and a runner for the MCP conformance
//! suite that other crates' tests reuse against the hub.

pub mod bench;
pub mod conformance;
pub mod fixture;
pub mod mock_ai;
pub mod paths;
pub mod process;

pub use paths::{fixture_bin, node22, peers_dir, peers_or_skip, workspace_root};
pub use process::{ChildGuard, Killable, spawn_fixture_http};

/// Serves `app` on `listener` with `TCP_NODELAY` on every accepted
/// connection (as the hub does: streamed events must not wait for the
/// peer's delayed ACK) until `stop` is cancelled.
pub async fn serve_nodelay(
    listener: tokio::net::TcpListener,
    app: axum::Router,
    stop: tokio_util::sync::CancellationToken,
) -> std::io::Result<()> {
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, app).with_graceful_shutdown(stop.cancelled_owned()).await
}
