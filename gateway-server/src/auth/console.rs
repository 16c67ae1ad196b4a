//! Console (dashboard) logins: argon2id passwords, random session tokens in
//! HttpOnly cookies, CSRF tokens, login throttling, custom role permissions,
//! and the one-time setup link that creates the first admin.
//!
//! Session tokens are 32 random bytes; the store keeps only their keyed hash
//! (the API-key secret, [`crate::auth::hash_key`]), so a copy of the database
//! does not let anyone sign in. The CSRF token of a session is derived from
//! its cookie token with the same secret: it needs no storage, a page can be
//! told it (`/api/v1/me`), and it cannot be computed without the cookie.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use parking_lot::{Mutex, RwLock};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use crate::auth::keys::{Secret, hash_key};
use crate::auth::roles::{self, Permission, Permissions};
use crate::config::{Config, ConfigError, EnvLayer, env_var_name};
use crate::store::{NewConsoleSession, Role, Store, StoreError, UserAccount};

/// Settings row holding the pending setup token (hashed) and its expiry.
pub const SETUP_TOKEN_SETTING: &str = "console.setup_token";

/// How long a setup link stays valid.
pub const SETUP_TOKEN_TTL: Duration = Duration::from_secs(3600);

/// Shortest password accepted.
pub const MIN_PASSWORD_LEN: usize = 12;

/// Longest password accepted (bounds the hashing work one request can cause).
pub const MAX_PASSWORD_LEN: usize = 1024;

/// Length of a session or setup token: 32 bytes in unpadded base64url.
pub const TOKEN_LEN: usize = 43;

/// How long the custom roles read from the store are trusted before being
/// read again (other hubs sharing the store may change them).
const ROLE_CACHE_TTL: Duration = Duration::from_secs(30);

/// `last_seen` is written at most this often per session.
const TOUCH_INTERVAL: chrono::Duration = chrono::Duration::seconds(60);

/// Upper bound on the throttle's tracked usernames and addresses.
const MAX_THROTTLE_ENTRIES: usize = 10_000;

/// Longest `User-Agent` kept with a session.
const MAX_USER_AGENT_LEN: usize = 256;

// ---------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------

/// When session cookies carry the `Secure` attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SecureCookies {
    /// When `server.public_url` is `https://`.
    #[default]
    Auto,
    Always,
    Never,
}

impl FromStr for SecureCookies {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "auto" => Ok(Self::Auto),
            "always" => Ok(Self::Always),
            "never" => Ok(Self::Never),
            _ => Err("must be \"auto\", \"always\" or \"never\"".to_owned()),
        }
    }
}

/// `[console]`: dashboard login settings.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConsoleConfig {
    /// Absolute lifetime of a console session.
    pub session_ttl_secs: u64,
    /// A session unused for this long ends.
    pub idle_timeout_secs: u64,
    /// `auto` (Secure when `public_url` is https), `always` or `never`.
    pub secure_cookies: SecureCookies,
    /// Failed sign-ins for one username within the window before it is locked.
    pub login_max_failures_per_user: u32,
    /// Failed sign-ins from one client address within the window before it is locked.
    pub login_max_failures_per_ip: u32,
    /// The throttle's sliding window.
    pub login_window_secs: u64,
}

impl Default for ConsoleConfig {
    fn default() -> Self {
        Self {
            session_ttl_secs: 12 * 3600,
            idle_timeout_secs: 2 * 3600,
            secure_cookies: SecureCookies::Auto,
            login_max_failures_per_user: 5,
            login_max_failures_per_ip: 20,
            login_window_secs: 15 * 60,
        }
    }
}

/// Longest session lifetime, idle timeout and throttle window accepted (a year).
const MAX_SECS: u64 = 366 * 86_400;

impl ConsoleConfig {
    /// Applies `GATEHOUSE_CONSOLE_*` variables.
    pub(crate) fn apply_env(&mut self, l: &mut EnvLayer<'_>) -> Result<(), ConfigError> {
        l.number("console.session_ttl_secs", &mut self.session_ttl_secs)?;
        l.number("console.idle_timeout_secs", &mut self.idle_timeout_secs)?;
        if let Some(v) = l.get("console.secure_cookies") {
            self.secure_cookies = v.parse().map_err(|why: String| {
                ConfigError::invalid("console.secure_cookies", format!("{why} (set by {})", env_var_name("console.secure_cookies")))
            })?;
        }
        l.number("console.login_max_failures_per_user", &mut self.login_max_failures_per_user)?;
        l.number("console.login_max_failures_per_ip", &mut self.login_max_failures_per_ip)?;
        l.number("console.login_window_secs", &mut self.login_window_secs)?;
        Ok(())
    }

