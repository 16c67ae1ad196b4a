//! Admin API: users and roles.
//!
//! Nobody can hand out more than they hold: assigning a role, defining a
//! custom role, or changing a user needs every permission involved, so a
//! custom role with `users:write` alone cannot make anyone an admin. The last
//! enabled admin can be neither demoted, disabled nor deleted.

use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::session::bad_json;
use super::{AdminCtx, ApiError, ErrorBody};
use crate::auth::console::parse_permissions;
use crate::auth::roles::{self, Permission, Permissions};
use crate::server::AppState;
use crate::store::{GuardedChange, Role, RoleRemoval, UserAccount, UserChanges};

/// Longest role description accepted.
const MAX_DESCRIPTION_LEN: usize = 500;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_users, create_user))
        .routes(routes!(get_user, update_user, delete_user))
        .routes(routes!(list_roles, create_role))
        .routes(routes!(update_role, delete_role))
}

/// A user as the admin API shows it (never the password hash).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct UserView {
    pub id: String,
    pub username: String,
    pub role: String,
    pub disabled: bool,
    /// False for API-key-only accounts.
    pub has_password: bool,
    pub created_at: DateTime<Utc>,
}

impl From<UserAccount> for UserView {
    fn from(u: UserAccount) -> Self {
        Self {
            id: u.id,
            username: u.username,
            role: u.role.to_string(),
            disabled: u.disabled,
            has_password: u.has_password,
            created_at: u.created_at,
        }
    }
}

/// A new user.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    #[schema(example = "bob")]
    pub username: String,
    /// A built-in role (`admin`, `operator`, `developer`, `viewer`) or a custom one.
    #[schema(value_type = String, example = "developer")]
    pub role: Role,
    /// At least 12 characters, not the username; omit for an API-key-only account.
    #[schema(format = Password)]
    pub password: Option<String>,
}

/// Changes to a user; absent fields stay as they are.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserPatch {
    #[schema(value_type = Option<String>, example = "operator")]
    pub role: Option<Role>,
    /// Disabling ends the user's console sessions and stops their keys.
    pub disabled: Option<bool>,
    /// Sets a new password (ends the user's console sessions).
    #[schema(format = Password)]
    pub password: Option<String>,
}

/// A role and what it may do.
#[derive(Debug, Serialize, ToSchema)]
pub struct RoleView {
    pub name: String,
    pub description: String,
    pub built_in: bool,
    pub permissions: Vec<Permission>,
    /// Custom roles only.
    pub created_at: Option<DateTime<Utc>>,
}

/// A new custom role.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewRole {
    /// 1-64 characters of a-z 0-9 _ -, starting with a letter; not a built-in name.
    #[schema(example = "auditor")]
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub permissions: Vec<Permission>,
}

/// A custom role's new permissions (and description, when given).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoleUpdate {
    pub description: Option<String>,
    pub permissions: Vec<Permission>,
}

fn path_param<T>(p: Result<Path<T>, PathRejection>) -> Result<T, ApiError> {
    p.map(|Path(v)| v).map_err(|e| ApiError::BadRequest(e.body_text()))
}

fn names(perms: &Permissions) -> String {
    perms.iter().map(|p| p.as_str()).collect::<Vec<_>>().join(", ")
}

/// What `role` grants, for assigning it: 400 for an unknown custom role.
async fn assignable(st: &AppState, role: &Role) -> Result<Permissions, ApiError> {
    if let Some(p) = roles::built_in(role) {
        return Ok(p);
    }
    match st.store.custom_role(role.as_str()).await? {
        Some(r) => Ok(parse_permissions(&r.name, &r.permissions)),
        None => Err(ApiError::BadRequest(format!("unknown role `{role}`; see GET /api/v1/roles"))),
    }
}

/// 403 unless the caller holds every permission in `perms`.
fn ensure_holds(ctx: &AdminCtx, perms: &Permissions, what: &str) -> Result<(), ApiError> {
    let missing: Permissions = perms.difference(&ctx.permissions).copied().collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(ApiError::Forbidden(format!("{what} needs permissions you do not hold: {}", names(&missing))))
    }
}

