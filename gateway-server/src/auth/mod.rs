//! Who is calling: API key authentication.
//!
//! Keys are looked up by their keyed hash ([`keys::hash_key`]) under a secret
//! shared by every hub and CLI using the same store ([`load_secret`]), so a
//! key created by `gateway-server keys create` in another process works at
//! once. Successful lookups are cached briefly to keep the database off the
//! hot path; the short lifetime bounds how long a revocation made elsewhere
//! takes to apply.

pub mod console;
pub mod keys;
pub mod roles;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use parking_lot::Mutex;
use serde::Serialize;

use crate::config::AuthConfig;
use crate::store::{Role, Store, StoreError};

pub use keys::{Secret, generate_agent_token, generate_api_key, hash_key, key_prefix};

/// Settings row holding the key-hashing secret when no file is configured.
pub const SECRET_SETTING: &str = "auth.key_hash_secret";

/// How long a successful lookup is reused.
pub const CACHE_TTL: Duration = Duration::from_secs(5);

/// `last_used_at` is written at most this often per key.
const TOUCH_INTERVAL: Duration = Duration::from_secs(60);

/// Upper bound on cached lookups and touch timestamps; beyond it stale
/// entries are purged, and if that is not enough, everything.
const MAX_ENTRIES: usize = 10_000;

/// Why a caller was not authenticated. Messages are safe to show the caller
/// and never contain the presented token.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// No credentials were presented.
    #[error("missing API key")]
    Missing,
    /// The credentials do not have the shape of an API key.
    #[error("malformed API key")]
    Malformed,
    /// No such key.
    #[error("unknown API key")]
    Unknown,
    /// The key was revoked.
    #[error("API key has been revoked")]
    Revoked,
    /// The key is past its expiry.
    #[error("API key has expired")]
    Expired,
    /// The store could not be asked; the cause is for logs only.
    #[error("authentication is temporarily unavailable")]
    Store(#[source] StoreError),
    /// The key-hashing secret could not be loaded (startup and CLI only).
    #[error("cannot load the key-hashing secret: {0}")]
    Secret(String),
}

/// An authenticated caller: a user acting through one of their API keys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Principal {
    pub user_id: String,
    pub username: String,
    pub role: Role,
    pub key_id: String,
    pub key_name: String,
    /// Surfaces the key may use (`mcp`, `ai`); empty means all.
    pub surfaces: Vec<String>,
    /// Tool name globs the key may call; empty means all.
    pub tools: Vec<String>,
}

impl Principal {
    /// Whether the key may use `surface` (`"mcp"` or `"ai"`).
    pub fn allows_surface(&self, surface: &str) -> bool {
        self.surfaces.is_empty() || self.surfaces.iter().any(|s| s == surface)
    }
}

/// Loads the secret API keys are hashed with: from `auth.secret_file`
/// (created when missing), else from the store's settings, where the first
/// process to need it creates it and every other one reads the same value.
pub async fn load_secret(config: &AuthConfig, store: &Store) -> Result<Secret, AuthError> {
    if let Some(path) = &config.secret_file {
        // A tiny file read once at startup: not worth a blocking-pool hop.
        return keys::read_or_create_secret_file(path).map_err(|e| AuthError::Secret(format!("auth.secret_file: {e}")));
    }
    let candidate = Secret::generate().to_hex();
    let value = store.set_setting_if_absent(SECRET_SETTING, &candidate).await.map_err(AuthError::Store)?;
    Secret::from_hex(&value).map_err(|why| AuthError::Secret(format!("setting {SECRET_SETTING}: {why}")))
}

struct CacheEntry {
    principal: Principal,
    expires_at: Option<DateTime<Utc>>,
    cached_at: Instant,
}

struct Inner {
    store: Store,
    secret: Secret,
    cache_ttl: Duration,
    /// Keyed by key hash, so plaintext keys are not kept in memory.
    cache: Mutex<HashMap<String, CacheEntry>>,
    /// Key id → when `last_used_at` was last written by this process.
    touched: Mutex<HashMap<String, Instant>>,
}

/// Checks bearer tokens against the store. Cheap to clone.
#[derive(Clone)]
pub struct Authenticator {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator").field("store", &self.inner.store).field("cache_ttl", &self.inner.cache_ttl).finish_non_exhaustive()
    }
}

