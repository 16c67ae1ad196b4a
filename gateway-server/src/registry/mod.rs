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