    /// Checks every value; the error names the offending key (`console.…`).
    pub fn validate(&self) -> Result<(), ConfigError> {
        for (key, value) in [
            ("console.session_ttl_secs", self.session_ttl_secs),
            ("console.idle_timeout_secs", self.idle_timeout_secs),
            ("console.login_window_secs", self.login_window_secs),
        ] {
            if value == 0 || value > MAX_SECS {
                return Err(ConfigError::invalid(key, format!("must be between 1 and {MAX_SECS}")));
            }
        }
        for (key, value) in [
            ("console.login_max_failures_per_user", self.login_max_failures_per_user),
            ("console.login_max_failures_per_ip", self.login_max_failures_per_ip),
        ] {
            if value == 0 || value > 10_000 {
                return Err(ConfigError::invalid(key, "must be between 1 and 10000"));
            }
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// Passwords and tokens
// ---------------------------------------------------------------------------

/// Why a password could not be hashed (never contains the password).
#[derive(Debug, thiserror::Error)]
#[error("password hashing failed: {0}")]
pub struct HashError(String);

/// Hashes `password` with argon2id (default parameters, random salt) into a
/// PHC string. CPU-heavy: call it off the async runtime.
pub fn hash_password(password: &str) -> Result<String, HashError> {
    let mut salt = [0u8; 16];
    rand::rng().fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt).map_err(|e| HashError(e.to_string()))?;
    Argon2::default().hash_password(password.as_bytes(), &salt).map(|h| h.to_string()).map_err(|e| HashError(e.to_string()))
}

/// Whether `password` matches the PHC string `phc`; `false` for a malformed
/// hash. CPU-heavy: call it off the async runtime.
pub fn verify_password(phc: &str, password: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(phc) else { return false };
    Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok()
}

/// The rules for a new password: 12 to 1024 characters, not the username.
pub fn check_new_password(username: &str, password: &str) -> Result<(), String> {
    let len = password.chars().count();
    if len < MIN_PASSWORD_LEN {
        return Err(format!("the password must have at least {MIN_PASSWORD_LEN} characters"));
    }
    if password.len() > MAX_PASSWORD_LEN {
        return Err(format!("the password must have at most {MAX_PASSWORD_LEN} bytes"));
    }
    if password.eq_ignore_ascii_case(username) {
        return Err("the password must not be the username".to_owned());
    }
    Ok(())
}

/// 32 random bytes, unpadded base64url.
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Whether `token` has the shape of [`random_token`]'s output, checked
/// before any hashing or lookup.
pub fn is_token_shaped(token: &str) -> bool {
    token.len() == TOKEN_LEN && token.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn ct_eq(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T, ConsoleError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| ConsoleError::Hashing(e.to_string()))
}

// ---------------------------------------------------------------------------
// Login throttling
// ---------------------------------------------------------------------------

/// Failed attempts per key (`user:NAME`, `ip:ADDR`) within a sliding window,
/// in memory and bounded.
#[derive(Debug)]
pub struct LoginThrottle {
    window: Duration,
    /// Key → times of its latest failures (at most its limit), oldest first.
    failures: Mutex<HashMap<String, VecDeque<Instant>>>,
}

impl LoginThrottle {
    /// A throttle over `window`.
    pub fn new(window: Duration) -> Self {
        Self { window, failures: Mutex::new(HashMap::new()) }
    }

    /// How long until `key` may try again, when it has `limit` failures
    /// within the window.
    pub fn blocked(&self, key: &str, limit: u32, now: Instant) -> Option<Duration> {
        let failures = self.failures.lock();
        let times = failures.get(key)?;
        let recent: Vec<&Instant> = times.iter().filter(|t| now.saturating_duration_since(**t) < self.window).collect();
        if recent.len() < limit as usize {
            return None;
        }
        // The attempt that has to age out before the count drops below the limit.
        let pivot = recent[recent.len() - limit as usize];
        Some((*pivot + self.window).saturating_duration_since(now).max(Duration::from_secs(1)))
    }

    /// Records a failure of `key`.
    pub fn fail(&self, key: &str, limit: u32, now: Instant) {
        let mut failures = self.failures.lock();
        if !failures.contains_key(key) && failures.len() >= MAX_THROTTLE_ENTRIES {
            let window = self.window;
            failures.retain(|_, times| times.back().is_some_and(|t| now.saturating_duration_since(*t) < window));
            if failures.len() >= MAX_THROTTLE_ENTRIES {
                // Still full of live entries: forget the one idle longest.
                let oldest = failures.iter().min_by_key(|(_, times)| times.back().copied()).map(|(k, _)| k.clone());
                if let Some(k) = oldest {
                    failures.remove(&k);
                }
            }
        }
        let times = failures.entry(key.to_owned()).or_default();
        times.retain(|t| now.saturating_duration_since(*t) < self.window);
        times.push_back(now);
        while times.len() > limit.max(1) as usize {
            times.pop_front();
        }
    }

    /// Forgets `key`'s failures (after a successful sign-in).
    pub fn clear(&self, key: &str) {
        self.failures.lock().remove(key);
    }

    /// How many keys are tracked.
    pub fn len(&self) -> usize {
        self.failures.lock().len()
    }

    /// True when nothing is tracked.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

// ---------------------------------------------------------------------------
// The console
// ---------------------------------------------------------------------------

/// Why a console operation failed. Messages are safe to show the caller:
/// they never say whether the username or the password was wrong.
#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    /// Unknown user, wrong password, disabled or password-less account.
    #[error("invalid username or password")]
    BadCredentials,
    /// A signed-in user gave the wrong current password.
    #[error("the current password is wrong")]
    WrongPassword,
    /// Too many failures; no password is checked until then.
    #[error("too many failed sign-in attempts; try again in {retry_after_secs} seconds")]
    Throttled { retry_after_secs: u64 },
    /// The new password breaks a rule.
    #[error("{0}")]
    WeakPassword(String),
    /// Wrong, used or expired setup token.
    #[error("the setup token is invalid or has expired; restart the hub for a new link, or run `gateway-server admin create`")]
    BadSetupToken,
    /// An admin who can sign in already exists.
    #[error("the first admin already exists; sign in instead")]
    SetupDone,
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Hashing failed or its task died; details for logs only.
    #[error("password hashing failed")]
    Hashing(String),
}

/// Who is signing in from where (kept with the session).
#[derive(Debug, Clone, Default)]
pub struct ClientInfo {
    pub ip: Option<IpAddr>,
    pub user_agent: Option<String>,
}

/// A new session: the cookie token (shown to the client only), its CSRF token.
#[derive(Clone)]
pub struct SignedIn {
    pub account: UserAccount,
    pub session_id: String,
    pub token: String,
    pub csrf_token: String,
    pub expires_at: DateTime<Utc>,
}

impl fmt::Debug for SignedIn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SignedIn").field("account", &self.account).field("session_id", &self.session_id).finish_non_exhaustive()
    }
}

