// Package auditapp assembles the audit function's minute, for the audit Lambda (an EventBridge
// schedule) and the dev server (a ticker): sweep expired budget reservations, queue synthesis for
// idle conversations, probe the providers, sequence the audit log, write the backlogs' metrics,
// append and post the heartbeat, sign and post the checkpoint, post the api digest, deliver the
// Discord outbox. Each step has its own time bound, and a failing step does not stop the others;
// the heartbeat says how each went.
package auditapp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"sync"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/helixhq/helix/shared/alerts"
	"github.com/helixhq/helix/shared/app"
	"github.com/helixhq/helix/shared/auditlog"
	"github.com/helixhq/helix/shared/breaker"
	"github.com/helixhq/helix/shared/catalog"
	"github.com/helixhq/helix/shared/discord"
	"github.com/helixhq/helix/shared/emf"
	"github.com/helixhq/helix/shared/llm"
	"github.com/helixhq/helix/shared/outbox"
	"github.com/helixhq/helix/shared/postgres"
	"github.com/helixhq/helix/shared/postgres/alertstore"
	"github.com/helixhq/helix/shared/postgres/auditstore"
	"github.com/helixhq/helix/shared/postgres/memorystore"
	"github.com/helixhq/helix/shared/synthesis"
	"github.com/helixhq/helix/shared/toggles"
)

// Step is one part of the minute.
type Step struct {
	Name    string
	Timeout time.Duration
	Run     func(ctx context.Context) error
}

// RunSteps runs the steps in order, each under its own time bound within ctx's, and returns how
// each went ("ok" or what went wrong). A step that fails, panics or overruns its bound is
// recorded and the next one runs: one failing step (a database error, a hanging webhook) does
// not stop the others.
func RunSteps(ctx context.Context, steps []Step, log *slog.Logger) map[string]string {
	out := make(map[string]string, len(steps))
	for _, s := range steps {
		out[s.Name] = runStep(ctx, s)
		if out[s.Name] != "ok" {
			log.Warn("audit step failed", "step", s.Name, "outcome", out[s.Name])
		}
	}
	return out
}

func runStep(ctx context.Context, s Step) (outcome string) {
	if ctx.Err() != nil {
		return "not run: no time left"
	}
	sctx, cancel := context.WithTimeout(ctx, s.Timeout)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		defer func() {
			if p := recover(); p != nil {
				done <- fmt.Errorf("panic: %v", p)
			}
		}()
		done <- s.Run(sctx)
	}()
	select {
	case err := <-done:
		switch {
		case err == nil:
			return "ok"
		case errors.Is(err, context.DeadlineExceeded) && sctx.Err() != nil:
			return timedOut(ctx, s)
		default:
			return err.Error()
		}
	case <-sctx.Done():
		// The step ignores its context (a call without a deadline): leave it behind rather than
		// let it hold the minute. Its own work is transactional, so nothing is left half done.
		return timedOut(ctx, s)
	}
}

// timedOut says which bound a step ran into: its own, or the run's deadline before it.
func timedOut(run context.Context, s Step) string {
	if run.Err() != nil {
		return "timed out: the run's deadline came first"
	}
	return fmt.Sprintf("timed out after %s", s.Timeout)
}

// Audit is the audit function's minute and what it works with.
type Audit struct {
	Log       *auditstore.Log
	Outbox    *auditstore.Outbox
	Deliverer *outbox.Deliverer
	Signer    note.Signer // nil: no checkpoints (the heartbeat says so)
	Ledger    *postgres.Ledger
	Sweeper   *synthesis.Processor // its Sweep: idle conversations' jobs
	Queue     synthesis.Queue      // nil: no synthesis sweep
	Providers *llm.Registry        // nil: no probes
	Alerts    *alertstore.Store    // nil: no alert evaluation
	// AlertSender posts to operator rules' own webhooks (a client that only reaches public
	// addresses).
	AlertSender outbox.Sender
	Catalog     *catalog.Cache
	Toggles     *toggles.Service
	Breakers    *breaker.Breakers
	Logger      *slog.Logger
	// Metrics receives the backlogs every minute (CloudWatch metrics); nil: none.
	Metrics *emf.Writer
	Now     func() time.Time
	// IntegrateBatch is how many events one integration transaction sequences.
	IntegrateBatch int
}

