//! The config file and the token file through the command line: edits keep
//! comments, errors name the key, the token file is private.

use std::path::PathBuf;
use std::process::{Command, Output};

use crate::support::agent_bin;

const CONFIG: &str = r#"# My agent, set up by hand.
[agent]
name = "alice-laptop"   # enrolled as this
hub_url = "https://hub.example.com"

# Notes, read-only.
[[servers]]
name = "notes"
transport = "stdio"
command = "npx"
args = ["-y", "@modelcontextprotocol/server-filesystem", "/home/alice/notes"]
"#;

pub struct Home {
    pub dir: tempfile::TempDir,
}

impl Home {
    pub fn new() -> Self {
        Self { dir: tempfile::tempdir().unwrap() }
    }

    pub fn config(&self) -> PathBuf {
        self.dir.path().join("cfg/config.toml")
    }

    pub fn token(&self) -> PathBuf {
        self.dir.path().join("cfg/token")
    }

    pub fn state(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    pub fn write_config(&self, text: &str) {
        std::fs::create_dir_all(self.config().parent().unwrap()).unwrap();
        std::fs::write(self.config(), text).unwrap();
    }

    /// The agent binary with this home's files and nothing from the real home.
    pub fn cmd(&self) -> Command {
        let mut c = Command::new(agent_bin());
        c.env("HOME", self.dir.path())
            .env("XDG_CONFIG_HOME", self.dir.path().join("xdg-config"))
            .env("GATEHOUSE_AGENT_CONFIG", self.config())
            .env("GATEHOUSE_AGENT_STATE_DIR", self.state())
            .env_remove("GATEHOUSE_AGENT_TOKEN_FILE")
            .env_remove("GATEHOUSE_AGENT_SERVICE");
        c
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd().args(args).output().unwrap()
    }
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn servers_add_remove_list_keep_comments() {
    let home = Home::new();
    home.write_config(CONFIG);
    let o = home.run(&["servers", "add", "fs", "--env", "DEBUG=1", "--stdio", "npx", "-y", "@scope/server", "/tmp/x"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = home.run(&["servers", "add", "web", "--url", "http://127.0.0.1:9/mcp", "--header", "Authorization=Bearer ${WEB_TOKEN}"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = std::fs::read_to_string(home.config()).unwrap();
    for kept in ["# My agent, set up by hand.", "# enrolled as this", "# Notes, read-only."] {
        assert!(text.contains(kept), "{kept:?} lost:\n{text}");
    }
    let config = gateway_agent::config::load(&home.config()).unwrap();
    let fs = config.server("fs").unwrap();
    assert_eq!(fs.command.as_deref(), Some("npx"));
    assert_eq!(fs.args, ["-y", "@scope/server", "/tmp/x"]);
    assert_eq!(fs.env["DEBUG"], "1");
    assert_eq!(config.server("web").unwrap().headers["Authorization"], "Bearer ${WEB_TOKEN}");

    let list = stdout(&home.run(&["servers", "list"]));
    assert!(list.contains("notes") && list.contains("fs") && list.contains("http://127.0.0.1:9/mcp"), "{list}");

    // Duplicates and bad names are refused with the reason, and change nothing.
    let before = std::fs::read_to_string(home.config()).unwrap();
    let o = home.run(&["servers", "add", "fs", "--url", "http://127.0.0.1:1/mcp"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("already exists"), "{}", stderr(&o));
    let o = home.run(&["servers", "add", "a__b", "--url", "http://127.0.0.1:1/mcp"]);
    assert!(stderr(&o).contains("not a valid server name"), "{}", stderr(&o));
    let o = home.run(&["servers", "add", "bad", "--url", "ftp://x"]);
    assert!(stderr(&o).contains("url"), "{}", stderr(&o));
    assert_eq!(std::fs::read_to_string(home.config()).unwrap(), before);

    let o = home.run(&["servers", "remove", "notes"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = std::fs::read_to_string(home.config()).unwrap();
    assert!(text.contains("# enrolled as this") && !text.contains("server-filesystem"), "{text}");
    let o = home.run(&["servers", "remove", "notes"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("no server called"), "{}", stderr(&o));
}

#[test]
fn invalid_configs_are_refused_naming_the_key() {
    let home = Home::new();
    home.write_config(&CONFIG.replace("https://hub.example.com", "hub.example.com"));
    std::fs::write(home.token(), "ga_0123456789\n").unwrap();
    let o = home.run(&["run", "--no-tui"]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(err.contains("agent.hub_url"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");

    home.write_config(&CONFIG.replace("command = \"npx\"\n", ""));
    let err = stderr(&home.run(&["run", "--no-tui"]));
    assert!(err.contains("servers[0].command"), "{err}");

    home.write_config(&CONFIG.replace("transport = \"stdio\"", "transport = \"smoke-signals\""));
    let err = stderr(&home.run(&["doctor"]));
    let out = stdout(&home.run(&["doctor"]));
    assert!(out.contains("FAIL config") && out.contains("servers[0].transport"), "{out}{err}");
}

#[cfg(unix)]
fn mode(p: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[cfg(unix)]
#[test]
fn the_token_file_is_0600_and_a_readable_one_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("sub/token");
    let tok = gateway_agent::config::Token::new("ga_secret_value_1").unwrap();
    gateway_agent::config::write_token(&p, &tok).unwrap();
    assert_eq!(mode(&p), 0o600);
    assert_eq!(gateway_agent::config::read_token(&p).unwrap(), tok);
    // Rewriting an existing file keeps it private.
    gateway_agent::config::write_token(&p, &tok).unwrap();
    assert_eq!(mode(&p), 0o600);

    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
    let e = gateway_agent::config::read_token(&p).unwrap_err().to_string();
    assert!(e.contains("readable by others") && !e.contains("secret"), "{e}");
}

#[test]
fn config_path_comes_from_flag_then_env() {
    let home = Home::new();
    home.write_config(CONFIG);
    let other = home.dir.path().join("other.toml");
    std::fs::write(&other, CONFIG.replace("notes", "elsewhere")).unwrap();
    let via_env = stdout(&home.run(&["servers", "list"]));
    assert!(via_env.contains("notes"), "{via_env}");
    let via_flag = stdout(&home.run(&["servers", "list", "--config", other.to_str().unwrap()]));
    assert!(via_flag.contains("elsewhere") && !via_flag.contains("notes"), "{via_flag}");
}