/// A valid session presented by a request.
#[derive(Debug, Clone)]
pub struct ActiveSession {
    pub id: String,
    pub account: UserAccount,
    pub expires_at: DateTime<Utc>,
}

/// The stored form of the pending setup token.
#[derive(Serialize, Deserialize)]
struct SetupRecord {
    hash: String,
    expires_at: DateTime<Utc>,
}

struct RoleCache {
    roles: HashMap<String, Permissions>,
    loaded_at: Option<Instant>,
}

struct Inner {
    store: Store,
    secret: Secret,
    config: ConsoleConfig,
    secure: bool,
    throttle: LoginThrottle,
    /// Checked against when the username is unknown, so that costs the same time.
    dummy_hash: String,
    roles: RwLock<RoleCache>,
    /// The plaintext setup token of this start, for the banner only.
    setup_token: Mutex<Option<String>>,
}

/// Console sign-in state shared by the admin API. Cheap to clone.
#[derive(Clone)]
pub struct Console {
    inner: Arc<Inner>,
}

impl fmt::Debug for Console {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Console").field("config", &self.inner.config).field("secure", &self.inner.secure).finish_non_exhaustive()
    }
}

/// The permissions named in a stored role; unknown names (from a newer
/// version, or edited by hand) grant nothing.
pub fn parse_permissions(role: &str, names: &[String]) -> Permissions {
    names
        .iter()
        .filter_map(|n| match n.parse::<Permission>() {
            Ok(p) => Some(p),
            Err(_) => {
                tracing::warn!(role, permission = %n, "ignoring an unknown permission of a custom role");
                None
            }
        })
        .collect()
}

