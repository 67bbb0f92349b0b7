package synthesis_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/helixhq/helix/shared/approval"
	"github.com/helixhq/helix/shared/budget"
	"github.com/helixhq/helix/shared/execute"
	"github.com/helixhq/helix/shared/llm"
	"github.com/helixhq/helix/shared/memory"
	"github.com/helixhq/helix/shared/money"
	"github.com/helixhq/helix/shared/synthesis"
	"github.com/helixhq/helix/shared/toggles"
)

// ---- fakes of the processor's ports ----

type skipCall struct {
	Job    synthesis.Job
	Work   synthesis.Work
	Reason string
}

type commitCall struct {
	Job    synthesis.Job
	Work   synthesis.Work
	Result synthesis.Result
}

type fakeStore struct {
	mu         sync.Mutex
	work       synthesis.Work
	claimErr   error
	candidates []memory.Insight
	candErr    error
	commitErr  error
	due        []synthesis.Job
	dueErr     error

	claims     []synthesis.Job
	candTexts  []string
	candLimits []int
	commits    []commitCall
	skips      []skipCall
	releases   []synthesis.Job
	dueArgs    []time.Duration // idle, stale
	dueLimit   int
}

func (s *fakeStore) Claim(_ context.Context, j synthesis.Job, _ time.Duration, _ int) (synthesis.Work, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.claims = append(s.claims, j)
	if s.claimErr != nil {
		return synthesis.Work{}, s.claimErr
	}
	return s.work, nil
}

func (s *fakeStore) Candidates(_ context.Context, _, text string, limit int) ([]memory.Insight, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.candTexts, s.candLimits = append(s.candTexts, text), append(s.candLimits, limit)
	return s.candidates, s.candErr
}

func (s *fakeStore) Commit(_ context.Context, j synthesis.Job, w synthesis.Work, r synthesis.Result) (synthesis.Counts, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.commitErr != nil {
		return synthesis.Counts{}, s.commitErr
	}
	s.commits = append(s.commits, commitCall{j, w, r})
	var c synthesis.Counts
	for _, a := range r.Actions {
		switch a.Kind {
		case memory.Add:
			c.Added++
		case memory.Reinforce:
			c.Reinforced++
		case memory.Update:
			c.Updated++
		case memory.Invalidate:
			c.Invalidated++
		}
	}
	return c, nil
}

func (s *fakeStore) Skip(_ context.Context, j synthesis.Job, w synthesis.Work, reason string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.skips = append(s.skips, skipCall{j, w, reason})
	return nil
}

func (s *fakeStore) Release(_ context.Context, j synthesis.Job) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.releases = append(s.releases, j)
	return nil
}

func (s *fakeStore) Due(_ context.Context, idle, stale time.Duration, limit int) ([]synthesis.Job, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.dueArgs, s.dueLimit = []time.Duration{idle, stale}, limit
	return s.due, s.dueErr
}

// reply is one scripted answer of the executor.
type reply struct {
	text string
	cost money.Nano
	err  error
}

type fakeExec struct {
	mu      sync.Mutex
	replies []reply
	calls   []execute.Call
}

func (e *fakeExec) Execute(_ context.Context, c execute.Call) (execute.Result, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.calls = append(e.calls, c)
	if len(e.calls) > len(e.replies) {
		return execute.Result{}, fmt.Errorf("unexpected call %d", len(e.calls))
	}
	r := e.replies[len(e.calls)-1]
	if r.err != nil {
		return execute.Result{}, r.err
	}
	return execute.Result{RequestID: c.RequestID, Text: r.text, Cost: r.cost}, nil
}

type fakeToggles struct {
	set toggles.Set
	err error
}

func (f fakeToggles) Current(context.Context) (toggles.Set, error) { return f.set, f.err }

type toggleRows map[string]toggles.Toggle

func (t toggleRows) LoadToggles(context.Context) (map[string]toggles.Toggle, error) { return t, nil }
func (t toggleRows) SetToggle(context.Context, string, bool, string) (toggles.Toggle, error) {
	return toggles.Toggle{}, errors.New("read-only")
}

