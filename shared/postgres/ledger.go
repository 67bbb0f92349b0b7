package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/helixhq/helix/shared/auditlog"
	"github.com/helixhq/helix/shared/budget"
	"github.com/helixhq/helix/shared/groupcommit"
	"github.com/helixhq/helix/shared/money"
	"github.com/helixhq/helix/shared/postgres/auditstore"
)

// Ledger is the Postgres budget ledger. Each operation is a single SQL statement whose
// conditions are evaluated on the locked, latest row versions, so concurrency cannot break it.
type Ledger struct {
	pool     *pgxpool.Pool
	defaults budget.Limits
	now      func() time.Time
	// reserves, when set, writes concurrent reservations together (GroupCommit).
	reserves *groupcommit.Sharded[reserveItem, reserveRow]
	// todays, when set, reads concurrent callers' budget days with one query (GroupCommit).
	todays *groupcommit.Sharded[todayItem, todayRow]
	// batchRefused is told of each batch Postgres refused (tests only).
	batchRefused func(error)
}

var _ budget.Ledger = (*Ledger)(nil)

// NewLedger returns the ledger; defaults apply to users without their own limits.
func NewLedger(pool *pgxpool.Pool, defaults budget.Limits, now func() time.Time) *Ledger {
	if now == nil {
		now = time.Now
	}
	return &Ledger{pool: pool, defaults: defaults, now: now}
}

// GroupCommit makes the ledger write the reservations of concurrent callers in one statement
// and one commit (shared/groupcommit), and read their budget days (Today) with one query; a
// lone reservation or read goes to the database at once, as without it. shardOf names the
// database shard of a user (nil: one database): users of different shards never share a
// batch, so a batch is never a cross-shard transaction. Call it before the ledger is shared.
func (l *Ledger) GroupCommit(opts groupcommit.Options, shardOf func(userID string) string) *Ledger {
	l.reserves = groupcommit.NewSharded(byUser[reserveItem](shardOf, func(it reserveItem) string { return it.r.UserID }), l.flushReserves, opts)
	l.todays = groupcommit.NewSharded(byUser[todayItem](shardOf, func(it todayItem) string { return it.userID }), l.flushTodays, opts)
	return l
}

// reserveSQL calls helix_reserve (migration 00004), the one statement that admits a
// reservation: see the function's comment for how it stays atomic and idempotent.
const reserveSQL = `SELECT o_held, o_replayed, o_limit, o_warning, o_spent, o_reserved
  FROM helix_reserve($1, $2, $3, $4, $5, $6, $7, $8)`

// Reserve implements budget.Ledger. With group commit, r.Abandon ends the wait while the
// reservation is queued for a batch; a batch then waits for its connection under the batch's
// own context (it holds other callers' items too), so Abandon no longer covers that wait.
func (l *Ledger) Reserve(ctx context.Context, r budget.Reservation) (budget.Admission, error) {
	if r.RequestID == "" || r.UserID == "" {
		return budget.Admission{}, errors.New("reserve: request id and user id are required")
	}
	if r.Amount < 0 {
		return budget.Admission{}, errors.New("reserve: negative amount")
	}
	it := reserveItem{r: r, now: l.now()}
	var row reserveRow
	var err error
	if l.reserves == nil {
		row, err = l.reserveOne(ctx, it)
	} else {
		row, err = l.reserves.Do(ctx, r.Abandon, it)
	}
	switch {
	case errors.Is(err, groupcommit.ErrAbandoned):
		return budget.Admission{}, budget.ErrAbandoned
	case err != nil:
		return budget.Admission{}, err
	}
	return admission(it, row)
}

// admission is what helix_reserve's answer for it means.
func admission(it reserveItem, row reserveRow) (budget.Admission, error) {
	day := budget.Day{
		UserID:   it.r.UserID,
		Date:     budget.DateOf(it.now),
		Limits:   budget.Limits{DailyLimit: money.Nano(row.limit), Warning: money.Nano(row.warning)},
		Spent:    money.Nano(row.spent),
		Reserved: money.Nano(row.reserved),
	}
	switch {
	case row.replayed:
		return budget.Admission{Replayed: true, Day: day}, nil
	case row.held:
		return budget.Admission{Day: day}, nil
	default:
		return budget.Admission{}, &budget.ExceededError{Requested: it.r.Amount, Day: day}
	}
}

