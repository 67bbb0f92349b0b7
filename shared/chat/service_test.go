package chat

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/helixhq/helix/shared/catalog"
	"github.com/helixhq/helix/shared/execute"
	"github.com/helixhq/helix/shared/fault"
	"github.com/helixhq/helix/shared/llm"
	"github.com/helixhq/helix/shared/memory"
	"github.com/helixhq/helix/shared/stepup"
	"github.com/helixhq/helix/shared/synthesis"
)

// goBegun is what Begin reads for a new message: user message 5 after two turns, with one
// insight and a stored trust level.
func goBegun(content string) Begun {
	return Begun{
		Outcome:      Go,
		Seq:          5,
		Conversation: Conversation{ID: conv, UserID: "alice", LastSeq: 5},
		Message:      Message{ConversationID: conv, Seq: 5, Role: User, Content: content, ClientMessageID: "cm-5"},
		History: []Message{
			{ConversationID: conv, Seq: 3, Role: User, Content: "I'm going to Lisbon in May."},
			{ConversationID: conv, Seq: 4, Role: Assistant, Content: "Lovely! For how long?"},
		},
		Insights: []memory.Insight{insight("ins-lisbon-1", memory.ProspectiveSelf, "Plans a trip to Lisbon in May")},
		Trust:    0.7, HasTrust: true,
	}
}

func okResult() execute.Result {
	return execute.Result{
		RequestID: "req-1", Text: "Pack light: it is warm in May.",
		Model: catalog.Model{Key: "deepseek"},
		Usage: catalog.Usage{InputTokens: 100, CachedInputTokens: 20, CacheWriteTokens: 3, CacheWrite1hTokens: 2,
			OutputTokens: 30, ReasoningTokens: 5},
		Cost: 1234,
	}
}

func send(content string) Send {
	return Send{UserID: "alice", ConversationID: conv, ClientMessageID: "cm-5", Content: content,
		RequestID: "req-1", ApprovalID: "appr-9"}
}

// TestSendNewMessage: a new message is answered by exactly one pipeline call of the chat
// operation, with the system prompt first, then the history the store read (oldest first), then
// the message; the reply is stored with the usage and cost of the call, and the pair returned.
func TestSendNewMessage(t *testing.T) {
	f := newFixture(t)
	f.store.begun = goBegun("What should I pack?")
	f.store.replySeq = 6
	f.exec.res = okResult()

	ex, err := f.svc.Send(t.Context(), send("What should I pack?"))
	if err != nil {
		t.Fatal(err)
	}

	begins, replies, aborts, _ := f.store.calls()
	p := f.svc.Policy
	wantBegin := BeginRequest{UserID: "alice", ConversationID: conv, ClientMessageID: "cm-5", Content: "What should I pack?",
		Lease: p.ReplyLease, HistoryBytes: p.HistoryTokens, Insights: p.MemoryInsights, Query: "What should I pack?"}
	if len(begins) != 1 || begins[0] != wantBegin {
		t.Errorf("Begin got %+v, want once %+v", begins, wantBegin)
	}

	calls := f.exec.Calls()
	if len(calls) != 1 {
		t.Fatalf("%d pipeline calls, want 1", len(calls))
	}
	c := calls[0]
	if c.OperationID != "chat_message" || c.UserID != "alice" || c.RequestID != "req-1" || c.ApprovalID != "appr-9" {
		t.Errorf("call operation %q, user %q, request %q, approval %q; want chat_message, alice, req-1, appr-9",
			c.OperationID, c.UserID, c.RequestID, c.ApprovalID)
	}
	if want := conv + "\x00What should I pack?"; string(c.Fingerprint) != want {
		t.Errorf("fingerprint %q, want %q", c.Fingerprint, want)
	}
	wantMsgs := []llm.Message{
		{Role: llm.RoleSystem, Content: SystemPrompt(PromptInput{Trust: 0.7, Insights: f.store.begun.Insights, MemoryBytes: p.MemoryTokens})},
		{Role: llm.RoleUser, Content: "I'm going to Lisbon in May."},
		{Role: llm.RoleAssistant, Content: "Lovely! For how long?"},
		{Role: llm.RoleUser, Content: "What should I pack?"},
	}
	if !reflect.DeepEqual(c.Messages, wantMsgs) {
		t.Errorf("messages sent:\n%+v\nwant:\n%+v", c.Messages, wantMsgs)
	}
	if !strings.Contains(c.Messages[0].Content, "Plans a trip to Lisbon in May") {
		t.Errorf("system prompt lacks the insight: %s", c.Messages[0].Content)
	}

	wantReply := storedReply{ConversationID: conv, ReplyTo: 5, Every: p.SynthesizeEvery, Reply: Reply{
		Content: "Pack light: it is warm in May.", RequestID: "req-1", Model: "deepseek",
		InputTokens: 125, OutputTokens: 35, Cost: 1234, At: f.now}}
	if len(replies) != 1 || replies[0] != wantReply {
		t.Errorf("StoreReply got %+v, want once %+v", replies, wantReply)
	}
	if len(aborts) != 0 {
		t.Errorf("aborted %v after a successful reply", aborts)
	}
	if ex.Replayed || ex.User.Seq != 5 || ex.User.Content != "What should I pack?" ||
		ex.Assistant.Seq != 6 || ex.Assistant.ReplyToSeq != 5 || ex.Assistant.Content != "Pack light: it is warm in May." {
		t.Errorf("exchange %+v, want user 5 and its reply 6, not replayed", ex)
	}
	if jobs := f.queue.Jobs(); len(jobs) != 0 {
		t.Errorf("jobs %v, want none (the store asked for none)", jobs)
	}
	if subs, _ := f.notifier.counts(); subs != 0 {
		t.Errorf("%d subscriptions: a new message waits for nothing", subs)
	}
}

