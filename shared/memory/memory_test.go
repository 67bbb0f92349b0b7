package memory_test

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/helixhq/helix/shared/fault"
	"github.com/helixhq/helix/shared/memory"
)

func TestParseLayer(t *testing.T) {
	names := map[int]string{1: "Narrative Core", 2: "Emotional Memory", 3: "Relational Memory", 4: "Prospective Self",
		5: "Integration Rhythms", 6: "Transformation", 7: "Purpose Engine"}
	for n := -1; n <= 9; n++ {
		l, err := memory.ParseLayer(n)
		name, valid := names[n]
		if !valid {
			if err == nil || l != 0 {
				t.Errorf("ParseLayer(%d) = %v, %v; want an error", n, l, err)
			}
			var f *fault.Error
			if !errors.As(err, &f) || f.Code != fault.InvalidField {
				t.Errorf("ParseLayer(%d) error %v is not an invalid_field fault", n, err)
			}
			if l.Valid() || memory.Layer(n).Valid() {
				t.Errorf("Layer(%d).Valid() = true", n)
			}
			if memory.Layer(n).Name() != "" || memory.Layer(n).About() != "" {
				t.Errorf("Layer(%d) has a name %q or description %q", n, memory.Layer(n).Name(), memory.Layer(n).About())
			}
			continue
		}
		if err != nil || int(l) != n || !l.Valid() {
			t.Errorf("ParseLayer(%d) = %v, %v", n, l, err)
		}
		if l.Name() != name {
			t.Errorf("Layer(%d).Name() = %q, want %q", n, l.Name(), name)
		}
		if l.About() == "" {
			t.Errorf("Layer(%d) has no description", n)
		}
	}
	if memory.MinLayer != 1 || memory.MaxLayer != 7 {
		t.Errorf("layers run %d to %d", memory.MinLayer, memory.MaxLayer)
	}
}

func TestLayers(t *testing.T) {
	got := memory.Layers()
	want := []memory.Layer{1, 2, 3, 4, 5, 6, 7}
	if !slices.Equal(got, want) {
		t.Fatalf("Layers() = %v", got)
	}
	seen := map[string]bool{}
	for _, l := range got {
		if seen[l.Name()] {
			t.Errorf("two layers are named %q", l.Name())
		}
		seen[l.Name()] = true
	}
	// Each call is a fresh slice: a caller cannot change the list for others.
	got[0] = 99
	if memory.Layers()[0] != memory.NarrativeCore {
		t.Error("Layers() shares its slice")
	}
}

func TestInsightActive(t *testing.T) {
	if !(memory.Insight{}).Active() {
		t.Error("an insight never invalidated is not active")
	}
	if (memory.Insight{InvalidatedAt: time.Unix(1, 0)}).Active() {
		t.Error("an invalidated insight is active")
	}
}

func TestErrNotFoundIsNotFound(t *testing.T) {
	var f *fault.Error
	if !errors.As(memory.ErrNotFound, &f) || f.Code != fault.NotFound {
		t.Fatalf("ErrNotFound = %#v", memory.ErrNotFound)
	}
}

