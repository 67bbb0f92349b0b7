package memorystore_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/helixhq/helix/shared/auditlog"
	"github.com/helixhq/helix/shared/execute"
	"github.com/helixhq/helix/shared/memory"
	"github.com/helixhq/helix/shared/money"
	"github.com/helixhq/helix/shared/stepup"
	"github.com/helixhq/helix/shared/synthesis"
	"github.com/helixhq/helix/shared/toggles"
)

const lease = 3 * time.Minute

func TestClaim(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	conv := e.conversation(t, "alice", 6, t0)
	e.exec(t, `UPDATE conversations SET summary = 'so far' WHERE conversation_id = $1`, conv)
	j := synthesis.Job{ConversationID: conv, UserID: "alice", ThroughSeq: 6}

	w, err := e.mem.Claim(ctx, j, lease, 100)
	if err != nil {
		t.Fatal(err)
	}
	var want []synthesis.Message
	for s := int64(1); s <= 6; s++ {
		want = append(want, synthesis.Message{Seq: s, Role: role(s), Content: message(s)})
	}
	if w.After != 0 || w.Through != 6 || w.Summary != "so far" || !reflect.DeepEqual(w.Messages, want) {
		t.Fatalf("Claim = %+v", w)
	}
	if until := scalar[time.Time](t, e, `SELECT synthesis_until FROM conversations WHERE conversation_id = $1`, conv); !until.Equal(t0.Add(lease)) {
		t.Errorf("lease until %v, want %v", until, t0.Add(lease))
	}

	// Held: a second claim of the same conversation, by any job, is busy.
	if _, err := e.mem.Claim(ctx, j, lease, 100); !errors.Is(err, synthesis.ErrBusy) {
		t.Errorf("second claim = %v, want ErrBusy", err)
	}
	if _, err := e.mem.Claim(ctx, synthesis.Job{ConversationID: conv, UserID: "alice", ThroughSeq: 2}, lease, 100); !errors.Is(err, synthesis.ErrBusy) {
		t.Errorf("claim by another job = %v, want ErrBusy", err)
	}
	// The lease's last instant still holds; after it, the conversation can be claimed again.
	e.clock.advance(lease)
	if _, err := e.mem.Claim(ctx, j, lease, 100); !errors.Is(err, synthesis.ErrBusy) {
		t.Errorf("claim at the lease's end = %v, want ErrBusy", err)
	}
	e.clock.advance(time.Second)
	if w2, err := e.mem.Claim(ctx, j, lease, 100); err != nil || w2.Through != 6 {
		t.Errorf("claim after the lease expired = %+v, %v", w2, err)
	}
	// Released: at once.
	if err := e.mem.Release(ctx, j); err != nil {
		t.Fatal(err)
	}
	if n := e.count(t, `SELECT count(*) FROM conversations WHERE conversation_id = $1 AND synthesis_until IS NULL`, conv); n != 1 {
		t.Error("Release left the lease")
	}
	if n := e.count(t, `SELECT count(*) FROM synthesis_jobs`); n != 0 {
		t.Errorf("Release recorded %d jobs", n)
	}
	if _, err := e.mem.Claim(ctx, j, lease, 100); err != nil {
		t.Errorf("claim after Release = %v", err)
	}
}

func TestClaimBounds(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	conv := e.conversation(t, "alice", 6, t0)
	seqs := func(w synthesis.Work) []int64 {
		var s []int64
		for _, m := range w.Messages {
			s = append(s, m.Seq)
		}
		return s
	}
	cases := []struct {
		name        string
		synthesized int64
		through     int64
		max         int
		after, thru int64
		wantSeqs    []int64
	}{
		{"everything", 0, 6, 100, 0, 6, []int64{1, 2, 3, 4, 5, 6}},
		{"up to the job's seq", 0, 4, 100, 0, 4, []int64{1, 2, 3, 4}},
		{"a job past the last message", 0, 9, 100, 0, 6, []int64{1, 2, 3, 4, 5, 6}},
		{"after what is learned", 2, 6, 100, 2, 6, []int64{3, 4, 5, 6}},
		{"at most max messages", 2, 6, 3, 2, 5, []int64{3, 4, 5}},
		{"nothing new", 6, 6, 100, 6, 6, nil},
		{"a job behind what is learned", 5, 3, 100, 5, 3, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e.exec(t, `UPDATE conversations SET synthesized_seq = $2, synthesis_until = NULL WHERE conversation_id = $1`, conv, c.synthesized)
			w, err := e.mem.Claim(ctx, synthesis.Job{ConversationID: conv, UserID: "alice", ThroughSeq: c.through}, lease, c.max)
			if err != nil {
				t.Fatal(err)
			}
			if w.After != c.after || w.Through != c.thru || !slices.Equal(seqs(w), c.wantSeqs) {
				t.Errorf("Claim = after %d through %d seqs %v; want %d %d %v", w.After, w.Through, seqs(w), c.after, c.thru, c.wantSeqs)
			}
		})
	}
}

func TestClaimOfWhatIsNotThere(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	conv := e.conversation(t, "alice", 2, t0)
	for name, j := range map[string]synthesis.Job{
		"a missing conversation":      {ConversationID: uuid.NewString(), UserID: "alice", ThroughSeq: 2},
		"another user's conversation": {ConversationID: conv, UserID: "bob", ThroughSeq: 2},
	} {
		if _, err := e.mem.Claim(ctx, j, lease, 100); !errors.Is(err, synthesis.ErrGone) {
			t.Errorf("claim of %s = %v, want ErrGone", name, err)
		}
	}
	if n := e.count(t, `SELECT count(*) FROM conversations WHERE synthesis_until IS NOT NULL`); n != 0 {
		t.Error("a failed claim took a lease")
	}
}

