package postgres

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/helixhq/helix/shared/budget"
	"github.com/helixhq/helix/shared/groupcommit"
	"github.com/helixhq/helix/shared/oplog"
)

// Group commit of the hot path (shared/groupcommit, migration 00014): a batch of one is the
// single-item statement, unchanged; a larger batch is one call of the batch function; a batch
// statement that Postgres refused (a *pgconn.PgError: it rolled back, nothing was written) is
// written again one item at a time, so its error reaches only the item that caused it. Any other
// error (a connection lost on the way back) is every item's: its outcome is unknown, and the
// caller resolves it as it would alone, by sending the item again under the same request id.

// reserveItem is one reservation as its caller made it, with its own clock reading.
type reserveItem struct {
	r   budget.Reservation
	now time.Time
}

// reserveRow is helix_reserve's answer for one item.
type reserveRow struct {
	held, replayed                  bool
	limit, warning, spent, reserved int64
}

// The batch statements: the set-based functions serve the common batch (every item a
// different user and request id for reservations, a different request id for settlements);
// the *_batch functions, item by item, serve any batch.
const (
	reserveBatchSQL = `SELECT o_index, o_held, o_replayed, o_limit, o_warning, o_spent, o_reserved
  FROM helix_reserve_batch($1, $2, $3, $4, $5, $6, $7, $8)`
	reserveSetSQL = `SELECT o_index, o_held, o_replayed, o_limit, o_warning, o_spent, o_reserved
  FROM helix_reserve_set($1, $2, $3, $4, $5, $6, $7, $8)`
)

// flushReserves writes a batch of reservations.
func (l *Ledger) flushReserves(ctx context.Context, items []reserveItem) []groupcommit.Result[reserveRow] {
	out := make([]groupcommit.Result[reserveRow], len(items))
	if len(items) == 1 {
		out[0].Value, out[0].Err = l.reserveOne(ctx, items[0])
		return out
	}
	n := len(items)
	ids, users := make([]string, n), make([]string, n)
	days, amounts := make([]pgtype.Date, n), make([]int64, n)
	nows, expires := make([]time.Time, n), make([]time.Time, n)
	for i, it := range items {
		ids[i], users[i], amounts[i] = it.r.RequestID, it.r.UserID, int64(it.r.Amount)
		days[i], nows[i], expires[i] = pgDate(budget.DateOf(it.now)), it.now, it.now.Add(ttlOf(it.r))
	}
	sql := reserveBatchSQL
	if distinct(ids) && distinct(users) {
		sql = reserveSetSQL
	}
	rows, err := l.pool.Query(ctx, sql, ids, users, days, amounts,
		int64(l.defaults.DailyLimit), int64(l.defaults.Warning), nows, expires)
	if err == nil {
		if err = collectIndexed(rows, out, func(row *reserveRow) []any {
			return []any{&row.held, &row.replayed, &row.limit, &row.warning, &row.spent, &row.reserved}
		}); err == nil {
			return out
		}
	}
	return eachOnRefusal(ctx, items, err, l.reserveOne, l.batchRefused)
}

// finishItem is one Operations.Finish call.
type finishItem struct {
	outcome string
	rec     oplog.Record
	now     time.Time
}

const (
	finishBatchSQL = `SELECT o_index, o_closed FROM helix_finish_batch($1, $2, $3, $4, $5, $6, $7, $8, $9, $10,
  $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21)`
	finishSetSQL = `SELECT o_index, o_closed FROM helix_finish_set($1, $2, $3, $4, $5, $6, $7, $8, $9, $10,
  $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21)`
)

