//! The agent's config file, its token file, and in-place edits of both.
//!
//! ```toml
//! [agent]
//! name = "alice-laptop"
//! hub_url = "https://hub.example.com"
//!
//! [[servers]]
//! name = "fs"
//! transport = "stdio"            # stdio | http
//! command = "npx"
//! args = ["-y", "@modelcontextprotocol/server-filesystem", "/home/alice/notes"]
//! env = { DEBUG = "0" }
//! cwd = "/home/alice"
//!
//! [[servers]]
//! name = "obsidian"
//! transport = "http"
//! url = "http://127.0.0.1:27123/mcp"
//! headers = { Authorization = "Bearer ${OBSIDIAN_TOKEN}" }   # ${VAR} expands from the agent's environment
//! ```
//!
//! The token never lives here: it is in a separate file ([`write_token`],
//! mode 0600) so the config can be shown, shared and edited freely.
//! Errors name the offending key (`servers[1].url: ...`) on one line.
//! [`ConfigDoc`] edits the file through `toml_edit`, so the user's comments
//! and layout survive `servers add/remove` and `setup`.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::paths::Env;

/// The whole config file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub agent: AgentSection,
    #[serde(default)]
    pub servers: Vec<ServerConfig>,
}

/// `[agent]`: who this agent is and which hub it dials.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentSection {
    /// The name the token was enrolled with: `[a-z0-9][a-z0-9-]{0,31}`.
    pub name: String,
    /// The hub's base URL (`https://hub.example.com`).
    pub hub_url: String,
}

/// How a local server is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// A child process speaking MCP on stdin/stdout.
    Stdio,
    /// Streamable HTTP.
    Http,
}

impl Transport {
    /// The name used in the config and in the tunnel's `hello`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Stdio => "stdio",
            Self::Http => "http",
        }
    }
}

/// One `[[servers]]` entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    pub name: String,
    pub transport: Transport,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    /// Variables for the child; it gets nothing else from the agent's environment but a small baseline.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cwd: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Extra HTTP headers; `${VAR}` expands from the agent's environment when the server starts.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
}

/// Why the config (or the token) could not be used. One line each, naming the key or file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
    #[error("{origin}:{line}:{column}: {message}")]
    Syntax { origin: String, line: usize, column: usize, message: String },
    #[error("{key}: {message}")]
    Invalid { key: String, message: String },
}

impl ConfigError {
    fn invalid(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Invalid { key: key.into(), message: message.into() }
    }

    /// The key the error is about, when it is about one.
    pub fn key(&self) -> Option<&str> {
        match self {
            Self::Invalid { key, .. } => Some(key),
            _ => None,
        }
    }
}

/// Reads and validates the config at `path`.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_path_buf(), source })?;
    parse_named(&text, &path.display().to_string())
}

/// Parses and validates config text.
pub fn parse(text: &str) -> Result<Config, ConfigError> {
    parse_named(text, "config")
}

fn parse_named(text: &str, origin: &str) -> Result<Config, ConfigError> {
    let value: toml::Value = toml::from_str(text).map_err(|e| {
        let (line, column) = e.span().map_or((1, 1), |span| line_col(text, span.start));
        ConfigError::Syntax { origin: origin.to_owned(), line, column, message: one_line(e.message()) }
    })?;
    let config: Config = serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let path = if path == "." { String::new() } else { path };
        serde_error(&path, &one_line(&e.inner().to_string()))
    })?;
    config.validate()?;
    Ok(config)
}

