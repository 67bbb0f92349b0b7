package execute

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/cenkalti/backoff/v5"

	"github.com/helixhq/helix/shared/approval"
	"github.com/helixhq/helix/shared/budget"
	"github.com/helixhq/helix/shared/catalog"
	"github.com/helixhq/helix/shared/llm"
	"github.com/helixhq/helix/shared/oplog"
	"github.com/helixhq/helix/shared/router"
)

// Execute runs one operation. See the package comment for the steps.
func (p *Pipeline) Execute(ctx context.Context, c Call) (Result, error) {
	start := p.now()
	snap, err := p.Catalog.Get(ctx)
	if err != nil {
		return Result{}, err
	}
	tg, err := p.Toggles.Current(ctx)
	if err != nil {
		return Result{}, err
	}
	breakers, err := p.Breakers.Snapshot(ctx)
	if err != nil {
		return Result{}, err
	}
	req := router.Request{
		OperationID:     c.OperationID,
		InputTokens:     InputUpperBound(c.Messages, c.Schema),
		Model:           c.Model,
		MaxOutputTokens: c.MaxOutputTokens,
		Skip: func(m catalog.Model) bool {
			return tg.ProviderDisabled(m.Provider) || breakers.Open(m.Provider)
		},
	}
	d, err := router.Decide(snap, req)
	if errors.Is(err, router.ErrNoModel) {
		// Models exist but every one is switched off or behind an open breaker: say so.
		req.Skip = nil
		if _, plain := router.Decide(snap, req); plain == nil {
			p.finish(ctx, c, start, nil, codeProvidersUnavailable, oplog.NoReservation, false)
			return Result{}, ErrProvidersUnavailable
		}
	}
	if err != nil {
		return Result{}, err
	}

	hash := approval.HashRequest(c.UserID, c.OperationID, c.Fingerprint)
	claimed := false
	if c.ApprovalID != "" {
		if _, err := p.Approvals.ClaimApproval(ctx, approval.Claim{
			ApprovalID: c.ApprovalID, UserID: c.UserID, OperationID: c.OperationID,
			RequestHash: hash, RequestID: c.RequestID,
		}); err != nil {
			return Result{}, err
		}
		claimed = true
	} else if d.Route.RequiresApproval && !c.Continuation {
		return Result{}, p.hold(ctx, c, &d, approval.ReasonRouteRequires, hash)
	}
	unclaim := func() {
		if claimed {
			if err := p.Approvals.UnclaimApproval(context.WithoutCancel(ctx), c.ApprovalID, c.RequestID); err != nil {
				p.Logger.Error("unclaim approval", "approval_id", c.ApprovalID, "err", err)
			}
		}
	}

	adm, err := p.Ledger.Reserve(ctx, budget.Reservation{
		RequestID: c.RequestID, UserID: c.UserID, Amount: d.WorstCase, TTL: p.Policy.ReservationTTL,
	})
	var exceeded *budget.ExceededError
	if errors.As(err, &exceeded) {
		p.finish(ctx, c, start, nil, codeBudgetExceeded, oplog.NoReservation, false)
		unclaim()
		return Result{}, err
	}
	if err != nil {
		unclaim()
		return Result{}, err
	}
	if adm.Replayed {
		// The request id is server-made and unique, so this is a bug, not a client retry.
		unclaim()
		return Result{}, fmt.Errorf("request id %s was already reserved", c.RequestID)
	}
	if !claimed && !c.Continuation {
		if reason := approval.Required(d.Route, d.EstimatedCost, adm.Day.Limits); reason != approval.ReasonNone {
			if err := p.Ledger.Release(ctx, c.RequestID); err != nil {
				return Result{}, err
			}
			return Result{}, p.hold(ctx, c, &d, reason, hash)
		}
	}

	callCtx, cancel, err := p.callContext(ctx)
	if err != nil {
		p.finish(ctx, c, start, nil, codeDeadline, oplog.Release, false)
		unclaim()
		return Result{}, err
	}
	out, err := p.callChain(callCtx, c, &d)
	cancel()
	out.held = d.WorstCase
	if err != nil {
		code := codeProvidersUnavailable
		switch {
		case errors.Is(err, ErrContentFiltered):
			code = codeContentFiltered
		case errors.Is(err, ErrDeadline):
			code = codeDeadline
		}
		p.finish(ctx, c, start, &out, code, oplog.Release, false)
		unclaim()
		return Result{}, err
	}
	if err := p.finish(ctx, c, start, &out, "", oplog.Settle, true); err != nil {
		// The answer exists but its cost could not be recorded: do not hand it out unrecorded.
		return Result{}, err
	}
	if err := p.Breakers.Success(context.WithoutCancel(ctx), breakers, out.Model.Provider); err != nil {
		p.Logger.Warn("close breaker", "provider", out.Model.Provider, "err", err)
	}
	out.RequestID = c.RequestID
	out.Route = d.Route
	return out, nil
}

