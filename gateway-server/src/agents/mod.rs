//! Agents: `gateway-agent` processes that dial out to the hub and bring the
//! MCP servers of their machine behind it.
//!
//! Enrolment (tokens, owners, sharing) lives in the store
//! ([`crate::store::Agent`]); this module keeps what only the running hub
//! knows: which agents are connected right now. The tunnel endpoint marks an
//! agent online when its connection is authenticated and offline when it
//! ends; the admin API and `/metrics` read the set.

use std::collections::BTreeSet;
use std::sync::Arc;

use parking_lot::RwLock;

/// The agents connected to this hub. Cheap to clone; clones share the set.
#[derive(Debug, Clone, Default)]
pub struct AgentRegistry {
    online: Arc<RwLock<BTreeSet<String>>>,
}

impl AgentRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Marks agent `name` connected (`true`) or gone (`false`).
    pub fn set_online(&self, name: &str, online: bool) {
        let mut set = self.online.write();
        if online {
            set.insert(name.to_owned());
        } else {
            set.remove(name);
        }
    }

    /// Whether agent `name` is connected.
    pub fn is_online(&self, name: &str) -> bool {
        self.online.read().contains(name)
    }

    /// How many agents are connected.
    pub fn online_count(&self) -> usize {
        self.online.read().len()
    }

    /// The names of the connected agents, sorted.
    pub fn online(&self) -> Vec<String> {
        self.online.read().iter().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presence_is_shared_by_clones() {
        let a = AgentRegistry::new();
        let b = a.clone();
        a.set_online("laptop", true);
        assert!(b.is_online("laptop"));
        assert_eq!(b.online_count(), 1);
        b.set_online("laptop", false);
        assert!(!a.is_online("laptop"));
        assert_eq!(a.online(), Vec::<String>::new());
    }
}
