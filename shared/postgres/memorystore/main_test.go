package memorystore_test

import (
	"context"
	"fmt"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/helixhq/helix/shared/memory"
	"github.com/helixhq/helix/shared/pgtest"
	"github.com/helixhq/helix/shared/postgres/memorystore"
)

var pg *pgtest.Server

func TestMain(m *testing.M) {
	os.Exit(pgtest.Main(m, func(s *pgtest.Server) { pg = s }))
}

// t0 is the test clock's start; Postgres keeps microseconds, so every time is whole seconds.
var t0 = time.Date(2026, 11, 20, 12, 0, 0, 0, time.UTC)

// clock is a settable test clock.
type clock struct{ t atomic.Pointer[time.Time] }

func newClock(t time.Time) *clock        { c := &clock{}; c.set(t); return c }
func (c *clock) set(t time.Time)         { c.t.Store(&t) }
func (c *clock) now() time.Time          { return *c.t.Load() }
func (c *clock) advance(d time.Duration) { c.set(c.now().Add(d)) }

type env struct {
	pool  *pgxpool.Pool
	clock *clock
	mem   *memorystore.Memory
}

func newEnv(t *testing.T) *env {
	t.Helper()
	pool := pg.NewPool(t)
	c := newClock(t0)
	return &env{pool: pool, clock: c, mem: memorystore.NewMemory(pool, c.now)}
}

func (e *env) exec(t *testing.T, sql string, args ...any) {
	t.Helper()
	if _, err := e.pool.Exec(context.Background(), sql, args...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// scalar reads one value.
func scalar[T any](t *testing.T, e *env, sql string, args ...any) T {
	t.Helper()
	var v T
	if err := e.pool.QueryRow(context.Background(), sql, args...).Scan(&v); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return v
}

func (e *env) count(t *testing.T, sql string, args ...any) int {
	t.Helper()
	return scalar[int](t, e, sql, args...)
}

// message is the stored text of message seq (odd seqs are the user's, even the assistant's).
func message(seq int64) string { return fmt.Sprintf("message %d", seq) }

func role(seq int64) string {
	if seq%2 == 1 {
		return "user"
	}
	return "assistant"
}

// conversation stores a conversation of the user with n messages, last active at lastActivity.
func (e *env) conversation(t *testing.T, user string, n int64, lastActivity time.Time) string {
	t.Helper()
	id := uuid.NewString()
	e.exec(t, `INSERT INTO conversations (conversation_id, user_id, last_seq, created_at, updated_at, last_activity_at)
	           VALUES ($1, $2, $3, $4, $4, $4)`, id, user, n, lastActivity)
	for s := int64(1); s <= n; s++ {
		e.exec(t, `INSERT INTO session_messages (conversation_id, seq, role, content, created_at, model_used)
			VALUES ($1, $2, $3, $4, $5, CASE WHEN $3 = 'assistant' THEN 'deepseek' END)`,
			id, s, role(s), message(s), lastActivity)
	}
	return id
}

// insight stores an insight as of at (valid from and last reinforced then).
type insightRow struct {
	user        string
	layer       memory.Layer
	text        string
	confidence  float64
	at          time.Time
	invalidated bool
}

func (e *env) insight(t *testing.T, r insightRow) string {
	t.Helper()
	id := uuid.NewString()
	var inv *time.Time
	if r.invalidated {
		inv = &r.at
	}
	e.exec(t, `INSERT INTO conversation_insights (insight_id, user_id, layer, layer_name, text, confidence, valid_from,
	                                             last_reinforced_at, invalidated_at, created_at, updated_at)
	           VALUES ($1, $2, $3, $4, $5, $6, $7, $7, $8, $7, $7)`,
		id, r.user, int(r.layer), r.layer.Name(), r.text, r.confidence, r.at, inv)
	return id
}

func (e *env) evidence(t *testing.T, insight, conv string, seq int64, kind memory.Kind) {
	t.Helper()
	e.exec(t, `INSERT INTO insight_evidence (insight_id, conversation_id, seq, kind) VALUES ($1, $2, $3, $4)`, insight, conv, seq, string(kind))
}

// evidenceOf lists an insight's evidence as "kind:seq" in seq order.
func (e *env) evidenceOf(t *testing.T, insight string) []string {
	t.Helper()
	rows, _ := e.pool.Query(context.Background(), `SELECT kind || ':' || seq FROM insight_evidence WHERE insight_id = $1 ORDER BY seq, kind`, insight)
	list, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return list
}