// flushFinishes writes a batch of operation outcomes (each closing its reservation and writing
// its log row, as helix_finish does alone).
func (o *Operations) flushFinishes(ctx context.Context, items []finishItem) []groupcommit.Result[bool] {
	out := make([]groupcommit.Result[bool], len(items))
	if len(items) == 1 {
		out[0].Value, out[0].Err = o.finishOne(ctx, items[0])
		return out
	}
	n := len(items)
	var c finishColumns
	c.grow(n)
	for _, it := range items {
		c.add(it)
	}
	sql := finishBatchSQL
	if distinct(c.requestIDs) {
		sql = finishSetSQL
	}
	rows, err := o.pool.Query(ctx, sql, c.outcomes, c.requestIDs, c.costs, c.nows, c.operations,
		c.users, c.models, c.providers, c.providerRequests, c.in, c.out, c.cached, c.reasoning,
		c.priceVersions, c.latencies, c.successes, c.errorCodes, c.fallbacks, c.writes, c.writes1h, c.failed)
	if err == nil {
		if err = collectIndexed(rows, out, func(closed *bool) []any { return []any{closed} }); err == nil {
			return out
		}
	}
	return eachOnRefusal(ctx, items, err, o.finishOne, o.batchRefused)
}

func (o *Operations) finishOne(ctx context.Context, it finishItem) (bool, error) {
	return finish(ctx, o.pool, it.outcome, it.rec.RequestID, it.rec.Cost, it.now, &it.rec)
}

// finishColumns are helix_finish_batch's parameters, one array per column.
type finishColumns struct {
	outcomes, requestIDs, operations, users, models, providers, providerRequests []string
	priceVersions, errorCodes                                                    []string
	costs, in, out, cached, reasoning, latencies, writes, writes1h, failed       []int64
	nows                                                                         []time.Time
	successes, fallbacks                                                         []bool
}

func (c *finishColumns) grow(n int) {
	c.outcomes, c.requestIDs, c.operations = make([]string, 0, n), make([]string, 0, n), make([]string, 0, n)
	c.users, c.models, c.providers = make([]string, 0, n), make([]string, 0, n), make([]string, 0, n)
	c.providerRequests, c.priceVersions, c.errorCodes = make([]string, 0, n), make([]string, 0, n), make([]string, 0, n)
	c.costs, c.in, c.out, c.cached = make([]int64, 0, n), make([]int64, 0, n), make([]int64, 0, n), make([]int64, 0, n)
	c.reasoning, c.latencies, c.writes = make([]int64, 0, n), make([]int64, 0, n), make([]int64, 0, n)
	c.writes1h, c.failed = make([]int64, 0, n), make([]int64, 0, n)
	c.nows, c.successes, c.fallbacks = make([]time.Time, 0, n), make([]bool, 0, n), make([]bool, 0, n)
}

// add appends one item's values, as finish passes them for a record.
func (c *finishColumns) add(it finishItem) {
	r, u := it.rec, it.rec.Usage
	c.outcomes, c.requestIDs, c.costs = append(c.outcomes, it.outcome), append(c.requestIDs, r.RequestID), append(c.costs, int64(r.Cost))
	c.nows, c.operations, c.users = append(c.nows, it.now), append(c.operations, r.OperationID), append(c.users, r.UserID)
	c.models, c.providers = append(c.models, r.Model), append(c.providers, r.Provider)
	c.providerRequests = append(c.providerRequests, r.ProviderRequestID)
	c.in, c.out = append(c.in, u.InputTokens), append(c.out, u.OutputTokens)
	c.cached, c.reasoning = append(c.cached, u.CachedInputTokens), append(c.reasoning, u.ReasoningTokens)
	c.priceVersions, c.latencies = append(c.priceVersions, r.PriceVersion), append(c.latencies, r.Latency.Milliseconds())
	c.successes, c.errorCodes = append(c.successes, r.Success), append(c.errorCodes, r.ErrorCode)
	c.fallbacks, c.writes = append(c.fallbacks, r.FallbackUsed), append(c.writes, u.CacheWriteTokens)
	c.writes1h, c.failed = append(c.writes1h, u.CacheWrite1hTokens), append(c.failed, int64(r.FailedAttemptsCost))
}

