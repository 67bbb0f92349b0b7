-- +goose Up
-- Group commit (shared/groupcommit): the reservations, and the settlements with their log rows,
-- of concurrent requests in one process written by one statement and one commit. The *_batch
-- functions apply the single-item function (00004, 00006) to their items one by one; the *_set
-- functions below do the same in one set-based statement for the usual batch (no user or
-- request id twice). Either way every item is checked against its own user's latest budget row
-- exactly as it would be alone, and each returns its own outcome (a refused reservation is a row with o_held false, not an
-- error). An error in any item fails the whole statement and commits nothing; the caller then
-- writes the items one at a time, so the error reaches only the item that caused it.
--
-- Items run ordered by user id, and within a user in arrival order: every batch locks the
-- budget_days rows it touches in the same order, so two batches (of this process or another)
-- cannot deadlock on them, and one user's reservations are admitted in the order they came.
-- A finishing batch first locks all its reservation rows, in request id order, and only then
-- the day rows: a replayed settle in one batch and its twin in another (or alone) would
-- otherwise take the reservation and the day row in opposite orders and deadlock (an item
-- alone takes its reservation, then its day row: the same order).
-- Backward compatible: the previous release never calls these functions.

-- +goose StatementBegin
CREATE FUNCTION helix_reserve_batch(p_request_ids text[], p_user_ids text[], p_days date[],
                                    p_amounts bigint[], p_default_limit bigint,
                                    p_default_warning bigint, p_nows timestamptz[],
                                    p_expires timestamptz[])
RETURNS TABLE (o_index integer, o_held boolean, o_replayed boolean, o_limit bigint,
               o_warning bigint, o_spent bigint, o_reserved bigint)
LANGUAGE plpgsql AS $$
DECLARE
    i integer;
BEGIN
    FOR i IN SELECT u.ord FROM unnest(p_user_ids) WITH ORDINALITY AS u(uid, ord) ORDER BY u.uid, u.ord LOOP
        RETURN QUERY
        SELECT i, r.o_held, r.o_replayed, r.o_limit, r.o_warning, r.o_spent, r.o_reserved
          FROM helix_reserve(p_request_ids[i], p_user_ids[i], p_days[i], p_amounts[i],
                             p_default_limit, p_default_warning, p_nows[i], p_expires[i]) AS r;
    END LOOP;
END
$$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE FUNCTION helix_finish_batch(p_outcomes text[], p_request_ids text[], p_costs bigint[],
                                   p_nows timestamptz[], p_operation_ids text[], p_user_ids text[],
                                   p_models text[], p_providers text[],
                                   p_provider_request_ids text[], p_input_tokens bigint[],
                                   p_output_tokens bigint[], p_cached_input_tokens bigint[],
                                   p_reasoning_tokens bigint[], p_price_versions text[],
                                   p_latencies_ms bigint[], p_successes boolean[],
                                   p_error_codes text[], p_fallbacks_used boolean[],
                                   p_cache_write_tokens bigint[], p_cache_write_1h_tokens bigint[],
                                   p_failed_attempts_costs bigint[])
RETURNS TABLE (o_index integer, o_closed boolean)
LANGUAGE plpgsql AS $$
DECLARE
    i integer;
BEGIN
    PERFORM 1 FROM budget_reservations r
      WHERE r.request_id = ANY (p_request_ids)
      ORDER BY r.request_id
        FOR UPDATE;
    FOR i IN SELECT u.ord FROM unnest(p_user_ids) WITH ORDINALITY AS u(uid, ord) ORDER BY u.uid, u.ord LOOP
        o_index := i;
        o_closed := helix_finish(p_outcomes[i], p_request_ids[i], p_costs[i], p_nows[i],
                                 p_operation_ids[i], p_user_ids[i], p_models[i], p_providers[i],
                                 p_provider_request_ids[i], p_input_tokens[i], p_output_tokens[i],
                                 p_cached_input_tokens[i], p_reasoning_tokens[i],
                                 p_price_versions[i], p_latencies_ms[i], p_successes[i],
                                 p_error_codes[i], p_fallbacks_used[i], p_cache_write_tokens[i],
                                 p_cache_write_1h_tokens[i], p_failed_attempts_costs[i]);
        RETURN NEXT;
    END LOOP;
END
$$;
-- +goose StatementEnd

-- +goose StatementBegin
-- helix_reserve_set is helix_reserve_batch for the common batch whose items are all of different
-- users and request ids (the caller checks): one set-based statement instead of one per item,
-- with the same conditions as helix_reserve on each user's locked latest day row. The day rows
-- that exist are locked first, in user order, so it takes locks in the order the other batch
-- functions do.
CREATE FUNCTION helix_reserve_set(p_request_ids text[], p_user_ids text[], p_days date[],
                                  p_amounts bigint[], p_default_limit bigint,
                                  p_default_warning bigint, p_nows timestamptz[],
                                  p_expires timestamptz[])
