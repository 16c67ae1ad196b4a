//! Agents: `gateway-agent` processes that dial out to the hub and bring the
//! MCP servers of their machine behind it.
//!
//! Enrolment (tokens, owners, sharing) lives in the store
//! ([`crate::store::Agent`]); this module keeps what only the running hub
//! knows: which agents are connected right now, through which connection,
//! which hub backends are their servers, and who may see those. The tunnel
//! endpoint ([`tunnel`]) registers a connection once it is authenticated and
//! its `hello` checked, and unregisters it when it ends; the admin API ends
//! connections (revocation) and refreshes sharing; the MCP gate asks
//! [`AgentRegistry::visible_to`] on every list and call.
//!
//! Visibility: an agent's servers are visible to its owner and to the users
//! and roles its sharing names, and to nobody else — administrators included,
//! unless shared with them or their role. An agent runs on someone's machine
//! with their files: seeing it is a grant, not a privilege of rank.

pub mod install;
pub mod releases;
pub mod tunnel;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::{Mutex, RwLock};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::config::ConfigError;
use crate::store::{AgentSharing, Role};

/// `[agents]`: the tunnel's liveness settings and the agent releases served to installers.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AgentsConfig {
    /// Seconds between `ping` frames when a tunnel is quiet.
    pub ping_interval_secs: u64,
    /// Seconds without any frame after which a tunnel is dead.
    pub dead_after_secs: u64,
    /// The pause, in milliseconds, agents are told to wait before they
    /// reconnect when the hub shuts down (`drain`).
    pub drain_reconnect_after_ms: u64,
    /// Directory holding `manifest.json` and the agent binaries it names,
    /// served read-only under `/agent/releases/`; relative to the config file.
    pub releases_dir: Option<PathBuf>,
}

impl Default for AgentsConfig {
    fn default() -> Self {
        Self {
            ping_interval_secs: gatehouse_proto::tunnel::PING_INTERVAL.as_secs(),
            dead_after_secs: gatehouse_proto::tunnel::DEAD_AFTER.as_secs(),
            drain_reconnect_after_ms: 1000,
            releases_dir: None,
        }
    }
}

impl AgentsConfig {
    /// Applies `GATEHOUSE_AGENTS_*` variables.
    pub(crate) fn apply_env(&mut self, l: &mut crate::config::EnvLayer<'_>) -> Result<(), ConfigError> {
        l.number("agents.ping_interval_secs", &mut self.ping_interval_secs)?;
        l.number("agents.dead_after_secs", &mut self.dead_after_secs)?;
        l.number("agents.drain_reconnect_after_ms", &mut self.drain_reconnect_after_ms)?;
        l.path("agents.releases_dir", &mut self.releases_dir);
        Ok(())
    }

    /// Checks every value; the error names the offending key (`agents.…`).
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !(1..=3600).contains(&self.ping_interval_secs) {
            return Err(ConfigError::invalid("agents.ping_interval_secs", "must be between 1 and 3600"));
        }
        if self.dead_after_secs <= self.ping_interval_secs || self.dead_after_secs > 7200 {
            return Err(ConfigError::invalid("agents.dead_after_secs", "must be greater than agents.ping_interval_secs and at most 7200"));
        }
        if self.drain_reconnect_after_ms > 600_000 {
            return Err(ConfigError::invalid("agents.drain_reconnect_after_ms", "must be at most 600000"));
        }
        if self.releases_dir.as_ref().is_some_and(|d| d.as_os_str().is_empty()) {
            return Err(ConfigError::invalid("agents.releases_dir", "must not be empty"));
        }
        Ok(())
    }

    /// Resolves a relative `releases_dir` against the config file's folder.
    pub(crate) fn resolve_paths(&mut self, base: &std::path::Path) {
        if let Some(dir) = &mut self.releases_dir
            && dir.is_relative()
        {
            *dir = base.join(&*dir);
        }
    }
}

