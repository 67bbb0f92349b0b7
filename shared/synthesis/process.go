package synthesis

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/helixhq/helix/shared/budget"
	"github.com/helixhq/helix/shared/execute"
	"github.com/helixhq/helix/shared/llm"
	"github.com/helixhq/helix/shared/memory"
	"github.com/helixhq/helix/shared/money"
	"github.com/helixhq/helix/shared/structured"
	"github.com/helixhq/helix/shared/toggles"
)

// Message is a message to learn from.
type Message struct {
	Seq     int64
	Role    string // user or assistant
	Content string
}

// Work is what a claimed job covers: the messages after After up to Through.
type Work struct {
	After, Through int64
	Summary        string // the conversation's summary so far
	Messages       []Message
}

// Result is what a run learned.
type Result struct {
	Summary   string
	Actions   []memory.Action
	RequestID string
	Cost      money.Nano
}

// Counts say what a run changed (the job's record; never memory content).
type Counts struct {
	Added, Reinforced, Updated, Invalidated int
}

// Errors of the store.
var (
	// ErrDone: the job was run to its end before (a redelivery).
	ErrDone = errors.New("synthesis job already done")
	// ErrBusy: another run holds the conversation; try again later.
	ErrBusy = errors.New("another synthesis run holds the conversation")
	// ErrGone: the conversation was deleted.
	ErrGone = errors.New("the conversation no longer exists")
)

// Store is what synthesis needs from Postgres.
type Store interface {
	// Claim takes the conversation for a run (a lease, so a crashed run cannot hold it forever)
	// and returns the messages to learn from, at most maxMessages of them (Work.Through is then
	// the last one's seq).
	Claim(ctx context.Context, j Job, lease time.Duration, maxMessages int) (Work, error)
	// Candidates returns the user's active insights a text could affect, at most limit.
	Candidates(ctx context.Context, userID, text string, limit int) ([]memory.Insight, error)
	// Commit applies a run's result and records the job done, in one transaction, and ends the
	// lease; it writes nothing when the conversation moved on since the claim.
	Commit(ctx context.Context, j Job, w Work, r Result) (Counts, error)
	// Skip records the job as skipped for reason and ends the lease.
	Skip(ctx context.Context, j Job, w Work, reason string) error
	// Release ends the lease of a run that failed (the queue delivers the job again).
	Release(ctx context.Context, j Job) error
	// Due returns jobs for conversations that need one (idle with unsynthesized messages, or a
	// job sent but not completed for stale), recording them as sent.
	Due(ctx context.Context, idle, stale time.Duration, limit int) ([]Job, error)
}

// Executor runs a call through the execution pipeline.
type Executor interface {
	Execute(ctx context.Context, c execute.Call) (execute.Result, error)
}

// Toggles gives the kill switches (DISABLE_SYNTHESIS).
type Toggles interface {
	Current(ctx context.Context) (toggles.Set, error)
}

// Policy tunes the processor.
type Policy struct {
	Operation   string        // memory_synthesis
	Lease       time.Duration // longer than a run can take
	MaxMessages int           // per run
	// MaxParts bounds the runs one delivery makes over a stretch longer than MaxMessages (a
	// backlog); what is left is recorded as partial and the sweep sends the job again.
	MaxParts   int
	Candidates int // existing insights shown to the model
	// Idle and Stale drive the sweep: conversations quiet for Idle get a job; a job not done
	// Stale after it was sent is sent again.
	Idle, Stale time.Duration
}

// DefaultPolicy suits a synthesis function with a 60 s timeout.
func DefaultPolicy() Policy {
	return Policy{Operation: "memory_synthesis", Lease: 3 * time.Minute, MaxMessages: 100, MaxParts: 3, Candidates: 40,
		Idle: 10 * time.Minute, Stale: 10 * time.Minute}
}

// Processor runs synthesis jobs. It is safe for concurrent use.
type Processor struct {
	Store   Store
	Exec    Executor
	Toggles Toggles
	Logger  *slog.Logger
	Policy  Policy
}

// Outcome says what a run did.
type Outcome string

// Outcomes.
const (
	Done    Outcome = "done"
	Skipped Outcome = "skipped"
	Dup     Outcome = "duplicate" // already done: nothing written
)

