//! `gateway-server keys ...`: manage API keys in the store the config names.
//!
//! Keys are written straight to the store with the shared hashing secret, so
//! a running hub using the same config accepts them at once.

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand};

use crate::auth;
use crate::config::{self, ProcessEnv};
use crate::store::{NewApiKey, Role, Store};

/// Surfaces a key can be limited to.
pub use crate::admin::keys::SURFACES;

/// `keys` subcommands. Adding one is one variant here plus its `run` arm.
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Create an API key and print it as the last line of stdout
    Create(CreateArgs),
}

/// Arguments of `keys create`.
#[derive(Debug, Clone, Args)]
pub struct CreateArgs {
    /// Owner; created when absent (admin if it is the first user, else developer)
    #[arg(long, value_name = "USER")]
    pub user: String,

    /// A label for the key, e.g. the machine or app using it
    #[arg(long, value_name = "NAME")]
    pub name: String,

    /// Surfaces the key may use
    #[arg(long, value_name = "SURFACE,...", value_delimiter = ',', default_values_t = SURFACES.iter().map(|s| s.to_string()).collect::<Vec<_>>())]
    pub surfaces: Vec<String>,

    /// Tool name globs the key may call [default: *]
    #[arg(long, value_name = "GLOB,...", value_delimiter = ',')]
    pub tools: Vec<String>,

    /// Lifetime such as 30d, 12h, 90m, 2w (default: no expiry)
    #[arg(long, value_name = "DUR", value_parser = parse_duration)]
    pub expires: Option<Duration>,
}

/// Runs a `keys` subcommand.
pub async fn run(config_path: Option<&Path>, command: KeysCommand) -> anyhow::Result<()> {
    match command {
        KeysCommand::Create(args) => {
            let output = create(config_path, args).await?;
            super::print_stdout(&output)
        }
    }
}

/// Creates the key and returns what `keys create` prints: information lines,
/// then the key alone on the last line.
pub async fn create(config_path: Option<&Path>, args: CreateArgs) -> anyhow::Result<String> {
    let surfaces = normalize_surfaces(&args.surfaces)?;
    let tools = normalize_tools(&args.tools)?;
    let expires_at = args
        .expires
        .map(|d| {
            chrono::Duration::from_std(d)
                .ok()
                .and_then(|d| chrono::Utc::now().checked_add_signed(d))
                .context("--expires: too far in the future")
        })
        .transpose()?;

    let config = config::load(config_path, &ProcessEnv)?;
    let store = Store::from_config(&config.database).await.context("cannot open the database")?;
    let result = async {
        let secret = auth::load_secret(&config.auth, &store).await?;
        let mut out = String::new();
        let user = match store.user_by_name(&args.user).await? {
            Some(user) => user,
            None => {
                let role = if store.count_users().await? == 0 { Role::Admin } else { Role::Developer };
                let user = store.ensure_user(&args.user, role).await?;
                out.push_str(&format!("created user {} ({})\n", user.username, user.role));
                user
            }
        };
        let key = auth::generate_api_key();
        let stored = store
            .insert_api_key(NewApiKey {
                user_id: user.id.clone(),
                name: args.name.clone(),
                prefix: auth::key_prefix(&key),
                key_hash: auth::hash_key(&secret, &key),
                surfaces,
                tools,
                expires_at,
            })
            .await?;
        out.push_str(&format!("created API key \"{}\" for user {} ({})\n", stored.name, user.username, user.role));
        out.push_str(&format!("id: {}\n", stored.id));
        out.push_str(&format!("prefix: {}\n", stored.prefix));
        out.push_str(&format!("surfaces: {}\n", stored.surfaces.join(",")));
        out.push_str(&format!("tools: {}\n", stored.tools.join(",")));
        match stored.expires_at {
            Some(at) => out.push_str(&format!("expires: {}\n", at.to_rfc3339())),
            None => out.push_str("expires: never\n"),
        }
        out.push_str("the key is shown only once; store it now:\n");
        out.push_str(&key);
        out.push('\n');
        anyhow::Ok(out)
    }
    .await;
    store.close().await;
    result
}

/// The non-empty, trimmed entries of a comma-separated flag.
fn entries(given: &[String]) -> Vec<String> {
    given.iter().map(|s| s.trim()).filter(|s| !s.is_empty()).map(str::to_owned).collect()
}

// Same rules as the admin API (`POST /api/v1/keys`), errors named after the flag.
fn normalize_surfaces(given: &[String]) -> anyhow::Result<Vec<String>> {
    crate::admin::keys::normalize_surfaces(Some(&entries(given))).map_err(|e| anyhow::anyhow!("--{e}"))
}

fn normalize_tools(given: &[String]) -> anyhow::Result<Vec<String>> {
    crate::admin::keys::normalize_tools(Some(&entries(given))).map_err(|e| anyhow::anyhow!("--{e}"))
}

/// Parses `30d`, `12h`, `90m`, `45s`, `2w` (a positive whole number and a unit).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).ok_or_else(|| format!("`{text}` has no unit; use e.g. 30d, 12h, 90m"))?;
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().map_err(|_| format!("`{text}` does not start with a number"))?;
    let unit_secs = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => return Err(format!("unknown unit `{unit}`; use s, m, h, d or w")),
    };
    if number == 0 {
        return Err("must be greater than 0".to_owned());
    }
    number.checked_mul(unit_secs).map(Duration::from_secs).ok_or_else(|| format!("`{text}` is too long"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30d").unwrap(), Duration::from_secs(30 * 86_400));
        assert_eq!(parse_duration("12h").unwrap(), Duration::from_secs(12 * 3600));
        assert_eq!(parse_duration("90m").unwrap(), Duration::from_secs(90 * 60));
        assert_eq!(parse_duration("45s").unwrap(), Duration::from_secs(45));
        assert_eq!(parse_duration("2w").unwrap(), Duration::from_secs(14 * 86_400));
        for bad in ["", "30", "d", "0d", "3x", "-1d", "1.5h", "99999999999999999999d", "18446744073709551615w"] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn surfaces_and_tools() {
        let s = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(normalize_surfaces(&s(&["ai", "mcp", "ai"])).unwrap(), s(&["ai", "mcp"]));
        assert!(normalize_surfaces(&s(&["web"])).is_err());
        assert!(normalize_surfaces(&s(&[""])).is_err());
        assert_eq!(normalize_tools(&[]).unwrap(), s(&["*"]));
        assert_eq!(normalize_tools(&s(&["fs__*", " git__log "])).unwrap(), s(&["fs__*", "git__log"]));
        assert!(normalize_tools(&s(&["fs__["])).unwrap_err().to_string().starts_with("--tools: "));
    }
}
