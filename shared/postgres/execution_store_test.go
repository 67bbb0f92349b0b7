package postgres_test

// Contract tests of the execution pipeline's Postgres adapters: Operations (settle or release +
// log in one statement), Toggles, Breakers and Approvals.

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/helixhq/helix/shared/approval"
	"github.com/helixhq/helix/shared/breaker"
	"github.com/helixhq/helix/shared/budget"
	"github.com/helixhq/helix/shared/catalog"
	"github.com/helixhq/helix/shared/money"
	"github.com/helixhq/helix/shared/oplog"
	"github.com/helixhq/helix/shared/postgres"
	"github.com/helixhq/helix/shared/toggles"
)

// xsT0 has no sub-microsecond part, so it survives a round trip through timestamptz unchanged.
var xsT0 = time.Date(2026, 11, 22, 9, 30, 0, 0, time.UTC)

// ---- Operations.Finish ----

type xsLogRow struct {
	OperationID, UserID, Model, Provider, ProviderRequestID, PriceVersion, ErrorCode string
	Input, Output, Cached, Reasoning, Cost, LatencyMS                                int64
	Success, Fallback                                                                bool
	CreatedAt                                                                        time.Time
}

func xsLog(t *testing.T, pool *pgxpool.Pool, requestID string) (xsLogRow, bool) {
	t.Helper()
	var r xsLogRow
	err := pool.QueryRow(context.Background(), `
		SELECT operation_id, user_id, COALESCE(model_used, '<null>'), COALESCE(provider, '<null>'),
		       COALESCE(provider_request_id, '<null>'), COALESCE(price_version, '<null>'),
		       COALESCE(error_code, '<null>'), input_tokens, output_tokens, cached_input_tokens,
		       reasoning_tokens, cost_nano, latency_ms, success, fallback_used, created_at
		  FROM ai_operation_log WHERE request_id = $1`, requestID).
		Scan(&r.OperationID, &r.UserID, &r.Model, &r.Provider, &r.ProviderRequestID, &r.PriceVersion,
			&r.ErrorCode, &r.Input, &r.Output, &r.Cached, &r.Reasoning, &r.Cost, &r.LatencyMS,
			&r.Success, &r.Fallback, &r.CreatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return r, false
	}
	if err != nil {
		t.Fatal(err)
	}
	return r, true
}

