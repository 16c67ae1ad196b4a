//! Console (dashboard) logins: argon2 passwords, signed session tokens in
//! HttpOnly cookies, CSRF protection, login throttling, and the one-time
//! setup link that creates the first admin.

use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::store::Store;

/// `[console]`: dashboard login settings.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConsoleConfig {}

impl ConsoleConfig {
    /// Applies `GATEHOUSE_CONSOLE_*` variables.
    pub(crate) fn apply_env(&mut self, _l: &mut crate::config::EnvLayer<'_>) -> Result<(), crate::config::ConfigError> {
        Ok(())
    }

    /// Checks every value; the error names the offending key (`console.…`).
    pub fn validate(&self) -> Result<(), crate::config::ConfigError> {
        Ok(())
    }
}

/// Console sign-in state shared by the admin API.
#[derive(Debug, Clone)]
pub struct Console {}

impl Console {
    /// Prepares console sign-in for `store`.
    pub async fn start(_config: &Config, _store: &Store) -> anyhow::Result<Self> {
        Ok(Self {})
    }
}
