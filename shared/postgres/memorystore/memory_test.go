package memorystore_test

import (
	"context"
	"errors"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/helixhq/helix/shared/memory"
)

func ids(list []memory.Insight) []string {
	out := []string{}
	for _, i := range list {
		out = append(out, i.ID)
	}
	return out
}

func TestInsights(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	conv := e.conversation(t, "alice", 4, t0)
	other := e.conversation(t, "bob", 2, t0)
	// Alice: two in layer 1 (b newer than a), one in layer 3, an invalidated one in layer 1.
	a := e.insight(t, insightRow{user: "alice", layer: memory.NarrativeCore, text: "Grew up in Braga", confidence: 0.9, at: t0.Add(-3 * time.Hour)})
	b := e.insight(t, insightRow{user: "alice", layer: memory.NarrativeCore, text: "Lives in Porto", confidence: 0.8, at: t0.Add(-1 * time.Hour)})
	c := e.insight(t, insightRow{user: "alice", layer: memory.RelationalMemory, text: "Trusts her sister Ana", confidence: 0.7, at: t0.Add(-5 * time.Hour)})
	old := e.insight(t, insightRow{user: "alice", layer: memory.NarrativeCore, text: "Lives in Lisbon", confidence: 0.9, at: t0.Add(-2 * time.Hour), invalidated: true})
	e.exec(t, `UPDATE conversation_insights SET superseded_by = $1 WHERE insight_id = $2`, b, old)
	bobs := e.insight(t, insightRow{user: "bob", layer: memory.NarrativeCore, text: "Lives in Porto", confidence: 0.8, at: t0})
	e.evidence(t, b, conv, 3, memory.Update)
	e.evidence(t, b, conv, 1, memory.Add)
	e.evidence(t, old, conv, 1, memory.Add)
	e.evidence(t, bobs, other, 1, memory.Add)

	cases := []struct {
		name string
		user string
		l    memory.Listing
		want []string
	}{
		{"active, by layer then newest", "alice", memory.Listing{}, []string{b, a, c}},
		{"with invalidated", "alice", memory.Listing{IncludeInvalidated: true}, []string{b, old, a, c}},
		{"one layer", "alice", memory.Listing{Layer: memory.NarrativeCore}, []string{b, a}},
		{"one layer with invalidated", "alice", memory.Listing{Layer: memory.NarrativeCore, IncludeInvalidated: true}, []string{b, old, a}},
		{"an empty layer", "alice", memory.Listing{Layer: memory.PurposeEngine, IncludeInvalidated: true}, []string{}},
		{"another user sees only their own", "bob", memory.Listing{IncludeInvalidated: true}, []string{bobs}},
		{"a user with nothing", "carol", memory.Listing{IncludeInvalidated: true}, []string{}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			list, err := e.mem.Insights(ctx, tc.user, tc.l)
			if err != nil {
				t.Fatal(err)
			}
			if got := ids(list); !slices.Equal(got, tc.want) {
				t.Fatalf("Insights = %v, want %v", got, tc.want)
			}
			for _, i := range list {
				if i.UserID != tc.user {
					t.Errorf("insight %s of %s listed for %s", i.ID, i.UserID, tc.user)
				}
			}
		})
	}

	list, err := e.mem.Insights(ctx, "alice", memory.Listing{IncludeInvalidated: true})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]memory.Insight{}
	for _, i := range list {
		got[i.ID] = i
	}
	bi := got[b]
	if bi.Layer != memory.NarrativeCore || bi.Text != "Lives in Porto" || bi.Confidence < 0.79 || bi.Confidence > 0.81 ||
		!bi.ValidFrom.Equal(t0.Add(-time.Hour)) || !bi.Active() || bi.SupersededBy != "" {
		t.Errorf("insight b = %+v", bi)
	}
	if want := []memory.Evidence{{ConversationID: conv, Seq: 1}, {ConversationID: conv, Seq: 3}}; !reflect.DeepEqual(bi.Evidence, want) {
		t.Errorf("b's evidence = %+v, want %+v", bi.Evidence, want)
	}
	if oi := got[old]; oi.Active() || !oi.InvalidatedAt.Equal(t0.Add(-2*time.Hour)) || oi.SupersededBy != b || len(oi.Evidence) != 1 {
		t.Errorf("the invalidated insight = %+v", oi)
	}
	if ai := got[a]; ai.Evidence != nil {
		t.Errorf("a has evidence %+v, want none", ai.Evidence)
	}
}

