package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/helixhq/helix/shared/budget"
	"github.com/helixhq/helix/shared/groupcommit"
	"github.com/helixhq/helix/shared/money"
	"github.com/helixhq/helix/shared/postgres"
)

var defaults = budget.Limits{DailyLimit: money.MustUSD(50), Warning: money.MustUSD(25)}

// clock is a settable test clock.
type clock struct{ t atomic.Pointer[time.Time] }

func newClock(t time.Time) *clock { c := &clock{}; c.set(t); return c }
func (c *clock) set(t time.Time)  { c.t.Store(&t) }
func (c *clock) now() time.Time   { return *c.t.Load() }

func TestLedgerReserveSettleRelease(t *testing.T) {
	ctx := context.Background()
	l := postgres.NewLedger(pg.NewPool(t), defaults, nil)

	adm, err := l.Reserve(ctx, budget.Reservation{RequestID: "r1", UserID: "u1", Amount: money.MustUSD(10)})
	if err != nil || adm.Replayed {
		t.Fatalf("reserve: %+v %v", adm, err)
	}
	if adm.Day.Reserved != money.MustUSD(10) || adm.Day.Spent != 0 || adm.Day.Limits != defaults {
		t.Errorf("day after reserve = %+v", adm.Day)
	}
	// A replay holds nothing more.
	adm, err = l.Reserve(ctx, budget.Reservation{RequestID: "r1", UserID: "u1", Amount: money.MustUSD(10)})
	if err != nil || !adm.Replayed || adm.Day.Reserved != money.MustUSD(10) {
		t.Fatalf("replayed reserve: %+v %v", adm, err)
	}
	if err := l.Settle(ctx, "r1", money.MustUSD(0.25)); err != nil {
		t.Fatal(err)
	}
	day := today(t, l, "u1")
	if day.Spent != money.MustUSD(0.25) || day.Reserved != 0 {
		t.Errorf("after settle: %+v", day)
	}
	// Settle and release replayed change nothing.
	if err := l.Settle(ctx, "r1", money.MustUSD(5)); err != nil {
		t.Fatal(err)
	}
	if err := l.Release(ctx, "r1"); err != nil {
		t.Fatal(err)
	}
	if d := today(t, l, "u1"); d != day {
		t.Errorf("replays changed the day: %+v -> %+v", day, d)
	}

	if _, err := l.Reserve(ctx, budget.Reservation{RequestID: "r2", UserID: "u1", Amount: money.MustUSD(1)}); err != nil {
		t.Fatal(err)
	}
	if err := l.Release(ctx, "r2"); err != nil {
		t.Fatal(err)
	}
	if d := today(t, l, "u1"); d.Reserved != 0 || d.Spent != money.MustUSD(0.25) {
		t.Errorf("after release: %+v", d)
	}
	if err := l.Settle(ctx, "never", 1); !errors.Is(err, budget.ErrNotReserved) {
		t.Errorf("settle unknown = %v", err)
	}
	if err := l.Release(ctx, "never"); !errors.Is(err, budget.ErrNotReserved) {
		t.Errorf("release unknown = %v", err)
	}
}

