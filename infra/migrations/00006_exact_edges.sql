-- +goose Up
-- Exact money at the edges: cache-write prices and usage, and calls billed although they failed.
-- Backward compatible with the previous release: new columns have defaults, and helix_finish
-- gains an overload with the new arguments while the old one stays for code still calling it.

-- Prompt-cache writes, per model: Anthropic bills a 5-minute write at 1.25× and a 1-hour write
-- at 2× the input price. Providers that bill writes as plain input report no writes, so their
-- write prices (set to the input price) never apply.
ALTER TABLE ai_models
    ADD COLUMN cache_write_nano_per_mtok    BIGINT NOT NULL DEFAULT 0 CHECK (cache_write_nano_per_mtok >= 0),
    ADD COLUMN cache_write_1h_nano_per_mtok BIGINT NOT NULL DEFAULT 0 CHECK (cache_write_1h_nano_per_mtok >= 0);
UPDATE ai_models SET cache_write_nano_per_mtok = input_nano_per_mtok, cache_write_1h_nano_per_mtok = input_nano_per_mtok;
-- Claude Haiku 4.5: $1.25 / $2.00 per 1M written tokens (Anthropic's price page, late 2026).
UPDATE ai_models SET cache_write_nano_per_mtok = 1250000000, cache_write_1h_nano_per_mtok = 2000000000
 WHERE model_key = 'claude' AND provider = 'anthropic';

ALTER TABLE ai_model_prices
    ADD COLUMN cache_write_nano_per_mtok    BIGINT NOT NULL DEFAULT 0 CHECK (cache_write_nano_per_mtok >= 0),
    ADD COLUMN cache_write_1h_nano_per_mtok BIGINT NOT NULL DEFAULT 0 CHECK (cache_write_1h_nano_per_mtok >= 0);
UPDATE ai_model_prices p
   SET cache_write_nano_per_mtok = m.cache_write_nano_per_mtok,
       cache_write_1h_nano_per_mtok = m.cache_write_1h_nano_per_mtok
  FROM ai_models m
 WHERE p.model_key = m.model_key AND p.price_version = m.price_version;

-- cost_nano stays the whole cost of the call; failed_attempts_cost_nano is the part of it that
-- attempts billed before the one whose usage the row shows (a provider that billed an answer it
-- then withheld, and the call failed over).
ALTER TABLE ai_operation_log
    ADD COLUMN cache_write_tokens        INTEGER NOT NULL DEFAULT 0,
    ADD COLUMN cache_write_1h_tokens     INTEGER NOT NULL DEFAULT 0,
    ADD COLUMN failed_attempts_cost_nano BIGINT NOT NULL DEFAULT 0 CHECK (failed_attempts_cost_nano >= 0);

-- +goose StatementBegin
-- helix_finish as in 00004, with the cache-write tokens and the failed attempts' cost logged.
CREATE FUNCTION helix_finish(p_outcome text, p_request_id text, p_cost bigint, p_now timestamptz,
                             p_operation_id text, p_user_id text, p_model text, p_provider text,
                             p_provider_request_id text, p_input_tokens bigint, p_output_tokens bigint,
                             p_cached_input_tokens bigint, p_reasoning_tokens bigint,
                             p_price_version text, p_latency_ms bigint, p_success boolean,
                             p_error_code text, p_fallback_used boolean,
                             p_cache_write_tokens bigint, p_cache_write_1h_tokens bigint,
                             p_failed_attempts_cost bigint)
RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    v_closed integer := 0;
BEGIN
    IF p_outcome = 'settle' THEN
        WITH old AS (
            SELECT r.request_id, r.user_id, r.day, r.amount_nano, r.status
              FROM budget_reservations r
             WHERE r.request_id = p_request_id AND r.status IN ('reserved', 'expired')
               FOR UPDATE
        ), closed AS (
            UPDATE budget_reservations b
               SET status = 'settled', actual_nano = p_cost, closed_at = p_now
              FROM old
             WHERE b.request_id = old.request_id
            RETURNING old.user_id, old.day, old.amount_nano, old.status AS was
        ), spent AS (
            UPDATE budget_days d
               SET reserved_nano = d.reserved_nano - CASE WHEN closed.was = 'reserved' THEN closed.amount_nano ELSE 0 END,
                   spent_nano    = d.spent_nano + p_cost,
                   updated_at    = now()
              FROM closed
             WHERE d.user_id = closed.user_id AND d.day = closed.day
            RETURNING 1
        )
        SELECT count(*) INTO v_closed FROM closed;
    ELSIF p_outcome = 'release' THEN
        WITH closed AS (
            UPDATE budget_reservations r
               SET status = 'released', closed_at = p_now
             WHERE r.request_id = p_request_id AND r.status = 'reserved'
            RETURNING r.user_id, r.day, r.amount_nano
        ), freed AS (
            UPDATE budget_days d
               SET reserved_nano = d.reserved_nano - closed.amount_nano, updated_at = now()
              FROM closed
             WHERE d.user_id = closed.user_id AND d.day = closed.day
            RETURNING 1
        )
        SELECT count(*) INTO v_closed FROM closed;
    ELSIF p_outcome <> 'log' THEN
        RAISE EXCEPTION 'helix_finish: unknown outcome %', p_outcome;
    END IF;

    IF p_operation_id IS NOT NULL THEN
        INSERT INTO ai_operation_log (request_id, operation_id, user_id, model_used, provider,
                provider_request_id, input_tokens, output_tokens, cached_input_tokens, reasoning_tokens,
                cache_write_tokens, cache_write_1h_tokens, cost_nano, failed_attempts_cost_nano,
                price_version, latency_ms, success, error_code, fallback_used, created_at)
        VALUES (p_request_id, p_operation_id, p_user_id, NULLIF(p_model, ''), NULLIF(p_provider, ''),
                NULLIF(p_provider_request_id, ''), p_input_tokens, p_output_tokens, p_cached_input_tokens,
                p_reasoning_tokens, p_cache_write_tokens, p_cache_write_1h_tokens,
                CASE WHEN p_outcome = 'settle' THEN p_cost ELSE 0 END,
                CASE WHEN p_outcome = 'settle' THEN p_failed_attempts_cost ELSE 0 END,
                NULLIF(p_price_version, ''), p_latency_ms, p_success, NULLIF(p_error_code, ''),
                p_fallback_used, p_now)
        ON CONFLICT (request_id) DO NOTHING;
    END IF;
    RETURN v_closed > 0;
END
$$;
-- +goose StatementEnd

-- +goose Down
DROP FUNCTION helix_finish(text, text, bigint, timestamptz, text, text, text, text, text, bigint, bigint, bigint, bigint, text, bigint, boolean, text, boolean, bigint, bigint, bigint);
ALTER TABLE ai_operation_log DROP COLUMN failed_attempts_cost_nano, DROP COLUMN cache_write_1h_tokens, DROP COLUMN cache_write_tokens;
ALTER TABLE ai_model_prices DROP COLUMN cache_write_1h_nano_per_mtok, DROP COLUMN cache_write_nano_per_mtok;
ALTER TABLE ai_models DROP COLUMN cache_write_1h_nano_per_mtok, DROP COLUMN cache_write_nano_per_mtok;
