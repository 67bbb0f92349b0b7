package execute_test

// A client may go away, or a statement's answer be lost, at any point of the money path. These
// tests cancel the request's context at each point (before, during and after the reservation;
// during the provider call; during the settlement), and lose the answer of a statement that
// committed, over many concurrent calls on real Postgres, and check after each point that the
// books balance: nothing left reserved, spend equal to the logged costs, a log row for every
// admitted call.

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/helixhq/helix/shared/budget"
	"github.com/helixhq/helix/shared/execute"
	"github.com/helixhq/helix/shared/llm"
	"github.com/helixhq/helix/shared/money"
	"github.com/helixhq/helix/shared/oplog"
	"github.com/helixhq/helix/shared/postgres"
)

// cancelKey carries the request's cancel function on its context. The bookkeeping context keeps
// the request's values, so the hooks below can cancel the request from wherever they run.
type cancelKey struct{}

func cancelOf(ctx context.Context) context.CancelFunc {
	c, _ := ctx.Value(cancelKey{}).(context.CancelFunc)
	if c == nil {
		panic("no cancel func on the context")
	}
	return c
}

// point is where the request is cut.
type point string

const (
	beforeReserve    point = "before the reservation"
	duringReserve    point = "during the reservation"
	afterReserve     point = "after the reservation"
	reserveReplyLost point = "the reservation's answer is lost"
	reserveDown      point = "the reservation's answer is lost, and every retry fails"
	duringCall       point = "during the provider call"
	duringSettle     point = "during the settlement"
	settleReplyLost  point = "the settlement's answer is lost"
)

var errConnLost = errors.New("conn closed: unexpected EOF (test)")

// hookedLedger cuts the request at the reservation points.
type hookedLedger struct {
	*postgres.Ledger
	at point
	// lost counts requests whose first answer was already lost (one per request id).
	mu   sync.Mutex
	lost map[string]bool
}

func (l *hookedLedger) Reserve(ctx context.Context, r budget.Reservation) (budget.Admission, error) {
	switch l.at {
	case beforeReserve:
		cancelOf(ctx)()
	case duringReserve:
		cancel := cancelOf(ctx)
		go func() {
			time.Sleep(time.Duration(rand.IntN(2000)) * time.Microsecond)
			cancel()
		}()
	case reserveReplyLost, reserveDown:
		l.mu.Lock()
		first := !l.lost[r.RequestID]
		l.lost[r.RequestID] = true
		l.mu.Unlock()
		if first {
			_, _ = l.Ledger.Reserve(ctx, r) // it commits, but its answer never comes back
			return budget.Admission{}, errConnLost
		}
		if l.at == reserveDown {
			return budget.Admission{}, errConnLost
		}
	}
	adm, err := l.Ledger.Reserve(ctx, r)
	if l.at == afterReserve {
		cancelOf(ctx)()
	}
	return adm, err
}

// hookedLog cuts the request at the settlement points.
type hookedLog struct {
	inner oplog.Writer
	at    point
	mu    sync.Mutex
	lost  map[string]bool
}

func (w *hookedLog) Finish(ctx context.Context, rec oplog.Record, outcome oplog.Outcome) error {
	switch w.at {
	case duringSettle:
		cancelOf(ctx)()
	case settleReplyLost:
		w.mu.Lock()
		first := !w.lost[rec.RequestID]
		w.lost[rec.RequestID] = true
		w.mu.Unlock()
		if first {
			_ = w.inner.Finish(ctx, rec, outcome) // it commits; the answer is lost
			return errConnLost
		}
	}
	return w.inner.Finish(ctx, rec, outcome)
}

// cuttingProvider cancels the request while the provider has it, then waits for the cut to
// reach the call, as a provider mid-answer would.
type cuttingProvider struct{ name string }

func (p cuttingProvider) Name() string { return p.name }

func (p cuttingProvider) Complete(ctx context.Context, _ llm.Request) (llm.Response, error) {
	cancelOf(ctx)()
	<-ctx.Done()
	return llm.Response{}, ctx.Err()
}