func TestDeleteInsight(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	conv := e.conversation(t, "alice", 2, t0)
	mine := e.insight(t, insightRow{user: "alice", layer: memory.PurposeEngine, text: "Values honesty", confidence: 0.8, at: t0})
	newer := e.insight(t, insightRow{user: "alice", layer: memory.PurposeEngine, text: "Values candour", confidence: 0.8, at: t0})
	e.exec(t, `UPDATE conversation_insights SET invalidated_at = $1, superseded_by = $2 WHERE insight_id = $3`, t0, newer, mine)
	bobs := e.insight(t, insightRow{user: "bob", layer: memory.PurposeEngine, text: "Values time", confidence: 0.8, at: t0})
	e.evidence(t, mine, conv, 1, memory.Add)
	e.evidence(t, newer, conv, 1, memory.Update)

	// Another user's insight, a missing one, and a non-UUID are all the same not found.
	for name, id := range map[string]string{"another user's": bobs, "missing": uuid.NewString(), "not a UUID": "not-a-uuid", "empty": ""} {
		if err := e.mem.DeleteInsight(ctx, "alice", id); !errors.Is(err, memory.ErrNotFound) {
			t.Errorf("deleting %s insight = %v, want ErrNotFound", name, err)
		}
	}
	if n := e.count(t, `SELECT count(*) FROM conversation_insights WHERE insight_id = $1`, bobs); n != 1 {
		t.Fatal("alice deleted bob's insight")
	}

	// Deleting the successor leaves the old version without a link; its own evidence goes with it.
	if err := e.mem.DeleteInsight(ctx, "alice", newer); err != nil {
		t.Fatal(err)
	}
	if n := e.count(t, `SELECT count(*) FROM insight_evidence WHERE insight_id = $1`, newer); n != 0 {
		t.Errorf("%d evidence rows left of a deleted insight", n)
	}
	if s := scalar[*string](t, e, `SELECT superseded_by::text FROM conversation_insights WHERE insight_id = $1`, mine); s != nil {
		t.Errorf("superseded_by = %v after its successor was deleted", *s)
	}
	if err := e.mem.DeleteInsight(ctx, "alice", mine); err != nil {
		t.Fatal(err)
	}
	if err := e.mem.DeleteInsight(ctx, "alice", mine); !errors.Is(err, memory.ErrNotFound) {
		t.Errorf("deleting twice = %v, want ErrNotFound", err)
	}
	if n := e.count(t, `SELECT count(*) FROM conversation_insights WHERE user_id = 'alice'`); n != 0 {
		t.Errorf("%d of alice's insights left", n)
	}
	if n := e.count(t, `SELECT count(*) FROM insight_evidence`); n != 0 {
		t.Errorf("%d evidence rows left", n)
	}
	if n := e.count(t, `SELECT count(*) FROM session_messages WHERE conversation_id = $1`, conv); n != 2 {
		t.Errorf("deleting insights deleted messages: %d left", n)
	}
}

