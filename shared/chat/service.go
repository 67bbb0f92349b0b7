package chat

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/helixhq/helix/shared/execute"
	"github.com/helixhq/helix/shared/fault"
	"github.com/helixhq/helix/shared/llm"
	"github.com/helixhq/helix/shared/stepup"
	"github.com/helixhq/helix/shared/synthesis"
)

// Executor runs a call through the execution pipeline.
type Executor interface {
	Execute(ctx context.Context, c execute.Call) (execute.Result, error)
}

// Policy tunes the chat use cases.
type Policy struct {
	Operation string // the operation replies run as: chat_message
	// ReplyLease bounds how long a reply in production blocks its session, should the instance
	// producing it die; it must exceed the function's timeout.
	ReplyLease time.Duration
	// HistoryTokens and MemoryTokens bound the prompt's history and learned insights. Tokens are
	// bounded as the pipeline bounds them for its reservation: by bytes.
	HistoryTokens int
	MemoryTokens  int
	// MemoryInsights is how many ranked insights are read to fill MemoryTokens.
	MemoryInsights int
	// SynthesizeEvery new messages in a conversation make a synthesis job.
	SynthesizeEvery int64
	DefaultTrust    float64
	CreatorUserID   string
	// MaxContent bounds a user message, in characters.
	MaxContent int
	// WriteTimeout bounds the session writes, which run detached from the client (a client that
	// hangs up must not leave a reply lease behind or a reply unstored).
	WriteTimeout time.Duration
}

// DefaultPolicy is the chat function's configuration before the environment has its say.
func DefaultPolicy() Policy {
	return Policy{
		Operation: "chat_message", ReplyLease: 2 * time.Minute, HistoryTokens: 12_000, MemoryTokens: 1_500,
		MemoryInsights: 40, SynthesizeEvery: 5, DefaultTrust: 0.5, MaxContent: 16_000, WriteTimeout: 5 * time.Second,
	}
}

// Service is the chat use cases. Build it once per cold start; it is safe for concurrent use.
type Service struct {
	Store    Store
	Notifier Notifier
	Exec     Executor
	Queue    synthesis.Queue
	StepUp   *stepup.Guard // nil: no step-up
	Logger   *slog.Logger
	Now      func() time.Time
	Policy   Policy
}

// Send is a user message to send.
type Send struct {
	UserID          string
	ConversationID  string
	ClientMessageID string
	Content         string
	// RequestID is the request's id (server-made), the reply's pipeline request id.
	RequestID string
	// ApprovalID re-sends a message held for approval, once an admin approved it.
	ApprovalID string
	// Stream, when set, is handed the reply's pieces as the model produces them (the pipeline's
	// Call.Stream: until the first piece a failure fails over as for any call; after it the
	// reply ends with the error). The reply is still stored whole, once complete, and Send still
	// returns the pair; a reply that fails after some pieces is not stored, as any failed reply.
	// Only a model's reply streams: a step-up message (answered by Helix, never by a model) and
	// a resend that finds its reply stored hand nothing to Stream.
	Stream func(execute.Piece) error
}

// Validate checks the message on its own.
func (p Policy) Validate(s Send) error {
	if strings.TrimSpace(s.Content) == "" {
		return fault.New(fault.MissingField, "content is required (a message of only whitespace has none)")
	}
	if n := utf8.RuneCountInString(s.Content); n > p.MaxContent {
		return fault.Errorf(fault.InvalidField, "content must be at most %d characters, got %d", p.MaxContent, n)
	}
	return nil
}

