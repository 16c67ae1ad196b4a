//! Governance on the MCP data path: who may see and call which tool, how
//! often, and the audit record and metrics of every request.
//!
//! The same decision serves both places it is needed, so a list never shows a
//! tool that a call would refuse (and the other way round):
//!
//! 1. backend visibility (an invisible backend's tools do not exist for the
//!    caller; an agent's servers exist only for its owner and those it is
//!    shared with, see [`AgentRegistry::visible_to`]),
//! 2. the tool registry (disabled by an admin, or held because its definition changed),
//! 3. the API key's tool allowlist (a key can only narrow what its user may do),
//! 4. the policy rules.
//!
//! Calls then pass the rate limits; lists do not consume them. Every check is
//! in memory: nothing here waits on the store.

use std::time::Instant;

use gatehouse_proto::ErrorObject;
use gatehouse_proto::mcp::code;
use serde_json::{Map, Value, json};

use crate::agents::AgentRegistry;
use crate::audit::{Audit, AuditEvent, Decision, EventKind, EventStatus};
use crate::auth::Principal;
use crate::limits::{LimitInput, Limits};
use crate::metrics::Metrics;
use crate::policy::{Policies, PolicyInput, key_allows};
use crate::registry::{Risk, ToolRegistry, assess_risk};

/// The governance components the MCP router consults.
pub struct Gate {
    pub policy: Policies,
    pub registry: ToolRegistry,
    pub limits: Limits,
    pub audit: Audit,
    pub metrics: Metrics,
    /// The connected agents: who owns and who may see their servers.
    pub agents: AgentRegistry,
}

impl std::fmt::Debug for Gate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gate").finish_non_exhaustive()
    }
}

/// Who is asking.
#[derive(Clone, Copy)]
pub struct Asker<'a> {
    pub principal: &'a Principal,
    /// `clientInfo.name` of the session.
    pub client_app: Option<&'a str>,
}

/// Why a call was refused, for the client and the audit record.
#[derive(Debug)]
pub struct Refusal {
    pub error: ErrorObject,
    /// The policy rule or limit that decided, when one did.
    pub rule: Option<String>,
}

/// What the audit record of one request says beyond its method and outcome.
#[derive(Debug, Default)]
pub struct Note {
    pub backend: Option<String>,
    /// The tool, prompt or resource the request named, as the client named it.
    pub target: Option<String>,
    /// `tools/call` arguments, as sent.
    pub arguments: Option<Value>,
    /// `Some(false)` when governance refused the request.
    pub allowed: Option<bool>,
    pub rule: Option<String>,
}

fn refused(message: String, reason: &str) -> Refusal {
    Refusal { error: ErrorObject::new(code::POLICY_DENIED, message).with_data(json!({ "reason": reason })), rule: None }
}

impl Gate {
    /// Whether backend `backend` exists for this caller.
    pub fn backend_visible(&self, who: Asker<'_>, backend: &str) -> bool {
        let p = who.principal;
        self.backend_visible_to(&p.user_id, &p.username, &p.role, backend)
    }

    /// Whether backend `backend` exists for a user: agent sharing, then policy visibility.
    pub fn backend_visible_to(&self, user_id: &str, username: &str, role: &crate::store::Role, backend: &str) -> bool {
        if self.agents.visible_to(backend, user_id, username, role) == Some(false) {
            return false;
        }
        self.policy.backend_visible(username, role, backend)
    }