func TestConcurrentClaimsOneWins(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	conv := e.conversation(t, "alice", 4, t0)
	j := synthesis.Job{ConversationID: conv, UserID: "alice", ThroughSeq: 4}
	errs := make(chan error, 10)
	var start sync.WaitGroup
	start.Add(1)
	for range 10 {
		go func() {
			start.Wait()
			_, err := e.mem.Claim(ctx, j, lease, 100)
			errs <- err
		}()
	}
	start.Done()
	won, busy := 0, 0
	for range 10 {
		switch err := <-errs; {
		case err == nil:
			won++
		case errors.Is(err, synthesis.ErrBusy):
			busy++
		default:
			t.Errorf("claim: %v", err)
		}
	}
	if won != 1 || busy != 9 {
		t.Errorf("%d claims won and %d were busy, want 1 and 9", won, busy)
	}
}

func TestCandidates(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	chess := e.insight(t, insightRow{user: "alice", layer: memory.PurposeEngine, text: "Plays chess with her father", confidence: 0.5, at: t0})
	dog := e.insight(t, insightRow{user: "alice", layer: memory.RelationalMemory, text: "Has a dog named Rex", confidence: 0.6, at: t0})
	nurse := e.insight(t, insightRow{user: "alice", layer: memory.NarrativeCore, text: "Works as a nurse", confidence: 0.7, at: t0})
	// A routine last reinforced 100 days ago has faded below the prompt floor; synthesis still sees it.
	faded := e.insight(t, insightRow{user: "alice", layer: memory.IntegrationRhythms, text: "Runs every morning", confidence: 0.9, at: t0.Add(-100 * 24 * time.Hour)})
	e.insight(t, insightRow{user: "alice", layer: memory.PurposeEngine, text: "Plays chess online", confidence: 1, at: t0, invalidated: true})
	e.insight(t, insightRow{user: "bob", layer: memory.PurposeEngine, text: "Plays chess at the club", confidence: 1, at: t0})

	list, err := e.mem.Candidates(ctx, "alice", "We played chess all evening", 10)
	if err != nil {
		t.Fatal(err)
	}
	got := ids(list)
	if !slices.Equal(got, []string{chess, nurse, dog, faded}) {
		t.Errorf("Candidates = %v, want the matching one first, then by salience: %v", got, []string{chess, nurse, dog, faded})
	}
	for _, i := range list {
		if i.Text == "" || !i.Layer.Valid() || i.LastReinforcedAt.IsZero() {
			t.Errorf("candidate scanned badly: %+v", i)
		}
	}

	// At most limit: the most relevant.
	list, err = e.mem.Candidates(ctx, "alice", "Rex the dog", 2)
	if err != nil || !slices.Equal(ids(list), []string{dog, nurse}) {
		t.Errorf("Candidates limit 2 = %v, %v; want [dog nurse]", ids(list), err)
	}
	if list, err := e.mem.Candidates(ctx, "carol", "chess", 10); err != nil || len(list) != 0 {
		t.Errorf("carol's candidates = %v, %v", ids(list), err)
	}

	// Whatever the user typed, the query runs.
	for _, text := range []string{"", "   ", "!!!", "the a of", "a & b | c ! d", "don't (stop) <-> me:*", `back\slash 'quote' "double"`,
		"http://example.com/p?a=1&b=2", "日本語 ünïcödé", "well-known e-mail"} {
		if list, err := e.mem.Candidates(ctx, "alice", text, 10); err != nil || len(list) != 4 {
			t.Errorf("Candidates(%q) = %d, %v; want all 4", text, len(list), err)
		}
	}
}

// commitFixture is a conversation of six messages and three of the user's insights a run may name.
func commitFixture(t *testing.T, e *env) (conv, tea, city, goal string) {
	conv = e.conversation(t, "alice", 6, t0.Add(-time.Hour))
	tea = e.insight(t, insightRow{user: "alice", layer: memory.IntegrationRhythms, text: "Drinks tea every morning", confidence: 0.5, at: t0.Add(-48 * time.Hour)})
	city = e.insight(t, insightRow{user: "alice", layer: memory.NarrativeCore, text: "Lives in Lisbon", confidence: 0.9, at: t0.Add(-48 * time.Hour)})
	goal = e.insight(t, insightRow{user: "alice", layer: memory.ProspectiveSelf, text: "Wants to learn Go", confidence: 0.7, at: t0.Add(-48 * time.Hour)})
	return conv, tea, city, goal
}

type insightState struct {
	Layer         int16
	LayerName     string
	Text          string
	Confidence    float64
	Reinforcement int
	ValidFrom     time.Time
	Reinforced    time.Time
	Invalidated   *time.Time
	SupersededBy  *string
}

func (e *env) state(t *testing.T, id string) insightState {
	t.Helper()
	var s insightState
	if err := e.pool.QueryRow(context.Background(), `
		SELECT layer, layer_name, text, confidence::float8, reinforcement_count, valid_from, last_reinforced_at, invalidated_at, superseded_by::text
		  FROM conversation_insights WHERE insight_id = $1`, id).
		Scan(&s.Layer, &s.LayerName, &s.Text, &s.Confidence, &s.Reinforcement, &s.ValidFrom, &s.Reinforced, &s.Invalidated, &s.SupersededBy); err != nil {
		t.Fatalf("insight %s: %v", id, err)
	}
	return s
}

type jobRow struct {
	Status, Reason                                    string
	Messages, Added, Reinforced, Updated, Invalidated int
	RequestID                                         *string
	Cost                                              int64
}

