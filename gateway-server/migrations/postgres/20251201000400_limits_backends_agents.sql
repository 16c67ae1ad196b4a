-- Rate limit rules, runtime backends and enrolled agents. Ids are UUID v7 strings.

-- Rate limit rules added through the admin API (config-file rules are not stored).
-- `match_value` and `time_window` avoid the SQL keywords MATCH and WINDOW.
CREATE TABLE limit_rules (
    id           TEXT PRIMARY KEY,
    -- user | key | backend | tool
    scope        TEXT NOT NULL,
    -- a username, key id, backend name or tool glob; NULL: each subject separately
    match_value  TEXT,
    -- minute | hour | day
    time_window  TEXT NOT NULL,
    max_requests BIGINT NOT NULL,
    enabled      BOOLEAN NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL
);

-- MCP backends added through the admin API. `config` is the JSON form of a
-- [[backends]] entry with every header and env value encrypted.
CREATE TABLE backends (
    name       TEXT PRIMARY KEY,
    transport  TEXT NOT NULL,
    config     TEXT NOT NULL,
    enabled    BOOLEAN NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    -- username of whoever created it (kept when the user is deleted)
    created_by TEXT
);

CREATE TABLE agents (
    id            TEXT PRIMARY KEY,
    name          TEXT NOT NULL UNIQUE,
    user_id       TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- hex HMAC-SHA256 of the token; the token itself is never stored
    token_hash    TEXT NOT NULL UNIQUE,
    token_prefix  TEXT NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL,
    revoked_at    TIMESTAMPTZ,
    last_seen_at  TIMESTAMPTZ,
    last_version  TEXT,
    -- JSON {"users": [...], "roles": [...]}: who else sees its tools
    shared_with   TEXT NOT NULL
);

CREATE INDEX agents_user_id ON agents (user_id);