// reserveOne writes one reservation with its own statement. Its wait for a connection is the
// part the caller may abandon (Reservation.Abandon).
func (l *Ledger) reserveOne(ctx context.Context, it reserveItem) (reserveRow, error) {
	r := it.r
	conn, err := l.acquire(ctx, r.Abandon)
	if err != nil {
		return reserveRow{}, err
	}
	defer conn.Release()
	for attempt := 0; ; attempt++ {
		var row reserveRow
		err := conn.QueryRow(ctx, reserveSQL, r.RequestID, r.UserID, pgDate(budget.DateOf(it.now)), int64(r.Amount),
			int64(l.defaults.DailyLimit), int64(l.defaults.Warning), it.now, it.now.Add(ttlOf(r))).
			Scan(&row.held, &row.replayed, &row.limit, &row.warning, &row.spent, &row.reserved)
		if isUniqueViolation(err, "budget_reservations_pkey") && attempt == 0 {
			continue // a concurrent twin reserved the same request id first: now it is a replay
		}
		if err != nil {
			return reserveRow{}, fmt.Errorf("reserve: %w", err)
		}
		return row, nil
	}
}

// acquire takes a connection for a reservation. Waiting for one (the pool is busy) is the part
// a caller may abandon: nothing has been sent yet, so giving up leaves nothing to resolve.
func (l *Ledger) acquire(ctx, abandon context.Context) (*pgxpool.Conn, error) {
	if abandon == nil {
		return l.pool.Acquire(ctx)
	}
	actx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(abandon, cancel)
	defer stop()
	conn, err := l.pool.Acquire(actx)
	if err != nil && abandon.Err() != nil && ctx.Err() == nil {
		return nil, budget.ErrAbandoned
	}
	if err != nil {
		return nil, fmt.Errorf("reserve: %w", err)
	}
	return conn, nil
}

// Settle implements budget.Ledger.
func (l *Ledger) Settle(ctx context.Context, requestID string, actual money.Nano) error {
	if actual < 0 {
		return errors.New("settle: negative cost")
	}
	closed, err := finish(ctx, l.pool, "settle", requestID, actual, l.now(), nil)
	if err != nil {
		return fmt.Errorf("settle: %w", err)
	}
	if !closed {
		return l.closedOrMissing(ctx, requestID)
	}
	return nil
}

// Release implements budget.Ledger.
func (l *Ledger) Release(ctx context.Context, requestID string) error {
	closed, err := finish(ctx, l.pool, "release", requestID, 0, l.now(), nil)
	if err != nil {
		return fmt.Errorf("release: %w", err)
	}
	if !closed {
		return l.closedOrMissing(ctx, requestID)
	}
	return nil
}