func TestActionCheck(t *testing.T) {
	const known1, known2, unknown = "11111111-1111-4111-8111-111111111111", "22222222-2222-4222-8222-222222222222", "33333333-3333-4333-8333-333333333333"
	known := map[string]memory.Insight{known1: {ID: known1}, known2: {ID: known2}}
	const after, through = 10, 15 // the run covered messages 11 to 15
	ev := []int64{11}
	long := strings.Repeat("ß", memory.MaxInsightText)
	cases := []struct {
		name string
		a    memory.Action
		err  string // a part of the error; "" for valid
	}{
		{"add", memory.Action{Kind: memory.Add, Layer: memory.PurposeEngine, Text: "Values honesty", Confidence: 0.7, Evidence: ev}, ""},
		{"add at the edges", memory.Action{Kind: memory.Add, Layer: memory.NarrativeCore, Text: long, Confidence: 1, Evidence: []int64{11, 15}}, ""},
		{"add with zero confidence", memory.Action{Kind: memory.Add, Layer: memory.MaxLayer, Text: "t", Confidence: 0, Evidence: ev}, ""},
		{"add needs no known insight", memory.Action{Kind: memory.Add, Layer: 3, Text: "t", Evidence: ev, InsightID: unknown}, ""},
		{"add layer 0", memory.Action{Kind: memory.Add, Text: "t", Evidence: ev}, "add: layer must be 1 to 7"},
		{"add layer 8", memory.Action{Kind: memory.Add, Layer: 8, Text: "t", Evidence: ev}, "add: layer must be 1 to 7"},
		{"add layer negative", memory.Action{Kind: memory.Add, Layer: -1, Text: "t", Evidence: ev}, "add: layer must be 1 to 7"},
		{"add without text", memory.Action{Kind: memory.Add, Layer: 1, Evidence: ev}, "add: text must be 1 to 500 characters"},
		{"add text too long", memory.Action{Kind: memory.Add, Layer: 1, Text: long + "x", Evidence: ev}, "add: text must be 1 to 500 characters"},
		{"add confidence above 1", memory.Action{Kind: memory.Add, Layer: 1, Text: "t", Confidence: 1.01, Evidence: ev}, "add: confidence must be between 0 and 1"},
		{"add confidence below 0", memory.Action{Kind: memory.Add, Layer: 1, Text: "t", Confidence: -0.01, Evidence: ev}, "add: confidence must be between 0 and 1"},

		{"reinforce", memory.Action{Kind: memory.Reinforce, InsightID: known1, Evidence: ev}, ""},
		{"reinforce ignores text and confidence", memory.Action{Kind: memory.Reinforce, InsightID: known1, Confidence: 7, Evidence: ev}, ""},
		{"reinforce unknown", memory.Action{Kind: memory.Reinforce, InsightID: unknown, Evidence: ev}, `reinforce: insight "` + unknown + `" is not one of the insights shown`},
		{"reinforce without insight", memory.Action{Kind: memory.Reinforce, Evidence: ev}, `reinforce: insight "" is not one of the insights shown`},

		{"update", memory.Action{Kind: memory.Update, InsightID: known2, Text: "Lives in Porto", Confidence: 0.8, Evidence: ev}, ""},
		{"update unknown", memory.Action{Kind: memory.Update, InsightID: unknown, Text: "t", Evidence: ev}, "update: insight"},
		{"update without text", memory.Action{Kind: memory.Update, InsightID: known2, Evidence: ev}, "update: text must be 1 to 500 characters"},
		{"update text too long", memory.Action{Kind: memory.Update, InsightID: known2, Text: long + "x", Evidence: ev}, "update: text must be"},
		{"update confidence out of range", memory.Action{Kind: memory.Update, InsightID: known2, Text: "t", Confidence: 2, Evidence: ev}, "update: confidence"},

		{"invalidate", memory.Action{Kind: memory.Invalidate, InsightID: known2, Evidence: ev}, ""},
		{"invalidate unknown", memory.Action{Kind: memory.Invalidate, InsightID: unknown, Evidence: ev}, "invalidate: insight"},

		{"unknown kind", memory.Action{Kind: "delete", InsightID: known1, Evidence: ev}, `unknown action "delete"`},
		{"empty kind", memory.Action{InsightID: known1, Evidence: ev}, `unknown action ""`},
		{"kind is case-sensitive", memory.Action{Kind: "Add", Layer: 1, Text: "t", Evidence: ev}, `unknown action "Add"`},

		{"no evidence", memory.Action{Kind: memory.Reinforce, InsightID: known1}, "reinforce: evidence must name 1 to 50 messages"},
		{"most evidence", memory.Action{Kind: memory.Reinforce, InsightID: known1, Evidence: slices.Repeat([]int64{12}, memory.MaxEvidencePerItem)}, ""},
		{"too much evidence", memory.Action{Kind: memory.Reinforce, InsightID: known1, Evidence: slices.Repeat([]int64{12}, memory.MaxEvidencePerItem+1)}, "evidence must name 1 to 50 messages"},
		{"evidence at after", memory.Action{Kind: memory.Invalidate, InsightID: known1, Evidence: []int64{10}}, "invalidate: evidence message 10 is not one of the new messages (11 to 15)"},
		{"evidence past through", memory.Action{Kind: memory.Add, Layer: 1, Text: "t", Evidence: []int64{11, 16}}, "add: evidence message 16 is not one of the new messages (11 to 15)"},
		{"evidence zero", memory.Action{Kind: memory.Reinforce, InsightID: known1, Evidence: []int64{0}}, "evidence message 0"},
		{"evidence negative", memory.Action{Kind: memory.Reinforce, InsightID: known1, Evidence: []int64{-12}}, "evidence message -12"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := c.a.Check(known, after, through)
			switch {
			case c.err == "" && err != nil:
				t.Fatalf("Check = %v, want nil", err)
			case c.err != "" && err == nil:
				t.Fatalf("Check = nil, want an error containing %q", c.err)
			case c.err != "" && !strings.Contains(err.Error(), c.err):
				t.Fatalf("Check = %q, want it to contain %q", err, c.err)
			}
		})
	}
}

