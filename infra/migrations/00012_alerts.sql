-- +goose Up
-- Alerts: rules (the standing ones seeded here, operators add their own), each rule's state per
-- subject (a user, a provider, a channel, or '' for the whole system), and every fire and clear.
-- Evaluated by the audit function every minute. Only new tables.
CREATE TABLE alert_rules (
    id          UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    name        TEXT NOT NULL,
    type        TEXT NOT NULL,
    -- USD for spend rules, a fraction for rates, milliseconds for latency, a count otherwise
    threshold   DOUBLE PRECISION NOT NULL CHECK (threshold >= 0),
    severity    TEXT NOT NULL CHECK (severity IN ('warning', 'critical')),
    channel     TEXT NOT NULL DEFAULT 'discord',
    -- An operator rule's own Discord webhook, encrypted (AES-GCM, HELIX_ALERT_WEBHOOK_KEY);
    -- never returned by the API. NULL: #helix-alerts only.
    webhook_sealed BYTEA,
    standing    BOOLEAN NOT NULL DEFAULT false,
    enabled     BOOLEAN NOT NULL DEFAULT true,
    created_by  TEXT NOT NULL DEFAULT 'helix',
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    deleted_at  TIMESTAMPTZ
);
CREATE UNIQUE INDEX alert_rules_standing_type ON alert_rules (type) WHERE standing;

CREATE TABLE alert_state (
    rule_id      UUID NOT NULL REFERENCES alert_rules (id) ON DELETE CASCADE,
    subject      TEXT NOT NULL,
    firing       BOOLEAN NOT NULL,
    since        TIMESTAMPTZ NOT NULL,
    false_streak INTEGER NOT NULL DEFAULT 0,
    value        DOUBLE PRECISION NOT NULL DEFAULT 0,
    PRIMARY KEY (rule_id, subject)
);

CREATE TABLE alert_events (
    id           BIGSERIAL PRIMARY KEY,
    rule_id      UUID NOT NULL REFERENCES alert_rules (id) ON DELETE CASCADE,
    subject      TEXT NOT NULL,
    state        TEXT NOT NULL CHECK (state IN ('fired', 'cleared')),
    value        DOUBLE PRECISION NOT NULL,
    detail       TEXT NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- delivery to the rule's own webhook (rules without one have nothing to deliver)
    delivered_at TIMESTAMPTZ,
    attempts     INTEGER NOT NULL DEFAULT 0,
    last_error   TEXT NOT NULL DEFAULT ''
);
CREATE INDEX alert_events_recent ON alert_events (created_at DESC);
CREATE INDEX alert_events_undelivered ON alert_events (id) WHERE delivered_at IS NULL;

-- Alert states in the audit log (the Health dashboard's alert panel) by kind, not a full scan.
CREATE INDEX audit_entries_kind ON audit_entries (kind, seq);

-- The standing rules, with the seeds' thresholds; operators change them with PATCH. Fixed ids,
-- the same in every deployment (…0001 to …0008), so runbooks and scripts can name them.
INSERT INTO alert_rules (id, name, type, threshold, severity, standing) VALUES
    ('00000000-0000-4000-8000-000000000001', 'High daily spend', 'high_daily_spend', 200, 'warning', true),
    ('00000000-0000-4000-8000-000000000002', 'Budget exceeded', 'budget_exceeded', 0, 'critical', true),
    ('00000000-0000-4000-8000-000000000003', 'High error rate', 'high_error_rate', 0.05, 'critical', true),
    ('00000000-0000-4000-8000-000000000004', 'Slow operations', 'slow_operations', 2000, 'warning', true),
    ('00000000-0000-4000-8000-000000000005', 'Model unavailable', 'model_unavailable', 0, 'critical', true),
    ('00000000-0000-4000-8000-000000000006', 'Cost anomaly', 'cost_anomaly', 2, 'warning', true),
    ('00000000-0000-4000-8000-000000000007', 'Discord backlog', 'discord_backlog', 600, 'warning', true),
    ('00000000-0000-4000-8000-000000000008', 'Step-up attack', 'stepup_attack', 5, 'critical', true);

-- +goose Down
DROP INDEX audit_entries_kind;
DROP TABLE alert_events;
DROP TABLE alert_state;
DROP TABLE alert_rules;
