package chatstore_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/helixhq/helix/shared/chat"
	"github.com/helixhq/helix/shared/money"
	"github.com/helixhq/helix/shared/postgres/chatstore"
)

// clock is the store's time, moved by the tests (reply leases expire by it, not by waiting).
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// fixture is a chat store over a fresh database, with alice's conversation.
type fixture struct {
	pool  *pgxpool.Pool
	store *chatstore.Chat
	clock *clock
	conv  string
}

const lease = time.Minute

func newFixture(t *testing.T) *fixture {
	t.Helper()
	pool := pg.NewPool(t)
	c := &clock{t: time.Now().UTC().Truncate(time.Microsecond)}
	f := &fixture{pool: pool, store: chatstore.NewChat(pool, c.now), clock: c}
	f.conv = f.newConversation(t, "alice")
	return f
}

func (f *fixture) newConversation(t *testing.T, user string) string {
	t.Helper()
	conv, err := f.store.CreateConversation(context.Background(), user, "Trip planning")
	if err != nil {
		t.Fatal(err)
	}
	return conv.ID
}

func (f *fixture) request(conv, user, cmid, content string) chat.BeginRequest {
	return chat.BeginRequest{UserID: user, ConversationID: conv, ClientMessageID: cmid, Content: content,
		Lease: lease, HistoryBytes: 12_000, Insights: 10, Query: content}
}

// begin runs Begin for alice's conversation and fails the test on an error.
func (f *fixture) begin(t *testing.T, cmid, content string) chat.Begun {
	t.Helper()
	b, err := f.store.Begin(context.Background(), f.request(f.conv, "alice", cmid, content))
	if err != nil {
		t.Fatalf("begin %s: %v", cmid, err)
	}
	return b
}

func (f *fixture) reply(t *testing.T, replyTo int64, content string, every int64) (int64, int64) {
	t.Helper()
	seq, through, err := f.store.StoreReply(context.Background(), f.conv, replyTo,
		chat.Reply{Content: content, RequestID: uuid.NewString(), Model: "deepseek", InputTokens: 5, OutputTokens: 3, Cost: 1234}, every)
	if err != nil {
		t.Fatalf("store reply to %d: %v", replyTo, err)
	}
	return seq, through
}