async fn find_user(st: &AppState, id: &str) -> Result<UserAccount, ApiError> {
    st.store.user_account(id).await?.ok_or_else(|| ApiError::NotFound(format!("no user with id `{id}`")))
}

fn last_admin() -> ApiError {
    ApiError::Conflict("the last enabled admin cannot be demoted, disabled or deleted; make another user an admin first".to_owned())
}

/// Every user, oldest first.
#[utoipa::path(get, path = "/users", tag = "users",
    responses((status = 200, body = [UserView]), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 503, body = ErrorBody)))]
async fn list_users(State(st): State<AppState>, ctx: AdminCtx) -> Result<Json<Vec<UserView>>, ApiError> {
    ctx.require(Permission::UsersRead)?;
    Ok(Json(st.store.list_user_accounts().await?.into_iter().map(UserView::from).collect()))
}

/// Creates a user, with a password or API-key-only.
#[utoipa::path(post, path = "/users", tag = "users", request_body = NewUser,
    responses((status = 201, body = UserView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 409, body = ErrorBody), (status = 503, body = ErrorBody)))]
async fn create_user(
    State(st): State<AppState>,
    ctx: AdminCtx,
    body: Result<Json<NewUser>, JsonRejection>,
) -> Result<(StatusCode, Json<UserView>), ApiError> {
    ctx.require(Permission::UsersWrite)?;
    // Generic message: serde's could echo the password.
    let Json(req) = body.map_err(|_| {
        ApiError::BadRequest(r#"expected a JSON body {"username": string, "role": string, "password"?: string}"#.to_owned())
    })?;
    let perms = assignable(&st, &req.role).await?;
    ensure_holds(&ctx, &perms, &format!("assigning role `{}`", req.role))?;
    let hash = match &req.password {
        Some(pw) => Some(st.console.new_password_hash(&req.username, pw).await?),
        None => None,
    };
    let user = st.store.create_account(&req.username, req.role, hash.as_deref()).await?;
    tracing::info!(by = %ctx.username, user = %user.username, role = %user.role, "user created");
    Ok((StatusCode::CREATED, Json(user.into())))
}

/// One user.
#[utoipa::path(get, path = "/users/{id}", tag = "users", params(("id" = String, Path, description = "user id")),
    responses((status = 200, body = UserView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 503, body = ErrorBody)))]
async fn get_user(State(st): State<AppState>, ctx: AdminCtx, id: Result<Path<String>, PathRejection>) -> Result<Json<UserView>, ApiError> {
    ctx.require(Permission::UsersRead)?;
    let id = path_param(id)?;
    Ok(Json(find_user(&st, &id).await?.into()))
}

/// Changes a user's role, disabled flag or password.
#[utoipa::path(patch, path = "/users/{id}", tag = "users", params(("id" = String, Path, description = "user id")), request_body = UserPatch,
    responses((status = 200, body = UserView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 503, body = ErrorBody)))]
async fn update_user(
    State(st): State<AppState>,
    ctx: AdminCtx,
    id: Result<Path<String>, PathRejection>,
    body: Result<Json<UserPatch>, JsonRejection>,
) -> Result<Json<UserView>, ApiError> {
    ctx.require(Permission::UsersWrite)?;
    let id = path_param(id)?;
    let Json(req) = body.map_err(|_| {
        ApiError::BadRequest(r#"expected a JSON body {"role"?: string, "disabled"?: boolean, "password"?: string}"#.to_owned())
    })?;
    let target = find_user(&st, &id).await?;
    ensure_holds(&ctx, &st.console.permissions(&target.role).await, &format!("changing user `{}`", target.username))?;
    if let Some(role) = &req.role {
        let perms = assignable(&st, role).await?;
        ensure_holds(&ctx, &perms, &format!("assigning role `{role}`"))?;
    }
    let hash = match &req.password {
        Some(pw) => Some(st.console.new_password_hash(&target.username, pw).await?),
        None => None,
    };
    let mut user = target;
    if req.role.is_some() || req.disabled.is_some() {
        user = match st.store.update_user(&id, &UserChanges { role: req.role.clone(), disabled: req.disabled }).await? {
            GuardedChange::Done(u) => u,
            GuardedChange::NotFound => return Err(ApiError::NotFound(format!("no user with id `{id}`"))),
            GuardedChange::LastAdmin => return Err(last_admin()),
        };
        // Cached key lookups carry the old role and enabled state.
        st.auth.invalidate_all();
    }
    if let Some(hash) = &hash {
        st.store.set_password_hash(&id, Some(hash)).await?;
        user.has_password = true;
    }
    if hash.is_some() || user.disabled {
        st.console.end_sessions(&id, None).await?;
    }
    tracing::info!(by = %ctx.username, user = %user.username, role = %user.role, disabled = user.disabled, password_set = hash.is_some(), "user changed");
    Ok(Json(user.into()))
}

/// Deletes a user with their keys and sessions.
#[utoipa::path(delete, path = "/users/{id}", tag = "users", params(("id" = String, Path, description = "user id")),
    responses((status = 204, description = "deleted"), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 503, body = ErrorBody)))]