// New assembles the minute over the core: webhooks from the configuration, the signing key (an
// error when it is set but unreadable), the synthesis queue (nil: no sweep), the providers to
// probe (nil: none) and the core's metrics writer (Core.Metrics, which the function's main
// sets; nil: no metrics).
func New(c *app.Core, queue synthesis.Queue, providers *llm.Registry) (*Audit, error) {
	var signer note.Signer
	if k := c.Config.Audit.SigningKey; k != "" {
		s, err := auditlog.NewSigner(k)
		if err != nil {
			return nil, err
		}
		signer = s
	}
	hooks := outbox.Webhooks{}
	for _, ch := range outbox.Channels() {
		if u := c.Config.Audit.Webhooks[ch.EnvVar()]; u != "" {
			hooks[ch] = u
		}
	}
	box := auditstore.NewOutbox(c.Pool)
	alertStore, err := alertstore.WithKey(c.Pool, c.Config.Alerts.WebhookKey)
	if err != nil {
		return nil, err
	}
	cache, _ := c.Catalog()
	sweeperPolicy := synthesis.DefaultPolicy()
	sweeperPolicy.Idle = c.Config.Synthesis.Idle
	a := &Audit{
		Log:    auditstore.New(c.Pool),
		Outbox: box,
		Deliverer: &outbox.Deliverer{Store: box, Sender: discord.New(), Webhooks: hooks, Alerter: box,
			Logger: c.Log, Policy: outbox.DefaultPolicy()},
		Signer:         signer,
		Ledger:         c.Ledger(),
		Sweeper:        &synthesis.Processor{Store: memorystore.NewMemory(c.Pool, nil), Logger: c.Log, Policy: sweeperPolicy},
		Queue:          queue,
		Providers:      providers,
		Catalog:        cache,
		Alerts:         alertStore,
		AlertSender:    discord.NewRestricted(alerts.PublicAddress),
		Toggles:        c.Toggles(),
		Breakers:       c.Breakers(),
		Logger:         c.Log,
		Metrics:        c.Metrics,
		IntegrateBatch: 5000,
	}
	for _, ch := range hooks.Missing() {
		c.Log.Warn("discord channel without a webhook: its messages are kept undelivered", "channel", ch.Name(), "variable", ch.EnvVar())
	}
	if signer == nil {
		c.Log.Warn("no audit signing key (HELIX_AUDIT_SIGNING_KEY): no checkpoints are signed")
	}
	return a, nil
}

// Result is what a minute did.
type Result struct {
	Steps      map[string]string
	Integrated int
	Size       int64
	Delivered  map[outbox.Channel]outbox.ChannelResult
}

// laterSteps are the steps after the heartbeat: the next heartbeat reports how they went.
var laterSteps = []string{"heartbeat", "integrate_heartbeat", "checkpoint", "api_digest", "deliver"}

// closingTime is what Run keeps of its deadline, after the steps, to record the minute's
// outcome and read the log's size: a Lambda that answers after its deadline has its answer
// thrown away ("Task timed out").
const closingTime = time.Second

// Run is one minute. Its deadline bounds the whole (less closingTime); each step has its own
// bound within it.
func (a *Audit) Run(ctx context.Context) Result {
	now := a.now()
	started := time.Now()
	closing := context.WithoutCancel(ctx)
	if deadline, ok := ctx.Deadline(); ok {
		var cancelSteps, cancelClosing context.CancelFunc
		ctx, cancelSteps = context.WithDeadline(ctx, deadline.Add(-closingTime))
		defer cancelSteps()
		closing, cancelClosing = context.WithDeadline(closing, deadline)
		defer cancelClosing()
	}
	var res Result
	var mu sync.Mutex // steps run one at a time, but one left behind after its timeout may still finish
	steps := []Step{
		{Name: "sweep_reservations", Timeout: 5 * time.Second, Run: func(ctx context.Context) error {
			_, err := a.Ledger.SweepExpired(ctx, 5000)
			return err
		}},
		{Name: "synthesis_sweep", Timeout: 5 * time.Second, Run: func(ctx context.Context) error {
			if a.Queue == nil {
				return nil
			}
			_, err := a.Sweeper.Sweep(ctx, a.Queue, 200)
			return err
		}},
		{Name: "provider_probes", Timeout: 6 * time.Second, Run: a.probe},
		{Name: "alerts", Timeout: 4 * time.Second, Run: func(ctx context.Context) error {
			return a.evaluateAlerts(ctx, now)
		}},
		{Name: "integrate", Timeout: 12 * time.Second, Run: func(ctx context.Context) error {
			r, err := a.Log.IntegrateAll(ctx, a.batch())
			mu.Lock()
			res.Integrated += r.Entries
			mu.Unlock()
			return err
		}},
		{Name: "metrics", Timeout: 2 * time.Second, Run: a.metrics},
	}
	res.Steps = RunSteps(ctx, steps, a.Logger)
	// The heartbeat step gets a copy: left behind after its bound, it may still be reading
	// while the later steps' outcomes are added to res.Steps.
	before := maps.Clone(res.Steps)

	// The heartbeat reports the steps before it, then is sequenced, signed and posted with the
	// rest; the later steps' outcomes are in the result, in audit_runs, and in the next
	// minute's heartbeat (previous_run).
	later := []Step{
		{Name: "heartbeat", Timeout: 4 * time.Second, Run: func(ctx context.Context) error {
			return a.heartbeat(ctx, now, before)
		}},
		{Name: "integrate_heartbeat", Timeout: 4 * time.Second, Run: func(ctx context.Context) error {
			r, err := a.Log.IntegrateAll(ctx, a.batch())
			mu.Lock()
			res.Integrated += r.Entries
			mu.Unlock()
			return err
		}},
		{Name: "checkpoint", Timeout: 4 * time.Second, Run: a.checkpoint},
		{Name: "api_digest", Timeout: 3 * time.Second, Run: func(ctx context.Context) error {
			return a.digest(ctx, now)
		}},
		{Name: "deliver", Timeout: 20 * time.Second, Run: func(ctx context.Context) error {
			d := a.Deliverer.Deliver(ctx)
			mu.Lock()
			res.Delivered = d
			mu.Unlock()
			// Cut short by the run's deadline: what is left waits for the next minute, and
			// the outcome says so.
			return ctx.Err()
		}},
	}
	for k, v := range RunSteps(ctx, later, a.Logger) {
		res.Steps[k] = v
	}
	if err := a.Log.SaveRun(closing, started, res.Steps); err != nil {
		a.Logger.Warn("audit: the minute's outcome was not recorded; the next heartbeat will not report its last steps", "err", err)
	}
	if head, err := a.Log.Head(closing); err == nil {
		res.Size = head.Size
	}
	// A step left behind may still write its part of res: hand back a copy taken under its lock.
	mu.Lock()
	defer mu.Unlock()
	return res
}

