package postgres_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// The hot-path functions (set-based, item-by-item and single-item) keep their plans for the
// life of a connection (PL/pgSQL caches them) and replan only when a table's statistics
// change. A plan made while the tables were small must still look each item up by key when
// they have grown and no ANALYZE has run yet (a new database's first minutes, or autovacuum
// behind): a scan of a whole table per batch makes every batch slower as the table grows. This
// warms one session's plans on empty tables, grows the tables behind its back with autovacuum
// off, and then counts, inside one transaction of that session, the rows its calls read from
// each table (pg_stat_xact_user_tables).
func TestHotPathFunctionsLookUpByKeyAfterTheTablesGrow(t *testing.T) {
	ctx := context.Background()
	pool := pg.NewPool(t)
	tables := []string{"budget_reservations", "budget_days", "user_budgets", "ai_operation_log"}
	for _, tbl := range tables {
		if _, err := pool.Exec(ctx, "ALTER TABLE "+tbl+" SET (autovacuum_enabled = false)"); err != nil {
			t.Fatal(err)
		}
	}
	conn, err := pgx.Connect(ctx, pg.DirectURL(pool.Config().ConnString()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)

	const size = 4
	batch := func(q interface {
		Exec(context.Context, string, ...any) (pgconn.CommandTag, error)
	}, round int) error {
		ids, users := make([]string, size), make([]string, size)
		for i := range size {
			ids[i], users[i] = fmt.Sprintf("plan-%d-%d", round, i), fmt.Sprintf("plan-u%d", i)
		}
		for _, kind := range []string{"set", "batch"} { // the set-based and the item-by-item functions
			kindIDs := make([]string, size)
			for i := range ids {
				kindIDs[i] = ids[i] + "-" + kind
			}
			if _, err := q.Exec(ctx, strings.ReplaceAll(planReserveSQL, "_set(", "_"+kind+"("), kindIDs, users); err != nil {
				return fmt.Errorf("reserve %s: %w", kind, err)
			}
			if _, err := q.Exec(ctx, strings.ReplaceAll(planFinishSQL, "_set(", "_"+kind+"("), kindIDs, users); err != nil {
				return fmt.Errorf("finish %s: %w", kind, err)
			}
		}
		// The single-item functions, the path of every Lambda call, keep plans the same way.
		id, user := fmt.Sprintf("plan-%d-one", round), "plan-one"
		for _, step := range []string{planReserveOneSQL, planFinishOneSQL, planTodaySQL} {
			if _, err := q.Exec(ctx, step, id, user); err != nil {
				return fmt.Errorf("single item: %w", err)
			}
		}
		return nil
	}
	for round := range 10 { // past PL/pgSQL's five custom plans: the generic ones are kept
		if err := batch(conn, round); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := pool.Exec(ctx, planGrowSQL); err != nil {
		t.Fatal(err)
	}

	// The session's counters of earlier statements are still pending (Postgres flushes them at
	// most once a second): flush them now, so the transaction's view counts only its own batch.
	if _, err := conn.Exec(ctx, `SELECT pg_stat_force_next_flush()`); err != nil {
		t.Fatal(err)
	}
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if err := batch(tx, 100); err != nil {
		t.Fatal(err)
	}
	rows, err := tx.Query(ctx, `
		SELECT relname, seq_scan, seq_tup_read, coalesce(idx_tup_fetch, 0)
		  FROM pg_stat_xact_user_tables WHERE relname = ANY ($1)`, tables)
	if err != nil {
		t.Fatal(err)
	}
	type read struct {
		Table                  string
		SeqScans, SeqRows, Idx int64
	}
	got, err := pgx.CollectRows(rows, pgx.RowToStructByPos[read])
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range got {
		t.Logf("%s: %d sequential scans, %d rows read by them, %d by index", r.Table, r.SeqScans, r.SeqRows, r.Idx)
		// Two batches of 4 and one single item read a handful of rows per table by key; the
		// grown tables hold 20,000.
		if r.SeqScans != 0 || r.SeqRows+r.Idx > 100 {
			t.Errorf("%s: %d sequential scans, %d rows read by them, %d by index, for two batches of %d and one item", r.Table, r.SeqScans, r.SeqRows, r.Idx, size)
		}
	}
}

// planReserveSQL reserves $1 for users $2 (one item each, today) with helix_reserve_set.
const planReserveSQL = `
SELECT count(*) FROM helix_reserve_set($1::text[], $2::text[],
       array_fill(current_date, ARRAY[cardinality($1::text[])]),
       array_fill(1000::bigint, ARRAY[cardinality($1::text[])]), 1000000000000, 100000000000,
       array_fill(now(), ARRAY[cardinality($1::text[])]),
       array_fill(now() + interval '1 hour', ARRAY[cardinality($1::text[])]))`

// planReserveOneSQL, planFinishOneSQL and planTodaySQL reserve, settle and read one item ($1
// of user $2) with the single-item functions.
const (
	planReserveOneSQL = `SELECT * FROM helix_reserve($1, $2, current_date, 1000, 1000000000000, 100000000000, now(), now() + interval '1 hour')`
	planFinishOneSQL  = `SELECT helix_finish('settle', $1, 500, now(), 'email-compose', $2, 'deepseek', 'deepseek', '', 10, 5, 0, 0, 'v1', 1, true, NULL, false, 0, 0, 0)`
	planTodaySQL      = `SELECT * FROM helix_budget_today($2, current_date, 1000000000000, 100000000000) WHERE $1::text IS NOT NULL`
)

// planFinishSQL settles them with helix_finish_set, each with its log row.
const planFinishSQL = `
SELECT count(*) FROM helix_finish_set(
       array_fill('settle'::text, ARRAY[cardinality($1::text[])]), $1::text[],
       array_fill(500::bigint, ARRAY[cardinality($1::text[])]), array_fill(now(), ARRAY[cardinality($1::text[])]),
       array_fill('email-compose'::text, ARRAY[cardinality($1::text[])]), $2::text[],
       array_fill('deepseek'::text, ARRAY[cardinality($1::text[])]), array_fill('deepseek'::text, ARRAY[cardinality($1::text[])]),
       array_fill(''::text, ARRAY[cardinality($1::text[])]), array_fill(10::bigint, ARRAY[cardinality($1::text[])]),
       array_fill(5::bigint, ARRAY[cardinality($1::text[])]), array_fill(0::bigint, ARRAY[cardinality($1::text[])]),
       array_fill(0::bigint, ARRAY[cardinality($1::text[])]), array_fill('v1'::text, ARRAY[cardinality($1::text[])]),
       array_fill(1::bigint, ARRAY[cardinality($1::text[])]), array_fill(true, ARRAY[cardinality($1::text[])]),
       array_fill(NULL::text, ARRAY[cardinality($1::text[])]), array_fill(false, ARRAY[cardinality($1::text[])]),
       array_fill(0::bigint, ARRAY[cardinality($1::text[])]), array_fill(0::bigint, ARRAY[cardinality($1::text[])]),
       array_fill(0::bigint, ARRAY[cardinality($1::text[])]))`

// planGrowSQL gives the tables 20,000 rows each of other users (half of the day rows today's,
// as on a busy day), with no ANALYZE after.
const planGrowSQL = `
INSERT INTO user_budgets (user_id, daily_limit_nano, warning_threshold_nano, updated_by)
SELECT 'grow-u' || g, 1000000000, 500000000, 'test' FROM generate_series(1, 20000) g;
INSERT INTO budget_days (user_id, day, limit_nano, spent_nano, reserved_nano)
SELECT 'grow-u' || (g % 10000), current_date - g / 10000, 1000000000, 100, 0 FROM generate_series(0, 19999) g;
INSERT INTO budget_reservations (request_id, user_id, day, amount_nano, status, actual_nano, created_at, expires_at, closed_at)
SELECT 'grow-' || g, 'grow-u' || (g % 2000), current_date - 1, 1000, 'settled', 100, now(), now(), now() FROM generate_series(1, 20000) g;
INSERT INTO ai_operation_log (request_id, operation_id, user_id, cost_nano, success, created_at)
SELECT 'grow-' || g, 'email-compose', 'grow-u' || (g % 2000), 100, true, now() FROM generate_series(1, 20000) g`
