//! The policy engine: ordered allow/deny rules over who is calling and what
//! they call, compiled in memory, applied to every list and every call.
//!
//! # Rules
//!
//! A rule has an effect (`allow` or `deny`), an `enabled` flag and match
//! conditions. Each condition is a list; an empty list matches anything:
//!
//! | condition | matches when |
//! |---|---|
//! | `roles` | the caller's role name is listed (custom role names are fine) |
//! | `users` | the caller's username is listed |
//! | `keys` | the API key's id or name is listed (a caller without a key never matches a non-empty list) |
//! | `agents` | the gateway-agent behind the backend is listed |
//! | `client_apps` | a glob matches the client's `clientInfo.name` |
//! | `backends` | a glob matches the backend name |
//! | `tools` | a glob matches the backend's own tool name (`delete_*`, `*`) |
//! | `risks` | the tool's effective risk (`low`, `medium`, `high`) is listed |
//!
//! Globs are compiled once with `globset`: case-sensitive, `*` matches any
//! run of characters (`_` and `/` included), `?` one character, `[ab]` a
//! class, `{a,b}` alternatives.
//!
//! # Evaluation
//!
//! Rules are checked in `position` order; the **first enabled rule whose
//! conditions all match decides**. When none matches, the call is allowed
//! only if no enabled rule *covers* the backend; otherwise it is denied
//! ("deny by default once any rule exists for a scope"). A rule covers a
//! backend when its `backends` globs match it — and a rule **without** a
//! `backends` condition covers every backend, so one such rule turns the
//! default to deny everywhere. Disabled rules neither match nor cover.
//!
//! Admins are subject to the rules like everyone else, unless
//! `policy.admins_bypass = true`.
//!
//! API keys narrow further: a key's tool allowlist ([`key_allows`]) is checked
//! in addition to the rules, never instead of them. Backend visibility
//! ([`Policies::backend_visible`]) hides whole backends from roles and users
//! (admins see everything).
//!
//! # Storage and seeding
//!
//! Rules live in `policy_rules` and visibility in `backend_visibility`. The
//! compiled form sits behind an `RwLock<Arc<_>>` and is rebuilt and swapped
//! after every change made through [`Policies`]; evaluation only takes the
//! read lock long enough to clone the `Arc`. Rules in the config
//! (`[[policy.rules]]`, same fields as the API) are inserted once: at the
//! first start that finds the table empty. Afterwards the table is the truth
//! and the config rules are not applied again, even when every rule has been
//! deleted.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, LazyLock};

use globset::{Glob, GlobBuilder, GlobSet, GlobSetBuilder};
use parking_lot::RwLock;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::config::{Config, ConfigError};
use crate::registry::Risk;
use crate::store::{BackendVisibility, PolicyRule, Role, Store, StoreError};

// ---------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------

/// `[policy]`: policy settings.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct PolicyConfig {
    /// Hide and refuse tools whose definition changed until an admin approves.
    pub hold_changed_tools: bool,
    /// Whether tools seen for the first time start enabled.
    pub new_tools_enabled: bool,
    /// Let the `admin` role skip the rules.
    pub admins_bypass: bool,
    /// Rules inserted once when the rule table is empty (`[[policy.rules]]`,
    /// file only: a list of tables has no env form).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<RuleSpec>,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        Self { hold_changed_tools: false, new_tools_enabled: true, admins_bypass: false, rules: Vec::new() }
    }
}

fn env_bool(l: &mut crate::config::EnvLayer<'_>, key: &str, slot: &mut bool) -> Result<(), ConfigError> {
    if let Some(v) = l.get(key) {
        *slot = match v.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => true,
            "false" | "0" | "no" | "off" => false,
            _ => {
                return Err(ConfigError::invalid(key, format!("not a boolean (set by {})", crate::config::env_var_name(key))));
            }
        };
    }
    Ok(())
}

impl PolicyConfig {
    /// Applies `GATEHOUSE_POLICY_*` variables (booleans: true/false, 1/0,
    /// yes/no, on/off). Rules come from the file only.
    pub(crate) fn apply_env(&mut self, l: &mut crate::config::EnvLayer<'_>) -> Result<(), ConfigError> {
        env_bool(l, "policy.hold_changed_tools", &mut self.hold_changed_tools)?;
        env_bool(l, "policy.new_tools_enabled", &mut self.new_tools_enabled)?;
        env_bool(l, "policy.admins_bypass", &mut self.admins_bypass)
    }

    /// Checks every value; the error names the offending key (`policy.…`).
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut names = HashSet::new();
        for (i, rule) in self.rules.iter().enumerate() {
            validate_spec(rule).map_err(|e| match e {
                PolicyError::Invalid { field, reason } => ConfigError::invalid(format!("policy.rules[{i}].{field}"), reason),
                other => ConfigError::invalid(format!("policy.rules[{i}]"), other.to_string()),
            })?;
            if !names.insert(rule.name.as_str()) {
                return Err(ConfigError::invalid(format!("policy.rules[{i}].name"), format!("duplicate rule name `{}`", rule.name)));
            }
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// Rules
// ---------------------------------------------------------------------------

/// What a matching rule decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Effect {
    Allow,
    Deny,
}

impl Effect {
    /// `allow` or `deny`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Allow => "allow",
            Self::Deny => "deny",
        }
    }
}

impl fmt::Display for Effect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Effect {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "allow" => Ok(Self::Allow),
            "deny" => Ok(Self::Deny),
            other => Err(format!("unknown effect `{other}`: use allow or deny")),
        }
    }
}

fn yes() -> bool {
    true
}

/// A rule's settings and conditions as an admin writes them (config
/// `[[policy.rules]]` and the admin API); see the module docs for the meaning.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSpec {
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub effect: Effect,
    #[serde(default = "yes")]
    pub enabled: bool,
    #[serde(default)]
    pub roles: Vec<String>,
    #[serde(default)]
    pub users: Vec<String>,
    #[serde(default)]
    pub keys: Vec<String>,
    #[serde(default)]
    pub agents: Vec<String>,
    #[serde(default)]
    pub client_apps: Vec<String>,
    #[serde(default)]
    pub backends: Vec<String>,
    #[serde(default)]
    pub tools: Vec<String>,
    #[serde(default)]
    pub risks: Vec<Risk>,
}