// TestSendResendAnswersTheOriginal: a resend whose first try got no reply is answered with the
// stored text of the original message, not the text resent.
func TestSendResendAnswersTheOriginal(t *testing.T) {
	f := newFixture(t)
	f.store.begun = goBegun("What should I pack?")
	f.store.replySeq = 6
	f.exec.res = okResult()
	if _, err := f.svc.Send(t.Context(), send("what should i pack")); err != nil {
		t.Fatal(err)
	}
	calls := f.exec.Calls()
	if len(calls) != 1 {
		t.Fatalf("%d calls, want 1", len(calls))
	}
	if last := calls[0].Messages[len(calls[0].Messages)-1]; last.Content != "What should I pack?" {
		t.Errorf("last message sent %q, want the stored original", last.Content)
	}
}

// TestSendTrust: the trust level and creator lines of the system prompt: the stored level, the
// configured default, 1.0 for the creator whatever is stored, and the step-up only while it lasts
// and only for the creator.
func TestSendTrust(t *testing.T) {
	now := time.Date(2026, 6, 1, 9, 30, 0, 0, time.UTC)
	tests := []struct {
		name     string
		user     string
		hasTrust bool
		trust    float64
		until    time.Time
		want     PromptInput
	}{
		{name: "no stored trust: the default", user: "alice", want: PromptInput{Trust: 0.5}},
		{name: "stored trust", user: "alice", hasTrust: true, trust: 0.8, want: PromptInput{Trust: 0.8}},
		{name: "stored zero trust", user: "alice", hasTrust: true, trust: 0, want: PromptInput{Trust: 0}},
		{name: "creator", user: creatorUser, hasTrust: true, trust: 0.3, want: PromptInput{Trust: 1, Creator: true}},
		{name: "creator stepped up", user: creatorUser, until: now.Add(time.Minute),
			want: PromptInput{Trust: 1, Creator: true, SteppedUp: true}},
		{name: "creator's step-up over", user: creatorUser, until: now.Add(-time.Second),
			want: PromptInput{Trust: 1, Creator: true}},
		{name: "creator's step-up ends now", user: creatorUser, until: now,
			want: PromptInput{Trust: 1, Creator: true}},
		{name: "another user's session marked stepped up", user: "alice", until: now.Add(time.Hour),
			want: PromptInput{Trust: 0.5}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			f.now = now
			b := goBegun("Hi")
			b.History, b.Insights = nil, nil
			b.HasTrust, b.Trust = tt.hasTrust, tt.trust
			b.Conversation.SteppedUpUntil = tt.until
			f.store.begun = b
			f.exec.res = okResult()
			in := send("Hi")
			in.UserID = tt.user
			if _, err := f.svc.Send(t.Context(), in); err != nil {
				t.Fatal(err)
			}
			calls := f.exec.Calls()
			if len(calls) != 1 {
				t.Fatalf("%d calls, want 1", len(calls))
			}
			tt.want.MemoryBytes = f.svc.Policy.MemoryTokens
			if got, want := calls[0].Messages[0].Content, SystemPrompt(tt.want); got != want {
				t.Errorf("system prompt:\n%s\nwant:\n%s", got, want)
			}
		})
	}
}

// TestSendNoCreatorConfigured: with no creator configured, no user is the creator.
func TestSendNoCreatorConfigured(t *testing.T) {
	f := newFixture(t)
	f.svc.Policy.CreatorUserID = ""
	f.store.begun = goBegun("Hi")
	f.exec.res = okResult()
	in := send("Hi")
	in.UserID = creatorUser
	if _, err := f.svc.Send(t.Context(), in); err != nil {
		t.Fatal(err)
	}
	if sys := f.exec.Calls()[0].Messages[0].Content; strings.Contains(sys, "creator") {
		t.Errorf("system prompt names a creator though none is configured:\n%s", sys)
	}
}

