-- Rate limit rules, runtime backends and enrolled agents.
-- Timestamps are RFC 3339 text in UTC; ids are UUID v7 strings.

-- Rate limit rules added through the admin API (config-file rules are not stored).
-- `match_value` and `time_window` avoid the SQL keywords MATCH and WINDOW.
CREATE TABLE limit_rules (
    id           TEXT PRIMARY KEY NOT NULL,
    -- user | key | backend | tool
    scope        TEXT NOT NULL,
    -- a username, key id, backend name or tool glob; NULL: each subject separately
    match_value  TEXT,
    -- minute | hour | day
    time_window  TEXT NOT NULL,
    max_requests INTEGER NOT NULL,
    enabled      INTEGER NOT NULL,
    created_at   TEXT NOT NULL
);

-- MCP backends added through the admin API. `config` is the JSON form of a
-- [[backends]] entry with every header and env value encrypted.
CREATE TABLE backends (
    name       TEXT PRIMARY KEY NOT NULL,
    transport  TEXT NOT NULL,
    config     TEXT NOT NULL,
    enabled    INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    -- username of whoever created it (kept when the user is deleted)
    created_by TEXT
);

CREATE TABLE agents (
    id            TEXT PRIMARY KEY NOT NULL,
    name          TEXT NOT NULL UNIQUE,
    user_id       TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- hex HMAC-SHA256 of the token; the token itself is never stored
    token_hash    TEXT NOT NULL UNIQUE,
    token_prefix  TEXT NOT NULL,
    created_at    TEXT NOT NULL,
    revoked_at    TEXT,
    last_seen_at  TEXT,
    last_version  TEXT,
    -- JSON {"users": [...], "roles": [...]}: who else sees its tools
    shared_with   TEXT NOT NULL
);

CREATE INDEX agents_user_id ON agents (user_id);