// hold records a pending approval and returns the error that tells the caller so.
func (p *Pipeline) hold(ctx context.Context, c Call, d *router.Decision, reason approval.Reason, hash string) error {
	a, err := p.Approvals.CreateApproval(ctx, approval.Approval{
		UserID: c.UserID, OperationID: c.OperationID, RequestHash: hash,
		EstimatedCost: d.EstimatedCost, Reason: reason, Summary: c.Summary,
		ExpiresAt: p.now().Add(p.Policy.ApprovalTTL),
	})
	if err != nil {
		return err
	}
	return &PendingApprovalError{Approval: a}
}

// callContext derives the providers' deadline from the caller's (the Lambda's remaining time),
// keeping FinishMargin back to settle and answer.
func (p *Pipeline) callContext(ctx context.Context) (context.Context, context.CancelFunc, error) {
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = p.now().Add(p.Policy.DefaultTimeout)
	}
	deadline = deadline.Add(-p.Policy.FinishMargin)
	if !deadline.After(p.now()) {
		return nil, nil, ErrDeadline
	}
	cctx, cancel := context.WithDeadline(ctx, deadline)
	return cctx, cancel, nil
}

// callChain tries the decision's models in order. Each model gets AttemptsPerModel tries with
// exponential backoff and jitter, honouring a provider's Retry-After when the deadline allows;
// failures feed the shared breakers.
func (p *Pipeline) callChain(ctx context.Context, c Call, d *router.Decision) (Result, error) {
	var out Result
	var last *llm.Error
	for i := 0; i < d.ChainLen; i++ {
		m := d.Chain[i]
		prov, ok := p.Providers.Get(m.Provider)
		if !ok {
			last = &llm.Error{Provider: m.Provider, Kind: llm.KindAuth, Message: "provider not configured"}
			continue
		}
		req := llm.Request{
			Model: m.APIModel, Messages: c.Messages, MaxOutputTokens: d.MaxOutputTokens,
			Temperature: c.Temperature, JSON: c.JSON, Schema: c.Schema,
		}
		resp, err := backoff.Retry(ctx, func() (llm.Response, error) {
			out.Attempts++
			r, err := prov.Complete(ctx, req)
			if err == nil {
				return r, nil
			}
			le := llm.AsError(m.Provider, err)
			last = le
			p.Logger.Warn("provider call failed", "request_id", c.RequestID, "model", m.Key,
				"provider", m.Provider, "kind", le.Kind, "status", le.StatusCode, "err", le.Message)
			if countsAgainstProvider(le) {
				if err := p.Breakers.Failure(context.WithoutCancel(ctx), m.Provider, string(le.Kind)); err != nil {
					p.Logger.Error("record provider failure", "provider", m.Provider, "err", err)
				}
			}
			if !le.Retryable() {
				return r, backoff.Permanent(le)
			}
			if le.RetryAfter > 0 {
				if dl, ok := ctx.Deadline(); ok && p.now().Add(le.RetryAfter).After(dl) {
					return r, backoff.Permanent(le) // no time to wait: fail over now
				}
				return r, &backoff.RetryAfterError{Duration: le.RetryAfter}
			}
			return r, le
		}, backoff.WithBackOff(p.backoff()), backoff.WithMaxTries(p.Policy.AttemptsPerModel),
			backoff.WithMaxElapsedTime(p.remaining(ctx)))
		if err == nil {
			out.Model = m
			out.Text = resp.Text
			out.FinishReason = resp.FinishReason
			out.Offline = resp.Offline
			// Any model but the route's primary answering is a fallback, including when the
			// primary was skipped (kill switch, open breaker) rather than tried.
			out.FallbackUsed = c.Model == "" && m.Key != d.Route.PrimaryModel
			out.Usage = catalog.Usage{
				InputTokens: resp.Usage.InputTokens, CachedInputTokens: resp.Usage.CachedInputTokens,
				OutputTokens: resp.Usage.OutputTokens, ReasoningTokens: resp.Usage.ReasoningTokens,
			}
			out.providerRequestID = resp.ProviderRequestID
			return out, nil
		}
		if last != nil && last.Final() {
			out.Model = m
			return out, fmt.Errorf("%w: %v", ErrContentFiltered, last)
		}
		if ctx.Err() != nil {
			return out, fmt.Errorf("%w: the deadline passed during failover (last error: %v)", ErrDeadline, last)
		}
	}
	if last != nil {
		return out, fmt.Errorf("%w: last error: %v", ErrProvidersUnavailable, last)
	}
	return out, ErrProvidersUnavailable
}