// IntegrateBacklog sequences the pending events when at least threshold of them wait, and
// reports how many it sequenced (0 when the queue was shorter, or another integrator holds the
// lock). It is the opportunistic integration between two minutes; the minute itself integrates
// whatever is pending.
func (a *Audit) IntegrateBacklog(ctx context.Context, threshold int64) (int, error) {
	if ok, err := a.Log.PendingAtLeast(ctx, threshold); err != nil || !ok {
		return 0, err
	}
	r, err := a.Log.IntegrateAll(ctx, a.batch())
	return r.Entries, err
}

// WatchBacklog calls IntegrateBacklog every interval until ctx ends: for a process that lives
// between minutes (the dev server), so a burst is sequenced within seconds rather than at the
// next minute. A Lambda is frozen between invocations, and an integration frozen halfway would
// hold the integrator's lock, so there the schedule's minute is the only integrator.
func (a *Audit) WatchBacklog(ctx context.Context, interval time.Duration, threshold int64) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			run, cancel := context.WithTimeout(ctx, interval*4)
			n, err := a.IntegrateBacklog(run, threshold)
			cancel()
			if err != nil && ctx.Err() == nil {
				a.Logger.Warn("audit: opportunistic integration failed; the minute will retry", "err", err)
			} else if n > 0 {
				a.Logger.Debug("audit: integrated a backlog", "entries", n)
			}
		}
	}
}

func (a *Audit) batch() int {
	if a.IntegrateBatch > 0 {
		return a.IntegrateBatch
	}
	return 5000
}

func (a *Audit) now() time.Time {
	if a.Now != nil {
		return a.Now()
	}
	return time.Now()
}

// heartbeat appends the minute's heartbeat: activity over the last minute, the log's size and
// backlog, and how the steps went.
func (a *Audit) heartbeat(ctx context.Context, now time.Time, steps map[string]string) error {
	act, err := a.Log.Activity(ctx, now.Add(-time.Minute), now)
	if err != nil {
		return err
	}
	head, err := a.Log.Head(ctx)
	if err != nil {
		return err
	}
	pending, err := a.Log.Pending(ctx)
	if err != nil {
		return err
	}
	previous, err := a.Log.LastRun(ctx, laterSteps...)
	if err != nil {
		return err
	}
	facts := auditlog.HeartbeatFacts{Operations: act.Operations, Errors: act.Errors, P95LatencyMS: act.P95LatencyMS,
		TreeSize: head.Size, Pending: pending, Steps: steps, PreviousRun: previous}
	return a.Log.Record(ctx, auditlog.Event{Kind: auditlog.Heartbeat, Actor: "audit", Payload: facts})
}

// Backlog metric names: what waits, and for how long, after the minute's integration. Issue 10's
// alarms watch them (an outbox entry older than 10 minutes, an audit log that stopped
// sequencing).
const (
	MetricOutboxBacklog       = "OutboxBacklog"
	MetricOutboxOldestAge     = "OutboxOldestAgeSeconds"
	MetricAuditPending        = "AuditPending"
	MetricAuditIntegrationLag = "AuditIntegrationLagSeconds"
)