func (e *env) jobs(t *testing.T, conv string) map[int64]jobRow {
	t.Helper()
	rows, err := e.pool.Query(context.Background(), `
		SELECT through_seq, status, reason, messages, added, reinforced, updated, invalidated, request_id, cost_nano
		  FROM synthesis_jobs WHERE conversation_id = $1`, conv)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[int64]jobRow{}
	for rows.Next() {
		var seq int64
		var r jobRow
		if err := rows.Scan(&seq, &r.Status, &r.Reason, &r.Messages, &r.Added, &r.Reinforced, &r.Updated, &r.Invalidated, &r.RequestID, &r.Cost); err != nil {
			t.Fatal(err)
		}
		out[seq] = r
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func near(a, b float64) bool { return a > b-1e-6 && a < b+1e-6 }

func TestCommit(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	conv, tea, city, goal := commitFixture(t, e)
	j := synthesis.Job{ConversationID: conv, UserID: "alice", ThroughSeq: 6}
	w, err := e.mem.Claim(ctx, j, lease, 100)
	if err != nil {
		t.Fatal(err)
	}
	e.clock.advance(time.Minute) // the commit's time
	now := e.clock.now()
	r := synthesis.Result{Summary: "Moved to Porto; tea as ever.", RequestID: "synthesis-req-1", Cost: money.Nano(777), Actions: []memory.Action{
		{Kind: memory.Add, Layer: memory.Transformation, Text: "Moved to Porto recently", Confidence: 0.8, Evidence: []int64{1, 3}},
		{Kind: memory.Reinforce, InsightID: tea, Evidence: []int64{3}},
		{Kind: memory.Update, InsightID: city, Text: "Lives in Porto", Confidence: 0.95, Evidence: []int64{1}},
		{Kind: memory.Invalidate, InsightID: goal, Evidence: []int64{5}},
	}}
	counts, err := e.mem.Commit(ctx, j, w, r)
	if err != nil {
		t.Fatal(err)
	}
	if counts != (synthesis.Counts{Added: 1, Reinforced: 1, Updated: 1, Invalidated: 1}) {
		t.Errorf("counts = %+v", counts)
	}

	// The conversation moved on, with the new summary, and the lease is over.
	var synth, sumThrough, enq int64
	var summary string
	var until *time.Time
	if err := e.pool.QueryRow(ctx, `SELECT synthesized_seq, summary, summary_through_seq, enqueued_seq, synthesis_until FROM conversations WHERE conversation_id = $1`, conv).
		Scan(&synth, &summary, &sumThrough, &enq, &until); err != nil {
		t.Fatal(err)
	}
	if synth != 6 || summary != r.Summary || sumThrough != 6 || enq != 6 || until != nil {
		t.Errorf("conversation: synthesized %d summary %q through %d enqueued %d lease %v", synth, summary, sumThrough, enq, until)
	}

	// add: a new insight with its evidence.
	added := scalar[string](t, e, `SELECT insight_id::text FROM conversation_insights WHERE text = 'Moved to Porto recently'`)
	if s := e.state(t, added); s.Layer != 6 || s.LayerName != "Transformation" || !near(s.Confidence, 0.8) || s.Reinforcement != 0 ||
		!s.ValidFrom.Equal(now) || !s.Reinforced.Equal(now) || s.Invalidated != nil {
		t.Errorf("added insight = %+v", s)
	}
	if ev := e.evidenceOf(t, added); !slices.Equal(ev, []string{"add:1", "add:3"}) {
		t.Errorf("added insight's evidence = %v", ev)
	}
	if u := scalar[string](t, e, `SELECT user_id FROM conversation_insights WHERE insight_id = $1`, added); u != "alice" {
		t.Errorf("added for %q", u)
	}
	// reinforce: stronger, reinforced now, its evidence recorded.
	if s := e.state(t, tea); s.Reinforcement != 1 || !near(s.Confidence, 0.6) || !s.Reinforced.Equal(now) || s.Invalidated != nil ||
		!s.ValidFrom.Equal(t0.Add(-48*time.Hour)) {
		t.Errorf("reinforced insight = %+v", s)
	}
	if ev := e.evidenceOf(t, tea); !slices.Equal(ev, []string{"reinforce:3"}) {
		t.Errorf("reinforced insight's evidence = %v", ev)
	}
	// update: the old version kept, invalidated and linked to the new one in the same layer.
	old := e.state(t, city)
	if old.Invalidated == nil || !old.Invalidated.Equal(now) || old.SupersededBy == nil || old.Text != "Lives in Lisbon" {
		t.Fatalf("updated insight's old version = %+v", old)
	}
	if s := e.state(t, *old.SupersededBy); s.Text != "Lives in Porto" || s.Layer != 1 || s.LayerName != "Narrative Core" || !near(s.Confidence, 0.95) ||
		!s.ValidFrom.Equal(now) || s.Invalidated != nil {
		t.Errorf("updated insight's new version = %+v", s)
	}
	if ev := e.evidenceOf(t, *old.SupersededBy); !slices.Equal(ev, []string{"update:1"}) {
		t.Errorf("new version's evidence = %v", ev)
	}
	// invalidate: kept, marked, nothing replaces it.
	if s := e.state(t, goal); s.Invalidated == nil || !s.Invalidated.Equal(now) || s.SupersededBy != nil {
		t.Errorf("invalidated insight = %+v", s)
	}
	if ev := e.evidenceOf(t, goal); !slices.Equal(ev, []string{"invalidate:5"}) {
		t.Errorf("invalidated insight's evidence = %v", ev)
	}
	// The job's record: counts, never content.
	rid := "synthesis-req-1"
	wantJob := jobRow{Status: "done", Messages: 6, Added: 1, Reinforced: 1, Updated: 1, Invalidated: 1, RequestID: &rid, Cost: 777}
	if got := e.jobs(t, conv); !reflect.DeepEqual(got, map[int64]jobRow{6: wantJob}) {
		t.Errorf("jobs = %+v", got)
	}
	// Active memory is what the listing says.
	list, err := e.mem.Insights(ctx, "alice", memory.Listing{})
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 3 {
		t.Errorf("%d active insights after the commit, want 3 (tea, Porto, moved)", len(list))
	}

	// The same job again: claimed as done; committed again (a redelivery racing past the claim),
	// nothing is written twice and the record stays.
	if _, err := e.mem.Claim(ctx, j, lease, 100); !errors.Is(err, synthesis.ErrDone) {
		t.Errorf("claim of a done job = %v, want ErrDone", err)
	}
	before := e.count(t, `SELECT count(*) FROM conversation_insights`)
	beforeEv := e.count(t, `SELECT count(*) FROM insight_evidence`)
	counts, err = e.mem.Commit(ctx, j, w, r)
	if err != nil || counts != (synthesis.Counts{}) {
		t.Errorf("second commit = %+v, %v; want nothing", counts, err)
	}
	if n := e.count(t, `SELECT count(*) FROM conversation_insights`); n != before {
		t.Errorf("second commit: %d insights, was %d", n, before)
	}
	if n := e.count(t, `SELECT count(*) FROM insight_evidence`); n != beforeEv {
		t.Errorf("second commit: %d evidence rows, was %d", n, beforeEv)
	}
	if s := e.state(t, tea); s.Reinforcement != 1 {
		t.Errorf("second commit reinforced again: %+v", s)
	}
	if got := e.jobs(t, conv); !reflect.DeepEqual(got, map[int64]jobRow{6: wantJob}) {
		t.Errorf("jobs after the second commit = %+v", got)
	}
}

// A run whose claim expired and was taken over: whichever commits second writes nothing.
func TestCommitAfterTheLeaseWasTakenOver(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	conv := e.conversation(t, "alice", 2, t0)
	j := synthesis.Job{ConversationID: conv, UserID: "alice", ThroughSeq: 2}
	slow, err := e.mem.Claim(ctx, j, lease, 100)
	if err != nil {
		t.Fatal(err)
	}
	e.clock.advance(lease + time.Second)
	fast, err := e.mem.Claim(ctx, j, lease, 100)
	if err != nil {
		t.Fatal(err)
	}
	add := func(text string) synthesis.Result {
		return synthesis.Result{Summary: text, Actions: []memory.Action{{Kind: memory.Add, Layer: 1, Text: text, Confidence: 0.5, Evidence: []int64{1}}}}
	}
	if c, err := e.mem.Commit(ctx, j, fast, add("fast")); err != nil || c.Added != 1 {
		t.Fatalf("first commit = %+v, %v", c, err)
	}
	if c, err := e.mem.Commit(ctx, j, slow, add("slow")); err != nil || c != (synthesis.Counts{}) {
		t.Fatalf("the superseded commit = %+v, %v; want nothing", c, err)
	}
	if texts := scalar[[]string](t, e, `SELECT array_agg(text) FROM conversation_insights`); !slices.Equal(texts, []string{"fast"}) {
		t.Errorf("insights = %v, want only the first commit's", texts)
	}
	if s := scalar[string](t, e, `SELECT summary FROM conversations WHERE conversation_id = $1`, conv); s != "fast" {
		t.Errorf("summary = %q", s)
	}
	if got := e.jobs(t, conv); len(got) != 1 || got[2].Status != "done" || got[2].Added != 1 {
		t.Errorf("jobs = %+v", got)
	}
}

// Ten consumers get the same job at once (SQS delivers at least once): one set of rows.
func TestConcurrentClaimAndCommitWriteOnce(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	for round := range 3 {
		conv := e.conversation(t, "alice", 4, t0)
		j := synthesis.Job{ConversationID: conv, UserID: "alice", ThroughSeq: 4}
		text := fmt.Sprintf("Lives in Porto (round %d)", round)
		r := synthesis.Result{Summary: "s", Actions: []memory.Action{{Kind: memory.Add, Layer: 1, Text: text, Confidence: 0.8, Evidence: []int64{1, 3}}}}
		var wg sync.WaitGroup
		var mu sync.Mutex
		outcomes := map[string]int{}
		for range 10 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				var outcome string
				w, err := e.mem.Claim(ctx, j, lease, 100)
				switch {
				case errors.Is(err, synthesis.ErrBusy), errors.Is(err, synthesis.ErrDone):
					outcome = err.Error()
				case err != nil:
					t.Errorf("claim: %v", err)
					return
				case len(w.Messages) == 0: // claimed after the winner committed: as Process does
					outcome = "nothing new"
					if err := e.mem.Skip(ctx, j, w, "nothing_new"); err != nil {
						t.Errorf("skip: %v", err)
					}
				default:
					outcome = "committed"
					if _, err := e.mem.Commit(ctx, j, w, r); err != nil {
						t.Errorf("commit: %v", err)
					}
				}
				mu.Lock()
				outcomes[outcome]++
				mu.Unlock()
			}()
		}
		wg.Wait()
		if outcomes["committed"] != 1 {
			t.Errorf("round %d: outcomes %v, want exactly one commit", round, outcomes)
		}
		if n := e.count(t, `SELECT count(*) FROM conversation_insights WHERE text = $1`, text); n != 1 {
			t.Errorf("round %d: %d insights written, want 1", round, n)
		}
		if n := e.count(t, `SELECT count(*) FROM insight_evidence WHERE conversation_id = $1`, conv); n != 2 {
			t.Errorf("round %d: %d evidence rows, want 2", round, n)
		}
		if got := e.jobs(t, conv); len(got) != 1 || got[4].Status != "done" || got[4].Added != 1 {
			t.Errorf("round %d: jobs = %+v", round, got)
		}
		if n := e.count(t, `SELECT count(*) FROM conversations WHERE conversation_id = $1 AND synthesized_seq = 4 AND synthesis_until IS NULL`, conv); n != 1 {
			t.Errorf("round %d: conversation not synthesized to 4 with its lease ended", round)
		}
	}
}

