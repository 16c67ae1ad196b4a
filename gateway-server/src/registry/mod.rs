//! The tool registry: every tool seen from every backend and agent, with its
//! risk, the admin's enabled flag, and the pinned definition.
//!
//! - **Risk** ([`assess_risk`]): MCP annotations first (`readOnlyHint: true`
//!   → low, `destructiveHint: true` → high, `openWorldHint: true` → at least
//!   medium), name and description heuristics when the annotations say
//!   nothing, and an admin's override above both.
//! - **Pinning**: a tool's definition (name, title, description, input and
//!   output schema, annotations) is hashed over its canonical JSON (sorted
//!   keys, no whitespace, null members dropped). The first sighting pins the
//!   hash. A later sync with another hash marks the tool `changed` and keeps
//!   the new definition as pending; with `policy.hold_changed_tools = true`
//!   the tool is *held* (neither listed nor callable) until an admin
//!   approves it, which pins the new hash. While a change is pending the
//!   automatic risk is the higher of the two definitions' risks, so a change
//!   cannot lower it before approval.
//! - **Enabled** is an admin decision: syncs never touch it, so it survives
//!   restarts, re-syncs and agent reconnects. New tools start enabled unless
//!   `policy.new_tools_enabled = false`.
//! - Tools a backend no longer offers stay registered; `last_seen` tells.
//!
//! The data path asks [`ToolRegistry::lookup`], a lookup in an in-memory
//! snapshot rebuilt from the store after every change; it never touches the
//! database.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use parking_lot::RwLock;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use utoipa::{IntoParams, ToSchema};

use crate::config::Config;
use crate::store::{Store, StoreError, StoredTool, ToolSyncWrites};

/// How much harm a tool call can do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Risk {
    /// Reads only.
    Low,
    /// Changes something, or reaches outside, without being clearly destructive.
    Medium,
    /// Deletes, overwrites, executes, moves money or deploys.
    High,
}

impl Risk {
    /// Every level, lowest first.
    pub const ALL: [Risk; 3] = [Risk::Low, Risk::Medium, Risk::High];

    /// `low`, `medium` or `high`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Low => "low",
            Self::Medium => "medium",
            Self::High => "high",
        }
    }
}

impl fmt::Display for Risk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Risk {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL.into_iter().find(|r| r.as_str() == s).ok_or_else(|| format!("unknown risk `{s}`: use low, medium or high"))
    }
}

/// Whether a tool's latest definition is the pinned one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ToolStatus {
    /// The backend offers the pinned definition.
    Ok,
    /// The backend offers a different definition, pending approval.
    Changed,
}

impl ToolStatus {
    /// `ok` or `changed`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Changed => "changed",
        }
    }
}

impl FromStr for ToolStatus {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "ok" => Ok(Self::Ok),
            "changed" => Ok(Self::Changed),
            other => Err(format!("unknown tool status `{other}`: use ok or changed")),
        }
    }
}

/// Why a registry operation failed.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// No tool has this id.
    #[error("no tool with id `{0}`")]
    NotFound(String),
    /// The operation does not apply to the tool's state.
    #[error("{0}")]
    Conflict(String),
    /// An argument was rejected.
    #[error("invalid {field}: {reason}")]
    Invalid { field: &'static str, reason: String },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What the data path needs to know about a tool, from the in-memory snapshot.
#[derive(Clone, Debug)]
pub struct ToolInfo {
    pub id: String,
    /// The effective risk: the admin's override, else the assessed one.
    pub risk: Risk,
    /// The admin's flag; a disabled tool is neither listed nor callable.
    pub enabled: bool,
    /// Not listable nor callable because of a change pending approval
    /// (only with `policy.hold_changed_tools`).
    pub held: bool,
    /// The backend offers a definition other than the pinned one.
    pub changed: bool,
}

/// What one [`ToolRegistry::sync_backend`] found, by tool name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, ToSchema)]
pub struct SyncReport {
    /// Tools seen for the first time.
    pub added: Vec<String>,
    /// Tools whose definition differs from the pinned one since this sync.
    pub changed: Vec<String>,
    /// Registered tools the backend no longer offers (kept; `last_seen` tells).
    pub removed_or_missing: Vec<String>,
}

/// Filters of [`ToolRegistry::list`] (and `GET /api/v1/tools`); absent = any.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ToolFilter {
    /// Case-insensitive text searched in the name, exposed name and description.
    pub q: Option<String>,
    /// Exact backend name.
    pub backend: Option<String>,
    /// Exact agent name.
    pub agent: Option<String>,
    /// Effective risk.
    pub risk: Option<Risk>,
    pub enabled: Option<bool>,
    pub status: Option<ToolStatus>,
}

