//! `gateway-server agents ...`: enroll, list and revoke agents in the store
//! the config names.
//!
//! Tokens are hashed with the same shared secret as API keys, so a running
//! hub using the same config accepts a new agent at once.

use std::path::Path;

use anyhow::Context;
use clap::{Args, Subcommand};

use crate::auth;
use crate::config::{self, ProcessEnv};
use crate::store::{NewAgent, Store, StoreError};

/// `agents` subcommands.
#[derive(Debug, Subcommand)]
pub enum AgentsCommand {
    /// Enroll an agent and print its token as the last line of stdout
    Enroll(EnrollArgs),
    /// List enrolled agents
    List,
    /// Revoke an agent: its token stops working
    Revoke(RevokeArgs),
}

/// Arguments of `agents enroll`.
#[derive(Debug, Clone, Args)]
pub struct EnrollArgs {
    /// Owner (must exist)
    #[arg(long, value_name = "USER")]
    pub user: String,

    /// Agent name: 1-32 of A-Z a-z 0-9 _ -, no `__`
    #[arg(long, value_name = "AGENT")]
    pub name: String,

    /// Revoke an active agent of the same name and enroll anew
    #[arg(long)]
    pub replace: bool,
}

/// Arguments of `agents revoke`.
#[derive(Debug, Clone, Args)]
pub struct RevokeArgs {
    /// The agent's name
    #[arg(value_name = "AGENT")]
    pub name: String,
}

/// Runs an `agents` subcommand.
pub async fn run(config_path: Option<&Path>, command: AgentsCommand) -> anyhow::Result<()> {
    let output = execute(config_path, command).await?;
    super::print_stdout(&output)
}

/// Runs `command` and returns what it prints.
pub async fn execute(config_path: Option<&Path>, command: AgentsCommand) -> anyhow::Result<String> {
    let config = config::load(config_path, &ProcessEnv)?;
    let store = Store::from_config(&config.database).await.context("cannot open the database")?;
    let result = match command {
        AgentsCommand::Enroll(args) => enroll(&config, &store, args).await,
        AgentsCommand::List => list(&store).await,
        AgentsCommand::Revoke(args) => revoke(&store, &args.name).await,
    };
    store.close().await;
    result
}

async fn enroll(config: &config::Config, store: &Store, args: EnrollArgs) -> anyhow::Result<String> {
    crate::store::validate_agent_name(&args.name).map_err(|e| anyhow::anyhow!("--name: {e}"))?;
    let user = store.user_by_name(&args.user).await?.with_context(|| format!("--user: no user `{}`; create it first", args.user))?;
    let secret = auth::load_secret(&config.auth, store).await?;
    let token = auth::generate_agent_token();
    let new = NewAgent {
        name: args.name.clone(),
        user_id: user.id.clone(),
        token_hash: auth::hash_key(&secret, &token),
        token_prefix: auth::key_prefix(&token),
    };
    let agent = store.insert_agent(new, args.replace).await.map_err(|e| match e {
        StoreError::Conflict(_) => anyhow::anyhow!("agent `{}` is already enrolled; revoke it first or pass --replace", args.name),
        e => e.into(),
    })?;
    let public = config.server.public_url.trim_end_matches('/');
    let mut out = String::new();
    out.push_str(&format!("enrolled agent \"{}\" for user {}\n", agent.name, user.username));
    out.push_str(&format!("id: {}\n", agent.id));
    out.push_str(&format!("prefix: {}\n", agent.token_prefix));
    out.push_str(&format!("install: curl -fsSL {public}/install.sh | sh -s -- --token <token> --name {}\n", agent.name));
    out.push_str("the token is shown only once; store it now:\n");
    out.push_str(&token);
    out.push('\n');
    Ok(out)
}

async fn list(store: &Store) -> anyhow::Result<String> {
    let agents = store.list_agents(None).await?;
    if agents.is_empty() {
        return Ok("no agents enrolled\n".to_owned());
    }
    let mut out = format!("{:<32}  {:<20}  {:<10}  {:<8}  {}\n", "NAME", "OWNER", "PREFIX", "STATE", "LAST SEEN");
    for a in agents {
        let state = if a.is_active() { "active" } else { "revoked" };
        let seen = a.last_seen_at.map_or_else(|| "never".to_owned(), |t| t.to_rfc3339());
        out.push_str(&format!("{:<32}  {:<20}  {:<10}  {:<8}  {seen}\n", a.name, a.username, a.token_prefix, state));
    }
    Ok(out)
}

async fn revoke(store: &Store, name: &str) -> anyhow::Result<String> {
    if store.revoke_agent(name).await? { Ok(format!("revoked agent \"{name}\"\n")) } else { anyhow::bail!("no active agent `{name}`") }
}