func TestForget(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	c1 := e.conversation(t, "alice", 4, t0)
	c2 := e.conversation(t, "alice", 2, t0)
	bc := e.conversation(t, "bob", 3, t0)
	e.exec(t, `UPDATE conversations SET summary = 'talked about Porto', summary_through_seq = 2, synthesized_seq = 2 WHERE conversation_id = $1`, c1)
	a1 := e.insight(t, insightRow{user: "alice", layer: memory.NarrativeCore, text: "Lives in Porto", confidence: 0.8, at: t0})
	a2 := e.insight(t, insightRow{user: "alice", layer: memory.NarrativeCore, text: "Lived in Lisbon", confidence: 0.8, at: t0, invalidated: true})
	b1 := e.insight(t, insightRow{user: "bob", layer: memory.NarrativeCore, text: "Lives in Braga", confidence: 0.8, at: t0})
	e.evidence(t, a1, c1, 1, memory.Add)
	e.evidence(t, a1, c2, 1, memory.Reinforce)
	e.evidence(t, a2, c1, 1, memory.Add)
	e.evidence(t, b1, bc, 1, memory.Add)

	n, err := e.mem.Forget(ctx, "alice")
	if err != nil || n != 2 {
		t.Fatalf("Forget = %d, %v; want 2 deleted", n, err)
	}
	if n := e.count(t, `SELECT count(*) FROM conversation_insights WHERE user_id = 'alice'`); n != 0 {
		t.Errorf("%d of alice's insights left", n)
	}
	if n := e.count(t, `SELECT count(*) FROM insight_evidence WHERE conversation_id IN ($1, $2)`, c1, c2); n != 0 {
		t.Errorf("%d of alice's evidence rows left", n)
	}
	// Conversations and messages stay; everything said is marked learned, the summary is gone.
	for id, last := range map[string]int64{c1: 4, c2: 2} {
		var synth, enq, sumThrough int64
		var summary string
		if err := e.pool.QueryRow(ctx, `SELECT synthesized_seq, enqueued_seq, summary, summary_through_seq FROM conversations WHERE conversation_id = $1`, id).
			Scan(&synth, &enq, &summary, &sumThrough); err != nil {
			t.Fatal(err)
		}
		if synth != last || enq != last || summary != "" || sumThrough != 0 {
			t.Errorf("conversation after Forget: synthesized %d enqueued %d summary %q through %d; want %d %d \"\" 0", synth, enq, summary, sumThrough, last, last)
		}
	}
	if n := e.count(t, `SELECT count(*) FROM session_messages WHERE conversation_id IN ($1, $2)`, c1, c2); n != 6 {
		t.Errorf("%d messages left, want 6", n)
	}
	// Bob is untouched.
	if n := e.count(t, `SELECT count(*) FROM insight_evidence WHERE insight_id = $1`, b1); n != 1 {
		t.Error("bob's evidence is gone")
	}
	if n := e.count(t, `SELECT synthesized_seq FROM conversations WHERE conversation_id = $1`, bc); n != 0 {
		t.Error("bob's conversation was marked synthesized")
	}
	// Nothing is due any more, however idle.
	e.clock.advance(24 * time.Hour)
	jobs, err := e.mem.Due(ctx, time.Minute, time.Minute, 10)
	if err != nil {
		t.Fatal(err)
	}
	for _, j := range jobs {
		if j.UserID == "alice" {
			t.Errorf("alice's conversation is due after Forget: %+v", j)
		}
	}
	// Forgetting again finds nothing.
	if n, err := e.mem.Forget(ctx, "alice"); err != nil || n != 0 {
		t.Errorf("second Forget = %d, %v", n, err)
	}
}

func TestExport(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	conv := e.conversation(t, "alice", 4, t0)
	bc := e.conversation(t, "bob", 2, t0)
	live := e.insight(t, insightRow{user: "alice", layer: memory.NarrativeCore, text: "Lives in Porto", confidence: 0.8, at: t0})
	gone := e.insight(t, insightRow{user: "alice", layer: memory.NarrativeCore, text: "Lives in Lisbon", confidence: 0.9, at: t0.Add(-time.Hour), invalidated: true})
	bare := e.insight(t, insightRow{user: "alice", layer: memory.PurposeEngine, text: "Values honesty", confidence: 0.6, at: t0})
	bobs := e.insight(t, insightRow{user: "bob", layer: memory.NarrativeCore, text: "Lives in Braga", confidence: 0.8, at: t0})
	e.evidence(t, live, conv, 3, memory.Update)
	e.evidence(t, live, conv, 1, memory.Add)
	e.evidence(t, gone, conv, 2, memory.Invalidate)
	e.evidence(t, bobs, bc, 1, memory.Add)
	// A message an insight rests on that no longer exists exports with empty text.
	e.evidence(t, gone, conv, 4, memory.Add)
	e.exec(t, `DELETE FROM session_messages WHERE conversation_id = $1 AND seq = 4`, conv)

	list, ev, err := e.mem.Export(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := ids(list), []string{live, gone, bare}; !slices.Equal(got, want) {
		t.Fatalf("exported insights %v, want %v (invalidated included, bob's not)", got, want)
	}
	want := map[string][]memory.ExportedEvidence{
		live: {{ConversationID: conv, Seq: 1, Kind: memory.Add, Message: message(1)}, {ConversationID: conv, Seq: 3, Kind: memory.Update, Message: message(3)}},
		gone: {{ConversationID: conv, Seq: 2, Kind: memory.Invalidate, Message: message(2)}, {ConversationID: conv, Seq: 4, Kind: memory.Add, Message: ""}},
	}
	if !reflect.DeepEqual(ev, want) {
		t.Errorf("exported evidence =\n %+v\nwant\n %+v", ev, want)
	}
	if l := list[1]; l.Active() || l.Text != "Lives in Lisbon" {
		t.Errorf("exported invalidated insight = %+v", l)
	}

	list, ev, err = e.mem.Export(ctx, "carol")
	if err != nil || len(list) != 0 || len(ev) != 0 {
		t.Errorf("carol's export = %v, %v, %v", list, ev, err)
	}
}