// TestSendSummaryStandsInForOlderTurns: the conversation's summary is in the system prompt
// whenever turns it covers are not in the history sent. chatstore never returns history older
// than the summary's end (seq > summary_through_seq), so once a summary exists the turns it
// covers are never in the history and the summary must always stand in for them.
func TestSendSummaryStandsInForOlderTurns(t *testing.T) {
	const summary = "The user is planning a trip to Lisbon in May with their sister Ana."
	msgs := func(seqs ...int64) []Message {
		var out []Message
		for _, s := range seqs {
			role := User
			if s%2 == 0 {
				role = Assistant
			}
			out = append(out, Message{ConversationID: conv, Seq: s, Role: role, Content: fmt.Sprintf("turn %d", s)})
		}
		return out
	}
	tests := []struct {
		name        string
		summary     string
		through     int64
		history     []Message
		wantSummary bool
	}{
		{name: "no summary yet", history: msgs(1, 2, 3, 4), wantSummary: false},
		{name: "first message after synthesis: no history", summary: summary, through: 10, wantSummary: true},
		{name: "history cut by the budget after the summary", summary: summary, through: 10, history: msgs(14, 15, 16), wantSummary: true},
		// What chatstore returns two messages after a synthesis run: every turn since the summary
		// fits, the turns up to 10 are left out. Without the summary the model knows nothing of them.
		{name: "history right after the summary", summary: summary, through: 10, history: msgs(11, 12), wantSummary: true},
		{name: "every turn in the history", summary: summary, through: 2, history: msgs(1, 2, 3, 4), wantSummary: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			b := goBegun("And the weather?")
			b.Insights = nil
			b.Conversation.Summary, b.Conversation.SummaryThroughSeq = tt.summary, tt.through
			b.History = tt.history
			last := tt.through
			if n := len(tt.history); n > 0 {
				last = tt.history[n-1].Seq
			}
			b.Seq, b.Message.Seq = last+1, last+1
			f.store.begun = b
			f.exec.res = okResult()
			if _, err := f.svc.Send(t.Context(), send("And the weather?")); err != nil {
				t.Fatal(err)
			}
			sent := f.exec.Calls()[0].Messages
			if got := strings.Contains(sent[0].Content, summary); got != tt.wantSummary {
				t.Errorf("summary in the system prompt: %v, want %v (summary through %d, history from seq %v)\n%s",
					got, tt.wantSummary, tt.through, seqs(tt.history), sent[0].Content)
			}
			if len(sent) != len(tt.history)+2 {
				t.Errorf("%d messages sent, want system + %d history + the message", len(sent), len(tt.history))
			}
		})
	}
}

func seqs(ms []Message) []int64 {
	var out []int64
	for _, m := range ms {
		out = append(out, m.Seq)
	}
	return out
}

// TestSendReplay: a message answered before returns the stored pair, replayed, without a call.
func TestSendReplay(t *testing.T) {
	f := newFixture(t)
	f.store.begun = Begun{Outcome: Replied, Seq: 3, ReplySeq: 4}
	f.store.put(Message{ConversationID: conv, Seq: 3, Role: User, Content: "Hello"})
	f.store.put(Message{ConversationID: conv, Seq: 4, Role: Assistant, Content: "Hi there", ReplyToSeq: 3, RequestID: "req-old"})

	ex, err := f.svc.Send(t.Context(), send("Hello"))
	if err != nil {
		t.Fatal(err)
	}
	if !ex.Replayed || ex.User.Seq != 3 || ex.Assistant.Seq != 4 || ex.Assistant.RequestID != "req-old" {
		t.Errorf("exchange %+v, want the stored pair 3/4 replayed", ex)
	}
	_, replies, aborts, _ := f.store.calls()
	if n := len(f.exec.Calls()); n != 0 || len(replies) != 0 || len(aborts) != 0 {
		t.Errorf("a replay made %d calls, %d replies, %d aborts; want none", n, len(replies), len(aborts))
	}
}

// TestSendBusy: a send while another message's reply is produced is ErrReplyInProgress, and
// nothing is called, stored or waited for.
func TestSendBusy(t *testing.T) {
	f := newFixture(t)
	f.store.begun = Begun{Outcome: Busy, Seq: 7}
	_, err := f.svc.Send(t.Context(), send("Another one"))
	if !errors.Is(err, ErrReplyInProgress) {
		t.Fatalf("err = %v, want ErrReplyInProgress", err)
	}
	if fe, ok := fault.From(err); !ok || fe.Code != fault.ReplyInProgress {
		t.Errorf("fault %v, want code %s", fe, fault.ReplyInProgress)
	}
	_, replies, aborts, _ := f.store.calls()
	subs, _ := f.notifier.counts()
	if n := len(f.exec.Calls()); n != 0 || len(replies) != 0 || len(aborts) != 0 || subs != 0 {
		t.Errorf("busy: %d calls, %d replies, %d aborts, %d subscriptions; want none", n, len(replies), len(aborts), subs)
	}
}