impl Console {
    /// Prepares console sign-in for `store`, hashing tokens with `secret`;
    /// when no enabled admin with a password exists yet, creates a fresh
    /// setup token (see [`Console::setup_link`]).
    pub async fn start(config: &Config, store: &Store, secret: Secret) -> anyhow::Result<Self> {
        let c = config.console.clone();
        let secure = match c.secure_cookies {
            SecureCookies::Always => true,
            SecureCookies::Never => false,
            SecureCookies::Auto => config.server.public_url.to_ascii_lowercase().starts_with("https://"),
        };
        let dummy = random_token();
        let dummy_hash = blocking(move || hash_password(&dummy)).await??;
        let console = Self {
            inner: Arc::new(Inner {
                store: store.clone(),
                secret,
                throttle: LoginThrottle::new(Duration::from_secs(c.login_window_secs)),
                config: c,
                secure,
                dummy_hash,
                roles: RwLock::new(RoleCache { roles: HashMap::new(), loaded_at: None }),
                setup_token: Mutex::new(None),
            }),
        };
        console.reload_roles().await?;
        console.prepare_setup().await?;
        Ok(console)
    }

    /// The `[console]` settings in force.
    pub fn config(&self) -> &ConsoleConfig {
        &self.inner.config
    }

    /// Whether cookies get the `Secure` attribute.
    pub fn secure_cookies(&self) -> bool {
        self.inner.secure
    }

    /// Absolute session lifetime.
    pub fn session_ttl(&self) -> Duration {
        Duration::from_secs(self.inner.config.session_ttl_secs)
    }

    // -- setup link ---------------------------------------------------------

    async fn prepare_setup(&self) -> Result<(), StoreError> {
        let store = &self.inner.store;
        if store.active_admin_with_password_exists().await? {
            store.delete_setting(SETUP_TOKEN_SETTING).await?;
            return Ok(());
        }
        let token = random_token();
        let ttl = chrono::Duration::from_std(SETUP_TOKEN_TTL).unwrap_or(chrono::Duration::hours(1));
        let record = SetupRecord { hash: hash_key(&self.inner.secret, &token), expires_at: crate::store::now() + ttl };
        // Serializing two strings cannot fail.
        let value = serde_json::to_string(&record).unwrap_or_default();
        store.put_setting(SETUP_TOKEN_SETTING, &value).await?;
        *self.inner.setup_token.lock() = Some(token);
        Ok(())
    }

    /// `{public_url}/setup#token=…` while this start's setup token is
    /// unused, for the startup banner (never for the log).
    pub fn setup_link(&self, public_url: &str) -> Option<String> {
        let token = self.inner.setup_token.lock().clone()?;
        Some(format!("{}/setup#token={token}", public_url.trim_end_matches('/')))
    }

    /// Whether the first admin still has to be created (no enabled admin can
    /// sign in with a password).
    pub async fn setup_needed(&self) -> Result<bool, StoreError> {
        Ok(!self.inner.store.active_admin_with_password_exists().await?)
    }

    /// Creates the first admin with the setup token, consumes the token and
    /// signs the new admin in.
    pub async fn complete_setup(&self, token: &str, username: &str, password: &str, client: &ClientInfo) -> Result<SignedIn, ConsoleError> {
        check_new_password(username, password).map_err(ConsoleError::WeakPassword)?;
        let store = &self.inner.store;
        let stored = store.get_setting(SETUP_TOKEN_SETTING).await?.ok_or(ConsoleError::BadSetupToken)?;
        let record: SetupRecord = serde_json::from_str(&stored).map_err(|_| ConsoleError::BadSetupToken)?;
        let presented = if is_token_shaped(token) { hash_key(&self.inner.secret, token) } else { String::new() };
        if !ct_eq(&presented, &record.hash) || record.expires_at <= Utc::now() {
            return Err(ConsoleError::BadSetupToken);
        }
        if !self.setup_needed().await? {
            store.take_setting(SETUP_TOKEN_SETTING, &stored).await?;
            return Err(ConsoleError::SetupDone);
        }
        if store.user_account_by_name(username).await?.is_some() {
            return Err(StoreError::Conflict(format!("user `{username}`")).into());
        }
        let owned = password.to_owned();
        let hash = blocking(move || hash_password(&owned)).await?.map_err(|e| ConsoleError::Hashing(e.to_string()))?;
        // Taking the row is what makes the token single-use under concurrency.
        if !store.take_setting(SETUP_TOKEN_SETTING, &stored).await? {
            return Err(ConsoleError::BadSetupToken);
        }
        *self.inner.setup_token.lock() = None;
        let account = store.create_account(username, Role::Admin, Some(&hash)).await?;
        tracing::info!(user = %account.username, "first admin created through the setup link");
        self.open_session(account, client).await
    }

