// Package oplog describes what Helix records about every operation: one ai_operation_log row per
// request, written in the same statement that settles or releases the request's budget hold.
package oplog

import (
	"context"
	"time"

	"github.com/helixhq/helix/shared/catalog"
	"github.com/helixhq/helix/shared/money"
)

// Record is one executed (or refused) operation.
type Record struct {
	RequestID         string
	OperationID       string
	UserID            string
	Model             string // model key; "" when no model was called
	Provider          string
	ProviderRequestID string
	Usage             catalog.Usage // of the attempt the row describes (the answer, or the last billed failure)
	Cost              money.Nano    // the whole call's, FailedAttemptsCost included
	// FailedAttemptsCost is what attempts before the one the row describes were billed (a
	// provider that billed an answer it then withheld, and the call failed over).
	FailedAttemptsCost money.Nano
	PriceVersion       string
	Latency            time.Duration
	Success            bool
	ErrorCode          string
	FallbackUsed       bool
}

// Outcome says what happens to the request's budget reservation.
type Outcome int

// Budget outcomes.
const (
	// Settle turns the reservation into spend at the record's cost.
	Settle Outcome = iota
	// Release gives the reservation back: the call failed and cost nothing.
	Release
	// NoReservation only logs: the request was refused before anything was reserved.
	NoReservation
)

// Writer records outcomes. Finish must be idempotent by request id.
type Writer interface {
	Finish(ctx context.Context, rec Record, outcome Outcome) error
}
