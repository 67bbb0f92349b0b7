package execute

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/cenkalti/backoff/v5"

	"github.com/helixhq/helix/shared/approval"
	"github.com/helixhq/helix/shared/breaker"
	"github.com/helixhq/helix/shared/budget"
	"github.com/helixhq/helix/shared/catalog"
	"github.com/helixhq/helix/shared/llm"
	"github.com/helixhq/helix/shared/money"
	"github.com/helixhq/helix/shared/oplog"
	"github.com/helixhq/helix/shared/router"
)

// Execute runs one operation. See the package comment for the steps.
//
// The money of an admitted call (reserve, settle or release, the log row) is kept under a
// context of its own (bookkeeping), so a client that goes away cannot leave a hold behind or an
// answer unrecorded; the provider call itself follows the client: it is cancelled when the
// client goes away, and then charged for the input it was sent (see abandonedCost).
func (p *Pipeline) Execute(ctx context.Context, c Call) (Result, error) {
	start := p.now()
	book, cancelBook := p.bookkeeping(ctx)
	defer cancelBook()
	d, breakers, err := p.decide(ctx, router.Request{
		OperationID:     c.OperationID,
		InputTokens:     InputUpperBound(c.Messages, c.Schema),
		Model:           c.Model,
		MaxOutputTokens: c.MaxOutputTokens,
	})
	if errors.Is(err, ErrProvidersUnavailable) {
		p.finish(book, ending{call: c, start: start, code: codeProvidersUnavailable, budget: oplog.NoReservation})
	}
	if err != nil {
		return Result{}, err
	}

	hash := approval.HashRequest(c.UserID, c.OperationID, c.Fingerprint)
	if c.ApprovalID != "" {
		if _, err := p.Approvals.ClaimApproval(book, approval.Claim{
			ApprovalID: c.ApprovalID, UserID: c.UserID, OperationID: c.OperationID,
			RequestHash: hash, RequestID: c.RequestID,
		}); err != nil {
			return Result{}, err
		}
	} else if d.Route.RequiresApproval && !c.Continuation {
		return Result{}, p.hold(book, c, &d, approval.ReasonRouteRequires, hash)
	}
	// A claimed approval is spent only by a call a provider answered; on every other way out it
	// is given back, so the client can re-send the request once whatever stopped it is fixed.
	answered := false
	defer func() {
		if c.ApprovalID != "" && !answered {
			if err := p.Approvals.UnclaimApproval(book, c.ApprovalID, c.RequestID); err != nil {
				p.Logger.Error("unclaim approval", "approval_id", c.ApprovalID, "err", err)
			}
		}
	}()

	adm, err := p.reserve(book, budget.Reservation{
		RequestID: c.RequestID, UserID: c.UserID, Amount: d.WorstCase, TTL: p.Policy.ReservationTTL,
		Abandon: ctx, // a client that leaves while the reservation waits for a connection sheds it
	})
	var exceeded *budget.ExceededError
	switch {
	case errors.Is(err, budget.ErrAbandoned):
		return Result{}, fmt.Errorf("%w (the client went away before anything was reserved)", ctx.Err())
	case errors.As(err, &exceeded):
		p.finish(book, ending{call: c, start: start, code: codeBudgetExceeded, budget: oplog.NoReservation})
	case errors.Is(err, errAlreadyReserved):
	case err != nil:
		// No attempt got an answer: a hold may exist or not. Release whatever there is, and log
		// the call, in one statement.
		p.finish(book, ending{call: c, start: start, code: codeReserveFailed, budget: oplog.Release})
	}
	if err != nil {
		return Result{}, err
	}
	if c.ApprovalID == "" && !c.Continuation {
		if reason := approval.Required(d.Route, d.EstimatedCost, adm.Day.Limits); reason != approval.ReasonNone {
			if err := p.Ledger.Release(book, c.RequestID); err != nil {
				return Result{}, err
			}
			return Result{}, p.hold(book, c, &d, reason, hash)
		}
	}
	if err := ctx.Err(); err != nil {
		// The client went away while the hold was written: nothing was sent to a provider.
		p.finish(book, ending{call: c, start: start, code: codeClientGone, budget: oplog.Release})
		return Result{}, err
	}

	callCtx, cancel, err := p.callContext(ctx)
	if err != nil {
		p.finish(book, ending{call: c, start: start, code: codeDeadline, budget: oplog.Release})
		return Result{}, err
	}
	out, tried, err := p.callChain(callCtx, c, &d)
	cancel()
	out.held = d.WorstCase
	if err != nil {
		clientGone := ctx.Err() != nil || errors.Is(err, errClientStopped)
		if ctx.Err() != nil && !errors.Is(err, ErrContentFiltered) {
			err = fmt.Errorf("%w (the client went away)", ctx.Err())
		}
		p.finish(book, p.failed(c, start, &d, &out, tried, err, clientGone))
		return Result{}, err
	}
	answered = true
	out.FailedAttemptsCost = tried.billed
	if err := p.finish(book, ending{call: c, start: start, result: &out, budget: oplog.Settle, success: true}); err != nil {
		// The answer exists but its cost could not be recorded: do not hand it out unrecorded.
		return Result{}, err
	}
	if err := p.Breakers.Success(book, breakers, out.Model.Provider); err != nil {
		p.Logger.Warn("close breaker", "provider", out.Model.Provider, "err", err)
	}
	out.RequestID = c.RequestID
	out.Route = d.Route
	return out, nil
}