RETURNS TABLE (o_index integer, o_held boolean, o_replayed boolean, o_limit bigint,
               o_warning bigint, o_spent bigint, o_reserved bigint)
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM 1 FROM budget_days d
      JOIN unnest(p_user_ids, p_days) AS k(user_id, day) ON d.user_id = k.user_id AND d.day = k.day
      ORDER BY d.user_id, d.day
        FOR UPDATE OF d;
    RETURN QUERY
    WITH item AS (
        SELECT t.ord::integer AS ord, t.request_id, t.user_id, t.day, t.amount, t.now_at, t.expires_at
          FROM unnest(p_request_ids, p_user_ids, p_days, p_amounts, p_nows, p_expires) WITH ORDINALITY
               AS t(request_id, user_id, day, amount, now_at, expires_at, ord)
    ), lim AS (
        SELECT i.*, COALESCE(ub.daily_limit_nano, p_default_limit) AS limit_nano,
               COALESCE(ub.warning_threshold_nano, p_default_warning) AS warning_nano,
               EXISTS (SELECT 1 FROM budget_reservations r WHERE r.request_id = i.request_id) AS replayed
          FROM item i
          LEFT JOIN user_budgets ub ON ub.user_id = i.user_id
    ), admitted AS (
        INSERT INTO budget_days AS d (user_id, day, limit_nano, spent_nano, reserved_nano)
        SELECT l.user_id, l.day, l.limit_nano, 0, l.amount
          FROM lim l
         WHERE NOT l.replayed AND l.amount <= l.limit_nano
         ORDER BY l.user_id, l.day
        ON CONFLICT (user_id, day) DO UPDATE
           SET reserved_nano = d.reserved_nano + EXCLUDED.reserved_nano,
               limit_nano    = EXCLUDED.limit_nano,
               updated_at    = now()
         WHERE d.spent_nano + d.reserved_nano + EXCLUDED.reserved_nano <= EXCLUDED.limit_nano
        RETURNING d.user_id, d.day, d.spent_nano, d.reserved_nano
    ), held AS (
        INSERT INTO budget_reservations (request_id, user_id, day, amount_nano, status, created_at, expires_at)
        SELECT l.request_id, l.user_id, l.day, l.amount, 'reserved', l.now_at, l.expires_at
          FROM lim l
          JOIN admitted a ON a.user_id = l.user_id AND a.day = l.day
        RETURNING request_id
    )
    SELECT l.ord,
           EXISTS (SELECT 1 FROM held h WHERE h.request_id = l.request_id),
           l.replayed, l.limit_nano, l.warning_nano,
           COALESCE(a.spent_nano, bd.spent_nano, 0), COALESCE(a.reserved_nano, bd.reserved_nano, 0)
      FROM lim l
      LEFT JOIN admitted a ON a.user_id = l.user_id AND a.day = l.day
      LEFT JOIN budget_days bd ON bd.user_id = l.user_id AND bd.day = l.day;
END
$$;
-- +goose StatementEnd

-- +goose StatementBegin
-- helix_finish_set is helix_finish_batch for a batch whose request ids are all different (the
-- caller checks): set-based, with helix_finish's rules for each item. It locks the
-- reservation rows (request id order), then their day rows (user order), then writes.
CREATE FUNCTION helix_finish_set(p_outcomes text[], p_request_ids text[], p_costs bigint[],
                                 p_nows timestamptz[], p_operation_ids text[], p_user_ids text[],
                                 p_models text[], p_providers text[],
                                 p_provider_request_ids text[], p_input_tokens bigint[],
                                 p_output_tokens bigint[], p_cached_input_tokens bigint[],
                                 p_reasoning_tokens bigint[], p_price_versions text[],
                                 p_latencies_ms bigint[], p_successes boolean[],
                                 p_error_codes text[], p_fallbacks_used boolean[],
                                 p_cache_write_tokens bigint[], p_cache_write_1h_tokens bigint[],
                                 p_failed_attempts_costs bigint[])
