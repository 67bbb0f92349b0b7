// Package execute runs an operation end to end, the one path every AI call takes:
//
//	route → approval check → reserve the worst case → call with a deadline, retrying with
//	backoff and failing over primary → fallback → emergency → settle the exact cost and log
//
// Money is held before any provider is called and settled (or released) and logged, in one
// statement, before the caller gets an answer: nothing lives only in a Lambda's memory.
package execute

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/helixhq/helix/shared/approval"
	"github.com/helixhq/helix/shared/breaker"
	"github.com/helixhq/helix/shared/budget"
	"github.com/helixhq/helix/shared/catalog"
	"github.com/helixhq/helix/shared/fault"
	"github.com/helixhq/helix/shared/llm"
	"github.com/helixhq/helix/shared/money"
	"github.com/helixhq/helix/shared/oplog"
	"github.com/helixhq/helix/shared/toggles"
)

// Ports the pipeline uses, declared here where they are used.
type (
	// Catalog is the cached catalog.
	Catalog interface {
		Get(ctx context.Context) (*catalog.Snapshot, error)
	}
	// Toggles gives the current kill switches.
	Toggles interface {
		Current(ctx context.Context) (toggles.Set, error)
	}
	// Breakers are the shared circuit breakers.
	Breakers interface {
		Snapshot(ctx context.Context) (breaker.Snapshot, error)
		Failure(ctx context.Context, provider, reason string) error
		Success(ctx context.Context, snap breaker.Snapshot, provider string) error
	}
	// Ledger holds budget reservations.
	Ledger interface {
		Reserve(ctx context.Context, r budget.Reservation) (budget.Admission, error)
		Release(ctx context.Context, requestID string) error
		Today(ctx context.Context, userID string) (budget.Day, error)
	}
	// Providers finds the provider of a model ("deepseek", "gemini", ...).
	Providers interface {
		Get(name string) (llm.Provider, bool)
	}
	// Metrics is told of every finished call, once its log row is written or given up on: the
	// function's CloudWatch metrics (package emf). It must not block, and cannot fail the call.
	Metrics interface {
		Operation(rec oplog.Record)
	}
)

// Pipeline executes operations. Build it once per cold start; it is safe for concurrent use.
type Pipeline struct {
	Catalog   Catalog
	Toggles   Toggles
	Breakers  Breakers
	Ledger    Ledger
	Log       oplog.Writer
	Approvals approval.Store
	Providers Providers
	Metrics   Metrics // nil: no metrics
	Logger    *slog.Logger
	Now       func() time.Time
	Policy    Policy
}

// Policy tunes deadlines and retries.
type Policy struct {
	// DefaultTimeout bounds a call when the context has no deadline (local dev).
	DefaultTimeout time.Duration
	// FinishMargin is kept back from the caller's deadline to settle, log and answer.
	FinishMargin time.Duration
	// AttemptsPerModel is how many times one model is tried before failing over.
	AttemptsPerModel uint
	// InitialBackoff and MaxBackoff shape the exponential backoff (with jitter) between tries.
	InitialBackoff time.Duration
	MaxBackoff     time.Duration
	// ReservationTTL bounds a hold whose Lambda died; it must exceed the function timeout.
	ReservationTTL time.Duration
	// ApprovalTTL is how long a held operation can wait for, and then use, an approval.
	ApprovalTTL time.Duration
}

// DefaultPolicy suits a Lambda with a 30 s timeout.
func DefaultPolicy() Policy {
	return Policy{
		DefaultTimeout:   25 * time.Second,
		FinishMargin:     2 * time.Second,
		AttemptsPerModel: 2,
		InitialBackoff:   200 * time.Millisecond,
		MaxBackoff:       2 * time.Second,
		ReservationTTL:   5 * time.Minute,
		ApprovalTTL:      24 * time.Hour,
	}
}

// Call is one operation to execute.
type Call struct {
	RequestID   string
	UserID      string
	OperationID string
	// Model pins one model key (OpenAI-compatible callers may name one); "" routes normally.
	Model    string
	Messages []llm.Message
	// MaxOutputTokens lowers the operation's output cap when positive and smaller.
	MaxOutputTokens int64
	Temperature     *float64
	JSON            bool
	Schema          json.RawMessage
	// ApprovalID runs a request an admin approved; Fingerprint is the request's canonical bytes,
	// which the approval is bound to, and Summary what the admin sees about it.
	ApprovalID  string
	Fingerprint []byte
	Summary     string
	// Continuation marks a follow-up call of an operation already admitted (the repair retry of
	// invalid JSON): it is not held for approval again. Set only by Helix code, never from input.
	Continuation bool
	// Stream, when set, streams the answer: each piece of text is handed to it, in order, as the
	// provider produces it. Until the first piece is handed over, failures are retried and fail
	// over as for any call; after it, a failure ends the call with ErrStreamBroken (the client
	// already has part of one model's answer). An error from Stream (the client went away) stops
	// the provider. A call that ends early is charged what was consumed (streamedUsage).
	Stream func(Piece) error
}