/// Turns serde's "unknown field `x`" / "missing field `x`" into an error on
/// the key itself rather than on its parent table.
fn serde_error(parent: &str, message: &str) -> ConfigError {
    let join = |field: &str| {
        if parent == field || parent.ends_with(&format!(".{field}")) {
            parent.to_owned()
        } else if parent.is_empty() {
            field.to_owned()
        } else {
            format!("{parent}.{field}")
        }
    };
    for (prefix, what) in [("unknown field `", "unknown key"), ("missing field `", "required key is missing")] {
        if let Some(rest) = message.strip_prefix(prefix)
            && let Some((field, tail)) = rest.split_once('`')
        {
            let tail = tail.trim_start_matches([',', ' ']);
            let message = if tail.is_empty() { what.to_owned() } else { format!("{what}; {tail}") };
            return ConfigError::invalid(join(field), message);
        }
    }
    ConfigError::invalid(if parent.is_empty() { "(root)" } else { parent }, message)
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

impl Config {
    /// Checks what serde cannot: names, URLs, transport-specific keys, duplicates.
    pub fn validate(&self) -> Result<(), ConfigError> {
        validate_agent_name(&self.agent.name).map_err(|m| ConfigError::invalid("agent.name", m))?;
        validate_hub_url(&self.agent.hub_url).map_err(|m| ConfigError::invalid("agent.hub_url", m))?;
        let mut seen = BTreeSet::new();
        for (i, s) in self.servers.iter().enumerate() {
            let key = |k: &str| format!("servers[{i}].{k}");
            validate_server_name(&s.name).map_err(|m| ConfigError::invalid(key("name"), m))?;
            if !seen.insert(s.name.as_str()) {
                return Err(ConfigError::invalid(key("name"), format!("duplicate server name {:?}", s.name)));
            }
            match s.transport {
                Transport::Stdio => {
                    match s.command.as_deref() {
                        None => return Err(ConfigError::invalid(key("command"), "required for transport = \"stdio\"")),
                        Some(c) if c.trim().is_empty() => return Err(ConfigError::invalid(key("command"), "must not be empty")),
                        Some(_) => {}
                    }
                    if s.url.is_some() {
                        return Err(ConfigError::invalid(key("url"), "only for transport = \"http\""));
                    }
                    if !s.headers.is_empty() {
                        return Err(ConfigError::invalid(key("headers"), "only for transport = \"http\""));
                    }
                }
                Transport::Http => {
                    let url = s.url.as_deref().ok_or_else(|| ConfigError::invalid(key("url"), "required for transport = \"http\""))?;
                    match url::Url::parse(url) {
                        Ok(u) if matches!(u.scheme(), "http" | "https") => {}
                        Ok(u) => return Err(ConfigError::invalid(key("url"), format!("scheme {:?} is not http or https", u.scheme()))),
                        Err(e) => return Err(ConfigError::invalid(key("url"), format!("not a URL: {e}"))),
                    }
                    for k in ["command", "cwd"] {
                        let present = if k == "command" { s.command.is_some() } else { s.cwd.is_some() };
                        if present {
                            return Err(ConfigError::invalid(key(k), "only for transport = \"stdio\""));
                        }
                    }
                    if !s.args.is_empty() || !s.env.is_empty() {
                        let k = if s.args.is_empty() { "env" } else { "args" };
                        return Err(ConfigError::invalid(key(k), "only for transport = \"stdio\""));
                    }
                }
            }
            for name in s.env.keys() {
                if name.is_empty() || name.contains(['=', '\0']) {
                    return Err(ConfigError::invalid(format!("servers[{i}].env.{name}"), "not a valid variable name"));
                }
            }
        }
        Ok(())
    }

    /// The server called `name`.
    pub fn server(&self, name: &str) -> Option<&ServerConfig> {
        self.servers.iter().find(|s| s.name == name)
    }
}

/// Agent names: `[a-z0-9][a-z0-9-]{0,31}` without `__` (the hub joins names with `__`).
pub fn validate_agent_name(name: &str) -> Result<(), String> {
    let ok_chars = name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    let ok_first = name.chars().next().is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    if name.is_empty() || name.len() > 32 || !ok_chars || !ok_first || name.contains("__") {
        return Err(format!("{name:?} is not a valid agent name: use 1-32 of a-z, 0-9 and '-', starting with a letter or digit"));
    }
    Ok(())
}

/// Server names: `[A-Za-z0-9][A-Za-z0-9_-]{0,31}` without `__` (the hub names
/// tools `{agent}__{server}__{tool}`).
pub fn validate_server_name(name: &str) -> Result<(), String> {
    let ok_chars = name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    let ok_first = name.chars().next().is_some_and(|c| c.is_ascii_alphanumeric());
    if name.is_empty() || name.len() > 32 || !ok_chars || !ok_first || name.contains("__") {
        return Err(format!(
            "{name:?} is not a valid server name: use 1-32 of A-Z, a-z, 0-9, '-' and '_' (no \"__\"), starting with a letter or digit"
        ));
    }
    Ok(())
}

/// Hub URLs: `http(s)://host[:port][/prefix]` without credentials, query or fragment.
pub fn validate_hub_url(text: &str) -> Result<url::Url, String> {
    let url = url::Url::parse(text.trim()).map_err(|e| format!("{text:?} is not a URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("{text:?} must start with https:// (or http:// for a hub on this machine)"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(format!("{text:?} has no host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("the hub URL must not carry credentials; the token goes in the token file".into());
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!("{text:?} must not have a query or fragment"));
    }
    Ok(url)
}

/// True for `localhost`, `127.0.0.0/8` and `::1`: hosts where plain `ws://` cannot be snooped.
pub fn is_loopback_host(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost") || d.to_ascii_lowercase().ends_with(".localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// Expands `${VAR}` in `text` from `env`; an unset variable is an error naming it.
pub fn expand_vars(text: &str, env: &dyn Env) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after.find('}').ok_or_else(|| "unterminated ${".to_owned())?;
        let name = &after[..end];
        let value = env.var(name).ok_or_else(|| format!("environment variable {name} is not set"))?;
        out.push_str(&value);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

// ---------------------------------------------------------------------------
// Token
// ---------------------------------------------------------------------------

/// The agent token. Its `Debug` and `Display` never show the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

impl Token {
    /// Checks the shape (`ga_` prefix, printable, no whitespace) and wraps it.
    pub fn new(text: &str) -> Result<Self, String> {
        let t = text.trim();
        if !t.starts_with("ga_") {
            return Err("an agent token starts with \"ga_\" (create one with `gateway-server agents enroll`)".into());
        }
        if t.len() < 8 || t.len() > 512 || !t.chars().all(|c| c.is_ascii_graphic()) {
            return Err("the token is malformed: expected \"ga_\" followed by printable characters".into());
        }
        Ok(Self(t.to_owned()))
    }

    /// The secret itself, for the `Authorization` header only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(ga_***)")
    }
}

/// Reads the token file: refuses a missing, empty or malformed one, and on
/// unix one that others can read.
pub fn read_token(path: &Path) -> Result<Token, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_path_buf(), source })?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path).map(|m| m.permissions().mode() & 0o777).unwrap_or(0);
        if mode & 0o077 != 0 {
            return Err(ConfigError::invalid(
                path.display().to_string(),
                format!("the token file is readable by others (mode {mode:o}); run `chmod 600 {}`", path.display()),
            ));
        }
    }
    Token::new(&text).map_err(|m| ConfigError::invalid(path.display().to_string(), m))
}

