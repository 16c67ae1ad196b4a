//! What each role may do: named permissions, the built-in roles' sets, and
//! the check the admin API applies to every endpoint.
//!
//! Custom roles carry an explicit permission list stored with the role; the
//! built-in ones are fixed here so an upgrade can extend them.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::store::Role;

/// One thing a user may be allowed to do. Serialized as `area:verb`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema)]
pub enum Permission {
    #[serde(rename = "users:read")]
    UsersRead,
    #[serde(rename = "users:write")]
    UsersWrite,
    #[serde(rename = "roles:write")]
    RolesWrite,
    /// Read every user's keys (own keys need no permission beyond `keys:own`).
    #[serde(rename = "keys:read")]
    KeysRead,
    /// Create and revoke keys for any user.
    #[serde(rename = "keys:write")]
    KeysWrite,
    /// Create, list and revoke one's own keys.
    #[serde(rename = "keys:own")]
    KeysOwn,
    #[serde(rename = "backends:read")]
    BackendsRead,
    #[serde(rename = "backends:write")]
    BackendsWrite,
    #[serde(rename = "tools:read")]
    ToolsRead,
    #[serde(rename = "tools:write")]
    ToolsWrite,
    #[serde(rename = "policies:read")]
    PoliciesRead,
    #[serde(rename = "policies:write")]
    PoliciesWrite,
    #[serde(rename = "agents:read")]
    AgentsRead,
    #[serde(rename = "agents:write")]
    AgentsWrite,
    #[serde(rename = "audit:read")]
    AuditRead,
    #[serde(rename = "limits:read")]
    LimitsRead,
    #[serde(rename = "limits:write")]
    LimitsWrite,
    #[serde(rename = "usage:read")]
    UsageRead,
    #[serde(rename = "settings:read")]
    SettingsRead,
    #[serde(rename = "settings:write")]
    SettingsWrite,
    /// Call `/mcp`.
    #[serde(rename = "mcp:use")]
    McpUse,
    /// Call the AI proxy (`/v1/...`).
    #[serde(rename = "ai:use")]
    AiUse,
}

impl Permission {
    /// Every permission.
    pub const ALL: [Permission; 22] = [
        Self::UsersRead,
        Self::UsersWrite,
        Self::RolesWrite,
        Self::KeysRead,
        Self::KeysWrite,
        Self::KeysOwn,
        Self::BackendsRead,
        Self::BackendsWrite,
        Self::ToolsRead,
        Self::ToolsWrite,
        Self::PoliciesRead,
        Self::PoliciesWrite,
        Self::AgentsRead,
        Self::AgentsWrite,
        Self::AuditRead,
        Self::LimitsRead,
        Self::LimitsWrite,
        Self::UsageRead,
        Self::SettingsRead,
        Self::SettingsWrite,
        Self::McpUse,
        Self::AiUse,
    ];

    /// The `area:verb` name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::UsersRead => "users:read",
            Self::UsersWrite => "users:write",
            Self::RolesWrite => "roles:write",
            Self::KeysRead => "keys:read",
            Self::KeysWrite => "keys:write",
            Self::KeysOwn => "keys:own",
            Self::BackendsRead => "backends:read",
            Self::BackendsWrite => "backends:write",
            Self::ToolsRead => "tools:read",
            Self::ToolsWrite => "tools:write",
            Self::PoliciesRead => "policies:read",
            Self::PoliciesWrite => "policies:write",
            Self::AgentsRead => "agents:read",
            Self::AgentsWrite => "agents:write",
            Self::AuditRead => "audit:read",
            Self::LimitsRead => "limits:read",
            Self::LimitsWrite => "limits:write",
            Self::UsageRead => "usage:read",
            Self::SettingsRead => "settings:read",
            Self::SettingsWrite => "settings:write",
            Self::McpUse => "mcp:use",
            Self::AiUse => "ai:use",
        }
    }

    /// True for the `…:read` permissions.
    pub fn is_read(self) -> bool {
        self.as_str().ends_with(":read")
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Permission {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL.into_iter().find(|p| p.as_str() == s).ok_or_else(|| format!("unknown permission `{s}`"))
    }
}

/// A set of permissions.
pub type Permissions = BTreeSet<Permission>;

/// What a built-in role may do; `None` for a custom role (look it up in the store).
pub fn built_in(role: &Role) -> Option<Permissions> {
    use Permission::*;
    let set: Permissions = match role {
        Role::Admin => Permission::ALL.into_iter().collect(),
        Role::Operator => Permission::ALL
            .into_iter()
            .filter(|p| p.is_read() || matches!(p, BackendsWrite | ToolsWrite | AgentsWrite | LimitsWrite | KeysOwn | McpUse | AiUse))
            .collect(),
        Role::Developer => [KeysOwn, McpUse, AiUse, ToolsRead, BackendsRead, AgentsRead, UsageRead].into_iter().collect(),
        Role::Viewer => Permission::ALL.into_iter().filter(|p| p.is_read() && !matches!(p, UsersRead | KeysRead)).collect(),
        Role::Custom(_) => return None,
    };
    Some(set)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for p in Permission::ALL {
            assert_eq!(p.as_str().parse::<Permission>().unwrap(), p);
            assert_eq!(serde_json::to_value(p).unwrap(), serde_json::json!(p.as_str()));
        }
    }

    #[test]
    fn built_in_roles() {
        let admin = built_in(&Role::Admin).unwrap();
        assert_eq!(admin.len(), Permission::ALL.len());
        let viewer = built_in(&Role::Viewer).unwrap();
        assert!(viewer.iter().all(|p| p.is_read()));
        assert!(!viewer.contains(&Permission::McpUse));
        let dev = built_in(&Role::Developer).unwrap();
        assert!(dev.contains(&Permission::McpUse) && !dev.contains(&Permission::AuditRead));
        let op = built_in(&Role::Operator).unwrap();
        assert!(op.contains(&Permission::BackendsWrite) && !op.contains(&Permission::UsersWrite));
        assert!(built_in(&Role::Custom("x".into())).is_none());
    }
}
