//! Admin API: API keys. Everyone with `keys:own` manages their own keys;
//! `keys:read` / `keys:write` reach every user's. A key is shown once, in the
//! answer that creates it; listings show its prefix only.

use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::session::bad_json;
use super::{AdminCtx, ApiError, ErrorBody};
use crate::auth;
use crate::auth::roles::Permission;
use crate::server::AppState;
use crate::store::{ApiKey, NewApiKey, UserAccount};

/// Surfaces a key can be limited to.
pub const SURFACES: &[&str] = &["mcp", "ai"];

/// Longest key name accepted.
const MAX_NAME_LEN: usize = 64;
/// Most tool globs on one key, and the longest glob.
const MAX_TOOLS: usize = 100;
const MAX_GLOB_LEN: usize = 200;
/// Longest lifetime given in days (about ten years).
const MAX_DAYS: u32 = 3650;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_keys, create_key)).routes(routes!(revoke_key))
}

/// A stored key; the key itself and its hash are never shown.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct KeyView {
    pub id: String,
    pub user_id: String,
    pub username: String,
    pub name: String,
    /// The first characters of the key.
    pub prefix: String,
    pub surfaces: Vec<String>,
    pub tools: Vec<String>,
    pub expires_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

impl KeyView {
    fn new(k: ApiKey, username: &str) -> Self {
        Self {
            id: k.id,
            user_id: k.user_id,
            username: username.to_owned(),
            name: k.name,
            prefix: k.prefix,
            surfaces: k.surfaces,
            tools: k.tools,
            expires_at: k.expires_at,
            last_used_at: k.last_used_at,
            revoked_at: k.revoked_at,
            created_at: k.created_at,
        }
    }
}

/// Whose keys to list.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct KeyQuery {
    /// A username; default the caller. Another user's keys need `keys:read`.
    pub user: Option<String>,
}

/// A new key.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewKey {
    /// A label, e.g. the machine or app using the key.
    #[schema(example = "laptop")]
    pub name: String,
    /// Owner's username; default the caller. Another user needs `keys:write`.
    pub user: Option<String>,
    /// `mcp` and/or `ai`; default both.
    pub surfaces: Option<Vec<String>>,
    /// Tool name globs the key may call; default `*`.
    pub tools: Option<Vec<String>>,
    /// Lifetime in days (1-3650); or give `expires_at`; default no expiry.
    pub expires_in_days: Option<u32>,
    /// When the key stops working; must be in the future.
    pub expires_at: Option<DateTime<Utc>>,
}

/// A created key: `key` is shown this once and cannot be retrieved again.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedKey {
    pub key: String,
    pub record: KeyView,
}

/// Checks and normalizes surfaces: known names, no duplicates, at least one.
pub fn normalize_surfaces(given: Option<&[String]>) -> Result<Vec<String>, String> {
    let Some(given) = given else { return Ok(SURFACES.iter().map(|s| (*s).to_owned()).collect()) };
    let mut out: Vec<String> = Vec::new();
    for s in given.iter().map(|s| s.trim()) {
        if !SURFACES.contains(&s) {
            return Err(format!("surfaces: unknown surface `{s}`; use {}", SURFACES.join(", ")));
        }
        if !out.iter().any(|have| have == s) {
            out.push(s.to_owned());
        }
    }
    if out.is_empty() {
        return Err(format!("surfaces: give at least one of {}", SURFACES.join(", ")));
    }
    Ok(out)
}

/// Checks and normalizes tool globs: valid glob syntax, no whitespace,
/// bounded; none given means `*`.
pub fn normalize_tools(given: Option<&[String]>) -> Result<Vec<String>, String> {
    let given = given.unwrap_or_default();
    if given.len() > MAX_TOOLS {
        return Err(format!("tools: at most {MAX_TOOLS} globs"));
    }
    let mut out: Vec<String> = Vec::new();
    for t in given.iter().map(|t| t.trim()) {
        if t.is_empty() || t.len() > MAX_GLOB_LEN || t.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(format!("tools: each glob needs 1-{MAX_GLOB_LEN} characters without whitespace"));
        }
        globset::Glob::new(t).map_err(|e| format!("tools: `{t}` is not a valid glob: {}", e.kind()))?;
        if !out.iter().any(|have| have == t) {
            out.push(t.to_owned());
        }
    }
    if out.is_empty() {
        out.push("*".to_owned());
    }
    Ok(out)
}

