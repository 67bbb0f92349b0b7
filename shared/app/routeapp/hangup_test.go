package routeapp_test

import (
	"context"
	"errors"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/helixhq/helix/shared/app/routeapp/routeapptest"
	"github.com/helixhq/helix/shared/llm/llmtest"
)

// Clients that hang up at random points (while the hold is written, while the provider answers,
// while the answer is settled) through the route function's HTTP server: once the server has
// handled everything, the books balance. Calls cut off in flight are charged for their input,
// the others settle or release; nothing is left reserved.
func TestBooksBalanceWhenClientsHangUp(t *testing.T) {
	const workers, perWorker = 16, 12
	e := routeapptest.New(t, pg.NewPool(t), nil)
	// Slow enough that a client giving up after a few milliseconds often leaves mid-call.
	e.DeepSeek.SetDefault(llmtest.OK("Hello from DeepSeek.").WithDelay(4 * time.Millisecond).
		WithUsage(llmtest.Usage{InputTokens: 30, OutputTokens: 12}))
	e.Gemini.SetDefault(llmtest.OK("Hello from Gemini.").WithDelay(2 * time.Millisecond).
		WithUsage(llmtest.Usage{InputTokens: 40, OutputTokens: 25}))
	users := []struct{ id, token string }{{"alice", e.Alice}, {"bob", e.Bob}, {"ops", e.Admin}}
	for _, u := range users {
		e.SetLimits(t, u.id, 1000)
	}
	models := []string{"auto", "gemini_flash", "helix/email-compose"}

	client := &http.Client{}
	defer client.CloseIdleConnections()
	var answered, hungUp atomic.Int64
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range perWorker {
				u := users[(w+i)%len(users)]
				body := `{"model":"` + models[(w*perWorker+i)%len(models)] + `","messages":[{"role":"user","content":"hi"}],"max_tokens":64}`
				// Between no time at all and a few times what a call takes (more under -race).
				ctx, cancel := context.WithTimeout(context.Background(), time.Duration(rand.IntN(150000))*time.Microsecond)
				req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.URL+"/v1/chat/completions", strings.NewReader(body))
				if err != nil {
					t.Error(err)
					cancel()
					return
				}
				req.Header.Set("Authorization", "Bearer "+u.token)
				res, err := client.Do(req)
				switch {
				case errors.Is(err, context.DeadlineExceeded):
					hungUp.Add(1)
				case err != nil:
					t.Errorf("request: %v", err)
				default:
					if res.StatusCode != http.StatusOK {
						t.Errorf("status %d", res.StatusCode)
					}
					answered.Add(1)
					_ = res.Body.Close()
				}
				cancel()
			}
		})
	}
	wg.Wait()
	e.Drain() // every handler has returned: whatever they were doing is in the database

	if hungUp.Load() == 0 || answered.Load() == 0 {
		t.Fatalf("%d answered, %d hung up: the load must do both to test anything", answered.Load(), hungUp.Load())
	}
	t.Logf("%d answered, %d hung up", answered.Load(), hungUp.Load())
	count := func(sql string) int64 {
		t.Helper()
		var n int64
		if err := e.Pool.QueryRow(context.Background(), sql).Scan(&n); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
		return n
	}
	if n := count(`SELECT count(*) FROM budget_reservations WHERE status = 'reserved'`); n != 0 {
		t.Errorf("%d reservations left reserved", n)
	}
	if n := count(`SELECT COALESCE(sum(reserved_nano), 0) FROM budget_days`); n != 0 {
		t.Errorf("%d nano-USD still reserved", n)
	}
	if n := count(`SELECT count(*) FROM budget_reservations r LEFT JOIN ai_operation_log l USING (request_id) WHERE l.request_id IS NULL`); n != 0 {
		t.Errorf("%d admitted calls without a log row", n)
	}
	if n := count(`
		SELECT count(*) FROM budget_days d
		  LEFT JOIN (SELECT user_id, sum(cost_nano) AS cost FROM ai_operation_log GROUP BY user_id) l USING (user_id)
		 WHERE d.spent_nano <> COALESCE(l.cost, 0)`); n != 0 {
		t.Errorf("%d users whose spend differs from their logged costs", n)
	}
	// Every answered request is a successful, charged row.
	if n := count(`SELECT count(*) FROM ai_operation_log WHERE success AND cost_nano > 0`); n < answered.Load() {
		t.Errorf("%d successful charged rows for %d answers", n, answered.Load())
	}
	if n := count(`SELECT count(*) FROM budget_reservations`); n == 0 {
		t.Error("no reservation at all: the load did not reach the money path")
	}
}
