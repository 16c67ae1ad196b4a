-- Tool registry, policy rules and backend visibility.
-- Timestamps are RFC 3339 text in UTC; ids are UUID v7 strings; JSON is text.

-- Every tool seen from every backend. The definition columns (title ...
-- annotations) hold the pinned (approved) definition; a different one seen
-- later waits in pending_definition with status 'changed'.
CREATE TABLE tools (
    id                 TEXT PRIMARY KEY NOT NULL,
    backend            TEXT NOT NULL,
    name               TEXT NOT NULL,
    -- the gateway-agent offering the tool, for agent backends
    agent              TEXT,
    title              TEXT,
    description        TEXT,
    input_schema       TEXT,
    output_schema      TEXT,
    annotations        TEXT,
    -- 'low' | 'medium' | 'high'
    risk_auto          TEXT NOT NULL,
    risk_override      TEXT,
    -- set only by an admin; syncs never change it
    enabled            BOOLEAN NOT NULL,
    -- hex sha256 of the canonical JSON of the latest definition seen
    definition_hash    TEXT NOT NULL,
    -- the hash approved (first sighting, or an admin's approval)
    pinned_hash        TEXT NOT NULL,
    pending_definition TEXT,
    -- 'ok' | 'changed'
    status             TEXT NOT NULL,
    first_seen         TEXT NOT NULL,
    last_seen          TEXT NOT NULL,
    approved_by        TEXT,
    approved_at        TEXT,
    UNIQUE (backend, name)
);

-- Ordered allow/deny rules. Every condition is a JSON array; empty = any.
CREATE TABLE policy_rules (
    id          TEXT PRIMARY KEY NOT NULL,
    position    INTEGER NOT NULL,
    name        TEXT NOT NULL UNIQUE,
    description TEXT NOT NULL,
    -- 'allow' | 'deny'
    effect      TEXT NOT NULL,
    enabled     BOOLEAN NOT NULL,
    roles       TEXT NOT NULL,
    users       TEXT NOT NULL,
    keys        TEXT NOT NULL,
    agents      TEXT NOT NULL,
    client_apps TEXT NOT NULL,
    backends    TEXT NOT NULL,
    tools       TEXT NOT NULL,
    risks       TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);

CREATE INDEX policy_rules_position ON policy_rules (position);

-- A backend with a row is visible only to the listed roles and users
-- (admins see everything); without a row, to everyone.
CREATE TABLE backend_visibility (
    backend    TEXT PRIMARY KEY NOT NULL,
    -- JSON arrays of role names and usernames
    roles      TEXT NOT NULL,
    users      TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