/// A registered tool with everything the admin API shows.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ToolRecord {
    pub id: String,
    pub backend: String,
    /// The backend's own tool name.
    pub name: String,
    /// The name clients see through `/mcp`: `{backend}__{name}`.
    pub exposed_name: String,
    pub agent: Option<String>,
    pub title: Option<String>,
    pub description: Option<String>,
    /// The effective risk.
    pub risk: Risk,
    /// The assessed risk.
    pub risk_auto: Risk,
    /// The admin's override, when set.
    pub risk_override: Option<Risk>,
    pub enabled: bool,
    pub status: ToolStatus,
    /// Hidden and refused until an admin approves the pending change.
    pub held: bool,
    pub annotations: Option<Value>,
    /// The pinned definition (`name`, `title`, `description`, `inputSchema`,
    /// `outputSchema`, `annotations`).
    pub definition: Value,
    /// The definition the backend offers now, when it differs from the pinned one.
    pub pending_definition: Option<Value>,
    pub definition_hash: String,
    pub pinned_hash: String,
    pub first_seen: chrono::DateTime<chrono::Utc>,
    pub last_seen: chrono::DateTime<chrono::Utc>,
    pub approved_by: Option<String>,
    pub approved_at: Option<chrono::DateTime<chrono::Utc>>,
}

// ---------------------------------------------------------------------------
// Risk assessment
// ---------------------------------------------------------------------------

/// Words in a tool name (or description) that mark it as dangerous.
const HIGH_WORDS: &[&str] = &[
    "delete",
    "remove",
    "rm",
    "rmdir",
    "unlink",
    "drop",
    "destroy",
    "kill",
    "exec",
    "execute",
    "eval",
    "shell",
    "bash",
    "sudo",
    "write",
    "overwrite",
    "truncate",
    "purge",
    "erase",
    "wipe",
    "terminate",
    "shutdown",
    "reboot",
    "transfer",
    "pay",
    "payment",
    "withdraw",
    "refund",
    "deploy",
    "revoke",
    "chmod",
    "chown",
];

/// Words that mark a tool as read-only.
const LOW_WORDS: &[&str] = &[
    "get", "list", "read", "search", "fetch", "query", "describe", "show", "find", "view", "lookup", "count", "inspect", "stat", "status",
    "info",
];

