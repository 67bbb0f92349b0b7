package routeapp_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/helixhq/helix/shared/app/routeapp/routeapptest"
	"github.com/helixhq/helix/shared/llm/llmtest"
	"github.com/helixhq/helix/shared/pgtest"
)

// pg gives each test its own fresh, migrated and seeded database.
var pg *pgtest.Server

func TestMain(m *testing.M) {
	os.Exit(pgtest.Main(m, func(s *pgtest.Server) { pg = s }))
}

// answer is what one request of the load got back.
type answer struct {
	user      string
	status    int
	requestID string // X-Request-Id, the key of the request's log row and reservation
	body      string // kept for the failure message of a non-200
	err       error
}

// Under concurrent load through the route function's HTTP server, on real Postgres, the books
// balance: every answered request was logged, no reservation is left open, and each user's spend
// is exactly the sum of the costs logged for them. 32 workers share three users, so every budget
// row is contended; the requests mix operations, models (two providers, two price lists) and
// output caps (worst-case holds of different sizes that settle to the actual cost).
func TestBookkeepingUnderConcurrentLoad(t *testing.T) {
	const workers, perWorker = 32, 8
	e := routeapptest.New(t, pg.NewPool(t), nil)
	for _, s := range []*llmtest.Server{e.DeepSeek, e.Gemini, e.Claude} {
		s.SetRecording(false) // counted, not kept: the test reads the database, not the wire
	}
	e.DeepSeek.SetDefault(llmtest.OK("Hello from DeepSeek.").
		WithUsage(llmtest.Usage{InputTokens: 12, CachedInputTokens: 3, OutputTokens: 6, ReasoningTokens: 2}))
	e.Gemini.SetDefault(llmtest.OK("Hello from Gemini.").WithUsage(llmtest.Usage{InputTokens: 40, OutputTokens: 25}))
	users := []struct{ id, token string }{{"alice", e.Alice}, {"bob", e.Bob}, {"ops", e.Admin}}
	for _, u := range users {
		// chat_message is HIGH criticality: above the warning threshold it would wait for an
		// approval, so the warning is as high as the limit, which no request of the load reaches.
		e.SetLimits(t, u.id, 1000)
	}
	models := []string{"auto", "helix/email-compose", "gemini_flash"}

	client := &http.Client{Timeout: time.Minute}
	defer client.CloseIdleConnections()
	answers := make([][]answer, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perWorker {
				u := users[(w+i)%len(users)]
				body := fmt.Sprintf(`{"model":%q,"messages":[{"role":"user","content":"Hello %d.%d"}],"max_tokens":%d}`,
					models[w%len(models)], w, i, 16+(w*perWorker+i)%240)
				answers[w] = append(answers[w], chat(t.Context(), client, e.URL, u.id, u.token, body))
			}
		}()
	}
	wg.Wait()

	answered := map[string]string{} // request id -> user, of every 200
	for _, a := range flatten(answers) {
		if a.err != nil || a.status != http.StatusOK || a.requestID == "" {
			t.Errorf("%s: status %d, request id %q, error %v: %s", a.user, a.status, a.requestID, a.err, a.body)
			continue
		}
		answered[a.requestID] = a.user
	}
	if len(answered) != workers*perWorker {
		t.Fatalf("%d of %d requests answered 200 with a request id; the load is not what the checks below assume",
			len(answered), workers*perWorker)
	}

	t.Logf("%d requests answered; provider calls (deepseek, gemini, claude): %v", len(answered), e.RequestCounts())

	// 1. Every answered request was logged: one successful ai_operation_log row per 200, under its
	// request id and its user, and no other row.
	logged := e.LogRows(t)
	if len(logged) != len(answered) {
		t.Errorf("ai_operation_log has %d rows for %d successful requests", len(logged), len(answered))
	}
	for _, row := range logged {
		user, ok := answered[row.RequestID]
		switch {
		case !ok:
			t.Errorf("log row %s answers no request of the load: %+v", row.RequestID, row)
		case row.UserID != user || !row.Success:
			t.Errorf("log row %s: user %q, success %v; want %q, true", row.RequestID, row.UserID, row.Success, user)
		}
	}

	// 2. Nothing is left reserved: no reservation still 'reserved', and no money held on any
	// budget day.
	var reservations, open, heldNano int64
	if err := e.Pool.QueryRow(t.Context(), `
		SELECT count(*), count(*) FILTER (WHERE status = 'reserved') FROM budget_reservations`).Scan(&reservations, &open); err != nil {
		t.Fatal(err)
	}
	if err := e.Pool.QueryRow(t.Context(), `SELECT COALESCE(sum(reserved_nano), 0) FROM budget_days`).Scan(&heldNano); err != nil {
		t.Fatal(err)
	}
	if reservations == 0 {
		t.Fatal("budget_reservations is empty: the load never reached the ledger")
	}
	if open != 0 || heldNano != 0 {
		t.Errorf("%d of %d reservations are still 'reserved', %d nano-USD still held in budget_days", open, reservations, heldNano)
	}

	// 3. Each user's spend is the sum of the costs logged for them (summed over days, in case the
	// test runs across UTC midnight).
	spent := sumByUser(t, e, `SELECT user_id, sum(spent_nano)::bigint FROM budget_days GROUP BY user_id`)
	cost := sumByUser(t, e, `SELECT user_id, sum(cost_nano)::bigint FROM ai_operation_log GROUP BY user_id`)
	for _, u := range users {
		if cost[u.id] <= 0 {
			t.Errorf("%s: logged cost %d nano-USD, want more than 0 (every call reports usage)", u.id, cost[u.id])
		}
		if spent[u.id] != cost[u.id] {
			t.Errorf("%s: budget_days.spent_nano = %d, sum of ai_operation_log.cost_nano = %d", u.id, spent[u.id], cost[u.id])
		}
	}
	if len(spent) != len(users) || len(cost) != len(users) {
		t.Errorf("spend of %d users and costs of %d, want %d each", len(spent), len(cost), len(users))
	}
}

// chat POSTs one chat completion as user. It reports failures in the answer instead of failing
// the test, because it runs on the load's goroutines.
func chat(ctx context.Context, client *http.Client, baseURL, user, token, body string) answer {
	a := answer{user: user}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, baseURL+"/v1/chat/completions", strings.NewReader(body))
	if err != nil {
		a.err = err
		return a
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := client.Do(req)
	if err != nil {
		a.err = err
		return a
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	a.status, a.requestID, a.err = res.StatusCode, res.Header.Get("X-Request-Id"), err
	if a.status != http.StatusOK {
		a.body = string(raw)
	}
	return a
}

func flatten(per [][]answer) []answer {
	var out []answer
	for _, a := range per {
		out = append(out, a...)
	}
	return out
}

// sumByUser runs a query of (user_id, bigint) rows into a map.
func sumByUser(t *testing.T, e *routeapptest.Env, sql string) map[string]int64 {
	t.Helper()
	rows, err := e.Pool.Query(t.Context(), sql)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]int64{}
	for rows.Next() {
		var user string
		var n int64
		if err := rows.Scan(&user, &n); err != nil {
			t.Fatal(err)
		}
		out[user] = n
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}