// closedOrMissing tells an idempotent replay (nil) from a request id never reserved.
func (l *Ledger) closedOrMissing(ctx context.Context, requestID string) error {
	var exists bool
	if err := l.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM budget_reservations WHERE request_id = $1)`, requestID).Scan(&exists); err != nil {
		return err
	}
	if !exists {
		return budget.ErrNotReserved
	}
	return nil
}

const todaySQL = `SELECT o_limit, o_warning, o_spent, o_reserved FROM helix_budget_today($1, $2, $3, $4)`

// Today implements budget.Ledger. With group commit, reads of concurrent callers share one
// query; a read that arrives while one is in flight waits for the next, so it still sees every
// write committed before it was asked.
func (l *Ledger) Today(ctx context.Context, userID string) (budget.Day, error) {
	it := todayItem{userID: userID, date: budget.DateOf(l.now())}
	var row todayRow
	var err error
	if l.todays == nil {
		row, err = l.todayOne(ctx, it)
	} else {
		row, err = l.todays.Do(ctx, nil, it)
	}
	if err != nil {
		return budget.Day{}, fmt.Errorf("read budget: %w", err)
	}
	return row.day(it), nil
}

// day is the budget.Day the row says for it.
func (row todayRow) day(it todayItem) budget.Day {
	return budget.Day{
		UserID:   it.userID,
		Date:     it.date,
		Limits:   budget.Limits{DailyLimit: money.Nano(row.limit), Warning: money.Nano(row.warning)},
		Spent:    money.Nano(row.spent),
		Reserved: money.Nano(row.reserved),
	}
}

// todayOne reads one user's day with helix_budget_today.
func (l *Ledger) todayOne(ctx context.Context, it todayItem) (todayRow, error) {
	var row todayRow
	err := l.pool.QueryRow(ctx, todaySQL, it.userID, pgDate(it.date), int64(l.defaults.DailyLimit), int64(l.defaults.Warning)).
		Scan(&row.limit, &row.warning, &row.spent, &row.reserved)
	return row, err
}

// SetLimits implements budget.Ledger.
func (l *Ledger) SetLimits(ctx context.Context, userID string, lim budget.Limits, actor string) (budget.Day, error) {
	if err := lim.Validate(); err != nil {
		return budget.Day{}, err
	}
	err := pgx.BeginFunc(ctx, l.pool, func(tx pgx.Tx) error {
		before, err := l.limitsIn(ctx, tx, userID)
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `
			INSERT INTO user_budgets (user_id, daily_limit_nano, warning_threshold_nano, updated_by, updated_at)
			VALUES ($1, $2, $3, $4, now())
			ON CONFLICT (user_id) DO UPDATE
			   SET daily_limit_nano = EXCLUDED.daily_limit_nano,
			       warning_threshold_nano = EXCLUDED.warning_threshold_nano,
			       updated_by = EXCLUDED.updated_by, updated_at = now()`,
			userID, int64(lim.DailyLimit), int64(lim.Warning), actor); err != nil {
			return err
		}
		return auditstore.Record(ctx, tx, adminChange(actor, auditlog.ChangedBudget, userID, limitsFacts(before), limitsFacts(lim), false))
	})
	if err != nil {
		return budget.Day{}, fmt.Errorf("set limits: %w", err)
	}
	return l.Today(ctx, userID)
}

// updateLimitsSQL merges a partial limits update into the user's row (created with the defaults
// just before, if missing). The UPDATE locks the row and computes from its latest version, so two
// admins changing different fields at once cannot overwrite each other. @daily and @warning are
// NULL when not given. (A single upsert would not do: Postgres checks the CHECK constraint on the
// row it proposes to insert before it finds the conflict.)
const updateLimitsSQL = `
UPDATE user_budgets SET
    daily_limit_nano = COALESCE(@daily::bigint, daily_limit_nano),
    warning_threshold_nano = COALESCE(@warning::bigint,
        CASE WHEN warning_threshold_nano > COALESCE(@daily::bigint, daily_limit_nano)
             THEN COALESCE(@daily::bigint, daily_limit_nano) / 2
             ELSE warning_threshold_nano END),
    updated_by = @actor, updated_at = now()
 WHERE user_id = @user_id`

// UpdateLimits implements budget.Ledger.
func (l *Ledger) UpdateLimits(ctx context.Context, userID string, daily, warning *money.Nano, actor string) (budget.Day, error) {
	err := pgx.BeginFunc(ctx, l.pool, func(tx pgx.Tx) error {
		before, err := l.limitsIn(ctx, tx, userID)
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `
			INSERT INTO user_budgets (user_id, daily_limit_nano, warning_threshold_nano, updated_by)
			VALUES ($1, $2, $3, $4) ON CONFLICT (user_id) DO NOTHING`,
			userID, int64(l.defaults.DailyLimit), int64(l.defaults.Warning), actor); err != nil {
			return err
		}
		var after budget.Limits
		if err := tx.QueryRow(ctx, updateLimitsSQL+` RETURNING daily_limit_nano, warning_threshold_nano`, pgx.NamedArgs{
			"user_id": userID, "daily": nullableNano(daily), "warning": nullableNano(warning), "actor": actor,
		}).Scan(&after.DailyLimit, &after.Warning); err != nil {
			return err
		}
		return auditstore.Record(ctx, tx, adminChange(actor, auditlog.ChangedBudget, userID, limitsFacts(before), limitsFacts(after), false))
	})
	if isCheckViolation(err) {
		return budget.Day{}, budget.ErrInvalidLimits
	}
	if err != nil {
		return budget.Day{}, fmt.Errorf("update limits: %w", err)
	}
	return l.Today(ctx, userID)
}

// limitsIn reads a user's limits, locked for the change (the defaults when the user has none).
func (l *Ledger) limitsIn(ctx context.Context, tx pgx.Tx, userID string) (budget.Limits, error) {
	lim := l.defaults
	err := tx.QueryRow(ctx, `SELECT daily_limit_nano, warning_threshold_nano FROM user_budgets WHERE user_id = $1 FOR UPDATE`, userID).
		Scan(&lim.DailyLimit, &lim.Warning)
	if errors.Is(err, pgx.ErrNoRows) {
		return l.defaults, nil
	}
	return lim, err
}

func nullableNano(n *money.Nano) *int64 {
	if n == nil {
		return nil
	}
	v := int64(*n)
	return &v
}

// sweepSQL expires overdue reservations in batches. SKIP LOCKED leaves alone the ones a settle
// or release holds right now; a settle that arrives after expiry still records its spend. The
// day rows are locked in (user, day) order before they are updated, the order every reserve
// and settle batch takes them in: a batch holding several users' rows and a sweep updating them
// in the join's order could otherwise each wait for the other.
const sweepSQL = `
WITH due AS (
    SELECT request_id FROM budget_reservations
     WHERE status = 'reserved' AND expires_at < $1
     ORDER BY expires_at
     LIMIT $2
       FOR UPDATE SKIP LOCKED
), expired AS (
    UPDATE budget_reservations b
       SET status = 'expired', closed_at = $1
      FROM due
     WHERE b.request_id = due.request_id
    RETURNING b.user_id, b.day, b.amount_nano
), per_day AS (
    SELECT user_id, day, sum(amount_nano)::bigint AS amount FROM expired GROUP BY user_id, day
), locked AS MATERIALIZED (
    SELECT d.user_id, d.day, p.amount
      FROM budget_days d
      JOIN per_day p ON d.user_id = p.user_id AND d.day = p.day
     ORDER BY d.user_id, d.day
       FOR UPDATE OF d
), freed AS (
    UPDATE budget_days d
       SET reserved_nano = d.reserved_nano - locked.amount, updated_at = now()
      FROM locked
     WHERE d.user_id = locked.user_id AND d.day = locked.day
    RETURNING 1
)
SELECT count(*) FROM expired`

// sweepLockKey is the advisory lock that keeps sweeps single-file: two sweeps updating several
// day rows in different orders could otherwise deadlock.
const sweepLockKey = 0x68656c6978 // "helix"

// SweepExpired implements budget.Ledger.
func (l *Ledger) SweepExpired(ctx context.Context, max int) (int, error) {
	if max <= 0 {
		max = 1000
	}
	var n int
	err := pgx.BeginFunc(ctx, l.pool, func(tx pgx.Tx) error {
		var got bool
		if err := tx.QueryRow(ctx, `SELECT pg_try_advisory_xact_lock($1)`, int64(sweepLockKey)).Scan(&got); err != nil {
			return err
		}
		if !got {
			return nil // another sweep is running; it will do the work
		}
		return tx.QueryRow(ctx, sweepSQL, l.now(), max).Scan(&n)
	})
	if err != nil {
		return 0, fmt.Errorf("sweep reservations: %w", err)
	}
	return n, nil
}

func pgDate(t time.Time) pgtype.Date { return pgtype.Date{Time: t, Valid: true} }