impl Authenticator {
    /// An authenticator caching successful lookups for [`CACHE_TTL`].
    pub fn new(store: Store, secret: Secret) -> Self {
        Self::with_cache_ttl(store, secret, CACHE_TTL)
    }

    /// An authenticator with a custom cache lifetime (`Duration::ZERO`
    /// disables the cache).
    pub fn with_cache_ttl(store: Store, secret: Secret, cache_ttl: Duration) -> Self {
        Self { inner: Arc::new(Inner { store, secret, cache_ttl, cache: Mutex::new(HashMap::new()), touched: Mutex::new(HashMap::new()) }) }
    }

    /// The secret keys are hashed with (to create keys in process).
    pub fn secret(&self) -> &Secret {
        &self.inner.secret
    }

    /// Authenticates a bearer token (without the `Bearer ` prefix).
    pub async fn authenticate(&self, token: &str) -> Result<Principal, AuthError> {
        let token = token.trim();
        if token.is_empty() {
            return Err(AuthError::Missing);
        }
        if !keys::is_well_formed(token, keys::API_KEY_PREFIX) {
            return Err(AuthError::Malformed);
        }
        let hash = keys::hash_key(&self.inner.secret, token);
        if let Some(principal) = self.cached(&hash)? {
            self.touch(&principal.key_id);
            return Ok(principal);
        }
        let (key, user) = self.inner.store.api_key_by_hash(&hash).await.map_err(AuthError::Store)?.ok_or(AuthError::Unknown)?;
        if key.revoked_at.is_some() {
            return Err(AuthError::Revoked);
        }
        if key.expires_at.is_some_and(|at| at <= Utc::now()) {
            return Err(AuthError::Expired);
        }
        let principal = Principal {
            user_id: user.id,
            username: user.username,
            role: user.role,
            key_id: key.id,
            key_name: key.name,
            surfaces: key.surfaces,
            tools: key.tools,
        };
        if !self.inner.cache_ttl.is_zero() {
            let mut cache = self.inner.cache.lock();
            if cache.len() >= MAX_ENTRIES {
                let ttl = self.inner.cache_ttl;
                cache.retain(|_, e| e.cached_at.elapsed() < ttl);
                if cache.len() >= MAX_ENTRIES {
                    cache.clear();
                }
            }
            cache.insert(hash, CacheEntry { principal: principal.clone(), expires_at: key.expires_at, cached_at: Instant::now() });
        }
        self.touch(&principal.key_id);
        Ok(principal)
    }

    /// Forgets every cached lookup, so the next call of each key reads the
    /// store (call after revoking or changing keys in this process).
    pub fn invalidate_all(&self) {
        self.inner.cache.lock().clear();
    }

    /// A fresh cached principal for `hash`; expiry is re-checked on every hit.
    fn cached(&self, hash: &str) -> Result<Option<Principal>, AuthError> {
        let mut cache = self.inner.cache.lock();
        let Some(entry) = cache.get(hash) else {
            return Ok(None);
        };
        if entry.cached_at.elapsed() >= self.inner.cache_ttl {
            cache.remove(hash);
            return Ok(None);
        }
        if entry.expires_at.is_some_and(|at| at <= Utc::now()) {
            cache.remove(hash);
            return Err(AuthError::Expired);
        }
        Ok(Some(entry.principal.clone()))
    }