async fn delete_user(State(st): State<AppState>, ctx: AdminCtx, id: Result<Path<String>, PathRejection>) -> Result<StatusCode, ApiError> {
    ctx.require(Permission::UsersWrite)?;
    let id = path_param(id)?;
    let target = find_user(&st, &id).await?;
    ensure_holds(&ctx, &st.console.permissions(&target.role).await, &format!("deleting user `{}`", target.username))?;
    match st.store.delete_user(&id).await? {
        GuardedChange::Done(u) => {
            st.auth.invalidate_all();
            tracing::info!(by = %ctx.username, user = %u.username, "user deleted");
            Ok(StatusCode::NO_CONTENT)
        }
        GuardedChange::NotFound => Err(ApiError::NotFound(format!("no user with id `{id}`"))),
        GuardedChange::LastAdmin => Err(last_admin()),
    }
}

fn built_in_description(role: &Role) -> &'static str {
    match role {
        Role::Admin => "Manages everything: users, roles, keys, backends, policy.",
        Role::Operator => "Runs the hub: backends, tools, agents and limits; reads the rest.",
        Role::Developer => "Uses the hub through their own keys.",
        Role::Viewer => "Reads dashboards and the audit log; changes nothing.",
        Role::Custom(_) => "",
    }
}

/// The built-in roles, then the custom ones by name.
#[utoipa::path(get, path = "/roles", tag = "users",
    responses((status = 200, body = [RoleView]), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 503, body = ErrorBody)))]
async fn list_roles(State(st): State<AppState>, ctx: AdminCtx) -> Result<Json<Vec<RoleView>>, ApiError> {
    ctx.require(Permission::UsersRead)?;
    let mut out: Vec<RoleView> = Role::BUILT_IN
        .iter()
        .map(|r| RoleView {
            name: r.to_string(),
            description: built_in_description(r).to_owned(),
            built_in: true,
            permissions: roles::built_in(r).unwrap_or_default().into_iter().collect(),
            created_at: None,
        })
        .collect();
    for r in st.store.list_custom_roles().await? {
        let permissions = parse_permissions(&r.name, &r.permissions).into_iter().collect();
        out.push(RoleView { name: r.name, description: r.description, built_in: false, permissions, created_at: Some(r.created_at) });
    }
    Ok(Json(out))
}

fn check_description(d: &str) -> Result<(), ApiError> {
    if d.chars().count() > MAX_DESCRIPTION_LEN || d.chars().any(|c| c.is_control() && c != '\n') {
        return Err(ApiError::BadRequest(format!("description: at most {MAX_DESCRIPTION_LEN} characters, no control characters")));
    }
    Ok(())
}

fn stored_names(perms: &Permissions) -> Vec<String> {
    perms.iter().map(|p| p.as_str().to_owned()).collect()
}

/// A custom role name from a path, or 404 (an invalid name names no role).
fn custom_role_name(name: &str) -> Result<String, ApiError> {
    match name.parse::<Role>() {
        Ok(Role::Custom(n)) => Ok(n),
        Ok(r) => Err(ApiError::Conflict(format!("`{r}` is a built-in role and cannot be changed"))),
        Err(_) => Err(ApiError::NotFound(format!("no custom role `{name}`"))),
    }
}