/// Splits `text` into lowercase words at non-alphanumerics and camelCase humps.
fn words(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut prev_lower = false;
    for c in text.chars() {
        if c.is_alphanumeric() {
            if c.is_uppercase() && prev_lower && !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
            prev_lower = c.is_lowercase() || c.is_ascii_digit();
            cur.extend(c.to_lowercase());
        } else {
            prev_lower = false;
            if !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// `word` is `base` or a plain inflection of it (`deletes`, `deleted`,
/// `deleting`, `dropped`, `writing`).
fn is_form_of(word: &str, base: &str) -> bool {
    if let Some(rest) = word.strip_prefix(base) {
        if matches!(rest, "" | "s" | "es" | "d" | "ed" | "ing") {
            return true;
        }
        // A doubled final consonant: `dropped`, `running`.
        return base.chars().last().and_then(|c| rest.strip_prefix(c)).is_some_and(|r| r == "ed" || r == "ing");
    }
    base.strip_suffix('e').and_then(|stem| word.strip_prefix(stem)).is_some_and(|r| r == "ing")
}

fn has_any(ws: &[String], list: &[&str]) -> bool {
    ws.iter().any(|w| list.iter().any(|b| is_form_of(w, b)))
}

/// `run` followed by `command`/`cmd`/`script`/`code`/`shell` (e.g. `run_command`).
fn runs_something(ws: &[String]) -> bool {
    ws.windows(2).any(|p| is_form_of(&p[0], "run") && matches!(p[1].as_str(), "command" | "commands" | "cmd" | "script" | "code" | "shell"))
}

/// The risk name and description suggest, when the annotations say nothing.
fn heuristic_risk(name: &str, description: Option<&str>) -> Risk {
    let ws = words(name);
    if has_any(&ws, HIGH_WORDS) || runs_something(&ws) {
        return Risk::High;
    }
    if has_any(&ws, LOW_WORDS) {
        return Risk::Low;
    }
    // The name is neutral: look at the description, cautiously. Any
    // dangerous word makes it high; a description that starts with a
    // reading verb ("Lists …", "Returns …") makes it low.
    if let Some(d) = description {
        let dw = words(d);
        if has_any(&dw, HIGH_WORDS) || runs_something(&dw) {
            return Risk::High;
        }
        if dw.first().is_some_and(|w| LOW_WORDS.iter().chain(["return", "retrieve"].iter()).any(|b| is_form_of(w, b))) {
            return Risk::Low;
        }
    }
    Risk::Medium
}

/// Assesses the risk of one tool definition (an element of a `tools/list`
/// answer): annotations first, then name and description heuristics. Pure.
pub fn assess_risk(tool: &Map<String, Value>) -> Risk {
    let name = tool.get("name").and_then(Value::as_str).unwrap_or("");
    let description = tool.get("description").and_then(Value::as_str);
    let ann = tool.get("annotations").and_then(Value::as_object);
    let hint = |k: &str| ann.and_then(|a| a.get(k)).and_then(Value::as_bool);
    let (read_only, destructive, open_world) = (hint("readOnlyHint"), hint("destructiveHint"), hint("openWorldHint"));
    if read_only == Some(true) {
        return Risk::Low;
    }
    if destructive == Some(true) {
        return Risk::High;
    }
    if open_world == Some(true) {
        return heuristic_risk(name, description).max(Risk::Medium);
    }
    // Explicitly not read-only and not destructive: a plain write.
    if read_only == Some(false) && destructive == Some(false) {
        return Risk::Medium;
    }
    heuristic_risk(name, description)
}

// ---------------------------------------------------------------------------
// Definitions and their hashes
// ---------------------------------------------------------------------------

/// The members of a tool that make up its pinned definition.
const DEFINITION_KEYS: [&str; 6] = ["name", "title", "description", "inputSchema", "outputSchema", "annotations"];

/// The definition part of a tool object; absent and `null` members are dropped
/// (so `"title": null` and no title hash the same).
pub fn definition_of(tool: &Map<String, Value>) -> Map<String, Value> {
    DEFINITION_KEYS.iter().filter_map(|k| tool.get(*k).filter(|v| !v.is_null()).map(|v| ((*k).to_owned(), v.clone()))).collect()
}

/// Canonical JSON: object keys sorted (by code point), no whitespace.
pub fn canonical_json(v: &Value) -> String {
    fn write(v: &Value, out: &mut String) {
        match v {
            Value::Object(m) => {
                let mut keys: Vec<&String> = m.keys().collect();
                keys.sort();
                out.push('{');
                for (i, k) in keys.into_iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(&Value::String(k.clone()).to_string());
                    out.push(':');
                    if let Some(x) = m.get(k) {
                        write(x, out);
                    }
                }
                out.push('}');
            }
            Value::Array(a) => {
                out.push('[');
                for (i, x) in a.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write(x, out);
                }
                out.push(']');
            }
            other => out.push_str(&other.to_string()),
        }
    }
    let mut out = String::new();
    write(v, &mut out);
    out
}

/// Hex sha256 of the canonical JSON of the tool's definition.
pub fn definition_hash(tool: &Map<String, Value>) -> String {
    let def = Value::Object(definition_of(tool));
    hex::encode(Sha256::digest(canonical_json(&def).as_bytes()))
}

/// The pinned definition of a stored tool, as a JSON object.
fn pinned_definition(t: &StoredTool) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("name".into(), Value::String(t.name.clone()));
    let mut put = |k: &str, v: Option<Value>| {
        if let Some(v) = v.filter(|v| !v.is_null()) {
            m.insert(k.to_owned(), v);
        }
    };
    put("title", t.title.clone().map(Value::String));
    put("description", t.description.clone().map(Value::String));
    put("inputSchema", t.input_schema.clone());
    put("outputSchema", t.output_schema.clone());
    put("annotations", t.annotations.clone());
    m
}

