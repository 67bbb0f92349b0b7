-- +goose Up
-- Model administration (PUT /admin/models/{key}) and approvals that a re-sent request finds.
-- Backward compatible with the previous release: only new tables, a new column with a default,
-- and an index; code that does not know them keeps working.

-- Every price a model has had. ai_models holds the current one (what the router reads); a price
-- change closes the current row here and opens a new version, effective from the change. Logged
-- calls keep the price_version they were charged at, and that version stays queryable here.
CREATE TABLE ai_model_prices (
    model_key                  TEXT NOT NULL REFERENCES ai_models (model_key),
    price_version              TEXT NOT NULL,
    input_nano_per_mtok        BIGINT NOT NULL CHECK (input_nano_per_mtok >= 0),
    output_nano_per_mtok       BIGINT NOT NULL CHECK (output_nano_per_mtok >= 0),
    cached_input_nano_per_mtok BIGINT NOT NULL CHECK (cached_input_nano_per_mtok >= 0),
    effective_from             TIMESTAMPTZ NOT NULL,
    -- NULL for the version in force
    effective_until            TIMESTAMPTZ,
    created_by                 TEXT NOT NULL,
    PRIMARY KEY (model_key, price_version),
    CHECK (effective_until IS NULL OR effective_until >= effective_from)
);
CREATE UNIQUE INDEX ai_model_prices_current ON ai_model_prices (model_key) WHERE effective_until IS NULL;

INSERT INTO ai_model_prices (model_key, price_version, input_nano_per_mtok, output_nano_per_mtok,
                             cached_input_nano_per_mtok, effective_from, created_by)
SELECT model_key, price_version, input_nano_per_mtok, output_nano_per_mtok,
       cached_input_nano_per_mtok, updated_at, updated_by
  FROM ai_models;

-- Whether an ordinary user may name the model directly (model "deepseek" on /v1) rather than
-- through an operation's route. Admins always may. The emergency model is not, by default: it is
-- the expensive last resort, not a model to choose.
ALTER TABLE ai_models ADD COLUMN direct_access BOOLEAN NOT NULL DEFAULT true;
UPDATE ai_models SET direct_access = false WHERE is_emergency;

-- One pending approval per held request, so a client re-sending the request while it waits gets
-- the same approval back. Duplicates made before this index (each re-send made a new approval)
-- are superseded by the newest.
UPDATE approvals a SET status = 'expired'
 WHERE a.status = 'pending'
   AND EXISTS (SELECT 1 FROM approvals b
                WHERE b.status = 'pending' AND b.user_id = a.user_id
                  AND b.operation_id = a.operation_id AND b.request_hash = a.request_hash
                  AND (b.created_at, b.approval_id) > (a.created_at, a.approval_id));
CREATE UNIQUE INDEX approvals_one_pending ON approvals (user_id, operation_id, request_hash)
 WHERE status = 'pending';

-- +goose Down
DROP INDEX approvals_one_pending;
ALTER TABLE ai_models DROP COLUMN direct_access;
DROP TABLE ai_model_prices;
