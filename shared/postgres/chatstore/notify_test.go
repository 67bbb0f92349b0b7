package chatstore_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/helixhq/helix/shared/postgres/chatstore"
)

// guard bounds every wait for a wake: a wake that never comes fails the test instead of hanging it.
const guard = 15 * time.Second

func waitWake(t *testing.T, what string, ch <-chan struct{}) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(guard):
		t.Fatalf("%s: no wake", what)
	}
}

func noWake(t *testing.T, what string, ch <-chan struct{}) {
	t.Helper()
	select {
	case <-ch:
		t.Fatalf("%s: woken", what)
	default:
	}
}

// drain empties a pending wake.
func drain(ch <-chan struct{}) {
	select {
	case <-ch:
	default:
	}
}

// warnings records the notifier's warnings.
type warnings struct {
	mu   sync.Mutex
	msgs []string
}

func (w *warnings) warn(msg string, args ...any) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.msgs = append(w.msgs, fmt.Sprint(append([]any{msg}, args...)...))
}

func (w *warnings) all() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.msgs...)
}

// notifyFixture is a notifier over a fresh database, listening: sentinel's subscription has had
// the wake that follows the LISTEN, so notifications sent from now on are delivered.
type notifyFixture struct {
	*fixture
	n        *chatstore.Notifier
	warnings *warnings
	sentinel string
	sentWake <-chan struct{}
}

func newNotifyFixture(t *testing.T) *notifyFixture {
	t.Helper()
	f := &notifyFixture{fixture: newFixture(t), warnings: &warnings{}}
	f.n = chatstore.NewNotifier(f.pool, pg.ListenConfig(t, f.pool), f.warnings.warn)
	t.Cleanup(f.n.Close)
	f.sentinel = uuid.NewString()
	f.sentWake = f.subscribe(t, f.sentinel)
	waitWake(t, "the wake after LISTEN", f.sentWake)
	return f
}

func (f *notifyFixture) subscribe(t *testing.T, conv string) <-chan struct{} {
	t.Helper()
	ch, stop, err := f.n.Subscribe(context.Background(), conv)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	return ch
}

// barrier sends a notification for the sentinel and waits for it: the listener handles
// notifications in the order they were committed, so every one committed before has been
// handled when it returns.
func (f *notifyFixture) barrier(t *testing.T) {
	t.Helper()
	drain(f.sentWake)
	if _, err := f.pool.Exec(context.Background(), `SELECT pg_notify('helix_chat', $1 || ':0')`, f.sentinel); err != nil {
		t.Fatal(err)
	}
	waitWake(t, "the sentinel", f.sentWake)
}

// listeners are the backends of this database that last ran the notifier's LISTEN.
func listeners(t *testing.T, pool *pgxpool.Pool) (pids []int, idle bool) {
	t.Helper()
	rows, err := pool.Query(context.Background(), `
		SELECT pid, state = 'idle' FROM pg_stat_activity
		 WHERE datname = current_database() AND query = 'LISTEN helix_chat' AND pid <> pg_backend_pid()`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	idle = true
	for rows.Next() {
		var pid int
		var isIdle bool
		if err := rows.Scan(&pid, &isIdle); err != nil {
			t.Fatal(err)
		}
		pids = append(pids, pid)
		idle = idle && isIdle
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return pids, idle
}

// eventually polls cond until it holds (nothing else signals these: they are the server's view).
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(guard)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, guard)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestNotifierWakesOnCommit: a subscriber is woken when a message of its conversation commits on
// another connection (a user message and a reply alike), not by another conversation's, not
// before the commit, and not after it unsubscribed.
func TestNotifierWakesOnCommit(t *testing.T) {
	t.Parallel()
	f := newNotifyFixture(t)
	ctx := context.Background()
	other := f.newConversation(t, "alice")
	mine, theirs := f.subscribe(t, f.conv), f.subscribe(t, other)

	b := f.begin(t, "c1", "Hello")
	f.barrier(t)
	waitWake(t, "the user message", mine)
	noWake(t, "another conversation's message", theirs)

	f.reply(t, b.Seq, "Hi", 5)
	f.barrier(t)
	waitWake(t, "the reply", mine)
	noWake(t, "another conversation's reply", theirs)

	// A message of the other conversation in a transaction not yet committed wakes no one.
	tx, err := f.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, `SELECT * FROM helix_chat_begin($1, 'alice', 'c9', 'pending', now(), '1 minute')`, other); err != nil {
		t.Fatal(err)
	}
	f.barrier(t)
	noWake(t, "an uncommitted message", theirs)
	noWake(t, "an uncommitted message of another conversation", mine)
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	waitWake(t, "the message once committed", theirs)
	f.barrier(t)
	noWake(t, "another conversation's committed message", mine)

	// Two subscribers of one conversation are both woken; one that unsubscribed is not.
	second, stop, err := f.n.Subscribe(ctx, f.conv)
	if err != nil {
		t.Fatal(err)
	}
	gone, stopGone, err := f.n.Subscribe(ctx, f.conv)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	stopGone()
	f.clock.advance(time.Second)
	f.begin(t, "c2", "Again")
	f.barrier(t)
	waitWake(t, "the first subscriber", mine)
	waitWake(t, "the second subscriber", second)
	noWake(t, "an ended subscription", gone)
	if w := f.warnings.all(); len(w) != 0 {
		t.Errorf("warnings %v", w)
	}
}