/// Defines a custom role.
#[utoipa::path(post, path = "/roles", tag = "users", request_body = NewRole,
    responses((status = 201, body = RoleView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 409, body = ErrorBody), (status = 503, body = ErrorBody)))]
async fn create_role(
    State(st): State<AppState>,
    ctx: AdminCtx,
    body: Result<Json<NewRole>, JsonRejection>,
) -> Result<(StatusCode, Json<RoleView>), ApiError> {
    ctx.require(Permission::RolesWrite)?;
    let Json(req) = body.map_err(bad_json)?;
    let name = match req.name.parse::<Role>().map_err(ApiError::BadRequest)? {
        Role::Custom(n) => n,
        r => return Err(ApiError::Conflict(format!("`{r}` is a built-in role; choose another name"))),
    };
    check_description(&req.description)?;
    let perms: Permissions = req.permissions.into_iter().collect();
    ensure_holds(&ctx, &perms, &format!("defining role `{name}`"))?;
    let role = st.store.insert_custom_role(&name, &req.description, &stored_names(&perms)).await?;
    st.console.reload_roles().await?;
    tracing::info!(by = %ctx.username, role = %name, permissions = %names(&perms), "custom role created");
    Ok((
        StatusCode::CREATED,
        Json(RoleView {
            name: role.name,
            description: role.description,
            built_in: false,
            permissions: perms.into_iter().collect(),
            created_at: Some(role.created_at),
        }),
    ))
}

/// Replaces a custom role's permissions (and description, when given).
#[utoipa::path(put, path = "/roles/{name}", tag = "users", params(("name" = String, Path, description = "custom role name")), request_body = RoleUpdate,
    responses((status = 200, body = RoleView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 503, body = ErrorBody)))]
async fn update_role(
    State(st): State<AppState>,
    ctx: AdminCtx,
    name: Result<Path<String>, PathRejection>,
    body: Result<Json<RoleUpdate>, JsonRejection>,
) -> Result<Json<RoleView>, ApiError> {
    ctx.require(Permission::RolesWrite)?;
    let name = custom_role_name(&path_param(name)?)?;
    let Json(req) = body.map_err(bad_json)?;
    let current = st.store.custom_role(&name).await?.ok_or_else(|| ApiError::NotFound(format!("no custom role `{name}`")))?;
    let description = req.description.unwrap_or(current.description);
    check_description(&description)?;
    let perms: Permissions = req.permissions.into_iter().collect();
    // Both what the role had and what it gets: otherwise one could strip a
    // role of permissions one cannot grant back, or add ones one lacks.
    let old = parse_permissions(&name, &current.permissions);
    let involved: Permissions = old.union(&perms).copied().collect();
    ensure_holds(&ctx, &involved, &format!("changing role `{name}`"))?;
    let role = st
        .store
        .update_custom_role(&name, &description, &stored_names(&perms))
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no custom role `{name}`")))?;
    st.console.reload_roles().await?;
    tracing::info!(by = %ctx.username, role = %name, permissions = %names(&perms), "custom role changed");
    Ok(Json(RoleView {
        name: role.name,
        description: role.description,
        built_in: false,
        permissions: perms.into_iter().collect(),
        created_at: Some(role.created_at),
    }))
}

/// Deletes a custom role nobody has.
#[utoipa::path(delete, path = "/roles/{name}", tag = "users", params(("name" = String, Path, description = "custom role name")),
    responses((status = 204, description = "deleted"), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 503, body = ErrorBody)))]
async fn delete_role(State(st): State<AppState>, ctx: AdminCtx, name: Result<Path<String>, PathRejection>) -> Result<StatusCode, ApiError> {
    ctx.require(Permission::RolesWrite)?;
    let name = custom_role_name(&path_param(name)?)?;
    match st.store.delete_custom_role(&name).await? {
        RoleRemoval::Deleted => {
            st.console.reload_roles().await?;
            tracing::info!(by = %ctx.username, role = %name, "custom role deleted");
            Ok(StatusCode::NO_CONTENT)
        }
        RoleRemoval::NotFound => Err(ApiError::NotFound(format!("no custom role `{name}`"))),
        RoleRemoval::InUse(n) => Err(ApiError::Conflict(format!("role `{name}` is held by {n} user(s); give them another role first"))),
    }
}
