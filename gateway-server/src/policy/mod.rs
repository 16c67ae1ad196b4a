//! The policy engine: ordered allow/deny rules over who is calling and what
//! they call, compiled in memory, applied to every list and every call.

use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::store::Store;

/// `[policy]`: policy settings.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct PolicyConfig {}

impl PolicyConfig {
    /// Applies `GATEHOUSE_POLICY_*` variables.
    pub(crate) fn apply_env(&mut self, _l: &mut crate::config::EnvLayer<'_>) -> Result<(), crate::config::ConfigError> {
        Ok(())
    }

    /// Checks every value; the error names the offending key (`policy.…`).
    pub fn validate(&self) -> Result<(), crate::config::ConfigError> {
        Ok(())
    }
}

/// The compiled rule set in force. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Policies {}

impl Policies {
    /// Loads and compiles the stored rules.
    pub async fn start(_config: &Config, _store: &Store) -> anyhow::Result<Self> {
        Ok(Self {})
    }
}