func toggleSet(t *testing.T, disabled bool) toggles.Set {
	t.Helper()
	rows := toggleRows{toggles.DisableSynthesis: {Key: toggles.DisableSynthesis, Enabled: disabled}}
	set, err := toggles.NewService(rows, nil, time.Minute, nil).Current(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return set
}

// ---- fixtures ----

const (
	idTea  = "7d4c1f7e-2a0b-4c3e-9a51-0d1f7b6e9a01"
	idCity = "7d4c1f7e-2a0b-4c3e-9a51-0d1f7b6e9a02"
)

var job = synthesis.Job{ConversationID: convID, UserID: "user-1", ThroughSeq: 8}

func work() synthesis.Work {
	return synthesis.Work{After: 4, Through: 8, Summary: "They talked about mornings.", Messages: []synthesis.Message{
		{Seq: 5, Role: "user", Content: "I moved to Porto last month."},
		{Seq: 6, Role: "assistant", Content: "How do you like Porto?"},
		{Seq: 7, Role: "user", Content: "Love it. Still tea first thing."},
		{Seq: 8, Role: "assistant", Content: "Nice."},
	}}
}

func candidates() []memory.Insight {
	return []memory.Insight{
		{ID: idTea, UserID: "user-1", Layer: memory.IntegrationRhythms, Text: "Drinks tea every morning", Confidence: 0.7},
		{ID: idCity, UserID: "user-1", Layer: memory.NarrativeCore, Text: "Lives in Lisbon", Confidence: 0.9},
	}
}

const goodAnswer = `{"summary":"Moved to Porto; still drinks tea.","actions":[
	{"action":"update","insight":"i2","text":"Lives in Porto","confidence":0.9,"evidence":[5]},
	{"action":"reinforce","insight":"i1","evidence":[7]}]}`

var goodActions = []memory.Action{
	{Kind: memory.Update, InsightID: idCity, Text: "Lives in Porto", Confidence: 0.9, Evidence: []int64{5}},
	{Kind: memory.Reinforce, InsightID: idTea, Confidence: 0.6, Evidence: []int64{7}},
}

// badAnswer names a message outside the run (seq 3 is before it).
const badAnswer = `{"summary":"s","actions":[{"action":"reinforce","insight":"i1","evidence":[3]}]}`

type rig struct {
	p     *synthesis.Processor
	store *fakeStore
	exec  *fakeExec
	log   *bytes.Buffer
}

func newRig(t *testing.T, replies ...reply) *rig {
	t.Helper()
	var log bytes.Buffer
	store := &fakeStore{work: work(), candidates: candidates()}
	exec := &fakeExec{replies: replies}
	p := &synthesis.Processor{
		Store: store, Exec: exec, Toggles: fakeToggles{set: toggleSet(t, false)},
		Logger: slog.New(slog.NewJSONHandler(&log, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Policy: synthesis.DefaultPolicy(),
	}
	return &rig{p: p, store: store, exec: exec, log: &log}
}

func TestProcessLearnsAndCommits(t *testing.T) {
	r := newRig(t, reply{text: goodAnswer, cost: 1234})
	out, err := r.p.Process(context.Background(), job)
	if err != nil || out != synthesis.Done {
		t.Fatalf("Process = %q, %v; want done", out, err)
	}
	if len(r.store.commits) != 1 || len(r.store.skips) != 0 || len(r.store.releases) != 0 {
		t.Fatalf("commits %d, skips %d, releases %d; want 1, 0, 0", len(r.store.commits), len(r.store.skips), len(r.store.releases))
	}
	c := r.store.commits[0]
	if c.Job != job || !reflect.DeepEqual(c.Work, work()) {
		t.Errorf("committed job %+v work %+v", c.Job, c.Work)
	}
	if c.Result.Summary != "Moved to Porto; still drinks tea." || !reflect.DeepEqual(c.Result.Actions, goodActions) || c.Result.Cost != 1234 {
		t.Errorf("committed result %+v", c.Result)
	}
	if len(r.exec.calls) != 1 {
		t.Fatalf("%d calls, want 1", len(r.exec.calls))
	}
	call := r.exec.calls[0]
	if c.Result.RequestID != call.RequestID || !strings.HasPrefix(call.RequestID, "synthesis-") {
		t.Errorf("request id: result %q, call %q", c.Result.RequestID, call.RequestID)
	}
	if call.UserID != "user-1" || call.OperationID != "memory_synthesis" || !call.JSON || call.Continuation || !json.Valid(call.Schema) {
		t.Errorf("call = %+v", call)
	}
	if len(call.Messages) != 2 || call.Messages[0].Role != llm.RoleSystem || call.Messages[1].Role != llm.RoleUser ||
		!strings.Contains(call.Messages[0].Content, string(call.Schema)) {
		t.Errorf("call messages = %+v", call.Messages)
	}
	// Candidates are looked up by what the user said, not the assistant.
	if len(r.store.candTexts) != 1 || r.store.candTexts[0] != "I moved to Porto last month. Love it. Still tea first thing. " ||
		r.store.candLimits[0] != synthesis.DefaultPolicy().Candidates {
		t.Errorf("candidates asked with %q limit %v", r.store.candTexts, r.store.candLimits)
	}
	// The log has counts only, never memory or message content.
	for _, secret := range []string{"Porto", "tea", "Lisbon", "mornings"} {
		if strings.Contains(r.log.String(), secret) {
			t.Errorf("the log carries memory content %q:\n%s", secret, r.log)
		}
	}
	if !strings.Contains(r.log.String(), `"msg":"synthesis done"`) || !strings.Contains(r.log.String(), `"reinforced":1,"updated":1,"invalidated":0`) {
		t.Errorf("no done line with counts in the log:\n%s", r.log)
	}
}

func TestProcessOutcomes(t *testing.T) {
	exceeded := fmt.Errorf("execute: %w", &budget.ExceededError{Requested: 10, Day: budget.Day{UserID: "user-1"}})
	pending := &execute.PendingApprovalError{Approval: approval.Approval{ID: "a1", OperationID: "memory_synthesis"}}
	providers := errors.New("every provider failed")
	cases := []struct {
		name     string
		setup    func(r *rig)
		replies  []reply
		want     synthesis.Outcome
		err      error // errors.Is target, when the outcome is "" (an error: the job is delivered again)
		calls    int
		skip     string // the reason recorded, "" for no skip
		commits  int
		releases int
	}{
		{name: "already done", setup: func(r *rig) { r.store.claimErr = synthesis.ErrDone }, want: synthesis.Dup},
		{name: "conversation gone", setup: func(r *rig) { r.store.claimErr = synthesis.ErrGone }, want: synthesis.Dup},
		// Another run's lease: redeliver later, and leave that run's lease alone.
		{name: "claimed elsewhere", setup: func(r *rig) { r.store.claimErr = fmt.Errorf("claim: %w", synthesis.ErrBusy) }, err: synthesis.ErrBusy},
		{name: "disabled", setup: func(r *rig) { r.p.Toggles = fakeToggles{set: toggleSet(t, true)} }, want: synthesis.Skipped, skip: "disabled"},
		{name: "nothing new", setup: func(r *rig) { r.store.work = synthesis.Work{After: 8, Through: 8} }, want: synthesis.Skipped, skip: "nothing_new"},
		{name: "over budget", replies: []reply{{err: exceeded}}, want: synthesis.Skipped, calls: 1, skip: "over_budget"},
		{name: "over budget on the repair", replies: []reply{{text: badAnswer}, {err: exceeded}}, want: synthesis.Skipped, calls: 2, skip: "over_budget"},
		{name: "approval required", replies: []reply{{err: pending}}, want: synthesis.Skipped, calls: 1, skip: "approval_required"},
		{name: "providers fail", replies: []reply{{err: providers}}, err: providers, calls: 1, releases: 1},
		{name: "candidates fail", setup: func(r *rig) { r.store.candErr = providers }, err: providers, releases: 1},
		{name: "toggles unreadable", setup: func(r *rig) { r.p.Toggles = fakeToggles{err: providers} }, err: providers},
		{name: "commit fails", setup: func(r *rig) { r.store.commitErr = providers }, replies: []reply{{text: goodAnswer}}, err: providers, calls: 1},
		{name: "repaired", replies: []reply{{text: badAnswer}, {text: goodAnswer}}, want: synthesis.Done, calls: 2, commits: 1},
		{name: "malformed twice", replies: []reply{{text: "not json"}, {text: badAnswer}}, calls: 2, releases: 1},
		{name: "repair call fails", replies: []reply{{text: "not json"}, {err: providers}}, err: providers, calls: 2, releases: 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := newRig(t, c.replies...)
			if c.setup != nil {
				c.setup(r)
			}
			out, err := r.p.Process(context.Background(), job)
			if out != c.want {
				t.Errorf("outcome = %q, want %q", out, c.want)
			}
			wantErr := c.want == ""
			switch {
			case c.err != nil && !errors.Is(err, c.err):
				t.Errorf("err = %v, want %v", err, c.err)
			case wantErr && err == nil:
				t.Errorf("err = nil, want an error (the job is delivered again)")
			case !wantErr && err != nil:
				t.Errorf("err = %v, want nil", err)
			}
			if len(r.exec.calls) != c.calls {
				t.Errorf("%d model calls, want %d", len(r.exec.calls), c.calls)
			}
			if len(r.store.commits) != c.commits {
				t.Errorf("%d commits, want %d", len(r.store.commits), c.commits)
			}
			if len(r.store.releases) != c.releases {
				t.Errorf("%d releases, want %d", len(r.store.releases), c.releases)
			}
			switch {
			case c.skip == "" && len(r.store.skips) != 0:
				t.Errorf("skipped %+v, want no skip", r.store.skips)
			case c.skip != "" && (len(r.store.skips) != 1 || r.store.skips[0].Reason != c.skip || r.store.skips[0].Job != job):
				t.Errorf("skips = %+v, want one with reason %q", r.store.skips, c.skip)
			}
		})
	}
}

func TestProcessRepairsOnce(t *testing.T) {
	r := newRig(t, reply{text: badAnswer, cost: 100}, reply{text: goodAnswer, cost: 50})
	out, err := r.p.Process(context.Background(), job)
	if err != nil || out != synthesis.Done {
		t.Fatalf("Process = %q, %v", out, err)
	}
	if len(r.exec.calls) != 2 {
		t.Fatalf("%d calls, want 2", len(r.exec.calls))
	}
	first, repair := r.exec.calls[0], r.exec.calls[1]
	if repair.RequestID != first.RequestID+"-repair" || !repair.Continuation || first.Continuation {
		t.Errorf("repair request %q (continuation %v) after %q", repair.RequestID, repair.Continuation, first.RequestID)
	}
	if len(repair.Messages) != 4 || !reflect.DeepEqual(repair.Messages[:2], first.Messages) {
		t.Fatalf("repair messages = %+v", repair.Messages)
	}
	if m := repair.Messages[2]; m.Role != llm.RoleAssistant || m.Content != badAnswer {
		t.Errorf("repair shows the model %+v, want its own answer", m)
	}
	if m := repair.Messages[3]; m.Role != llm.RoleUser || !strings.HasPrefix(m.Content, "That answer is not valid: ") ||
		!strings.Contains(m.Content, "/actions/0/evidence/0") {
		t.Errorf("repair request says %q", m.Content)
	}
	res := r.store.commits[0].Result
	if res.Cost != 150 || res.RequestID != first.RequestID || !reflect.DeepEqual(res.Actions, goodActions) {
		t.Errorf("committed %+v; want both calls' cost, the first request id, the repaired actions", res)
	}
}

func TestProcessGivesUpAfterOneRepair(t *testing.T) {
	r := newRig(t, reply{text: badAnswer}, reply{text: "```json\n{\"summary\": 3}\n```"})
	out, err := r.p.Process(context.Background(), job)
	if err == nil || out != "" || !strings.Contains(err.Error(), "even after a repair attempt") {
		t.Fatalf("Process = %q, %v", out, err)
	}
	if len(r.exec.calls) != 2 || len(r.store.commits) != 0 || len(r.store.releases) != 1 {
		t.Errorf("calls %d, commits %d, releases %d; want 2, 0, 1", len(r.exec.calls), len(r.store.commits), len(r.store.releases))
	}
}

// The model is shown handles and message numbers; what it is allowed to name is exactly that.
func TestProcessShowsHandlesNotIDs(t *testing.T) {
	r := newRig(t, reply{text: goodAnswer})
	if _, err := r.p.Process(context.Background(), job); err != nil {
		t.Fatal(err)
	}
	call := r.exec.calls[0]
	for _, m := range call.Messages {
		if strings.Contains(m.Content, idTea) || strings.Contains(m.Content, idCity) {
			t.Errorf("a %s message reveals an insight id", m.Role)
		}
	}
	user := call.Messages[1].Content
	for _, want := range []string{"i1 [layer 5 Integration Rhythms, confidence 0.70] Drinks tea every morning", "i2 [layer 1 Narrative Core, confidence 0.90] Lives in Lisbon", "5 user: I moved to Porto last month."} {
		if !strings.Contains(user, want) {
			t.Errorf("prompt lacks %q", want)
		}
	}
	if !strings.Contains(string(call.Schema), `"enum":["i1","i2"]`) {
		t.Errorf("schema does not enumerate the handles: %s", call.Schema)
	}
}

type fakeQueue struct {
	mu   sync.Mutex
	fail map[string]bool // conversation ids whose enqueue fails
	got  []synthesis.Job
}

func (q *fakeQueue) Enqueue(_ context.Context, j synthesis.Job) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.got = append(q.got, j)
	if q.fail[j.ConversationID] {
		return errors.New("queue unavailable")
	}
	return nil
}

func TestSweep(t *testing.T) {
	due := []synthesis.Job{
		{ConversationID: "00000000-0000-4000-8000-000000000001", UserID: "a", ThroughSeq: 2},
		{ConversationID: "00000000-0000-4000-8000-000000000002", UserID: "b", ThroughSeq: 4},
		{ConversationID: "00000000-0000-4000-8000-000000000003", UserID: "c", ThroughSeq: 6},
	}
	t.Run("enqueues what is due", func(t *testing.T) {
		r := newRig(t)
		r.store.due = due
		r.p.Policy.Idle, r.p.Policy.Stale = 7*time.Minute, 11*time.Minute
		q := &fakeQueue{}
		n, err := r.p.Sweep(context.Background(), q, 25)
		if err != nil || n != 3 || !reflect.DeepEqual(q.got, due) {
			t.Fatalf("Sweep = %d, %v; enqueued %+v", n, err, q.got)
		}
		if !reflect.DeepEqual(r.store.dueArgs, []time.Duration{7 * time.Minute, 11 * time.Minute}) || r.store.dueLimit != 25 {
			t.Errorf("Due asked with %v limit %d", r.store.dueArgs, r.store.dueLimit)
		}
	})
	t.Run("an enqueue failure does not stop the rest", func(t *testing.T) {
		r := newRig(t)
		r.store.due = due
		q := &fakeQueue{fail: map[string]bool{due[1].ConversationID: true}}
		n, err := r.p.Sweep(context.Background(), q, 10)
		if err != nil || n != 2 || len(q.got) != 3 {
			t.Fatalf("Sweep = %d, %v after %d enqueues; want 2 sent of 3 tried, no error", n, err, len(q.got))
		}
		if !strings.Contains(r.log.String(), `"level":"WARN"`) || !strings.Contains(r.log.String(), due[1].ConversationID) {
			t.Errorf("the failure is not logged:\n%s", r.log)
		}
	})
	t.Run("nothing due", func(t *testing.T) {
		r := newRig(t)
		q := &fakeQueue{}
		if n, err := r.p.Sweep(context.Background(), q, 10); n != 0 || err != nil || len(q.got) != 0 {
			t.Fatalf("Sweep = %d, %v", n, err)
		}
	})
	t.Run("the store fails", func(t *testing.T) {
		r := newRig(t)
		r.store.due, r.store.dueErr = due, errors.New("db down")
		q := &fakeQueue{}
		if n, err := r.p.Sweep(context.Background(), q, 10); n != 0 || err == nil || len(q.got) != 0 {
			t.Fatalf("Sweep = %d, %v with %d enqueued", n, err, len(q.got))
		}
	})
}