// Send stores a user message, answers it through the pipeline and stores the reply, and returns
// both. A resend (same client message id) returns the original pair and is charged once, also
// when the two race: one of them produces the reply and the other waits for it. A send while the
// session's previous reply is still being produced is ErrReplyInProgress.
func (s *Service) Send(ctx context.Context, in Send) (Exchange, error) {
	if err := s.Policy.Validate(in); err != nil {
		return Exchange{}, err
	}
	stepUp := s.StepUp != nil && s.StepUp.Matches(in.Content)
	stored := in.Content
	if stepUp {
		stored = stepup.Redacted // the key is never stored, sent to a model or logged
	}
	write, cancel := s.detached(ctx)
	defer cancel()
	b, err := s.begin(ctx, write, BeginRequest{
		UserID: in.UserID, ConversationID: in.ConversationID, ClientMessageID: in.ClientMessageID,
		Content: stored, Lease: s.Policy.ReplyLease,
		HistoryBytes: s.Policy.HistoryTokens, Insights: s.Policy.MemoryInsights, Query: stored,
	})
	if err != nil {
		return Exchange{}, err
	}
	switch b.Outcome {
	case Replied:
		return s.pair(ctx, in.ConversationID, b.Seq)
	case Busy:
		return Exchange{}, ErrReplyInProgress
	}

	var reply Reply
	if stepUp {
		reply, err = s.checkStepUp(write, in)
	} else {
		reply, err = s.answer(ctx, in, b)
	}
	if err != nil {
		if aerr := s.Store.Abort(write, in.ConversationID, b.Seq); aerr != nil {
			s.Logger.Error("end a failed reply's lease", "conversation_id", in.ConversationID, "err", aerr)
		}
		return Exchange{}, err
	}
	// Postgres keeps microseconds: the reply answered now must read the same when listed later.
	reply.At = s.now().UTC().Truncate(time.Microsecond)
	seq, through, err := s.Store.StoreReply(write, in.ConversationID, b.Seq, reply, s.Policy.SynthesizeEvery)
	if err != nil {
		// The reply is lost (it was charged; the log has it): free the session now rather than
		// when the lease runs out, so a resend can answer the message again.
		if aerr := s.Store.Abort(write, in.ConversationID, b.Seq); aerr != nil {
			s.Logger.Error("end a reply's lease after its store failed", "conversation_id", in.ConversationID, "err", aerr)
		}
		return Exchange{}, err
	}
	if through > 0 {
		s.enqueue(write, synthesis.Job{ConversationID: in.ConversationID, UserID: in.UserID, ThroughSeq: through})
	}
	// Both messages are known: no read back (it would be a round trip per message).
	return Exchange{User: b.Message, Assistant: Message{
		ConversationID: in.ConversationID, Seq: seq, Role: Assistant, Content: reply.Content,
		ReplyToSeq: b.Seq, RequestID: reply.RequestID, Model: reply.Model,
		InputTokens: reply.InputTokens, OutputTokens: reply.OutputTokens, Cost: reply.Cost, CreatedAt: reply.At,
	}}, nil
}

// answer produces the reply through the pipeline: the system prompt built from the user's
// memory and trust, the history that fits the budget, the message.
func (s *Service) answer(ctx context.Context, in Send, b Begun) (Reply, error) {
	trust := s.Policy.DefaultTrust
	if b.HasTrust {
		trust = b.Trust
	}
	creator := s.Policy.CreatorUserID != "" && in.UserID == s.Policy.CreatorUserID
	if creator {
		trust = 1
	}
	summary := ""
	if len(b.History) == 0 || b.History[0].Seq > 1 {
		summary = b.Conversation.Summary // older turns left out: the summary stands in for them
	}
	msgs := []llm.Message{{Role: llm.RoleSystem, Content: SystemPrompt(PromptInput{
		Trust: trust, Creator: creator, SteppedUp: creator && b.Conversation.SteppedUpUntil.After(s.now()),
		Summary: summary, Insights: b.Insights, MemoryBytes: s.Policy.MemoryTokens,
	})}}
	for _, m := range b.History {
		role := llm.RoleUser
		if m.Role == Assistant {
			role = llm.RoleAssistant
		}
		msgs = append(msgs, llm.Message{Role: role, Content: m.Content})
	}
	msgs = append(msgs, llm.Message{Role: llm.RoleUser, Content: b.Message.Content})
	res, err := s.Exec.Execute(ctx, execute.Call{
		RequestID: in.RequestID, UserID: in.UserID, OperationID: s.Policy.Operation, Messages: msgs,
		ApprovalID:  in.ApprovalID,
		Stream:      in.Stream,
		Fingerprint: []byte(in.ConversationID + "\x00" + b.Message.Content),
		Summary:     "chat message in a session",
	})
	if err != nil {
		return Reply{}, err
	}
	return Reply{
		Content: res.Text, RequestID: res.RequestID, Model: res.Model.Key, Cost: res.Cost,
		InputTokens:  res.Usage.InputTokens + res.Usage.CachedInputTokens + res.Usage.CacheWriteTokens + res.Usage.CacheWrite1hTokens,
		OutputTokens: res.Usage.OutputTokens + res.Usage.ReasoningTokens,
	}, nil
}

