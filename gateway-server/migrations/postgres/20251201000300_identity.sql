-- Identity: disabled users, custom roles and console sessions.

-- A disabled user can neither sign in nor use their keys.
ALTER TABLE users ADD COLUMN disabled BOOLEAN NOT NULL DEFAULT FALSE;

-- Admin-defined roles; the built-in ones (admin, operator, developer, viewer)
-- live in the code and never appear here.
CREATE TABLE roles (
    name        TEXT PRIMARY KEY,
    description TEXT NOT NULL,
    -- JSON array of `area:verb` permission names
    permissions TEXT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL
);

-- Signed-in console (dashboard) sessions. Only a keyed hash of the cookie
-- token is stored; the CSRF token is derived from the cookie token with the
-- same secret, so neither can be recovered from the database.
CREATE TABLE console_sessions (
    id         TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    token_hash TEXT NOT NULL UNIQUE,
    created_at TIMESTAMPTZ NOT NULL,
    last_seen  TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL,
    ip         TEXT,
    user_agent TEXT
);

CREATE INDEX console_sessions_user_id ON console_sessions (user_id);