/// Writes `def` into the definition columns of `t`.
fn set_definition(t: &mut StoredTool, def: &Map<String, Value>) {
    t.title = def.get("title").and_then(Value::as_str).map(str::to_owned);
    t.description = def.get("description").and_then(Value::as_str).map(str::to_owned);
    t.input_schema = def.get("inputSchema").cloned();
    t.output_schema = def.get("outputSchema").cloned();
    t.annotations = def.get("annotations").cloned();
}

// ---------------------------------------------------------------------------
// The registry
// ---------------------------------------------------------------------------

/// backend → tool name → info. Two levels so a lookup by `&str` needs no allocation.
type Snapshot = HashMap<String, HashMap<String, ToolInfo>>;

struct Inner {
    store: Store,
    hold_changed: bool,
    new_enabled: bool,
    snapshot: RwLock<Arc<Snapshot>>,
    /// Serialises this hub's writes, so a sync and an admin change never interleave.
    write: tokio::sync::Mutex<()>,
}

/// Handle to the registry. Cheap to clone.
#[derive(Clone)]
pub struct ToolRegistry {
    inner: Arc<Inner>,
}

impl fmt::Debug for ToolRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n: usize = self.inner.snapshot.read().values().map(HashMap::len).sum();
        f.debug_struct("ToolRegistry").field("tools", &n).field("hold_changed", &self.inner.hold_changed).finish()
    }
}

fn effective(t: &StoredTool) -> Risk {
    t.risk_override.unwrap_or(t.risk_auto)
}

impl ToolRegistry {
    /// Loads the stored registry.
    pub async fn start(config: &Config, store: &Store) -> anyhow::Result<Self> {
        let reg = Self {
            inner: Arc::new(Inner {
                store: store.clone(),
                hold_changed: config.policy.hold_changed_tools,
                new_enabled: config.policy.new_tools_enabled,
                snapshot: RwLock::new(Arc::default()),
                write: tokio::sync::Mutex::new(()),
            }),
        };
        reg.reload().await?;
        Ok(reg)
    }

    fn held(&self, t: &StoredTool) -> bool {
        self.inner.hold_changed && t.status == ToolStatus::Changed
    }

    fn info(&self, t: &StoredTool) -> ToolInfo {
        ToolInfo { id: t.id.clone(), risk: effective(t), enabled: t.enabled, held: self.held(t), changed: t.status == ToolStatus::Changed }
    }

    /// Rebuilds the in-memory snapshot from the store (also picks up changes
    /// other hubs sharing the store made).
    pub async fn reload(&self) -> Result<(), RegistryError> {
        let tools = self.inner.store.tools_all().await?;
        let mut snap: Snapshot = HashMap::new();
        for t in &tools {
            snap.entry(t.backend.clone()).or_default().insert(t.name.clone(), self.info(t));
        }
        *self.inner.snapshot.write() = Arc::new(snap);
        Ok(())
    }

    /// The registry's view of `tool` of `backend`, from memory. `None` for a
    /// tool never synced.
    pub fn lookup(&self, backend: &str, tool: &str) -> Option<ToolInfo> {
        let snap = Arc::clone(&self.inner.snapshot.read());
        snap.get(backend).and_then(|m| m.get(tool)).cloned()
    }

