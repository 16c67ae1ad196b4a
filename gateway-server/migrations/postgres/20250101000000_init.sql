-- Users, API keys and hub-wide settings. Ids are UUID v7 strings.

CREATE TABLE users (
    id            TEXT PRIMARY KEY,
    username      TEXT NOT NULL UNIQUE,
    role          TEXT NOT NULL,
    password_hash TEXT,
    created_at    TIMESTAMPTZ NOT NULL
);

CREATE TABLE api_keys (
    id           TEXT PRIMARY KEY,
    user_id      TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    -- first characters of the key, shown in listings
    prefix       TEXT NOT NULL,
    -- hex HMAC-SHA256 of the whole key; the key itself is never stored
    key_hash     TEXT NOT NULL UNIQUE,
    -- JSON array of strings ("mcp", "ai")
    surfaces     TEXT NOT NULL,
    -- JSON array of tool name globs
    tools        TEXT NOT NULL,
    expires_at   TIMESTAMPTZ,
    last_used_at TIMESTAMPTZ,
    revoked_at   TIMESTAMPTZ,
    created_at   TIMESTAMPTZ NOT NULL
);

CREATE INDEX api_keys_user_id ON api_keys (user_id);

CREATE TABLE settings (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
