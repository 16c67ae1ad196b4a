//! The Gatehouse agent as a library: everything `gateway-agent` does, split by
//! concern so tests can drive each piece in-process.
//!
//! * [`config`] — the TOML config, the token file, validation and in-place edits.
//! * [`paths`] — where the config, token, log and control socket live.
//! * [`servers`] — the local MCP servers (through `gatehouse-upstream`) and their catalogs.
//! * [`tunnel`] — the outbound WebSocket to the hub: handshake, multiplexing, liveness, reconnects.
//! * [`state`] — what the dashboard shows: connection, servers, recent calls, logs.
//! * [`control`] — the local socket a running agent answers on (status, subscribe, reconnect, logs).
//! * [`tui`] — the terminal dashboard.
//! * [`service`] — systemd / launchd / Windows logon-task registration.
//! * [`update`] — signature-checked self-update from the hub.
//! * [`logs`] — the log file and the in-memory log tail.
//! * [`commands`] — one module per CLI subcommand.

pub mod commands;
pub mod config;
pub mod control;
pub mod logs;
pub mod paths;
pub mod servers;
pub mod service;
pub mod state;
pub mod tui;
pub mod tunnel;
pub mod update;

/// Process exit codes that scripts and service managers rely on.
pub mod exit {
    /// Something failed (bad config, unreachable hub during setup, a failed check).
    pub const FAILURE: u8 = 1;
    /// The hub refused the token (HTTP 401/403 at the upgrade, or an
    /// `unauthorized`/`revoked` error frame). Retrying cannot help.
    pub const TOKEN_REFUSED: u8 = 3;
    /// The hub ended the connection with another fatal error (name conflict,
    /// unsupported tunnel version). Retrying cannot help.
    pub const FATAL: u8 = 4;
    /// The binary was replaced by a self-update; the service manager should
    /// start the new one (`EX_TEMPFAIL`, which unit files treat as a failure to restart on).
    pub const UPDATED: u8 = 75;
}

/// The agent's version, as sent in `hello` and compared by self-update.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// `linux-x86_64`, `macos-aarch64`, ... as sent in `hello`.
pub fn platform() -> String {
    format!("{}-{}", std::env::consts::OS, std::env::consts::ARCH)
}
