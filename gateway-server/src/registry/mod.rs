//! The tool registry: every tool seen from every backend and agent, with its
//! risk, the admin's enabled flag, and the pinned definition.

use crate::config::Config;
use crate::store::Store;

/// Handle to the registry. Cheap to clone.
#[derive(Debug, Clone)]
pub struct ToolRegistry {}

impl ToolRegistry {
    /// Loads the stored registry.
    pub async fn start(_config: &Config, _store: &Store) -> anyhow::Result<Self> {
        Ok(Self {})
    }
}

/// How much harm a call of a tool can do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Risk {
    Low,
    Medium,
    High,
}

/// The registry's view of one tool.
#[derive(Debug, Clone)]
pub struct ToolInfo {
    pub id: String,
    pub risk: Risk,
    pub enabled: bool,
    pub held: bool,
    pub changed: bool,
}

/// The risk of a tool from its definition.
pub fn assess_risk(_tool: &serde_json::Map<String, serde_json::Value>) -> Risk {
    Risk::Medium
}

impl ToolRegistry {
    /// Records the tools a backend offers.
    pub async fn sync_backend(
        &self,
        _backend: &str,
        _agent: Option<&str>,
        _tools: &[serde_json::Map<String, serde_json::Value>],
    ) -> Result<(), std::io::Error> {
        Ok(())
    }

    /// The state of one tool.
    pub fn lookup(&self, _backend: &str, _tool: &str) -> Option<ToolInfo> {
        None
    }
}