    /// The decision for tool `tool` of `backend`, exposed to the client as
    /// `exposed`; `def` is its definition when at hand (for the risk of a tool
    /// the registry has not seen yet).
    pub fn decide_tool(
        &self,
        who: Asker<'_>,
        backend: &str,
        tool: &str,
        exposed: &str,
        def: Option<&Map<String, Value>>,
    ) -> Result<Option<String>, Refusal> {
        let p = who.principal;
        if !self.backend_visible(who, backend) {
            return Err(Refusal {
                error: ErrorObject::invalid_params(format!("Unknown tool: {exposed}")).with_data(json!({ "name": exposed })),
                rule: None,
            });
        }
        let info = self.registry.lookup(backend, tool);
        if let Some(i) = &info {
            if i.held {
                return Err(refused(
                    format!("Tool '{exposed}' is held: its definition changed and awaits an administrator's approval"),
                    "definition_changed",
                ));
            }
            if !i.enabled {
                return Err(refused(format!("Tool '{exposed}' is disabled by an administrator"), "disabled"));
            }
        }
        if !key_allows(&p.tools, exposed, tool) {
            return Err(refused(format!("Tool '{exposed}' is not in this API key's tool allowlist"), "key_allowlist"));
        }
        let risk = match (&info, def) {
            (Some(i), _) => i.risk,
            (None, Some(d)) => assess_risk(d),
            (None, None) => Risk::Medium,
        };
        let agent = self.agents.agent_of(backend);
        let decision = self.policy.evaluate(&PolicyInput {
            user_id: &p.user_id,
            username: &p.username,
            role: &p.role,
            key_id: (!p.key_id.is_empty()).then_some(p.key_id.as_str()),
            key_name: Some(p.key_name.as_str()),
            agent: agent.as_deref(),
            client_app: who.client_app,
            backend,
            tool,
            risk,
        });
        let rule = decision.rule.as_ref().map(|r| r.name.clone());
        if decision.allowed { Ok(rule) } else { Err(Refusal { error: decision.to_error_object(exposed), rule }) }
    }

    /// Checks a `tools/call`: the tool decision, then the rate limits.
    pub fn check_call(&self, who: Asker<'_>, backend: &str, tool: &str, exposed: &str) -> Result<Option<String>, Refusal> {
        let decided = self.decide_tool(who, backend, tool, exposed, None);
        self.metrics.policy_decision(decided.is_ok());
        let rule = decided?;
        let p = who.principal;
        let input = LimitInput {
            user_id: &p.user_id,
            username: &p.username,
            key_id: (!p.key_id.is_empty()).then_some(p.key_id.as_str()),
            backend: Some(backend),
            tool: Some(tool),
            ai: false,
        };
        if let Err(limit) = self.limits.check(&input) {
            self.metrics.rate_limited(&limit.scope);
            return Err(Refusal { error: limit.to_error_object(), rule: Some(limit.rule_id.clone()) });
        }
        Ok(rule)
    }

    /// Records the outcome of one request: audit event and metrics.
    pub fn finish(
        &self,
        who: Asker<'_>,
        session_id: &str,
        method: &str,
        note: Note,
        outcome: &Result<Box<serde_json::value::RawValue>, ErrorObject>,
        started: Instant,
    ) {
        let elapsed = started.elapsed();
        let status = if outcome.is_ok() { "ok" } else { "error" };
        self.metrics.observe_request("mcp", method, status, elapsed);
        let p = who.principal;
        let (error_code, error_message) = match outcome {
            Err(e) => (Some(e.code), Some(e.message.clone())),
            Ok(_) => (None, None),
        };
        let (response_bytes, result) = match outcome {
            Ok(raw) if method == gatehouse_proto::mcp::method::TOOLS_CALL => {
                (Some(raw.get().len() as i64), serde_json::from_str(raw.get()).ok())
            }
            Ok(raw) => (Some(raw.get().len() as i64), None),
            Err(_) => (None, None),
        };
        let mut ev =
            AuditEvent::new(EventKind::Mcp).by(p.user_id.clone(), p.username.clone(), (!p.key_id.is_empty()).then(|| p.key_id.clone()));
        ev.client_app = who.client_app.map(str::to_owned);
        ev.session_id = Some(session_id.to_owned());
        ev.method = Some(method.to_owned());
        ev.backend = note.backend;
        ev.tool = note.target;
        ev.decision = note.allowed.map(|a| if a { Decision::Allow } else { Decision::Deny });
        ev.rule = note.rule;
        ev.status = Some(if outcome.is_ok() { EventStatus::Ok } else { EventStatus::Error });
        ev.error_code = error_code;
        ev.error_message = error_message;
        ev.latency_ms = Some(elapsed.as_secs_f64() * 1000.0);
        ev.response_bytes = response_bytes;
        ev.arguments = note.arguments;
        ev.result = result;
        self.audit.record(ev);
    }
}