// The same through the processor, as the synthesis function runs it: ten deliveries of one job.
func TestConcurrentDeliveriesThroughTheProcessor(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	conv := e.conversation(t, "alice", 4, t0)
	j := synthesis.Job{ConversationID: conv, UserID: "alice", ThroughSeq: 4}
	exec := &scriptedExec{answer: `{"summary":"s","actions":[{"action":"add","layer":1,"text":"Lives in Porto","confidence":0.8,"evidence":[1,3]}]}`}
	p := newProcessor(t, e, exec)
	var wg sync.WaitGroup
	results := make(chan string, 10)
	for range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out, err := p.Process(ctx, j)
			switch {
			case errors.Is(err, synthesis.ErrBusy):
				results <- "busy"
			case err != nil:
				t.Errorf("Process: %v", err)
			default:
				results <- string(out)
			}
		}()
	}
	wg.Wait()
	close(results)
	outcomes := map[string]int{}
	for o := range results {
		outcomes[o]++
	}
	if outcomes[string(synthesis.Done)] != 1 {
		t.Errorf("outcomes %v, want exactly one done", outcomes)
	}
	if n := e.count(t, `SELECT count(*) FROM conversation_insights WHERE user_id = 'alice'`); n != 1 {
		t.Errorf("%d insights, want 1", n)
	}
	if n := e.count(t, `SELECT count(*) FROM insight_evidence`); n != 2 {
		t.Errorf("%d evidence rows, want 2", n)
	}
	if got := e.jobs(t, conv); len(got) != 1 || got[4].Status != "done" {
		t.Errorf("jobs = %+v", got)
	}
	// A redelivery afterwards is a duplicate and asks no model.
	calls := exec.count()
	if out, err := p.Process(ctx, j); err != nil || out != synthesis.Dup || exec.count() != calls {
		t.Errorf("redelivery = %q, %v (%d more calls)", out, err, exec.count()-calls)
	}
}