// collectIndexed reads a batch function's rows, each its item's 1-based index (o_index) and
// then the columns dest names, into out; every item must have exactly one row.
func collectIndexed[R any](rows pgx.Rows, out []groupcommit.Result[R], dest func(*R) []any) error {
	defer rows.Close()
	seen := 0
	for rows.Next() {
		var idx int
		var v R
		if err := rows.Scan(append([]any{&idx}, dest(&v)...)...); err != nil {
			return err
		}
		if idx < 1 || idx > len(out) {
			return errors.New("batch: a row for an index outside the batch")
		}
		out[idx-1].Value = v
		seen++
	}
	if err := rows.Err(); err != nil {
		return err
	}
	if seen != len(out) {
		return errors.New("batch: fewer rows than items")
	}
	return nil
}

// eachOnRefusal answers a failed batch: when Postgres refused the statement (nothing of it was
// written), each item is written alone, so only the item at fault fails; any other error leaves
// the batch's outcome unknown and is every item's error.
// refused, when set, is told of each refused batch (tests watch that a batch that should pass
// did pass, rather than succeed item by item after a refusal).
func eachOnRefusal[T, R any](ctx context.Context, items []T, err error, one func(context.Context, T) (R, error), refused func(error)) []groupcommit.Result[R] {
	out := make([]groupcommit.Result[R], len(items))
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		for i := range out {
			out[i].Err = err
		}
		return out
	}
	if refused != nil {
		refused(err)
	}
	for i, it := range items {
		out[i].Value, out[i].Err = one(ctx, it)
	}
	return out
}

func ttlOf(r budget.Reservation) time.Duration {
	if r.TTL <= 0 {
		return 5 * time.Minute
	}
	return r.TTL
}

// todayItem is one Ledger.Today call: whose day, and which.
type todayItem struct {
	userID string
	date   time.Time // budget.DateOf the call's time
}

// todayRow is a user's day as helix_budget_today gives it.
type todayRow struct{ limit, warning, spent, reserved int64 }

// todayBatchSQL is helix_budget_today (migration 00004) for many users at once: the same
// defaults for users without their own limits, zeros for a day without a row. It is a plain
// query rather than a function, so each batch is planned with its own arrays (no plan kept from
// when the tables were small); both joins are by primary key.
const todayBatchSQL = `
SELECT k.ord::integer,
       COALESCE(ub.daily_limit_nano, $3), COALESCE(ub.warning_threshold_nano, $4),
       COALESCE(d.spent_nano, 0::bigint), COALESCE(d.reserved_nano, 0::bigint)
  FROM unnest($1::text[], $2::date[]) WITH ORDINALITY AS k(user_id, day, ord)
  LEFT JOIN user_budgets ub ON ub.user_id = k.user_id
  LEFT JOIN budget_days d ON d.user_id = k.user_id AND d.day = k.day`

// flushTodays reads a batch of budget days with one query (a lone read with the single-user
// one). A read changes nothing, so a refused batch is simply read again one user at a time.
func (l *Ledger) flushTodays(ctx context.Context, items []todayItem) []groupcommit.Result[todayRow] {
	out := make([]groupcommit.Result[todayRow], len(items))
	if len(items) == 1 {
		out[0].Value, out[0].Err = l.todayOne(ctx, items[0])
		return out
	}
	users, days := make([]string, len(items)), make([]pgtype.Date, len(items))
	for i, it := range items {
		users[i], days[i] = it.userID, pgDate(it.date)
	}
	rows, err := l.pool.Query(ctx, todayBatchSQL, users, days, int64(l.defaults.DailyLimit), int64(l.defaults.Warning))
	if err == nil {
		if err = collectIndexed(rows, out, func(row *todayRow) []any {
			return []any{&row.limit, &row.warning, &row.spent, &row.reserved}
		}); err == nil {
			return out
		}
	}
	return eachOnRefusal(ctx, items, err, l.todayOne, l.batchRefused)
}

// byUser is a batcher's shard function from a user's shard (nil when there is one database).
func byUser[T any](shardOf func(string) string, user func(T) string) func(T) string {
	if shardOf == nil {
		return nil
	}
	return func(it T) string { return shardOf(user(it)) }
}

// distinct reports whether no value repeats.
func distinct(vs []string) bool {
	seen := make(map[string]struct{}, len(vs))
	for _, v := range vs {
		if _, dup := seen[v]; dup {
			return false
		}
		seen[v] = struct{}{}
	}
	return true
}