// pendingUntil is a Begin for user message 3 whose reply another caller is producing: Pending
// until that caller stores its reply (then Replied) or gives the lease up (then Go: this caller
// answers the message).
func pendingUntil(s *fakeStore) Begun {
	if r, ok := s.replyTo(3); ok {
		return Begun{Outcome: Replied, Seq: 3, ReplySeq: r.Seq}
	}
	if s.leaseOff {
		b := goBegun("Hello")
		b.Seq, b.Message.Seq, b.History = 3, 3, nil
		return b
	}
	return Begun{Outcome: Pending, Seq: 3}
}

type sendResult struct {
	ex  Exchange
	err error
}

func sendAsync(ctx context.Context, f *fixture, in Send) <-chan sendResult {
	done := make(chan sendResult, 1)
	go func() {
		ex, err := f.svc.Send(ctx, in)
		done <- sendResult{ex, err}
	}()
	return done
}

// TestSendPendingWaitsForTheReply: a resend racing the send producing its reply waits for that
// reply (woken by the notifier, subscribed before it looks again), returns it as replayed, and
// makes no call of its own: the message is charged once.
func TestSendPendingWaitsForTheReply(t *testing.T) {
	f := newFixture(t)
	f.store.beginFn = pendingUntil
	f.store.put(Message{ConversationID: conv, Seq: 3, Role: User, Content: "Hello"})

	done := sendAsync(t.Context(), f, send("Hello"))
	if id := <-f.notifier.subscribed; id != conv {
		t.Fatalf("subscribed to %q, want %q", id, conv)
	}
	// The other caller stores its reply and the notifier wakes the waiter.
	f.store.put(Message{ConversationID: conv, Seq: 4, Role: Assistant, Content: "Hi there", ReplyToSeq: 3})
	f.notifier.wake <- struct{}{}

	r := <-done
	if r.err != nil {
		t.Fatal(r.err)
	}
	if !r.ex.Replayed || r.ex.User.Seq != 3 || r.ex.Assistant.Seq != 4 || r.ex.Assistant.Content != "Hi there" {
		t.Errorf("exchange %+v, want the other caller's pair 3/4, replayed", r.ex)
	}
	if n := len(f.exec.Calls()); n != 0 {
		t.Errorf("%d pipeline calls while waiting, want 0 (charged once)", n)
	}
	if n := f.store.beginCalls(); n < 2 {
		t.Errorf("Begin called %d times, want it asked again after the wait", n)
	}
	if subs, stopped := f.notifier.counts(); subs != 1 || stopped != 1 {
		t.Errorf("%d subscriptions, %d ended; want 1 and 1", subs, stopped)
	}
}

// TestSendPendingTakesOverAFailedReply: when the caller producing the reply fails and gives the
// lease up, the waiting resend answers the message itself, with one call.
func TestSendPendingTakesOverAFailedReply(t *testing.T) {
	f := newFixture(t)
	f.store.beginFn = pendingUntil
	f.store.replySeq = 4
	f.exec.res = okResult()

	done := sendAsync(t.Context(), f, send("Hello"))
	<-f.notifier.subscribed
	f.store.giveUpLease() // Abort notifies the session
	f.notifier.wake <- struct{}{}

	r := <-done
	if r.err != nil {
		t.Fatal(r.err)
	}
	if r.ex.Replayed || r.ex.User.Seq != 3 || r.ex.Assistant.Seq != 4 || r.ex.Assistant.ReplyToSeq != 3 {
		t.Errorf("exchange %+v, want 3 answered by 4 here, not replayed", r.ex)
	}
	if n := len(f.exec.Calls()); n != 1 {
		t.Errorf("%d pipeline calls, want 1", n)
	}
	if _, stopped := f.notifier.counts(); stopped != 1 {
		t.Errorf("subscription ended %d times, want 1", stopped)
	}
}

// TestSendPendingGivesUp: a waiting resend ends with its context (the client went away), and a
// failed subscription fails the send.
func TestSendPendingGivesUp(t *testing.T) {
	t.Run("context cancelled", func(t *testing.T) {
		f := newFixture(t)
		f.store.beginFn = pendingUntil
		ctx, cancel := context.WithCancel(t.Context())
		done := sendAsync(ctx, f, send("Hello"))
		<-f.notifier.subscribed
		cancel()
		if r := <-done; !errors.Is(r.err, context.Canceled) {
			t.Errorf("err = %v, want context.Canceled", r.err)
		}
		if _, stopped := f.notifier.counts(); stopped != 1 {
			t.Errorf("subscription ended %d times, want 1", stopped)
		}
		if n := len(f.exec.Calls()); n != 0 {
			t.Errorf("%d pipeline calls, want 0", n)
		}
	})
	t.Run("subscribe fails", func(t *testing.T) {
		f := newFixture(t)
		f.store.beginFn = pendingUntil
		f.notifier.err = errors.New("listen connection lost")
		if _, err := f.svc.Send(t.Context(), send("Hello")); !errors.Is(err, f.notifier.err) {
			t.Errorf("err = %v, want the notifier's", err)
		}
	})
}

