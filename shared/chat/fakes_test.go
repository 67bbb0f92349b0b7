package chat

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/helixhq/helix/shared/execute"
	"github.com/helixhq/helix/shared/stepup"
	"github.com/helixhq/helix/shared/synthesis"
)

// The fakes of the ports Service uses. Each records what it was asked, under a mutex, so tests
// that run Send in a goroutine stay race-free.

var errUnused = errors.New("not used by Service")

type storedReply struct {
	ConversationID string
	ReplyTo        int64
	Reply          Reply
	Every          int64
}

// fakeStore is a session store: Begin answers begun (and stores the user message it was given
// under begun.Seq when it holds none yet), StoreReply stores the reply under replySeq, Pair reads
// what is stored.
type fakeStore struct {
	mu sync.Mutex

	begun    Begun
	beginFn  func(s *fakeStore) Begun // when set, answers Begin instead of begun (called locked)
	beginErr error
	begins   []BeginRequest
	leaseOff bool // for beginFn: the caller that held the reply lease gave it up

	msgs map[int64]Message

	replySeq, through int64
	replyErr          error
	replies           []storedReply

	aborts    []int64
	abortCtx  []error // the ctx.Err() each Abort saw
	abortErr  error
	stepped   []time.Time
	steppedAt error

	listings  [][]Message // successive Messages answers; the last one repeats
	listErr   error
	listCalls int
}

var _ Store = (*fakeStore)(nil)

func newFakeStore() *fakeStore { return &fakeStore{msgs: map[int64]Message{}} }

func (s *fakeStore) put(m Message) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.msgs[m.Seq] = m
}

func (s *fakeStore) CreateConversation(context.Context, string, string) (Conversation, error) {
	return Conversation{}, errUnused
}

func (s *fakeStore) ListConversations(context.Context, string, Page) ([]Conversation, error) {
	return nil, errUnused
}

func (s *fakeStore) GetConversation(context.Context, string, string) (Conversation, error) {
	return Conversation{}, errUnused
}

func (s *fakeStore) UpdateConversation(context.Context, string, string, Change) (Conversation, error) {
	return Conversation{}, errUnused
}

func (s *fakeStore) DeleteConversation(context.Context, string, string) error { return errUnused }

func (s *fakeStore) Messages(_ context.Context, _, _ string, _ int64, _ int) ([]Message, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.listCalls++
	if s.listErr != nil {
		return nil, s.listErr
	}
	if len(s.listings) == 0 {
		return nil, nil
	}
	i := min(s.listCalls, len(s.listings)) - 1
	return s.listings[i], nil
}

func (s *fakeStore) Begin(_ context.Context, r BeginRequest) (Begun, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.begins = append(s.begins, r)
	if s.beginErr != nil {
		return Begun{}, s.beginErr
	}
	b := s.begun
	if s.beginFn != nil {
		b = s.beginFn(s)
	}
	if _, ok := s.msgs[b.Seq]; !ok && b.Seq > 0 {
		s.msgs[b.Seq] = Message{ConversationID: r.ConversationID, Seq: b.Seq, Role: User,
			Content: r.Content, ClientMessageID: r.ClientMessageID}
	}
	if b.Outcome == Go && b.Message.Seq == 0 {
		b.Message = s.msgs[b.Seq] // as the real store does: the message to answer
	}
	return b, nil
}

// replyTo returns the stored reply to user message seq (locked by the caller).
func (s *fakeStore) replyTo(seq int64) (Message, bool) {
	for _, m := range s.msgs {
		if m.Role == Assistant && m.ReplyToSeq == seq {
			return m, true
		}
	}
	return Message{}, false
}

func (s *fakeStore) giveUpLease() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.leaseOff = true
}

func (s *fakeStore) beginCalls() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.begins)
}

func (s *fakeStore) StoreReply(_ context.Context, id string, replyTo int64, r Reply, every int64) (int64, int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.replies = append(s.replies, storedReply{ConversationID: id, ReplyTo: replyTo, Reply: r, Every: every})
	if s.replyErr != nil {
		return 0, 0, s.replyErr
	}
	s.msgs[s.replySeq] = Message{ConversationID: id, Seq: s.replySeq, Role: Assistant, Content: r.Content,
		ReplyToSeq: replyTo, RequestID: r.RequestID, Model: r.Model, InputTokens: r.InputTokens,
		OutputTokens: r.OutputTokens, Cost: r.Cost}
	return s.replySeq, s.through, nil
}

func (s *fakeStore) Abort(ctx context.Context, _ string, seq int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.aborts = append(s.aborts, seq)
	s.abortCtx = append(s.abortCtx, ctx.Err())
	return s.abortErr
}

