//! Admin API: policy rules, backend visibility, and the dry run that answers
//! "would this call be allowed, and by which rule?".
//!
//! Listings answer `{ "items": [ … ] }`. Rule semantics are in
//! [`crate::policy`].

use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{AdminCtx, ApiError, ErrorBody};
use crate::auth::roles::Permission;
use crate::policy::{Decision, Effect, PolicyError, PolicyInput, RuleRef, RuleSpec, key_allows};
use crate::registry::Risk;
use crate::server::AppState;
use crate::store::{BackendVisibility, PolicyRule};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_rules, create_rule))
        .routes(routes!(get_rule, put_rule, delete_rule))
        .routes(routes!(reorder_rules))
        .routes(routes!(simulate))
        .routes(routes!(list_visibility))
        .routes(routes!(get_visibility, put_visibility, delete_visibility))
}

impl From<PolicyError> for ApiError {
    fn from(e: PolicyError) -> Self {
        match e {
            PolicyError::Invalid { .. } => Self::BadRequest(e.to_string()),
            PolicyError::NotFound(_) => Self::NotFound(e.to_string()),
            PolicyError::Store(s) => s.into(),
        }
    }
}

fn bad_json(e: JsonRejection) -> ApiError {
    ApiError::BadRequest(e.body_text())
}

fn path_param(p: Result<Path<String>, PathRejection>, what: &str) -> Result<String, ApiError> {
    let Path(v) = p.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    if v.is_empty() || v.len() > 128 {
        return Err(ApiError::BadRequest(format!("invalid {what}")));
    }
    Ok(v)
}

/// The rules, in evaluation order.
#[derive(Debug, Serialize, ToSchema)]
pub struct RuleList {
    pub items: Vec<PolicyRule>,
}

/// A rule as written by an admin (`POST /policies`, `PUT /policies/{id}`).
/// Absent lists match anything; see the policy docs for the semantics.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RuleBody {
    /// Unique, 1-100 characters.
    #[schema(min_length = 1, max_length = 100)]
    pub name: String,
    #[serde(default)]
    #[schema(max_length = 2000)]
    pub description: String,
    pub effect: Effect,
    /// Default `true`.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Role names (custom roles included).
    #[serde(default)]
    #[schema(max_items = 100)]
    pub roles: Vec<String>,
    /// Usernames.
    #[serde(default)]
    #[schema(max_items = 100)]
    pub users: Vec<String>,
    /// API key ids or names.
    #[serde(default)]
    #[schema(max_items = 100)]
    pub keys: Vec<String>,
    /// Agent names.
    #[serde(default)]
    #[schema(max_items = 100)]
    pub agents: Vec<String>,
    /// Globs over the client's `clientInfo.name`.
    #[serde(default)]
    #[schema(max_items = 100)]
    pub client_apps: Vec<String>,
    /// Globs over backend names.
    #[serde(default)]
    #[schema(max_items = 100)]
    pub backends: Vec<String>,
    /// Globs over the backend's own tool names.
    #[serde(default)]
    #[schema(max_items = 100)]
    pub tools: Vec<String>,
    #[serde(default)]
    pub risks: Vec<Risk>,
    /// 1-based place in the order (1 is evaluated first); later rules move
    /// down. Absent (or past the end): appended on create, kept on update.
    #[schema(minimum = 1)]
    pub position: Option<i64>,
}

fn yes() -> bool {
    true
}

impl RuleBody {
    fn split(self) -> (RuleSpec, Option<i64>) {
        let spec = RuleSpec {
            name: self.name,
            description: self.description,
            effect: self.effect,
            enabled: self.enabled,
            roles: self.roles,
            users: self.users,
            keys: self.keys,
            agents: self.agents,
            client_apps: self.client_apps,
            backends: self.backends,
            tools: self.tools,
            risks: self.risks,
        };
        (spec, self.position)
    }
}

/// Every rule, in evaluation order.
#[utoipa::path(get, path = "/policies", tag = "policies",
    responses((status = 200, body = RuleList), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 503, body = ErrorBody)))]
async fn list_rules(State(st): State<AppState>, ctx: AdminCtx) -> Result<Json<RuleList>, ApiError> {
    ctx.require(Permission::PoliciesRead)?;
    Ok(Json(RuleList { items: st.policy.rules().await? }))
}

/// Adds a rule (at `position`, or at the end) and puts it in force.
#[utoipa::path(post, path = "/policies", tag = "policies", request_body = RuleBody,
    responses((status = 201, body = PolicyRule), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 409, body = ErrorBody, description = "the name is taken"),
        (status = 503, body = ErrorBody)))]