// TestSendExecFails: a failed call is the send's error as the pipeline gave it; the reply lease
// is ended (Abort) so the message can be sent again; the stored user message stays (the store is
// never asked to remove it) and no reply is stored for the failure; no synthesis is queued.
func TestSendExecFails(t *testing.T) {
	for _, tt := range []struct {
		name     string
		execErr  error
		abortErr error
	}{
		{name: "providers unavailable", execErr: execute.ErrProvidersUnavailable},
		{name: "budget or approval error", execErr: fault.New(fault.BudgetExceeded, "over budget")},
		{name: "abort fails too", execErr: execute.ErrProvidersUnavailable, abortErr: errors.New("db down")},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			f.store.begun = goBegun("Hello")
			f.store.abortErr = tt.abortErr
			f.exec.err = tt.execErr
			_, err := f.svc.Send(t.Context(), send("Hello"))
			if !errors.Is(err, tt.execErr) {
				t.Fatalf("err = %v, want %v", err, tt.execErr)
			}
			_, replies, aborts, _ := f.store.calls()
			if len(aborts) != 1 || aborts[0] != 5 {
				t.Errorf("aborts %v, want [5]", aborts)
			}
			if len(replies) != 0 {
				t.Errorf("stored replies %+v for a failed call, want none", replies)
			}
			if _, ok := f.store.msgs[5]; !ok {
				t.Errorf("user message 5 is gone")
			}
			if jobs := f.queue.Jobs(); len(jobs) != 0 {
				t.Errorf("jobs %v after a failure", jobs)
			}
			logged := strings.Contains(f.log.String(), "end a failed reply's lease")
			if logged != (tt.abortErr != nil) {
				t.Errorf("abort failure logged: %v, want %v; log:\n%s", logged, tt.abortErr != nil, f.log)
			}
		})
	}
}

// TestSendClientGoneAbortsDetached: a client that hangs up mid-call fails the call, but the
// lease is still ended: the session writes do not run on the client's context.
func TestSendClientGoneAbortsDetached(t *testing.T) {
	f := newFixture(t)
	f.store.begun = goBegun("Hello")
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := f.svc.Send(ctx, send("Hello")); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	f.store.mu.Lock()
	defer f.store.mu.Unlock()
	if len(f.store.aborts) != 1 || f.store.abortCtx[0] != nil {
		t.Errorf("aborts %v with context errors %v; want one, on a live context", f.store.aborts, f.store.abortCtx)
	}
}

// TestSendStoreReplyFails: a reply that cannot be stored fails the send and queues nothing.
func TestSendStoreReplyFails(t *testing.T) {
	f := newFixture(t)
	f.store.begun = goBegun("Hello")
	f.store.replyErr = errors.New("store reply: connection reset")
	f.store.through = 10
	f.exec.res = okResult()
	if _, err := f.svc.Send(t.Context(), send("Hello")); !errors.Is(err, f.store.replyErr) {
		t.Fatalf("err = %v, want the store's", err)
	}
	if jobs := f.queue.Jobs(); len(jobs) != 0 {
		t.Errorf("jobs %v, want none", jobs)
	}
}

// TestSendSynthesis: a job is queued exactly when StoreReply names a seq to synthesize through
// (the store counts every SynthesizeEvery messages); a queue that fails or is absent does not
// fail the send, and a failure is logged.
func TestSendSynthesis(t *testing.T) {
	tests := []struct {
		name     string
		through  int64
		queueErr error
		noQueue  bool
		wantJobs []synthesis.Job
		wantWarn bool
	}{
		{name: "not yet", through: 0},
		{name: "due", through: 10, wantJobs: []synthesis.Job{{ConversationID: conv, UserID: "alice", ThroughSeq: 10}}},
		{name: "queue fails", through: 10, queueErr: errors.New("sqs: throttled"),
			wantJobs: []synthesis.Job{{ConversationID: conv, UserID: "alice", ThroughSeq: 10}}, wantWarn: true},
		{name: "no queue", through: 10, noQueue: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			f.svc.Policy.SynthesizeEvery = 7
			f.store.begun = goBegun("Hello")
			f.store.replySeq, f.store.through = 6, tt.through
			f.queue.err = tt.queueErr
			if tt.noQueue {
				f.svc.Queue = nil
			}
			f.exec.res = okResult()
			ex, err := f.svc.Send(t.Context(), send("Hello"))
			if err != nil {
				t.Fatalf("send failed: %v", err)
			}
			if ex.Assistant.Seq != 6 {
				t.Errorf("reply seq %d, want 6", ex.Assistant.Seq)
			}
			_, replies, _, _ := f.store.calls()
			if len(replies) != 1 || replies[0].Every != 7 {
				t.Errorf("StoreReply asked with %+v, want every = 7", replies)
			}
			if jobs := f.queue.Jobs(); !reflect.DeepEqual(jobs, tt.wantJobs) {
				t.Errorf("jobs %v, want %v", jobs, tt.wantJobs)
			}
			log := f.log.String()
			warned := strings.Contains(log, `"level":"WARN"`) && strings.Contains(log, "enqueue synthesis") &&
				strings.Contains(log, `"through_seq":10`) && strings.Contains(log, conv)
			if warned != tt.wantWarn {
				t.Errorf("warned %v, want %v; log:\n%s", warned, tt.wantWarn, log)
			}
		})
	}
}

