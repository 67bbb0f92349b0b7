package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/helixhq/helix/shared/budget"
	"github.com/helixhq/helix/shared/groupcommit"
	"github.com/helixhq/helix/shared/money"
	"github.com/helixhq/helix/shared/oplog"
	"github.com/helixhq/helix/shared/postgres"
)

// noRefusals fails t if Postgres refuses any batch of l or o: a batch that should pass must
// pass as a batch, not succeed item by item after the refusal.
func noRefusals(t *testing.T, l *postgres.Ledger, o *postgres.Operations) {
	postgres.WatchRefusals(l, o, func(err error) { t.Errorf("a batch was refused: %v", err) })
}

// batchSizes records the batches group commit wrote, by kind.
type batchSizes struct {
	mu    sync.Mutex
	sizes map[string][]int
}

func (b *batchSizes) observe(kind string, n int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.sizes == nil {
		b.sizes = map[string][]int{}
	}
	b.sizes[kind] = append(b.sizes[kind], n)
}

func (b *batchSizes) largest(kind string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	m := 0
	for _, n := range b.sizes[kind] {
		m = max(m, n)
	}
	return m
}

// One batch holding a reservation that does not fit, a replay, fresh ones of two users and a
// twin of a fresh one in the same batch: each gets the answer it would get alone, in order.
func TestReserveBatchGivesEachItemItsOwnOutcome(t *testing.T) {
	ctx := context.Background()
	pool := pg.NewPool(t)
	l := postgres.NewLedger(pool, defaults, nil)
	noRefusals(t, l, nil)
	if _, err := l.SetLimits(ctx, "ann", budget.Limits{DailyLimit: money.MustUSD(1), Warning: money.MustUSD(0.5)}, "test"); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Reserve(ctx, budget.Reservation{RequestID: "old", UserID: "ann", Amount: money.MustUSD(0.9)}); err != nil {
		t.Fatal(err)
	}
	batch := []budget.Reservation{
		{RequestID: "too-big", UserID: "ann", Amount: money.MustUSD(0.5)}, // $0.1 remains
		{RequestID: "old", UserID: "ann", Amount: money.MustUSD(0.9)},     // a replay
		{RequestID: "bob-1", UserID: "bob", Amount: money.MustUSD(2)},
		{RequestID: "fits", UserID: "ann", Amount: money.MustUSD(0.06)},    // fits after the refusal
		{RequestID: "bob-1", UserID: "bob", Amount: money.MustUSD(2)},      // its twin, same batch
		{RequestID: "no-more", UserID: "ann", Amount: money.MustUSD(0.05)}, // $0.04 remains now
	}
	adms, errs := postgres.ReserveBatch(ctx, l, batch)
	type want struct {
		exceeded, replayed bool
		reserved           money.Nano // the user's reserved total in the answer
	}
	wants := []want{
		{exceeded: true, reserved: money.MustUSD(0.9)},
		{replayed: true, reserved: money.MustUSD(0.9)},
		{reserved: money.MustUSD(2)},
		{reserved: money.MustUSD(0.96)},
		{replayed: true, reserved: money.MustUSD(2)},
		{exceeded: true, reserved: money.MustUSD(0.96)},
	}
	for i, w := range wants {
		var ex *budget.ExceededError
		switch {
		case w.exceeded:
			if !errors.As(errs[i], &ex) || ex.Day.Reserved != w.reserved {
				t.Errorf("item %d (%s): %v, want exceeded with $%s reserved", i, batch[i].RequestID, errs[i], w.reserved)
			}
		case errs[i] != nil:
			t.Errorf("item %d (%s): %v", i, batch[i].RequestID, errs[i])
		case adms[i].Replayed != w.replayed || adms[i].Day.Reserved != w.reserved:
			t.Errorf("item %d (%s): %+v, want replayed %v with $%s reserved", i, batch[i].RequestID, adms[i], w.replayed, w.reserved)
		}
	}
	if d := today(t, l, "ann"); d.Reserved != money.MustUSD(0.96) {
		t.Errorf("ann reserved $%s, want $0.96", d.Reserved)
	}
	if d := today(t, l, "bob"); d.Reserved != money.MustUSD(2) {
		t.Errorf("bob reserved $%s, want $2 (once)", d.Reserved)
	}
}

