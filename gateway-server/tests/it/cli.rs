//! The `gateway-server` binary: subcommands, exit codes, `--config` handling.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use gateway_server::auth::{self, Authenticator};
use gateway_server::config::{self, MapEnv};
use gateway_server::store::{Role, Store};

/// The binary with a clean environment, run from `cwd`.
fn bin(cwd: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_gateway-server"));
    cmd.env_clear().current_dir(cwd);
    cmd
}

fn run(cmd: &mut Command) -> Output {
    cmd.output().expect("the binary runs")
}

fn stdout(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8(out.stderr.clone()).unwrap()
}

/// A config in `dir` whose SQLite store lives at `dir/hub.db`.
fn write_config(dir: &Path, extra: &str) -> PathBuf {
    let path = dir.join("gatehouse.toml");
    std::fs::write(&path, format!("[database]\nurl = \"sqlite://hub.db\"\n{extra}")).unwrap();
    path
}

#[test]
fn init_output_passes_check() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(bin(dir.path()).arg("init"));
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), config::EXAMPLE);
    std::fs::write(dir.path().join("example.toml"), &out.stdout).unwrap();

    let out = run(bin(dir.path()).args(["check", "--config", "example.toml"]));
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "ok: 1 backend\n");
}

#[test]
fn init_output_writes_once() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(bin(dir.path()).args(["init", "--output", "g.toml"]));
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(std::fs::read_to_string(dir.path().join("g.toml")).unwrap(), config::EXAMPLE);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("g.toml")).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    std::fs::write(dir.path().join("g.toml"), "# mine").unwrap();
    let out = run(bin(dir.path()).args(["init", "--output", "g.toml"]));
    assert!(!out.status.success());
    assert!(stderr(&out).starts_with("error: "), "{}", stderr(&out));
    assert!(stderr(&out).contains("already exists"), "{}", stderr(&out));
    assert_eq!(std::fs::read_to_string(dir.path().join("g.toml")).unwrap(), "# mine");
}

#[test]
fn check_names_the_bad_key_and_fails() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(
        dir.path(),
        "[[backends]]\nname = \"ok\"\ntransport = \"stdio\"\ncommand = \"x\"\n\
         [[backends]]\nname = \"bad\"\ntransport = \"http\"\nurl = \"ftp://example.com\"\n",
    );
    // --config before the subcommand this time.
    let out = run(bin(dir.path()).arg("--config").arg(&path).arg("check"));
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.starts_with("error: backends[1].url: "), "{err}");
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(stdout(&out).is_empty());

    std::fs::write(&path, "[server]\nlisen = \"127.0.0.1:1\"\n").unwrap();
    let out = run(bin(dir.path()).arg("check").arg("--config").arg(&path));
    assert!(!out.status.success());
    assert!(stderr(&out).starts_with("error: server.lisen: unknown key"), "{}", stderr(&out));
}

#[test]
fn check_reports_env_overrides_and_uses_gatehouse_config() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(dir.path(), "");
    let out = run(bin(dir.path()).arg("check").env("GATEHOUSE_CONFIG", &path));
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "ok: 0 backends\n");

    let out = run(bin(dir.path()).arg("check").env("GATEHOUSE_CONFIG", &path).env("GATEHOUSE_SERVER_LISTEN", "nowhere"));
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.starts_with("error: server.listen: invalid socket address"), "{err}");
    assert!(err.contains("GATEHOUSE_SERVER_LISTEN"), "{err}");

    // --config wins over GATEHOUSE_CONFIG.
    let out = run(bin(dir.path()).args(["check", "--config", "missing.toml"]).env("GATEHOUSE_CONFIG", &path));
    assert!(!out.status.success());
    assert!(stderr(&out).contains("missing.toml"), "{}", stderr(&out));
}

#[test]
fn check_without_config_uses_local_file_or_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(bin(dir.path()).arg("check"));
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "ok: 0 backends\n");

    std::fs::write(dir.path().join("gatehouse.toml"), "[log]\nformat = \"yaml\"\n").unwrap();
    let out = run(bin(dir.path()).arg("check"));
    assert!(!out.status.success());
    assert!(stderr(&out).starts_with("error: log.format: "), "{}", stderr(&out));
}