// TestSendValidatesFirst: an invalid message reaches no store.
func TestSendValidatesFirst(t *testing.T) {
	f := newFixture(t)
	_, err := f.svc.Send(t.Context(), send(""))
	if fe, ok := fault.From(err); !ok || fe.Code != fault.MissingField {
		t.Fatalf("err = %v, want %s", err, fault.MissingField)
	}
	if begins, _, _, _ := f.store.calls(); len(begins) != 0 {
		t.Errorf("Begin called %d times for an invalid message", len(begins))
	}
}

// TestPolicyValidate: what Validate checks on its own: content present and at most MaxContent
// characters (runes, not bytes). NUL, UTF-8 and the client message id are the HTTP edge's checks
// (chatapi, httpapi.DecodeJSON): Validate lets them through, as these rows record.
func TestPolicyValidate(t *testing.T) {
	p := DefaultPolicy()
	p.MaxContent = 10
	tests := []struct {
		name    string
		s       Send
		want    fault.Code // "" valid
		message string     // a substring of the message, when invalid
	}{
		{name: "ok", s: Send{Content: "Hello"}},
		{name: "empty", s: Send{Content: ""}, want: fault.MissingField, message: "content is required"},
		{name: "exactly the limit", s: Send{Content: strings.Repeat("a", 10)}},
		{name: "one over", s: Send{Content: strings.Repeat("a", 11)}, want: fault.InvalidField, message: "at most 10 characters, got 11"},
		{name: "multibyte at the limit", s: Send{Content: strings.Repeat("é", 10)}},
		{name: "multibyte over", s: Send{Content: strings.Repeat("日", 11)}, want: fault.InvalidField, message: "got 11"},
		{name: "whitespace only is no content", s: Send{Content: " \n\t "}, want: fault.MissingField, message: "content is required"},
		{name: "NUL: the edge's check", s: Send{Content: "a\x00b"}},
		{name: "invalid UTF-8: the edge's check", s: Send{Content: "a\xffb"}},
		{name: "client message id not checked here", s: Send{Content: "Hi", ClientMessageID: strings.Repeat("x", 1000)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := p.Validate(tt.s)
			if tt.want == "" {
				if err != nil {
					t.Errorf("Validate = %v, want nil", err)
				}
				return
			}
			fe, ok := fault.From(err)
			if !ok || fe.Code != tt.want || !strings.Contains(fe.Message, tt.message) {
				t.Errorf("Validate = %v, want %s containing %q", err, tt.want, tt.message)
			}
		})
	}
}

// The step-up as the service runs it.
const (
	phrase  = "THANOS_MODE"
	theKey  = "correct-Horse-7731-staple"
	wrongIt = "wrong-Guess-0042"
)

