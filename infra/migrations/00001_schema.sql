-- +goose Up
-- Money is integer nano-USD (1 USD = 1e9) in BIGINT columns; days are UTC dates.

CREATE TABLE ai_models (
    model_key                  TEXT PRIMARY KEY,
    provider                   TEXT NOT NULL,
    api_model                  TEXT NOT NULL,
    display_name               TEXT NOT NULL,
    -- prices in nano-USD per 1M tokens: $0.28/1M is 280000000
    input_nano_per_mtok        BIGINT NOT NULL CHECK (input_nano_per_mtok >= 0),
    output_nano_per_mtok       BIGINT NOT NULL CHECK (output_nano_per_mtok >= 0),
    cached_input_nano_per_mtok BIGINT NOT NULL CHECK (cached_input_nano_per_mtok >= 0),
    price_version              TEXT NOT NULL,
    enabled                    BOOLEAN NOT NULL DEFAULT true,
    -- the model tried after an operation's primary and fallback both failed
    is_emergency               BOOLEAN NOT NULL DEFAULT false,
    updated_by                 TEXT NOT NULL DEFAULT 'migration',
    updated_at                 TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- At most one emergency model, so failover order is never ambiguous.
CREATE UNIQUE INDEX ai_models_one_emergency ON ai_models (is_emergency) WHERE is_emergency;

CREATE TABLE ai_model_routes (
    id                BIGSERIAL PRIMARY KEY,
    operation_id      TEXT NOT NULL UNIQUE,
    operation_name    TEXT NOT NULL,
    primary_model     TEXT NOT NULL REFERENCES ai_models (model_key),
    fallback_model    TEXT REFERENCES ai_models (model_key),
    enabled           BOOLEAN NOT NULL DEFAULT true,
    cost_criticality  TEXT NOT NULL CHECK (cost_criticality IN ('LOW', 'MEDIUM', 'HIGH')),
    requires_approval BOOLEAN NOT NULL DEFAULT false,
    max_output_tokens INTEGER NOT NULL CHECK (max_output_tokens > 0),
    avg_input_tokens  INTEGER NOT NULL CHECK (avg_input_tokens >= 0),
    avg_output_tokens INTEGER NOT NULL CHECK (avg_output_tokens >= 0),
    -- false where the emergency model cannot do the job (video, speech)
    allow_emergency   BOOLEAN NOT NULL DEFAULT true,
    notes             TEXT NOT NULL DEFAULT '',
    updated_by        TEXT NOT NULL DEFAULT 'migration',
    updated_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    CHECK (fallback_model IS DISTINCT FROM primary_model)
);

CREATE TABLE ai_operation_log (
    id                  BIGSERIAL PRIMARY KEY,
    request_id          TEXT NOT NULL UNIQUE,
    operation_id        TEXT NOT NULL,
    user_id             TEXT NOT NULL,
    model_used          TEXT,
    provider            TEXT,
    provider_request_id TEXT,
    input_tokens        INTEGER NOT NULL DEFAULT 0,
    output_tokens       INTEGER NOT NULL DEFAULT 0,
    cached_input_tokens INTEGER NOT NULL DEFAULT 0,
    reasoning_tokens    INTEGER NOT NULL DEFAULT 0,
    cost_nano           BIGINT NOT NULL DEFAULT 0 CHECK (cost_nano >= 0),
    price_version       TEXT,
    latency_ms          INTEGER NOT NULL DEFAULT 0,
    success             BOOLEAN NOT NULL,
    error_code          TEXT,
    fallback_used       BOOLEAN NOT NULL DEFAULT false,
    created_at          TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX idx_ai_ops_user_date ON ai_operation_log (user_id, created_at DESC);
CREATE INDEX idx_ai_ops_model ON ai_operation_log (model_used, created_at DESC);

-- Per-user budget settings; users without a row get the configured default ($50/day, warning $25).
CREATE TABLE user_budgets (
    user_id                TEXT PRIMARY KEY,
    daily_limit_nano       BIGINT NOT NULL CHECK (daily_limit_nano >= 0),
    warning_threshold_nano BIGINT NOT NULL CHECK (warning_threshold_nano >= 0),
    updated_by             TEXT NOT NULL,
    updated_at             TIMESTAMPTZ NOT NULL DEFAULT now(),
    CHECK (warning_threshold_nano <= daily_limit_nano)
);

-- Per-user, per-UTC-day spend. limit_nano is the limit in force at the last reservation; the
-- reserve statement refreshes it, so a changed limit applies to today's next call at once.
CREATE TABLE budget_days (
    user_id       TEXT NOT NULL,
    day           DATE NOT NULL,
    limit_nano    BIGINT NOT NULL,
    spent_nano    BIGINT NOT NULL DEFAULT 0 CHECK (spent_nano >= 0),
    reserved_nano BIGINT NOT NULL DEFAULT 0 CHECK (reserved_nano >= 0),
    updated_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, day)
);

-- One row per admitted request: the idempotency key for reserve, settle and release.
CREATE TABLE budget_reservations (
    request_id  TEXT PRIMARY KEY,
    user_id     TEXT NOT NULL,
    day         DATE NOT NULL,
    amount_nano BIGINT NOT NULL CHECK (amount_nano >= 0),
    status      TEXT NOT NULL CHECK (status IN ('reserved', 'settled', 'released', 'expired')),
    actual_nano BIGINT CHECK (actual_nano >= 0),
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at  TIMESTAMPTZ NOT NULL,
    closed_at   TIMESTAMPTZ
);
CREATE INDEX budget_reservations_open ON budget_reservations (expires_at) WHERE status = 'reserved';
CREATE INDEX budget_reservations_user_day ON budget_reservations (user_id, day);

CREATE TABLE user_profiles (
    user_id      TEXT PRIMARY KEY,
    display_name TEXT NOT NULL DEFAULT '',
    trust_level  NUMERIC(3, 2) NOT NULL DEFAULT 0.50 CHECK (trust_level BETWEEN 0 AND 1),
    is_creator   BOOLEAN NOT NULL DEFAULT false,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at   TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE feature_toggles (
    toggle_key  TEXT PRIMARY KEY,
    enabled     BOOLEAN NOT NULL DEFAULT false,
    description TEXT NOT NULL DEFAULT '',
    updated_by  TEXT NOT NULL DEFAULT 'migration',
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE approvals (
    approval_id       UUID PRIMARY KEY,
    user_id           TEXT NOT NULL,
    operation_id      TEXT NOT NULL,
    -- hash of the exact request that was held, so an approval runs only that request
    request_hash      TEXT NOT NULL,
    estimated_cost_nano BIGINT NOT NULL CHECK (estimated_cost_nano >= 0),
    reason            TEXT NOT NULL,
    -- what the admin sees: operation, model, size; never the prompt itself
    summary           TEXT NOT NULL DEFAULT '',
    status            TEXT NOT NULL DEFAULT 'pending'
                      CHECK (status IN ('pending', 'approved', 'rejected', 'used', 'expired')),
    decided_by        TEXT,
    decided_at        TIMESTAMPTZ,
    used_request_id   TEXT,
    used_at           TIMESTAMPTZ,
    created_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at        TIMESTAMPTZ NOT NULL
);
CREATE INDEX approvals_pending ON approvals (created_at) WHERE status = 'pending';
CREATE INDEX approvals_user ON approvals (user_id, created_at DESC);

-- +goose Down
DROP TABLE approvals;
DROP TABLE feature_toggles;
DROP TABLE user_profiles;
DROP TABLE budget_reservations;
DROP TABLE budget_days;
DROP TABLE user_budgets;
DROP TABLE ai_operation_log;
DROP TABLE ai_model_routes;
DROP TABLE ai_models;
