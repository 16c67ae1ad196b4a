//! MCP protocol constants: eras, method names, header names and error codes.

/// Protocol revisions, oldest first.
pub const V2024_11_05: &str = "2024-11-05";
pub const V2025_03_26: &str = "2025-03-26";
pub const V2025_06_18: &str = "2025-06-18";
pub const V2025_11_25: &str = "2025-11-25";
pub const V2026_07_28: &str = "2026-07-28";

/// Every revision the gateway can speak with clients, oldest first.
pub const SUPPORTED_VERSIONS: &[&str] = &[V2024_11_05, V2025_03_26, V2025_06_18, V2025_11_25];

/// The revision offered when the peer asks for one we do not know.
pub const LATEST_VERSION: &str = V2025_11_25;

/// The revision assumed for streamable HTTP requests without a
/// `MCP-Protocol-Version` header (as the 2025-06-18 transport spec requires).
pub const DEFAULT_HTTP_VERSION: &str = V2025_03_26;

/// Revisions of the stateless era (no `initialize`, no sessions: every
/// request carries its version and the client's capabilities in `_meta`).
pub const STATELESS_VERSIONS: &[&str] = &[V2026_07_28];

/// True when `v` is a stateless-era revision.
pub fn is_stateless_version(v: &str) -> bool {
    STATELESS_VERSIONS.contains(&v)
}

/// True when `v` is a revision this crate knows.
pub fn is_supported(v: &str) -> bool {
    SUPPORTED_VERSIONS.contains(&v)
}

/// Picks the revision to answer an `initialize` with: the client's own when we
/// support it, else our latest (the client then decides whether to continue).
pub fn negotiate(requested: &str) -> &'static str {
    SUPPORTED_VERSIONS.iter().copied().find(|v| *v == requested).unwrap_or(LATEST_VERSION)
}

/// HTTP header names of the streamable HTTP transport.
pub mod header {
    pub const SESSION_ID: &str = "mcp-session-id";
    pub const PROTOCOL_VERSION: &str = "mcp-protocol-version";
    pub const LAST_EVENT_ID: &str = "last-event-id";
    /// 2026-07-28: repeats the body's `method`.
    pub const METHOD: &str = "mcp-method";
    /// 2026-07-28: repeats the tool or prompt name, or the resource URI, the request names.
    pub const NAME: &str = "mcp-name";
}

/// `_meta` keys of the 2026-07-28 stateless era.
pub mod meta {
    pub const PROTOCOL_VERSION: &str = "io.modelcontextprotocol/protocolVersion";
    pub const CLIENT_CAPABILITIES: &str = "io.modelcontextprotocol/clientCapabilities";
    pub const CLIENT_INFO: &str = "io.modelcontextprotocol/clientInfo";
    pub const LOG_LEVEL: &str = "io.modelcontextprotocol/logLevel";
    pub const SERVER_INFO: &str = "io.modelcontextprotocol/serverInfo";
    pub const SUBSCRIPTION_ID: &str = "io.modelcontextprotocol/subscriptionId";
    /// The prefix every key of the protocol itself carries.
    pub const PROTOCOL_PREFIX: &str = "io.modelcontextprotocol/";
}

/// Method names the gateway routes on.
pub mod method {
    pub const INITIALIZE: &str = "initialize";
    pub const INITIALIZED: &str = "notifications/initialized";
    pub const PING: &str = "ping";
    pub const TOOLS_LIST: &str = "tools/list";
    pub const TOOLS_CALL: &str = "tools/call";
    pub const PROMPTS_LIST: &str = "prompts/list";
    pub const PROMPTS_GET: &str = "prompts/get";
    pub const RESOURCES_LIST: &str = "resources/list";
    pub const RESOURCES_TEMPLATES_LIST: &str = "resources/templates/list";
    pub const RESOURCES_READ: &str = "resources/read";
    pub const RESOURCES_SUBSCRIBE: &str = "resources/subscribe";
    pub const RESOURCES_UNSUBSCRIBE: &str = "resources/unsubscribe";
    pub const COMPLETION_COMPLETE: &str = "completion/complete";
    pub const LOGGING_SET_LEVEL: &str = "logging/setLevel";
    pub const CANCELLED: &str = "notifications/cancelled";
    pub const PROGRESS: &str = "notifications/progress";
    pub const MESSAGE: &str = "notifications/message";
    pub const TOOLS_LIST_CHANGED: &str = "notifications/tools/list_changed";
    pub const PROMPTS_LIST_CHANGED: &str = "notifications/prompts/list_changed";
    pub const RESOURCES_LIST_CHANGED: &str = "notifications/resources/list_changed";
    pub const RESOURCES_UPDATED: &str = "notifications/resources/updated";
    pub const ROOTS_LIST_CHANGED: &str = "notifications/roots/list_changed";
    pub const SAMPLING_CREATE_MESSAGE: &str = "sampling/createMessage";
    pub const ELICITATION_CREATE: &str = "elicitation/create";
    pub const ROOTS_LIST: &str = "roots/list";
    /// Tasks (2025-11-25).
    pub const TASKS_GET: &str = "tasks/get";
    pub const TASKS_RESULT: &str = "tasks/result";
    pub const TASKS_LIST: &str = "tasks/list";
    pub const TASKS_CANCEL: &str = "tasks/cancel";
    pub const TASKS_STATUS: &str = "notifications/tasks/status";
    /// 2026-07-28: the handshake's replacement.
    pub const SERVER_DISCOVER: &str = "server/discover";
    /// 2026-07-28: the long-lived notification stream (replaces the GET stream).
    pub const SUBSCRIPTIONS_LISTEN: &str = "subscriptions/listen";
    /// 2026-07-28: first message of a `subscriptions/listen` stream.
    pub const SUBSCRIPTIONS_ACKNOWLEDGED: &str = "notifications/subscriptions/acknowledged";
}

/// JSON-RPC error codes. The standard ones plus the gateway's own stable codes
/// in the implementation-defined server error range (-32000..-32099).
pub mod code {
    pub const PARSE_ERROR: i64 = -32700;
    pub const INVALID_REQUEST: i64 = -32600;
    pub const METHOD_NOT_FOUND: i64 = -32601;
    pub const INVALID_PARAMS: i64 = -32602;
    pub const INTERNAL_ERROR: i64 = -32603;
    /// MCP: resource not found.
    pub const RESOURCE_NOT_FOUND: i64 = -32002;
    /// The backend that owns the name is not reachable (crashed, starting, tunnel down).
    pub const UPSTREAM_UNAVAILABLE: i64 = -32010;
    /// The backend did not answer within the request timeout.
    pub const UPSTREAM_TIMEOUT: i64 = -32011;
    /// The request was refused by policy.
    pub const POLICY_DENIED: i64 = -32012;
    /// The request was refused by a rate limit or budget.
    pub const RATE_LIMITED: i64 = -32013;
    /// The session is unknown or has ended.
    pub const SESSION_NOT_FOUND: i64 = -32001;
    /// 2026-07-28: an `MCP-Protocol-Version`, `Mcp-Method` or `Mcp-Name` header
    /// disagrees with the body (or a required one is missing).
    pub const HEADER_MISMATCH: i64 = -32020;
    /// 2026-07-28: the request needs a client capability the client did not declare.
    pub const MISSING_CLIENT_CAPABILITY: i64 = -32021;
    /// 2026-07-28: the requested protocol revision is not supported.
    pub const UNSUPPORTED_VERSION: i64 = -32022;
}