    // -- sessions -----------------------------------------------------------

    /// Checks a username and password and opens a session. Throttled per
    /// username and per client address; unknown users cost the same time.
    pub async fn login(&self, username: &str, password: &str, client: &ClientInfo) -> Result<SignedIn, ConsoleError> {
        let user_key = format!("user:{}", username.to_lowercase());
        let ip_key = client.ip.map(|ip| format!("ip:{ip}"));
        self.check_throttle(&user_key, ip_key.as_deref())?;
        let creds = if username.is_empty() || username.len() > 64 { None } else { self.inner.store.credentials_by_name(username).await? };
        let ok = if password.len() > MAX_PASSWORD_LEN {
            false
        } else {
            let hash = creds.as_ref().and_then(|c| c.password_hash.clone()).unwrap_or_else(|| self.inner.dummy_hash.clone());
            let owned = password.to_owned();
            let matched = blocking(move || verify_password(&hash, &owned)).await?;
            matched && creds.as_ref().is_some_and(|c| c.password_hash.is_some() && !c.account.disabled)
        };
        let Some(creds) = creds.filter(|_| ok) else {
            self.record_failure(&user_key, ip_key.as_deref());
            return Err(ConsoleError::BadCredentials);
        };
        self.inner.throttle.clear(&user_key);
        self.open_session(creds.account, client).await
    }

    fn check_throttle(&self, user_key: &str, ip_key: Option<&str>) -> Result<(), ConsoleError> {
        let c = &self.inner.config;
        let now = Instant::now();
        let t = &self.inner.throttle;
        let wait =
            [t.blocked(user_key, c.login_max_failures_per_user, now), ip_key.and_then(|k| t.blocked(k, c.login_max_failures_per_ip, now))]
                .into_iter()
                .flatten()
                .max();
        match wait {
            Some(wait) => Err(ConsoleError::Throttled { retry_after_secs: wait.as_secs() + u64::from(wait.subsec_nanos() > 0) }),
            None => Ok(()),
        }
    }

    fn record_failure(&self, user_key: &str, ip_key: Option<&str>) {
        let c = &self.inner.config;
        let now = Instant::now();
        self.inner.throttle.fail(user_key, c.login_max_failures_per_user, now);
        if let Some(k) = ip_key {
            self.inner.throttle.fail(k, c.login_max_failures_per_ip, now);
        }
    }

    async fn open_session(&self, account: UserAccount, client: &ClientInfo) -> Result<SignedIn, ConsoleError> {
        let store = &self.inner.store;
        let now = crate::store::now();
        let ttl = chrono::Duration::seconds(i64::try_from(self.inner.config.session_ttl_secs).unwrap_or(i64::MAX / 1000));
        let idle = chrono::Duration::seconds(i64::try_from(self.inner.config.idle_timeout_secs).unwrap_or(i64::MAX / 1000));
        // Opportunistic clean-up: sign-ins are rare enough to carry it.
        if let Err(e) = store.purge_console_sessions(now, now - idle).await {
            tracing::debug!(error = %e, "could not purge old console sessions");
        }
        let token = random_token();
        let user_agent = client.user_agent.as_ref().map(|ua| ua.chars().take(MAX_USER_AGENT_LEN).collect::<String>());
        let session = store
            .insert_console_session(NewConsoleSession {
                user_id: account.id.clone(),
                token_hash: hash_key(&self.inner.secret, &token),
                expires_at: now + ttl,
                ip: client.ip.map(|ip| ip.to_string()),
                user_agent,
            })
            .await?;
        tracing::info!(user = %account.username, session = %session.id, "console sign-in");
        Ok(SignedIn { csrf_token: self.csrf_token(&token), account, session_id: session.id, token, expires_at: session.expires_at })
    }

