-- +goose Up
-- The optimize function's recommendations (shared/optimize): what it proposes, why, what it would
-- save, and what it was based on, so that a later change of the thing it targets makes it stale
-- instead of letting an approval overwrite an operator's newer decision.
CREATE TABLE helix_recommendations (
    id                            UUID PRIMARY KEY,
    type                          TEXT NOT NULL CHECK (type IN ('model_switch')),
    -- what it is about: for a model switch, the operation_id of the route
    target                        TEXT NOT NULL,
    -- what approving it does: for a model switch {"primary_model": ..., "fallback_model": ...}
    proposal                      JSONB NOT NULL,
    estimated_monthly_saving_nano BIGINT NOT NULL CHECK (estimated_monthly_saving_nano >= 0),
    -- the numbers behind it (calls, success rates, latencies, tokens, prices), never content
    evidence                      JSONB NOT NULL,
    reasoning                     TEXT NOT NULL,
    -- what it was based on: for a model switch the route's primary and fallback at the time
    based_on                      JSONB NOT NULL,
    status                        TEXT NOT NULL DEFAULT 'pending'
                                  CHECK (status IN ('pending', 'approved', 'rejected', 'stale', 'applied')),
    stale_reason                  TEXT NOT NULL DEFAULT '',
    -- the UTC day of the run that created it, and of the last run that confirmed it
    analysis_day                  DATE NOT NULL,
    refreshed_day                 DATE NOT NULL,
    created_at                    TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at                    TIMESTAMPTZ NOT NULL DEFAULT now(),
    decided_by                    TEXT,
    decided_at                    TIMESTAMPTZ,
    decision_note                 TEXT NOT NULL DEFAULT ''
);
-- At most one pending recommendation per thing: a second run (the same day or the next) refreshes
-- it rather than adding another.
CREATE UNIQUE INDEX helix_recommendations_one_pending ON helix_recommendations (type, target) WHERE status = 'pending';
CREATE INDEX helix_recommendations_status ON helix_recommendations (status, created_at DESC);

-- The optimizer reads a week of ai_operation_log by time: idx_ai_ops_created (00008) serves it;
-- no further index on the log, whose every insert is on the hot path.

-- +goose Down
DROP TABLE helix_recommendations;