impl RuleSpec {
    /// A rule with this name and effect and no conditions (matches everything).
    pub fn new(name: impl Into<String>, effect: Effect) -> Self {
        Self {
            name: name.into(),
            description: String::new(),
            effect,
            enabled: true,
            roles: Vec::new(),
            users: Vec::new(),
            keys: Vec::new(),
            agents: Vec::new(),
            client_apps: Vec::new(),
            backends: Vec::new(),
            tools: Vec::new(),
            risks: Vec::new(),
        }
    }
}

/// Longest rule name, in characters.
pub const MAX_NAME: usize = 100;
/// Longest description, in characters.
pub const MAX_DESCRIPTION: usize = 2000;
/// Most entries in one condition list.
pub const MAX_LIST: usize = 100;
/// Longest entry of a condition list, in characters.
pub const MAX_ENTRY: usize = 200;

fn invalid(field: impl Into<String>, reason: impl Into<String>) -> PolicyError {
    PolicyError::Invalid { field: field.into(), reason: reason.into() }
}

/// A glob as rules use it: case-sensitive, `*` crosses every character.
fn glob(pattern: &str) -> Result<Glob, globset::Error> {
    GlobBuilder::new(pattern).literal_separator(false).case_insensitive(false).backslash_escape(true).build()
}

fn check_text(field: &str, value: &str, max: usize) -> Result<(), PolicyError> {
    if value.chars().count() > max {
        return Err(invalid(field, format!("at most {max} characters")));
    }
    if value.chars().any(char::is_control) {
        return Err(invalid(field, "must not contain control characters"));
    }
    Ok(())
}

fn check_list(field: &str, list: &[String], globs: bool) -> Result<(), PolicyError> {
    if list.len() > MAX_LIST {
        return Err(invalid(field, format!("at most {MAX_LIST} entries")));
    }
    for (i, entry) in list.iter().enumerate() {
        let f = format!("{field}[{i}]");
        if entry.trim().is_empty() {
            return Err(invalid(f, "must not be empty"));
        }
        check_text(&f, entry, MAX_ENTRY)?;
        if globs {
            glob(entry).map_err(|e| invalid(f, format!("not a valid glob: {}", e.kind())))?;
        }
    }
    Ok(())
}

/// Checks every field of `spec`; the error names the field (`tools[2]`).
pub fn validate_spec(spec: &RuleSpec) -> Result<(), PolicyError> {
    if spec.name.trim().is_empty() {
        return Err(invalid("name", "must not be empty"));
    }
    check_text("name", &spec.name, MAX_NAME)?;
    if spec.description.chars().count() > MAX_DESCRIPTION {
        return Err(invalid("description", format!("at most {MAX_DESCRIPTION} characters")));
    }
    check_list("roles", &spec.roles, false)?;
    for (i, role) in spec.roles.iter().enumerate() {
        role.parse::<Role>().map_err(|e| invalid(format!("roles[{i}]"), e))?;
    }
    check_list("users", &spec.users, false)?;
    check_list("keys", &spec.keys, false)?;
    check_list("agents", &spec.agents, false)?;
    check_list("client_apps", &spec.client_apps, true)?;
    check_list("backends", &spec.backends, true)?;
    check_list("tools", &spec.tools, true)?;
    if spec.risks.len() > Risk::ALL.len() * 4 {
        return Err(invalid("risks", "too many entries"));
    }
    Ok(())
}

/// Checks a backend name used as a visibility key: 1-128 of `A-Z a-z 0-9 _ -`.
pub fn validate_backend_name(backend: &str) -> Result<(), PolicyError> {
    let ok = !backend.is_empty() && backend.len() <= 128 && backend.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok { Ok(()) } else { Err(invalid("backend", "use 1-128 characters of A-Z a-z 0-9 _ -")) }
}

// ---------------------------------------------------------------------------
// Decisions
// ---------------------------------------------------------------------------

/// What [`Policies::evaluate`] looks at.
#[derive(Debug, Clone, Copy)]
pub struct PolicyInput<'a> {
    pub user_id: &'a str,
    pub username: &'a str,
    pub role: &'a Role,
    pub key_id: Option<&'a str>,
    pub key_name: Option<&'a str>,
    /// The gateway-agent behind the backend, for agent backends.
    pub agent: Option<&'a str>,
    /// The client's `clientInfo.name`.
    pub client_app: Option<&'a str>,
    pub backend: &'a str,
    /// The backend's own tool name.
    pub tool: &'a str,
    pub risk: Risk,
}

/// The rule that decided.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RuleRef {
    pub id: String,
    pub name: String,
    pub position: i64,
}

/// The outcome of evaluating the rules for one call.
#[derive(Clone, Debug, Serialize, ToSchema)]
// The audit log has a `Decision` (allow/deny) of its own: one schema name each.
#[schema(as = PolicyDecision)]
pub struct Decision {
    pub allowed: bool,
    /// The rule that decided; `null` for a default decision.
    pub rule: Option<RuleRef>,
    /// Why, for people.
    pub reason: String,
}

const REASON_DEFAULT_DENY: &str = "no rule matched, and rules exist for this backend: denied by default";
const REASON_DEFAULT_ALLOW: &str = "no rule applies to this backend: allowed by default";
const REASON_BYPASS: &str = "admins bypass the policy rules (policy.admins_bypass)";