    /// The session a cookie token belongs to, if it is valid: known, not past
    /// its lifetime or idle timeout, and its user enabled.
    pub async fn session(&self, token: &str) -> Result<Option<ActiveSession>, StoreError> {
        if !is_token_shaped(token) {
            return Ok(None);
        }
        let store = &self.inner.store;
        let Some((session, account)) = store.console_session_by_hash(&hash_key(&self.inner.secret, token)).await? else {
            return Ok(None);
        };
        let now = Utc::now();
        let idle = chrono::Duration::seconds(i64::try_from(self.inner.config.idle_timeout_secs).unwrap_or(i64::MAX / 1000));
        if session.expires_at <= now || session.last_seen + idle <= now {
            store.delete_console_session(&session.id).await?;
            return Ok(None);
        }
        if account.disabled {
            return Ok(None);
        }
        if now - session.last_seen >= TOUCH_INTERVAL {
            let store = store.clone();
            let id = session.id.clone();
            // Off the request path: a lost touch only shortens the idle window.
            tokio::spawn(async move {
                if let Err(e) = store.touch_console_session(&id, crate::store::now()).await {
                    tracing::debug!(error = %e, "could not record console session use");
                }
            });
        }
        Ok(Some(ActiveSession { id: session.id, account, expires_at: session.expires_at }))
    }

    /// The CSRF token of the session whose cookie token is `token`.
    pub fn csrf_token(&self, token: &str) -> String {
        hash_key(&self.inner.secret, &format!("csrf:{token}"))
    }

    /// Whether `presented` is the CSRF token of `token`'s session (constant time).
    pub fn check_csrf(&self, token: &str, presented: &str) -> bool {
        ct_eq(&self.csrf_token(token), presented.trim())
    }

    /// Ends session `id`.
    pub async fn logout(&self, session_id: &str) -> Result<(), StoreError> {
        self.inner.store.delete_console_session(session_id).await.map(|_| ())
    }

    /// Ends every session of `user_id` except `keep`.
    pub async fn end_sessions(&self, user_id: &str, keep: Option<&str>) -> Result<u64, StoreError> {
        self.inner.store.delete_console_sessions_of(user_id, keep).await
    }

    /// Hashes a new password after checking the rules (off the runtime).
    pub async fn new_password_hash(&self, username: &str, password: &str) -> Result<String, ConsoleError> {
        check_new_password(username, password).map_err(ConsoleError::WeakPassword)?;
        let owned = password.to_owned();
        blocking(move || hash_password(&owned)).await?.map_err(|e| ConsoleError::Hashing(e.to_string()))
    }

    /// Changes a user's own password: the current one is required (and
    /// throttled like a sign-in); every other session of the user ends.
    pub async fn change_password(
        &self,
        user_id: &str,
        current: &str,
        new: &str,
        keep_session: Option<&str>,
        client: &ClientInfo,
    ) -> Result<(), ConsoleError> {
        let store = &self.inner.store;
        let creds = store.credentials_by_id(user_id).await?.ok_or(ConsoleError::WrongPassword)?;
        let user_key = format!("user:{}", creds.account.username.to_lowercase());
        let ip_key = client.ip.map(|ip| format!("ip:{ip}"));
        self.check_throttle(&user_key, ip_key.as_deref())?;
        let ok = match &creds.password_hash {
            Some(hash) if current.len() <= MAX_PASSWORD_LEN => {
                let (hash, owned) = (hash.clone(), current.to_owned());
                blocking(move || verify_password(&hash, &owned)).await?
            }
            _ => false,
        };
        if !ok {
            self.record_failure(&user_key, ip_key.as_deref());
            return Err(ConsoleError::WrongPassword);
        }
        let hash = self.new_password_hash(&creds.account.username, new).await?;
        store.set_password_hash(user_id, Some(&hash)).await?;
        let ended = store.delete_console_sessions_of(user_id, keep_session).await?;
        tracing::info!(user = %creds.account.username, other_sessions_ended = ended, "password changed");
        Ok(())
    }

    // -- roles --------------------------------------------------------------

    /// Reads the custom roles from the store into the cache.
    pub async fn reload_roles(&self) -> Result<(), StoreError> {
        let list = self.inner.store.list_custom_roles().await?;
        let roles = list.into_iter().map(|r| (r.name.clone(), parse_permissions(&r.name, &r.permissions))).collect();
        *self.inner.roles.write() = RoleCache { roles, loaded_at: Some(Instant::now()) };
        Ok(())
    }