// bookkeeping is the context the money of a call is kept under: the request's values without
// its cancellation, so a client that hangs up cannot interrupt a reservation, a settlement or a
// log row half way, bounded by the function's deadline (the Lambda's; DefaultTimeout when the
// request has none, as on the dev server).
func (p *Pipeline) bookkeeping(ctx context.Context) (context.Context, context.CancelFunc) {
	book := context.WithoutCancel(ctx)
	if dl, ok := ctx.Deadline(); ok {
		return context.WithDeadline(book, dl)
	}
	return context.WithTimeout(book, p.Policy.DefaultTimeout)
}

// errAlreadyReserved: the first reservation of a request id found it reserved already. Request
// ids are server-made and unique, so this is a bug, not a client retry.
var errAlreadyReserved = errors.New("request id already reserved")

// reserve holds the call's worst case, and resolves an unknown outcome: a statement that fails on
// its way back (the connection dropped after Postgres committed, or before) is sent again with
// the same request id, which the ledger answers as a replay when the first one was admitted. The
// caller releases whatever hold may exist when no attempt got an answer.
func (p *Pipeline) reserve(ctx context.Context, r budget.Reservation) (budget.Admission, error) {
	tries := 0
	return backoff.Retry(ctx, func() (budget.Admission, error) {
		tries++
		if tries > 1 {
			// The first attempt may have been sent: the retries resolve it, client or not.
			r.Abandon = nil
		}
		adm, err := p.Ledger.Reserve(ctx, r)
		var exceeded *budget.ExceededError
		switch {
		case errors.As(err, &exceeded), errors.Is(err, budget.ErrAbandoned):
			return adm, backoff.Permanent(err)
		case err != nil:
			p.Logger.Warn("reserve failed; retrying with the same request id", "request_id", r.RequestID, "try", tries, "err", err)
			return adm, err
		case adm.Replayed && tries == 1:
			return adm, backoff.Permanent(fmt.Errorf("%w: %s", errAlreadyReserved, r.RequestID))
		}
		// A replay on a later try is this call's own first attempt, which was admitted.
		adm.Replayed = false
		return adm, nil
	}, backoff.WithBackOff(p.backoff(20*time.Millisecond, 500*time.Millisecond)), backoff.WithMaxTries(4))
}

// failed is the ending of a call whose provider chain failed. A call some provider billed (an
// answer it then withheld, an attempt cut off in flight) is settled at what it cost and logged
// with its error code and the last billed attempt's usage; only a failure nobody billed is
// released.
func (p *Pipeline) failed(c Call, start time.Time, d *router.Decision, out *Result, tried attempts, err error, clientGone bool) ending {
	code := failureCode(err)
	if clientGone {
		code = codeClientGone
	}
	e := ending{call: c, start: start, code: code, budget: oplog.Release}
	if out.Model.Key != "" {
		e.result = out // the model that refused the content
	}
	if last := tried.last; last != nil {
		e.result = &Result{Model: last.model, Usage: last.usage, providerRequestID: last.requestID, held: d.WorstCase,
			FallbackUsed: c.Model == "" && last.model.Key != d.Route.PrimaryModel}
		if tried.billed > 0 {
			e.budget, e.cost = oplog.Settle, tried.billed
			e.result.FailedAttemptsCost = tried.billed - last.cost
		}
	}
	return e
}

// attempts is what the failed attempts of a provider chain cost.
type attempts struct {
	// billed is the cost of every failed attempt a provider billed.
	billed money.Nano
	// last is the last billed failed attempt: the one a failed call's log row shows.
	last *attempt
}

// attempt is one billed failed attempt.
type attempt struct {
	model     catalog.Model
	usage     catalog.Usage
	cost      money.Nano
	requestID string
}

