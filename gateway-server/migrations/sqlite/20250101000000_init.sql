-- Users, API keys and hub-wide settings.
-- Timestamps are RFC 3339 text in UTC; ids are UUID v7 strings.

CREATE TABLE users (
    id            TEXT PRIMARY KEY NOT NULL,
    username      TEXT NOT NULL UNIQUE,
    role          TEXT NOT NULL,
    password_hash TEXT,
    created_at    TEXT NOT NULL
);

CREATE TABLE api_keys (
    id           TEXT PRIMARY KEY NOT NULL,
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
    expires_at   TEXT,
    last_used_at TEXT,
    revoked_at   TEXT,
    created_at   TEXT NOT NULL
);

CREATE INDEX api_keys_user_id ON api_keys (user_id);

CREATE TABLE settings (
    key   TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL
);