/// Writes the token file with mode 0600 (umask 077 while creating it, so it is
/// never readable by others, not even for a moment), replacing it atomically.
pub fn write_token(path: &Path, token: &Token) -> Result<(), ConfigError> {
    write_private(path, format!("{}\n", token.expose()).as_bytes())
}

/// Writes `bytes` to `path` atomically (temp file + rename), mode 0600 on unix.
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<(), ConfigError> {
    let fail = |source| ConfigError::Write { path: path.to_path_buf(), source };
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(fail)?;
    // The umask is process-wide, but this runs from the CLI (setup), before
    // any other thread creates files; the explicit 0600 mode below covers the rest.
    #[cfg(unix)]
    let old_umask = nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o077));
    let result = (|| {
        let tmp = dir.join(format!(".{}.tmp{}", path.file_name().and_then(|n| n.to_str()).unwrap_or("file"), std::process::id()));
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut f = opts.open(&tmp)?;
        #[cfg(unix)]
        {
            // An existing temp file keeps its mode on open: force it.
            use std::os::unix::fs::PermissionsExt;
            f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        }
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    #[cfg(unix)]
    nix::sys::stat::umask(old_umask);
    result.map_err(fail)
}

/// Writes a text file atomically keeping the existing file's permissions (0644 for a new one).
pub fn write_atomic(path: &Path, text: &str) -> Result<(), ConfigError> {
    let fail = |source| ConfigError::Write { path: path.to_path_buf(), source };
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(fail)?;
    let tmp = dir.join(format!(".{}.tmp{}", path.file_name().and_then(|n| n.to_str()).unwrap_or("file"), std::process::id()));
    std::fs::write(&tmp, text).map_err(fail)?;
    if let Ok(meta) = std::fs::metadata(path) {
        std::fs::set_permissions(&tmp, meta.permissions()).map_err(fail)?;
    }
    std::fs::rename(&tmp, path).map_err(fail)
}

// ---------------------------------------------------------------------------
// Editing the file in place
// ---------------------------------------------------------------------------

/// The config file as an editable document: comments, ordering and
/// formatting of everything not touched are kept.
#[derive(Debug, Clone)]
pub struct ConfigDoc {
    doc: toml_edit::DocumentMut,
}

/// A commented starting config, written by `setup` when there is none.
pub const TEMPLATE: &str = r#"# gateway-agent configuration.
# The agent dials the hub below and puts the local MCP servers listed here behind it.
# The token is NOT in this file: it lives in the `token` file next to it (mode 0600).

[agent]
name = "NAME"
hub_url = "HUB"

# Add local MCP servers with `gateway-agent servers add`, or by hand:
#
# [[servers]]
# name = "fs"
# transport = "stdio"
# command = "npx"
# args = ["-y", "@modelcontextprotocol/server-filesystem", "/home/me/notes"]
#
# [[servers]]
# name = "obsidian"
# transport = "http"
# url = "http://127.0.0.1:27123/mcp"
"#;

impl ConfigDoc {
    /// Parses config text for editing (syntax only: validate with [`ConfigDoc::check`]).
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let doc = text.parse::<toml_edit::DocumentMut>().map_err(|e| {
            let (line, column) = e.span().map_or((1, 1), |span| line_col(text, span.start));
            ConfigError::Syntax { origin: "config".into(), line, column, message: one_line(e.message()) }
        })?;
        Ok(Self { doc })
    }

    /// Reads `path` for editing.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_path_buf(), source })?;
        Self::parse(&text)
    }

    /// A new document from [`TEMPLATE`] for `name` at `hub_url`.
    pub fn new(name: &str, hub_url: &str) -> Self {
        let mut doc = Self::parse(TEMPLATE).unwrap_or_else(|_| Self { doc: toml_edit::DocumentMut::new() });
        doc.set_agent(name, hub_url);
        doc
    }

    /// Sets `[agent] name` and `hub_url`, keeping the rest.
    pub fn set_agent(&mut self, name: &str, hub_url: &str) {
        let agent = self.doc.entry("agent").or_insert_with(toml_edit::table);
        if let Some(t) = agent.as_table_like_mut() {
            set_str(t, "name", name);
            set_str(t, "hub_url", hub_url);
        }
    }

    /// The validated config this document describes.
    pub fn check(&self) -> Result<Config, ConfigError> {
        parse(&self.doc.to_string())
    }

    /// Names of the `[[servers]]` entries, in file order.
    pub fn server_names(&self) -> Vec<String> {
        self.servers()
            .map(|t| t.iter().filter_map(|s| s.get("name").and_then(|n| n.as_str()).map(str::to_owned)).collect())
            .unwrap_or_default()
    }

    fn servers(&self) -> Option<&toml_edit::ArrayOfTables> {
        self.doc.get("servers").and_then(toml_edit::Item::as_array_of_tables)
    }

    /// Appends a server; refuses a name already present or an invalid entry.
    pub fn add_server(&mut self, server: &ServerConfig) -> Result<(), ConfigError> {
        validate_server_name(&server.name).map_err(|m| ConfigError::invalid("name", m))?;
        if self.server_names().iter().any(|n| n == &server.name) {
            return Err(ConfigError::invalid("name", format!("a server called {:?} already exists", server.name)));
        }
        let mut t = toml_edit::Table::new();
        set_str(&mut t, "name", &server.name);
        set_str(&mut t, "transport", server.transport.as_str());
        if let Some(c) = &server.command {
            set_str(&mut t, "command", c);
        }
        if !server.args.is_empty() {
            t.insert("args", toml_edit::value(server.args.iter().collect::<toml_edit::Array>()));
        }
        if let Some(cwd) = &server.cwd {
            set_str(&mut t, "cwd", &cwd.display().to_string());
        }
        if let Some(u) = &server.url {
            set_str(&mut t, "url", u);
        }
        for (key, map) in [("env", &server.env), ("headers", &server.headers)] {
            if !map.is_empty() {
                let mut inline = toml_edit::InlineTable::new();
                for (k, v) in map {
                    inline.insert(k, v.as_str().into());
                }
                t.insert(key, toml_edit::value(inline));
            }
        }
        let item = self.doc.entry("servers").or_insert_with(|| toml_edit::Item::ArrayOfTables(toml_edit::ArrayOfTables::new()));
        let Some(arr) = item.as_array_of_tables_mut() else {
            return Err(ConfigError::invalid("servers", "must be an array of tables ([[servers]])"));
        };
        arr.push(t);
        // Refuse to leave an invalid document behind (e.g. `--url` with a bad scheme).
        if let Err(e) = self.check() {
            self.remove_server(&server.name);
            return Err(e);
        }
        Ok(())
    }

    /// Removes the server called `name`; false when there was none.
    pub fn remove_server(&mut self, name: &str) -> bool {
        let Some(arr) = self.doc.get_mut("servers").and_then(toml_edit::Item::as_array_of_tables_mut) else { return false };
        let before = arr.len();
        arr.retain(|t| t.get("name").and_then(|n| n.as_str()) != Some(name));
        let removed = arr.len() != before;
        if arr.is_empty() {
            self.doc.remove("servers");
        }
        removed
    }

    /// Writes the document to `path` atomically, keeping the file's permissions.
    pub fn save(&self, path: &Path) -> Result<(), ConfigError> {
        write_atomic(path, &self.doc.to_string())
    }
}