// TestNotifierClose: Close ends the listener (its connection leaves the server), wakes those
// waiting so they read once more, returns, and may be called again; a notifier never used closes
// at once.
func TestNotifierClose(t *testing.T) {
	t.Parallel()
	f := newNotifyFixture(t)
	waiting := f.subscribe(t, f.conv)
	if pids, _ := listeners(t, f.pool); len(pids) != 1 {
		t.Fatalf("listening backends %v, want 1", pids)
	}
	f.n.Close()
	waitWake(t, "a waiter at Close", waiting)
	eventually(t, "the listener's connection closes", func() bool {
		pids, _ := listeners(t, f.pool)
		return len(pids) == 0
	})
	f.n.Close()

	// Subscribing after Close starts no listener.
	late := f.subscribe(t, f.conv)
	f.clock.advance(time.Second)
	f.begin(t, "c1", "Hello")
	if pids, _ := listeners(t, f.pool); len(pids) != 0 {
		t.Errorf("a listener %v runs after Close", pids)
	}
	noWake(t, "a subscription after Close", late)

	unused := chatstore.NewNotifier(f.pool, pg.ListenConfig(t, f.pool), f.warnings.warn)
	unused.Close()
}

// TestNotifierReconnects: when the LISTEN connection is killed, every waiter is woken (a
// notification may have been lost), the notifier says so and listens again on a new connection,
// and notifications reach subscribers again.
func TestNotifierReconnects(t *testing.T) {
	t.Parallel()
	f := newNotifyFixture(t)
	waiting := f.subscribe(t, f.conv)
	before, _ := listeners(t, f.pool)
	if len(before) != 1 {
		t.Fatalf("listening backends %v, want 1", before)
	}
	var killed bool
	if err := f.pool.QueryRow(context.Background(), `SELECT pg_terminate_backend($1)`, before[0]).Scan(&killed); err != nil || !killed {
		t.Fatalf("terminate the listener %d: %v, %v", before[0], killed, err)
	}
	waitWake(t, "a waiter when the connection dies", waiting)

	eventually(t, "a new listener", func() bool {
		pids, idle := listeners(t, f.pool)
		return len(pids) == 1 && pids[0] != before[0] && idle
	})
	warned := false
	for _, w := range f.warnings.all() {
		warned = warned || strings.Contains(w, "reconnecting")
	}
	if !warned {
		t.Errorf("warnings %v, want the reconnection said", f.warnings.all())
	}

	// Two messages, each waited for: the reconnection's own wake can stand in for at most one.
	drain(waiting)
	b := f.begin(t, "c1", "After the reconnect")
	waitWake(t, "the message after the reconnect", waiting)
	f.reply(t, b.Seq, "Hi", 5)
	waitWake(t, "the reply after the reconnect", waiting)
	f.barrier(t)
}
