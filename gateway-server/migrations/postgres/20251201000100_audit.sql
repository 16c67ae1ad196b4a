-- The audit log: one row per MCP call, AI request or admin change, hash-chained
-- in `seq` order (see `audit::chain` for the canonical form that is hashed).
-- Ids are UUID v7 strings. No foreign keys:
-- the log outlives the users, keys and backends it names.

CREATE TABLE audit_events (
    id             TEXT PRIMARY KEY,
    -- position in the hash chain: gap-free, starting after the anchor
    seq            BIGINT NOT NULL UNIQUE,
    ts             TIMESTAMPTZ NOT NULL,
    -- mcp | ai | admin
    kind           TEXT NOT NULL,
    user_id        TEXT,
    username       TEXT,
    key_id         TEXT,
    agent          TEXT,
    client_app     TEXT,
    session_id     TEXT,
    method         TEXT,
    backend        TEXT,
    -- tool, prompt, resource or model name
    tool           TEXT,
    -- allow | deny
    decision       TEXT,
    rule           TEXT,
    -- ok | error
    status         TEXT,
    error_code     BIGINT,
    error_message  TEXT,
    latency_ms     DOUBLE PRECISION,
    request_bytes  BIGINT,
    response_bytes BIGINT,
    input_tokens   BIGINT,
    output_tokens  BIGINT,
    cost_usd       DOUBLE PRECISION,
    -- redacted JSON text
    arguments      TEXT,
    result         TEXT,
    action         TEXT,
    target         TEXT,
    details        TEXT,
    -- lowercase hex SHA-256
    prev_hash      TEXT NOT NULL,
    hash           TEXT NOT NULL
);

CREATE INDEX audit_events_ts ON audit_events (ts);
CREATE INDEX audit_events_user_id ON audit_events (user_id, seq);
CREATE INDEX audit_events_username ON audit_events (username, seq);
CREATE INDEX audit_events_key_id ON audit_events (key_id, seq);
CREATE INDEX audit_events_tool ON audit_events (tool, seq);
CREATE INDEX audit_events_backend ON audit_events (backend, seq);
CREATE INDEX audit_events_kind ON audit_events (kind, seq);
CREATE INDEX audit_events_hash ON audit_events (hash);

-- Where the chain starts: the (seq, hash) of the last record removed by
-- retention, or (0, 64 zeros) while nothing has been removed. Exactly one row.
CREATE TABLE audit_anchor (
    id   INTEGER PRIMARY KEY CHECK (id = 1),
    seq  BIGINT NOT NULL,
    hash TEXT NOT NULL
);

INSERT INTO audit_anchor (id, seq, hash) VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');