// bill records a failed attempt on m. An error that carries usage was billed at that usage. An
// attempt cut off in flight (its context ended while the provider had the request) reported
// nothing, but the provider had the prompt: it is charged for the input bound at m's input
// price, not for output it may or may not have produced, and not for nothing. Any other failure
// (an HTTP error, a refused connection) billed nothing.
//
// A streamed attempt that ended after handing over streamed pieces is charged for them too: the
// provider's usage when it reported some (never less output than the pieces handed over), else
// the input bound and one token per piece (each piece holds at least one token): what was
// consumed, never nothing and never the whole reservation.
func (a *attempts) bill(m catalog.Model, le *llm.Error, cutOff bool, inputBound, streamed int64, held money.Nano) {
	var u catalog.Usage
	switch {
	case le.Usage != nil:
		u = usageOf(*le.Usage)
		u.OutputTokens = max(u.OutputTokens, streamed)
	case cutOff || streamed > 0:
		u = catalog.Usage{InputTokens: inputBound, OutputTokens: streamed}
	}
	if u.Zero() {
		return
	}
	cost, ok := m.Cost(u)
	if !ok {
		cost = held // unpriceable usage: never charge less than what was held
	}
	a.billed += cost
	a.last = &attempt{model: m, usage: u, cost: cost, requestID: le.RequestID}
}