RETURNS TABLE (o_index integer, o_closed boolean)
LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM unnest(p_outcomes) AS o(v) WHERE o.v NOT IN ('settle', 'release', 'log')) THEN
        RAISE EXCEPTION 'helix_finish_set: unknown outcome';
    END IF;
    PERFORM 1 FROM budget_reservations r
      WHERE r.request_id = ANY (p_request_ids)
      ORDER BY r.request_id
        FOR UPDATE;
    PERFORM 1 FROM budget_days d
      JOIN (SELECT DISTINCT r.user_id, r.day FROM budget_reservations r
             WHERE r.request_id = ANY (p_request_ids)) AS k ON d.user_id = k.user_id AND d.day = k.day
      ORDER BY d.user_id, d.day
        FOR UPDATE OF d;
    RETURN QUERY
    WITH item AS (
        SELECT t.*
          FROM unnest(p_outcomes, p_request_ids, p_costs, p_nows, p_operation_ids, p_user_ids, p_models,
                      p_providers, p_provider_request_ids, p_input_tokens, p_output_tokens,
                      p_cached_input_tokens, p_reasoning_tokens, p_price_versions, p_latencies_ms,
                      p_successes, p_error_codes, p_fallbacks_used, p_cache_write_tokens,
                      p_cache_write_1h_tokens, p_failed_attempts_costs) WITH ORDINALITY
               AS t(outcome, request_id, cost, now_at, operation_id, user_id, model, provider,
                    provider_request_id, input_tokens, output_tokens, cached_input_tokens,
                    reasoning_tokens, price_version, latency_ms, success, error_code, fallback_used,
                    cache_write_tokens, cache_write_1h_tokens, failed_attempts_cost, ord)
    ), old AS (
        -- each reservation's status before this statement (a data-modifying WITH sees its
        -- statement's snapshot): one the sweep expired no longer holds its amount
        SELECT r.request_id, r.status AS was
          FROM budget_reservations r
          JOIN item i ON i.request_id = r.request_id
    ), closed AS (
        UPDATE budget_reservations b
           SET status      = CASE WHEN i.outcome = 'settle' THEN 'settled' ELSE 'released' END,
               actual_nano = CASE WHEN i.outcome = 'settle' THEN i.cost ELSE b.actual_nano END,
               closed_at   = i.now_at
          FROM item i
          JOIN old o ON o.request_id = i.request_id
         WHERE b.request_id = i.request_id
           AND ((i.outcome = 'settle' AND o.was IN ('reserved', 'expired'))
             OR (i.outcome = 'release' AND o.was = 'reserved'))
        RETURNING b.request_id, b.user_id, b.day, i.outcome, i.cost, b.amount_nano, o.was
    ), per_day AS (
        SELECT c.user_id, c.day,
               sum(CASE WHEN c.was = 'reserved' THEN c.amount_nano ELSE 0 END)::bigint AS freed,
               sum(CASE WHEN c.outcome = 'settle' THEN c.cost ELSE 0 END)::bigint AS spent
          FROM closed c
         GROUP BY c.user_id, c.day
    ), days AS (
        UPDATE budget_days d
           SET reserved_nano = d.reserved_nano - p.freed,
               spent_nano    = d.spent_nano + p.spent,
               updated_at    = now()
          FROM per_day p
         WHERE d.user_id = p.user_id AND d.day = p.day
        RETURNING 1
    ), logged AS (
        INSERT INTO ai_operation_log (request_id, operation_id, user_id, model_used, provider,
                provider_request_id, input_tokens, output_tokens, cached_input_tokens, reasoning_tokens,
                cache_write_tokens, cache_write_1h_tokens, cost_nano, failed_attempts_cost_nano,
                price_version, latency_ms, success, error_code, fallback_used, created_at)
        SELECT i.request_id, i.operation_id, i.user_id, NULLIF(i.model, ''), NULLIF(i.provider, ''),
               NULLIF(i.provider_request_id, ''), i.input_tokens, i.output_tokens, i.cached_input_tokens,
               i.reasoning_tokens, i.cache_write_tokens, i.cache_write_1h_tokens,
               CASE WHEN i.outcome = 'settle' THEN i.cost ELSE 0 END,
               CASE WHEN i.outcome = 'settle' THEN i.failed_attempts_cost ELSE 0 END,
               NULLIF(i.price_version, ''), i.latency_ms, i.success, NULLIF(i.error_code, ''),
               i.fallback_used, i.now_at
          FROM item i
         WHERE i.operation_id IS NOT NULL
         ORDER BY i.ord
        ON CONFLICT (request_id) DO NOTHING
        RETURNING 1
    )
    SELECT i.ord::integer, EXISTS (SELECT 1 FROM closed c WHERE c.request_id = i.request_id)
      FROM item i;
END
$$;
-- +goose StatementEnd

-- +goose Down
DROP FUNCTION helix_finish_set(text[], text[], bigint[], timestamptz[], text[], text[], text[], text[], text[], bigint[], bigint[], bigint[], bigint[], text[], bigint[], boolean[], text[], boolean[], bigint[], bigint[], bigint[]);
DROP FUNCTION helix_reserve_set(text[], text[], date[], bigint[], bigint, bigint, timestamptz[], timestamptz[]);
DROP FUNCTION helix_finish_batch(text[], text[], bigint[], timestamptz[], text[], text[], text[], text[], text[], bigint[], bigint[], bigint[], bigint[], text[], bigint[], boolean[], text[], boolean[], bigint[], bigint[], bigint[]);
DROP FUNCTION helix_reserve_batch(text[], text[], date[], bigint[], bigint, bigint, timestamptz[], timestamptz[]);