fn expiry(req: &NewKey, now: DateTime<Utc>) -> Result<Option<DateTime<Utc>>, String> {
    match (req.expires_in_days, req.expires_at) {
        (Some(_), Some(_)) => Err("give expires_in_days or expires_at, not both".to_owned()),
        (Some(days), None) => {
            if days == 0 || days > MAX_DAYS {
                return Err(format!("expires_in_days: must be between 1 and {MAX_DAYS}"));
            }
            Ok(Some(now + chrono::Duration::days(i64::from(days))))
        }
        (None, Some(at)) if at <= now => Err("expires_at: must be in the future".to_owned()),
        (None, at) => Ok(at),
    }
}

fn check_name(name: &str) -> Result<String, String> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME_LEN || name.chars().any(char::is_control) {
        return Err(format!("name: 1-{MAX_NAME_LEN} characters, no control characters"));
    }
    Ok(name.to_owned())
}

/// The user a request is about: the caller unless `username` names another.
async fn target_user(st: &AppState, ctx: &AdminCtx, username: Option<&str>) -> Result<(UserAccount, bool), ApiError> {
    match username {
        Some(u) if u != ctx.username => {
            let user = st.store.user_account_by_name(u).await?.ok_or_else(|| ApiError::NotFound(format!("no user `{u}`")))?;
            Ok((user, false))
        }
        _ => {
            let user = st
                .store
                .user_account(&ctx.user_id)
                .await?
                .ok_or_else(|| ApiError::Unauthorized("the caller no longer exists".to_owned()))?;
            Ok((user, true))
        }
    }
}

/// The caller's keys, or another user's with `?user=`; revoked ones included.
#[utoipa::path(get, path = "/keys", tag = "keys", params(KeyQuery),
    responses((status = 200, body = [KeyView]), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 503, body = ErrorBody)))]
async fn list_keys(
    State(st): State<AppState>,
    ctx: AdminCtx,
    query: Result<Query<KeyQuery>, QueryRejection>,
) -> Result<Json<Vec<KeyView>>, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let own = q.user.as_deref().is_none_or(|u| u == ctx.username);
    if own {
        if !ctx.can(Permission::KeysOwn) {
            ctx.require(Permission::KeysRead)?;
        }
    } else {
        ctx.require(Permission::KeysRead)?;
    }
    let (user, _) = target_user(&st, &ctx, q.user.as_deref()).await?;
    let keys = st.store.list_api_keys(&user.id).await?;
    Ok(Json(keys.into_iter().map(|k| KeyView::new(k, &user.username)).collect()))
}

/// Creates a key for the caller (`keys:own`) or another user (`keys:write`).
/// The answer is the only time the key is shown.
#[utoipa::path(post, path = "/keys", tag = "keys", request_body = NewKey,
    responses((status = 201, body = CreatedKey), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 503, body = ErrorBody)))]
