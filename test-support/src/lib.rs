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