/// Why the hub ends an agent's connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndReason {
    /// A newer connection with the same token took over.
    Replaced,
    /// The agent's token was revoked.
    Revoked,
    /// The hub is shutting down; the agent should come back after this many milliseconds.
    Drain(u64),
}

/// The hub's handle on one live tunnel connection.
#[derive(Debug, Clone)]
pub(crate) struct ConnHandle {
    pub id: u64,
    /// Frames to send on the socket.
    pub writer: mpsc::Sender<gatehouse_proto::tunnel::Frame>,
    /// Fired to end the connection; the reason is in `why`.
    pub end: CancellationToken,
    pub why: Arc<Mutex<Option<EndReason>>>,
}

impl ConnHandle {
    fn finish(&self, reason: EndReason) {
        self.why.lock().get_or_insert(reason);
        self.end.cancel();
    }
}

/// Who may see an agent's servers.
#[derive(Debug, Clone, Default)]
struct Access {
    owner_id: String,
    users: Vec<String>,
    roles: Vec<Role>,
}

impl Access {
    fn new(owner_id: &str, sharing: &AgentSharing) -> Self {
        Self {
            owner_id: owner_id.to_owned(),
            users: sharing.users.clone(),
            // Sharing is validated when set; a role that no longer parses shares nothing.
            roles: sharing.roles.iter().filter_map(|r| r.parse().ok()).collect(),
        }
    }

    fn allows(&self, user_id: &str, username: &str, role: &Role) -> bool {
        self.owner_id == user_id || self.users.iter().any(|u| u == username) || self.roles.contains(role)
    }
}

/// One connected agent: its access rules, its live connection and its
/// servers. It outlives a connection that is replaced by a newer one, so the
/// servers are handed over instead of removed and added again.
#[derive(Debug)]
pub struct AgentSlot {
    pub name: Arc<str>,
    access: RwLock<Access>,
    conn: Mutex<Option<ConnHandle>>,
    /// The agent's servers that are hub backends now, by server name; the
    /// lock serializes the connections' changes to them.
    pub(crate) servers: Mutex<BTreeMap<String, Arc<tunnel::ServerPort>>>,
}

impl AgentSlot {
    /// The live connection, if any.
    pub(crate) fn current(&self) -> Option<ConnHandle> {
        self.conn.lock().clone()
    }
}

#[derive(Debug, Default)]
struct Inner {
    agents: RwLock<HashMap<String, Arc<AgentSlot>>>,
    /// Hub backend name → the agent whose server it is.
    backends: RwLock<HashMap<Arc<str>, Arc<AgentSlot>>>,
    /// Agents marked present without a tunnel to this hub ([`AgentRegistry::set_online`]).
    elsewhere: RwLock<std::collections::BTreeSet<String>>,
    next_conn: AtomicU64,
}

/// The agents connected to this hub. Cheap to clone; clones share the state.
#[derive(Debug, Clone, Default)]
pub struct AgentRegistry {
    inner: Arc<Inner>,
}