func TestLedgerRejectsWhatDoesNotFit(t *testing.T) {
	ctx := context.Background()
	l := postgres.NewLedger(pg.NewPool(t), defaults, nil)
	if _, err := l.SetLimits(ctx, "u", budget.Limits{DailyLimit: money.MustUSD(1), Warning: money.MustUSD(0.5)}, "admin"); err != nil {
		t.Fatal(err)
	}
	_, err := l.Reserve(ctx, budget.Reservation{RequestID: "big", UserID: "u", Amount: money.MustUSD(1.01)})
	var ex *budget.ExceededError
	if !errors.As(err, &ex) || ex.Day.Remaining() != money.MustUSD(1) {
		t.Fatalf("reserve over the limit on a fresh day = %v", err)
	}
	if _, err := l.Reserve(ctx, budget.Reservation{RequestID: "a", UserID: "u", Amount: money.MustUSD(0.6)}); err != nil {
		t.Fatal(err)
	}
	_, err = l.Reserve(ctx, budget.Reservation{RequestID: "b", UserID: "u", Amount: money.MustUSD(0.5)})
	if !errors.As(err, &ex) || ex.Day.Remaining() != money.MustUSD(0.4) || ex.Requested != money.MustUSD(0.5) {
		t.Fatalf("reserve beyond remaining = %v", err)
	}
	// Exactly what remains fits.
	if _, err := l.Reserve(ctx, budget.Reservation{RequestID: "c", UserID: "u", Amount: money.MustUSD(0.4)}); err != nil {
		t.Fatalf("exact fit rejected: %v", err)
	}
	if d := today(t, l, "u"); d.Status() != budget.StatusExceeded || d.Remaining() != 0 {
		t.Errorf("full day = %+v status %s", d, d.Status())
	}
	// Raising the limit applies at once.
	if _, err := l.SetLimits(ctx, "u", budget.Limits{DailyLimit: money.MustUSD(2), Warning: money.MustUSD(1)}, "admin"); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Reserve(ctx, budget.Reservation{RequestID: "d", UserID: "u", Amount: money.MustUSD(0.5)}); err != nil {
		t.Fatalf("after raising the limit: %v", err)
	}
	if _, err := l.SetLimits(ctx, "u", budget.Limits{DailyLimit: money.MustUSD(1), Warning: money.MustUSD(2)}, "admin"); err == nil {
		t.Error("warning above limit accepted")
	}
}

func TestLedgerDaysResetAtUTCMidnight(t *testing.T) {
	ctx := context.Background()
	clk := newClock(time.Date(2026, 11, 22, 23, 59, 0, 0, time.UTC))
	l := postgres.NewLedger(pg.NewPool(t), defaults, clk.now)
	if _, err := l.Reserve(ctx, budget.Reservation{RequestID: "late", UserID: "u", Amount: money.MustUSD(50)}); err != nil {
		t.Fatal(err)
	}
	d := today(t, l, "u")
	if d.Remaining() != 0 || !d.ResetsAt().Equal(time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("day = %+v resets %v", d, d.ResetsAt())
	}
	clk.set(time.Date(2026, 11, 23, 0, 0, 1, 0, time.UTC))
	if d := today(t, l, "u"); d.Committed() != 0 {
		t.Errorf("new day starts with %+v", d)
	}
	if _, err := l.Reserve(ctx, budget.Reservation{RequestID: "early", UserID: "u", Amount: money.MustUSD(50)}); err != nil {
		t.Errorf("new day: %v", err)
	}
	// The reservation made yesterday still settles against yesterday.
	if err := l.Settle(ctx, "late", money.MustUSD(1)); err != nil {
		t.Fatal(err)
	}
	if d := today(t, l, "u"); d.Spent != 0 || d.Reserved != money.MustUSD(50) {
		t.Errorf("yesterday's settle leaked into today: %+v", d)
	}
}