// countsAgainstProvider: failures that say something about the provider's health, not about
// this request.
func countsAgainstProvider(e *llm.Error) bool {
	switch e.Kind {
	case llm.KindContentFiltered, llm.KindInvalidRequest:
		return false
	}
	return true
}

func (p *Pipeline) backoff() backoff.BackOff {
	b := backoff.NewExponentialBackOff()
	b.InitialInterval = p.Policy.InitialBackoff
	b.MaxInterval = p.Policy.MaxBackoff
	b.RandomizationFactor = 0.5 // jitter, so instances do not retry in lockstep
	return b
}

func (p *Pipeline) remaining(ctx context.Context) time.Duration {
	if dl, ok := ctx.Deadline(); ok {
		return dl.Sub(p.now())
	}
	return p.Policy.DefaultTimeout
}

// finish settles or releases the hold and writes the log row, in one statement. It runs even
// when the caller has gone away (a closed connection must not leave money held), bounded by its
// own short timeout, and retries a transient failure.
func (p *Pipeline) finish(ctx context.Context, c Call, start time.Time, out *Result, code string, outcome oplog.Outcome, success bool) error {
	rec := oplog.Record{
		RequestID: c.RequestID, OperationID: c.OperationID, UserID: c.UserID,
		Latency: p.now().Sub(start), Success: success, ErrorCode: code,
	}
	if out != nil && out.Model.Key != "" {
		rec.Model, rec.Provider, rec.PriceVersion = out.Model.Key, out.Model.Provider, out.Model.PriceVersion
		rec.Usage, rec.FallbackUsed, rec.ProviderRequestID = out.Usage, out.FallbackUsed, out.providerRequestID
		if success {
			if out.Offline {
				rec.Provider, rec.PriceVersion = "offline", "offline"
			} else if cost, ok := out.Model.Cost(out.Usage); ok {
				out.Cost = cost
				if cost > out.held {
					p.Logger.Warn("cost above the reserved worst case", "request_id", c.RequestID,
						"cost_nano", int64(cost), "held_nano", int64(out.held), "model", out.Model.Key)
				}
			} else {
				// The provider reported usage that cannot be priced (negative, absurd). The call
				// happened and the provider will bill it: charge the worst case that was held,
				// never less, and flag the row.
				p.Logger.Error("unpriceable usage", "request_id", c.RequestID, "usage", fmt.Sprintf("%+v", out.Usage))
				out.Cost, rec.ErrorCode = out.held, codeUnpricedUsage
			}
			rec.Cost = out.Cost
		}
	}
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		if err = p.Log.Finish(fctx, rec, outcome); err == nil {
			return nil
		}
		if fctx.Err() != nil {
			break
		}
		time.Sleep(time.Duration(attempt+1) * 50 * time.Millisecond)
	}
	p.Logger.Error("record operation", "request_id", c.RequestID, "outcome", outcome, "cost_nano", int64(rec.Cost), "err", err)
	return err
}