// With nothing shown, only an add can pass.
func TestActionCheckWithNoInsightsShown(t *testing.T) {
	for _, k := range []memory.Kind{memory.Reinforce, memory.Update, memory.Invalidate} {
		a := memory.Action{Kind: k, InsightID: "x", Text: "t", Evidence: []int64{1}}
		if err := a.Check(nil, 0, 1); err == nil {
			t.Errorf("%s of an insight not shown passed", k)
		}
	}
	a := memory.Action{Kind: memory.Add, Layer: 1, Text: "t", Evidence: []int64{1}}
	if err := a.Check(nil, 0, 1); err != nil {
		t.Errorf("add: %v", err)
	}
}

func TestStrength(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	day := 24 * time.Hour
	cases := []struct {
		name  string
		layer memory.Layer
		since time.Duration // since the last reinforcement
		want  float64
	}{
		{"routine just reinforced", memory.IntegrationRhythms, 0, 0.8},
		{"routine after one half-life", memory.IntegrationRhythms, memory.RoutineHalfLife, 0.4},
		{"routine after two", memory.IntegrationRhythms, 2 * memory.RoutineHalfLife, 0.2},
		{"routine after a week", memory.IntegrationRhythms, 7 * day, 0.8 / 1.4142135623730951},
		{"routine reinforced in the future (clock skew)", memory.IntegrationRhythms, -day, 0.8},
		{"other layers do not fade", memory.NarrativeCore, 365 * day, 0.8},
		{"purpose does not fade", memory.PurposeEngine, 10 * memory.RoutineHalfLife, 0.8},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			i := memory.Insight{Layer: c.layer, Confidence: 0.8, LastReinforcedAt: now.Add(-c.since)}
			if got := i.Strength(now); got < c.want-1e-9 || got > c.want+1e-9 {
				t.Errorf("Strength = %v, want %v", got, c.want)
			}
		})
	}
	// A routine three half-lives old at 0.8 is 0.1: the edge of fading; a little older is faded.
	i := memory.Insight{Layer: memory.IntegrationRhythms, Confidence: 0.8, LastReinforcedAt: now.Add(-3*memory.RoutineHalfLife - time.Hour)}
	if s := i.Strength(now); s >= memory.FadedStrength {
		t.Errorf("strength %v of a routine past three half-lives is not below %v", s, memory.FadedStrength)
	}
}