// Process runs one job. An error means the job should be delivered again (another run holds the
// conversation, the providers failed); everything else is recorded and acknowledged: a skipped
// job (synthesis disabled, the user over budget, nothing new) is a record, not a loss. A stretch
// longer than MaxMessages is learned in parts, one run each, up to MaxParts per delivery; the
// store records the job partial until its last part, so the sweep sends what is left again.
func (p *Processor) Process(ctx context.Context, j Job) (Outcome, error) {
	for part := 1; ; part++ {
		out, w, err := p.run(ctx, j)
		if err != nil || out != Done || w.Through >= j.ThroughSeq {
			return out, err
		}
		if part >= max(p.Policy.MaxParts, 1) || ctx.Err() != nil {
			p.Logger.Info("synthesis partial; the sweep sends the rest", "conversation_id", j.ConversationID,
				"through_seq", j.ThroughSeq, "learned_through", w.Through)
			return Skipped, nil
		}
	}
}

// run claims the job's next stretch, learns from it and commits; the work says how far it got.
func (p *Processor) run(ctx context.Context, j Job) (Outcome, Work, error) {
	set, err := p.Toggles.Current(ctx)
	if err != nil {
		return "", Work{}, err
	}
	w, err := p.Store.Claim(ctx, j, p.Policy.Lease, p.Policy.MaxMessages)
	switch {
	case errors.Is(err, ErrDone), errors.Is(err, ErrGone):
		return Dup, w, nil
	case err != nil:
		return "", w, err
	}
	skip := func(reason string) (Outcome, Work, error) {
		p.Logger.Info("synthesis skipped", "conversation_id", j.ConversationID, "through_seq", j.ThroughSeq, "reason", reason)
		return Skipped, w, p.Store.Skip(context.WithoutCancel(ctx), j, w, reason)
	}
	if set.Enabled(toggles.DisableSynthesis) {
		return skip("disabled")
	}
	if w.Through <= w.After {
		return skip("nothing_new")
	}
	if len(w.Messages) == 0 {
		// Only turns not to learn from (a step-up): nothing to ask a model, but the stretch is
		// done, so the conversation is not sent again for it.
		if _, err := p.Store.Commit(context.WithoutCancel(ctx), j, w, Result{Summary: w.Summary}); err != nil {
			return "", w, err
		}
		return Done, w, nil
	}
	r, err := p.learn(ctx, j, w)
	var exceeded *budget.ExceededError
	var pending *execute.PendingApprovalError
	switch {
	case errors.As(err, &exceeded):
		return skip("over_budget")
	case errors.As(err, &pending):
		return skip("approval_required")
	case err != nil:
		if rerr := p.Store.Release(context.WithoutCancel(ctx), j); rerr != nil {
			p.Logger.Error("release synthesis lease", "conversation_id", j.ConversationID, "err", rerr)
		}
		return "", w, err
	}
	counts, err := p.Store.Commit(context.WithoutCancel(ctx), j, w, r)
	if err != nil {
		return "", w, err
	}
	// Counts only: memory content never goes to the logs.
	p.Logger.Info("synthesis done", "conversation_id", j.ConversationID, "through_seq", w.Through,
		"messages", len(w.Messages), "added", counts.Added, "reinforced", counts.Reinforced,
		"updated", counts.Updated, "invalidated", counts.Invalidated, "cost_nano", int64(r.Cost))
	return Done, w, nil
}

// answer is the model's structured answer.
type answer struct {
	Summary string         `json:"summary"`
	Actions []answerAction `json:"actions"`
}

type answerAction struct {
	Action     string   `json:"action"`
	Insight    string   `json:"insight,omitempty"`
	Layer      int      `json:"layer,omitempty"`
	Text       string   `json:"text,omitempty"`
	Confidence *float64 `json:"confidence,omitempty"`
	Evidence   []int64  `json:"evidence"`
}