func TestForgetCancelsQueuedAndRunningSynthesis(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	queued := e.conversation(t, "alice", 4, t0)
	running := e.conversation(t, "alice", 4, t0)
	qj := synthesis.Job{ConversationID: queued, UserID: "alice", ThroughSeq: 4}
	rj := synthesis.Job{ConversationID: running, UserID: "alice", ThroughSeq: 4}
	w, err := e.mem.Claim(ctx, rj, lease, 100) // a run is learning when the user forgets
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.mem.Forget(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	// The running one commits after the Forget: it writes nothing, and is recorded superseded.
	r := synthesis.Result{Summary: "they talked", Actions: []memory.Action{{Kind: memory.Add, Layer: 1, Text: "Lives in Porto", Confidence: 0.8, Evidence: []int64{1}}}}
	if c, err := e.mem.Commit(ctx, rj, w, r); err != nil || c != (synthesis.Counts{}) {
		t.Errorf("commit after Forget = %+v, %v; want nothing written", c, err)
	}
	if got := e.jobs(t, running); got[4].Status != "skipped" || got[4].Reason != "superseded" {
		t.Errorf("running job's record = %+v", got)
	}
	if s := scalar[string](t, e, `SELECT summary FROM conversations WHERE conversation_id = $1`, running); s != "" {
		t.Errorf("the run wrote its summary back: %q", s)
	}
	// The queued one, delivered after the Forget, learns nothing and asks no model.
	exec := &scriptedExec{answer: `{"summary":"s","actions":[{"action":"add","layer":1,"text":"Lives in Porto","confidence":0.8,"evidence":[1]}]}`}
	out, err := newProcessor(t, e, exec).Process(ctx, qj)
	if err != nil || out != synthesis.Skipped || exec.count() != 0 {
		t.Errorf("queued job after Forget = %q, %v with %d model calls; want skipped, none", out, err, exec.count())
	}
	if got := e.jobs(t, queued); got[4].Status != "skipped" || got[4].Reason != "nothing_new" {
		t.Errorf("queued job's record = %+v", got)
	}
	if n := e.count(t, `SELECT count(*) FROM conversation_insights`); n != 0 {
		t.Errorf("%d insights written after Forget", n)
	}
}

func TestSkip(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	conv := e.conversation(t, "alice", 4, t0)
	j := synthesis.Job{ConversationID: conv, UserID: "alice", ThroughSeq: 4}
	w, err := e.mem.Claim(ctx, j, lease, 100)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.mem.Skip(ctx, j, w, "over_budget"); err != nil {
		t.Fatal(err)
	}
	if n := e.count(t, `SELECT count(*) FROM conversations WHERE conversation_id = $1 AND synthesis_until IS NULL AND synthesized_seq = 0`, conv); n != 1 {
		t.Error("Skip left the lease or moved the conversation")
	}
	if got := e.jobs(t, conv); !reflect.DeepEqual(got, map[int64]jobRow{4: {Status: "skipped", Reason: "over_budget", Messages: 4}}) {
		t.Errorf("jobs = %+v", got)
	}
	// Skipped is not done: a later delivery claims and learns, and the record becomes done.
	w, err = e.mem.Claim(ctx, j, lease, 100)
	if err != nil {
		t.Fatalf("claim of a skipped job = %v", err)
	}
	if err := e.mem.Skip(ctx, j, w, "disabled"); err != nil {
		t.Fatal(err)
	}
	if got := e.jobs(t, conv); got[4].Reason != "disabled" {
		t.Errorf("a second skip's record = %+v", got)
	}
	if w, err = e.mem.Claim(ctx, j, lease, 100); err != nil {
		t.Fatal(err)
	}
	r := synthesis.Result{Summary: "s", RequestID: "rq", Actions: []memory.Action{{Kind: memory.Add, Layer: 2, Text: "Felt proud", Confidence: 0.5, Evidence: []int64{3}}}}
	if _, err := e.mem.Commit(ctx, j, w, r); err != nil {
		t.Fatal(err)
	}
	rq := "rq"
	if got := e.jobs(t, conv); !reflect.DeepEqual(got[4], jobRow{Status: "done", Messages: 4, Added: 1, RequestID: &rq}) {
		t.Errorf("record after learning = %+v", got[4])
	}
	// A done record is never turned back into skipped.
	if err := e.mem.Skip(ctx, j, w, "disabled"); err != nil {
		t.Fatal(err)
	}
	if got := e.jobs(t, conv); got[4].Status != "done" || got[4].Added != 1 {
		t.Errorf("a skip overwrote the done record: %+v", got[4])
	}

	// A conversation deleted meanwhile: nothing to record, no error.
	gone := e.conversation(t, "alice", 2, t0)
	gj := synthesis.Job{ConversationID: gone, UserID: "alice", ThroughSeq: 2}
	gw, err := e.mem.Claim(ctx, gj, lease, 100)
	if err != nil {
		t.Fatal(err)
	}
	e.exec(t, `DELETE FROM conversations WHERE conversation_id = $1`, gone)
	if err := e.mem.Skip(ctx, gj, gw, "nothing_new"); err != nil {
		t.Errorf("skip of a deleted conversation = %v", err)
	}
	if err := e.mem.Release(ctx, gj); err != nil {
		t.Errorf("release of a deleted conversation = %v", err)
	}
}

func TestDue(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	const idle, stale = 10 * time.Minute, 15 * time.Minute
	idleConv := e.conversation(t, "alice", 4, t0.Add(-20*time.Minute))
	active := e.conversation(t, "alice", 4, t0.Add(-time.Minute))
	done := e.conversation(t, "alice", 4, t0.Add(-time.Hour))
	e.exec(t, `UPDATE conversations SET synthesized_seq = 4, enqueued_seq = 4, enqueued_at = $2 WHERE conversation_id = $1`, done, t0.Add(-time.Hour))
	sent := e.conversation(t, "bob", 6, t0.Add(-time.Hour)) // a job sent 5 minutes ago, not done yet
	e.exec(t, `UPDATE conversations SET enqueued_seq = 6, enqueued_at = $2 WHERE conversation_id = $1`, sent, t0.Add(-5*time.Minute))
	lost := e.conversation(t, "bob", 2, t0.Add(-30*time.Minute)) // a job sent 20 minutes ago, never done
	e.exec(t, `UPDATE conversations SET enqueued_seq = 2, enqueued_at = $2 WHERE conversation_id = $1`, lost, t0.Add(-20*time.Minute))
	part := e.conversation(t, "carol", 8, t0.Add(-40*time.Minute)) // learned to 3, more said since
	e.exec(t, `UPDATE conversations SET synthesized_seq = 3, enqueued_seq = 3, enqueued_at = $2 WHERE conversation_id = $1`, part, t0.Add(-time.Hour))
	e.conversation(t, "carol", 0, t0.Add(-time.Hour)) // empty

	jobs, err := e.mem.Due(ctx, idle, stale, 10)
	if err != nil {
		t.Fatal(err)
	}
	want := []synthesis.Job{
		{ConversationID: part, UserID: "carol", ThroughSeq: 8},
		{ConversationID: lost, UserID: "bob", ThroughSeq: 2},
		{ConversationID: idleConv, UserID: "alice", ThroughSeq: 4},
	}
	byID := func(a, b synthesis.Job) int { return strings.Compare(a.ConversationID, b.ConversationID) }
	slices.SortFunc(jobs, byID)
	slices.SortFunc(want, byID) // the order of the answer is not specified
	if !reflect.DeepEqual(jobs, want) {
		t.Fatalf("Due = %+v\nwant %+v", jobs, want)
	}
	for _, j := range jobs {
		if err := j.Validate(); err != nil {
			t.Errorf("Due returned an invalid job %+v: %v", j, err)
		}
		var seq int64
		var at time.Time
		if err := e.pool.QueryRow(ctx, `SELECT enqueued_seq, enqueued_at FROM conversations WHERE conversation_id = $1`, j.ConversationID).Scan(&seq, &at); err != nil {
			t.Fatal(err)
		}
		if seq != j.ThroughSeq || !at.Equal(t0) {
			t.Errorf("%s recorded as sent through %d at %v, want %d at %v", j.ConversationID, seq, at, j.ThroughSeq, t0)
		}
	}
	// Recorded as sent: not due again until stale.
	if jobs, err := e.mem.Due(ctx, idle, stale, 10); err != nil || len(jobs) != 0 {
		t.Errorf("Due right after = %+v, %v; want nothing", jobs, err)
	}
	e.clock.advance(stale + time.Second)
	jobs, err = e.mem.Due(ctx, idle, stale, 10)
	if err != nil {
		t.Fatal(err)
	}
	// The three again (sent, not done, stale), bob's job sent before now stale too, and the
	// active conversation, idle by now.
	var got []string
	for _, j := range jobs {
		got = append(got, j.ConversationID)
	}
	slices.Sort(got)
	wantIDs := []string{idleConv, active, sent, lost, part}
	slices.Sort(wantIDs)
	if !slices.Equal(got, wantIDs) {
		t.Errorf("Due once stale = %v, want %v", got, wantIDs)
	}
	// A limit takes the oldest activity first: bob's sent conversation, quiet for an hour.
	e.clock.advance(stale + time.Second)
	jobs, err = e.mem.Due(ctx, idle, stale, 1)
	if err != nil || len(jobs) != 1 || jobs[0].ConversationID != sent {
		t.Errorf("Due limit 1 = %+v, %v; want bob's oldest", jobs, err)
	}
}

// A stretch longer than a run's maxMessages is learned in parts; the rest must still be learned
// once the first part is committed (the sweep sends the conversation again).
func TestALongStretchIsLearnedToItsEnd(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	conv := e.conversation(t, "alice", 5, t0.Add(-time.Hour))
	j := synthesis.Job{ConversationID: conv, UserID: "alice", ThroughSeq: 5}
	w, err := e.mem.Claim(ctx, j, lease, 2)
	if err != nil || w.Through != 2 {
		t.Fatalf("first part = %+v, %v", w, err)
	}
	r := synthesis.Result{Summary: "part 1", Actions: []memory.Action{{Kind: memory.Add, Layer: 1, Text: "Lives in Porto", Confidence: 0.8, Evidence: []int64{1}}}}
	if _, err := e.mem.Commit(ctx, j, w, r); err != nil {
		t.Fatal(err)
	}
	// Messages 3 to 5 are not learned yet: the sweep sends the conversation again ...
	e.clock.advance(time.Hour)
	jobs, err := e.mem.Due(ctx, 10*time.Minute, 10*time.Minute, 10)
	if err != nil || len(jobs) != 1 {
		t.Fatalf("Due = %+v, %v; want the half-learned conversation", jobs, err)
	}
	// ... and that job must reach them.
	w, err = e.mem.Claim(ctx, jobs[0], lease, 2)
	if err != nil {
		t.Fatalf("claim of the rest (job %+v) = %v; messages 3 to 5 are never learned", jobs[0], err)
	}
	if w.After != 2 || w.Through != 4 {
		t.Errorf("second part = after %d through %d, want 2 and 4", w.After, w.Through)
	}
}

// A run's counts say what it changed: an action on an insight an earlier action of the same run
// already invalidated changes nothing, so it is not counted, and leaves no evidence behind.
func TestCommitCountsOnlyWhatChanged(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	conv, tea, city, _ := commitFixture(t, e)
	j := synthesis.Job{ConversationID: conv, UserID: "alice", ThroughSeq: 6}
	w, err := e.mem.Claim(ctx, j, lease, 100)
	if err != nil {
		t.Fatal(err)
	}
	r := synthesis.Result{Summary: "s", Actions: []memory.Action{
		{Kind: memory.Invalidate, InsightID: tea, Evidence: []int64{1}},
		{Kind: memory.Reinforce, InsightID: tea, Evidence: []int64{3}},
		{Kind: memory.Invalidate, InsightID: tea, Evidence: []int64{5}},
		{Kind: memory.Update, InsightID: city, Text: "Lives in Porto", Confidence: 0.9, Evidence: []int64{1}},
		{Kind: memory.Update, InsightID: city, Text: "Lives in Braga", Confidence: 0.9, Evidence: []int64{3}},
	}}
	counts, err := e.mem.Commit(ctx, j, w, r)
	if err != nil {
		t.Fatal(err)
	}
	if want := (synthesis.Counts{Invalidated: 1, Updated: 1}); counts != want {
		t.Errorf("counts = %+v, want %+v", counts, want)
	}
	if s := e.state(t, tea); s.Reinforcement != 0 {
		t.Errorf("an invalidated insight was reinforced: %+v", s)
	}
	if ev := e.evidenceOf(t, tea); !slices.Equal(ev, []string{"invalidate:1"}) {
		t.Errorf("invalidated insight's evidence = %v, want only what invalidated it", ev)
	}
	if n := e.count(t, `SELECT count(*) FROM conversation_insights WHERE text IN ('Lives in Porto', 'Lives in Braga')`); n != 1 {
		t.Errorf("%d new versions of one insight, want 1", n)
	}
}

// ---- a processor over the real store ----

type scriptedExec struct {
	mu     sync.Mutex
	answer string
	calls  int
}

func (s *scriptedExec) Execute(_ context.Context, c execute.Call) (execute.Result, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	return execute.Result{RequestID: c.RequestID, Text: s.answer, Cost: 10}, nil
}

func (s *scriptedExec) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls
}

