package postgres_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/helixhq/helix/shared/budget"
	"github.com/helixhq/helix/shared/catalog"
	"github.com/helixhq/helix/shared/groupcommit"
	"github.com/helixhq/helix/shared/money"
	"github.com/helixhq/helix/shared/oplog"
	"github.com/helixhq/helix/shared/postgres"
)

// benchUsers is how many users the "users=many" variant spreads its calls over. Consecutive
// operations go to consecutive users, so the conc operations in flight at any moment never share
// a day row; the users=one variant sends every call to the same row, the ledger's contention point.
const benchUsers = 4096

// BenchmarkReserveSettle measures one Reserve followed by one settle of the same request id (a
// "pair", what every AI call costs the ledger) against local Postgres, with conc goroutines each
// doing whole pairs. The settle is the call path's: Operations.Finish, which closes the
// reservation and writes the call's ai_operation_log row in the same statement. ns/op is wall
// time per pair across all goroutines, so pairs/s = 1e9 / ns/op; it is also reported directly.
//
// commit=each writes every reservation and settlement with its own statement and commit, on a
// pool of conc connections; commit=group turns on group commit (shared/groupcommit) with the
// functions' default pool of 4 connections and the batchers the functions build over it
// (app.Core.GroupCommitOptions: one batch in flight of each kind).
//
//	go test -run '^$' -bench BenchmarkReserveSettle -benchtime 3s ./shared/postgres/
//
// The pool uses the production default query exec mode ("exec"); HELIX_BENCH_EXEC_MODE picks
// another (e.g. cache_statement) to compare.
//
// The database starts with a history (seedHistory), as a deployment's does: on empty, never
// analyzed tables the first minute's plans would be measured instead of the ledger's.
func BenchmarkReserveSettle(b *testing.B) {
	url := pg.NewDatabase(b)
	seedHistory(b, url)
	mode := os.Getenv("HELIX_BENCH_EXEC_MODE")
	// Large enough that no reservation in any run is refused: every pair does the full work.
	limits := budget.Limits{DailyLimit: money.MustUSD(1_000_000), Warning: money.MustUSD(900_000)}
	var seq atomic.Int64 // request ids stay unique across sub-benchmarks and b.N rounds

	for _, conc := range []int{1, 16, 64} {
		for _, commit := range []string{"each", "group"} {
			conns := int32(conc)
			if commit == "group" {
				conns = 4
			}
			pool, err := postgres.Open(context.Background(), postgres.PoolConfig{URL: url, MaxConns: conns, ExecMode: mode})
			if err != nil {
				b.Fatalf("open pool: %v", err)
			}
			ledger, ops := postgres.NewLedger(pool, limits, nil), postgres.NewOperations(pool, nil)
			if commit == "group" {
				opts := groupcommit.Options{MaxBatch: 64, MaxInFlight: 1}
				ledger.GroupCommit(opts, nil)
				ops.GroupCommit(opts, nil)
			}
			b.Run(fmt.Sprintf("conc=%d/commit=%s", conc, commit), func(b *testing.B) {
				b.Run("users=many", func(b *testing.B) {
					runPairs(b, pool, ledger, ops, conc, &seq, func(i int64) string {
						return "bench-u" + strconv.FormatInt(i%benchUsers, 10)
					})
				})
				b.Run("users=one", func(b *testing.B) {
					runPairs(b, pool, ledger, ops, conc, &seq, func(int64) string { return "bench-hot-user" })
				})
			})
			pool.Close()
		}
	}
}

// historyCalls is how many settled calls seedHistory writes.
const historyCalls = 50_000