impl AgentRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Marks agent `name` present (or not) without a tunnel to this hub:
    /// for presence learnt another way (another hub, tests). A tunnel
    /// connected here makes an agent online whatever this says.
    pub fn set_online(&self, name: &str, online: bool) {
        let mut set = self.inner.elsewhere.write();
        if online {
            set.insert(name.to_owned());
        } else {
            set.remove(name);
        }
    }

    /// Whether agent `name` is connected.
    pub fn is_online(&self, name: &str) -> bool {
        self.inner.agents.read().contains_key(name) || self.inner.elsewhere.read().contains(name)
    }

    /// How many agents are connected.
    pub fn online_count(&self) -> usize {
        self.online().len()
    }

    /// The names of the connected agents, sorted.
    pub fn online(&self) -> Vec<String> {
        let mut names: std::collections::BTreeSet<String> = self.inner.agents.read().keys().cloned().collect();
        names.extend(self.inner.elsewhere.read().iter().cloned());
        names.into_iter().collect()
    }

    /// Registers a new connection of agent `name` (owned by `owner_id`,
    /// shared as `sharing`). A connection of the same agent that is still
    /// live is told to end as [`EndReason::Replaced`]; the slot, and with it
    /// the agent's servers, passes to the new connection.
    pub(crate) fn connect(
        &self,
        name: &str,
        owner_id: &str,
        sharing: &AgentSharing,
        writer: mpsc::Sender<gatehouse_proto::tunnel::Frame>,
    ) -> (Arc<AgentSlot>, ConnHandle) {
        let conn = ConnHandle {
            id: self.inner.next_conn.fetch_add(1, Ordering::Relaxed) + 1,
            writer,
            end: CancellationToken::new(),
            why: Arc::default(),
        };
        let mut agents = self.inner.agents.write();
        let slot = agents
            .entry(name.to_owned())
            .or_insert_with(|| {
                Arc::new(AgentSlot {
                    name: Arc::from(name),
                    access: RwLock::new(Access::default()),
                    conn: Mutex::new(None),
                    servers: Mutex::default(),
                })
            })
            .clone();
        *slot.access.write() = Access::new(owner_id, sharing);
        let old = slot.conn.lock().replace(conn.clone());
        if let Some(old) = old {
            old.finish(EndReason::Replaced);
        }
        (slot, conn)
    }

    /// Unregisters connection `conn_id` of `slot`. When it was the agent's
    /// live connection the agent goes offline and `offline` runs (removing
    /// its servers) before a new connection of the agent can register, so
    /// that one never meets the old servers; returns true then. False when a
    /// newer connection took over.
    pub(crate) fn disconnect(&self, slot: &Arc<AgentSlot>, conn_id: u64, offline: impl FnOnce()) -> bool {
        let mut agents = self.inner.agents.write();
        {
            let mut conn = slot.conn.lock();
            if conn.as_ref().is_none_or(|c| c.id != conn_id) {
                return false;
            }
            *conn = None;
        }
        if agents.get(&*slot.name).is_some_and(|s| Arc::ptr_eq(s, slot)) {
            agents.remove(&*slot.name);
        }
        offline();
        true
    }

    /// Ends agent `name`'s live connection, if any, for `reason`.
    pub fn end(&self, name: &str, reason: EndReason) -> bool {
        let conn = self.inner.agents.read().get(name).and_then(|s| s.current());
        match conn {
            Some(c) => {
                c.finish(reason);
                true
            }
            None => false,
        }
    }

    /// Ends every live connection for `reason` (hub shutdown).
    pub fn end_all(&self, reason: EndReason) -> usize {
        let conns: Vec<ConnHandle> = self.inner.agents.read().values().filter_map(|s| s.current()).collect();
        for c in &conns {
            c.finish(reason);
        }
        conns.len()
    }

    /// New sharing for agent `name` (applies at once when it is connected).
    pub fn set_sharing(&self, name: &str, owner_id: &str, sharing: &AgentSharing) {
        if let Some(slot) = self.inner.agents.read().get(name) {
            *slot.access.write() = Access::new(owner_id, sharing);
        }
    }

    /// Records that hub backend `backend` is a server of `slot`'s agent.
    /// False (and nothing changes) when another agent claims the name.
    pub(crate) fn bind_backend(&self, backend: &Arc<str>, slot: &Arc<AgentSlot>) -> bool {
        let mut map = self.inner.backends.write();
        match map.get(backend) {
            Some(s) if !Arc::ptr_eq(s, slot) => false,
            _ => {
                map.insert(backend.clone(), slot.clone());
                true
            }
        }
    }

    /// Forgets that `backend` is a server of `slot`'s agent.
    pub(crate) fn unbind_backend(&self, backend: &str, slot: &Arc<AgentSlot>) {
        let mut map = self.inner.backends.write();
        if map.get(backend).is_some_and(|s| Arc::ptr_eq(s, slot)) {
            map.remove(backend);
        }
    }

    /// The agent whose server hub backend `backend` is, if it is one.
    pub fn agent_of(&self, backend: &str) -> Option<Arc<str>> {
        self.inner.backends.read().get(backend).map(|s| s.name.clone())
    }

    /// `None` when `backend` is not an agent's server; else whether the user
    /// may see it (owner, or named in the agent's sharing by name or role).
    pub fn visible_to(&self, backend: &str, user_id: &str, username: &str, role: &Role) -> Option<bool> {
        let map = self.inner.backends.read();
        let slot = map.get(backend)?;
        Some(slot.access.read().allows(user_id, username, role))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sharing(users: &[&str], roles: &[&str]) -> AgentSharing {
        AgentSharing { users: users.iter().map(|s| (*s).to_owned()).collect(), roles: roles.iter().map(|s| (*s).to_owned()).collect() }
    }

    #[tokio::test]
    async fn presence_follows_connections_and_replacement_keeps_the_slot() {
        let reg = AgentRegistry::new();
        let (tx, _rx) = mpsc::channel(1);
        let (slot, first) = reg.connect("laptop", "u1", &AgentSharing::default(), tx.clone());
        assert!(reg.is_online("laptop"));
        let (slot2, second) = reg.connect("laptop", "u1", &AgentSharing::default(), tx);
        assert!(Arc::ptr_eq(&slot, &slot2));
        assert!(first.end.is_cancelled());
        assert_eq!(*first.why.lock(), Some(EndReason::Replaced));
        // The replaced connection's end does not take the agent offline.
        assert!(!reg.disconnect(&slot, first.id, || panic!("not offline")));
        assert!(reg.is_online("laptop"));
        assert!(reg.end("laptop", EndReason::Revoked));
        assert_eq!(*second.why.lock(), Some(EndReason::Revoked));
        let mut ran = false;
        assert!(reg.disconnect(&slot, second.id, || ran = true));
        assert!(ran);
        assert!(!reg.is_online("laptop"));
        assert_eq!(reg.online_count(), 0);
    }

    #[tokio::test]
    async fn agent_backends_are_visible_to_owner_and_shares_only() {
        let reg = AgentRegistry::new();
        let (tx, _rx) = mpsc::channel(1);
        let (slot, _c) = reg.connect("laptop", "u1", &sharing(&["bob"], &["viewer"]), tx);
        let backend: Arc<str> = Arc::from("laptop__fs");
        assert!(reg.bind_backend(&backend, &slot));
        assert_eq!(reg.visible_to("other", "u9", "eve", &Role::Admin), None, "hub backends are not the registry's business");
        assert_eq!(reg.visible_to("laptop__fs", "u1", "alice", &Role::Developer), Some(true));
        assert_eq!(reg.visible_to("laptop__fs", "u2", "bob", &Role::Developer), Some(true));
        assert_eq!(reg.visible_to("laptop__fs", "u3", "carol", &Role::Viewer), Some(true));
        assert_eq!(reg.visible_to("laptop__fs", "u4", "root", &Role::Admin), Some(false), "admins only when shared");
        reg.set_sharing("laptop", "u1", &AgentSharing::default());
        assert_eq!(reg.visible_to("laptop__fs", "u2", "bob", &Role::Developer), Some(false));
        assert_eq!(reg.agent_of("laptop__fs").as_deref(), Some("laptop"));
        reg.unbind_backend("laptop__fs", &slot);
        assert_eq!(reg.agent_of("laptop__fs"), None);
    }

    #[test]
    fn config_checks_name_the_key() {
        let mut c = AgentsConfig::default();
        c.validate().unwrap();
        c.dead_after_secs = c.ping_interval_secs;
        assert_eq!(c.validate().unwrap_err().key(), Some("agents.dead_after_secs"));
        c = AgentsConfig { ping_interval_secs: 0, ..AgentsConfig::default() };
        assert_eq!(c.validate().unwrap_err().key(), Some("agents.ping_interval_secs"));
    }
}