type noToggles struct{}

func (noToggles) Current(context.Context) (toggles.Set, error) { return toggles.Set{}, nil }

func newProcessor(t *testing.T, e *env, exec synthesis.Executor) *synthesis.Processor {
	t.Helper()
	return &synthesis.Processor{Store: e.mem, Exec: exec, Toggles: noToggles{},
		Logger: slog.New(slog.DiscardHandler), Policy: synthesis.DefaultPolicy()}
}

// A stretch longer than a run's MaxMessages is learned in parts within one delivery, up to
// MaxParts; what is left is recorded partial and a later delivery finishes it.
func TestProcessLearnsALongStretchInParts(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name        string
		maxParts    int
		wantFirst   synthesis.Outcome
		wantCalls   int   // model calls of the first delivery
		wantLearned int64 // synthesized_seq after it
	}{
		{name: "every part in one delivery", maxParts: 3, wantFirst: synthesis.Done, wantCalls: 3, wantLearned: 5},
		{name: "the rest left for the next delivery", maxParts: 2, wantFirst: synthesis.Skipped, wantCalls: 2, wantLearned: 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			conv := e.conversation(t, "alice", 5, t0)
			j := synthesis.Job{ConversationID: conv, UserID: "alice", ThroughSeq: 5}
			exec := &scriptedExec{answer: `{"summary":"s","actions":[]}`}
			p := newProcessor(t, e, exec)
			p.Policy.MaxMessages, p.Policy.MaxParts = 2, tt.maxParts
			out, err := p.Process(ctx, j)
			if err != nil || out != tt.wantFirst {
				t.Fatalf("Process = %q, %v; want %q", out, err, tt.wantFirst)
			}
			if exec.count() != tt.wantCalls {
				t.Errorf("%d model calls, want %d (one per part)", exec.count(), tt.wantCalls)
			}
			if got := scalar[int64](t, e, `SELECT synthesized_seq FROM conversations WHERE conversation_id = $1`, conv); got != tt.wantLearned {
				t.Errorf("learned through %d, want %d", got, tt.wantLearned)
			}
			if tt.wantFirst == synthesis.Done {
				return
			}
			if got := e.jobs(t, conv)[5]; got.Status != "skipped" || got.Reason != "partial" {
				t.Errorf("job record %+v, want skipped/partial until the last part", got)
			}
			// The next delivery (the sweep's) learns the rest and completes the job.
			if out, err := p.Process(ctx, j); err != nil || out != synthesis.Done {
				t.Fatalf("second delivery = %q, %v; want done", out, err)
			}
			if got := scalar[int64](t, e, `SELECT synthesized_seq FROM conversations WHERE conversation_id = $1`, conv); got != 5 {
				t.Errorf("learned through %d after the second delivery, want 5", got)
			}
			if got := e.jobs(t, conv)[5]; got.Status != "done" {
				t.Errorf("job record %+v, want done", got)
			}
		})
	}
}