// checkStepUp answers a step-up message itself: no model sees it.
func (s *Service) checkStepUp(ctx context.Context, in Send) (Reply, error) {
	r, until, err := s.StepUp.Check(ctx, in.UserID, in.ConversationID, in.Content)
	if err != nil {
		return Reply{}, err
	}
	if r == stepup.Verified {
		if err := s.Store.SteppedUp(ctx, in.ConversationID, until); err != nil {
			return Reply{}, err
		}
	}
	s.Logger.Info("step-up attempt", "user", in.UserID, "conversation_id", in.ConversationID, "result", r)
	return Reply{Content: stepup.Answer(r), RequestID: in.RequestID}, nil
}

// begin starts the send: it stores the message (or finds it stored) and says who answers it.
// When another caller is producing the reply to this very message (a resend racing the first
// send), it waits for that caller and looks again: it then finds the reply (Replied), or, if that
// caller failed and gave the lease up, the message unanswered, and produces the reply itself, as
// a resend after a failure does. Either way the message is answered, and charged, once.
func (s *Service) begin(ctx, write context.Context, r BeginRequest) (Begun, error) {
	var wake <-chan struct{}
	for {
		b, err := s.Store.Begin(write, r)
		if err != nil || b.Outcome != Pending {
			return b, err
		}
		if wake == nil {
			// Subscribed before looking again, so a reply stored meanwhile still wakes us.
			w, stop, err := s.Notifier.Subscribe(ctx, r.ConversationID)
			if err != nil {
				return Begun{}, err
			}
			defer stop()
			wake = w
			continue
		}
		select {
		case <-wake:
		case <-ctx.Done():
			return Begun{}, ctx.Err()
		case <-time.After(2 * time.Second):
			// A lease that ran out (its instance died) sends no notification: look now and then.
		}
	}
}

func (s *Service) pair(ctx context.Context, conversationID string, seq int64) (Exchange, error) {
	u, a, err := s.Store.Pair(ctx, conversationID, seq)
	return Exchange{User: u, Assistant: a, Replayed: true}, err
}

// enqueue hands a job to synthesis after the reply committed. A failed send is not an error for
// the user: the sweep re-sends jobs that did not complete.
func (s *Service) enqueue(ctx context.Context, j synthesis.Job) {
	if s.Queue == nil {
		return
	}
	if err := s.Queue.Enqueue(ctx, j); err != nil {
		s.Logger.Warn("enqueue synthesis; the sweep will send it again", "conversation_id", j.ConversationID, "through_seq", j.ThroughSeq, "err", err)
	}
}

// Wait lists the session's messages after seq; when there are none and wait is positive, it
// holds until one arrives or wait passes. Waiting costs no query: the notifier wakes it.
func (s *Service) Wait(ctx context.Context, userID, conversationID string, after int64, limit int, wait time.Duration) ([]Message, error) {
	var wake <-chan struct{}
	if wait > 0 {
		ch, stop, err := s.Notifier.Subscribe(ctx, conversationID) // before reading: nothing is missed
		if err != nil {
			return nil, err
		}
		defer stop()
		wake = ch
	}
	msgs, err := s.Store.Messages(ctx, userID, conversationID, after, limit)
	if err != nil || len(msgs) > 0 || wait <= 0 {
		return msgs, err
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	for {
		select {
		case <-wake:
			// A wake may find nothing new: the notifier wakes everyone when its connection
			// (re)starts, and a notification may be for a reply lease that ended. Keep waiting.
			msgs, err := s.Store.Messages(ctx, userID, conversationID, after, limit)
			if err != nil || len(msgs) > 0 {
				return msgs, err
			}
		case <-t.C:
			return nil, nil
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return nil, nil // the function's deadline: answer what there is (nothing)
			}
			return nil, ctx.Err()
		}
	}
}

func (s *Service) detached(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), s.Policy.WriteTimeout)
}

func (s *Service) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}