// Piece is a part of a streamed answer: its text, and the model producing it (known from the
// first piece on, which a client may want to show, as OpenAI's chunks do).
type Piece struct {
	Text  string
	Model catalog.Model
}

// Result is a completed call.
type Result struct {
	RequestID    string
	Route        catalog.Route
	Model        catalog.Model
	Text         string
	FinishReason string
	Usage        catalog.Usage
	Cost         money.Nano
	FallbackUsed bool
	Offline      bool
	Attempts     int
	// FailedAttemptsCost is the part of Cost that failed attempts before the answer were billed.
	FailedAttemptsCost money.Nano

	providerRequestID string
	held              money.Nano // the worst case reserved for the call
}

// Errors of Execute, besides router errors (unknown or disabled operation, unknown model),
// *budget.ExceededError and approval errors.
var (
	// ErrProvidersUnavailable: every model of the chain failed or is switched off.
	ErrProvidersUnavailable = fault.New(fault.ProvidersUnavailable, "no model provider could serve the request; nothing was charged, retry later")
	// ErrContentFiltered: the provider refused the content; no other model is asked.
	ErrContentFiltered = fault.New(fault.ContentFiltered, "the model provider refused this content")
	// ErrDeadline: not enough time was left to call a provider.
	ErrDeadline = fault.New(fault.Timeout, "not enough time was left to call a model; retry")
	// ErrStreamBroken: a streamed answer the provider broke off after its first piece; what was
	// consumed is charged. It comes wrapped with ErrProvidersUnavailable, the code the client is
	// told. (Not a fault of its own: faults match by code, and it would match every
	// providers_unavailable.)
	ErrStreamBroken = errors.New("the model stopped in the middle of its answer; what it produced was charged")
)

// PendingApprovalError means the operation was held: it runs once an admin approves it and the
// client re-sends it with the approval id.
type PendingApprovalError struct {
	Approval approval.Approval
}

func (e *PendingApprovalError) Error() string {
	return fmt.Sprintf("operation %s needs approval (%s)", e.Approval.OperationID, e.Approval.Reason)
}

// Fault is what the caller is told: the approval to re-send the request with once granted.
func (e *PendingApprovalError) Fault() *fault.Error {
	a := e.Approval
	return &fault.Error{Code: fault.ApprovalRequired,
		Message: "this request needs an admin's approval; once approved, re-send it with the approval id",
		Details: map[string]any{
			"approval_id": a.ID, "operation_id": a.OperationID, "reason": string(a.Reason),
			"estimated_cost_usd": a.EstimatedCost, "expires_at": a.ExpiresAt.UTC(),
		}}
}

// Error codes written to ai_operation_log.error_code: the client's codes, and one of the log's
// own for a call whose usage could not be priced.
const (
	codeBudgetExceeded       = string(fault.BudgetExceeded)
	codeProvidersUnavailable = string(fault.ProvidersUnavailable)
	codeContentFiltered      = string(fault.ContentFiltered)
	codeDeadline             = string(fault.Timeout)
	codeUnpricedUsage        = "unpriced_usage"
	// codeClientGone: the client went away before the answer (its provider call was cancelled).
	codeClientGone = "client_gone"
	// codeReserveFailed: the reservation could not be written (Postgres unreachable).
	codeReserveFailed = "reserve_failed"
	// codeStreamBroken: a streamed answer the provider broke off after its first piece.
	codeStreamBroken = "stream_broken"
)

// InputUpperBound bounds the prompt's size in tokens without a tokenizer: every token of a
// byte-level BPE or byte-fallback tokenizer covers at least one byte, so bytes bound tokens. A
// per-message allowance covers role markers, and a fixed one what adapters add to JSON requests
// (an instruction of a few sentences, and the schema, which Anthropic gets in its system prompt).
func InputUpperBound(msgs []llm.Message, schema json.RawMessage) int64 {
	n := int64(512 + len(schema))
	for _, m := range msgs {
		n += int64(len(m.Content)) + 16
	}
	return n
}

func (p *Pipeline) now() time.Time {
	if p.Now != nil {
		return p.Now()
	}
	return time.Now()
}