func withStepUp(t *testing.T, f *fixture) *fakeAttempts {
	t.Helper()
	hash, err := bcrypt.GenerateFromPassword([]byte(theKey), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	a := &fakeAttempts{}
	f.svc.StepUp = stepup.New(stepup.Config{Phrase: phrase, KeyHash: hash, CreatorUserID: creatorUser,
		MaxFailures: 3, Window: 15 * time.Minute, Lasts: time.Hour}, a, func() time.Time { return f.now })
	return a
}

// TestSendStepUp: a step-up message is stored redacted, read with a redacted query, answered
// by Helix itself (no pipeline call), and a verified one marks the session until the step-up
// ends. The key is in nothing the service stores, returns or logs.
func TestSendStepUp(t *testing.T) {
	tests := []struct {
		name        string
		user        string
		content     string
		wantAnswer  string
		wantStepped bool
	}{
		{name: "creator, right key", user: creatorUser, content: phrase + " " + theKey,
			wantAnswer: stepup.Answer(stepup.Verified), wantStepped: true},
		{name: "creator, right key on a new line", user: creatorUser, content: "  " + phrase + "\n" + theKey + "  ",
			wantAnswer: stepup.Answer(stepup.Verified), wantStepped: true},
		{name: "creator, wrong key", user: creatorUser, content: phrase + " " + wrongIt,
			wantAnswer: stepup.Answer(stepup.Failed)},
		{name: "creator, no key", user: creatorUser, content: phrase, wantAnswer: stepup.Answer(stepup.Failed)},
		{name: "another user, right key", user: "alice", content: phrase + " " + theKey,
			wantAnswer: stepup.Answer(stepup.Failed)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			attempts := withStepUp(t, f)
			f.store.begun = goBegun("")
			f.store.begun.Message = Message{} // Begin stores what it is given
			f.store.replySeq = 6
			f.exec.res = okResult()
			in := send(tt.content)
			in.UserID = tt.user
			ex, err := f.svc.Send(t.Context(), in)
			if err != nil {
				t.Fatal(err)
			}
			begins, replies, _, stepped := f.store.calls()
			if len(begins) != 1 || begins[0].Content != stepup.Redacted || begins[0].Query != stepup.Redacted {
				t.Errorf("Begin got %+v, want content and query %q", begins, stepup.Redacted)
			}
			if n := len(f.exec.Calls()); n != 0 {
				t.Errorf("%d pipeline calls for a step-up message, want 0", n)
			}
			want := storedReply{ConversationID: conv, ReplyTo: 5, Every: f.svc.Policy.SynthesizeEvery,
				Reply: Reply{Content: tt.wantAnswer, RequestID: "req-1", At: f.now}}
			if len(replies) != 1 || replies[0] != want {
				t.Errorf("StoreReply got %+v, want %+v", replies, want)
			}
			if ex.User.Content != stepup.Redacted || ex.Assistant.Content != tt.wantAnswer {
				t.Errorf("exchange user %q, assistant %q; want %q, %q", ex.User.Content, ex.Assistant.Content, stepup.Redacted, tt.wantAnswer)
			}
			if tt.wantStepped {
				if len(stepped) != 1 || !stepped[0].Equal(f.now.Add(time.Hour)) {
					t.Errorf("SteppedUp %v, want once until %s", stepped, f.now.Add(time.Hour))
				}
			} else if len(stepped) != 0 {
				t.Errorf("SteppedUp %v, want never", stepped)
			}
			if len(attempts.recorded) != 1 || attempts.recorded[0].UserID != tt.user {
				t.Errorf("attempts recorded %+v, want one of %s", attempts.recorded, tt.user)
			}
			log := f.log.String()
			if !strings.Contains(log, "step-up attempt") {
				t.Errorf("the attempt is not logged:\n%s", log)
			}
			wantNoKey(t, theKey, log, fmt.Sprintf("%+v", begins), fmt.Sprintf("%+v", replies), fmt.Sprintf("%+v", ex),
				fmt.Sprintf("%+v", attempts.recorded))
			wantNoKey(t, wrongIt, log, fmt.Sprintf("%+v", begins), fmt.Sprintf("%+v", ex), fmt.Sprintf("%+v", attempts.recorded))
		})
	}
}

// TestSendStepUpFailures: a step-up whose check or mark fails fails the send, ends the lease,
// stores no reply, and the error does not carry the key.
func TestSendStepUpFailures(t *testing.T) {
	for _, tt := range []struct {
		name       string
		attemptErr error
		markErr    error
	}{
		{name: "attempt not recorded", attemptErr: errors.New("step-up attempt: db down")},
		{name: "session not marked", markErr: errors.New("mark: db down")},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			attempts := withStepUp(t, f)
			attempts.err = tt.attemptErr
			f.store.steppedAt = tt.markErr
			f.store.begun = goBegun("")
			in := send(phrase + " " + theKey)
			in.UserID = creatorUser
			_, err := f.svc.Send(t.Context(), in)
			if err == nil {
				t.Fatal("send succeeded")
			}
			_, replies, aborts, _ := f.store.calls()
			if len(aborts) != 1 || len(replies) != 0 {
				t.Errorf("aborts %v, replies %+v; want one abort, no reply", aborts, replies)
			}
			wantNoKey(t, theKey, err.Error(), f.log.String())
		})
	}
}

// TestSendNoStepUpConfigured: without a guard the phrase is an ordinary message.
func TestSendNoStepUpConfigured(t *testing.T) {
	f := newFixture(t)
	f.store.begun = goBegun(phrase + " hello")
	f.exec.res = okResult()
	if _, err := f.svc.Send(t.Context(), send(phrase+" hello")); err != nil {
		t.Fatal(err)
	}
	if begins, _, _, _ := f.store.calls(); begins[0].Content != phrase+" hello" {
		t.Errorf("stored %q, want the message as sent", begins[0].Content)
	}
	if n := len(f.exec.Calls()); n != 1 {
		t.Errorf("%d calls, want 1", n)
	}
}

func wantNoKey(t *testing.T, key string, texts ...string) {
	t.Helper()
	for _, s := range texts {
		if strings.Contains(s, key) {
			t.Errorf("the key %q appears in: %s", key, s)
		}
	}
}

