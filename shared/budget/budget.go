// Package budget holds each user to a daily USD budget. The Ledger port reserves a call's
// worst-case cost before the call, settles the reservation to the actual cost after it, and
// releases it on failure; its Postgres adapter does each step in one atomic statement, so no
// number of concurrent Lambda instances can admit more than the limit.
package budget

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/helixhq/helix/shared/fault"
	"github.com/helixhq/helix/shared/money"
)

// Limits are a user's daily limit and the spend at which they are warned.
type Limits struct {
	DailyLimit money.Nano
	Warning    money.Nano
}

// Validate checks that the limits make sense together.
func (l Limits) Validate() error {
	if l.DailyLimit < 0 || l.Warning < 0 {
		return errors.New("limits must not be negative")
	}
	if l.Warning > l.DailyLimit {
		return errors.New("warning_threshold must not exceed daily_limit")
	}
	return nil
}

// Status of a user's day.
type Status string

// Statuses, by how much of the limit is spent or reserved.
const (
	StatusOK       Status = "ok"
	StatusWarning  Status = "warning"
	StatusExceeded Status = "exceeded"
)

// Day is one user's budget for one UTC day.
type Day struct {
	UserID   string
	Date     time.Time // midnight UTC
	Limits   Limits
	Spent    money.Nano // settled cost of finished calls
	Reserved money.Nano // worst-case cost of calls in flight
}

// Committed is what is spent or held for calls in flight.
func (d Day) Committed() money.Nano { return d.Spent + d.Reserved }

// Remaining is what can still be reserved today; never negative.
func (d Day) Remaining() money.Nano {
	if r := d.Limits.DailyLimit - d.Committed(); r > 0 {
		return r
	}
	return 0
}

// Status is exceeded when nothing remains, warning from the warning threshold on, else ok.
// Reservations count: money held for a call in flight is not available.
func (d Day) Status() Status {
	switch c := d.Committed(); {
	case c >= d.Limits.DailyLimit:
		return StatusExceeded
	case c >= d.Limits.Warning:
		return StatusWarning
	}
	return StatusOK
}

// ResetsAt is the next UTC midnight, when a new day starts at zero.
func (d Day) ResetsAt() time.Time { return d.Date.AddDate(0, 0, 1) }

// DateOf is the UTC day containing t.
func DateOf(t time.Time) time.Time {
	y, m, dd := t.UTC().Date()
	return time.Date(y, m, dd, 0, 0, 0, 0, time.UTC)
}

// Reservation asks to hold Amount of the user's budget for one request.
type Reservation struct {
	RequestID string
	UserID    string
	Amount    money.Nano
	// TTL bounds how long the hold survives a caller that dies before settling; the audit job's
	// sweep releases it after that.
	TTL time.Duration
	// Abandon, when set, is the context of whoever wants the hold (the client's request): if it
	// ends before the reservation is sent to the store (while waiting for a connection), Reserve
	// gives up with ErrAbandoned and holds nothing. Once sent, the reservation runs to its end
	// under Reserve's own context, whatever Abandon does.
	Abandon context.Context
}

// ErrAbandoned: the caller went away before the reservation was sent; nothing was held.
var ErrAbandoned = errors.New("the reservation was abandoned before it was sent")

// Admission is the outcome of an accepted reservation.
type Admission struct {
	// Replayed is true when the request id had already been reserved: nothing new was held.
	Replayed bool
	// Day is the user's day right after the reservation (for a replay, as it stood before).
	Day Day
}

// ExceededError is returned by Reserve when the amount does not fit in what remains.
type ExceededError struct {
	Requested money.Nano
	Day       Day
}

func (e *ExceededError) Error() string {
	return fmt.Sprintf("daily budget exceeded: requested $%s, remaining $%s of $%s",
		e.Requested, e.Day.Remaining(), e.Day.Limits.DailyLimit)
}

// Fault is what the caller is told: the amounts, and when the budget resets.
func (e *ExceededError) Fault() *fault.Error {
	return &fault.Error{Code: fault.BudgetExceeded,
		Message: "this call could cost up to $" + e.Requested.String() + " but only $" +
			e.Day.Remaining().String() + " of today's budget remains",
		Details: map[string]any{
			"daily_limit": e.Day.Limits.DailyLimit, "remaining": e.Day.Remaining(),
			"requested": e.Requested, "resets_at": e.Day.ResetsAt(),
		}}
}

// ErrInvalidLimits is returned when a warning threshold would exceed the daily limit.
var ErrInvalidLimits = fault.New(fault.InvalidField, "warning_threshold must not exceed the daily_limit (send both to change both)")

// ErrNotReserved is returned when settling or releasing a request id that was never reserved.
var ErrNotReserved = errors.New("no reservation for this request id")

// Ledger is the store of budgets. Every method is safe under any concurrency, across processes.
type Ledger interface {
	// Reserve holds r.Amount if it fits in what remains of the user's day, or returns an
	// *ExceededError. Reserving an already reserved request id again changes nothing.
	Reserve(ctx context.Context, r Reservation) (Admission, error)
	// Settle turns the reservation into spend at the actual cost. Only the first settle or
	// release of a request id has an effect; a settle after the sweep expired the hold still
	// records the spend, because the call did happen.
	Settle(ctx context.Context, requestID string, actual money.Nano) error
	// Release drops the reservation of a call that failed and cost nothing.
	Release(ctx context.Context, requestID string) error
	// Today returns the user's current day.
	Today(ctx context.Context, userID string) (Day, error)
	// SetLimits changes a user's limits, effective at once.
	SetLimits(ctx context.Context, userID string, l Limits, actor string) (Day, error)
	// UpdateLimits changes the given limits and keeps the others, atomically. When only the
	// daily limit is given and the kept warning would exceed it, the warning becomes half the
	// new limit. A warning above the resulting limit is ErrInvalidLimits.
	UpdateLimits(ctx context.Context, userID string, daily, warning *money.Nano, actor string) (Day, error)
	// SweepExpired releases up to max reservations whose TTL has passed and returns how many.
	SweepExpired(ctx context.Context, max int) (int, error)
}