    /// Records what `backend` offers now (`tools` are the elements of its
    /// `tools/list` answer; `agent` names the gateway-agent behind it).
    /// New tools are registered, changed definitions flagged (and held when
    /// configured); the enabled flags are left alone.
    pub async fn sync_backend(
        &self,
        backend: &str,
        agent: Option<&str>,
        tools: &[Map<String, Value>],
    ) -> Result<SyncReport, RegistryError> {
        if backend.is_empty() || backend.len() > 256 {
            return Err(RegistryError::Invalid { field: "backend", reason: "must be 1-256 bytes".to_owned() });
        }
        let _w = self.inner.write.lock().await;
        let existing: HashMap<String, StoredTool> =
            self.inner.store.tools_of_backend(backend).await?.into_iter().map(|t| (t.name.clone(), t)).collect();
        let at = crate::store::now();
        let mut report = SyncReport::default();
        let mut writes = ToolSyncWrites { at: Some(at), ..ToolSyncWrites::default() };
        let mut offered = std::collections::HashSet::new();
        for tool in tools {
            let Some(name) = tool.get("name").and_then(Value::as_str).filter(|n| !n.is_empty()) else {
                tracing::warn!(backend, "a backend offered a tool without a name; ignored");
                continue;
            };
            if !offered.insert(name.to_owned()) {
                tracing::warn!(backend, tool = name, "a backend offered the same tool name twice; the first one counts");
                continue;
            }
            let def = definition_of(tool);
            let hash = definition_hash(tool);
            let risk = assess_risk(tool);
            match existing.get(name) {
                None => {
                    let mut t = StoredTool {
                        id: uuid::Uuid::now_v7().to_string(),
                        backend: backend.to_owned(),
                        name: name.to_owned(),
                        agent: agent.map(str::to_owned),
                        title: None,
                        description: None,
                        input_schema: None,
                        output_schema: None,
                        annotations: None,
                        risk_auto: risk,
                        risk_override: None,
                        enabled: self.inner.new_enabled,
                        definition_hash: hash.clone(),
                        pinned_hash: hash,
                        pending_definition: None,
                        status: ToolStatus::Ok,
                        first_seen: at,
                        last_seen: at,
                        approved_by: None,
                        approved_at: None,
                    };
                    set_definition(&mut t, &def);
                    report.added.push(name.to_owned());
                    writes.inserts.push(t);
                }
                Some(old) => {
                    let mut t = old.clone();
                    t.last_seen = at;
                    t.agent = agent.map(str::to_owned);
                    if hash == old.pinned_hash {
                        // Back to (or still on) the pinned definition.
                        t.definition_hash = hash;
                        t.pending_definition = None;
                        t.status = ToolStatus::Ok;
                        t.risk_auto = assess_risk(&pinned_definition(old));
                    } else {
                        if hash != old.definition_hash || old.status != ToolStatus::Changed {
                            report.changed.push(name.to_owned());
                        }
                        t.definition_hash = hash;
                        t.status = ToolStatus::Changed;
                        t.risk_auto = assess_risk(&pinned_definition(old)).max(risk);
                        t.pending_definition = Some(Value::Object(def));
                    }
                    let mut probe = t.clone();
                    probe.last_seen = old.last_seen;
                    if probe == *old {
                        writes.touched.push(t.id);
                    } else {
                        writes.updates.push(t);
                    }
                }
            }
        }
        report.removed_or_missing = existing.keys().filter(|n| !offered.contains(n.as_str())).cloned().collect();
        report.removed_or_missing.sort();
        self.inner.store.tools_apply_sync(&writes).await?;
        self.reload().await?;
        if !report.added.is_empty() || !report.changed.is_empty() {
            tracing::info!(backend, added = report.added.len(), changed = ?report.changed, "tool registry updated");
        }
        Ok(report)
    }

    async fn stored(&self, id: &str) -> Result<StoredTool, RegistryError> {
        self.inner.store.tool_by_id(id).await?.ok_or_else(|| RegistryError::NotFound(id.to_owned()))
    }

    /// Enables or disables tool `id` (an admin decision that every sync keeps).
    pub async fn set_enabled(&self, id: &str, enabled: bool) -> Result<ToolInfo, RegistryError> {
        let _w = self.inner.write.lock().await;
        if !self.inner.store.tool_set_enabled(id, enabled).await? {
            return Err(RegistryError::NotFound(id.to_owned()));
        }
        self.reload().await?;
        Ok(self.info(&self.stored(id).await?))
    }

    /// Sets (or with `None` clears) the admin's risk for tool `id`.
    pub async fn set_risk_override(&self, id: &str, risk: Option<Risk>) -> Result<ToolInfo, RegistryError> {
        let _w = self.inner.write.lock().await;
        if !self.inner.store.tool_set_risk_override(id, risk).await? {
            return Err(RegistryError::NotFound(id.to_owned()));
        }
        self.reload().await?;
        Ok(self.info(&self.stored(id).await?))
    }