async fn create_rule(
    State(st): State<AppState>,
    ctx: AdminCtx,
    body: Result<Json<RuleBody>, JsonRejection>,
) -> Result<(StatusCode, Json<PolicyRule>), ApiError> {
    ctx.require(Permission::PoliciesWrite)?;
    let (spec, position) = body.map_err(bad_json)?.0.split();
    let rule = st.policy.create_rule(&spec, position).await?;
    st.hub.notify_tools_changed(None);
    tracing::info!(by = %ctx.username, rule = %rule.name, position = rule.position, effect = %rule.effect, "policy rule created");
    Ok((StatusCode::CREATED, Json(rule)))
}

/// One rule.
#[utoipa::path(get, path = "/policies/{id}", tag = "policies", params(("id" = String, Path, description = "rule id")),
    responses((status = 200, body = PolicyRule), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 503, body = ErrorBody)))]
async fn get_rule(
    State(st): State<AppState>,
    ctx: AdminCtx,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<PolicyRule>, ApiError> {
    ctx.require(Permission::PoliciesRead)?;
    let id = path_param(id, "rule id")?;
    Ok(Json(st.policy.rule(&id).await?))
}

/// Replaces a rule (and moves it when `position` is given).
#[utoipa::path(put, path = "/policies/{id}", tag = "policies", params(("id" = String, Path, description = "rule id")), request_body = RuleBody,
    responses((status = 200, body = PolicyRule), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody, description = "the name is taken"),
        (status = 503, body = ErrorBody)))]
async fn put_rule(
    State(st): State<AppState>,
    ctx: AdminCtx,
    id: Result<Path<String>, PathRejection>,
    body: Result<Json<RuleBody>, JsonRejection>,
) -> Result<Json<PolicyRule>, ApiError> {
    ctx.require(Permission::PoliciesWrite)?;
    let id = path_param(id, "rule id")?;
    let (spec, position) = body.map_err(bad_json)?.0.split();
    let rule = st.policy.update_rule(&id, &spec, position).await?;
    st.hub.notify_tools_changed(None);
    tracing::info!(by = %ctx.username, rule = %rule.name, position = rule.position, "policy rule updated");
    Ok(Json(rule))
}

/// Deletes a rule; the later ones move up.
#[utoipa::path(delete, path = "/policies/{id}", tag = "policies", params(("id" = String, Path, description = "rule id")),
    responses((status = 204, description = "deleted"), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 503, body = ErrorBody)))]
