package execute

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/cenkalti/backoff/v5"

	"github.com/helixhq/helix/shared/approval"
	"github.com/helixhq/helix/shared/breaker"
	"github.com/helixhq/helix/shared/budget"
	"github.com/helixhq/helix/shared/catalog"
	"github.com/helixhq/helix/shared/llm"
	"github.com/helixhq/helix/shared/oplog"
	"github.com/helixhq/helix/shared/router"
)

// Execute runs one operation. See the package comment for the steps.
func (p *Pipeline) Execute(ctx context.Context, c Call) (Result, error) {
	start := p.now()
	d, breakers, err := p.decide(ctx, router.Request{
		OperationID:     c.OperationID,
		InputTokens:     InputUpperBound(c.Messages, c.Schema),
		Model:           c.Model,
		MaxOutputTokens: c.MaxOutputTokens,
	})
	if errors.Is(err, ErrProvidersUnavailable) {
		p.finish(ctx, ending{call: c, start: start, code: codeProvidersUnavailable, budget: oplog.NoReservation})
	}
	if err != nil {
		return Result{}, err
	}

	hash := approval.HashRequest(c.UserID, c.OperationID, c.Fingerprint)
	if c.ApprovalID != "" {
		if _, err := p.Approvals.ClaimApproval(ctx, approval.Claim{
			ApprovalID: c.ApprovalID, UserID: c.UserID, OperationID: c.OperationID,
			RequestHash: hash, RequestID: c.RequestID,
		}); err != nil {
			return Result{}, err
		}
	} else if d.Route.RequiresApproval && !c.Continuation {
		return Result{}, p.hold(ctx, c, &d, approval.ReasonRouteRequires, hash)
	}
	// A claimed approval is spent only by a call a provider answered; on every other way out it
	// is given back, so the client can re-send the request once whatever stopped it is fixed.
	answered := false
	defer func() {
		if c.ApprovalID != "" && !answered {
			if err := p.Approvals.UnclaimApproval(context.WithoutCancel(ctx), c.ApprovalID, c.RequestID); err != nil {
				p.Logger.Error("unclaim approval", "approval_id", c.ApprovalID, "err", err)
			}
		}
	}()

	adm, err := p.Ledger.Reserve(ctx, budget.Reservation{
		RequestID: c.RequestID, UserID: c.UserID, Amount: d.WorstCase, TTL: p.Policy.ReservationTTL,
	})
	var exceeded *budget.ExceededError
	if errors.As(err, &exceeded) {
		p.finish(ctx, ending{call: c, start: start, code: codeBudgetExceeded, budget: oplog.NoReservation})
	}
	if err != nil {
		return Result{}, err
	}
	if adm.Replayed {
		// The request id is server-made and unique, so this is a bug, not a client retry.
		return Result{}, fmt.Errorf("request id %s was already reserved", c.RequestID)
	}
	if c.ApprovalID == "" && !c.Continuation {
		if reason := approval.Required(d.Route, d.EstimatedCost, adm.Day.Limits); reason != approval.ReasonNone {
			if err := p.Ledger.Release(ctx, c.RequestID); err != nil {
				return Result{}, err
			}
			return Result{}, p.hold(ctx, c, &d, reason, hash)
		}
	}

	callCtx, cancel, err := p.callContext(ctx)
	if err != nil {
		p.finish(ctx, ending{call: c, start: start, code: codeDeadline, budget: oplog.Release})
		return Result{}, err
	}
	out, err := p.callChain(callCtx, c, &d)
	cancel()
	out.held = d.WorstCase
	if err != nil {
		p.finish(ctx, ending{call: c, start: start, result: &out, code: failureCode(err), budget: oplog.Release})
		return Result{}, err
	}
	answered = true
	if err := p.finish(ctx, ending{call: c, start: start, result: &out, budget: oplog.Settle, success: true}); err != nil {
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

// decide routes a request the way execution runs it: models whose provider's kill switch is on
// or whose breaker is open are left out of the chain. When that leaves none of a chain that
// exists, the error is ErrProvidersUnavailable (not router.ErrNoModel, which means no enabled
// model is configured at all).
func (p *Pipeline) decide(ctx context.Context, req router.Request) (router.Decision, breaker.Snapshot, error) {
	snap, err := p.Catalog.Get(ctx)
	if err != nil {
		return router.Decision{}, breaker.Snapshot{}, err
	}
	tg, err := p.Toggles.Current(ctx)
	if err != nil {
		return router.Decision{}, breaker.Snapshot{}, err
	}
	breakers, err := p.Breakers.Snapshot(ctx)
	if err != nil {
		return router.Decision{}, breaker.Snapshot{}, err
	}
	var skipped []string
	req.Skip = func(m catalog.Model) bool {
		switch {
		case tg.ProviderDisabled(m.Provider):
			skipped = append(skipped, m.Key+" (kill switch)")
		case breakers.Open(m.Provider):
			skipped = append(skipped, m.Key+" (circuit breaker open)")
		default:
			return false
		}
		return true
	}
	d, err := router.Decide(snap, req)
	if errors.Is(err, router.ErrNoModel) && len(skipped) > 0 {
		return d, breakers, fmt.Errorf("%w: skipped %s", ErrProvidersUnavailable, strings.Join(skipped, ", "))
	}
	return d, breakers, err
}

// failureCode is the log's error code of a failed provider chain.
func failureCode(err error) string {
	switch {
	case errors.Is(err, ErrContentFiltered):
		return codeContentFiltered
	case errors.Is(err, ErrDeadline):
		return codeDeadline
	}
	return codeProvidersUnavailable
}

// hold records a pending approval and returns the error that tells the caller so. Holding the
// same request again (a client re-sending while it waits) returns the approval already pending.
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
		}, backoff.WithBackOff(p.backoff(p.Policy.InitialBackoff, p.Policy.MaxBackoff)),
			backoff.WithMaxTries(p.Policy.AttemptsPerModel), backoff.WithMaxElapsedTime(p.remaining(ctx)))
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

