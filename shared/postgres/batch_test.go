package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/helixhq/helix/shared/budget"
	"github.com/helixhq/helix/shared/groupcommit"
	"github.com/helixhq/helix/shared/money"
	"github.com/helixhq/helix/shared/oplog"
	"github.com/helixhq/helix/shared/postgres"
)

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
	ctx := context.Background()
	pool := pg.NewPool(t)
	l := postgres.NewLedger(pool, defaults, nil)
	ops := postgres.NewOperations(pool, nil)
	var batches batchSizes
	postgres.ObserveGroupCommit(l, ops, groupcommit.Options{MaxInFlight: 2}, batches.observe)
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