// Step-up turns (the redacted attempt, and Helix's own answer, which no model wrote) are never
// learned from; a stretch of nothing else is done without asking a model.
func TestStepUpTurnsAreNotLearnedFrom(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	conv := e.conversation(t, "alice", 2, t0) // 1 user, 2 assistant
	e.exec(t, `INSERT INTO session_messages (conversation_id, seq, role, content, reply_to_seq) VALUES
		($1, 3, 'user', $2, NULL), ($1, 4, 'assistant', 'Step-up verified: creator mode is on in this conversation.', 3)`,
		conv, stepup.Redacted)
	e.exec(t, `UPDATE conversations SET last_seq = 4 WHERE conversation_id = $1`, conv)

	w, err := e.mem.Claim(ctx, synthesis.Job{ConversationID: conv, UserID: "alice", ThroughSeq: 4}, lease, 100)
	if err != nil {
		t.Fatal(err)
	}
	var seqs []int64
	for _, m := range w.Messages {
		seqs = append(seqs, m.Seq)
	}
	if !slices.Equal(seqs, []int64{1, 2}) || w.Through != 4 {
		t.Errorf("claimed messages %v through %d, want [1 2] through 4 (the step-up turns left out, still covered)", seqs, w.Through)
	}
	if err := e.mem.Release(ctx, synthesis.Job{ConversationID: conv, UserID: "alice", ThroughSeq: 4}); err != nil {
		t.Fatal(err)
	}

	// A stretch of only step-up turns: done, no model call, and not due again.
	only := e.conversation(t, "alice", 0, t0)
	e.exec(t, `INSERT INTO session_messages (conversation_id, seq, role, content, reply_to_seq) VALUES
		($1, 1, 'user', $2, NULL), ($1, 2, 'assistant', 'Step-up failed.', 1)`, only, stepup.Redacted)
	e.exec(t, `UPDATE conversations SET last_seq = 2 WHERE conversation_id = $1`, only)
	exec := &scriptedExec{answer: `{"summary":"s","actions":[]}`}
	p := newProcessor(t, e, exec)
	out, err := p.Process(ctx, synthesis.Job{ConversationID: only, UserID: "alice", ThroughSeq: 2})
	if err != nil || out != synthesis.Done || exec.count() != 0 {
		t.Errorf("Process = %q, %v with %d model calls; want done with none", out, err, exec.count())
	}
	if got := scalar[int64](t, e, `SELECT synthesized_seq FROM conversations WHERE conversation_id = $1`, only); got != 2 {
		t.Errorf("synthesized through %d, want 2", got)
	}
}