// learn runs the memory_synthesis operation and turns its answer into checked actions, with one
// repair attempt when the answer does not hold up.
func (p *Processor) learn(ctx context.Context, j Job, w Work) (Result, error) {
	var text strings.Builder
	for _, m := range w.Messages {
		if m.Role == "user" {
			text.WriteString(m.Content)
			text.WriteByte(' ')
		}
	}
	candidates, err := p.Store.Candidates(ctx, j.UserID, text.String(), p.Policy.Candidates)
	if err != nil {
		return Result{}, err
	}
	handles := make(map[string]memory.Insight, len(candidates))
	order := make([]string, len(candidates))
	for n, c := range candidates {
		h := fmt.Sprintf("i%d", n+1) // short handles: the model never sees (or invents) ids
		handles[h], order[n] = c, h
	}
	schemaText := answerSchema(order, w)
	schema, err := structured.Compile(schemaText)
	if err != nil {
		return Result{}, fmt.Errorf("synthesis schema: %w", err)
	}
	msgs := []llm.Message{
		{Role: llm.RoleSystem, Content: systemPrompt + "\n\nAnswer with one JSON object and nothing else. It must validate against this JSON Schema:\n" + schemaText},
		{Role: llm.RoleUser, Content: userPrompt(w, order, handles)},
	}
	call := execute.Call{
		RequestID: "synthesis-" + uuid.NewString(), UserID: j.UserID, OperationID: p.Policy.Operation,
		Messages: msgs, JSON: true, Schema: json.RawMessage(schemaText),
		Summary: fmt.Sprintf("memory synthesis of %d messages", len(w.Messages)),
	}
	res, err := p.Exec.Execute(ctx, call)
	if err != nil {
		return Result{}, err
	}
	cost := res.Cost
	r, verr := parseAnswer(schema, res.Text, handles, w)
	if verr != nil {
		repair := call
		repair.RequestID = call.RequestID + "-repair"
		repair.Continuation = true
		repair.Messages = append(append([]llm.Message{}, msgs...),
			llm.Message{Role: llm.RoleAssistant, Content: res.Text},
			llm.Message{Role: llm.RoleUser, Content: "That answer is not valid: " + verr.Error() + "\nReply again with only the corrected JSON object."})
		res2, err := p.Exec.Execute(ctx, repair)
		if err != nil {
			return Result{}, err
		}
		cost += res2.Cost
		if r, verr = parseAnswer(schema, res2.Text, handles, w); verr != nil {
			return Result{}, fmt.Errorf("the model's synthesis did not hold up, even after a repair attempt: %w", verr)
		}
	}
	r.RequestID, r.Cost = res.RequestID, cost
	return r, nil
}

// parseAnswer validates the answer against the schema and each action against what the run was
// shown, and maps handles back to insight ids.
func parseAnswer(schema *structured.Schema, text string, handles map[string]memory.Insight, w Work) (Result, error) {
	var a answer
	if err := schema.Decode(text, &a); err != nil {
		return Result{}, err
	}
	known := make(map[string]memory.Insight, len(handles))
	for _, i := range handles {
		known[i.ID] = i
	}
	r := Result{Summary: strings.TrimSpace(a.Summary)}
	for n, x := range a.Actions {
		act := memory.Action{Kind: memory.Kind(x.Action), Layer: memory.Layer(x.Layer), Text: strings.TrimSpace(x.Text), Evidence: x.Evidence}
		if x.Confidence != nil {
			act.Confidence = *x.Confidence
		} else {
			act.Confidence = 0.6
		}
		if x.Insight != "" {
			i, ok := handles[x.Insight]
			if !ok {
				return Result{}, fmt.Errorf("actions[%d]: insight %q is not one of the insights shown", n, x.Insight)
			}
			act.InsightID = i.ID
		}
		if err := act.Check(known, w.After, w.Through); err != nil {
			return Result{}, fmt.Errorf("actions[%d]: %v", n, err)
		}
		r.Actions = append(r.Actions, act)
	}
	return r, nil
}

// Sweep sends jobs for conversations that need one (see Store.Due). The audit function calls it
// every minute; until that function exists, the dev server does.
func (p *Processor) Sweep(ctx context.Context, q Queue, limit int) (int, error) {
	jobs, err := p.Store.Due(ctx, p.Policy.Idle, p.Policy.Stale, limit)
	if err != nil {
		return 0, err
	}
	sent := 0
	for _, j := range jobs {
		if err := q.Enqueue(ctx, j); err != nil {
			p.Logger.Warn("enqueue synthesis from the sweep; the next sweep tries again", "conversation_id", j.ConversationID, "err", err)
			continue
		}
		sent++
	}
	return sent, nil
}