    /// What `role` may do: fixed for built-in roles; for custom ones from the
    /// cache, refreshed from the store when stale. An unknown custom role (or
    /// an unreachable store with nothing cached) grants nothing.
    pub async fn permissions(&self, role: &Role) -> Permissions {
        if let Some(p) = roles::built_in(role) {
            return p;
        }
        let stale = self.inner.roles.read().loaded_at.is_none_or(|at| at.elapsed() >= ROLE_CACHE_TTL);
        if stale && let Err(e) = self.reload_roles().await {
            tracing::warn!(error = %e, "could not refresh custom roles; using the cached ones");
        }
        self.role_permissions(role)
    }

    /// [`Console::permissions`] from the cache only, never waiting on the store.
    pub fn role_permissions(&self, role: &Role) -> Permissions {
        if let Some(p) = roles::built_in(role) {
            return p;
        }
        self.inner.roles.read().roles.get(role.as_str()).cloned().unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_hash_and_verify() {
        let h = hash_password("correct horse battery").unwrap();
        assert!(h.starts_with("$argon2id$"), "{h}");
        assert!(verify_password(&h, "correct horse battery"));
        assert!(!verify_password(&h, "wrong horse battery"));
        assert!(!verify_password("not a hash", "x"));
        assert_ne!(h, hash_password("correct horse battery").unwrap(), "salts differ");
    }

    #[test]
    fn password_rules() {
        assert!(check_new_password("alice", "short").is_err());
        assert!(check_new_password("alice-the-admin", "ALICE-THE-ADMIN").is_err());
        assert!(check_new_password("alice", &"x".repeat(MAX_PASSWORD_LEN + 1)).is_err());
        check_new_password("alice", "twelve chars").unwrap();
        // Characters, not bytes.
        assert!(check_new_password("alice", "ééééééééééé").is_err());
    }

    #[test]
    fn tokens_have_one_shape() {
        let t = random_token();
        assert!(is_token_shaped(&t), "{t}");
        assert_ne!(t, random_token());
        assert!(!is_token_shaped(&t[1..]));
        assert!(!is_token_shaped(&format!("{}=", &t[1..])));
    }

    #[test]
    fn throttle_locks_after_the_limit_and_unlocks_after_the_window() {
        let t = LoginThrottle::new(Duration::from_secs(900));
        let start = Instant::now();
        for i in 0..5 {
            assert!(t.blocked("user:a", 5, start).is_none());
            t.fail("user:a", 5, start + Duration::from_secs(i));
        }
        let wait = t.blocked("user:a", 5, start + Duration::from_secs(10)).unwrap();
        assert_eq!(wait, Duration::from_secs(890));
        assert!(t.blocked("user:b", 5, start).is_none());
        assert!(t.blocked("user:a", 5, start + Duration::from_secs(900)).is_none());
        t.fail("user:c", 1, start);
        t.clear("user:c");
        assert!(t.blocked("user:c", 1, start).is_none());
    }

    #[test]
    fn throttle_stays_bounded() {
        let t = LoginThrottle::new(Duration::from_secs(900));
        let now = Instant::now();
        for i in 0..MAX_THROTTLE_ENTRIES + 10 {
            t.fail(&format!("ip:{i}"), 20, now);
        }
        assert_eq!(t.len(), MAX_THROTTLE_ENTRIES);
        // Each key keeps at most its limit.
        for _ in 0..50 {
            t.fail("ip:x", 3, now);
        }
        assert_eq!(t.failures.lock()["ip:x"].len(), 3);
    }

    #[test]
    fn config_validation_names_the_key() {
        let mut c = ConsoleConfig::default();
        c.validate().unwrap();
        c.idle_timeout_secs = 0;
        assert_eq!(c.validate().unwrap_err().key(), Some("console.idle_timeout_secs"));
        let c = ConsoleConfig { login_max_failures_per_ip: 0, ..ConsoleConfig::default() };
        assert_eq!(c.validate().unwrap_err().key(), Some("console.login_max_failures_per_ip"));
        assert_eq!("always".parse::<SecureCookies>().unwrap(), SecureCookies::Always);
        assert!("sometimes".parse::<SecureCookies>().is_err());
    }
}