async fn delete_rule(State(st): State<AppState>, ctx: AdminCtx, id: Result<Path<String>, PathRejection>) -> Result<StatusCode, ApiError> {
    ctx.require(Permission::PoliciesWrite)?;
    let id = path_param(id, "rule id")?;
    let rule = st.policy.delete_rule(&id).await?;
    st.hub.notify_tools_changed(None);
    tracing::info!(by = %ctx.username, rule = %rule.name, "policy rule deleted");
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /policies/reorder`: the new order.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReorderBody {
    /// Every rule id exactly once, first evaluated first.
    pub ids: Vec<String>,
}

/// Sets the evaluation order of every rule.
#[utoipa::path(post, path = "/policies/reorder", tag = "policies", request_body = ReorderBody,
    responses((status = 200, body = RuleList), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 503, body = ErrorBody)))]
async fn reorder_rules(
    State(st): State<AppState>,
    ctx: AdminCtx,
    body: Result<Json<ReorderBody>, JsonRejection>,
) -> Result<Json<RuleList>, ApiError> {
    ctx.require(Permission::PoliciesWrite)?;
    let Json(body) = body.map_err(bad_json)?;
    let items = st.policy.reorder(&body.ids).await?;
    st.hub.notify_tools_changed(None);
    tracing::info!(by = %ctx.username, rules = items.len(), "policy rules reordered");
    Ok(Json(RuleList { items }))
}

/// `POST /policies/simulate`: a call to try.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SimulateBody {
    #[schema(min_length = 1, max_length = 256)]
    pub username: String,
    /// An API key of that user, by id or name.
    pub key_id: Option<String>,
    pub agent: Option<String>,
    /// The client's `clientInfo.name`.
    pub client_app: Option<String>,
    #[schema(min_length = 1, max_length = 256)]
    pub backend: String,
    /// The backend's own tool name.
    #[schema(min_length = 1, max_length = 256)]
    pub tool: String,
}

/// Each check of a simulated call, in the order the hub applies them.
#[derive(Debug, Serialize, ToSchema)]
pub struct SimulateChecks {
    pub backend_visible: bool,
    /// The registry has seen this tool.
    pub tool_known: bool,
    pub tool_enabled: bool,
    /// Held because of a definition change pending approval.
    pub tool_held: bool,
    /// The key's tool allowlist lets it through (`true` without a key).
    pub key_allows: bool,
    pub policy: Decision,
}

/// Would this call be allowed, and why: the first refusal wins.
#[derive(Debug, Serialize, ToSchema)]
pub struct SimulateResult {
    pub allowed: bool,
    /// The rule that decided, when the rules decided.
    pub rule: Option<RuleRef>,
    pub reason: String,
    /// The tool's effective risk (assessed from its name when unknown).
    pub risk: Risk,
    pub checks: SimulateChecks,
}

fn check_field(field: &str, v: &str, required: bool) -> Result<(), ApiError> {
    if (required && v.is_empty()) || v.chars().count() > 256 || v.chars().any(char::is_control) {
        return Err(ApiError::BadRequest(format!("invalid {field}: 1-256 characters, no control characters")));
    }
    Ok(())
}

/// Dry run: combines backend visibility, the registry's state, the key's
/// allowlist and the rules, without calling anything.
#[utoipa::path(post, path = "/policies/simulate", tag = "policies", request_body = SimulateBody,
    responses((status = 200, body = SimulateResult), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody, description = "no such user or key"),
        (status = 503, body = ErrorBody)))]
async fn simulate(
    State(st): State<AppState>,
    ctx: AdminCtx,
    body: Result<Json<SimulateBody>, JsonRejection>,
) -> Result<Json<SimulateResult>, ApiError> {
    ctx.require(Permission::PoliciesRead)?;
    let Json(b) = body.map_err(bad_json)?;
    check_field("username", &b.username, true)?;
    check_field("backend", &b.backend, true)?;
    check_field("tool", &b.tool, true)?;
    for (field, v) in [("key_id", &b.key_id), ("agent", &b.agent), ("client_app", &b.client_app)] {
        if let Some(v) = v {
            check_field(field, v, true)?;
        }
    }
    let user = st.store.user_by_name(&b.username).await?.ok_or_else(|| ApiError::NotFound(format!("no user `{}`", b.username)))?;
    let key = match &b.key_id {
        None => None,
        Some(k) => {
            let keys = st.store.list_api_keys(&user.id).await?;
            let found = keys.iter().find(|x| x.id == *k).or_else(|| keys.iter().find(|x| x.name == *k)).cloned();
            Some(found.ok_or_else(|| ApiError::NotFound(format!("user `{}` has no key `{k}`", user.username)))?)
        }
    };
    let info = st.registry.lookup(&b.backend, &b.tool);
    let risk = match &info {
        Some(i) => i.risk,
        None => {
            let mut m = serde_json::Map::new();
            m.insert("name".into(), serde_json::Value::String(b.tool.clone()));
            crate::registry::assess_risk(&m)
        }
    };
    let exposed = crate::mcp::naming::namespaced(&b.backend, &b.tool, |_| false);
    let now = Utc::now();
    let key_usable = key.as_ref().is_none_or(|k| k.revoked_at.is_none() && k.expires_at.is_none_or(|e| e > now));
    let checks = SimulateChecks {
        backend_visible: st.policy.backend_visible(&user.username, &user.role, &b.backend),
        tool_known: info.is_some(),
        tool_enabled: info.as_ref().is_some_and(|i| i.enabled),
        tool_held: info.as_ref().is_some_and(|i| i.held),
        key_allows: key_usable && key.as_ref().is_none_or(|k| key_allows(&k.tools, &exposed, &b.tool)),
        policy: st.policy.evaluate(&PolicyInput {
            user_id: &user.id,
            username: &user.username,
            role: &user.role,
            key_id: key.as_ref().map(|k| k.id.as_str()),
            key_name: key.as_ref().map(|k| k.name.as_str()),
            agent: b.agent.as_deref(),
            client_app: b.client_app.as_deref(),
            backend: &b.backend,
            tool: &b.tool,
            risk,
        }),
    };
    let refusal = if !checks.backend_visible {
        Some(format!("backend `{}` is not visible to user `{}`", b.backend, user.username))
    } else if !checks.tool_known {
        Some(format!("the hub has not seen tool `{}` on backend `{}`", b.tool, b.backend))
    } else if !checks.tool_enabled {
        Some(format!("tool `{exposed}` is disabled"))
    } else if checks.tool_held {
        Some(format!("tool `{exposed}` changed and is held until an admin approves it"))
    } else if !key_usable {
        Some("the key is revoked or expired".to_owned())
    } else if !checks.key_allows {
        Some(format!("the key's tool allowlist does not include `{exposed}`"))
    } else {
        None
    };
    let (allowed, rule, reason) = match refusal {
        Some(reason) => (false, None, reason),
        None => (checks.policy.allowed, checks.policy.rule.clone(), checks.policy.reason.clone()),
    };
    Ok(Json(SimulateResult { allowed, rule, reason, risk, checks }))
}

/// Who may see one backend.
#[derive(Debug, Serialize, ToSchema)]
pub struct VisibilityView {
    pub backend: String,
    /// `false`: visible to everyone; `true`: only to `roles` and `users` (and admins).
    pub restricted: bool,
    pub roles: Vec<String>,
    pub users: Vec<String>,
    pub updated_at: Option<DateTime<Utc>>,
}

impl VisibilityView {
    fn of(backend: &str, v: Option<BackendVisibility>) -> Self {
        match v {
            Some(v) => Self { backend: v.backend, restricted: true, roles: v.roles, users: v.users, updated_at: Some(v.updated_at) },
            None => Self { backend: backend.to_owned(), restricted: false, roles: Vec::new(), users: Vec::new(), updated_at: None },
        }
    }
}

/// Backends with restricted visibility; the others are visible to everyone.
#[derive(Debug, Serialize, ToSchema)]
pub struct VisibilityList {
    pub items: Vec<VisibilityView>,
}

/// `PUT /visibility/{backend}`: restrict a backend to these roles and users.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VisibilityBody {
    #[serde(default)]
    pub roles: Vec<String>,
    #[serde(default)]
    pub users: Vec<String>,
}

/// Every backend with restricted visibility.
#[utoipa::path(get, path = "/visibility", tag = "policies",
    responses((status = 200, body = VisibilityList), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 503, body = ErrorBody)))]
async fn list_visibility(State(st): State<AppState>, ctx: AdminCtx) -> Result<Json<VisibilityList>, ApiError> {
    ctx.require(Permission::PoliciesRead)?;
    let items = st.policy.visibilities().await?.into_iter().map(|v| VisibilityView::of(&v.backend.clone(), Some(v))).collect();
    Ok(Json(VisibilityList { items }))
}

/// Who may see a backend.
#[utoipa::path(get, path = "/visibility/{backend}", tag = "policies", params(("backend" = String, Path, description = "backend name")),
    responses((status = 200, body = VisibilityView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 503, body = ErrorBody)))]
async fn get_visibility(
    State(st): State<AppState>,
    ctx: AdminCtx,
    backend: Result<Path<String>, PathRejection>,
) -> Result<Json<VisibilityView>, ApiError> {
    ctx.require(Permission::PoliciesRead)?;
    let backend = path_param(backend, "backend")?;
    Ok(Json(VisibilityView::of(&backend, st.policy.visibility(&backend).await?)))
}

/// Restricts a backend to the listed roles and users (admins always see it).
#[utoipa::path(put, path = "/visibility/{backend}", tag = "policies", params(("backend" = String, Path, description = "backend name")),
    request_body = VisibilityBody,
    responses((status = 200, body = VisibilityView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 503, body = ErrorBody)))]
async fn put_visibility(
    State(st): State<AppState>,
    ctx: AdminCtx,
    backend: Result<Path<String>, PathRejection>,
    body: Result<Json<VisibilityBody>, JsonRejection>,
) -> Result<Json<VisibilityView>, ApiError> {
    ctx.require(Permission::PoliciesWrite)?;
    let backend = path_param(backend, "backend")?;
    let Json(b) = body.map_err(bad_json)?;
    let v = st.policy.set_visibility(&backend, &b.roles, &b.users).await?;
    st.hub.notify_list_changed_all();
    tracing::info!(by = %ctx.username, backend = %backend, roles = ?v.roles, users = v.users.len(), "backend visibility restricted");
    Ok(Json(VisibilityView::of(&backend, Some(v))))
}

/// Makes a backend visible to everyone again.
#[utoipa::path(delete, path = "/visibility/{backend}", tag = "policies", params(("backend" = String, Path, description = "backend name")),
    responses((status = 200, body = VisibilityView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 503, body = ErrorBody)))]
async fn delete_visibility(
    State(st): State<AppState>,
    ctx: AdminCtx,
    backend: Result<Path<String>, PathRejection>,
) -> Result<Json<VisibilityView>, ApiError> {
    ctx.require(Permission::PoliciesWrite)?;
    let backend = path_param(backend, "backend")?;
    if st.policy.clear_visibility(&backend).await? {
        tracing::info!(by = %ctx.username, backend = %backend, "backend visibility restriction removed");
        st.hub.notify_list_changed_all();
    }
    Ok(Json(VisibilityView::of(&backend, None)))
}