func (f *fixture) count(t *testing.T, query string, args ...any) int {
	t.Helper()
	var n int
	if err := f.pool.QueryRow(context.Background(), query, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}

func (f *fixture) messages(t *testing.T) int {
	t.Helper()
	return f.count(t, `SELECT count(*) FROM session_messages WHERE conversation_id = $1`, f.conv)
}

func wantOutcome(t *testing.T, what string, b chat.Begun, outcome chat.Outcome, seq, replySeq int64) {
	t.Helper()
	if b.Outcome != outcome || b.Seq != seq || b.ReplySeq != replySeq {
		t.Fatalf("%s: %s seq %d reply %d, want %s seq %d reply %d", what, b.Outcome, b.Seq, b.ReplySeq, outcome, seq, replySeq)
	}
}

// TestBeginOutcomes: a new message is stored and its sender produces the reply (go); the same
// message again while that reply is produced is pending, another message is busy and stores
// nothing; once the reply is stored the message is replied (the pair), and the next message goes
// with the turns before it as history.
func TestBeginOutcomes(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()

	b := f.begin(t, "c1", "Hello, Helix!")
	wantOutcome(t, "new message", b, chat.Go, 1, 0)
	m := b.Message
	if m.Seq != 1 || m.Role != chat.User || m.Content != "Hello, Helix!" || m.ClientMessageID != "c1" || !m.CreatedAt.Equal(f.clock.now()) {
		t.Errorf("stored message %+v", m)
	}
	if b.Conversation.ID != f.conv || b.Conversation.LastSeq != 1 || len(b.History) != 0 || b.HasTrust {
		t.Errorf("go read conversation %+v, history %v, has trust %v; want last_seq 1, no history, no stored trust",
			b.Conversation, b.History, b.HasTrust)
	}

	wantOutcome(t, "same message while replying", f.begin(t, "c1", "Hello, Helix!"), chat.Pending, 1, 0)
	busy := f.begin(t, "c2", "Another")
	wantOutcome(t, "another message while replying", busy, chat.Busy, 0, 0)
	if busy.Message.Seq != 0 || busy.Conversation.ID != "" {
		t.Errorf("busy carries what a reply is made from: %+v", busy)
	}
	if n := f.messages(t); n != 1 {
		t.Fatalf("%d messages stored, want the first only", n)
	}

	seq, through := f.reply(t, 1, "Hello! How can I help?", 5)
	if seq != 2 || through != 0 {
		t.Errorf("reply stored as %d, synthesize through %d; want 2, 0", seq, through)
	}
	wantOutcome(t, "resend once replied", f.begin(t, "c1", "Hello, Helix!"), chat.Replied, 1, 2)
	u, a, err := f.store.Pair(ctx, f.conv, 1)
	if err != nil {
		t.Fatal(err)
	}
	if u.Seq != 1 || u.Content != "Hello, Helix!" || a.Seq != 2 || a.Role != chat.Assistant || a.ReplyToSeq != 1 ||
		a.Model != "deepseek" || a.InputTokens != 5 || a.OutputTokens != 3 || a.Cost != money.Nano(1234) || a.RequestID == "" {
		t.Errorf("pair %+v / %+v", u, a)
	}

	if _, err := f.pool.Exec(ctx, `INSERT INTO user_profiles (user_id, trust_level) VALUES ('alice', 0.9)`); err != nil {
		t.Fatal(err)
	}
	f.clock.advance(time.Second)
	next := f.begin(t, "c2", "Where should we eat?")
	wantOutcome(t, "next message", next, chat.Go, 3, 0)
	if len(next.History) != 2 || next.History[0].Seq != 1 || next.History[1].Seq != 2 || next.History[1].Content != "Hello! How can I help?" {
		t.Errorf("history %+v, want messages 1 and 2, oldest first", next.History)
	}
	if !next.HasTrust || next.Trust != 0.9 {
		t.Errorf("trust %v (has %v), want the stored 0.9", next.Trust, next.HasTrust)
	}
	if next.Conversation.LastSeq != 3 || !next.Conversation.LastActivityAt.Equal(f.clock.now()) {
		t.Errorf("conversation after the message: %+v", next.Conversation)
	}
	if u, a, _ := f.store.Pair(ctx, f.conv, 3); u.Seq != 3 || a.Seq != 0 {
		t.Errorf("pair of an unanswered message: %+v / %+v, want no reply", u, a)
	}
}

// TestBeginNotFound: another user's conversation, one that does not exist and an id that is not
// a UUID are all not found, and nothing is stored.
func TestBeginNotFound(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	for name, r := range map[string]chat.BeginRequest{
		"another user's": f.request(f.conv, "bob", "c1", "hi"),
		"missing":        f.request(uuid.NewString(), "alice", "c1", "hi"),
		"not a UUID":     f.request("not-a-uuid", "alice", "c1", "hi"),
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := f.store.Begin(context.Background(), r); !errors.Is(err, chat.ErrNotFound) {
				t.Errorf("begin: %v, want not found", err)
			}
		})
	}
	if n := f.count(t, `SELECT count(*) FROM session_messages`); n != 0 {
		t.Errorf("%d messages stored", n)
	}
}

// TestStoreReplyEnqueuesSynthesis: every=2 user messages not yet sent to synthesis make the reply
// that completes them return the seq to synthesize through, recorded as sent.
func TestStoreReplyEnqueuesSynthesis(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	want := []int64{0, 4, 0, 8}
	for i, w := range want {
		b := f.begin(t, uuid.NewString(), "message")
		seq, through := f.reply(t, b.Seq, "answer", 2)
		if seq != b.Seq+1 || through != w {
			t.Errorf("exchange %d: reply %d, through %d; want %d, %d", i+1, seq, through, b.Seq+1, w)
		}
	}
	if n := f.count(t, `SELECT count(*) FROM conversations WHERE conversation_id = $1 AND enqueued_seq = 8 AND last_seq = 8 AND reply_seq IS NULL AND reply_until IS NULL`, f.conv); n != 1 {
		t.Errorf("conversation not at enqueued_seq 8, last_seq 8, with no lease")
	}
}