impl Decision {
    /// The JSON-RPC error refusing a call of `exposed_tool` (the name the
    /// client used), code [`gatehouse_proto::mcp::code::POLICY_DENIED`].
    pub fn to_error_object(&self, exposed_tool: &str) -> gatehouse_proto::ErrorObject {
        let message = match &self.rule {
            Some(r) => format!("Tool '{exposed_tool}' denied by policy rule '{}'", r.name),
            None => format!("Tool '{exposed_tool}' denied: no rule allows it"),
        };
        gatehouse_proto::ErrorObject {
            code: gatehouse_proto::mcp::code::POLICY_DENIED,
            message,
            data: Some(serde_json::json!({ "rule": self.rule, "reason": self.reason })),
        }
    }
}

/// Why a policy operation failed.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// A value was rejected; `field` names it (`tools[2]`, `position`).
    #[error("invalid {field}: {reason}")]
    Invalid { field: String, reason: String },
    /// No rule has this id.
    #[error("no policy rule with id `{0}`")]
    NotFound(String),
    /// The store failed (a taken rule name is [`StoreError::Conflict`]).
    #[error(transparent)]
    Store(#[from] StoreError),
}

// ---------------------------------------------------------------------------
// Compiled form
// ---------------------------------------------------------------------------

/// A compiled glob condition.
enum GlobCond {
    /// No condition.
    Any,
    Set(GlobSet),
    /// A stored glob that no longer compiles, on an allow rule: never matches.
    Never,
}

impl GlobCond {
    fn matches(&self, s: &str) -> bool {
        match self {
            Self::Any => true,
            Self::Set(set) => set.is_match(s),
            Self::Never => false,
        }
    }

    /// Whether the condition can select `s` (for coverage): a broken one
    /// counts as covering, so it fails closed.
    fn covers(&self, s: &str) -> bool {
        match self {
            Self::Set(set) => set.is_match(s),
            Self::Any | Self::Never => true,
        }
    }

    /// Compiles `patterns`. Stored patterns were validated on the way in; one
    /// that does not compile (a tampered row) makes a deny rule match
    /// everything and an allow rule nothing, so the failure is never an opening.
    fn compile(patterns: &[String], effect: Effect, rule: &str, field: &str) -> Self {
        if patterns.is_empty() {
            return Self::Any;
        }
        let mut b = GlobSetBuilder::new();
        for p in patterns {
            match glob(p) {
                Ok(g) => {
                    b.add(g);
                }
                Err(e) => {
                    tracing::error!(rule, field, error = %e.kind(), "stored policy glob does not compile; the rule fails closed");
                    return if effect == Effect::Deny { Self::Any } else { Self::Never };
                }
            }
        }
        match b.build() {
            Ok(set) => Self::Set(set),
            Err(e) => {
                tracing::error!(rule, field, error = %e, "stored policy globs do not compile; the rule fails closed");
                if effect == Effect::Deny { Self::Any } else { Self::Never }
            }
        }
    }
}

struct CompiledRule {
    rule: RuleRef,
    effect: Effect,
    reason: String,
    roles: Vec<String>,
    users: Vec<String>,
    keys: Vec<String>,
    agents: Vec<String>,
    client_apps: GlobCond,
    backends: GlobCond,
    tools: GlobCond,
    /// Bit per [`Risk`]; 0 = any.
    risks: u8,
}

fn risk_bit(r: Risk) -> u8 {
    match r {
        Risk::Low => 1,
        Risk::Medium => 2,
        Risk::High => 4,
    }
}

fn listed(list: &[String], value: &str) -> bool {
    list.iter().any(|x| x == value)
}

fn listed_opt(list: &[String], value: Option<&str>) -> bool {
    value.is_some_and(|v| listed(list, v))
}

impl CompiledRule {
    fn new(r: &PolicyRule) -> Self {
        let glob = |patterns: &[String], field: &str| GlobCond::compile(patterns, r.effect, &r.name, field);
        let verb = if r.effect == Effect::Allow { "allowed" } else { "denied" };
        Self {
            rule: RuleRef { id: r.id.clone(), name: r.name.clone(), position: r.position },
            effect: r.effect,
            reason: format!("{verb} by rule '{}' (position {})", r.name, r.position),
            roles: r.roles.clone(),
            users: r.users.clone(),
            keys: r.keys.clone(),
            agents: r.agents.clone(),
            client_apps: glob(&r.client_apps, "client_apps"),
            backends: glob(&r.backends, "backends"),
            tools: glob(&r.tools, "tools"),
            risks: r.risks.iter().fold(0, |m, r| m | risk_bit(*r)),
        }
    }

    /// Cheap checks first; no allocation.
    fn matches(&self, i: &PolicyInput<'_>) -> bool {
        (self.risks == 0 || self.risks & risk_bit(i.risk) != 0)
            && (self.roles.is_empty() || listed(&self.roles, i.role.as_str()))
            && (self.users.is_empty() || listed(&self.users, i.username))
            && (self.keys.is_empty() || listed_opt(&self.keys, i.key_id) || listed_opt(&self.keys, i.key_name))
            && (self.agents.is_empty() || listed_opt(&self.agents, i.agent))
            && match (&self.client_apps, i.client_app) {
                (GlobCond::Any, _) => true,
                (cond, Some(app)) => cond.matches(app),
                (_, None) => false,
            }
            && self.backends.matches(i.backend)
            && self.tools.matches(i.tool)
    }
}

struct Visibility {
    roles: Vec<String>,
    users: Vec<String>,
}

/// The rule set in force, ready to evaluate.
struct Compiled {
    /// Enabled rules, in order.
    rules: Vec<CompiledRule>,
    visibility: HashMap<String, Visibility>,
    admins_bypass: bool,
}

impl Compiled {
    fn build(rules: &[PolicyRule], visibility: &[BackendVisibility], admins_bypass: bool) -> Self {
        let mut sorted: Vec<&PolicyRule> = rules.iter().filter(|r| r.enabled).collect();
        sorted.sort_by(|a, b| a.position.cmp(&b.position).then_with(|| a.id.cmp(&b.id)));
        Self {
            rules: sorted.into_iter().map(CompiledRule::new).collect(),
            visibility: visibility
                .iter()
                .map(|v| (v.backend.clone(), Visibility { roles: v.roles.clone(), users: v.users.clone() }))
                .collect(),
            admins_bypass,
        }
    }