// A synthesis run is in the audit log: counts and the layers it changed, never what was learned.
func TestCommitIsAudited(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	conv, tea, city, _ := commitFixture(t, e)
	j := synthesis.Job{ConversationID: conv, UserID: "alice", ThroughSeq: 6}
	w, err := e.mem.Claim(ctx, j, lease, 100)
	if err != nil {
		t.Fatal(err)
	}
	r := synthesis.Result{Summary: "SECRET-SUMMARY", Cost: 55, Actions: []memory.Action{
		{Kind: memory.Add, Layer: memory.Transformation, Text: "SECRET-FACT", Confidence: 0.8, Evidence: []int64{1}},
		{Kind: memory.Reinforce, InsightID: tea, Evidence: []int64{3}},
		{Kind: memory.Update, InsightID: city, Text: "SECRET-CITY", Confidence: 0.9, Evidence: []int64{1}},
	}}
	if _, err := e.mem.Commit(ctx, j, w, r); err != nil {
		t.Fatal(err)
	}
	var actor, payload string
	if err := e.pool.QueryRow(ctx, `SELECT actor, payload FROM audit_pending WHERE kind = 'synthesis'`).Scan(&actor, &payload); err != nil {
		t.Fatal(err)
	}
	var run auditlog.SynthesisRun
	if err := json.Unmarshal([]byte(payload), &run); err != nil {
		t.Fatal(err)
	}
	if actor != "alice" || run.Status != "done" || run.Added != 1 || run.Reinforced != 1 || run.Updated != 1 || run.CostNano != 55 ||
		run.Layers["Transformation"] != 1 || len(run.Layers) < 2 {
		t.Errorf("audited run by %s: %+v", actor, run)
	}
	if strings.Contains(payload, "SECRET") {
		t.Errorf("the audit entry holds memory content: %s", payload)
	}
}