// A batch that Postgres refuses (here, one item's user id is not valid UTF-8) commits nothing;
// its items are then written one by one, so only the bad item fails.
func TestReserveBatchStatementErrorFailsOnlyItsItem(t *testing.T) {
	ctx := context.Background()
	l := postgres.NewLedger(pg.NewPool(t), defaults, nil)
	var refusals atomic.Int32
	postgres.WatchRefusals(l, nil, func(error) { refusals.Add(1) })
	defer func() {
		if n := refusals.Load(); n != 1 {
			t.Errorf("%d refused batches, want 1", n)
		}
	}()
	batch := []budget.Reservation{
		{RequestID: "a", UserID: "u1", Amount: 100},
		{RequestID: "bad", UserID: "u\xff", Amount: 100},
		{RequestID: "b", UserID: "u2", Amount: 100},
	}
	_, errs := postgres.ReserveBatch(ctx, l, batch)
	if errs[0] != nil || errs[2] != nil || errs[1] == nil {
		t.Fatalf("errors %v; want only the bad item's", errs)
	}
	for _, u := range []string{"u1", "u2"} {
		if d := today(t, l, u); d.Reserved != 100 {
			t.Errorf("%s reserved %d, want 100 (once)", u, d.Reserved)
		}
	}
}

// A batch whose outcome is unknown (the connection failed, not the statement) is every item's
// error: the caller resends under the same request ids, as it would alone.
func TestReserveBatchUnknownOutcomeFailsEveryItem(t *testing.T) {
	pool := pg.NewPool(t)
	l := postgres.NewLedger(pool, defaults, nil)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, errs := postgres.ReserveBatch(ctx, l, []budget.Reservation{
		{RequestID: "a", UserID: "u1", Amount: 1}, {RequestID: "b", UserID: "u2", Amount: 1},
	})
	for i, err := range errs {
		if err == nil {
			t.Errorf("item %d: no error", i)
		}
	}
}

// One batch of outcomes: a settle, a release, a replayed settle, a log-only row, and one the
// database refuses (an error code that is not UTF-8): each closes or logs as it would alone.
func TestFinishBatchGivesEachItemItsOwnOutcome(t *testing.T) {
	ctx := context.Background()
	pool := pg.NewPool(t)
	l := postgres.NewLedger(pool, defaults, nil)
	ops := postgres.NewOperations(pool, func() time.Time { return xsT0 })
	for _, id := range []string{"s1", "r1", "done", "bad"} {
		if _, err := l.Reserve(ctx, budget.Reservation{RequestID: id, UserID: "u1", Amount: 1000}); err != nil {
			t.Fatal(err)
		}
	}
	if err := ops.Finish(ctx, xsRecord("done"), oplog.Settle); err != nil {
		t.Fatal(err)
	}
	bad := xsRecord("bad")
	bad.ErrorCode = "e\xff"
	recs := []oplog.Record{xsRecord("s1"), xsRecord("r1"), xsRecord("done"), xsRecord("log-only"), bad}
	outcomes := []oplog.Outcome{oplog.Settle, oplog.Release, oplog.Settle, oplog.NoReservation, oplog.Settle}
	closed, errs := postgres.FinishBatch(ctx, ops, recs, outcomes)
	wantClosed := []bool{true, true, false, false}
	for i, w := range wantClosed {
		if errs[i] != nil || closed[i] != w {
			t.Errorf("item %d (%s): closed %v, %v; want closed %v", i, recs[i].RequestID, closed[i], errs[i], w)
		}
	}
	if errs[4] == nil {
		t.Error("the refused item has no error")
	}
	for id, status := range map[string]string{"s1": "settled", "r1": "released", "done": "settled", "bad": "reserved"} {
		if r := xsReservationOf(t, pool, id); r.Status != status {
			t.Errorf("reservation %s is %s, want %s", id, r.Status, status)
		}
	}
	// Spent: "done" and "s1" at 400 each; still reserved: only "bad".
	if d := today(t, l, "u1"); d.Spent != 800 || d.Reserved != 1000 {
		t.Errorf("day = spent %d reserved %d, want 800 / 1000", d.Spent, d.Reserved)
	}
	if n := xsCountLog(t, pool); n != 4 {
		t.Errorf("%d log rows, want 4 (s1, r1, done, log-only)", n)
	}
}

