// Package router decides which model serves an operation and what it will cost, from a catalog
// snapshot. It does no I/O and allocates nothing, so it can run on every request.
package router

import (
	"github.com/helixhq/helix/shared/catalog"
	"github.com/helixhq/helix/shared/fault"
	"github.com/helixhq/helix/shared/money"
)

// Errors of a routing decision.
var (
	ErrUnknownOperation  = catalog.ErrUnknownOperation
	ErrOperationDisabled = fault.New(fault.OperationDisabled, "this operation is disabled")
	ErrNoModel           = fault.New(fault.NoModelAvailable, "no enabled model can serve this operation")
	ErrUnknownModel      = catalog.ErrUnknownModel
)

// MaxChain is the longest failover chain: primary, fallback, emergency.
const MaxChain = 3

// Request asks for a decision.
type Request struct {
	OperationID string
	// InputTokens is the caller's estimate of the prompt size; zero or less means "use the
	// operation's average".
	InputTokens int64
	// Skip, when set, removes models from the chain (a provider kill switch, an open breaker).
	Skip func(catalog.Model) bool
	// Model, when set, pins the call to that one model key: no fallback, no emergency.
	Model string
	// MaxOutputTokens, when positive and below the operation's limit, lowers the output cap the
	// worst case is computed with (and that is sent to the provider).
	MaxOutputTokens int64
}

// Decision is the outcome: the ordered failover chain and the cost estimates at its first model.
type Decision struct {
	Route catalog.Route
	// Chain holds the usable models in failover order; Chain[:ChainLen] are valid.
	Chain    [MaxChain]catalog.Model
	ChainLen int

	InputTokens  int64 // the estimate used (the caller's, or the operation's average)
	OutputTokens int64 // the operation's expected output (its average)
	// EstimatedCost = InputTokens × input price + OutputTokens × output price of the first model.
	EstimatedCost money.Nano
	// MaxOutputTokens is the output cap: the operation's, or the caller's if lower.
	MaxOutputTokens int64
	// WorstCase = InputTokens × input price + MaxOutputTokens × output price of the most
	// expensive model in the chain, the input priced at the model's highest input-side price (a
	// cache write may cost more than plain input): what a call may cost whichever model answers.
	WorstCase money.Nano
}

// Model is the first model of the chain, the one that will be called first.
func (d *Decision) Model() catalog.Model { return d.Chain[0] }

// Fallback is the second model of the chain, if any.
func (d *Decision) Fallback() (catalog.Model, bool) {
	if d.ChainLen < 2 {
		return catalog.Model{}, false
	}
	return d.Chain[1], true
}

// Decide routes one request. It returns ErrUnknownOperation, ErrOperationDisabled or ErrNoModel.
func Decide(s *catalog.Snapshot, req Request) (Decision, error) {
	var d Decision
	r, ok := s.Route(req.OperationID)
	if !ok {
		return d, ErrUnknownOperation
	}
	if !r.Enabled {
		return d, ErrOperationDisabled
	}
	d.Route = r
	if req.Model != "" {
		if _, ok := s.Model(req.Model); !ok {
			return d, ErrUnknownModel
		}
		d.add(s, req.Model, req.Skip)
	} else {
		d.add(s, r.PrimaryModel, req.Skip)
		if r.FallbackModel != "" {
			d.add(s, r.FallbackModel, req.Skip)
		}
		if r.AllowEmergency {
			if em, ok := s.Emergency(); ok {
				d.add(s, em.Key, req.Skip)
			}
		}
	}
	if d.ChainLen == 0 {
		return d, ErrNoModel
	}

	d.InputTokens = req.InputTokens
	if d.InputTokens <= 0 {
		d.InputTokens = r.AvgInputTokens
	}
	if d.InputTokens > catalog.MaxInputTokensLimit {
		d.InputTokens = catalog.MaxInputTokensLimit
	}
	d.OutputTokens = r.AvgOutputTokens
	d.MaxOutputTokens = r.MaxOutputTokens
	if req.MaxOutputTokens > 0 && req.MaxOutputTokens < d.MaxOutputTokens {
		d.MaxOutputTokens = req.MaxOutputTokens
	}
	first := d.Chain[0]
	d.EstimatedCost, _ = money.CostOf(
		money.TokenCharge{Tokens: d.InputTokens, PerMillion: first.InputPerMTok},
		money.TokenCharge{Tokens: d.OutputTokens, PerMillion: first.OutputPerMTok},
	)
	for i := 0; i < d.ChainLen; i++ {
		m := d.Chain[i]
		worst, _ := money.CostOf(
			money.TokenCharge{Tokens: d.InputTokens, PerMillion: m.MaxInputPerMTok()},
			money.TokenCharge{Tokens: d.MaxOutputTokens, PerMillion: m.OutputPerMTok},
		)
		if worst > d.WorstCase {
			d.WorstCase = worst
		}
	}
	return d, nil
}

func (d *Decision) add(s *catalog.Snapshot, key string, skip func(catalog.Model) bool) {
	m, ok := s.Model(key)
	if !ok || !m.Usable() || (skip != nil && skip(m)) {
		return
	}
	for i := 0; i < d.ChainLen; i++ {
		if d.Chain[i].Key == key {
			return
		}
	}
	d.Chain[d.ChainLen] = m
	d.ChainLen++
}