#[tokio::test]
async fn keys_create_prints_a_key_the_store_accepts() {
    let dir = tempfile::tempdir().unwrap();
    let config_dir = dir.path().join("etc");
    let elsewhere = dir.path().join("elsewhere");
    std::fs::create_dir_all(&config_dir).unwrap();
    std::fs::create_dir_all(&elsewhere).unwrap();
    let path = write_config(&config_dir, "");

    // Run from another directory, --config after the subcommand's arguments:
    // the relative database path still resolves next to the config file.
    let out = run(bin(&elsewhere).args(["keys", "create", "--user", "alice", "--name", "laptop", "--config"]).arg(&path));
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let key = text.lines().last().unwrap();
    assert!(key.starts_with("gk_") && key.len() == 46, "last line is the key alone: {text}");
    assert!(text.contains("created user alice (admin)"), "{text}");
    assert!(config_dir.join("hub.db").exists());
    assert!(!elsewhere.join("hub.db").exists());

    // The second user is a developer; --config before the subcommand.
    let out = run(bin(&elsewhere).arg("--config").arg(&path).args([
        "keys",
        "create",
        "--user",
        "bob",
        "--name",
        "ci",
        "--surfaces",
        "ai",
        "--tools",
        "fs__*,git__log",
        "--expires",
        "12h",
    ]));
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let bob_key = text.lines().last().unwrap().to_owned();
    assert!(text.contains("created user bob (developer)"), "{text}");

    // The keys are in the store the config names, hashed with its secret.
    let config = config::load(Some(&path), &MapEnv::new()).unwrap();
    let store = Store::from_config(&config.database).await.unwrap();
    let secret = auth::load_secret(&config.auth, &store).await.unwrap();
    let (stored, user) = store.api_key_by_hash(&auth::hash_key(&secret, key)).await.unwrap().unwrap();
    assert_eq!(user.username, "alice");
    assert_eq!(user.role, Role::Admin);
    assert_eq!(stored.name, "laptop");
    assert_eq!(stored.surfaces, ["mcp", "ai"]);
    assert_eq!(stored.tools, ["*"]);
    assert!(stored.expires_at.is_none());
    assert_eq!(stored.prefix, &key[..10]);

    let (bob_stored, bob) = store.api_key_by_hash(&auth::hash_key(&secret, &bob_key)).await.unwrap().unwrap();
    assert_eq!(bob.role, Role::Developer);
    assert_eq!(bob_stored.surfaces, ["ai"]);
    assert_eq!(bob_stored.tools, ["fs__*", "git__log"]);
    let ttl = bob_stored.expires_at.unwrap() - chrono::Utc::now();
    assert!(ttl > chrono::Duration::hours(11) && ttl <= chrono::Duration::hours(12), "{ttl}");

    // An authenticator on that store accepts the key at once.
    let authn = Authenticator::new(store.clone(), secret);
    let principal = authn.authenticate(key).await.unwrap();
    assert_eq!(principal.username, "alice");
    assert_eq!(principal.key_name, "laptop");
    store.close().await;
}

#[test]
fn keys_create_rejects_bad_arguments() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(dir.path(), "");
    let out = run(bin(dir.path()).args(["keys", "create", "--user", "a", "--name", "n", "--expires", "soon", "--config"]).arg(&path));
    assert!(!out.status.success());
    assert!(stderr(&out).contains("--expires"), "{}", stderr(&out));

    let out = run(bin(dir.path()).args(["keys", "create", "--user", "a", "--name", "n", "--surfaces", "web", "--config"]).arg(&path));
    assert!(!out.status.success());
    assert!(stderr(&out).starts_with("error: --surfaces"), "{}", stderr(&out));
    assert!(stdout(&out).is_empty());

    let out = run(bin(dir.path()).args(["keys", "create", "--user", "not valid", "--name", "n", "--config"]).arg(&path));
    assert!(!out.status.success());
    assert!(stderr(&out).contains("username"), "{}", stderr(&out));
}

#[test]
fn version_prints_the_version() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(bin(dir.path()).arg("version"));
    assert!(out.status.success());
    assert_eq!(stdout(&out), format!("gateway-server {}\n", env!("CARGO_PKG_VERSION")));
}