// TestReplyLeaseExpiry: a lease that ran out (its holder died) lets the same message be answered
// by whoever sends it next, with the stored text; a late reply from the old holder cannot store a
// second answer. After an expired lease, another message goes too.
func TestReplyLeaseExpiry(t *testing.T) {
	t.Parallel()
	t.Run("the same message", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t)
		wantOutcome(t, "first", f.begin(t, "c1", "Hello"), chat.Go, 1, 0)
		f.clock.advance(lease - time.Second)
		wantOutcome(t, "before the lease ends", f.begin(t, "c1", "Hello"), chat.Pending, 1, 0)
		wantOutcome(t, "another before the lease ends", f.begin(t, "c2", "Other"), chat.Busy, 0, 0)
		f.clock.advance(2 * time.Second)
		taken := f.begin(t, "c1", "Hello, edited")
		wantOutcome(t, "after the lease ends", taken, chat.Go, 1, 0)
		if taken.Message.Content != "Hello" || f.messages(t) != 1 {
			t.Errorf("takeover answers %q with %d messages stored; want the stored \"Hello\", 1 message", taken.Message.Content, f.messages(t))
		}
		wantOutcome(t, "while the new holder replies", f.begin(t, "c1", "Hello"), chat.Pending, 1, 0)
		if seq, _ := f.reply(t, 1, "new holder's", 5); seq != 2 {
			t.Errorf("new holder's reply stored as %d", seq)
		}
		if _, _, err := f.store.StoreReply(context.Background(), f.conv, 1, chat.Reply{Content: "old holder's", RequestID: "late"}, 5); err == nil {
			t.Errorf("a second reply to message 1 was stored")
		}
		if n := f.count(t, `SELECT count(*) FROM session_messages WHERE conversation_id = $1 AND reply_to_seq = 1`, f.conv); n != 1 {
			t.Errorf("%d replies to message 1, want 1", n)
		}
		wantOutcome(t, "resend", f.begin(t, "c1", "Hello"), chat.Replied, 1, 2)
	})
	t.Run("another message", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t)
		wantOutcome(t, "first", f.begin(t, "c1", "Hello"), chat.Go, 1, 0)
		f.clock.advance(lease + time.Second)
		wantOutcome(t, "another after the lease ends", f.begin(t, "c2", "Other"), chat.Go, 2, 0)
		// The first message, never answered, waits while the second's reply is produced.
		wantOutcome(t, "the first again", f.begin(t, "c1", "Hello"), chat.Busy, 1, 0)
		f.reply(t, 2, "answer to 2", 5)
		wantOutcome(t, "the first once the second is answered", f.begin(t, "c1", "Hello"), chat.Go, 1, 0)
	})
}

// TestAbortEndsTheLease: a failed reply's abort ends the lease, so the same message goes again
// (answering the stored text) and so does another; an abort for another message leaves the lease.
func TestAbortEndsTheLease(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	wantOutcome(t, "first", f.begin(t, "c1", "Hello"), chat.Go, 1, 0)
	if err := f.store.Abort(ctx, f.conv, 7); err != nil {
		t.Fatal(err)
	}
	wantOutcome(t, "after another message's abort", f.begin(t, "c2", "Other"), chat.Busy, 0, 0)
	if err := f.store.Abort(ctx, f.conv, 1); err != nil {
		t.Fatal(err)
	}
	again := f.begin(t, "c1", "Hello?")
	wantOutcome(t, "resend after the abort", again, chat.Go, 1, 0)
	if again.Message.Content != "Hello" {
		t.Errorf("resend answers %q, want the stored text", again.Message.Content)
	}
	if err := f.store.Abort(ctx, f.conv, 1); err != nil {
		t.Fatal(err)
	}
	wantOutcome(t, "another after the abort", f.begin(t, "c2", "Other"), chat.Go, 2, 0)
}

// TestMessages: messages after a seq, limit at a time, oldest first; an empty conversation has
// none; another user's conversation, a missing one and a non-UUID are not found.
func TestMessages(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	if msgs, err := f.store.Messages(ctx, "alice", f.conv, 0, 10); err != nil || len(msgs) != 0 {
		t.Errorf("empty conversation: %v, %v", msgs, err)
	}
	for range 3 {
		b := f.begin(t, uuid.NewString(), "q")
		f.reply(t, b.Seq, "a", 5)
	}
	for _, tc := range []struct {
		after int64
		limit int
		want  []int64
	}{
		{0, 10, []int64{1, 2, 3, 4, 5, 6}},
		{0, 2, []int64{1, 2}},
		{2, 3, []int64{3, 4, 5}},
		{5, 10, []int64{6}},
		{6, 10, nil},
		{100, 10, nil},
	} {
		msgs, err := f.store.Messages(ctx, "alice", f.conv, tc.after, tc.limit)
		if err != nil {
			t.Fatal(err)
		}
		var got []int64
		for _, m := range msgs {
			got = append(got, m.Seq)
		}
		if len(got) != len(tc.want) || (len(got) > 0 && (got[0] != tc.want[0] || got[len(got)-1] != tc.want[len(tc.want)-1])) {
			t.Errorf("after %d limit %d: %v, want %v", tc.after, tc.limit, got, tc.want)
		}
	}
	for name, c := range map[string]struct{ user, id string }{
		"another user's": {"bob", f.conv}, "missing": {"alice", uuid.NewString()}, "not a UUID": {"alice", "x"},
	} {
		if _, err := f.store.Messages(ctx, c.user, c.id, 0, 10); !errors.Is(err, chat.ErrNotFound) {
			t.Errorf("%s: %v, want not found", name, err)
		}
	}
}