// metrics writes one EMF document with the backlogs: the living undelivered Discord outbox
// entries (dead ones are given up on and alerted already) and the age of the oldest, the audit
// events still unsequenced and the age of the oldest. It runs after the integration, so a
// pending count that stays up is events the integrator could not sequence.
func (a *Audit) metrics(ctx context.Context) error {
	if a.Metrics == nil {
		return nil
	}
	now := a.now()
	pending, err := a.Log.Pending(ctx)
	if err != nil {
		return err
	}
	oldestPending, err := a.Log.OldestPending(ctx)
	if err != nil {
		return err
	}
	backlog, oldestOutbox, err := a.Outbox.Backlog(ctx)
	if err != nil {
		return fmt.Errorf("outbox backlog: %w", err)
	}
	var outboxAge time.Duration
	if !oldestOutbox.IsZero() {
		outboxAge = now.Sub(oldestOutbox)
	}
	var lag time.Duration
	if !oldestPending.IsZero() {
		lag = now.Sub(oldestPending)
	}
	return a.Metrics.Emit(nil, nil,
		emf.Metric{Name: MetricOutboxBacklog, Unit: emf.Count, Value: float64(backlog)},
		emf.Metric{Name: MetricOutboxOldestAge, Unit: emf.Seconds, Value: seconds(outboxAge)},
		emf.Metric{Name: MetricAuditPending, Unit: emf.Count, Value: float64(pending)},
		emf.Metric{Name: MetricAuditIntegrationLag, Unit: emf.Seconds, Value: seconds(lag)},
	)
}

// seconds is d in whole seconds, never negative (the database's clock may run a little ahead).
func seconds(d time.Duration) float64 {
	return float64(max(d, 0) / time.Second)
}

// checkpoint signs the tree as it is and queues it for #helix-hash-chain.
func (a *Audit) checkpoint(ctx context.Context) error {
	if a.Signer == nil {
		return errors.New("no signing key (HELIX_AUDIT_SIGNING_KEY)")
	}
	head, err := a.Log.Head(ctx)
	if err != nil {
		return err
	}
	root, err := a.Log.Root(ctx, head.Size)
	if err != nil {
		return err
	}
	c := auditlog.Checkpoint{Size: head.Size, Root: root, At: a.now().UTC().Truncate(time.Second)}
	signed, err := c.Sign(a.Signer)
	if err != nil {
		return err
	}
	return a.Log.SaveCheckpoint(ctx, c.Size, c.Root, signed)
}

// digest posts the calls since the last digest that were not posted one by one.
func (a *Audit) digest(ctx context.Context, now time.Time) error {
	from, err := a.Outbox.LastDigest(ctx)
	if err != nil {
		return err
	}
	if from.IsZero() || now.Sub(from) > time.Hour {
		from = now.Add(-time.Minute) // the first digest, or after a long stop: the last minute
	}
	_, err = a.Outbox.Digest(ctx, from, now)
	return err
}

// probe asks each enabled provider for its model list, at once, and records the outcome for
// the breakers: a failure counts towards opening one, a success closes one that was open.
func (a *Audit) probe(ctx context.Context) error {
	if a.Providers == nil || a.Providers.ForcedOffline() {
		return nil
	}
	snap, err := a.Catalog.Get(ctx)
	if err != nil {
		return err
	}
	set, err := a.Toggles.Current(ctx)
	if err != nil {
		return err
	}
	breakers, err := a.Breakers.Snapshot(ctx)
	if err != nil {
		return err
	}
	enabled := map[string]bool{}
	for _, m := range snap.Models() {
		if m.Enabled && a.Providers.Configured(m.Provider) && !set.ProviderDisabled(m.Provider) {
			enabled[m.Provider] = true
		}
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var failed []error
	for name := range enabled {
		p, _ := a.Providers.Get(name)
		pr, ok := p.(llm.Prober)
		if !ok {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			perr := pr.Probe(ctx)
			var rerr error
			if perr != nil {
				rerr = a.Breakers.Failure(context.WithoutCancel(ctx), name, "probe: "+perr.Error())
			} else {
				rerr = a.Breakers.Success(context.WithoutCancel(ctx), breakers, name)
			}
			mu.Lock()
			defer mu.Unlock()
			if perr != nil {
				failed = append(failed, fmt.Errorf("%s: %w", name, perr))
			}
			if rerr != nil {
				failed = append(failed, fmt.Errorf("%s breaker: %w", name, rerr))
			}
		}()
	}
	wg.Wait()
	return errors.Join(failed...)
}