    fn evaluate(&self, input: &PolicyInput<'_>) -> Decision {
        if self.admins_bypass && *input.role == Role::Admin {
            return Decision { allowed: true, rule: None, reason: REASON_BYPASS.to_owned() };
        }
        if let Some(r) = self.rules.iter().find(|r| r.matches(input)) {
            return Decision { allowed: r.effect == Effect::Allow, rule: Some(r.rule.clone()), reason: r.reason.clone() };
        }
        let covered = self.rules.iter().any(|r| r.backends.covers(input.backend));
        Decision { allowed: !covered, rule: None, reason: if covered { REASON_DEFAULT_DENY } else { REASON_DEFAULT_ALLOW }.to_owned() }
    }

    fn backend_visible(&self, username: &str, role: &Role, backend: &str) -> bool {
        if *role == Role::Admin {
            return true;
        }
        match self.visibility.get(backend) {
            None => true,
            Some(v) => listed(&v.roles, role.as_str()) || listed(&v.users, username),
        }
    }
}

// ---------------------------------------------------------------------------
// API key allowlists
// ---------------------------------------------------------------------------

/// Compiled key allowlists, by their patterns. Keys are few and their lists
/// rarely change, so compiling each list once keeps the check cheap.
static KEY_GLOBS: LazyLock<RwLock<HashMap<Vec<String>, Arc<GlobSet>>>> = LazyLock::new(RwLock::default);
const KEY_GLOBS_MAX: usize = 4096;

fn key_globset(patterns: &[String]) -> Arc<GlobSet> {
    if let Some(set) = KEY_GLOBS.read().get(patterns) {
        return Arc::clone(set);
    }
    let mut b = GlobSetBuilder::new();
    for p in patterns {
        match glob(p) {
            Ok(g) => {
                b.add(g);
            }
            // An unusable pattern allows nothing: the key stays narrower, never wider.
            Err(e) => tracing::warn!(pattern = %p, error = %e.kind(), "API key tool pattern is not a valid glob; it matches nothing"),
        }
    }
    let set = Arc::new(b.build().unwrap_or_else(|_| GlobSet::empty()));
    let mut cache = KEY_GLOBS.write();
    if cache.len() >= KEY_GLOBS_MAX {
        cache.clear();
    }
    cache.insert(patterns.to_vec(), Arc::clone(&set));
    set
}

/// Whether an API key's tool allowlist (`tool_globs`; empty = every tool)
/// lets it call a tool, matching each glob against the exposed name
/// (`{backend}__{tool}`) and the backend's own name. Checked in addition to
/// the rules: a key only ever narrows what its user may do.
pub fn key_allows(tool_globs: &[String], exposed_name: &str, backend_tool: &str) -> bool {
    if tool_globs.is_empty() {
        return true;
    }
    let set = key_globset(tool_globs);
    set.is_match(exposed_name) || set.is_match(backend_tool)
}

// ---------------------------------------------------------------------------
// The engine
// ---------------------------------------------------------------------------

struct Inner {
    store: Store,
    admins_bypass: bool,
    compiled: RwLock<Arc<Compiled>>,
    /// Serialises this hub's writes (positions are renumbered in each).
    write: tokio::sync::Mutex<()>,
}

/// The compiled rule set in force. Cheap to clone.
#[derive(Clone)]
pub struct Policies {
    inner: Arc<Inner>,
}

impl fmt::Debug for Policies {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = self.current();
        f.debug_struct("Policies").field("enabled_rules", &c.rules.len()).field("admins_bypass", &c.admins_bypass).finish()
    }
}

/// The settings key marking that the config rules were seeded.
const SEEDED_SETTING: &str = "policy.rules_seeded";

impl Policies {
    /// Seeds the config rules (once, into an empty table), then loads and
    /// compiles the stored rules.
    pub async fn start(config: &Config, store: &Store) -> anyhow::Result<Self> {
        let p = &config.policy;
        if !p.rules.is_empty() && store.get_setting(SEEDED_SETTING).await?.is_none() && store.policy_rules().await?.is_empty() {
            // Several hubs may start at once: the one whose token wins seeds.
            let token = uuid::Uuid::now_v7().to_string();
            if store.set_setting_if_absent(SEEDED_SETTING, &token).await? == token && store.policy_rules_seed(&p.rules).await? {
                tracing::info!(rules = p.rules.len(), "policy rules seeded from the config");
            }
        }
        let policies = Self {
            inner: Arc::new(Inner {
                store: store.clone(),
                admins_bypass: p.admins_bypass,
                compiled: RwLock::new(Arc::new(Compiled::build(&[], &[], p.admins_bypass))),
                write: tokio::sync::Mutex::new(()),
            }),
        };
        policies.reload().await?;
        if p.admins_bypass {
            tracing::warn!("policy.admins_bypass is set: the admin role skips every policy rule");
        }
        Ok(policies)
    }

    fn current(&self) -> Arc<Compiled> {
        Arc::clone(&self.inner.compiled.read())
    }

    /// Decides whether `input` may call its tool. Never touches the store.
    pub fn evaluate(&self, input: &PolicyInput<'_>) -> Decision {
        self.current().evaluate(input)
    }

    /// Whether `backend` is visible to this user (admins see every backend).
    pub fn backend_visible(&self, username: &str, role: &Role, backend: &str) -> bool {
        self.current().backend_visible(username, role, backend)
    }

    /// Reloads rules and visibility from the store and swaps the compiled set
    /// (also picks up changes other hubs sharing the store made).
    pub async fn reload(&self) -> Result<(), PolicyError> {
        let rules = self.inner.store.policy_rules().await?;
        let visibility = self.inner.store.backend_visibilities().await?;
        let compiled = Arc::new(Compiled::build(&rules, &visibility, self.inner.admins_bypass));
        *self.inner.compiled.write() = compiled;
        Ok(())
    }