// Many users' calls through group commit, each settled or released twice at once (the replay
// of a lost answer): every reservation closes once, each user's day balances, each call has
// one log row, and the batches did form.
func TestGroupCommitConcurrentSettlementsAndReplays(t *testing.T) {
	for _, inFlight := range []int{1, 2} {
		t.Run(fmt.Sprint("batches in flight ", inFlight), func(t *testing.T) { runGroupCommitConcurrentSettlementsAndReplays(t, inFlight) })
	}
}

func runGroupCommitConcurrentSettlementsAndReplays(t *testing.T, inFlight int) {
	ctx := context.Background()
	pool := pg.NewPool(t)
	l := postgres.NewLedger(pool, defaults, nil)
	ops := postgres.NewOperations(pool, nil)
	var batches batchSizes
	postgres.ObserveGroupCommit(l, ops, groupcommit.Options{MaxInFlight: inFlight}, batches.observe)
	noRefusals(t, l, ops)
	const users, perUser = 16, 20
	var wg sync.WaitGroup
	for u := range users {
		for i := range perUser {
			wg.Go(func() {
				user, id := fmt.Sprint("gc-u", u), fmt.Sprintf("gc-%d-%d", u, i)
				if _, err := l.Reserve(ctx, budget.Reservation{RequestID: id, UserID: user, Amount: 1000}); err != nil {
					t.Errorf("reserve %s: %v", id, err)
					return
				}
				rec := xsRecord(id)
				rec.UserID, rec.Cost = user, 300
				outcome := oplog.Settle
				if i%2 == 1 {
					outcome = oplog.Release
				}
				var twins sync.WaitGroup
				for range 2 {
					twins.Go(func() {
						if err := ops.Finish(ctx, rec, outcome); err != nil {
							t.Errorf("finish %s: %v", id, err)
						}
					})
				}
				twins.Wait()
			})
		}
	}
	wg.Wait()
	for u := range users {
		if d := today(t, l, fmt.Sprint("gc-u", u)); d.Reserved != 0 || d.Spent != 300*perUser/2 {
			t.Errorf("user %d: reserved %d spent %d, want 0 and %d", u, d.Reserved, d.Spent, 300*perUser/2)
		}
	}
	if n := xsCountLog(t, pool); n != users*perUser {
		t.Errorf("%d log rows, want %d", n, users*perUser)
	}
	if batches.largest("reserve") < 2 || batches.largest("finish") < 2 {
		t.Errorf("no batches formed: largest reserve %d, finish %d", batches.largest("reserve"), batches.largest("finish"))
	}
}

