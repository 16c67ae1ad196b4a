//! Admin API: enrolled agents.
//!
//! Who may do what: holders of `agents:write` see and manage every agent;
//! other holders of `agents:read` who manage their own credentials
//! (`keys:own`, e.g. developers) see, enroll and revoke only their own
//! agents, since an agent token is a credential of its owner like an API
//! key; read-only roles see every agent and change nothing. Sharing an
//! agent's tools with other users or roles takes `agents:write`.

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
use crate::server::AppState;
use crate::store::{Agent, AgentSharing, NewAgent, Role};

/// Most users and roles an agent can be shared with.
const MAX_SHARES: usize = 256;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_agents, enroll_agent)).routes(routes!(revoke_agent)).routes(routes!(set_sharing))
}

/// An agent as the API shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AgentInfo {
    pub name: String,
    /// Connected to this hub now.
    pub online: bool,
    /// The owner's username.
    pub owner: String,
    pub owner_id: String,
    /// The first characters of its token.
    pub token_prefix: String,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub last_seen: Option<DateTime<Utc>>,
    /// The agent version it last reported.
    pub version: Option<String>,
    pub shared_with: AgentSharing,
}

fn info(st: &AppState, a: Agent) -> AgentInfo {
    AgentInfo {
        online: a.is_active() && st.agents.is_online(&a.name),
        name: a.name,
        owner: a.username,
        owner_id: a.user_id,
        token_prefix: a.token_prefix,
        created_at: a.created_at,
        revoked_at: a.revoked_at,
        last_seen: a.last_seen_at,
        version: a.last_version,
        shared_with: a.shared_with,
    }
}

/// What the caller may do with agents.
enum Reach {
    /// Every agent.
    All { write: bool },
    /// Their own agents only (read and write).
    Own,
}

fn reach(ctx: &AdminCtx) -> Result<Reach, ApiError> {
    ctx.require(Permission::AgentsRead)?;
    Ok(if ctx.can(Permission::AgentsWrite) {
        Reach::All { write: true }
    } else if ctx.can(Permission::KeysOwn) {
        Reach::Own
    } else {
        Reach::All { write: false }
    })
}

/// The 403 of a caller who may read agents but not change them.
fn read_only(ctx: &AdminCtx) -> ApiError {
    ApiError::Forbidden(format!("role `{}` lacks the permission `{}`", ctx.role, Permission::AgentsWrite))
}

fn name_param(name: Result<Path<String>, PathRejection>) -> Result<String, ApiError> {
    let Path(name) = name.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    if !crate::config::is_valid_backend_name(&name) {
        return Err(ApiError::NotFound(format!("no agent `{}`", name.chars().take(64).collect::<String>())));
    }
    Ok(name)
}

/// Agents the caller may see, by name.
#[utoipa::path(get, path = "/agents", tag = "agents",
    responses((status = 200, body = Vec<AgentInfo>), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 503, body = ErrorBody)))]
async fn list_agents(ctx: AdminCtx, State(st): State<AppState>) -> Result<Json<Vec<AgentInfo>>, ApiError> {
    let owner = match reach(&ctx)? {
        Reach::Own => Some(ctx.user_id.as_str()),
        Reach::All { .. } => None,
    };
    let agents = st.store.list_agents(owner).await?;
    Ok(Json(agents.into_iter().map(|a| info(&st, a)).collect()))
}

/// An enrolment request.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EnrollRequest {
    /// 1-32 of `A-Z a-z 0-9 _ -`, starting with a letter or digit, without `__`.
    pub name: String,
    /// Owner's username; default the caller. Enrolling for someone else takes `agents:write`.
    #[serde(default)]
    pub user: Option<String>,
}

/// A new agent with its token, shown only here.
#[derive(Debug, Serialize, ToSchema)]
pub struct Enrolled {
    pub agent: AgentInfo,
    /// The `ga_…` token; store it now, it cannot be shown again.
    pub token: String,
    /// Installs and enrolls the agent on a machine.
    pub install_command: String,
}

/// Enrolls an agent and returns its token once.
#[utoipa::path(post, path = "/agents", tag = "agents", request_body = EnrollRequest,
    responses((status = 201, body = Enrolled), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody, description = "No such user"),
        (status = 409, body = ErrorBody, description = "An active agent has this name"), (status = 503, body = ErrorBody)))]
