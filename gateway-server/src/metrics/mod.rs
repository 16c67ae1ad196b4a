//! Prometheus metrics for `/metrics`.

use serde::{Deserialize, Serialize};

use crate::config::Config;

/// `[metrics]`: the `/metrics` endpoint.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {}

impl MetricsConfig {
    /// Applies `GATEHOUSE_METRICS_*` variables.
    pub(crate) fn apply_env(&mut self, _l: &mut crate::config::EnvLayer<'_>) -> Result<(), crate::config::ConfigError> {
        Ok(())
    }

    /// Checks every value; the error names the offending key (`metrics.…`).
    pub fn validate(&self) -> Result<(), crate::config::ConfigError> {
        Ok(())
    }
}

/// The hub's metric families. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Metrics {}

impl Metrics {
    /// Registers every metric family.
    pub fn new(_config: &Config) -> anyhow::Result<Self> {
        Ok(Self {})
    }
}

impl Metrics {
    /// Counts a request.
    pub fn observe_request(&self, _surface: &str, _method: &str, _status: &str, _elapsed: std::time::Duration) {}
    /// Counts a decision.
    pub fn policy_decision(&self, _allowed: bool) {}
    /// Counts a refusal.
    pub fn rate_limited(&self, _scope: &str) {}
}