    /// Every rule, in evaluation order.
    pub async fn rules(&self) -> Result<Vec<PolicyRule>, PolicyError> {
        Ok(self.inner.store.policy_rules().await?)
    }

    /// The rule with this id.
    pub async fn rule(&self, id: &str) -> Result<PolicyRule, PolicyError> {
        self.inner.store.policy_rule(id).await?.ok_or_else(|| PolicyError::NotFound(id.to_owned()))
    }

    fn check_position(position: Option<i64>) -> Result<(), PolicyError> {
        match position {
            Some(p) if p < 1 => Err(invalid("position", "must be 1 or more (1 is evaluated first)")),
            _ => Ok(()),
        }
    }

    /// Adds a rule at the 1-based `position` (later rules move down; past the
    /// end or `None` appends) and puts it in force.
    pub async fn create_rule(&self, spec: &RuleSpec, position: Option<i64>) -> Result<PolicyRule, PolicyError> {
        validate_spec(spec)?;
        Self::check_position(position)?;
        let _w = self.inner.write.lock().await;
        let rule = self.inner.store.policy_rule_insert(spec, position).await?;
        self.reload().await?;
        Ok(rule)
    }

    /// Replaces rule `id`'s settings and conditions, moving it to `position`
    /// when given, and puts it in force.
    pub async fn update_rule(&self, id: &str, spec: &RuleSpec, position: Option<i64>) -> Result<PolicyRule, PolicyError> {
        validate_spec(spec)?;
        Self::check_position(position)?;
        let _w = self.inner.write.lock().await;
        let rule = self.inner.store.policy_rule_update(id, spec, position).await?.ok_or_else(|| PolicyError::NotFound(id.to_owned()))?;
        self.reload().await?;
        Ok(rule)
    }

    /// Deletes rule `id`; returns it as it was.
    pub async fn delete_rule(&self, id: &str) -> Result<PolicyRule, PolicyError> {
        let _w = self.inner.write.lock().await;
        let rule = self.rule(id).await?;
        if !self.inner.store.policy_rule_delete(id).await? {
            return Err(PolicyError::NotFound(id.to_owned()));
        }
        self.reload().await?;
        Ok(rule)
    }

    /// Sets the evaluation order; `ids` must list every rule exactly once.
    pub async fn reorder(&self, ids: &[String]) -> Result<Vec<PolicyRule>, PolicyError> {
        let _w = self.inner.write.lock().await;
        let mut seen = HashSet::new();
        if let Some(dup) = ids.iter().find(|id| !seen.insert(id.as_str())) {
            return Err(invalid("ids", format!("`{dup}` is listed more than once")));
        }
        let current = self.inner.store.policy_rules().await?;
        if let Some(unknown) = ids.iter().find(|id| !current.iter().any(|r| r.id == **id)) {
            return Err(invalid("ids", format!("no policy rule with id `{unknown}`")));
        }
        if let Some(missing) = current.iter().find(|r| !seen.contains(r.id.as_str())) {
            return Err(invalid("ids", format!("rule `{}` ({}) is missing: list every rule exactly once", missing.name, missing.id)));
        }
        self.inner.store.policy_rules_reorder(ids).await.map_err(|e| match e {
            StoreError::Invalid { field, reason } => invalid(field, reason),
            other => PolicyError::Store(other),
        })?;
        self.reload().await?;
        self.rules().await
    }

    /// Every backend with restricted visibility.
    pub async fn visibilities(&self) -> Result<Vec<BackendVisibility>, PolicyError> {
        Ok(self.inner.store.backend_visibilities().await?)
    }

    /// Who may see `backend`; `None` when everyone may.
    pub async fn visibility(&self, backend: &str) -> Result<Option<BackendVisibility>, PolicyError> {
        validate_backend_name(backend)?;
        Ok(self.inner.store.backend_visibility(backend).await?)
    }

    /// Restricts `backend` to these roles and users (admins always see it).
    pub async fn set_visibility(&self, backend: &str, roles: &[String], users: &[String]) -> Result<BackendVisibility, PolicyError> {
        validate_backend_name(backend)?;
        check_list("roles", roles, false)?;
        for (i, role) in roles.iter().enumerate() {
            role.parse::<Role>().map_err(|e| invalid(format!("roles[{i}]"), e))?;
        }
        check_list("users", users, false)?;
        let _w = self.inner.write.lock().await;
        let v = self.inner.store.set_backend_visibility(backend, roles, users).await?;
        self.reload().await?;
        Ok(v)
    }