async fn create_key(
    State(st): State<AppState>,
    ctx: AdminCtx,
    body: Result<Json<NewKey>, JsonRejection>,
) -> Result<(StatusCode, Json<CreatedKey>), ApiError> {
    let Json(req) = body.map_err(bad_json)?;
    let own = req.user.as_deref().is_none_or(|u| u == ctx.username);
    ctx.require(if own { Permission::KeysOwn } else { Permission::KeysWrite })?;
    let name = check_name(&req.name).map_err(ApiError::BadRequest)?;
    let surfaces = normalize_surfaces(req.surfaces.as_deref()).map_err(ApiError::BadRequest)?;
    let tools = normalize_tools(req.tools.as_deref()).map_err(ApiError::BadRequest)?;
    let expires_at = expiry(&req, Utc::now()).map_err(ApiError::BadRequest)?;
    let (user, _) = target_user(&st, &ctx, req.user.as_deref()).await?;
    if user.disabled {
        return Err(ApiError::Conflict(format!("user `{}` is disabled", user.username)));
    }
    let key = auth::generate_api_key();
    let stored = st
        .store
        .insert_api_key(NewApiKey {
            user_id: user.id.clone(),
            name,
            prefix: auth::key_prefix(&key),
            key_hash: auth::hash_key(st.auth.secret(), &key),
            surfaces,
            tools,
            expires_at,
        })
        .await?;
    tracing::info!(by = %ctx.username, user = %user.username, key_id = %stored.id, prefix = %stored.prefix, "API key created");
    Ok((StatusCode::CREATED, Json(CreatedKey { key, record: KeyView::new(stored, &user.username) })))
}

/// Revokes a key: own keys with `keys:own`, others' with `keys:write`.
/// Takes effect at once on this hub.
#[utoipa::path(delete, path = "/keys/{id}", tag = "keys", params(("id" = String, Path, description = "key id")),
    responses((status = 204, description = "revoked (or already revoked)"), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 503, body = ErrorBody)))]
async fn revoke_key(State(st): State<AppState>, ctx: AdminCtx, id: Result<Path<String>, PathRejection>) -> Result<StatusCode, ApiError> {
    let Path(id) = id.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let key = st.store.api_key_by_id(&id).await?;
    let own = key.as_ref().is_some_and(|k| k.user_id == ctx.user_id);
    // Checked before "not found" only for one's own keys, so key ids of other
    // users cannot be probed without keys:write.
    if !own {
        ctx.require(Permission::KeysWrite)?;
    } else {
        ctx.require(Permission::KeysOwn)?;
    }
    let key = key.ok_or_else(|| ApiError::NotFound(format!("no API key with id `{id}`")))?;
    if st.store.revoke_api_key(&key.id).await? {
        tracing::info!(by = %ctx.username, key_id = %key.id, prefix = %key.prefix, "API key revoked");
    }
    st.auth.invalidate_all();
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn surfaces_and_tools_are_checked() {
        assert_eq!(normalize_surfaces(None).unwrap(), s(&["mcp", "ai"]));
        assert_eq!(normalize_surfaces(Some(&s(&["ai", "ai"]))).unwrap(), s(&["ai"]));
        assert!(normalize_surfaces(Some(&s(&["web"]))).is_err());
        assert!(normalize_surfaces(Some(&[])).is_err());
        assert_eq!(normalize_tools(None).unwrap(), s(&["*"]));
        assert_eq!(normalize_tools(Some(&s(&["fs__*", "git__{log,show}"]))).unwrap(), s(&["fs__*", "git__{log,show}"]));
        assert!(normalize_tools(Some(&s(&["a["]))).is_err());
        assert!(normalize_tools(Some(&s(&["a b"]))).is_err());
        assert!(normalize_tools(Some(&s(&[""]))).is_err());
    }

    #[test]
    fn expiry_must_be_in_the_future() {
        let now = Utc::now();
        let req = |days: Option<u32>, at: Option<DateTime<Utc>>| NewKey {
            name: "n".into(),
            user: None,
            surfaces: None,
            tools: None,
            expires_in_days: days,
            expires_at: at,
        };
        assert_eq!(expiry(&req(None, None), now).unwrap(), None);
        assert_eq!(expiry(&req(Some(2), None), now).unwrap(), Some(now + chrono::Duration::days(2)));
        assert!(expiry(&req(Some(0), None), now).is_err());
        assert!(expiry(&req(Some(MAX_DAYS + 1), None), now).is_err());
        assert!(expiry(&req(None, Some(now)), now).is_err());
        assert!(expiry(&req(Some(1), Some(now + chrono::Duration::days(1))), now).is_err());
    }
}