impl std::fmt::Display for ConfigDoc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.doc.to_string())
    }
}

fn set_str(t: &mut dyn toml_edit::TableLike, key: &str, value: &str) {
    // Keep the decoration (comments after the value) of an existing key.
    match t.get_mut(key).and_then(toml_edit::Item::as_value_mut) {
        Some(v) => {
            let decor = v.decor().clone();
            *v = value.into();
            *v.decor_mut() = decor;
        }
        None => {
            t.insert(key, toml_edit::value(value));
        }
    }
}

// ---------------------------------------------------------------------------
// Hot reload
// ---------------------------------------------------------------------------

/// Polls `path` every `interval` and sends the new config whenever the file
/// changes (mtime or size) and parses; a broken edit is logged and skipped so
/// the running servers stay as they were. Ends when the receiver is dropped.
pub async fn watch(path: PathBuf, interval: Duration, tx: mpsc::Sender<Config>) {
    let stamp = |p: &Path| std::fs::metadata(p).ok().map(|m| (m.modified().unwrap_or(SystemTime::UNIX_EPOCH), m.len()));
    let mut last = stamp(&path);
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            () = tx.closed() => return,
        }
        let now = stamp(&path);
        if now == last {
            continue;
        }
        last = now;
        match load(&path) {
            Ok(config) => {
                tracing::info!(path = %path.display(), "config changed; applying");
                if tx.send(config).await.is_err() {
                    return;
                }
            }
            Err(e) => tracing::warn!("config change ignored: {e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::paths::MapEnv;

    const GOOD: &str = r#"
[agent]
name = "alice-laptop"
hub_url = "https://hub.example.com"

[[servers]]
name = "fs"
transport = "stdio"
command = "npx"
args = ["-y", "server"]
env = { DEBUG = "0" }

[[servers]]
name = "obsidian"
transport = "http"
url = "http://127.0.0.1:27123/mcp"
"#;

    fn err_key(text: &str) -> String {
        let e = parse(text).unwrap_err();
        let s = e.to_string();
        assert!(!s.contains('\n'), "one line: {s}");
        s
    }

    #[test]
    fn parses_the_contract_example() {
        let c = parse(GOOD).unwrap();
        assert_eq!(c.agent.name, "alice-laptop");
        assert_eq!(c.servers.len(), 2);
        assert_eq!(c.servers[0].transport, Transport::Stdio);
        assert_eq!(c.servers[0].env["DEBUG"], "0");
        assert_eq!(c.servers[1].url.as_deref(), Some("http://127.0.0.1:27123/mcp"));
    }

    #[test]
    fn errors_name_the_key() {
        assert!(err_key(&GOOD.replace("alice-laptop", "Alice_Laptop")).starts_with("agent.name:"));
        assert!(err_key(&GOOD.replace("https://hub.example.com", "ftp://x")).starts_with("agent.hub_url:"));
        assert!(err_key(&GOOD.replace("command = \"npx\"\n", "")).starts_with("servers[0].command:"));
        assert!(err_key(&GOOD.replace("transport = \"http\"", "transport = \"carrier-pigeon\"")).starts_with("servers[1].transport:"));
        assert!(err_key(&GOOD.replace("url = \"http://127.0.0.1:27123/mcp\"", "url = \"file:///x\"")).starts_with("servers[1].url:"));
        assert!(err_key(&GOOD.replace("name = \"obsidian\"", "name = \"fs\"")).starts_with("servers[1].name:"));
        assert!(err_key(&GOOD.replace("name = \"obsidian\"", "name = \"a__b\"")).starts_with("servers[1].name:"));
        assert!(err_key(&GOOD.replace("args =", "argz =")).starts_with("servers[0].argz:"));
        assert!(err_key(&GOOD.replace("name = \"alice-laptop\"\n", "")).starts_with("agent.name:"));
        assert!(err_key("[agent\n").starts_with("config:1:"));
    }

    #[test]
    fn names_and_urls() {
        for ok in ["a", "alice-laptop", "0", &"x".repeat(32)] {
            validate_agent_name(ok).unwrap();
        }
        for bad in ["", "-a", "A", "a_b", "a__b", "a b", &"x".repeat(33)] {
            assert!(validate_agent_name(bad).is_err(), "{bad}");
        }
        assert!(validate_hub_url("https://hub").is_ok());
        assert!(validate_hub_url("https://u:p@hub").is_err());
        assert!(validate_hub_url("hub.example.com").is_err());
        assert!(is_loopback_host(&url::Url::parse("http://127.0.0.7:1").unwrap()));
        assert!(is_loopback_host(&url::Url::parse("http://[::1]:1").unwrap()));
        assert!(is_loopback_host(&url::Url::parse("http://localhost").unwrap()));
        assert!(!is_loopback_host(&url::Url::parse("http://10.0.0.1").unwrap()));
    }

    #[test]
    fn tokens_never_show_in_debug() {
        let t = Token::new(" ga_secret123\n").unwrap();
        assert_eq!(t.expose(), "ga_secret123");
        assert!(!format!("{t:?}").contains("secret"));
        assert!(Token::new("gk_nope12345").is_err());
        assert!(Token::new("ga_a b c d e").is_err());
    }

    #[test]
    fn expands_variables() {
        let env = MapEnv::from_pairs([("T", "tok")]);
        assert_eq!(expand_vars("Bearer ${T}!", &env).unwrap(), "Bearer tok!");
        assert!(expand_vars("${NOPE}", &env).unwrap_err().contains("NOPE"));
    }

    #[test]
    fn doc_edits_keep_comments() {
        let text = format!("# top comment\n{GOOD}\n# trailing comment\n");
        let mut doc = ConfigDoc::parse(&text).unwrap();
        doc.add_server(&ServerConfig {
            name: "web".into(),
            transport: Transport::Http,
            command: None,
            args: vec![],
            env: BTreeMap::new(),
            cwd: None,
            url: Some("http://127.0.0.1:1/mcp".into()),
            headers: BTreeMap::new(),
        })
        .unwrap();
        assert!(doc.remove_server("fs"));
        assert!(!doc.remove_server("fs"));
        let out = doc.to_string();
        assert!(out.contains("# top comment") && out.contains("# trailing comment"), "{out}");
        assert_eq!(doc.server_names(), ["obsidian", "web"]);
        doc.check().unwrap();
    }
}
