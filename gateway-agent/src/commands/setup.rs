//! `gateway-agent setup`: the first-run wizard. Asks for (or takes) the hub
//! URL, the agent's name and its token, writes the config and the 0600 token
//! file, and tests the connection.
//!
//! For scripts: `--hub URL --name N --non-interactive` with the token from
//! `--token-stdin` (preferred: nothing in argv) or `--token T`.

use std::io::{BufRead as _, IsTerminal as _, Write as _};
use std::time::Duration;

use super::{Global, exit_with};
use crate::config::{ConfigDoc, Token, validate_agent_name, validate_hub_url, write_token};

/// Options of `setup`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct Args {
    /// The hub's URL, e.g. https://hub.example.com.
    #[arg(long)]
    pub hub: Option<String>,
    /// The agent's name, as enrolled on the hub.
    #[arg(long)]
    pub name: Option<String>,
    /// The agent token (visible to other users in the process list: prefer --token-stdin).
    #[arg(long, conflicts_with = "token_stdin")]
    pub token: Option<String>,
    /// Read the token from the first line of stdin.
    #[arg(long)]
    pub token_stdin: bool,
    /// Never prompt; fail when something is missing.
    #[arg(long)]
    pub non_interactive: bool,
    /// Do not check the hub and the tunnel.
    #[arg(long)]
    pub skip_check: bool,
    /// Allow plain http:// to a hub that is not on this machine.
    #[arg(long)]
    pub insecure: bool,
}

fn prompt(question: &str, default: Option<&str>) -> anyhow::Result<String> {
    let mut err = std::io::stderr();
    match default {
        Some(d) => write!(err, "{question} [{d}]: ")?,
        None => write!(err, "{question}: ")?,
    }
    err.flush()?;
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    let line = line.trim();
    Ok(if line.is_empty() { default.unwrap_or_default().to_owned() } else { line.to_owned() })
}

/// Asks until `check` accepts the answer.
fn ask<T>(question: &str, default: Option<&str>, check: impl Fn(&str) -> Result<T, String>) -> anyhow::Result<T> {
    loop {
        let answer = prompt(question, default)?;
        match check(&answer) {
            Ok(v) => return Ok(v),
            Err(e) => eprintln!("  {e}"),
        }
    }
}

fn default_name() -> String {
    let raw = std::fs::read_to_string("/etc/hostname")
        .ok()
        .or_else(|| std::env::var("COMPUTERNAME").ok())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_default();
    let mut name: String = raw.trim().to_lowercase().chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '-' }).collect();
    while name.contains("--") {
        name = name.replace("--", "-");
    }
    let name: String = name.trim_matches('-').chars().take(32).collect();
    if validate_agent_name(&name).is_ok() { name } else { "my-agent".into() }
}

async fn reachable(hub: &url::Url) -> Result<(), String> {
    let health = format!("{}/health/live", hub.as_str().trim_end_matches('/'));
    let client = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().map_err(|e| e.to_string())?;
    match client.get(&health).send().await {
        Ok(r) if r.status().is_success() => Ok(()),
        Ok(r) => Err(format!("{health} answered {}", r.status())),
        Err(e) => Err(format!("cannot reach {health}: {e}")),
    }
}

/// Runs the wizard.
pub fn run(args: &Args, global: &Global) -> anyhow::Result<u8> {
    let paths = global.paths()?;
    let interactive = !args.non_interactive && std::io::stdin().is_terminal();
    let existing = crate::config::load(&paths.config).ok();
    let missing = |what: &str| exit_with(crate::exit::FAILURE, format!("{what} is required with --non-interactive"));

    let hub = match &args.hub {
        Some(h) => validate_hub_url(h).map_err(|e| exit_with(crate::exit::FAILURE, e))?,
        None if interactive => ask("Hub URL", existing.as_ref().map(|c| c.agent.hub_url.as_str()), validate_hub_url)?,
        None => return Err(missing("--hub")),
    };
    let rt = super::runtime()?;
    if !args.skip_check
        && let Err(e) = rt.block_on(reachable(&hub))
    {
        {
            if !interactive {
                return Err(exit_with(crate::exit::FAILURE, e));
            }
            eprintln!("  warning: {e}");
            if !prompt("Continue anyway? (y/N)", Some("n"))?.eq_ignore_ascii_case("y") {
                return Ok(crate::exit::FAILURE);
            }
        }
    }
    let name = match &args.name {
        Some(n) => {
            validate_agent_name(n).map_err(|e| exit_with(crate::exit::FAILURE, e))?;
            n.clone()
        }
        None if interactive => {
            let default = existing.as_ref().map_or_else(default_name, |c| c.agent.name.clone());
            ask("Agent name", Some(&default), |s| validate_agent_name(s).map(|()| s.to_owned()))?
        }
        None => return Err(missing("--name")),
    };
    let token = if let Some(t) = &args.token {
        Token::new(t).map_err(|e| exit_with(crate::exit::FAILURE, e))?
    } else if args.token_stdin {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line)?;
        Token::new(&line).map_err(|e| exit_with(crate::exit::FAILURE, e))?
    } else if interactive {
        loop {
            let t = rpassword::prompt_password("Agent token (ga_…, input hidden): ")?;
            match Token::new(&t) {
                Ok(t) => break t,
                Err(e) => eprintln!("  {e}"),
            }
        }
    } else {
        return Err(missing("--token-stdin (or --token)"));
    };

    let hub_text = hub.as_str().trim_end_matches('/').to_owned();
    let mut doc = if paths.config.exists() {
        ConfigDoc::load(&paths.config).map_err(|e| exit_with(crate::exit::FAILURE, e.to_string()))?
    } else {
        ConfigDoc::new(&name, &hub_text)
    };
    doc.set_agent(&name, &hub_text);
    doc.check().map_err(|e| exit_with(crate::exit::FAILURE, format!("the resulting config is invalid: {e}")))?;
    doc.save(&paths.config).map_err(|e| exit_with(crate::exit::FAILURE, e.to_string()))?;
    write_token(&paths.token, &token).map_err(|e| exit_with(crate::exit::FAILURE, e.to_string()))?;
    println!("wrote {} and {} (mode 0600)", paths.config.display(), paths.token.display());

    if !args.skip_check {
        let connector =
            crate::tunnel::WsConnector::new(&hub, token, args.insecure).map_err(|e| exit_with(crate::exit::FATAL, e.to_string()))?;
        match rt.block_on(crate::tunnel::probe(&connector, &name, Duration::from_secs(15))) {
            Ok(v) => println!("the hub (version {v}) accepted agent {name:?}"),
            Err(e) => {
                return Err(exit_with(e.exit_code().max(crate::exit::FAILURE), format!("the connection test failed: {}", e.message())));
            }
        }
    }
    println!("next: add local servers with `gateway-agent servers add NAME --stdio CMD [ARGS...]`,");
    println!("      then `gateway-agent run`, or `gateway-agent service install` to run it in the background");
    Ok(0)
}