func (s *fakeStore) Pair(_ context.Context, _ string, seq int64) (Message, Message, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, _ := s.replyTo(seq)
	return s.msgs[seq], a, nil
}

func (s *fakeStore) SteppedUp(_ context.Context, _ string, until time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stepped = append(s.stepped, until)
	return s.steppedAt
}

// calls returns copies of what the store recorded.
func (s *fakeStore) calls() (begins []BeginRequest, replies []storedReply, aborts []int64, stepped []time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]BeginRequest(nil), s.begins...), append([]storedReply(nil), s.replies...),
		append([]int64(nil), s.aborts...), append([]time.Time(nil), s.stepped...)
}

// fakeNotifier hands every subscriber the one wake channel, and reports each subscription on
// subscribed.
type fakeNotifier struct {
	wake       chan struct{}
	subscribed chan string
	err        error

	mu      sync.Mutex
	subs    int
	stopped int
}

var _ Notifier = (*fakeNotifier)(nil)

func newFakeNotifier() *fakeNotifier {
	return &fakeNotifier{wake: make(chan struct{}, 1), subscribed: make(chan string, 16)}
}

func (n *fakeNotifier) Subscribe(_ context.Context, id string) (<-chan struct{}, func(), error) {
	if n.err != nil {
		return nil, nil, n.err
	}
	n.mu.Lock()
	n.subs++
	n.mu.Unlock()
	n.subscribed <- id
	return n.wake, func() {
		n.mu.Lock()
		defer n.mu.Unlock()
		n.stopped++
	}, nil
}

func (n *fakeNotifier) counts() (subs, stopped int) {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.subs, n.stopped
}

// fakeExec answers every call with res or err; an already cancelled context fails the call as
// the pipeline would.
type fakeExec struct {
	mu    sync.Mutex
	res   execute.Result
	err   error
	calls []execute.Call
}

var _ Executor = (*fakeExec)(nil)

func (e *fakeExec) Execute(ctx context.Context, c execute.Call) (execute.Result, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.calls = append(e.calls, c)
	if err := ctx.Err(); err != nil {
		return execute.Result{}, err
	}
	return e.res, e.err
}

func (e *fakeExec) Calls() []execute.Call {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]execute.Call(nil), e.calls...)
}

type fakeQueue struct {
	mu   sync.Mutex
	err  error
	jobs []synthesis.Job
}

var _ synthesis.Queue = (*fakeQueue)(nil)

func (q *fakeQueue) Enqueue(_ context.Context, j synthesis.Job) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.jobs = append(q.jobs, j)
	return q.err
}

func (q *fakeQueue) Jobs() []synthesis.Job {
	q.mu.Lock()
	defer q.mu.Unlock()
	return append([]synthesis.Job(nil), q.jobs...)
}

// fakeAttempts is a step-up attempt store: attempts are serialized, and failures count the
// unsuccessful attempts after since, as chatstore.StepUps counts them.
type fakeAttempts struct {
	mu       sync.Mutex
	err      error
	recorded []stepup.Attempt
}

var _ stepup.Store = (*fakeAttempts)(nil)

func (f *fakeAttempts) Attempt(_ context.Context, userID string, since time.Time, decide func(int) stepup.Attempt) (stepup.Attempt, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return stepup.Attempt{}, f.err
	}
	n := 0
	for _, a := range f.recorded {
		if a.UserID == userID && a.At.After(since) && !a.Success {
			n++
		}
	}
	a := decide(n)
	f.recorded = append(f.recorded, a)
	return a, nil
}

// syncBuffer is a log destination safe for concurrent writers.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// fixture is a Service over fakes, with a fixed clock and its log captured.
type fixture struct {
	svc      *Service
	store    *fakeStore
	notifier *fakeNotifier
	exec     *fakeExec
	queue    *fakeQueue
	log      *syncBuffer
	now      time.Time
}

const (
	conv        = "8d3c1f0e-2b4a-4c6d-9e8f-0a1b2c3d4e5f"
	creatorUser = "creator-1"
)

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{store: newFakeStore(), notifier: newFakeNotifier(), exec: &fakeExec{}, queue: &fakeQueue{},
		log: &syncBuffer{}, now: time.Date(2026, 6, 1, 9, 30, 0, 0, time.UTC)}
	policy := DefaultPolicy()
	policy.CreatorUserID = creatorUser
	f.svc = &Service{
		Store: f.store, Notifier: f.notifier, Exec: f.exec, Queue: f.queue,
		Logger: slog.New(slog.NewJSONHandler(f.log, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Now:    func() time.Time { return f.now },
		Policy: policy,
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("service log:\n%s", f.log.String())
		}
	})
	return f
}
