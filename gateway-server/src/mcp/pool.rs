//! A backend's connections: the shared one, and for a backend configured with
//! `isolation = "session"` or `"user"`, one child process per client session
//! or per user, started on first use, capped by `max_processes`, and reaped
//! when their session ends, their user's last session ends, or after sitting
//! idle for `process_idle_secs`. The shared connection always exists: it
//! serves the merged catalog.
//!
//! Each connection also keeps which sessions subscribed to which resource, so
//! `resources/subscribe` reaches the server once per URI and
//! `notifications/resources/updated` only the sessions that asked.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use gatehouse_upstream::{TransportSpec, Upstream};
use parking_lot::Mutex;

use super::floor::Floor;
use super::session::Session;
use crate::config::Isolation;

/// Default cap on a backend's isolated processes.
pub const DEFAULT_MAX_PROCESSES: usize = 32;
/// Default idle time after which an isolated process is stopped.
pub const DEFAULT_PROCESS_IDLE: Duration = Duration::from_secs(600);

/// How a backend shares its processes between client sessions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BackendOptions {
    pub isolation: Isolation,
    /// Most isolated processes at once (the shared one not counted).
    pub max_processes: usize,
    /// An isolated process with no call for this long is stopped.
    pub process_idle: Duration,
}

impl Default for BackendOptions {
    fn default() -> Self {
        Self { isolation: Isolation::Shared, max_processes: DEFAULT_MAX_PROCESSES, process_idle: DEFAULT_PROCESS_IDLE }
    }
}

/// Whose process an isolated connection is.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum InstanceKey {
    Session(String),
    User(String),
}

/// One connection to a backend.
pub struct Instance {
    /// Unique within the hub; calls in flight name the connection they run on.
    pub id: u64,
    pub upstream: Upstream,
    /// `None` for the shared connection.
    pub key: Option<InstanceKey>,
    /// Present when the transport cannot tell which call a server message belongs to.
    pub floor: Option<Arc<Floor>>,
    pub subscriptions: Subscriptions,
    last_used: Mutex<Instant>,
    busy: AtomicUsize,
}

/// Marks a connection busy while a call runs on it.
pub struct Busy<'a>(&'a Instance);

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        *self.0.last_used.lock() = Instant::now();
        self.0.busy.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Instance {
    pub fn new(id: u64, upstream: Upstream, key: Option<InstanceKey>) -> Self {
        // Streamable HTTP names the call a message belongs to by the response
        // stream it arrives on; the other transports cannot.
        let floor = (!matches!(upstream.spec().transport, TransportSpec::Http { .. })).then(|| Arc::new(Floor::default()));
        Self {
            id,
            upstream,
            key,
            floor,
            subscriptions: Subscriptions::default(),
            last_used: Mutex::new(Instant::now()),
            busy: AtomicUsize::new(0),
        }
    }

    /// True when `session`'s calls run on this connection.
    pub fn serves(&self, session: &Session) -> bool {
        match &self.key {
            None => true,
            Some(InstanceKey::Session(id)) => session.id == *id,
            Some(InstanceKey::User(user)) => session.owner == *user,
        }
    }

    pub fn begin(&self) -> Busy<'_> {
        self.busy.fetch_add(1, Ordering::AcqRel);
        *self.last_used.lock() = Instant::now();
        Busy(self)
    }

    /// How long the connection has had no call; `None` while one runs.
    pub fn idle_for(&self) -> Option<Duration> {
        (self.busy.load(Ordering::Acquire) == 0).then(|| self.last_used.lock().elapsed())
    }
}

/// Who subscribed to which resource on one connection: backend URI →
/// (session id → the URI that session used).
#[derive(Default)]
pub struct Subscriptions(Mutex<HashMap<String, HashMap<String, String>>>);

impl Subscriptions {
    /// Records a subscription; true when it is the URI's first (forward it).
    pub fn add_subscriber(&self, uri: &str, session: &str, exposed: &str) -> bool {
        let mut subs = self.0.lock();
        let entry = subs.entry(uri.to_owned()).or_default();
        let first = entry.is_empty();
        entry.insert(session.to_owned(), exposed.to_owned());
        first
    }

