package execute

import (
	"context"

	"github.com/helixhq/helix/shared/access"
	"github.com/helixhq/helix/shared/approval"
	"github.com/helixhq/helix/shared/budget"
	"github.com/helixhq/helix/shared/router"
)

// Query asks what running an operation would do, without running it.
type Query struct {
	Caller access.Caller
	// UserID is whose budget the call would spend; "" means the caller's. Only admins may name
	// another user.
	UserID      string
	OperationID string
	// InputTokens is the input size to price; zero or less means the operation's average.
	InputTokens int64
}

// Decision is what Execute would do with a call of the queried size right now.
type Decision struct {
	router.Decision
	// Day is the budget the call would spend.
	Day budget.Day
	// ApprovalReason is why the call would be held for an admin's approval; "" when it runs.
	ApprovalReason approval.Reason
	// WithinBudget reports whether the call's worst case, the amount Execute reserves for an
	// input bound of InputTokens, fits in what remains of the day.
	WithinBudget bool
}

// Decide answers a Query with the decision execution would make: the same chain (kill switches
// and open breakers skipped, ErrProvidersUnavailable when that leaves no model), the same worst
// case, the same approval rule.
func (p *Pipeline) Decide(ctx context.Context, q Query) (Decision, error) {
	user, err := q.Caller.ActFor(q.UserID)
	if err != nil {
		return Decision{}, err
	}
	d, _, err := p.decide(ctx, router.Request{OperationID: q.OperationID, InputTokens: q.InputTokens})
	if err != nil {
		return Decision{}, err
	}
	day, err := p.Ledger.Today(ctx, user)
	if err != nil {
		return Decision{}, err
	}
	return Decision{
		Decision:       d,
		Day:            day,
		ApprovalReason: approval.Required(d.Route, d.EstimatedCost, day.Limits),
		WithinBudget:   d.WorstCase <= day.Remaining(),
	}, nil
}
