package chatstore

import (
	"context"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/helixhq/helix/shared/chat"
)

// chatChannel is the NOTIFY channel the chat functions (helix_chat_begin, helix_chat_reply)
// announce new messages on, with "<conversation id>:<seq>" as the payload.
const chatChannel = "helix_chat"

// Notifier wakes readers waiting for new messages of a conversation. One connection per process
// LISTENs; a waiting reader costs no query, whatever the number of readers. It connects on the
// first subscription and reconnects after a failure, waking every reader then (a notification may
// have been missed while it was down, and a spurious wake only costs the reader one read).
type Notifier struct {
	conn *pgx.ConnConfig // where the LISTEN connection goes
	log  func(msg string, args ...any)
	ctx  context.Context // ends the listener (Close)
	stop context.CancelFunc
	done chan struct{}

	mu      sync.Mutex
	subs    map[string]map[chan struct{}]struct{}
	running bool
}

var _ chat.Notifier = (*Notifier)(nil)

// NewNotifier returns the notifier over the pool's database, or over listen when it is not nil
// (LISTEN needs a session of its own: behind PgBouncer in transaction mode, the database itself
// or a session-mode pool); warn logs connection trouble.
func NewNotifier(pool *pgxpool.Pool, listen *pgx.ConnConfig, warn func(msg string, args ...any)) *Notifier {
	ctx, stop := context.WithCancel(context.Background())
	if listen == nil {
		listen = pool.Config().ConnConfig
	}
	return &Notifier{conn: listen, log: warn, ctx: ctx, stop: stop, done: make(chan struct{}),
		subs: map[string]map[chan struct{}]struct{}{}}
}

// Close stops listening and waits for the listener to end.
func (n *Notifier) Close() {
	n.stop()
	n.mu.Lock()
	running := n.running
	n.mu.Unlock()
	if running {
		<-n.done
	}
}

// Subscribe implements chat.Notifier.
func (n *Notifier) Subscribe(_ context.Context, conversationID string) (<-chan struct{}, func(), error) {
	ch := make(chan struct{}, 1)
	n.mu.Lock()
	set := n.subs[conversationID]
	if set == nil {
		set = map[chan struct{}]struct{}{}
		n.subs[conversationID] = set
	}
	set[ch] = struct{}{}
	if !n.running && n.ctx.Err() == nil {
		n.running = true
		go n.listen()
	}
	n.mu.Unlock()
	return ch, func() {
		n.mu.Lock()
		defer n.mu.Unlock()
		delete(n.subs[conversationID], ch)
		if len(n.subs[conversationID]) == 0 {
			delete(n.subs, conversationID)
		}
	}, nil
}

// listen holds the LISTEN connection for the life of the process.
func (n *Notifier) listen() {
	defer close(n.done)
	backoff := 100 * time.Millisecond
	for {
		err := n.session(n.ctx)
		n.wakeAll()
		if n.ctx.Err() != nil {
			return
		}
		n.log("chat notifications: reconnecting", "err", err)
		select {
		case <-time.After(backoff):
		case <-n.ctx.Done():
			return
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

// session LISTENs on one connection until it fails or ctx ends.
func (n *Notifier) session(ctx context.Context) error {
	conn, err := pgx.ConnectConfig(ctx, n.conn.Copy())
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "LISTEN "+chatChannel); err != nil {
		return err
	}
	n.wakeAll() // anything sent before LISTEN took effect
	for {
		note, err := conn.WaitForNotification(ctx)
		if err != nil {
			return err
		}
		id, _, _ := strings.Cut(note.Payload, ":")
		n.wake(id)
	}
}

func (n *Notifier) wake(conversationID string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for ch := range n.subs[conversationID] {
		select {
		case ch <- struct{}{}:
		default: // a wake is already pending
		}
	}
}

func (n *Notifier) wakeAll() {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, set := range n.subs {
		for ch := range set {
			select {
			case ch <- struct{}{}:
			default:
			}
		}
	}
}