// backoff is exponential with jitter, so instances do not retry in lockstep.
func (p *Pipeline) backoff(initial, max time.Duration) backoff.BackOff {
	b := backoff.NewExponentialBackOff()
	b.InitialInterval = initial
	b.MaxInterval = max
	b.RandomizationFactor = 0.5
	return b
}

func (p *Pipeline) remaining(ctx context.Context) time.Duration {
	if dl, ok := ctx.Deadline(); ok {
		return dl.Sub(p.now())
	}
	return p.Policy.DefaultTimeout
}

// ending is how a call ended, for finish.
type ending struct {
	call  Call
	start time.Time
	// result is what the provider chain produced; nil when no model was called.
	result *Result
	// code is the log's error code; "" for a success.
	code string
	// budget says what happens to the reservation.
	budget  oplog.Outcome
	success bool
}

// finish settles or releases the hold and writes the log row, in one statement. It runs even
// when the caller has gone away (a closed connection must not leave money held), bounded by its
// own short timeout, and retries a transient failure with backoff until that timeout ends.
func (p *Pipeline) finish(ctx context.Context, e ending) error {
	c, out := e.call, e.result
	rec := oplog.Record{
		RequestID: c.RequestID, OperationID: c.OperationID, UserID: c.UserID,
		Latency: p.now().Sub(e.start), Success: e.success, ErrorCode: e.code,
	}
	if out != nil && out.Model.Key != "" {
		rec.Model, rec.Provider, rec.PriceVersion = out.Model.Key, out.Model.Provider, out.Model.PriceVersion
		rec.Usage, rec.FallbackUsed, rec.ProviderRequestID = out.Usage, out.FallbackUsed, out.providerRequestID
		if e.success {
			p.price(out, &rec)
		}
	}
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	_, err := backoff.Retry(fctx, func() (struct{}, error) {
		return struct{}{}, p.Log.Finish(fctx, rec, e.budget)
	}, backoff.WithBackOff(p.backoff(50*time.Millisecond, time.Second)), backoff.WithMaxTries(3))
	if err != nil {
		p.Logger.Error("record operation", "request_id", c.RequestID, "outcome", e.budget, "cost_nano", int64(rec.Cost), "err", err)
	}
	return err
}

// price sets the cost of a successful call on out and rec.
func (p *Pipeline) price(out *Result, rec *oplog.Record) {
	switch cost, ok := out.Model.Cost(out.Usage); {
	case out.Offline:
		rec.Provider, rec.PriceVersion = "offline", "offline"
	case ok:
		out.Cost = cost
		if cost > out.held {
			p.Logger.Warn("cost above the reserved worst case", "request_id", rec.RequestID,
				"cost_nano", int64(cost), "held_nano", int64(out.held), "model", out.Model.Key)
		}
	default:
		// The provider reported usage that cannot be priced (negative, absurd). The call happened
		// and the provider will bill it: charge the worst case that was held, never less, and
		// flag the row.
		p.Logger.Error("unpriceable usage", "request_id", rec.RequestID, "usage", fmt.Sprintf("%+v", out.Usage))
		out.Cost, rec.ErrorCode = out.held, codeUnpricedUsage
	}
	rec.Cost = out.Cost
}