func usageOf(u llm.Usage) catalog.Usage {
	return catalog.Usage{
		InputTokens: u.InputTokens, CachedInputTokens: u.CachedInputTokens,
		CacheWriteTokens: u.CacheWriteTokens, CacheWrite1hTokens: u.CacheWrite1hTokens,
		OutputTokens: u.OutputTokens, ReasoningTokens: u.ReasoningTokens,
	}
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
	case errors.Is(err, ErrStreamBroken):
		return codeStreamBroken
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
// failures feed the shared breakers, and what failed attempts were billed is in the attempts.
func (p *Pipeline) callChain(ctx context.Context, c Call, d *router.Decision) (Result, attempts, error) {
	var out Result
	var tried attempts
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
		streamed := int64(0) // pieces of this model's answer handed to the client
		resp, err := backoff.Retry(ctx, func() (llm.Response, error) {
			out.Attempts++
			r, err := p.attempt(ctx, prov, m, req, c.Stream, &streamed)
			if err == nil {
				return r, nil
			}
			le := llm.AsError(m.Provider, err)
			last = le
			tried.bill(m, le, ctx.Err() != nil, d.InputTokens, streamed, d.WorstCase)
			if streamed > 0 {
				// The client has part of this model's answer: no retry, no other model.
				p.Logger.Warn("stream broken", "request_id", c.RequestID, "model", m.Key, "pieces", streamed, "kind", le.Kind, "err", le.Message)
				return r, backoff.Permanent(le)
			}
			p.Logger.Warn("provider call failed", "request_id", c.RequestID, "model", m.Key,
				"provider", m.Provider, "kind", le.Kind, "status", le.StatusCode, "billed", le.Usage != nil, "err", le.Message)
			if ctx.Err() != nil {
				return r, backoff.Permanent(le) // the caller is gone or out of time: no retry, no failover
			}
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
			out.Usage = usageOf(resp.Usage)
			out.providerRequestID = resp.ProviderRequestID
			return out, tried, nil
		}
		if streamed > 0 {
			out.Model = m
			if errors.Is(last, errClientStopped) {
				return out, tried, fmt.Errorf("%w: %v", errClientStopped, last)
			}
			if ctx.Err() != nil {
				return out, tried, fmt.Errorf("%w: the answer was cut off: %v", ErrDeadline, last)
			}
			return out, tried, fmt.Errorf("%w: %w: %v", ErrProvidersUnavailable, ErrStreamBroken, last)
		}
		if last != nil && last.Final() {
			out.Model = m
			return out, tried, fmt.Errorf("%w: %v", ErrContentFiltered, last)
		}
		if ctx.Err() != nil {
			return out, tried, fmt.Errorf("%w: the deadline passed during failover (last error: %v)", ErrDeadline, last)
		}
	}
	if last != nil {
		return out, tried, fmt.Errorf("%w: last error: %v", ErrProvidersUnavailable, last)
	}
	return out, tried, ErrProvidersUnavailable
}

// errClientStopped: the client refused a streamed piece (it went away).
var errClientStopped = errors.New("the client stopped reading the stream")

// attempt is one call of prov: Complete, or, for a streamed call, the provider's stream, each
// piece handed to sink as it comes and counted in streamed. A provider that cannot stream
// answers whole, handed over as one piece.
func (p *Pipeline) attempt(ctx context.Context, prov llm.Provider, m catalog.Model, req llm.Request, sink func(Piece) error, streamed *int64) (llm.Response, error) {
	st, canStream := prov.(llm.Streamer)
	if sink == nil || !canStream {
		r, err := prov.Complete(ctx, req)
		if err == nil && sink != nil && r.Text != "" {
			*streamed = 1
			if serr := sink(Piece{Text: r.Text, Model: m}); serr != nil {
				return r, &llm.Error{Provider: prov.Name(), Kind: llm.KindTimeout, Message: errClientStopped.Error(), Usage: &r.Usage, Err: errClientStopped}
			}
		}
		return r, err
	}
	s, err := st.Stream(ctx, req)
	if err != nil {
		return llm.Response{}, err
	}
	defer s.Close()
	for {
		d, err := s.Next()
		if errors.Is(err, io.EOF) {
			return s.Response().Response, nil
		}
		if err != nil {
			return llm.Response{}, withStreamUsage(llm.AsError(prov.Name(), err), s.Response())
		}
		// Counted before it is handed over: a piece the client may have received is charged.
		*streamed++
		if serr := sink(Piece{Text: d.Text, Model: m}); serr != nil {
			le := &llm.Error{Provider: prov.Name(), Kind: llm.KindTimeout, Message: errClientStopped.Error(), Err: errClientStopped}
			return llm.Response{}, withStreamUsage(le, s.Response())
		}
	}
}

// withStreamUsage keeps on le the usage a stream reported before it ended, if any.
func withStreamUsage(le *llm.Error, sr llm.StreamResponse) *llm.Error {
	if le.Usage == nil && sr.HasUsage {
		u := sr.Usage
		le.Usage = &u
	}
	return le
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
	// result is what the provider chain produced, or the failed attempt a row shows; nil when no
	// model was called.
	result *Result
	// code is the log's error code; "" for a success.
	code string
	// budget says what happens to the reservation.
	budget  oplog.Outcome
	success bool
	// cost is what a failed call is settled at (what its attempts were billed); a success is
	// priced from its usage.
	cost money.Nano
}

// finish settles or releases the hold and writes the log row, in one statement, under the
// bookkeeping context. The statement is idempotent by request id, so a failure whose outcome is
// unknown (the connection dropped on the way back) is resolved by sending it again, with backoff,
// until that context ends.
func (p *Pipeline) finish(ctx context.Context, e ending) error {
	c, out := e.call, e.result
	rec := oplog.Record{
		RequestID: c.RequestID, OperationID: c.OperationID, UserID: c.UserID,
		Latency: p.now().Sub(e.start), Success: e.success, ErrorCode: e.code,
	}
	if out != nil && out.Model.Key != "" {
		rec.Model, rec.Provider, rec.PriceVersion = out.Model.Key, out.Model.Provider, out.Model.PriceVersion
		rec.Usage, rec.FallbackUsed, rec.ProviderRequestID = out.Usage, out.FallbackUsed, out.providerRequestID
		rec.FailedAttemptsCost = out.FailedAttemptsCost
		if e.success {
			p.price(out, &rec)
		} else {
			rec.Cost = e.cost
		}
	}
	_, err := backoff.Retry(ctx, func() (struct{}, error) {
		return struct{}{}, p.Log.Finish(ctx, rec, e.budget)
	}, backoff.WithBackOff(p.backoff(50*time.Millisecond, time.Second)), backoff.WithMaxTries(4))
	if err != nil {
		p.Logger.Error("record operation", "request_id", c.RequestID, "outcome", e.budget, "cost_nano", int64(rec.Cost), "err", err)
	}
	if p.Metrics != nil {
		if err != nil {
			// An answer whose cost could not be recorded is not handed out: the caller gets an
			// error, and the metrics count one.
			rec.Success = false
		}
		p.Metrics.Operation(rec)
	}
	return err
}

// price sets the cost of a successful call on out and rec: its usage at the answering model's
// prices, plus what failed attempts before it were billed.
func (p *Pipeline) price(out *Result, rec *oplog.Record) {
	switch cost, ok := out.Model.Cost(out.Usage); {
	case out.Offline:
		rec.Provider, rec.PriceVersion = "offline", "offline"
	case ok:
		out.Cost = cost
	default:
		// The provider reported usage that cannot be priced (negative, absurd). The call happened
		// and the provider will bill it: charge the worst case that was held, never less, and
		// flag the row.
		p.Logger.Error("unpriceable usage", "request_id", rec.RequestID, "usage", fmt.Sprintf("%+v", out.Usage))
		out.Cost, rec.ErrorCode = out.held, codeUnpricedUsage
	}
	out.Cost += out.FailedAttemptsCost
	if out.Cost > out.held {
		p.Logger.Warn("cost above the reserved worst case", "request_id", rec.RequestID,
			"cost_nano", int64(out.Cost), "held_nano", int64(out.held), "model", out.Model.Key)
	}
	rec.Cost = out.Cost
}
