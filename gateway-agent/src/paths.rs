//! Where the agent keeps its files: the config, the token next to it, and a
//! private state directory holding the log file and the control socket.
//!
//! Every location can be overridden through the environment, read through
//! [`Env`] so tests pass their own variables instead of mutating the process
//! environment:
//!
//! | variable | default (Linux) |
//! |---|---|
//! | `GATEHOUSE_AGENT_CONFIG` (or `--config`) | `~/.config/gateway-agent/config.toml` |
//! | `GATEHOUSE_AGENT_TOKEN_FILE` | `token` next to the config |
//! | `GATEHOUSE_AGENT_STATE_DIR` | `~/.local/state/gateway-agent` |

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Environment variable naming the config file.
pub const ENV_CONFIG: &str = "GATEHOUSE_AGENT_CONFIG";
/// Environment variable naming the token file.
pub const ENV_TOKEN_FILE: &str = "GATEHOUSE_AGENT_TOKEN_FILE";
/// Environment variable naming the state directory (log file, control socket).
pub const ENV_STATE_DIR: &str = "GATEHOUSE_AGENT_STATE_DIR";
/// Set to `1` in the service unit: the agent runs under a service manager.
pub const ENV_SERVICE: &str = "GATEHOUSE_AGENT_SERVICE";

/// A source of environment variables.
pub trait Env: Send + Sync {
    /// The value of `key`, when set and valid UTF-8.
    fn var(&self, key: &str) -> Option<String>;
}

/// The process environment.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn var(&self, key: &str) -> Option<String> {
        std::env::var(key).ok().filter(|v| !v.is_empty())
    }
}

/// A fixed set of variables (tests).
#[derive(Debug, Clone, Default)]
pub struct MapEnv(pub BTreeMap<String, String>);

impl MapEnv {
    /// An environment holding `pairs`.
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        Self(pairs.into_iter().map(|(k, v)| (k.to_owned(), v.to_owned())).collect())
    }
}

impl Env for MapEnv {
    fn var(&self, key: &str) -> Option<String> {
        self.0.get(key).cloned()
    }
}

/// Why the agent's locations could not be worked out.
#[derive(Debug, thiserror::Error)]
pub enum PathsError {
    #[error("cannot find the home directory; pass --config or set {ENV_CONFIG} and {ENV_STATE_DIR}")]
    NoHome,
}

/// The agent's files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paths {
    /// The TOML config.
    pub config: PathBuf,
    /// The token file (0600).
    pub token: PathBuf,
    /// Private directory (0700) for the log file and the control socket.
    pub state_dir: PathBuf,
}

fn project_dirs() -> Option<directories::ProjectDirs> {
    directories::ProjectDirs::from("dev", "gatehouse", "gateway-agent")
}

impl Paths {
    /// Works the locations out: `cli_config` > `GATEHOUSE_AGENT_CONFIG` > the
    /// platform config directory; the token next to the config unless
    /// `GATEHOUSE_AGENT_TOKEN_FILE` says otherwise.
    pub fn resolve(cli_config: Option<&Path>, env: &dyn Env) -> Result<Self, PathsError> {
        let config = match (cli_config, env.var(ENV_CONFIG)) {
            (Some(p), _) => p.to_path_buf(),
            (None, Some(p)) => PathBuf::from(p),
            (None, None) => project_dirs().ok_or(PathsError::NoHome)?.config_dir().join("config.toml"),
        };
        // Absolute paths keep the service unit and the token location stable
        // whatever directory the agent is started from.
        let config = std::path::absolute(&config).unwrap_or(config);
        let token = match env.var(ENV_TOKEN_FILE) {
            Some(p) => PathBuf::from(p),
            None => config.parent().map_or_else(|| PathBuf::from("token"), |dir| dir.join("token")),
        };
        let state_dir = match env.var(ENV_STATE_DIR) {
            Some(p) => PathBuf::from(p),
            None => {
                let dirs = project_dirs().ok_or(PathsError::NoHome)?;
                dirs.state_dir().map_or_else(|| dirs.data_local_dir().to_path_buf(), Path::to_path_buf)
            }
        };
        Ok(Self { config, token, state_dir })
    }

    /// The agent's log file.
    pub fn log_file(&self) -> PathBuf {
        self.state_dir.join("agent.log")
    }

    /// The control socket (Unix) of a running agent.
    pub fn control_socket(&self) -> PathBuf {
        self.state_dir.join("agent.sock")
    }

    /// The file holding the control port (Windows, where the control channel is loopback TCP).
    pub fn control_port_file(&self) -> PathBuf {
        self.state_dir.join("agent.port")
    }

    /// Creates the state directory, private to the user.
    pub fn ensure_state_dir(&self) -> std::io::Result<()> {
        create_private_dir(&self.state_dir)
    }
}

/// Creates `dir` (and parents) and makes it 0700 on unix.
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    // Unix paths: on Windows `/srv/...` is not absolute and gains a drive letter.
    #[cfg(unix)]
    #[test]
    fn cli_beats_env_and_the_token_sits_next_to_the_config() {
        let env = MapEnv::from_pairs([(ENV_CONFIG, "/etc/x/agent.toml"), (ENV_STATE_DIR, "/var/lib/x")]);
        let p = Paths::resolve(Some(Path::new("/srv/a/config.toml")), &env).unwrap();
        assert_eq!(p.config, Path::new("/srv/a/config.toml"));
        assert_eq!(p.token, Path::new("/srv/a/token"));
        assert_eq!(p.control_socket(), Path::new("/var/lib/x/agent.sock"));

        let p = Paths::resolve(None, &env).unwrap();
        assert_eq!(p.config, Path::new("/etc/x/agent.toml"));
        assert_eq!(p.token, Path::new("/etc/x/token"));

        let env = MapEnv::from_pairs([(ENV_CONFIG, "/etc/x/agent.toml"), (ENV_TOKEN_FILE, "/run/secret"), (ENV_STATE_DIR, "/s")]);
        assert_eq!(Paths::resolve(None, &env).unwrap().token, Path::new("/run/secret"));
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn linux_default_is_under_the_config_dir() {
        let p = Paths::resolve(None, &MapEnv::default()).unwrap();
        assert!(p.config.ends_with(".config/gateway-agent/config.toml") || p.config.ends_with("gateway-agent/config.toml"), "{p:?}");
    }
}