    /// Makes `backend` visible to everyone again; `false` when it already was.
    pub async fn clear_visibility(&self, backend: &str) -> Result<bool, PolicyError> {
        validate_backend_name(backend)?;
        let _w = self.inner.write.lock().await;
        let done = self.inner.store.clear_backend_visibility(backend).await?;
        self.reload().await?;
        Ok(done)
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;

    use super::*;

    fn rule(position: i64, spec: RuleSpec) -> PolicyRule {
        PolicyRule {
            id: format!("id-{position}"),
            position,
            name: spec.name,
            description: spec.description,
            effect: spec.effect,
            enabled: spec.enabled,
            roles: spec.roles,
            users: spec.users,
            keys: spec.keys,
            agents: spec.agents,
            client_apps: spec.client_apps,
            backends: spec.backends,
            tools: spec.tools,
            risks: spec.risks,
            created_at: Utc::now(),
            updated_at: Utc::now(),
        }
    }

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| (*x).to_owned()).collect()
    }

    fn spec(name: &str, effect: Effect, f: impl FnOnce(&mut RuleSpec)) -> RuleSpec {
        let mut r = RuleSpec::new(name, effect);
        f(&mut r);
        r
    }

    fn compiled(specs: Vec<RuleSpec>) -> Compiled {
        let rules: Vec<PolicyRule> = specs.into_iter().enumerate().map(|(i, s)| rule(i as i64 + 1, s)).collect();
        Compiled::build(&rules, &[], false)
    }

    struct Call<'a> {
        role: Role,
        user: &'a str,
        key: Option<(&'a str, &'a str)>,
        agent: Option<&'a str>,
        app: Option<&'a str>,
        backend: &'a str,
        tool: &'a str,
        risk: Risk,
    }

    impl Default for Call<'_> {
        fn default() -> Self {
            Self { role: Role::Developer, user: "dave", key: None, agent: None, app: None, backend: "fs", tool: "echo", risk: Risk::Medium }
        }
    }

    fn eval(c: &Compiled, call: &Call<'_>) -> Decision {
        c.evaluate(&PolicyInput {
            user_id: "u1",
            username: call.user,
            role: &call.role,
            key_id: call.key.map(|k| k.0),
            key_name: call.key.map(|k| k.1),
            agent: call.agent,
            client_app: call.app,
            backend: call.backend,
            tool: call.tool,
            risk: call.risk,
        })
    }

    fn rule_name(d: &Decision) -> Option<&str> {
        d.rule.as_ref().map(|r| r.name.as_str())
    }

    /// Roles × key allowlists × tools against one rule set: the decision,
    /// the deciding rule, and the key narrowing on top.
    #[test]
    fn matrix_of_roles_keys_and_tools() {
        let rules = || {
            vec![
                spec("deny-high-for-readers", Effect::Deny, |r| {
                    r.roles = s(&["viewer", "auditor"]);
                    r.risks = vec![Risk::High];
                }),
                spec("staff-on-fs", Effect::Allow, |r| {
                    r.roles = s(&["admin", "developer"]);
                    r.backends = s(&["fs"]);
                }),
                spec("readers-low", Effect::Allow, |r| {
                    r.roles = s(&["viewer", "auditor"]);
                    r.risks = vec![Risk::Low];
                }),
            ]
        };
        let tools = [("read_file", Risk::Low), ("delete_file", Risk::High), ("echo", Risk::Medium)];
        let roles = [Role::Admin, Role::Developer, Role::Viewer, Role::Custom("auditor".into())];
        let keys: [&[&str]; 4] = [&[], &["fs__read_*"], &["delete_*"], &["other__*"]];
        for bypass in [false, true] {
            let mut c = compiled(rules());
            c.admins_bypass = bypass;
            for role in &roles {
                for (tool, risk) in tools {
                    let d = eval(&c, &Call { role: role.clone(), tool, risk, ..Call::default() });
                    let (allowed, by) = match (role, tool) {
                        (Role::Admin, _) if bypass => (true, None),
                        (Role::Admin | Role::Developer, _) => (true, Some("staff-on-fs")),
                        (_, "read_file") => (true, Some("readers-low")),
                        (_, "delete_file") => (false, Some("deny-high-for-readers")),
                        // No rule matches, and rules without `backends` cover fs.
                        _ => (false, None),
                    };
                    assert_eq!((d.allowed, rule_name(&d)), (allowed, by), "{role} {tool} bypass={bypass}: {}", d.reason);
                    if let Some(r) = &d.rule {
                        assert!(d.reason.contains(&r.name));
                    }
                    for key in keys {
                        let globs = s(key);
                        let key_ok = key_allows(&globs, &format!("fs__{tool}"), tool);
                        let expected_key = match key {
                            [] => true,
                            ["fs__read_*"] => tool == "read_file",
                            ["delete_*"] => tool == "delete_file",
                            _ => false,
                        };
                        assert_eq!(key_ok, expected_key, "{key:?} {tool}");
                        // A key narrows, never widens.
                        assert!(!(key_ok && d.allowed) || allowed);
                    }
                }
            }
        }
    }

    #[test]
    fn order_matters() {
        let deny = || spec("no-deletes", Effect::Deny, |r| r.tools = s(&["delete_*"]));
        let allow = || spec("devs", Effect::Allow, |r| r.roles = s(&["developer"]));
        let call = Call { tool: "delete_file", ..Call::default() };
        let d = eval(&compiled(vec![deny(), allow()]), &call);
        assert!(!d.allowed);
        assert_eq!(d.rule.unwrap(), RuleRef { id: "id-1".into(), name: "no-deletes".into(), position: 1 });
        let d = eval(&compiled(vec![allow(), deny()]), &call);
        assert!(d.allowed);
        assert_eq!(rule_name(&d), Some("devs"));
    }

    #[test]
    fn default_deny_only_for_covered_backends() {
        // No rules at all: everything is allowed.
        let d = eval(&compiled(vec![]), &Call::default());
        assert!(d.allowed && d.rule.is_none());
        assert_eq!(d.reason, REASON_DEFAULT_ALLOW);

        let c = compiled(vec![spec("fs-devs", Effect::Allow, |r| {
            r.backends = s(&["fs", "db-*"]);
            r.roles = s(&["developer"]);
        })]);
        assert!(eval(&c, &Call::default()).allowed);
        let d = eval(&c, &Call { role: Role::Viewer, ..Call::default() });
        assert!(!d.allowed && d.rule.is_none());
        assert_eq!(d.reason, REASON_DEFAULT_DENY);
        assert!(!eval(&c, &Call { role: Role::Viewer, backend: "db-main", ..Call::default() }).allowed);
        // An uncovered backend keeps the default allow.
        assert!(eval(&c, &Call { role: Role::Viewer, backend: "git", ..Call::default() }).allowed);

        // A disabled rule neither matches nor covers.
        let c = compiled(vec![spec("off", Effect::Deny, |r| r.enabled = false)]);
        assert!(eval(&c, &Call::default()).allowed);
        // A rule without `backends` covers every backend.
        let c = compiled(vec![spec("one-user", Effect::Allow, |r| r.users = s(&["erin"]))]);
        assert!(!eval(&c, &Call { backend: "anything", ..Call::default() }).allowed);
        assert!(eval(&c, &Call { user: "erin", backend: "anything", ..Call::default() }).allowed);
    }

    #[test]
    fn principal_conditions() {
        let c = compiled(vec![
            spec("ci-key", Effect::Allow, |r| r.keys = s(&["key-ci"])),
            spec("laptop", Effect::Allow, |r| r.agents = s(&["alice-laptop"])),
            spec("claude", Effect::Allow, |r| r.client_apps = s(&["claude-*"])),
        ]);
        assert_eq!(rule_name(&eval(&c, &Call { key: Some(("k1", "key-ci")), ..Call::default() })), Some("ci-key"));
        assert_eq!(rule_name(&eval(&c, &Call { key: Some(("key-ci", "other")), ..Call::default() })), Some("ci-key"));
        assert_eq!(rule_name(&eval(&c, &Call { agent: Some("alice-laptop"), ..Call::default() })), Some("laptop"));
        assert_eq!(rule_name(&eval(&c, &Call { app: Some("claude-code"), ..Call::default() })), Some("claude"));
        // Without a key, agent or client name those conditions never match.
        let d = eval(&c, &Call { app: Some("Claude-code"), ..Call::default() });
        assert!(!d.allowed && d.rule.is_none());
    }

    #[test]
    fn glob_edge_cases() {
        let c = compiled(vec![spec("g", Effect::Deny, |r| {
            r.tools = s(&["delete_*", "{rm,kill}", "drop?", "exec[0-9]", "*__shell"]);
            r.backends = s(&["*"]);
        })]);
        let denied =
            |tool: &str| !eval(&c, &Call { tool, ..Call::default() }).allowed && eval(&c, &Call { tool, ..Call::default() }).rule.is_some();
        for t in ["delete_file", "delete_", "delete_a_b_c", "rm", "kill", "drops", "exec1", "x__shell", "__shell", "delete_a/b"] {
            assert!(denied(t), "{t}");
        }
        for t in ["undelete_file", "Delete_file", "DELETE_X", "rmdir", "drop", "dropss", "execx", "delete"] {
            assert!(!denied(t), "{t}");
        }
        // `*` alone matches every name, `_` included.
        let c = compiled(vec![spec("all", Effect::Allow, |r| r.tools = s(&["*"]))]);
        assert!(eval(&c, &Call { tool: "a_b__c", ..Call::default() }).allowed);
        // Backend globs are case-sensitive too.
        let c = compiled(vec![spec("fs", Effect::Deny, |r| r.backends = s(&["FS"]))]);
        assert!(eval(&c, &Call::default()).allowed);
    }

    #[test]
    fn broken_stored_globs_fail_closed() {
        let c = compiled(vec![
            spec("bad-deny", Effect::Deny, |r| r.tools = s(&["[oops"])),
            spec("bad-allow", Effect::Allow, |r| r.tools = s(&["[oops"])),
        ]);
        assert_eq!(rule_name(&eval(&c, &Call::default())), Some("bad-deny"));
        let c = compiled(vec![spec("bad-allow", Effect::Allow, |r| r.backends = s(&["[oops"]))]);
        let d = eval(&c, &Call { backend: "anything", ..Call::default() });
        assert!(!d.allowed && d.rule.is_none());
    }

    #[test]
    fn visibility() {
        let vis = vec![BackendVisibility { backend: "hr".into(), roles: s(&["auditor"]), users: s(&["erin"]), updated_at: Utc::now() }];
        let c = Compiled::build(&[], &vis, false);
        assert!(c.backend_visible("dave", &Role::Developer, "fs"));
        assert!(!c.backend_visible("dave", &Role::Developer, "hr"));
        assert!(c.backend_visible("erin", &Role::Viewer, "hr"));
        assert!(c.backend_visible("x", &Role::Custom("auditor".into()), "hr"));
        assert!(c.backend_visible("root", &Role::Admin, "hr"));
    }

    #[test]
    fn key_allowlists() {
        assert!(key_allows(&[], "fs__rm", "rm"));
        assert!(key_allows(&s(&["fs__*"]), "fs__rm", "rm"));
        assert!(!key_allows(&s(&["git__*"]), "fs__rm", "rm"));
        assert!(key_allows(&s(&["rm"]), "fs__rm", "rm"));
        assert!(!key_allows(&s(&["RM"]), "fs__rm", "rm"));
        // An invalid pattern matches nothing, the others still work.
        assert!(!key_allows(&s(&["[x"]), "fs__rm", "rm"));
        assert!(key_allows(&s(&["[x", "fs__r*"]), "fs__rm", "rm"));
    }

    #[test]
    fn specs_are_validated_naming_the_field() {
        let field = |f: fn(&mut RuleSpec)| match validate_spec(&spec("r", Effect::Allow, f)) {
            Err(PolicyError::Invalid { field, .. }) => field,
            other => panic!("{other:?}"),
        };
        assert_eq!(field(|r| r.tools = s(&["ok", "[bad"])), "tools[1]");
        assert_eq!(field(|r| r.backends = s(&["{a,"])), "backends[0]");
        assert_eq!(field(|r| r.client_apps = s(&[""])), "client_apps[0]");
        assert_eq!(field(|r| r.roles = s(&["Not A Role"])), "roles[0]");
        assert_eq!(field(|r| r.name = " ".into()), "name");
        assert_eq!(field(|r| r.name = "x".repeat(MAX_NAME + 1)), "name");
        assert_eq!(field(|r| r.users = vec!["u".into(); MAX_LIST + 1]), "users");
        assert_eq!(field(|r| r.keys = s(&["a\nb"])), "keys[0]");
        // Custom role names are fine.
        validate_spec(&spec("r", Effect::Allow, |r| r.roles = s(&["auditor", "admin"]))).unwrap();
    }

    #[test]
    fn error_objects() {
        let d =
            Decision { allowed: false, rule: Some(RuleRef { id: "i".into(), name: "no-deletes".into(), position: 2 }), reason: "x".into() };
        let e = d.to_error_object("fs__delete_file");
        assert_eq!(e.code, -32012);
        assert_eq!(e.message, "Tool 'fs__delete_file' denied by policy rule 'no-deletes'");
        assert_eq!(e.data.unwrap(), serde_json::json!({"rule": {"id": "i", "name": "no-deletes", "position": 2}, "reason": "x"}));
        let d = Decision { allowed: false, rule: None, reason: REASON_DEFAULT_DENY.into() };
        let e = d.to_error_object("fs__x");
        assert_eq!(e.message, "Tool 'fs__x' denied: no rule allows it");
        assert_eq!(e.data.unwrap()["rule"], serde_json::Value::Null);
    }

    #[test]
    fn config_section() {
        let c = crate::config::parse(
            "[policy]\nhold_changed_tools = true\n[[policy.rules]]\nname = \"no-deletes\"\neffect = \"deny\"\ntools = [\"delete_*\"]\nrisks = [\"high\"]\n",
            &crate::config::MapEnv::new(),
        )
        .unwrap();
        assert!(c.policy.hold_changed_tools && c.policy.new_tools_enabled && !c.policy.admins_bypass);
        assert_eq!(c.policy.rules[0].risks, vec![Risk::High]);
        assert!(c.policy.rules[0].enabled);
        let err =
            crate::config::parse("[[policy.rules]]\nname = \"x\"\neffect = \"deny\"\ntools = [\"[\"]\n", &crate::config::MapEnv::new())
                .unwrap_err();
        assert_eq!(err.key(), Some("policy.rules[0].tools[0]"));
        let env =
            crate::config::MapEnv::new().with("GATEHOUSE_POLICY_ADMINS_BYPASS", "true").with("GATEHOUSE_POLICY_NEW_TOOLS_ENABLED", "0");
        let c = crate::config::parse("", &env).unwrap();
        assert!(c.policy.admins_bypass && !c.policy.new_tools_enabled);
        let env = crate::config::MapEnv::new().with("GATEHOUSE_POLICY_HOLD_CHANGED_TOOLS", "maybe");
        assert_eq!(crate::config::parse("", &env).unwrap_err().key(), Some("policy.hold_changed_tools"));
    }

    #[tokio::test]
    async fn crud_keeps_positions_dense_and_recompiles() {
        let store = Store::connect("sqlite::memory:").await.unwrap();
        let config = crate::config::parse("", &crate::config::MapEnv::new()).unwrap();
        let p = Policies::start(&config, &store).await.unwrap();
        let dev = Role::Developer;
        let input = PolicyInput {
            user_id: "u",
            username: "dave",
            role: &dev,
            key_id: None,
            key_name: None,
            agent: None,
            client_app: None,
            backend: "fs",
            tool: "delete_file",
            risk: Risk::High,
        };
        assert!(p.evaluate(&input).allowed);
        let a = p.create_rule(&spec("a", Effect::Deny, |r| r.tools = s(&["delete_*"])), None).await.unwrap();
        assert!(!p.evaluate(&input).allowed);
        let b = p.create_rule(&spec("b", Effect::Allow, |_| {}), Some(1)).await.unwrap();
        assert_eq!(p.evaluate(&input).rule.unwrap().name, "b");
        let c = p.create_rule(&spec("c", Effect::Allow, |_| {}), Some(99)).await.unwrap();
        let order = |rules: Vec<PolicyRule>| rules.into_iter().map(|r| (r.name, r.position)).collect::<Vec<_>>();
        assert_eq!(order(p.rules().await.unwrap()), [("b".into(), 1), ("a".into(), 2), ("c".into(), 3)]);
        assert!(matches!(p.create_rule(&spec("a", Effect::Allow, |_| {}), None).await, Err(PolicyError::Store(StoreError::Conflict(_)))));
        assert!(matches!(p.create_rule(&spec("z", Effect::Allow, |_| {}), Some(0)).await, Err(PolicyError::Invalid { .. })));

        let rules = p.reorder(&[a.id.clone(), c.id.clone(), b.id.clone()]).await.unwrap();
        assert_eq!(order(rules), [("a".into(), 1), ("c".into(), 2), ("b".into(), 3)]);
        assert!(!p.evaluate(&input).allowed);
        assert!(matches!(p.reorder(&[a.id.clone(), c.id.clone()]).await, Err(PolicyError::Invalid { .. })));
        assert!(matches!(p.reorder(&[a.id.clone(), a.id.clone(), c.id.clone(), b.id.clone()]).await, Err(PolicyError::Invalid { .. })));

        // Moving and disabling through an update.
        let mut sa = spec("a", Effect::Deny, |r| r.tools = s(&["delete_*"]));
        sa.enabled = false;
        let moved = p.update_rule(&a.id, &sa, Some(3)).await.unwrap();
        assert_eq!(moved.position, 3);
        assert_eq!(p.evaluate(&input).rule.unwrap().name, "c");
        p.delete_rule(&c.id).await.unwrap();
        assert_eq!(order(p.rules().await.unwrap()), [("b".into(), 1), ("a".into(), 2)]);
        assert!(matches!(p.delete_rule(&c.id).await, Err(PolicyError::NotFound(_))));

        p.set_visibility("hr", &s(&["auditor"]), &[]).await.unwrap();
        assert!(!p.backend_visible("dave", &dev, "hr"));
        assert!(p.clear_visibility("hr").await.unwrap());
        assert!(p.backend_visible("dave", &dev, "hr"));
    }

    #[tokio::test]
    async fn config_rules_are_seeded_once() {
        let store = Store::connect("sqlite::memory:").await.unwrap();
        let config = crate::config::parse(
            "[[policy.rules]]\nname = \"one\"\neffect = \"deny\"\n[[policy.rules]]\nname = \"two\"\neffect = \"allow\"\n",
            &crate::config::MapEnv::new(),
        )
        .unwrap();
        let p = Policies::start(&config, &store).await.unwrap();
        let rules = p.rules().await.unwrap();
        assert_eq!(rules.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(), ["one", "two"]);
        for r in rules {
            p.delete_rule(&r.id).await.unwrap();
        }
        let p = Policies::start(&config, &store).await.unwrap();
        assert!(p.rules().await.unwrap().is_empty());
    }
}
