//! Rate limits: requests per minute/hour/day per user, key, backend and
//! tool over sliding windows.

use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::store::Store;

/// `[limits]`: rate limit settings.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {}

impl LimitsConfig {
    /// Applies `GATEHOUSE_LIMITS_*` variables.
    pub(crate) fn apply_env(&mut self, _l: &mut crate::config::EnvLayer<'_>) -> Result<(), crate::config::ConfigError> {
        Ok(())
    }

    /// Checks every value; the error names the offending key (`limits.…`).
    pub fn validate(&self) -> Result<(), crate::config::ConfigError> {
        Ok(())
    }
}

/// The limiter. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Limits {}

impl Limits {
    /// Loads the configured and stored limits.
    pub async fn start(_config: &Config, _store: &Store) -> anyhow::Result<Self> {
        Ok(Self {})
    }
}

/// Who/what a limit check is about.
pub struct LimitInput<'a> {
    pub user_id: &'a str,
    pub username: &'a str,
    pub key_id: Option<&'a str>,
    pub backend: Option<&'a str>,
    pub tool: Option<&'a str>,
}

/// A refusal.
#[derive(Debug, Clone)]
pub struct LimitRefusal {
    pub rule_id: String,
    pub scope: String,
}

impl LimitRefusal {
    /// JSON-RPC error.
    pub fn to_error_object(&self) -> gatehouse_proto::ErrorObject {
        gatehouse_proto::ErrorObject::new(gatehouse_proto::mcp::code::RATE_LIMITED, "limited")
    }
}

impl Limits {
    /// Checks.
    pub fn check(&self, _input: &LimitInput<'_>) -> Result<(), LimitRefusal> {
        Ok(())
    }
}
