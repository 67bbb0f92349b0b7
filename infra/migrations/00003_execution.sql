-- +goose Up

-- Provider circuit breakers, shared by every Lambda instance. failures counts failed calls since
-- window_started_at; when it reaches the threshold the breaker opens until open_until. After
-- that a trial call is allowed: its failure reopens the breaker at once, its success closes it.
CREATE TABLE provider_breakers (
    provider          TEXT PRIMARY KEY,
    window_started_at TIMESTAMPTZ NOT NULL,
    failures          INTEGER NOT NULL DEFAULT 0 CHECK (failures >= 0),
    open_until        TIMESTAMPTZ,
    last_error        TEXT NOT NULL DEFAULT '',
    updated_at        TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Kill switches. An environment variable of the same name overrides the row.
INSERT INTO feature_toggles (toggle_key, enabled, description) VALUES
    ('DISABLE_DEEPSEEK',        false, 'Route around DeepSeek: its operations fail over to the next model'),
    ('DISABLE_GEMINI',          false, 'Route around Gemini: its operations fail over to the next model'),
    ('DISABLE_ANTHROPIC',       false, 'Route around Anthropic (the Claude emergency fallback)'),
    ('DISABLE_SYNTHESIS',       false, 'Stop memory synthesis jobs'),
    ('ENABLE_MAINTENANCE_MODE', false, 'Every operation and write answers 503 maintenance; reads still work');

-- +goose Down
DELETE FROM feature_toggles WHERE toggle_key IN
    ('DISABLE_DEEPSEEK', 'DISABLE_GEMINI', 'DISABLE_ANTHROPIC', 'DISABLE_SYNTHESIS', 'ENABLE_MAINTENANCE_MODE');
DROP TABLE provider_breakers;
