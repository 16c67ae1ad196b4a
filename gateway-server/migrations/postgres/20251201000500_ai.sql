-- The AI API proxy: providers, model registrations, prices and budgets added through the
-- admin API, and remembered conversations for OpenAI Responses' previous_response_id.
-- Config-file entries are not stored. Every `config` column holds the JSON of the matching
-- config entry; a provider's API key inside it is encrypted (store::SecretCipher).

CREATE TABLE ai_providers (
    name       TEXT PRIMARY KEY NOT NULL,
    config     TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);

-- One row per deployment: several rows may share a model name.
CREATE TABLE ai_models (
    id         TEXT PRIMARY KEY NOT NULL,
    name       TEXT NOT NULL,
    config     TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL
);

CREATE INDEX ai_models_name ON ai_models (name);

CREATE TABLE ai_budgets (
    id         TEXT PRIMARY KEY NOT NULL,
    config     TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL
);

-- The conversation up to and including a response, as an OpenAI Responses request body.
CREATE TABLE ai_responses (
    id           TEXT PRIMARY KEY NOT NULL,
    user_id      TEXT NOT NULL,
    conversation TEXT NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL
);

CREATE INDEX ai_responses_created_at ON ai_responses (created_at);