// A batch of different users and request ids takes the set-based statement: a refused
// reservation, a replay, a user with a day row and one without each get their own answer.
func TestReserveSetGivesEachItemItsOwnOutcome(t *testing.T) {
	ctx := context.Background()
	pool := pg.NewPool(t)
	l := postgres.NewLedger(pool, defaults, nil)
	noRefusals(t, l, nil)
	if _, err := l.SetLimits(ctx, "ann", budget.Limits{DailyLimit: money.MustUSD(1), Warning: money.MustUSD(0.5)}, "test"); err != nil {
		t.Fatal(err)
	}
	for _, r := range []budget.Reservation{
		{RequestID: "ann-old", UserID: "ann", Amount: money.MustUSD(0.9)},
		{RequestID: "cat-old", UserID: "cat", Amount: money.MustUSD(3)},
		{RequestID: "bob-old", UserID: "bob", Amount: money.MustUSD(1)},
	} {
		if _, err := l.Reserve(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	batch := []budget.Reservation{
		{RequestID: "ann-new", UserID: "ann", Amount: money.MustUSD(0.5)}, // $0.1 remains: refused
		{RequestID: "cat-old", UserID: "cat", Amount: money.MustUSD(3)},   // a replay
		{RequestID: "bob-new", UserID: "bob", Amount: money.MustUSD(2)},   // fits beside bob-old
		{RequestID: "dan-new", UserID: "dan", Amount: money.MustUSD(4)},   // no day row yet
	}
	adms, errs := postgres.ReserveBatch(ctx, l, batch)
	var ex *budget.ExceededError
	if !errors.As(errs[0], &ex) || ex.Day.Reserved != money.MustUSD(0.9) || ex.Day.Limits.DailyLimit != money.MustUSD(1) {
		t.Errorf("refused item: %v (%+v)", errs[0], ex)
	}
	if errs[1] != nil || !adms[1].Replayed || adms[1].Day.Reserved != money.MustUSD(3) {
		t.Errorf("replay: %+v, %v", adms[1], errs[1])
	}
	if errs[2] != nil || adms[2].Replayed || adms[2].Day.Reserved != money.MustUSD(3) {
		t.Errorf("bob: %+v, %v; want $3 reserved", adms[2], errs[2])
	}
	if errs[3] != nil || adms[3].Day.Reserved != money.MustUSD(4) || adms[3].Day.Limits.DailyLimit != defaults.DailyLimit {
		t.Errorf("dan: %+v, %v; want $4 reserved under the default limit", adms[3], errs[3])
	}
	for user, want := range map[string]money.Nano{"ann": money.MustUSD(0.9), "cat": money.MustUSD(3), "bob": money.MustUSD(3), "dan": money.MustUSD(4)} {
		if d := today(t, l, user); d.Reserved != want {
			t.Errorf("%s reserved $%s, want $%s", user, d.Reserved, want)
		}
	}
	var rows int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM budget_reservations`).Scan(&rows); err != nil || rows != 5 {
		t.Errorf("%d reservation rows (%v), want 5", rows, err)
	}
}

// A settlement that arrives after the sweep expired its reservation, in a set-based batch,
// records the spend without freeing the amount a second time (the sweep freed it).
func TestFinishSetSettlesAnExpiredReservation(t *testing.T) {
	ctx := context.Background()
	pool := pg.NewPool(t)
	clk := newClock(xsT0)
	l := postgres.NewLedger(pool, defaults, clk.now)
	ops := postgres.NewOperations(pool, clk.now)
	noRefusals(t, l, ops)
	for _, id := range []string{"late", "on-time"} {
		if _, err := l.Reserve(ctx, budget.Reservation{RequestID: id, UserID: "u1", Amount: 1000, TTL: time.Minute}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := pool.Exec(ctx, `UPDATE budget_reservations SET expires_at = $1 WHERE request_id = 'late'`, xsT0.Add(-time.Second)); err != nil {
		t.Fatal(err)
	}
	if n, err := l.SweepExpired(ctx, 10); err != nil || n != 1 {
		t.Fatalf("sweep: %d, %v", n, err)
	}
	closed, errs := postgres.FinishBatch(ctx, ops, []oplog.Record{xsRecord("late"), xsRecord("on-time")}, []oplog.Outcome{oplog.Settle, oplog.Settle})
	for i := range closed {
		if errs[i] != nil || !closed[i] {
			t.Errorf("item %d: closed %v, %v", i, closed[i], errs[i])
		}
	}
	if d := today(t, l, "u1"); d.Spent != 800 || d.Reserved != 0 {
		t.Errorf("day = spent %d reserved %d, want 800 / 0", d.Spent, d.Reserved)
	}
}

// Many users at once through group commit, so that most batches hold different users (the
// set-based statement) while each user's reservations race in different batches: each user
// gets exactly what fits in their own limit. The last case runs several rounds, each on a new
// day, with four batches in flight: the day rows are being created while batches of both kinds
// (set-based, and item by item for a batch that repeats a user) run, and every batch must take
// them in one order whether a row exists yet or not (a deadlock shows up as a refused batch).
func TestGroupCommitManyUsersRaceEachWithinTheirLimit(t *testing.T) {
	for _, tt := range []struct {
		name                string
		opts                groupcommit.Options
		rounds, users, each int
	}{
		{"batches in flight 1", groupcommit.Options{MaxInFlight: 1}, 1, 64, 10},
		{"batches in flight 2", groupcommit.Options{MaxInFlight: 2}, 1, 64, 10},
		{"first reservations of new days, 4 batches of 16 in flight", groupcommit.Options{MaxInFlight: 4, MaxBatch: 16}, 12, 24, 3},
	} {
		t.Run(tt.name, func(t *testing.T) {
			runGroupCommitManyUsersRaceEachWithinTheirLimit(t, tt.opts, tt.rounds, tt.users, tt.each)
		})
	}
}

func runGroupCommitManyUsersRaceEachWithinTheirLimit(t *testing.T, opts groupcommit.Options, rounds, users, each int) {
	ctx := context.Background()
	pool := pg.NewPool(t)
	clk := newClock(xsT0)
	l := postgres.NewLedger(pool, budget.Limits{DailyLimit: money.MustUSD(1), Warning: money.MustUSD(0.5)}, clk.now)
	var batches batchSizes
	postgres.ObserveGroupCommit(l, nil, opts, batches.observe)
	noRefusals(t, l, nil)
	for round := range rounds {
		clk.set(xsT0.AddDate(0, 0, round))
		admitted := make([]atomic.Int32, users)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range each {
			for u := range users {
				wg.Go(func() {
					<-start
					_, err := l.Reserve(ctx, budget.Reservation{RequestID: fmt.Sprintf("m%d-%d-%d", round, u, i), UserID: fmt.Sprint("m-u", u), Amount: money.MustUSD(0.3)})
					var ex *budget.ExceededError
					switch {
					case err == nil:
						admitted[u].Add(1)
					case !errors.As(err, &ex):
						t.Errorf("reserve: %v", err)
					}
				})
			}
		}
		close(start)
		wg.Wait()
		for u := range users {
			// $0.30 three times fits in $1.00, a fourth does not.
			fit := min(each, 3)
			if n := admitted[u].Load(); int(n) != fit {
				t.Errorf("round %d, user %d: %d admitted, want %d", round, u, n, fit)
			}
			if d := today(t, l, fmt.Sprint("m-u", u)); d.Reserved != money.Nano(fit)*money.MustUSD(0.3) {
				t.Errorf("round %d, user %d reserved $%s, want %d × $0.30", round, u, d.Reserved, fit)
			}
		}
	}
	if batches.largest("reserve") < 2 {
		t.Error("no batches formed")
	}
}

// The sweep and settlement batches race over the same users' day rows: half the
// reservations are overdue, so the sweep expires them while batches settle every reservation.
// Both must take the day rows in one order (a deadlock shows up as a refused batch or a sweep
// error), and the money must come out right: everything spent, nothing left reserved.
func TestSweepAndSettleBatchesRaceOverTheSameDays(t *testing.T) {
	ctx := context.Background()
	pool := pg.NewPool(t)
	clk := newClock(xsT0)
	l := postgres.NewLedger(pool, defaults, clk.now)
	ops := postgres.NewOperations(pool, clk.now)
	noRefusals(t, l, ops)
	const rounds, users, each, batches = 6, 16, 6, 7 // 7 batches: each holds items of most users
	for round := range rounds {
		clk.set(xsT0.AddDate(0, 0, round))
		var recs []oplog.Record
		for i := range each {
			for u := range users {
				r := xsRecord(fmt.Sprintf("s%d-u%d-%d", round, u, i))
				r.UserID = fmt.Sprint("s-u", u)
				if _, err := l.Reserve(ctx, budget.Reservation{RequestID: r.RequestID, UserID: r.UserID, Amount: 1000, TTL: time.Minute}); err != nil {
					t.Fatal(err)
				}
				recs = append(recs, r)
			}
		}
		if _, err := pool.Exec(ctx, `UPDATE budget_reservations SET expires_at = $1 WHERE request_id LIKE $2 AND right(request_id, 1) IN ('0', '2', '4')`,
			clk.now().Add(-time.Second), fmt.Sprintf("s%d-%%", round)); err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		start := make(chan struct{})
		wg.Go(func() {
			<-start
			for range 50 {
				if _, err := l.SweepExpired(ctx, 16); err != nil {
					t.Errorf("sweep: %v", err)
					return
				}
			}
		})
		for b := range batches {
			wg.Go(func() {
				<-start
				var part []oplog.Record
				for i := b; i < len(recs); i += batches {
					part = append(part, recs[i])
				}
				outcomes := make([]oplog.Outcome, len(part))
				for i := range outcomes {
					outcomes[i] = oplog.Settle
				}
				closed, errs := postgres.FinishBatch(ctx, ops, part, outcomes)
				for i := range part {
					if errs[i] != nil || !closed[i] {
						t.Errorf("settle %s: closed %v, %v", part[i].RequestID, closed[i], errs[i])
					}
				}
			})
		}
		close(start)
		wg.Wait()
		for u := range users {
			if d := today(t, l, fmt.Sprint("s-u", u)); d.Spent != each*400 || d.Reserved != 0 {
				t.Errorf("round %d, user %d: spent %d reserved %d, want %d / 0", round, u, d.Spent, d.Reserved, each*400)
			}
		}
	}
}

// A set-based settlement batch writes its audit events with one statement-level trigger
// (migration 00015): one event per log row the batch inserted, none for a replay whose row
// exists, in the log's id order, each naming its row and its user.
func TestFinishSetAuditsEachNewLogRowOnce(t *testing.T) {
	ctx := context.Background()
	pool := pg.NewPool(t)
	l := postgres.NewLedger(pool, defaults, nil)
	ops := postgres.NewOperations(pool, func() time.Time { return xsT0 })
	noRefusals(t, l, ops)
	users := map[string]string{"a1": "ann", "b1": "bob", "c1": "cat"}
	for id, user := range users {
		if _, err := l.Reserve(ctx, budget.Reservation{RequestID: id, UserID: user, Amount: 1000}); err != nil {
			t.Fatal(err)
		}
	}
	record := func(id string) oplog.Record {
		r := xsRecord(id)
		r.UserID = users[id]
		return r
	}
	if err := ops.Finish(ctx, record("b1"), oplog.Settle); err != nil { // logged and audited before the batch
		t.Fatal(err)
	}
	closed, errs := postgres.FinishBatch(ctx, ops,
		[]oplog.Record{record("c1"), record("b1"), record("a1")}, []oplog.Outcome{oplog.Settle, oplog.Settle, oplog.Release})
	for i, want := range []bool{true, false, true} {
		if errs[i] != nil || closed[i] != want {
			t.Errorf("item %d: closed %v, %v; want %v", i, closed[i], errs[i], want)
		}
	}
	rows, err := pool.Query(ctx, `
		SELECT l.request_id, p.actor, p.kind
		  FROM audit_pending p JOIN ai_operation_log l ON l.id = p.op_id
		 ORDER BY p.id`)
	if err != nil {
		t.Fatal(err)
	}
	type event struct{ Request, Actor, Kind string }
	got, err := pgx.CollectRows(rows, pgx.RowToStructByPos[event])
	if err != nil {
		t.Fatal(err)
	}
	// b1 first (its own Finish), then the batch's new rows in the batch's order (c1, a1).
	want := []event{{"b1", "bob", "operation"}, {"c1", "cat", "operation"}, {"a1", "ann", "operation"}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("audit events %v, want %v", got, want)
	}
	var orphans int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM audit_pending WHERE op_id IS NULL AND kind = 'operation'`).Scan(&orphans); err != nil || orphans != 0 {
		t.Errorf("%d operation events without a log row (%v)", orphans, err)
	}
}

// A batch of budget reads gives each user what a read of their own gives: their own limits or
// the defaults, their day's spend and holds or zeros, the same user twice alike.
func TestTodayBatchGivesEachUserTheirDay(t *testing.T) {
	ctx := context.Background()
	pool := pg.NewPool(t)
	l := postgres.NewLedger(pool, defaults, nil)
	noRefusals(t, l, nil)
	if _, err := l.SetLimits(ctx, "ann", budget.Limits{DailyLimit: money.MustUSD(1), Warning: money.MustUSD(0.5)}, "test"); err != nil {
		t.Fatal(err)
	}
	for _, r := range []budget.Reservation{
		{RequestID: "ann-1", UserID: "ann", Amount: money.MustUSD(0.9)},
		{RequestID: "bob-1", UserID: "bob", Amount: money.MustUSD(2)},
	} {
		if _, err := l.Reserve(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	ops := postgres.NewOperations(pool, nil)
	settled := xsRecord("bob-1")
	settled.UserID = "bob"
	if err := ops.Finish(ctx, settled, oplog.Settle); err != nil {
		t.Fatal(err)
	}
	users := []string{"ann", "bob", "dan", "ann"} // dan has no rows at all
	days, errs := postgres.TodayBatch(ctx, l, users)
	for i, u := range users {
		if errs[i] != nil {
			t.Errorf("%s: %v", u, errs[i])
			continue
		}
		if alone := today(t, l, u); days[i] != alone {
			t.Errorf("%s in a batch: %+v, alone: %+v", u, days[i], alone)
		}
	}
	want := map[string][3]money.Nano{ // limit, spent, reserved
		"ann": {money.MustUSD(1), 0, money.MustUSD(0.9)},
		"bob": {defaults.DailyLimit, settled.Cost, 0},
		"dan": {defaults.DailyLimit, 0, 0},
	}
	for i, u := range users {
		if got := [3]money.Nano{days[i].Limits.DailyLimit, days[i].Spent, days[i].Reserved}; got != want[u] {
			t.Errorf("%s: limit, spent, reserved = %v, want %v", u, got, want[u])
		}
	}
}

// Concurrent reads through group commit share queries, and each still sees the caller's own
// reservation, committed before it asked.
func TestGroupCommitConcurrentTodaysSeeTheirOwnWrites(t *testing.T) {
	ctx := context.Background()
	pool := pg.NewPool(t)
	l := postgres.NewLedger(pool, defaults, nil)
	var batches batchSizes
	postgres.ObserveGroupCommit(l, nil, groupcommit.Options{MaxInFlight: 1}, batches.observe)
	noRefusals(t, l, nil)
	const users, rounds = 32, 5
	var wg sync.WaitGroup
	start := make(chan struct{})
	for u := range users {
		wg.Go(func() {
			<-start
			user := fmt.Sprint("r-u", u)
			for i := range rounds {
				if _, err := l.Reserve(ctx, budget.Reservation{RequestID: fmt.Sprintf("r-%d-%d", u, i), UserID: user, Amount: 100}); err != nil {
					t.Errorf("reserve: %v", err)
					return
				}
				d, err := l.Today(ctx, user)
				if err != nil || d.Reserved != money.Nano(100*(i+1)) || d.UserID != user {
					t.Errorf("%s after %d reservations: %+v, %v", user, i+1, d, err)
					return
				}
			}
		})
	}
	close(start)
	wg.Wait()
	if batches.largest("today") < 2 {
		t.Error("no read batches formed")
	}
}