// seedHistory gives the database yesterday's settled calls (reservations, budget days and log
// rows of benchUsers users) and analyzes it. PL/pgSQL keeps a function's plans for the life of
// a connection until the tables' statistics change, and autovacuum first analyzes a new table
// up to a minute after it grows: plans made on the empty tables of a new database read
// budget_reservations with a sequential scan, which auto_explain showed at 2.5 ms a statement
// by 8,000 rows (a first group-commit run at 950 pairs/s, the next ones at 4,600-5,100).
func seedHistory(b *testing.B, url string) {
	b.Helper()
	ctx := context.Background()
	pool, err := postgres.Open(ctx, postgres.PoolConfig{URL: url, MaxConns: 1})
	if err != nil {
		b.Fatalf("open pool: %v", err)
	}
	defer pool.Close()
	for _, q := range []struct {
		sql  string
		args []any
	}{
		{`INSERT INTO budget_days (user_id, day, limit_nano, spent_nano, reserved_nano)
		  SELECT 'bench-u' || u, current_date - 1, 1000000000000000, 0, 0 FROM generate_series(0, $1 - 1) u`,
			[]any{benchUsers}},
		{`INSERT INTO budget_reservations (request_id, user_id, day, amount_nano, status, actual_nano, created_at, expires_at, closed_at)
		  SELECT 'history-' || g, 'bench-u' || (g % $1), current_date - 1, 500000, 'settled', 100000, now() - interval '1 day', now() - interval '1 day', now() - interval '1 day'
		    FROM generate_series(1, $2) g`,
			[]any{benchUsers, historyCalls}},
		{`INSERT INTO ai_operation_log (request_id, operation_id, user_id, model_used, provider, input_tokens, output_tokens, cost_nano, price_version, latency_ms, success, created_at)
		  SELECT 'history-' || g, 'chat_message', 'bench-u' || (g % $1), 'deepseek', 'deepseek', 200, 150, 100000, 'bench', 300, true, now() - interval '1 day'
		    FROM generate_series(1, $2) g`,
			[]any{benchUsers, historyCalls}},
	} {
		if _, err := pool.Exec(ctx, q.sql, q.args...); err != nil {
			b.Fatalf("seed history: %v", err)
		}
	}
	if _, err := pool.Exec(ctx, `ANALYZE`); err != nil {
		b.Fatalf("analyze: %v", err)
	}
}

// runPairs does b.N reserve+settle pairs from conc goroutines that take operation numbers from a
// shared counter until b.N are taken.
func runPairs(b *testing.B, pool *pgxpool.Pool, l *postgres.Ledger, ops *postgres.Operations, conc int, seq *atomic.Int64, user func(int64) string) {
	ctx := context.Background()
	warm(b, pool, int(pool.Config().MaxConns))
	amount := money.MustUSD(0.0005) // about a chat message's worst case
	actual := money.MustUSD(0.0001)
	var (
		next   atomic.Int64
		failed atomic.Bool
		wg     sync.WaitGroup
	)
	n := int64(b.N)
	b.ResetTimer()
	for range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !failed.Load() {
				i := next.Add(1) - 1
				if i >= n {
					return
				}
				id := "bench-" + strconv.FormatInt(seq.Add(1), 10)
				u := user(i)
				adm, err := l.Reserve(ctx, budget.Reservation{RequestID: id, UserID: u, Amount: amount})
				if err == nil && adm.Replayed {
					err = fmt.Errorf("request id %s was already reserved", id)
				}
				if err == nil {
					err = ops.Finish(ctx, oplog.Record{RequestID: id, OperationID: "chat_message", UserID: u,
						Model: "deepseek", Provider: "deepseek", Usage: catalog.Usage{InputTokens: 200, OutputTokens: 150},
						Cost: actual, PriceVersion: "bench", Latency: 300 * time.Millisecond, Success: true}, oplog.Settle)
				}
				if err != nil {
					if failed.CompareAndSwap(false, true) {
						b.Errorf("pair %d: %v", i, err)
					}
					return
				}
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "pairs/s")
}

// warm opens conc connections before the clock starts, so connection set-up is not measured.
func warm(b *testing.B, pool *pgxpool.Pool, conc int) {
	b.Helper()
	conns := make([]*pgxpool.Conn, 0, conc)
	defer func() {
		for _, c := range conns {
			c.Release()
		}
	}()
	for range conc {
		c, err := pool.Acquire(context.Background())
		if err != nil {
			b.Fatalf("warm pool: %v", err)
		}
		conns = append(conns, c)
	}
}