func TestLedgerSweepsExpiredReservations(t *testing.T) {
	ctx := context.Background()
	clk := newClock(time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC))
	l := postgres.NewLedger(pg.NewPool(t), defaults, clk.now)
	for i, ttl := range []time.Duration{time.Minute, time.Minute, time.Hour} {
		r := budget.Reservation{RequestID: fmt.Sprint("s", i), UserID: "u", Amount: money.MustUSD(1), TTL: ttl}
		if _, err := l.Reserve(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	clk.set(clk.now().Add(2 * time.Minute))
	n, err := l.SweepExpired(ctx, 100)
	if err != nil || n != 2 {
		t.Fatalf("sweep = %d, %v; want 2", n, err)
	}
	if d := today(t, l, "u"); d.Reserved != money.MustUSD(1) {
		t.Errorf("after sweep reserved = %s, want 1", d.Reserved)
	}
	if n, _ := l.SweepExpired(ctx, 100); n != 0 {
		t.Errorf("second sweep expired %d", n)
	}
	// The call behind an expired hold finished after all: its cost is still recorded, once.
	if err := l.Settle(ctx, "s0", money.MustUSD(0.3)); err != nil {
		t.Fatal(err)
	}
	if err := l.Settle(ctx, "s0", money.MustUSD(0.3)); err != nil {
		t.Fatal(err)
	}
	if d := today(t, l, "u"); d.Spent != money.MustUSD(0.3) || d.Reserved != money.MustUSD(1) {
		t.Errorf("late settle: %+v", d)
	}
	// Releasing an expired hold gives nothing back twice.
	if err := l.Release(ctx, "s1"); err != nil {
		t.Fatal(err)
	}
	if d := today(t, l, "u"); d.Reserved != money.MustUSD(1) {
		t.Errorf("release after expiry: %+v", d)
	}
}

// TestLedgerConcurrentReservationsNeverOvershoot is the money race test: 500 concurrent
// reservations against a $1.00 limit, at costs that do not divide it evenly.
// With group commit, the same race goes through batches (the test checks that batches formed).
func TestLedgerConcurrentReservationsNeverOvershoot(t *testing.T) {
	for _, gc := range []bool{false, true} {
		t.Run(fmt.Sprint("group commit ", gc), func(t *testing.T) {
			t.Run("one cost", func(t *testing.T) {
				// $0.003 does not divide $1.00: exactly 333 fit, with $0.001 left over.
				admitted, total := raceReservations(t, gc, []money.Nano{money.MustUSD(0.003)})
				if admitted != 333 || total != money.MustUSD(0.999) {
					t.Fatalf("admitted %d for $%s, want 333 for $0.999", admitted, total)
				}
			})
			t.Run("mixed costs", func(t *testing.T) {
				// $0.003, $0.007 and $0.011 in turn, none of which divides $1.00.
				raceReservations(t, gc, []money.Nano{money.MustUSD(0.003), money.MustUSD(0.007), money.MustUSD(0.011)})
			})
		})
	}
}

// raceReservations runs 500 concurrent reservations at the given costs (in turn) against a
// $1.00 limit, checks that exactly those that fit were admitted, then settles or releases each
// admitted one twice, concurrently, and checks that the ledger counted each once.
func raceReservations(t *testing.T, groupCommit bool, costs []money.Nano) (admitted int, admittedTotal money.Nano) {
	ctx := context.Background()
	pool := pg.NewPool(t)
	l := postgres.NewLedger(pool, defaults, nil)
	var batches batchSizes
	if groupCommit {
		postgres.ObserveGroupCommit(l, nil, groupcommit.Options{MaxBatch: 64, MaxInFlight: 1}, batches.observe) // the functions' settings
		postgres.WatchRefusals(l, nil, func(err error) { t.Errorf("a batch was refused: %v", err) })
		defer func() {
			if largest := batches.largest("reserve"); largest < 2 {
				t.Errorf("group commit on, but no reservations were batched (largest batch %d)", largest)
			}
		}()
	}
	limit := money.MustUSD(1)
	if _, err := l.SetLimits(ctx, "racer", budget.Limits{DailyLimit: limit, Warning: limit / 2}, "test"); err != nil {
		t.Fatal(err)
	}
	const n = 500
	type result struct {
		id       string
		cost     money.Nano
		admitted bool
	}
	results := make([]result, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			r := result{id: fmt.Sprint("race-", i), cost: costs[i%len(costs)]}
			_, err := l.Reserve(ctx, budget.Reservation{RequestID: r.id, UserID: "racer", Amount: r.cost})
			var ex *budget.ExceededError
			switch {
			case err == nil:
				r.admitted = true
			case errors.As(err, &ex):
			default:
				t.Errorf("reserve %s: %v", r.id, err)
			}
			results[i] = r
		}()
	}
	close(start)
	wg.Wait()

	for _, r := range results {
		if r.admitted {
			admittedTotal += r.cost
			admitted++
		}
	}
	if admittedTotal > limit {
		t.Fatalf("admitted $%s against a $%s limit", admittedTotal, limit)
	}
	// Exactly the reservations that fit were admitted: each rejected one was larger than what
	// was left when it ran, and what is left only shrinks, so it must exceed the final remainder.
	remaining := limit - admittedTotal
	for _, r := range results {
		if !r.admitted && r.cost <= remaining {
			t.Errorf("%s ($%s) was rejected although $%s remained", r.id, r.cost, remaining)
		}
	}
	day := today(t, l, "racer")
	if day.Reserved != admittedTotal || day.Spent != 0 {
		t.Fatalf("ledger says reserved %s spent %s, admitted %s", day.Reserved, day.Spent, admittedTotal)
	}
	var rows int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM budget_reservations WHERE user_id = 'racer'`).Scan(&rows); err != nil || rows != admitted {
		t.Fatalf("%d reservation rows for %d admissions (%v)", rows, admitted, err)
	}
	t.Logf("admitted %d of %d for $%s", admitted, n, admittedTotal)

	// Settle half at a third of their cost and release the rest, concurrently, each twice.
	var settled money.Nano
	var mu sync.Mutex
	for i, r := range results {
		if !r.admitted {
			continue
		}
		for range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				var err error
				if i%2 == 0 {
					err = l.Settle(ctx, r.id, r.cost/3)
				} else {
					err = l.Release(ctx, r.id)
				}
				if err != nil {
					t.Errorf("close %s: %v", r.id, err)
				}
			}()
		}
		if i%2 == 0 {
			mu.Lock()
			settled += r.cost / 3
			mu.Unlock()
		}
	}
	wg.Wait()
	day = today(t, l, "racer")
	if day.Reserved != 0 || day.Spent != settled {
		t.Fatalf("after settling twice: reserved %s spent %s, want 0 and %s", day.Reserved, day.Spent, settled)
	}
	return admitted, admittedTotal
}

// TestLedgerConcurrentTwinsOfOneRequest holds one request id only once however many race.
func TestLedgerConcurrentTwinsOfOneRequest(t *testing.T) {
	ctx := context.Background()
	l := postgres.NewLedger(pg.NewPool(t), defaults, nil)
	var wg sync.WaitGroup
	var replays atomic.Int32
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			adm, err := l.Reserve(ctx, budget.Reservation{RequestID: "twin", UserID: "u", Amount: money.MustUSD(1)})
			if err != nil {
				t.Errorf("reserve: %v", err)
			}
			if adm.Replayed {
				replays.Add(1)
			}
		}()
	}
	wg.Wait()
	if d := today(t, l, "u"); d.Reserved != money.MustUSD(1) || replays.Load() != 19 {
		t.Fatalf("reserved %s with %d replays; want 1 and 19", d.Reserved, replays.Load())
	}
}

func today(t *testing.T, l *postgres.Ledger, user string) budget.Day {
	t.Helper()
	d, err := l.Today(context.Background(), user)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// A reservation whose caller goes away while it waits for a connection is given up before it is
// sent: nothing is held.
func TestReserveAbandonedWhileWaitingForAConnection(t *testing.T) {
	ctx := context.Background()
	pool, err := postgres.Open(ctx, postgres.PoolConfig{URL: pg.NewDatabase(t), MaxConns: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	l := postgres.NewLedger(pool, defaults, nil)
	busy, err := pool.Acquire(ctx) // the only connection
	if err != nil {
		t.Fatal(err)
	}
	client, leave := context.WithCancel(ctx)
	time.AfterFunc(50*time.Millisecond, leave)
	_, err = l.Reserve(ctx, budget.Reservation{RequestID: "gone", UserID: "u1", Amount: money.MustUSD(1), Abandon: client})
	busy.Release()
	if !errors.Is(err, budget.ErrAbandoned) {
		t.Fatalf("Reserve = %v, want ErrAbandoned", err)
	}
	var n int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM budget_reservations`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("%d reservations (%v), want none", n, err)
	}
}