func TestCancellationAtEveryPointOfTheMoneyPath(t *testing.T) {
	const calls = 24
	users := []string{"u1", "u2", "u3"}
	bound := inputBound()
	for _, at := range []point{beforeReserve, duringReserve, afterReserve, reserveReplyLost, reserveDown, duringCall, duringSettle, settleReplyLost} {
		t.Run(string(at), func(t *testing.T) {
			e := newEnv(t)
			e.deepseek.Default(okStep(llm.Usage{InputTokens: 300, OutputTokens: 200}))
			e.p.Ledger = &hookedLedger{Ledger: e.ledger, at: at, lost: map[string]bool{}}
			e.p.Log = &hookedLog{inner: postgres.NewOperations(e.pool, nil), at: at, lost: map[string]bool{}}
			if at == duringCall {
				e.p.Providers = registry{"deepseek": cuttingProvider{"deepseek"}, "gemini": e.gemini, "anthropic": e.claude}
			}
			var succeeded atomic.Int64
			var wg sync.WaitGroup
			for i := range calls {
				wg.Go(func() {
					ctx, cancel := context.WithCancel(context.Background())
					defer cancel()
					ctx = context.WithValue(ctx, cancelKey{}, context.CancelFunc(cancel))
					c := composeCall(fmt.Sprintf("%s-%02d", at, i))
					c.UserID = users[i%len(users)]
					if _, err := e.p.Execute(ctx, c); err == nil {
						succeeded.Add(1)
					}
				})
			}
			wg.Wait()
			books := e.checkBooks()

			switch at {
			case afterReserve, reserveReplyLost, duringSettle, settleReplyLost:
				// The hold was written (or its answer resolved) before the cut: the calls ran.
				// (A cut after the reservation, before the call, stops the call: none ran.)
				want := int64(calls)
				if at == afterReserve {
					want = 0
				}
				if succeeded.Load() != want {
					t.Errorf("%d calls succeeded, want %d", succeeded.Load(), want)
				}
			case duringCall:
				// Cut off in flight: each call is charged for its input bound at DeepSeek's input
				// price, and only that.
				if want := money.Nano(calls * bound * deepseekIn); books.spent != want {
					t.Errorf("spent %d, want %d calls × the input bound's cost (%d)", books.spent, calls, want)
				}
			case reserveDown:
				if books.admitted == 0 {
					t.Error("no reservation was written: the test did not exercise a lost answer")
				}
			}
			switch at {
			case reserveReplyLost, duringSettle, settleReplyLost:
				if books.spent == 0 {
					t.Error("nothing was spent: the calls did not run")
				}
			}
		})
	}
}

// books are the totals checkBooks read.
type books struct {
	admitted int64 // reservations written
	spent    money.Nano
}

// checkBooks fails the test unless the books balance: no reservation left reserved (and nothing
// on any day's reserved total), each user's spend equal to the costs logged for them, and a log
// row for every reservation.
func (e *env) checkBooks() books {
	e.t.Helper()
	if n := e.count(`SELECT count(*) FROM budget_reservations WHERE status = 'reserved'`); n != 0 {
		e.t.Errorf("%d reservations left reserved", n)
	}
	if n := e.count(`SELECT COALESCE(sum(reserved_nano), 0) FROM budget_days`); n != 0 {
		e.t.Errorf("budget_days still holds %d nano-USD reserved", n)
	}
	if n := e.count(`
		SELECT count(*) FROM (
		    SELECT d.user_id FROM budget_days d
		      LEFT JOIN (SELECT user_id, sum(cost_nano) AS cost FROM ai_operation_log GROUP BY user_id) l USING (user_id)
		     WHERE d.spent_nano <> COALESCE(l.cost, 0)) AS off`); n != 0 {
		e.t.Errorf("%d users whose spend differs from their logged costs", n)
	}
	if n := e.count(`SELECT count(*) FROM budget_reservations r LEFT JOIN ai_operation_log l USING (request_id) WHERE l.request_id IS NULL`); n != 0 {
		e.t.Errorf("%d admitted calls without a log row", n)
	}
	if n := e.count(`SELECT count(*) FROM budget_reservations r JOIN ai_operation_log l USING (request_id)
		WHERE r.status = 'settled' AND r.actual_nano <> l.cost_nano`); n != 0 {
		e.t.Errorf("%d settlements that differ from their log row's cost", n)
	}
	return books{
		admitted: e.count(`SELECT count(*) FROM budget_reservations`),
		spent:    money.Nano(e.count(`SELECT COALESCE(sum(spent_nano), 0) FROM budget_days`)),
	}
}

