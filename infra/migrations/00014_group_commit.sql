-- +goose Up
-- Group commit (shared/groupcommit): the reservations, and the settlements with their log rows,
-- of concurrent requests in one process written by one statement and one commit. Each batch
-- function applies the single-item function (00004, 00006) to its items one by one, so every
-- item is checked against its own user's latest budget row exactly as it would be alone, and
-- each returns its own outcome (a refused reservation is a row with o_held false, not an
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

-- +goose Down
DROP FUNCTION helix_finish_batch(text[], text[], bigint[], timestamptz[], text[], text[], text[], text[], text[], bigint[], bigint[], bigint[], bigint[], text[], bigint[], boolean[], text[], boolean[], bigint[], bigint[], bigint[]);
DROP FUNCTION helix_reserve_batch(text[], text[], date[], bigint[], bigint, bigint, timestamptz[], timestamptz[]);
