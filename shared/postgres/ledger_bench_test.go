package postgres_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/helixhq/helix/shared/budget"
	"github.com/helixhq/helix/shared/money"
	"github.com/helixhq/helix/shared/postgres"
)

// benchUsers is how many users the "users=many" variant spreads its calls over. Consecutive
// operations go to consecutive users, so the conc operations in flight at any moment never share
// a day row; the users=one variant sends every call to the same row, the ledger's contention point.
const benchUsers = 4096

// BenchmarkReserveSettle measures one Reserve followed by one Settle of the same request id (a
// "pair", what every AI call costs the ledger) against local Postgres, with conc goroutines each
// doing whole pairs on a pool of conc connections. ns/op is wall time per pair across all
// goroutines, so pairs/s = 1e9 / ns/op; it is also reported directly.
//
//	go test -run '^$' -bench BenchmarkReserveSettle -benchtime 3s ./shared/postgres/
//
// The pool uses the production default query exec mode ("exec"); HELIX_BENCH_EXEC_MODE picks
// another (e.g. cache_statement) to compare.
func BenchmarkReserveSettle(b *testing.B) {
	url := pg.NewDatabase(b)
	mode := os.Getenv("HELIX_BENCH_EXEC_MODE")
	// Large enough that no reservation in any run is refused: every pair does the full work.
	limits := budget.Limits{DailyLimit: money.MustUSD(1_000_000), Warning: money.MustUSD(900_000)}
	var seq atomic.Int64 // request ids stay unique across sub-benchmarks and b.N rounds

	for _, conc := range []int{1, 16, 64} {
		pool, err := postgres.Open(context.Background(), postgres.PoolConfig{URL: url, MaxConns: int32(conc), ExecMode: mode})
		if err != nil {
			b.Fatalf("open pool: %v", err)
		}
		ledger := postgres.NewLedger(pool, limits, nil)
		b.Run(fmt.Sprintf("conc=%d", conc), func(b *testing.B) {
			b.Run("users=many", func(b *testing.B) {
				runPairs(b, pool, ledger, conc, &seq, func(i int64) string {
					return "bench-u" + strconv.FormatInt(i%benchUsers, 10)
				})
			})
			b.Run("users=one", func(b *testing.B) {
				runPairs(b, pool, ledger, conc, &seq, func(int64) string { return "bench-hot-user" })
			})
		})
		pool.Close()
	}
}

// runPairs does b.N reserve+settle pairs from conc goroutines that take operation numbers from a
// shared counter until b.N are taken.
func runPairs(b *testing.B, pool *pgxpool.Pool, l *postgres.Ledger, conc int, seq *atomic.Int64, user func(int64) string) {
	ctx := context.Background()
	warm(b, pool, conc)
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
				adm, err := l.Reserve(ctx, budget.Reservation{RequestID: id, UserID: user(i), Amount: amount})
				if err == nil && adm.Replayed {
					err = fmt.Errorf("request id %s was already reserved", id)
				}
				if err == nil {
					err = l.Settle(ctx, id, actual)
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