    /// Records the use of key `key_id` in the background, at most once per
    /// [`TOUCH_INTERVAL`], so requests never wait on a write.
    fn touch(&self, key_id: &str) {
        {
            let mut touched = self.inner.touched.lock();
            if touched.get(key_id).is_some_and(|at| at.elapsed() < TOUCH_INTERVAL) {
                return;
            }
            if touched.len() >= MAX_ENTRIES {
                touched.retain(|_, at| at.elapsed() < TOUCH_INTERVAL);
                if touched.len() >= MAX_ENTRIES {
                    touched.clear();
                }
            }
            touched.insert(key_id.to_owned(), Instant::now());
        }
        let store = self.inner.store.clone();
        let key_id = key_id.to_owned();
        let at = crate::store::now();
        tokio::spawn(async move {
            if let Err(e) = store.touch_api_key(&key_id, at).await {
                tracing::debug!(key_id, error = %e, "could not record API key use");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::NewApiKey;

    async fn setup(ttl: Duration) -> (Store, Authenticator) {
        let store = Store::connect("sqlite::memory:").await.unwrap();
        let secret = load_secret(&AuthConfig::default(), &store).await.unwrap();
        (store.clone(), Authenticator::with_cache_ttl(store, secret, ttl))
    }

    async fn add_key(store: &Store, auth: &Authenticator, expires: Option<DateTime<Utc>>) -> (String, String) {
        let user = store.ensure_user("alice", Role::Admin).await.unwrap();
        let key = generate_api_key();
        let stored = store
            .insert_api_key(NewApiKey {
                user_id: user.id,
                name: "test".into(),
                prefix: key_prefix(&key),
                key_hash: hash_key(auth.secret(), &key),
                surfaces: vec!["mcp".into()],
                tools: vec!["*".into()],
                expires_at: expires,
            })
            .await
            .unwrap();
        (key, stored.id)
    }

    #[tokio::test]
    async fn secret_in_settings_is_shared() {
        let store = Store::connect("sqlite::memory:").await.unwrap();
        let a = load_secret(&AuthConfig::default(), &store).await.unwrap();
        let b = load_secret(&AuthConfig::default(), &store).await.unwrap();
        assert_eq!(a, b);
        assert_eq!(store.get_setting(SECRET_SETTING).await.unwrap().unwrap(), a.to_hex());
    }

    #[tokio::test]
    async fn shape_is_checked_before_lookup() {
        let (store, auth) = setup(CACHE_TTL).await;
        // A closed store proves no query is attempted for bad shapes.
        store.close().await;
        assert!(matches!(auth.authenticate("").await, Err(AuthError::Missing)));
        assert!(matches!(auth.authenticate("  ").await, Err(AuthError::Missing)));
        assert!(matches!(auth.authenticate("nope").await, Err(AuthError::Malformed)));
        assert!(matches!(auth.authenticate(&generate_agent_token()).await, Err(AuthError::Malformed)));
        assert!(matches!(auth.authenticate(&generate_api_key()).await, Err(AuthError::Store(_))));
    }

    #[tokio::test]
    async fn valid_unknown_revoked_expired() {
        let (store, auth) = setup(Duration::ZERO).await;
        let (key, id) = add_key(&store, &auth, None).await;
        let p = auth.authenticate(&key).await.unwrap();
        assert_eq!(p.username, "alice");
        assert_eq!(p.role, Role::Admin);
        assert_eq!(p.key_id, id);
        assert!(p.allows_surface("mcp"));
        assert!(!p.allows_surface("ai"));
        assert!(matches!(auth.authenticate(&generate_api_key()).await, Err(AuthError::Unknown)));
        assert!(store.revoke_api_key(&id).await.unwrap());
        assert!(matches!(auth.authenticate(&key).await, Err(AuthError::Revoked)));
        let (old, _) = add_key(&store, &auth, Some(Utc::now() - chrono::Duration::seconds(1))).await;
        assert!(matches!(auth.authenticate(&old).await, Err(AuthError::Expired)));
    }

    #[tokio::test]
    async fn cache_serves_hits_until_invalidated() {
        let (store, auth) = setup(Duration::from_secs(3600)).await;
        let (key, id) = add_key(&store, &auth, None).await;
        auth.authenticate(&key).await.unwrap();
        store.revoke_api_key(&id).await.unwrap();
        // Still cached: the revocation applies once the entry is stale...
        auth.authenticate(&key).await.unwrap();
        // ...or at once after invalidation.
        auth.invalidate_all();
        assert!(matches!(auth.authenticate(&key).await, Err(AuthError::Revoked)));
    }

    #[tokio::test]
    async fn use_is_recorded_in_the_background() {
        let (store, auth) = setup(CACHE_TTL).await;
        let (key, id) = add_key(&store, &auth, None).await;
        let user = store.user_by_name("alice").await.unwrap().unwrap();
        auth.authenticate(&key).await.unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let keys = store.list_api_keys(&user.id).await.unwrap();
            let k = keys.iter().find(|k| k.id == id).unwrap();
            if k.last_used_at.is_some() {
                break;
            }
            assert!(Instant::now() < deadline, "last_used_at never written");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    #[test]
    fn errors_never_echo_tokens() {
        for e in [AuthError::Missing, AuthError::Malformed, AuthError::Unknown, AuthError::Revoked, AuthError::Expired] {
            assert!(!e.to_string().contains("gk_"));
        }
    }
}