// TestWait: Wait answers at once when there are messages (or nothing is to be waited for),
// otherwise holds until the notifier wakes it, and answers empty when its wait or the request's
// deadline passes.
func TestWait(t *testing.T) {
	m7 := Message{ConversationID: conv, Seq: 7, Role: User, Content: "from the phone"}

	t.Run("messages already there", func(t *testing.T) {
		f := newFixture(t)
		f.store.listings = [][]Message{{m7}}
		got, err := f.svc.Wait(t.Context(), "alice", conv, 6, 50, 20*time.Second)
		if err != nil || len(got) != 1 || got[0].Seq != 7 {
			t.Fatalf("Wait = %v, %v; want message 7", got, err)
		}
		subs, stopped := f.notifier.counts()
		if f.store.listCalls != 1 || subs != 1 || stopped != 1 {
			t.Errorf("%d reads, %d subscriptions, %d ended; want 1, 1, 1", f.store.listCalls, subs, stopped)
		}
	})
	t.Run("no wait: no subscription", func(t *testing.T) {
		f := newFixture(t)
		got, err := f.svc.Wait(t.Context(), "alice", conv, 6, 50, 0)
		if err != nil || len(got) != 0 {
			t.Fatalf("Wait = %v, %v; want nothing", got, err)
		}
		if subs, _ := f.notifier.counts(); subs != 0 {
			t.Errorf("%d subscriptions without a wait", subs)
		}
	})
	t.Run("woken by a new message", func(t *testing.T) {
		f := newFixture(t)
		f.store.listings = [][]Message{nil, {m7}}
		type result struct {
			msgs []Message
			err  error
		}
		done := make(chan result, 1)
		go func() {
			msgs, err := f.svc.Wait(t.Context(), "alice", conv, 6, 50, 20*time.Second)
			done <- result{msgs, err}
		}()
		<-f.notifier.subscribed
		f.notifier.wake <- struct{}{}
		r := <-done
		if r.err != nil || len(r.msgs) != 1 || r.msgs[0].Seq != 7 {
			t.Fatalf("Wait = %v, %v; want message 7", r.msgs, r.err)
		}
		if f.store.listCalls != 2 {
			t.Errorf("%d reads, want 2 (before waiting, after the wake)", f.store.listCalls)
		}
	})
	t.Run("a wake with nothing new keeps waiting", func(t *testing.T) {
		f := newFixture(t)
		f.store.listings = [][]Message{nil, nil, {m7}}
		done := make(chan []Message, 1)
		go func() {
			msgs, err := f.svc.Wait(t.Context(), "alice", conv, 6, 50, 20*time.Second)
			if err != nil {
				t.Error(err)
			}
			done <- msgs
		}()
		<-f.notifier.subscribed
		f.notifier.wake <- struct{}{} // the notifier's connection (re)started: nothing new
		f.notifier.wake <- struct{}{} // message 7
		if msgs := <-done; len(msgs) != 1 || msgs[0].Seq != 7 {
			t.Fatalf("Wait = %v, want message 7", msgs)
		}
		if f.store.listCalls != 3 {
			t.Errorf("%d reads, want 3", f.store.listCalls)
		}
	})
	t.Run("wait passes after an empty wake", func(t *testing.T) {
		f := newFixture(t)
		f.notifier.wake <- struct{}{}
		got, err := f.svc.Wait(t.Context(), "alice", conv, 6, 50, 10*time.Millisecond)
		if err != nil || got != nil {
			t.Fatalf("Wait = %v, %v; want nil, nil", got, err)
		}
	})
	t.Run("wait passes", func(t *testing.T) {
		f := newFixture(t)
		got, err := f.svc.Wait(t.Context(), "alice", conv, 6, 50, 10*time.Millisecond)
		if err != nil || got != nil {
			t.Fatalf("Wait = %v, %v; want nil, nil", got, err)
		}
		if f.store.listCalls != 1 {
			t.Errorf("%d reads, want 1: waiting costs no query", f.store.listCalls)
		}
	})
	t.Run("request deadline passes", func(t *testing.T) {
		f := newFixture(t)
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Millisecond)
		defer cancel()
		got, err := f.svc.Wait(ctx, "alice", conv, 6, 50, 20*time.Second)
		if err != nil || got != nil {
			t.Fatalf("Wait = %v, %v; want nil, nil at the deadline", got, err)
		}
	})
	t.Run("client gone", func(t *testing.T) {
		f := newFixture(t)
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() {
			_, err := f.svc.Wait(ctx, "alice", conv, 6, 50, 20*time.Second)
			done <- err
		}()
		<-f.notifier.subscribed
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("err = %v, want context.Canceled", err)
		}
	})
	t.Run("not the user's session", func(t *testing.T) {
		f := newFixture(t)
		f.store.listErr = ErrNotFound
		if _, err := f.svc.Wait(t.Context(), "mallory", conv, 0, 50, 20*time.Second); !errors.Is(err, ErrNotFound) {
			t.Errorf("err = %v, want ErrNotFound", err)
		}
	})
	t.Run("subscription fails", func(t *testing.T) {
		f := newFixture(t)
		f.notifier.err = errors.New("listen connection lost")
		if _, err := f.svc.Wait(t.Context(), "alice", conv, 0, 50, time.Second); !errors.Is(err, f.notifier.err) {
			t.Errorf("err = %v, want the notifier's", err)
		}
		if f.store.listCalls != 0 {
			t.Errorf("%d reads after a failed subscription", f.store.listCalls)
		}
	})
}