    /// Approves the pending definition of tool `id`: it becomes the pinned
    /// one and the tool is no longer changed (nor held).
    /// [`RegistryError::Conflict`] when nothing is pending.
    pub async fn approve(&self, id: &str, by_user: &str) -> Result<ToolInfo, RegistryError> {
        let _w = self.inner.write.lock().await;
        let mut t = self.stored(id).await?;
        let pending = match (&t.status, t.pending_definition.take()) {
            (ToolStatus::Changed, Some(Value::Object(def))) => def,
            _ => {
                return Err(RegistryError::Conflict(format!(
                    "tool `{}` of backend `{}` has no pending change to approve",
                    t.name, t.backend
                )));
            }
        };
        set_definition(&mut t, &pending);
        t.pinned_hash = t.definition_hash.clone();
        t.status = ToolStatus::Ok;
        t.risk_auto = assess_risk(&pinned_definition(&t));
        t.approved_by = Some(by_user.to_owned());
        t.approved_at = Some(crate::store::now());
        if !self.inner.store.tool_update_definition(&t).await? {
            return Err(RegistryError::NotFound(id.to_owned()));
        }
        self.reload().await?;
        tracing::info!(tool = %t.name, backend = %t.backend, by = by_user, "tool definition approved");
        Ok(self.info(&t))
    }

    fn record(&self, t: StoredTool) -> ToolRecord {
        let definition = Value::Object(pinned_definition(&t));
        ToolRecord {
            exposed_name: crate::mcp::naming::namespaced(&t.backend, &t.name, |_| false),
            risk: effective(&t),
            held: self.held(&t),
            definition,
            id: t.id,
            backend: t.backend,
            name: t.name,
            agent: t.agent,
            title: t.title,
            description: t.description,
            risk_auto: t.risk_auto,
            risk_override: t.risk_override,
            enabled: t.enabled,
            status: t.status,
            annotations: t.annotations,
            pending_definition: t.pending_definition,
            definition_hash: t.definition_hash,
            pinned_hash: t.pinned_hash,
            first_seen: t.first_seen,
            last_seen: t.last_seen,
            approved_by: t.approved_by,
            approved_at: t.approved_at,
        }
    }

    /// The registered tools matching `filter`, by backend then name.
    pub async fn list(&self, filter: &ToolFilter) -> Result<Vec<ToolRecord>, RegistryError> {
        let q = filter.q.as_deref().map(str::trim).filter(|q| !q.is_empty()).map(str::to_lowercase);
        let tools = self.inner.store.tools_all().await?;
        Ok(tools
            .into_iter()
            .map(|t| self.record(t))
            .filter(|r| {
                filter.backend.as_ref().is_none_or(|b| *b == r.backend)
                    && filter.agent.as_ref().is_none_or(|a| r.agent.as_ref() == Some(a))
                    && filter.risk.is_none_or(|x| x == r.risk)
                    && filter.enabled.is_none_or(|e| e == r.enabled)
                    && filter.status.is_none_or(|s| s == r.status)
                    && q.as_ref().is_none_or(|q| {
                        r.name.to_lowercase().contains(q)
                            || r.exposed_name.to_lowercase().contains(q)
                            || r.description.as_ref().is_some_and(|d| d.to_lowercase().contains(q))
                    })
            })
            .collect())
    }