    /// Forgets a subscription; true when it was the URI's last (forward the unsubscribe).
    pub fn remove_subscriber(&self, uri: &str, session: &str) -> bool {
        let mut subs = self.0.lock();
        let Some(entry) = subs.get_mut(uri) else { return false };
        if entry.remove(session).is_none() {
            return false;
        }
        if entry.is_empty() {
            subs.remove(uri);
            return true;
        }
        false
    }

    /// Forgets every subscription of an ended session; returns the URIs nobody watches any more.
    pub fn drop_session(&self, session: &str) -> Vec<String> {
        let mut subs = self.0.lock();
        let mut emptied = Vec::new();
        subs.retain(|uri, entry| {
            if entry.remove(session).is_some() && entry.is_empty() {
                emptied.push(uri.clone());
                return false;
            }
            true
        });
        emptied
    }

    /// The sessions subscribed to `uri`, each with the URI it used.
    pub fn subscribers(&self, uri: &str) -> Vec<(String, String)> {
        self.0.lock().get(uri).map(|m| m.iter().map(|(s, e)| (s.clone(), e.clone())).collect()).unwrap_or_default()
    }
}

/// Why no connection could be had.
#[derive(Debug, thiserror::Error)]
#[error("backend '{backend}' already runs its limit of {max} processes (max_processes)")]
pub struct PoolFull {
    pub backend: String,
    pub max: usize,
}

/// The isolated connections of one backend.
#[derive(Default)]
pub struct Pool {
    map: Mutex<HashMap<InstanceKey, Arc<Instance>>>,
}

impl Pool {
    pub fn get(&self, key: &InstanceKey) -> Option<Arc<Instance>> {
        self.map.lock().get(key).cloned()
    }

    /// The connection for `key`, made by `make` (under the pool's lock) when
    /// there is none and fewer than `max` run. The bool is true when it was made.
    pub fn get_or_start(
        &self,
        key: &InstanceKey,
        max: usize,
        backend: &str,
        make: impl FnOnce() -> Arc<Instance>,
    ) -> Result<(Arc<Instance>, bool), PoolFull> {
        let mut map = self.map.lock();
        if let Some(i) = map.get(key) {
            return Ok((i.clone(), false));
        }
        if map.len() >= max {
            return Err(PoolFull { backend: backend.to_owned(), max });
        }
        let inst = make();
        map.insert(key.clone(), inst.clone());
        Ok((inst, true))
    }

    pub fn remove(&self, key: &InstanceKey) -> Option<Arc<Instance>> {
        self.map.lock().remove(key)
    }

    /// Removes and returns the connections idle for at least `idle`.
    pub fn take_idle(&self, idle: Duration) -> Vec<Arc<Instance>> {
        let mut out = Vec::new();
        self.map.lock().retain(|_, i| {
            let keep = i.idle_for().is_none_or(|d| d < idle);
            if !keep {
                out.push(i.clone());
            }
            keep
        });
        out
    }

    /// Removes and returns every connection.
    pub fn drain(&self) -> Vec<Arc<Instance>> {
        self.map.lock().drain().map(|(_, i)| i).collect()
    }

    pub fn all(&self) -> Vec<Arc<Instance>> {
        self.map.lock().values().cloned().collect()
    }

    pub fn len(&self) -> usize {
        self.map.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.lock().is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscriptions_reach_the_server_once_per_uri() {
        let subs = Subscriptions::default();
        assert!(subs.add_subscriber("demo://a", "s1", "demo://a"));
        assert!(!subs.add_subscriber("demo://a", "s2", "gatehouse+b:demo://a"));
        assert!(subs.add_subscriber("demo://b", "s2", "demo://b"));
        let mut who = subs.subscribers("demo://a");
        who.sort();
        assert_eq!(who, [("s1".into(), "demo://a".into()), ("s2".into(), "gatehouse+b:demo://a".into())]);
        // Not the last subscriber: nothing to tell the server.
        assert!(!subs.remove_subscriber("demo://a", "s1"));
        assert!(!subs.remove_subscriber("demo://a", "s1"), "already gone");
        let mut emptied = subs.drop_session("s2");
        emptied.sort();
        assert_eq!(emptied, ["demo://a", "demo://b"]);
        assert!(subs.subscribers("demo://a").is_empty() && subs.subscribers("demo://b").is_empty());
    }
}
