//! The agent installers and releases served by the hub: `install.sh` run for
//! real (POSIX sh, a temporary HOME) against a hub whose releases directory
//! holds a copy of the built `gateway-agent` and its manifest.

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};

use gatehouse_test_support::paths::agent_bin;
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::support::TestHub;

const TARGETS: [&str; 6] = [
    "x86_64-unknown-linux-gnu",
    "aarch64-unknown-linux-gnu",
    "x86_64-unknown-linux-musl",
    "aarch64-unknown-linux-musl",
    "x86_64-apple-darwin",
    "aarch64-apple-darwin",
];

/// Writes a manifest naming `file` (with checksum `sha256`) for every Unix target.
fn write_manifest(dir: &Path, file: &str, sha256: &str) {
    let assets: serde_json::Map<String, serde_json::Value> =
        TARGETS.iter().map(|t| ((*t).to_owned(), json!({ "url": file, "sha256": sha256, "signature": "c2lnbmF0dXJl" }))).collect();
    std::fs::write(dir.join("manifest.json"), json!({ "version": "9.9.9", "assets": assets }).to_string()).unwrap();
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Runs `sh script args...` with a clean environment, `home` as HOME and `path` as PATH.
async fn run_sh(script: &Path, home: &Path, path: &str, args: &[&str], extra_env: &[(&str, &str)]) -> Output {
    let mut cmd = tokio::process::Command::new("/bin/sh");
    cmd.arg(script).args(args).env_clear().env("HOME", home).env("PATH", path).env("SHELL", "/bin/bash").stdin(Stdio::null());
    for (k, v) in extra_env {
        cmd.env(k, v);
    }
    tokio::time::timeout(std::time::Duration::from_secs(120), cmd.output()).await.expect("install.sh finished in time").unwrap()
}

fn text(o: &Output) -> String {
    format!("stdout:\n{}\nstderr:\n{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// A PATH directory with the tools the installer needs, minus `without`.
fn tool_dir(root: &Path, without: &[&str]) -> PathBuf {
    let dir = root.join("tools");
    std::fs::create_dir_all(&dir).unwrap();
    for tool in [
        "sh",
        "uname",
        "curl",
        "tr",
        "sed",
        "mkdir",
        "mktemp",
        "cp",
        "chmod",
        "mv",
        "rm",
        "cut",
        "grep",
        "dirname",
        "cat",
        "ldd",
        "sha256sum",
        "shasum",
        "env",
        "perl",
    ] {
        if without.contains(&tool) {
            continue;
        }
        for base in ["/usr/bin", "/bin", "/usr/local/bin"] {
            let p = Path::new(base).join(tool);
            if p.exists() {
                let _ = std::os::unix::fs::symlink(&p, dir.join(tool));
                break;
            }
        }
    }
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn install_sh_verifies_installs_and_sets_up_the_agent() {
    let bin = agent_bin();
    assert!(bin.is_file(), "{} is missing: run `cargo build -p gateway-agent` first", bin.display());
    let hub = TestHub::start("[agents]\nreleases_dir = \"{dir}/releases\"\n").await;
    let releases = hub.state.config.agents.releases_dir.clone().unwrap();
    std::fs::create_dir_all(&releases).unwrap();
    let bytes = std::fs::read(&bin).unwrap();
    let file = "gateway-agent-unix";
    std::fs::write(releases.join(file), &bytes).unwrap();
    let sum = sha256_hex(&bytes);
    write_manifest(&releases, file, &sum);

    // The hub serves the releases read-only, and nothing else.
    let http = reqwest::Client::new();
    let r = http.get(format!("{}/agent/releases/manifest.json", hub.base)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let m: serde_json::Value = r.json().await.unwrap();
    assert_eq!(m["assets"]["x86_64-unknown-linux-gnu"]["sha256"], sum);
    let r = http.get(format!("{}/agent/releases/{file}", hub.base)).send().await.unwrap();
    assert_eq!(r.headers()["content-type"], "application/octet-stream");
    assert_eq!(r.bytes().await.unwrap().len(), bytes.len());
    std::fs::write(releases.parent().unwrap().join("outside.txt"), "secret").unwrap();
    for bad in ["nope", "..%2Foutside.txt", "%2E%2E%2Foutside.txt", ".hidden"] {
        let r = http.get(format!("{}/agent/releases/{bad}", hub.base)).send().await.unwrap();
        assert_eq!(r.status(), 404, "{bad}");
    }

    // The scripts, with the hub's public URL filled in.
    let r = http.get(format!("{}/install.sh", hub.base)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/x-shellscript"));
    let script = r.text().await.unwrap();
    assert!(script.contains("\nGATEHOUSE_HUB_URL='http://127.0.0.1'\n"), "the placeholder is replaced");
    assert!(script.trim_end().ends_with("main \"$@\""), "main runs on the last line");
    let r = http.get(format!("{}/install.ps1", hub.base)).send().await.unwrap();
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/plain"));
    assert!(r.text().await.unwrap().contains("$GatehouseHubUrl = \"http://127.0.0.1\""));

    let work = tempfile::tempdir().unwrap();
    let script_path = work.path().join("install.sh");
    std::fs::write(&script_path, &script).unwrap();
    let path = tool_dir(work.path(), &[]).display().to_string();

    // Install only.
    let home = work.path().join("home1");
    std::fs::create_dir_all(&home).unwrap();
    let o = run_sh(&script_path, &home, &path, &["--hub", &hub.base, "--non-interactive", "--no-setup"], &[]).await;
    assert!(o.status.success(), "{}", text(&o));
    let installed = home.join(".local/bin/gateway-agent");
    assert_eq!(sha256_hex(&std::fs::read(&installed).unwrap()), sum, "the installed binary is the release");
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&installed).unwrap().permissions().mode() & 0o777, 0o755);
    }
    let rc = std::fs::read_to_string(home.join(".bashrc")).unwrap();
    assert_eq!(rc.matches("# added by the Gatehouse agent installer").count(), 1, "{rc}");
    assert!(rc.contains(&format!("{}:$PATH", home.join(".local/bin").display())), "{rc}");
    // Again: same result, the rc file is not touched twice.
    let o = run_sh(&script_path, &home, &path, &["--hub", &hub.base, "--non-interactive", "--no-setup"], &[]).await;
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(std::fs::read_to_string(home.join(".bashrc")).unwrap(), rc);
    let leftovers: Vec<_> = std::fs::read_dir(home.join(".local/bin")).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(leftovers, vec![std::ffi::OsString::from("gateway-agent")], "no temporary files left");

    // Install and set up against the hub, the token from the environment.
    let (status, body) = hub.api("POST", "/agents", Some(json!({ "name": "laptop" }))).await;
    assert_eq!(status, 201, "{body}");
    let token = body["token"].as_str().unwrap().to_owned();
    let home = work.path().join("home2");
    std::fs::create_dir_all(&home).unwrap();
    let o = run_sh(
        &script_path,
        &home,
        &path,
        &["--hub", &hub.base, "--non-interactive", "--name", "laptop"],
        &[("GATEHOUSE_AGENT_TOKEN", &token)],
    )
    .await;
    assert!(o.status.success(), "{}", text(&o));
    assert!(!text(&o).contains(&token), "the token is never printed");
    let config = std::fs::read_to_string(home.join(".config/gateway-agent/config.toml")).unwrap();
    assert!(config.contains("laptop") && config.contains(&hub.base), "{config}");
    assert!(!config.contains(&token));

    // A checksum that does not match: refused, nothing installed.
    write_manifest(&releases, file, &"0".repeat(64));
    let home = work.path().join("home3");
    std::fs::create_dir_all(&home).unwrap();
    let o = run_sh(&script_path, &home, &path, &["--hub", &hub.base, "--non-interactive", "--no-setup"], &[]).await;
    assert!(!o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("checksum mismatch"), "{}", text(&o));
    assert!(!home.join(".local/bin/gateway-agent").exists());
    assert_eq!(std::fs::read_dir(home.join(".local/bin")).map(|d| d.count()).unwrap_or(0), 0);

    // No tool to check the checksum with: refused too (fail closed).
    write_manifest(&releases, file, &sum);
    let bare = tool_dir(&work.path().join("bare"), &["sha256sum", "shasum"]).display().to_string();
    let home = work.path().join("home4");
    std::fs::create_dir_all(&home).unwrap();
    let o = run_sh(&script_path, &home, &bare, &["--hub", &hub.base, "--non-interactive", "--no-setup"], &[]).await;
    assert!(!o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("neither sha256sum nor shasum"), "{}", text(&o));
    assert!(!home.join(".local/bin/gateway-agent").exists());
}

#[test]
fn install_sh_is_shellcheck_clean() {
    let script = gatehouse_test_support::workspace_root().join("install.sh");
    let have = |cmd: &str| std::process::Command::new(cmd).arg("--version").output().is_ok_and(|o| o.status.success());
    if !have("shellcheck") {
        // Debian's package; the test command installs it, this is a fallback.
        let _ = std::process::Command::new("apt-get").args(["install", "-y", "-q", "shellcheck"]).output();
    }
    if !have("shellcheck") {
        eprintln!("\n*** SKIPPED: install_sh_is_shellcheck_clean: shellcheck is not installed and could not be installed ***\n");
        return;
    }
    let o = std::process::Command::new("shellcheck").arg("--shell=sh").arg(&script).output().unwrap();
    assert!(o.status.success(), "shellcheck install.sh:\n{}", String::from_utf8_lossy(&o.stdout));
}