// A provider that bills a call and then withholds the answer: the call is settled at what it
// was billed, logged with its error code, not released at $0.
func TestBilledFailureIsCharged(t *testing.T) {
	e := newEnv(t)
	billed := llm.Usage{InputTokens: 400, OutputTokens: 90}
	e.deepseek.Default(step{err: &llm.Error{Kind: llm.KindContentFiltered, StatusCode: 200, Message: "withheld", Usage: &billed}})
	_, err := e.execute(composeCall("r"))
	if !errors.Is(err, execute.ErrContentFiltered) {
		t.Fatalf("err = %v", err)
	}
	want := int64(400*deepseekIn + 90*deepseekOut)
	row := e.mustLog("r")
	if row.Success || row.ErrorCode != "content_filtered" || row.Cost != want || row.Model != "deepseek" || row.Input != 400 || row.Output != 90 {
		t.Errorf("log row = %+v, want a failed deepseek call charged %d", row, want)
	}
	if status, _ := e.reservation("r"); status != "settled" {
		t.Errorf("reservation %s, want settled", status)
	}
	if d := e.day("u1"); int64(d.Spent) != want || d.Reserved != 0 {
		t.Errorf("budget = %+v", d)
	}
	e.checkBooks()
}

// A billed failure followed by a failover that answers: the call costs both, and the log row
// says how much of it the failed attempt was.
func TestBilledFailureThenFailover(t *testing.T) {
	e := newEnv(t)
	billed := llm.Usage{InputTokens: 250, OutputTokens: 10}
	// A truncated answer that still billed, twice (the retry), then Gemini answers.
	bad := step{err: &llm.Error{Kind: llm.KindBadResponse, StatusCode: 200, Message: "empty answer", Usage: &billed}}
	e.deepseek.Script(bad, bad)
	e.gemini.Default(okStep(llm.Usage{InputTokens: 300, OutputTokens: 100}))
	res, err := e.execute(composeCall("r"))
	if err != nil {
		t.Fatal(err)
	}
	failed := int64(2 * (250*deepseekIn + 10*deepseekOut))
	want := failed + 300*geminiIn + 100*geminiOut
	if int64(res.Cost) != want || int64(res.FailedAttemptsCost) != failed || res.Model.Key != "gemini_flash" {
		t.Fatalf("result cost %d (failed attempts %d) on %s, want %d (%d)", res.Cost, res.FailedAttemptsCost, res.Model.Key, want, failed)
	}
	var logged, loggedFailed int64
	if err := e.pool.QueryRow(context.Background(), `SELECT cost_nano, failed_attempts_cost_nano FROM ai_operation_log WHERE request_id = 'r'`).
		Scan(&logged, &loggedFailed); err != nil || logged != want || loggedFailed != failed {
		t.Fatalf("log cost %d, failed attempts %d (%v); want %d, %d", logged, loggedFailed, err, want, failed)
	}
	e.checkBooks()
}

// An HTTP error bills nothing: the hold is released.
func TestUnbilledFailureIsReleased(t *testing.T) {
	e := newEnv(t)
	for _, f := range []*fakeProvider{e.deepseek, e.gemini, e.claude} {
		f.Default(failStep(llm.KindUnavailable))
	}
	if _, err := e.execute(composeCall("r")); !errors.Is(err, execute.ErrProvidersUnavailable) {
		t.Fatalf("err = %v", err)
	}
	if status, _ := e.reservation("r"); status != "released" {
		t.Errorf("reservation %s, want released", status)
	}
	if row := e.mustLog("r"); row.Cost != 0 {
		t.Errorf("log row = %+v", row)
	}
	e.checkBooks()
}