async fn enroll_agent(
    ctx: AdminCtx,
    State(st): State<AppState>,
    body: Result<Json<EnrollRequest>, JsonRejection>,
) -> Result<(StatusCode, Json<Enrolled>), ApiError> {
    let reach = reach(&ctx)?;
    if matches!(reach, Reach::All { write: false }) {
        return Err(read_only(&ctx));
    }
    let Json(req) = body.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    crate::store::validate_agent_name(&req.name)?;
    let (user_id, username) = match req.user.as_deref() {
        None => (ctx.user_id.clone(), ctx.username.clone()),
        Some(u) if u == ctx.username => (ctx.user_id.clone(), ctx.username.clone()),
        Some(u) => {
            if !matches!(reach, Reach::All { write: true }) {
                return Err(ApiError::Forbidden("enrolling an agent for another user needs the permission `agents:write`".to_owned()));
            }
            if u.len() > 64 {
                return Err(ApiError::BadRequest("user: longer than 64 characters".to_owned()));
            }
            let user = st.store.user_by_name(u).await?.ok_or_else(|| ApiError::NotFound(format!("no user `{u}`")))?;
            (user.id, user.username)
        }
    };
    let token = crate::auth::generate_agent_token();
    let agent = st
        .store
        .insert_agent(
            NewAgent {
                name: req.name.clone(),
                user_id,
                token_hash: crate::auth::hash_key(st.auth.secret(), &token),
                token_prefix: crate::auth::key_prefix(&token),
            },
            false,
        )
        .await?;
    tracing::info!(actor = %ctx.username, agent = %agent.name, owner = %username, "agent enrolled");
    let install_command = format!(
        "curl -fsSL {}/install.sh | sh -s -- --token {token} --name {}",
        st.config.server.public_url.trim_end_matches('/'),
        agent.name
    );
    Ok((StatusCode::CREATED, Json(Enrolled { agent: info(&st, agent), token, install_command })))
}

/// The agent `name` if the caller may manage it, else 404 (403 for read-only callers).
async fn managed(st: &AppState, ctx: &AdminCtx, name: &str) -> Result<Agent, ApiError> {
    let reach = reach(ctx)?;
    if matches!(reach, Reach::All { write: false }) {
        return Err(read_only(ctx));
    }
    let agent = st.store.agent_by_name(name).await?;
    match (agent, reach) {
        (Some(a), Reach::All { .. }) => Ok(a),
        (Some(a), Reach::Own) if a.user_id == ctx.user_id => Ok(a),
        // Someone else's agent is not even acknowledged.
        _ => Err(ApiError::NotFound(format!("no agent `{name}`"))),
    }
}

/// Revokes an agent: its token stops working and it is disconnected.
#[utoipa::path(delete, path = "/agents/{name}", tag = "agents",
    params(("name" = String, Path, description = "Agent name")),
    responses((status = 204, description = "Revoked"), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 503, body = ErrorBody)))]
async fn revoke_agent(
    ctx: AdminCtx,
    State(st): State<AppState>,
    name: Result<Path<String>, PathRejection>,
) -> Result<StatusCode, ApiError> {
    let name = name_param(name)?;
    managed(&st, &ctx, &name).await?;
    if !st.store.revoke_agent(&name).await? {
        return Err(ApiError::NotFound(format!("no active agent `{name}`")));
    }
    // A live tunnel ends now, with a final `revoked` error the agent does not retry.
    st.agents.end(&name, crate::agents::EndReason::Revoked);
    st.agents.set_online(&name, false);
    tracing::info!(actor = %ctx.username, agent = %name, "agent revoked");
    Ok(StatusCode::NO_CONTENT)
}

/// Who besides its owner sees an agent's tools.
#[utoipa::path(put, path = "/agents/{name}/sharing", tag = "agents", request_body = AgentSharing,
    params(("name" = String, Path, description = "Agent name")),
    responses((status = 200, body = AgentInfo), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 503, body = ErrorBody)))]
async fn set_sharing(
    ctx: AdminCtx,
    State(st): State<AppState>,
    name: Result<Path<String>, PathRejection>,
    body: Result<Json<AgentSharing>, JsonRejection>,
) -> Result<Json<AgentInfo>, ApiError> {
    ctx.require(Permission::AgentsWrite)?;
    let name = name_param(name)?;
    let Json(mut sharing) = body.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    if sharing.users.len() > MAX_SHARES || sharing.roles.len() > MAX_SHARES {
        return Err(ApiError::BadRequest(format!("users, roles: at most {MAX_SHARES} each")));
    }
    for u in &sharing.users {
        if st.store.user_by_name(u).await?.is_none() {
            return Err(ApiError::BadRequest(format!("users: no user `{}`", u.chars().take(64).collect::<String>())));
        }
    }
    for r in &sharing.roles {
        r.parse::<Role>().map_err(|e| ApiError::BadRequest(format!("roles: {e}")))?;
    }
    sharing.users.sort();
    sharing.users.dedup();
    sharing.roles.sort();
    sharing.roles.dedup();
    if !st.store.set_agent_sharing(&name, &sharing).await? {
        return Err(ApiError::NotFound(format!("no agent `{name}`")));
    }
    tracing::info!(actor = %ctx.username, agent = %name, users = sharing.users.len(), roles = sharing.roles.len(), "agent sharing changed");
    let agent = st.store.agent_by_name(&name).await?.ok_or_else(|| ApiError::NotFound(format!("no agent `{name}`")))?;
    // A connected agent's servers are seen by the new audience at once.
    st.agents.set_sharing(&agent.name, &agent.user_id, &agent.shared_with);
    st.hub.notify_list_changed_all();
    Ok(Json(info(&st, agent)))
}
