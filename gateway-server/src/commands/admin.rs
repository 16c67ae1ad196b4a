//! `gateway-server admin ...`: console administrators, written straight to
//! the store the config names (there is no default password anywhere).
//!
//! The password is read from standard input with `--password-stdin`, else
//! prompted for on the terminal without echo; never from the command line,
//! where `ps` would show it.

use std::io::Read;
use std::path::Path;

use anyhow::Context;
use clap::{Args, Subcommand};

use crate::auth::console::{self, MAX_PASSWORD_LEN, SETUP_TOKEN_SETTING};
use crate::config::{self, ProcessEnv};
use crate::store::{Role, Store};

/// `admin` subcommands.
#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Create an admin who can sign in to the console (or, with --force, make an existing user one)
    Create(CreateArgs),
}

/// Arguments of `admin create`.
#[derive(Debug, Clone, Args)]
pub struct CreateArgs {
    /// The admin's username
    #[arg(long, value_name = "USER")]
    pub username: String,

    /// Read the password from standard input (one line) instead of prompting
    #[arg(long)]
    pub password_stdin: bool,

    /// Make an existing user an enabled admin with this password
    #[arg(long)]
    pub force: bool,
}

/// Runs an `admin` subcommand.
pub async fn run(config_path: Option<&Path>, command: AdminCommand) -> anyhow::Result<()> {
    match command {
        AdminCommand::Create(args) => {
            let password = if args.password_stdin { password_from_stdin()? } else { password_from_terminal(&args.username)? };
            let line = create(config_path, &args, &password).await?;
            super::print_stdout(&line)
        }
    }
}

/// The first line of standard input, without its line ending.
fn password_from_stdin() -> anyhow::Result<String> {
    let mut buf = Vec::new();
    // One byte more than the longest accepted password plus a CRLF tells "too long" apart.
    std::io::stdin().take((MAX_PASSWORD_LEN + 3) as u64).read_to_end(&mut buf).context("--password-stdin: cannot read standard input")?;
    let text = String::from_utf8(buf).map_err(|_| anyhow::anyhow!("--password-stdin: the password is not valid UTF-8"))?;
    let line = text.split('\n').next().unwrap_or_default();
    Ok(line.strip_suffix('\r').unwrap_or(line).to_owned())
}

fn password_from_terminal(username: &str) -> anyhow::Result<String> {
    let no_tty = |e: std::io::Error| anyhow::anyhow!("cannot prompt for the password ({e}); use --password-stdin");
    let first = rpassword::prompt_password(format!("Password for {username}: ")).map_err(no_tty)?;
    let second = rpassword::prompt_password("Repeat the password: ").map_err(no_tty)?;
    if first != second {
        anyhow::bail!("the passwords differ");
    }
    Ok(first)
}

/// Creates (or with `force` promotes) the admin and returns the one line
/// `admin create` prints.
pub async fn create(config_path: Option<&Path>, args: &CreateArgs, password: &str) -> anyhow::Result<String> {
    console::check_new_password(&args.username, password).map_err(|why| anyhow::anyhow!("password: {why}"))?;
    let config = config::load(config_path, &ProcessEnv)?;
    let store = Store::from_config(&config.database).await.context("cannot open the database")?;
    let result = async {
        let owned = password.to_owned();
        let hash = tokio::task::spawn_blocking(move || console::hash_password(&owned)).await.context("password hashing")??;
        let line = match store.user_account_by_name(&args.username).await? {
            None => {
                let user = store.create_account(&args.username, Role::Admin, Some(&hash)).await?;
                format!("created admin {}\n", user.username)
            }
            Some(user) if args.force => {
                store.make_admin(&user.id, &hash).await?;
                // The old password's sessions must not outlive it.
                store.delete_console_sessions_of(&user.id, None).await?;
                format!("{} is now an admin with the new password (was {})\n", user.username, user.role)
            }
            Some(user) => {
                anyhow::bail!("user `{}` already exists; add --force to make it an admin with this password", user.username)
            }
        };
        // An admin who can sign in exists now: a pending setup link must stop working.
        store.delete_setting(SETUP_TOKEN_SETTING).await?;
        anyhow::Ok(line)
    }
    .await;
    store.close().await;
    result
}