    /// One tool with its pinned and pending definitions.
    pub async fn get(&self, id: &str) -> Result<ToolRecord, RegistryError> {
        Ok(self.record(self.stored(id).await?))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn tool(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn annotations_decide_first() {
        // A dangerous name does not beat an explicit read-only hint, and vice versa.
        assert_eq!(assess_risk(&tool(json!({"name": "delete_file", "annotations": {"readOnlyHint": true}}))), Risk::Low);
        assert_eq!(assess_risk(&tool(json!({"name": "get_file", "annotations": {"destructiveHint": true}}))), Risk::High);
        assert_eq!(assess_risk(&tool(json!({"name": "get_page", "annotations": {"openWorldHint": true}}))), Risk::Medium);
        assert_eq!(assess_risk(&tool(json!({"name": "deploy", "annotations": {"openWorldHint": true}}))), Risk::High);
        assert_eq!(assess_risk(&tool(json!({"name": "fetch", "annotations": {"openWorldHint": true, "readOnlyHint": true}}))), Risk::Low);
        assert_eq!(
            assess_risk(&tool(json!({"name": "get_x", "annotations": {"readOnlyHint": false, "destructiveHint": false}}))),
            Risk::Medium
        );
        // Hints that say nothing about risk fall through to the heuristics.
        assert_eq!(assess_risk(&tool(json!({"name": "list_items", "annotations": {"idempotentHint": true}}))), Risk::Low);
        assert_eq!(assess_risk(&tool(json!({"name": "x", "annotations": {"readOnlyHint": "yes"}}))), Risk::Medium);
    }

    #[test]
    fn name_and_description_heuristics() {
        for high in [
            "delete_file",
            "removeUser",
            "DROP_TABLE",
            "kill-process",
            "exec",
            "run_command",
            "runShell",
            "write_file",
            "transfer_funds",
            "pay",
            "deploy_app",
            "overwrite",
        ] {
            assert_eq!(assess_risk(&tool(json!({ "name": high }))), Risk::High, "{high}");
        }
        for low in ["get_weather", "listFiles", "read_file", "search", "fetch_url", "query_db", "describe_table", "show_logs"] {
            assert_eq!(assess_risk(&tool(json!({ "name": low }))), Risk::Low, "{low}");
        }
        for medium in ["create_issue", "update_user", "echo", "add", "player", "payload_builder", "deleter_x_foo"] {
            assert_eq!(assess_risk(&tool(json!({ "name": medium }))), Risk::Medium, "{medium}");
        }
        // A dangerous word beats a reading one in the name.
        assert_eq!(assess_risk(&tool(json!({"name": "get_and_delete"}))), Risk::High);
        // A neutral name defers to the description.
        assert_eq!(assess_risk(&tool(json!({"name": "cleanup", "description": "Deletes stale branches"}))), Risk::High);
        assert_eq!(assess_risk(&tool(json!({"name": "weather", "description": "Returns the forecast"}))), Risk::Low);
        assert_eq!(assess_risk(&tool(json!({"name": "weather", "description": "The forecast"}))), Risk::Medium);
        assert_eq!(assess_risk(&tool(json!({}))), Risk::Medium);
    }

    #[test]
    fn words_split_snake_camel_and_kebab() {
        assert_eq!(words("runCommand_now-ABC x2"), ["run", "command", "now", "abc", "x2"]);
        assert!(is_form_of("deleting", "delete") && is_form_of("writes", "write") && is_form_of("dropped", "drop"));
        assert!(!is_form_of("payload", "pay") && !is_form_of("format", "form"));
    }

    #[test]
    fn hash_ignores_key_order_whitespace_nulls_and_other_members() {
        let a = tool(
            json!({"name": "t", "description": "d", "inputSchema": {"type": "object", "properties": {"a": {"type": "string"}, "b": {}}}}),
        );
        let b = tool(
            json!({"inputSchema": {"properties": {"b": {}, "a": {"type": "string"}}, "type": "object"}, "description": "d", "name": "t", "title": null, "_meta": {"x": 1}, "icons": []}),
        );
        assert_eq!(definition_hash(&a), definition_hash(&b));
        let c = tool(json!({"name": "t", "description": "d2", "inputSchema": {"type": "object"}}));
        assert_ne!(definition_hash(&a), definition_hash(&c));
        assert_eq!(canonical_json(&json!({"b": [1, {"z": null, "a": "x"}], "a": true})), r#"{"a":true,"b":[1,{"a":"x","z":null}]}"#);
        assert_eq!(definition_hash(&a).len(), 64);
    }

    async fn registry(toml: &str) -> (ToolRegistry, Store) {
        let store = Store::connect("sqlite::memory:").await.unwrap();
        let config = crate::config::parse(toml, &crate::config::MapEnv::new()).unwrap();
        (ToolRegistry::start(&config, &store).await.unwrap(), store)
    }

    #[tokio::test]
    async fn sync_registers_flags_and_holds() {
        let (reg, store) = registry("[policy]\nhold_changed_tools = true").await;
        let v1 = vec![tool(json!({"name": "read_file", "description": "Reads"})), tool(json!({"name": "rm", "description": "Removes"}))];
        let r = reg.sync_backend("fs", None, &v1).await.unwrap();
        assert_eq!(r.added, ["read_file", "rm"]);
        let info = reg.lookup("fs", "read_file").unwrap();
        assert!(info.enabled && !info.held && !info.changed);
        assert_eq!(info.risk, Risk::Low);
        assert_eq!(reg.lookup("fs", "rm").unwrap().risk, Risk::High);
        assert!(reg.lookup("fs", "nope").is_none() && reg.lookup("other", "rm").is_none());

        // The same definition again changes nothing.
        assert_eq!(reg.sync_backend("fs", None, &v1).await.unwrap(), SyncReport::default());

        // A changed description that claims read-only: flagged, held, and its
        // risk does not drop before approval.
        let v2 = vec![
            tool(json!({"name": "read_file", "description": "Reads"})),
            tool(json!({"name": "rm", "description": "Harmless", "annotations": {"readOnlyHint": true}})),
        ];
        let r = reg.sync_backend("fs", None, &v2).await.unwrap();
        assert_eq!(r.changed, ["rm"]);
        let info = reg.lookup("fs", "rm").unwrap();
        assert!(info.changed && info.held);
        assert_eq!(info.risk, Risk::High);
        // Reported once, not on every later sync.
        assert!(reg.sync_backend("fs", None, &v2).await.unwrap().changed.is_empty());

        let before = store.tool_by_id(&info.id).await.unwrap().unwrap();
        assert_eq!(before.description.as_deref(), Some("Removes"));
        assert!(before.pending_definition.is_some());
        reg.approve(&info.id, "alice").await.unwrap();
        let after = store.tool_by_id(&info.id).await.unwrap().unwrap();
        assert_eq!(after.description.as_deref(), Some("Harmless"));
        assert_eq!(after.pinned_hash, after.definition_hash);
        assert_eq!(after.approved_by.as_deref(), Some("alice"));
        let info = reg.lookup("fs", "rm").unwrap();
        assert!(!info.changed && !info.held);
        assert_eq!(info.risk, Risk::Low);
        assert!(matches!(reg.approve(&info.id, "alice").await, Err(RegistryError::Conflict(_))));

        // Missing tools are kept and reported.
        let r = reg.sync_backend("fs", None, &v2[..1]).await.unwrap();
        assert_eq!(r.removed_or_missing, ["rm"]);
        assert!(reg.lookup("fs", "rm").is_some());
    }

    #[tokio::test]
    async fn changes_are_flagged_but_usable_without_hold() {
        let (reg, _store) = registry("").await;
        reg.sync_backend("b", Some("laptop"), &[tool(json!({"name": "t", "description": "one"}))]).await.unwrap();
        reg.sync_backend("b", Some("laptop"), &[tool(json!({"name": "t", "description": "two"}))]).await.unwrap();
        let info = reg.lookup("b", "t").unwrap();
        assert!(info.changed && !info.held && info.enabled);
        // Going back to the pinned definition clears the flag.
        reg.sync_backend("b", Some("laptop"), &[tool(json!({"name": "t", "description": "one"}))]).await.unwrap();
        assert!(!reg.lookup("b", "t").unwrap().changed);
        let listed = reg.list(&ToolFilter { agent: Some("laptop".into()), ..ToolFilter::default() }).await.unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].exposed_name, "b__t");
    }

    #[tokio::test]
    async fn new_tools_can_start_disabled_and_bad_input_is_ignored() {
        let (reg, _store) = registry("[policy]\nnew_tools_enabled = false").await;
        let r = reg
            .sync_backend(
                "b",
                None,
                &[tool(json!({"name": "t"})), tool(json!({"name": 5})), tool(json!({})), tool(json!({"name": "t", "description": "dup"}))],
            )
            .await
            .unwrap();
        assert_eq!(r.added, ["t"]);
        assert!(!reg.lookup("b", "t").unwrap().enabled);
        assert!(matches!(reg.sync_backend("", None, &[]).await, Err(RegistryError::Invalid { .. })));
        assert!(matches!(reg.set_enabled("missing", true).await, Err(RegistryError::NotFound(_))));
    }
}
