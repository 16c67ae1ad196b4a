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

/// What a decision is about.
pub struct PolicyInput<'a> {
    pub user_id: &'a str,
    pub username: &'a str,
    pub role: &'a crate::store::Role,
    pub key_id: Option<&'a str>,
    pub key_name: Option<&'a str>,
    pub agent: Option<&'a str>,
    pub client_app: Option<&'a str>,
    pub backend: &'a str,
    pub tool: &'a str,
    pub risk: crate::registry::Risk,
}

/// The rule that decided.
#[derive(Debug, Clone)]
pub struct RuleRef {
    pub id: String,
    pub name: String,
    pub position: i64,
}

/// A decision.
#[derive(Debug, Clone)]
pub struct Decision {
    pub allowed: bool,
    pub rule: Option<RuleRef>,
    pub reason: String,
}

impl Decision {
    /// The JSON-RPC refusal.
    pub fn to_error_object(&self, exposed: &str) -> gatehouse_proto::ErrorObject {
        gatehouse_proto::ErrorObject::new(gatehouse_proto::mcp::code::POLICY_DENIED, format!("Tool '{exposed}' denied"))
    }
}

impl Policies {
    /// Decides.
    pub fn evaluate(&self, _input: &PolicyInput<'_>) -> Decision {
        Decision { allowed: true, rule: None, reason: String::new() }
    }

    /// Visibility.
    pub fn backend_visible(&self, _username: &str, _role: &crate::store::Role, _backend: &str) -> bool {
        true
    }
}

/// Key allowlist.
pub fn key_allows(_tool_globs: &[String], _exposed_name: &str, _backend_tool: &str) -> bool {
    true
}
