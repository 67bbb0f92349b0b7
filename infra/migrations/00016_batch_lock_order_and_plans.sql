-- +goose Up
-- Two fixes to the set-based batch functions of 00014; same signatures and results.
--
-- 1. Lock order. helix_reserve_set locked the day rows that already existed, in user order, and
-- only then upserted: a day row another transaction created in between (the first call of the
-- day of a user sorted before one it had locked) was then taken out of order. With two batches
-- in flight, one item-by-item (helix_reserve_batch) and one set-based, each could hold the row
-- the other wanted next: Postgres detected the deadlock after deadlock_timeout and refused one
-- batch, whose items were then written one by one (no money was wrong, but the batch's calls
-- waited a second). Now the upsert alone takes the rows: INSERT ... SELECT ... ORDER BY user
-- inserts or locks each day row in user order, one pass, as helix_reserve_batch and the
-- single-item helix_reserve do, so every path takes the day rows in the same order whether they
-- exist yet or not. A refused item reports its day as of the statement's start, as the
-- single-item function does.
--
-- 2. Plans that stay right as the tables grow. PL/pgSQL keeps a function's plans for the life
-- of a connection and replans only when a table's statistics change. Plans of the set-based
-- functions made on small tables (a new database, before autovacuum's first ANALYZE) read
-- budget_reservations, budget_days and user_budgets whole, with sequential scans or hashed
-- subplans, and kept doing so as the tables grew: at 40,000 reservations their statements
-- took 4-8 ms each, and /v1 at -c 64 on the dev server fell from 5,000 to under 900 req/s
-- until ANALYZE ran.
--   - Sequential scans are off inside both functions, so each table is read through an index.
--   - helix_reserve_set also restricts each table it reads by an = ANY on the batch's own keys
--     (request ids, users, days): the replay check and the user's limits could otherwise be a
--     hashed subplan or hash join over a whole index. The added conditions only repeat what the
--     joins already require, so the results are the same (and the statement is a little faster).
--   - helix_finish_set's reads are already keyed: its locks by = ANY on the request ids, its
--     updates joined to the batch's rows, probed by primary key. Adding = ANY conditions there
--     too cost 0.4 ms per batch of 25 (pgbench), so it only has sequential scans off.
-- TestHotPathFunctionsLookUpByKeyAfterTheTablesGrow warms one session's plans on empty tables,
-- grows the tables to 20,000 rows behind its back, and counts the rows one batch then reads.

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION helix_reserve_set(p_request_ids text[], p_user_ids text[], p_days date[],
                                  p_amounts bigint[], p_default_limit bigint,
                                  p_default_warning bigint, p_nows timestamptz[],
                                  p_expires timestamptz[])
RETURNS TABLE (o_index integer, o_held boolean, o_replayed boolean, o_limit bigint,
               o_warning bigint, o_spent bigint, o_reserved bigint)
LANGUAGE plpgsql
SET enable_seqscan = off
AS $$
BEGIN
    RETURN QUERY
    WITH item AS (
        SELECT t.ord::integer AS ord, t.request_id, t.user_id, t.day, t.amount, t.now_at, t.expires_at
          FROM unnest(p_request_ids, p_user_ids, p_days, p_amounts, p_nows, p_expires) WITH ORDINALITY
               AS t(request_id, user_id, day, amount, now_at, expires_at, ord)
    ), lim AS (
        SELECT i.*, COALESCE(ub.daily_limit_nano, p_default_limit) AS limit_nano,
               COALESCE(ub.warning_threshold_nano, p_default_warning) AS warning_nano,
               EXISTS (SELECT 1 FROM budget_reservations r
                        WHERE r.request_id = i.request_id AND r.request_id = ANY (p_request_ids)) AS replayed
          FROM item i
          LEFT JOIN user_budgets ub ON ub.user_id = i.user_id AND ub.user_id = ANY (p_user_ids)
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
      LEFT JOIN budget_days bd ON bd.user_id = l.user_id AND bd.day = l.day
                            AND bd.user_id = ANY (p_user_ids) AND bd.day = ANY (p_days);
END
$$;
-- +goose StatementEnd

ALTER FUNCTION helix_finish_set(text[], text[], bigint[], timestamptz[], text[], text[], text[], text[], text[], bigint[], bigint[], bigint[], bigint[], text[], bigint[], boolean[], text[], boolean[], bigint[], bigint[], bigint[]) SET enable_seqscan = off;

-- +goose Down
-- helix_reserve_set as migration 00014 made it; both functions without the setting.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION helix_reserve_set(p_request_ids text[], p_user_ids text[], p_days date[],
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

ALTER FUNCTION helix_reserve_set(text[], text[], date[], bigint[], bigint, bigint, timestamptz[], timestamptz[]) RESET ALL;
ALTER FUNCTION helix_finish_set(text[], text[], bigint[], timestamptz[], text[], text[], text[], text[], text[], bigint[], bigint[], bigint[], bigint[], text[], bigint[], boolean[], text[], boolean[], bigint[], bigint[], bigint[]) RESET ALL;