func xsCountLog(t *testing.T, pool *pgxpool.Pool) int {
	t.Helper()
	var n int
	if err := pool.QueryRow(context.Background(), `SELECT count(*) FROM ai_operation_log`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

type xsReservation struct {
	Status string
	Actual *int64
}

func xsReservationOf(t *testing.T, pool *pgxpool.Pool, requestID string) xsReservation {
	t.Helper()
	var r xsReservation
	err := pool.QueryRow(context.Background(),
		`SELECT status, actual_nano FROM budget_reservations WHERE request_id = $1`, requestID).Scan(&r.Status, &r.Actual)
	if err != nil {
		t.Fatalf("reservation %s: %v", requestID, err)
	}
	return r
}

func xsRecord(id string) oplog.Record {
	return oplog.Record{
		RequestID: id, OperationID: "email-compose", UserID: "u1",
		Model: "deepseek", Provider: "deepseek", ProviderRequestID: "prov-" + id,
		Usage:        catalog.Usage{InputTokens: 120, CachedInputTokens: 30, OutputTokens: 45, ReasoningTokens: 5},
		Cost:         400,
		PriceVersion: "deepseek-v3.2@2026-11",
		Latency:      1234567 * time.Microsecond, // 1234.567 ms
		Success:      true,
		FallbackUsed: true,
	}
}

func TestOperationsFinishSettle(t *testing.T) {
	ctx := context.Background()
	pool := pg.NewPool(t)
	l := postgres.NewLedger(pool, defaults, nil)
	ops := postgres.NewOperations(pool, func() time.Time { return xsT0 })

	if _, err := l.Reserve(ctx, budget.Reservation{RequestID: "r1", UserID: "u1", Amount: 1000}); err != nil {
		t.Fatal(err)
	}
	rec := xsRecord("r1")
	if err := ops.Finish(ctx, rec, oplog.Settle); err != nil {
		t.Fatal(err)
	}
	if d := today(t, l, "u1"); d.Spent != 400 || d.Reserved != 0 {
		t.Errorf("day after settle = spent %d reserved %d, want 400 / 0", d.Spent, d.Reserved)
	}
	if r := xsReservationOf(t, pool, "r1"); r.Status != "settled" || r.Actual == nil || *r.Actual != 400 {
		t.Errorf("reservation = %s actual %v, want settled 400", r.Status, r.Actual)
	}
	got, ok := xsLog(t, pool, "r1")
	if !ok {
		t.Fatal("no log row")
	}
	want := xsLogRow{
		OperationID: "email-compose", UserID: "u1", Model: "deepseek", Provider: "deepseek",
		ProviderRequestID: "prov-r1", PriceVersion: "deepseek-v3.2@2026-11", ErrorCode: "<null>",
		Input: 120, Output: 45, Cached: 30, Reasoning: 5, Cost: 400, LatencyMS: 1234,
		Success: true, Fallback: true, CreatedAt: xsT0,
	}
	got.CreatedAt = got.CreatedAt.UTC()
	if got != want {
		t.Errorf("log row\n got %+v\nwant %+v", got, want)
	}

	// Replaying (a retried Finish, even with other numbers) changes nothing.
	again := rec
	again.Cost, again.Usage.OutputTokens, again.Success = 999, 1, false
	for _, o := range []oplog.Outcome{oplog.Settle, oplog.Release, oplog.NoReservation} {
		if err := ops.Finish(ctx, again, o); err != nil {
			t.Fatalf("replay %d: %v", o, err)
		}
	}
	if d := today(t, l, "u1"); d.Spent != 400 || d.Reserved != 0 {
		t.Errorf("replays changed the day: spent %d reserved %d", d.Spent, d.Reserved)
	}
	if r := xsReservationOf(t, pool, "r1"); r.Status != "settled" || *r.Actual != 400 {
		t.Errorf("replays changed the reservation: %s %v", r.Status, *r.Actual)
	}
	if again, _ := xsLog(t, pool, "r1"); again.Cost != 400 || again.Output != 45 || !again.Success {
		t.Errorf("replays changed the log row: %+v", again)
	}
	if n := xsCountLog(t, pool); n != 1 {
		t.Errorf("log rows = %d, want 1", n)
	}
}

func TestOperationsFinishRelease(t *testing.T) {
	ctx := context.Background()
	pool := pg.NewPool(t)
	l := postgres.NewLedger(pool, defaults, nil)
	ops := postgres.NewOperations(pool, nil)

	if _, err := l.Reserve(ctx, budget.Reservation{RequestID: "done", UserID: "u1", Amount: 300}); err != nil {
		t.Fatal(err)
	}
	if err := ops.Finish(ctx, xsRecord("done"), oplog.Settle); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Reserve(ctx, budget.Reservation{RequestID: "r2", UserID: "u1", Amount: 500}); err != nil {
		t.Fatal(err)
	}
	rec := oplog.Record{
		RequestID: "r2", OperationID: "email-compose", UserID: "u1", Model: "deepseek", Provider: "deepseek",
		PriceVersion: "deepseek-v3.2@2026-11", Cost: 123, // a failed call's cost is never charged
		Latency: 5 * time.Millisecond, ErrorCode: "content_filtered",
	}
	for i := 0; i < 2; i++ { // the second is a replay
		if err := ops.Finish(ctx, rec, oplog.Release); err != nil {
			t.Fatal(err)
		}
		if d := today(t, l, "u1"); d.Spent != 400 || d.Reserved != 0 {
			t.Errorf("finish %d: day = spent %d reserved %d, want 400 / 0", i, d.Spent, d.Reserved)
		}
	}
	if r := xsReservationOf(t, pool, "r2"); r.Status != "released" || r.Actual != nil {
		t.Errorf("reservation = %s actual %v, want released, no actual", r.Status, r.Actual)
	}
	got, ok := xsLog(t, pool, "r2")
	if !ok {
		t.Fatal("no log row")
	}
	if got.Success || got.Cost != 0 || got.ErrorCode != "content_filtered" || got.Model != "deepseek" || got.LatencyMS != 5 {
		t.Errorf("log row = %+v", got)
	}
}

func TestOperationsFinishNoReservation(t *testing.T) {
	ctx := context.Background()
	pool := pg.NewPool(t)
	l := postgres.NewLedger(pool, defaults, nil)
	ops := postgres.NewOperations(pool, nil)

	if _, err := l.Reserve(ctx, budget.Reservation{RequestID: "other", UserID: "u1", Amount: 700}); err != nil {
		t.Fatal(err)
	}
	rec := oplog.Record{RequestID: "refused", OperationID: "chat_message", UserID: "u1", ErrorCode: "budget_exceeded", Cost: 55}
	if err := ops.Finish(ctx, rec, oplog.NoReservation); err != nil {
		t.Fatal(err)
	}
	got, ok := xsLog(t, pool, "refused")
	if !ok {
		t.Fatal("no log row")
	}
	want := xsLogRow{OperationID: "chat_message", UserID: "u1", Model: "<null>", Provider: "<null>",
		ProviderRequestID: "<null>", PriceVersion: "<null>", ErrorCode: "budget_exceeded", CreatedAt: got.CreatedAt}
	if got != want {
		t.Errorf("log row\n got %+v\nwant %+v", got, want)
	}
	if d := today(t, l, "u1"); d.Spent != 0 || d.Reserved != 700 {
		t.Errorf("NoReservation touched the budget: %+v", d)
	}
	var n int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM budget_reservations WHERE request_id = 'refused'`).Scan(&n); err != nil || n != 0 {
		t.Errorf("reservations of the refused request = %d (%v)", n, err)
	}
	if err := ops.Finish(ctx, rec, oplog.Outcome(42)); err == nil {
		t.Error("an unknown outcome was accepted")
	}
}

func TestOperationsFinishSettleAfterExpiryStillRecordsSpend(t *testing.T) {
	ctx := context.Background()
	pool := pg.NewPool(t)
	// Noon: the test moves the clock four minutes on and must stay within one UTC day.
	clk := newClock(time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC))
	l := postgres.NewLedger(pool, defaults, clk.now)
	ops := postgres.NewOperations(pool, clk.now)

	if _, err := l.Reserve(ctx, budget.Reservation{RequestID: "slow", UserID: "u1", Amount: 5000, TTL: time.Minute}); err != nil {
		t.Fatal(err)
	}
	clk.set(clk.now().Add(2 * time.Minute))
	if n, err := l.SweepExpired(ctx, 10); err != nil || n != 1 {
		t.Fatalf("sweep = %d, %v", n, err)
	}
	if d := today(t, l, "u1"); d.Reserved != 0 {
		t.Fatalf("after sweep reserved = %d", d.Reserved)
	}
	rec := xsRecord("slow")
	rec.Cost = 321
	if err := ops.Finish(ctx, rec, oplog.Settle); err != nil {
		t.Fatal(err)
	}
	if d := today(t, l, "u1"); d.Spent != 321 || d.Reserved != 0 {
		t.Errorf("day = spent %d reserved %d, want 321 / 0 (the sweep already freed the hold)", d.Spent, d.Reserved)
	}
	if r := xsReservationOf(t, pool, "slow"); r.Status != "settled" || *r.Actual != 321 {
		t.Errorf("reservation = %s %v", r.Status, *r.Actual)
	}
	if got, _ := xsLog(t, pool, "slow"); got.Cost != 321 {
		t.Errorf("logged cost = %d", got.Cost)
	}

	// A release after expiry gives nothing back twice.
	if _, err := l.Reserve(ctx, budget.Reservation{RequestID: "slow2", UserID: "u1", Amount: 5000, TTL: time.Minute}); err != nil {
		t.Fatal(err)
	}
	clk.set(clk.now().Add(2 * time.Minute))
	if n, err := l.SweepExpired(ctx, 10); err != nil || n != 1 {
		t.Fatalf("sweep = %d, %v", n, err)
	}
	if err := ops.Finish(ctx, oplog.Record{RequestID: "slow2", OperationID: "email-compose", UserID: "u1", ErrorCode: "timeout"}, oplog.Release); err != nil {
		t.Fatal(err)
	}
	if d := today(t, l, "u1"); d.Spent != 321 || d.Reserved != 0 {
		t.Errorf("release after expiry: day = spent %d reserved %d", d.Spent, d.Reserved)
	}
}

// The settle and the log insert are one statement: when the insert fails, nothing is settled.
func TestOperationsFinishIsAtomic(t *testing.T) {
	ctx := context.Background()
	pool := pg.NewPool(t)
	l := postgres.NewLedger(pool, defaults, nil)
	ops := postgres.NewOperations(pool, nil)
	if _, err := l.Reserve(ctx, budget.Reservation{RequestID: "r", UserID: "u1", Amount: 1000}); err != nil {
		t.Fatal(err)
	}
	rec := xsRecord("r")
	rec.Usage.InputTokens = 1 << 40 // does not fit the INTEGER column: the log insert fails
	rec.Cost = 10
	if err := ops.Finish(ctx, rec, oplog.Settle); err == nil {
		t.Fatal("an impossible log row was accepted")
	}
	if d := today(t, l, "u1"); d.Spent != 0 || d.Reserved != 1000 {
		t.Errorf("a failed finish changed the budget: %+v", d)
	}
	if r := xsReservationOf(t, pool, "r"); r.Status != "reserved" {
		t.Errorf("a failed finish closed the reservation: %s", r.Status)
	}
	if _, ok := xsLog(t, pool, "r"); ok {
		t.Error("a failed finish left a log row")
	}
}

// ---- Toggles ----

func TestTogglesStore(t *testing.T) {
	ctx := context.Background()
	pool := pg.NewPool(t)
	s := postgres.NewToggles(pool)

	all, err := s.LoadToggles(ctx)
	if err != nil {
		t.Fatal(err)
	}
	seeded := []string{"DISABLE_DEEPSEEK", "DISABLE_GEMINI", "DISABLE_ANTHROPIC", "DISABLE_SYNTHESIS", "ENABLE_MAINTENANCE_MODE"}
	if len(all) != len(seeded) {
		t.Errorf("loaded %d toggles, want the %d seeded: %v", len(all), len(seeded), all)
	}
	for _, k := range seeded {
		tg, ok := all[k]
		if !ok || tg.Key != k || tg.Enabled || tg.Description == "" || tg.UpdatedBy != "migration" || tg.UpdatedAt.IsZero() {
			t.Errorf("seeded %s = %+v (present %v)", k, tg, ok)
		}
	}

	before := all["DISABLE_GEMINI"]
	tg, err := s.SetToggle(ctx, "DISABLE_GEMINI", true, "ops@example.com")
	if err != nil {
		t.Fatal(err)
	}
	if !tg.Enabled || tg.UpdatedBy != "ops@example.com" || tg.Description != before.Description || tg.UpdatedAt.Before(before.UpdatedAt) {
		t.Errorf("set = %+v (before %+v)", tg, before)
	}
	if tg, err = s.SetToggle(ctx, "DISABLE_GEMINI", false, "ops2"); err != nil || tg.Enabled || tg.UpdatedBy != "ops2" {
		t.Errorf("set back = %+v, %v", tg, err)
	}

	// A key not in the table is inserted (the service decides which keys may be set).
	tg, err = s.SetToggle(ctx, "DISABLE_OPENROUTER", true, "ops")
	if err != nil {
		t.Fatal(err)
	}
	if tg.Key != "DISABLE_OPENROUTER" || !tg.Enabled || tg.Description != "" || tg.UpdatedBy != "ops" {
		t.Errorf("inserted = %+v", tg)
	}
	all, err = s.LoadToggles(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 6 || !all["DISABLE_OPENROUTER"].Enabled || all["DISABLE_GEMINI"].Enabled {
		t.Errorf("after sets: %+v", all)
	}

	// Through the service, over the real store.
	svc := toggles.NewService(s, map[string]bool{"DISABLE_DEEPSEEK": true}, time.Minute, nil)
	if _, err := svc.Set(ctx, "DISABLE_TYPO", true, "ops", []string{"deepseek"}); !errors.Is(err, toggles.ErrUnknownToggle) {
		t.Errorf("service set of a typo = %v", err)
	}
	v, err := svc.Set(ctx, "ENABLE_MAINTENANCE_MODE", true, "ops", nil)
	if err != nil || !v.Enabled || v.Source != toggles.SourceDatabase {
		t.Errorf("service set = %+v, %v", v, err)
	}
	cur, err := svc.Current(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !cur.ProviderDisabled("deepseek") || !cur.Enabled(toggles.Maintenance) || cur.ProviderDisabled("gemini") {
		t.Errorf("current: deepseek %v maintenance %v gemini %v", cur.ProviderDisabled("deepseek"), cur.Enabled(toggles.Maintenance), cur.ProviderDisabled("gemini"))
	}
}

// ---- Breakers ----

type xsBreakerRow struct {
	Failures    int
	WindowStart time.Time
	OpenUntil   pgtype.Timestamptz
	LastError   string
}

func xsBreaker(t *testing.T, pool *pgxpool.Pool, provider string) xsBreakerRow {
	t.Helper()
	var r xsBreakerRow
	err := pool.QueryRow(context.Background(),
		`SELECT failures, window_started_at, open_until, last_error FROM provider_breakers WHERE provider = $1`, provider).
		Scan(&r.Failures, &r.WindowStart, &r.OpenUntil, &r.LastError)
	if err != nil {
		t.Fatalf("breaker %s: %v", provider, err)
	}
	return r
}

func TestBreakersRecordFailure(t *testing.T) {
	ctx := context.Background()
	pool := pg.NewPool(t)
	s := postgres.NewBreakers(pool)
	p := breaker.Policy{Threshold: 3, Window: time.Minute, Cooldown: 30 * time.Second}

	type step struct {
		at           time.Duration // after xsT0
		wantFailures int
		wantWindow   time.Duration // window start, after xsT0
		wantOpen     time.Duration // open until, after xsT0; 0 = closed
	}
	tests := []struct {
		name   string
		policy breaker.Policy
		steps  []step
	}{
		{
			name: "counts within the window and opens at the threshold", policy: p,
			steps: []step{
				{at: 0, wantFailures: 1, wantWindow: 0},
				{at: 10 * time.Second, wantFailures: 2, wantWindow: 0},
				{at: 20 * time.Second, wantFailures: 3, wantWindow: 0, wantOpen: 50 * time.Second},
			},
		},
		{
			name: "a failure after the window restarts the count", policy: p,
			steps: []step{
				{at: 0, wantFailures: 1, wantWindow: 0},
				{at: 30 * time.Second, wantFailures: 2, wantWindow: 0},
				{at: 61 * time.Second, wantFailures: 1, wantWindow: 61 * time.Second},
				{at: 70 * time.Second, wantFailures: 2, wantWindow: 61 * time.Second},
				{at: 80 * time.Second, wantFailures: 3, wantWindow: 61 * time.Second, wantOpen: 110 * time.Second},
			},
		},
		{
			name: "a failed trial after the cooldown reopens at once", policy: breaker.Policy{Threshold: 2, Window: time.Minute, Cooldown: time.Minute},
			steps: []step{
				{at: 0, wantFailures: 1},
				{at: time.Second, wantFailures: 2, wantOpen: 61 * time.Second},
				// 62 s: the cooldown is over and the window restarted; one failure is enough.
				{at: 62 * time.Second, wantFailures: 1, wantWindow: 62 * time.Second, wantOpen: 122 * time.Second},
			},
		},
		{
			name: "threshold 1 opens on the first failure", policy: breaker.Policy{Threshold: 1, Window: time.Minute, Cooldown: time.Minute},
			steps: []step{{at: 0, wantFailures: 1, wantOpen: time.Minute}},
		},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			provider := fmt.Sprintf("prov%d", i)
			for j, st := range tt.steps {
				state, err := s.RecordFailure(ctx, provider, xsT0.Add(st.at), tt.policy, fmt.Sprintf("err%d", j))
				if err != nil {
					t.Fatal(err)
				}
				var wantOpen time.Time
				if st.wantOpen != 0 {
					wantOpen = xsT0.Add(st.wantOpen)
				}
				if !state.OpenUntil.Equal(wantOpen) {
					t.Errorf("step %d: OpenUntil = %v, want %v", j, state.OpenUntil, wantOpen)
				}
				row := xsBreaker(t, pool, provider)
				if row.Failures != st.wantFailures || !row.WindowStart.Equal(xsT0.Add(st.wantWindow)) || row.LastError != fmt.Sprintf("err%d", j) {
					t.Errorf("step %d: row = %+v, want failures %d window +%v", j, row, st.wantFailures, st.wantWindow)
				}
				if row.OpenUntil.Valid != (st.wantOpen != 0) || (row.OpenUntil.Valid && !row.OpenUntil.Time.Equal(wantOpen)) {
					t.Errorf("step %d: stored open_until = %+v, want %v", j, row.OpenUntil, wantOpen)
				}
			}
		})
	}

	// Only breakers with an open period are loaded.
	loaded, err := s.LoadBreakers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]time.Time{"prov0": xsT0.Add(50 * time.Second), "prov1": xsT0.Add(110 * time.Second), "prov2": xsT0.Add(122 * time.Second), "prov3": xsT0.Add(time.Minute)}
	if len(loaded) != len(want) {
		t.Errorf("loaded %v, want %v", loaded, want)
	}
	for k, v := range want {
		if !loaded[k].OpenUntil.Equal(v) {
			t.Errorf("loaded[%s] = %v, want %v", k, loaded[k].OpenUntil, v)
		}
	}

	// A long reason is truncated rather than failing the write.
	if _, err := s.RecordFailure(ctx, "verbose", xsT0, p, strings.Repeat("x", 600)); err != nil {
		t.Fatal(err)
	}
	if row := xsBreaker(t, pool, "verbose"); len(row.LastError) != 500 {
		t.Errorf("last_error length = %d, want 500", len(row.LastError))
	}
}

func TestBreakersRecordSuccessCloses(t *testing.T) {
	ctx := context.Background()
	pool := pg.NewPool(t)
	s := postgres.NewBreakers(pool)
	p := breaker.Policy{Threshold: 2, Window: time.Minute, Cooldown: time.Minute}
	for _, at := range []time.Duration{0, time.Second} {
		if _, err := s.RecordFailure(ctx, "deepseek", xsT0.Add(at), p, "unavailable"); err != nil {
			t.Fatal(err)
		}
	}
	if loaded, _ := s.LoadBreakers(ctx); loaded["deepseek"].OpenUntil.IsZero() {
		t.Fatal("not open after two failures")
	}
	if err := s.RecordSuccess(ctx, "deepseek"); err != nil {
		t.Fatal(err)
	}
	if row := xsBreaker(t, pool, "deepseek"); row.Failures != 0 || row.OpenUntil.Valid {
		t.Errorf("after success: %+v", row)
	}
	loaded, err := s.LoadBreakers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := loaded["deepseek"]; ok {
		t.Errorf("a closed breaker is still loaded: %v", loaded)
	}
	// The count starts over: one failure does not reopen it.
	st, err := s.RecordFailure(ctx, "deepseek", xsT0.Add(2*time.Second), p, "unavailable")
	if err != nil || !st.OpenUntil.IsZero() {
		t.Errorf("first failure after close = %+v, %v", st, err)
	}
	// Success of a provider without a row is a no-op.
	if err := s.RecordSuccess(ctx, "never-failed"); err != nil {
		t.Error(err)
	}
}

func TestBreakersConcurrentFailuresCountExactly(t *testing.T) {
	ctx := context.Background()
	pool := pg.NewPool(t)
	s := postgres.NewBreakers(pool)
	p := breaker.Policy{Threshold: 1000, Window: time.Minute, Cooldown: time.Minute}
	const n = 20
	var wg sync.WaitGroup
	errs := make(chan error, n)
	start := make(chan struct{})
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			<-start
			// All within one window; the row does not exist yet, so the first inserts race too.
			_, err := s.RecordFailure(ctx, "deepseek", xsT0.Add(time.Duration(i)*time.Millisecond), p, "unavailable")
			errs <- err
		}(i)
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if row := xsBreaker(t, pool, "deepseek"); row.Failures != n || row.OpenUntil.Valid {
		t.Errorf("after %d concurrent failures: %+v", n, row)
	}

	// And at the threshold exactly one state opens it, whatever the interleaving.
	p.Threshold = n
	var opened sync.Map
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			st, err := s.RecordFailure(ctx, "gemini", xsT0, p, "unavailable")
			if err != nil {
				t.Error(err)
				return
			}
			opened.Store(i, !st.OpenUntil.IsZero())
		}(i)
	}
	wg.Wait()
	nOpen := 0
	opened.Range(func(_, v any) bool {
		if v.(bool) {
			nOpen++
		}
		return true
	})
	if nOpen != 1 {
		t.Errorf("%d of %d concurrent failures saw the breaker open, want exactly 1 (the %dth)", nOpen, n, n)
	}
}

// ---- Approvals ----

func xsApproval(user, op, hash string) approval.Approval {
	return approval.Approval{
		UserID: user, OperationID: op, RequestHash: hash, EstimatedCost: money.MustUSD(0.002),
		Reason: approval.ReasonRouteRequires, Summary: "email-compose, 300 tokens",
		ExpiresAt: time.Now().Add(time.Hour).Truncate(time.Microsecond),
	}
}

func xsClaim(a approval.Approval, requestID string) approval.Claim {
	return approval.Claim{ApprovalID: a.ID, UserID: a.UserID, OperationID: a.OperationID, RequestHash: a.RequestHash, RequestID: requestID}
}

func TestApprovalsCreateListDecide(t *testing.T) {
	ctx := context.Background()
	pool := pg.NewPool(t)
	clk := newClock(time.Now().UTC().Truncate(time.Microsecond))
	s := postgres.NewApprovals(pool, clk.now)

	in := xsApproval("u1", "email-compose", "h1")
	a, err := s.CreateApproval(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	if uuid.Validate(a.ID) != nil || a.Status != approval.StatusPending || a.UserID != "u1" || a.OperationID != "email-compose" ||
		a.RequestHash != "h1" || a.EstimatedCost != in.EstimatedCost || a.Reason != in.Reason || a.Summary != in.Summary ||
		!a.CreatedAt.Equal(clk.now()) || !a.ExpiresAt.Equal(in.ExpiresAt) || a.DecidedBy != "" || !a.DecidedAt.IsZero() || a.UsedRequestID != "" {
		t.Errorf("created = %+v", a)
	}
	clk.set(clk.now().Add(time.Second))
	b, err := s.CreateApproval(ctx, xsApproval("u2", "chat_message", "h2"))
	if err != nil {
		t.Fatal(err)
	}
	clk.set(clk.now().Add(time.Second))
	c, err := s.CreateApproval(ctx, xsApproval("u1", "email-compose", "h3"))
	if err != nil {
		t.Fatal(err)
	}
	// A given id is kept.
	clk.set(clk.now().Add(time.Second))
	fixed := xsApproval("u3", "email-compose", "h4")
	fixed.ID = uuid.NewString()
	if got, err := s.CreateApproval(ctx, fixed); err != nil || got.ID != fixed.ID {
		t.Errorf("create with id = %+v, %v", got, err)
	}

	approved, err := s.DecideApproval(ctx, a.ID, true, "admin")
	if err != nil {
		t.Fatal(err)
	}
	if approved.Status != approval.StatusApproved || approved.DecidedBy != "admin" || approved.DecidedAt.IsZero() || approved.ID != a.ID {
		t.Errorf("approved = %+v", approved)
	}
	rejected, err := s.DecideApproval(ctx, b.ID, false, "admin2")
	if err != nil || rejected.Status != approval.StatusRejected || rejected.DecidedBy != "admin2" {
		t.Errorf("rejected = %+v, %v", rejected, err)
	}
	// Deciding again, either way, is refused.
	for _, id := range []string{a.ID, b.ID} {
		for _, approve := range []bool{true, false} {
			if _, err := s.DecideApproval(ctx, id, approve, "admin"); !errors.Is(err, approval.ErrNotPending) {
				t.Errorf("decide %s again (%v) = %v, want ErrNotPending", id, approve, err)
			}
		}
	}
	for _, id := range []string{uuid.NewString(), "not-a-uuid", "", "'; DROP TABLE approvals; --"} {
		if _, err := s.DecideApproval(ctx, id, true, "admin"); !errors.Is(err, approval.ErrNotFound) {
			t.Errorf("decide %q = %v, want ErrNotFound", id, err)
		}
	}

	t.Run("list", func(t *testing.T) {
		ids := func(list []approval.Approval) []string {
			var out []string
			for _, x := range list {
				out = append(out, x.ID)
			}
			return out
		}
		tests := []struct {
			status approval.Status
			want   []string
		}{
			{approval.StatusPending, []string{fixed.ID, c.ID}},
			{approval.StatusApproved, []string{a.ID}},
			{approval.StatusRejected, []string{b.ID}},
			{approval.StatusUsed, nil},
			{"", []string{fixed.ID, c.ID, b.ID, a.ID}},
		}
		for _, tt := range tests {
			list, err := s.ListApprovals(ctx, tt.status, 0)
			if err != nil {
				t.Errorf("list %q: %v", tt.status, err)
				continue
			}
			if got := ids(list); fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("list %q = %v, want %v (newest first)", tt.status, got, tt.want)
			}
		}
		if list, err := s.ListApprovals(ctx, "", 1); err != nil || len(list) != 1 || list[0].ID != fixed.ID {
			t.Errorf("list with limit 1 = %v, %v", ids(list), err)
		}
	})
}

func TestApprovalsClaim(t *testing.T) {
	ctx := context.Background()
	pool := pg.NewPool(t)
	s := postgres.NewApprovals(pool, nil)
	newApproved := func(user, hash string) approval.Approval {
		t.Helper()
		a, err := s.CreateApproval(ctx, xsApproval(user, "email-compose", hash))
		if err != nil {
			t.Fatal(err)
		}
		if a, err = s.DecideApproval(ctx, a.ID, true, "admin"); err != nil {
			t.Fatal(err)
		}
		return a
	}

	a := newApproved("u1", "h1")
	// Refusals first: none of them may use the approval up.
	refusals := []struct {
		name  string
		claim approval.Claim
		want  error
	}{
		{"another user", approval.Claim{ApprovalID: a.ID, UserID: "u2", OperationID: a.OperationID, RequestHash: a.RequestHash, RequestID: "x1"}, approval.ErrNotFound},
		{"another user and request", approval.Claim{ApprovalID: a.ID, UserID: "u2", OperationID: "chat_message", RequestHash: "zz", RequestID: "x2"}, approval.ErrNotFound},
		{"another request", approval.Claim{ApprovalID: a.ID, UserID: "u1", OperationID: a.OperationID, RequestHash: "h2", RequestID: "x3"}, approval.ErrMismatch},
		{"another operation", approval.Claim{ApprovalID: a.ID, UserID: "u1", OperationID: "chat_message", RequestHash: a.RequestHash, RequestID: "x4"}, approval.ErrMismatch},
		{"unknown id", approval.Claim{ApprovalID: uuid.NewString(), UserID: "u1", OperationID: a.OperationID, RequestHash: a.RequestHash, RequestID: "x5"}, approval.ErrNotFound},
		{"malformed id", approval.Claim{ApprovalID: "123", UserID: "u1", OperationID: a.OperationID, RequestHash: a.RequestHash, RequestID: "x6"}, approval.ErrNotFound},
	}
	for _, tt := range refusals {
		if _, err := s.ClaimApproval(ctx, tt.claim); !errors.Is(err, tt.want) {
			t.Errorf("%s: claim = %v, want %v", tt.name, err, tt.want)
		}
	}
	used, err := s.ClaimApproval(ctx, xsClaim(a, "run-1"))
	if err != nil {
		t.Fatalf("claim after refusals: %v", err)
	}
	if used.Status != approval.StatusUsed || used.UsedRequestID != "run-1" {
		t.Errorf("claimed = %+v", used)
	}
	if _, err := s.ClaimApproval(ctx, xsClaim(a, "run-2")); !errors.Is(err, approval.ErrNotUsable) {
		t.Errorf("second claim = %v, want ErrNotUsable", err)
	}

	// Unclaim only by the request that claimed it.
	if err := s.UnclaimApproval(ctx, a.ID, "run-2"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ClaimApproval(ctx, xsClaim(a, "run-3")); !errors.Is(err, approval.ErrNotUsable) {
		t.Errorf("claim after another request's unclaim = %v, want ErrNotUsable", err)
	}
	if err := s.UnclaimApproval(ctx, a.ID, "run-1"); err != nil {
		t.Fatal(err)
	}
	if again, err := s.ClaimApproval(ctx, xsClaim(a, "run-4")); err != nil || again.UsedRequestID != "run-4" {
		t.Errorf("claim after unclaim = %+v, %v", again, err)
	}

	// Pending and rejected approvals cannot be used.
	p, err := s.CreateApproval(ctx, xsApproval("u1", "email-compose", "hp"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.ClaimApproval(ctx, xsClaim(p, "run-p")); !errors.Is(err, approval.ErrNotUsable) {
		t.Errorf("claim of a pending approval = %v, want ErrNotUsable", err)
	}
	if _, err := s.DecideApproval(ctx, p.ID, false, "admin"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ClaimApproval(ctx, xsClaim(p, "run-r")); !errors.Is(err, approval.ErrNotUsable) {
		t.Errorf("claim of a rejected approval = %v, want ErrNotUsable", err)
	}
	// Unclaim of something never claimed changes nothing.
	if err := s.UnclaimApproval(ctx, p.ID, "run-r"); err != nil {
		t.Fatal(err)
	}
	var status string
	if err := pool.QueryRow(ctx, `SELECT status FROM approvals WHERE approval_id = $1`, p.ID).Scan(&status); err != nil || status != "rejected" {
		t.Errorf("unclaim of a rejected approval made it %q (%v)", status, err)
	}
}

func TestApprovalsConcurrentClaimsRunOnce(t *testing.T) {
	ctx := context.Background()
	pool := pg.NewPool(t)
	s := postgres.NewApprovals(pool, nil)
	a, err := s.CreateApproval(ctx, xsApproval("u1", "email-compose", "h"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.DecideApproval(ctx, a.ID, true, "admin"); err != nil {
		t.Fatal(err)
	}
	const n = 10
	var wg sync.WaitGroup
	var mu sync.Mutex
	var winners []string
	notUsable := 0
	start := make(chan struct{})
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			<-start
			id := fmt.Sprintf("req-%d", i)
			_, err := s.ClaimApproval(ctx, xsClaim(a, id))
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				winners = append(winners, id)
			case errors.Is(err, approval.ErrNotUsable):
				notUsable++
			default:
				t.Errorf("claim %s: %v", id, err)
			}
		}(i)
	}
	close(start)
	wg.Wait()
	if len(winners) != 1 || notUsable != n-1 {
		t.Fatalf("winners %v, not usable %d; want exactly one winner", winners, notUsable)
	}
	var used string
	if err := pool.QueryRow(ctx, `SELECT used_request_id FROM approvals WHERE approval_id = $1`, a.ID).Scan(&used); err != nil || used != winners[0] {
		t.Errorf("used_request_id = %q (%v), want %s", used, err, winners[0])
	}
}

func TestApprovalsExpire(t *testing.T) {
	ctx := context.Background()
	pool := pg.NewPool(t)
	s := postgres.NewApprovals(pool, nil)

	// Pending and past its expiry: reported expired, cannot be decided.
	in := xsApproval("u1", "email-compose", "h1")
	in.ExpiresAt = time.Now().Add(-time.Minute)
	pending, err := s.CreateApproval(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	if pending.Status != approval.StatusExpired {
		t.Errorf("created already expired: status %s", pending.Status)
	}
	if _, err := s.DecideApproval(ctx, pending.ID, true, "admin"); !errors.Is(err, approval.ErrNotPending) {
		t.Errorf("decide expired = %v, want ErrNotPending", err)
	}

	// Approved, then its time ran out before it was used.
	a, err := s.CreateApproval(ctx, xsApproval("u1", "email-compose", "h2"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.DecideApproval(ctx, a.ID, true, "admin"); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `UPDATE approvals SET expires_at = now() - interval '1 second' WHERE approval_id = $1`, a.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ClaimApproval(ctx, xsClaim(a, "late")); !errors.Is(err, approval.ErrNotUsable) {
		t.Errorf("claim expired = %v, want ErrNotUsable", err)
	}

	// Used ones stay used, rejected ones rejected, even past expiry.
	u, err := s.CreateApproval(ctx, xsApproval("u1", "email-compose", "h3"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.DecideApproval(ctx, u.ID, true, "admin"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ClaimApproval(ctx, xsClaim(u, "on-time")); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `UPDATE approvals SET expires_at = now() - interval '1 second' WHERE approval_id = $1`, u.ID); err != nil {
		t.Fatal(err)
	}

	list, err := s.ListApprovals(ctx, "", 0)
	if err != nil {
		t.Fatalf("list: %v", err)
	}
	got := map[string]approval.Status{}
	for _, x := range list {
		got[x.ID] = x.Status
	}
	want := map[string]approval.Status{pending.ID: approval.StatusExpired, a.ID: approval.StatusExpired, u.ID: approval.StatusUsed}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("statuses = %v, want %v", got, want)
	}
	expired, err := s.ListApprovals(ctx, approval.StatusExpired, 0)
	if err != nil {
		t.Fatalf("list expired: %v", err)
	}
	if len(expired) != 2 {
		t.Errorf("list expired = %d approvals, want 2", len(expired))
	}
	if approvedNow, err := s.ListApprovals(ctx, approval.StatusApproved, 0); err != nil || len(approvedNow) != 0 {
		t.Errorf("an expired approval is still listed as approved: %v, %v", approvedNow, err)
	}
}
