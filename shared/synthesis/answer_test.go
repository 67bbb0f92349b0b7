package synthesis

import (
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/helixhq/helix/shared/memory"
	"github.com/helixhq/helix/shared/structured"
)

const (
	idTea  = "7d4c1f7e-2a0b-4c3e-9a51-0d1f7b6e9a01"
	idCity = "7d4c1f7e-2a0b-4c3e-9a51-0d1f7b6e9a02"
)

// shown is what a run was shown: two candidate insights as i1 and i2, and messages 5 to 8.
func shown() (map[string]memory.Insight, []string, Work) {
	handles := map[string]memory.Insight{
		"i1": {ID: idTea, Layer: memory.IntegrationRhythms, Text: "Drinks tea every morning", Confidence: 0.7},
		"i2": {ID: idCity, Layer: memory.NarrativeCore, Text: "Lives in Lisbon", Confidence: 0.9},
	}
	w := Work{After: 4, Through: 8, Summary: "They talked about mornings.", Messages: []Message{
		{Seq: 5, Role: "user", Content: "I moved to Porto last month."},
		{Seq: 6, Role: "assistant", Content: "How do you like Porto?"},
		{Seq: 7, Role: "user", Content: "Love it. Still tea first thing."},
		{Seq: 8, Role: "assistant", Content: "Nice."},
	}}
	return handles, []string{"i1", "i2"}, w
}

func compileFor(t *testing.T, order []string, w Work) *structured.Schema {
	t.Helper()
	s, err := structured.Compile(answerSchema(order, w))
	if err != nil {
		t.Fatalf("answerSchema does not compile: %v", err)
	}
	return s
}

func ptr(f float64) *float64 { return &f }

// answerJSON writes an answer the way a model would.
func answerJSON(summary string, actions ...answerAction) string {
	if actions == nil {
		actions = []answerAction{}
	}
	b, _ := json.Marshal(answer{Summary: summary, Actions: actions})
	return string(b)
}

func TestParseAnswer(t *testing.T) {
	handles, order, w := shown()
	schema := compileFor(t, order, w)
	long := strings.Repeat("é", memory.MaxInsightText) // 500 characters, 1000 bytes
	cases := []struct {
		name   string
		answer string
		want   Result
		err    string // a part of the error; "" for success
	}{
		{"add", answerJSON(" Moved cities. ", answerAction{Action: "add", Layer: 6, Text: " Moved to Porto recently ", Confidence: ptr(0.8), Evidence: []int64{5}}),
			Result{Summary: "Moved cities.", Actions: []memory.Action{{Kind: memory.Add, Layer: memory.Transformation, Text: "Moved to Porto recently", Confidence: 0.8, Evidence: []int64{5}}}}, ""},
		{"add without confidence gets 0.6", answerJSON("s", answerAction{Action: "add", Layer: 1, Text: "Lives in Porto", Evidence: []int64{5, 7}}),
			Result{Summary: "s", Actions: []memory.Action{{Kind: memory.Add, Layer: memory.NarrativeCore, Text: "Lives in Porto", Confidence: 0.6, Evidence: []int64{5, 7}}}}, ""},
		{"add of the longest text (characters, not bytes)", answerJSON("s", answerAction{Action: "add", Layer: 2, Text: long, Confidence: ptr(0), Evidence: []int64{8}}),
			Result{Summary: "s", Actions: []memory.Action{{Kind: memory.Add, Layer: memory.EmotionalMemory, Text: long, Confidence: 0, Evidence: []int64{8}}}}, ""},
		{"reinforce maps the handle to the id", answerJSON("s", answerAction{Action: "reinforce", Insight: "i1", Evidence: []int64{7}}),
			Result{Summary: "s", Actions: []memory.Action{{Kind: memory.Reinforce, InsightID: idTea, Confidence: 0.6, Evidence: []int64{7}}}}, ""},
		{"update", answerJSON("s", answerAction{Action: "update", Insight: "i2", Text: "Lives in Porto", Confidence: ptr(1), Evidence: []int64{5}}),
			Result{Summary: "s", Actions: []memory.Action{{Kind: memory.Update, InsightID: idCity, Text: "Lives in Porto", Confidence: 1, Evidence: []int64{5}}}}, ""},
		{"invalidate", answerJSON("s", answerAction{Action: "invalidate", Insight: "i2", Evidence: []int64{5, 6}}),
			Result{Summary: "s", Actions: []memory.Action{{Kind: memory.Invalidate, InsightID: idCity, Confidence: 0.6, Evidence: []int64{5, 6}}}}, ""},
		{"several actions in order", answerJSON("s",
			answerAction{Action: "update", Insight: "i2", Text: "Lives in Porto", Confidence: ptr(0.9), Evidence: []int64{5}},
			answerAction{Action: "reinforce", Insight: "i1", Evidence: []int64{7}}),
			Result{Summary: "s", Actions: []memory.Action{
				{Kind: memory.Update, InsightID: idCity, Text: "Lives in Porto", Confidence: 0.9, Evidence: []int64{5}},
				{Kind: memory.Reinforce, InsightID: idTea, Confidence: 0.6, Evidence: []int64{7}}}}, ""},
		{"nothing to learn", answerJSON("Small talk."), Result{Summary: "Small talk."}, ""},
		{"fenced JSON", "```json\n" + answerJSON("s", answerAction{Action: "reinforce", Insight: "i1", Evidence: []int64{7}}) + "\n```",
			Result{Summary: "s", Actions: []memory.Action{{Kind: memory.Reinforce, InsightID: idTea, Confidence: 0.6, Evidence: []int64{7}}}}, ""},

		{"unknown handle", answerJSON("s", answerAction{Action: "reinforce", Insight: "i3", Evidence: []int64{7}}), Result{}, "/actions/0/insight"},
		{"an insight id instead of a handle", answerJSON("s", answerAction{Action: "reinforce", Insight: idTea, Evidence: []int64{7}}), Result{}, "/actions/0/insight"},
		{"reinforce without an insight", answerJSON("s", answerAction{Action: "reinforce", Evidence: []int64{7}}), Result{}, `reinforce: insight "" is not one of the insights shown`},
		{"unknown action", answerJSON("s", answerAction{Action: "delete", Insight: "i1", Evidence: []int64{7}}), Result{}, "/actions/0/action"},
		{"evidence before the range", answerJSON("s", answerAction{Action: "reinforce", Insight: "i1", Evidence: []int64{4}}), Result{}, "/actions/0/evidence/0"},
		{"evidence after the range", answerJSON("s", answerAction{Action: "reinforce", Insight: "i1", Evidence: []int64{7, 9}}), Result{}, "/actions/0/evidence/1"},
		{"no evidence", answerJSON("s", answerAction{Action: "reinforce", Insight: "i1", Evidence: []int64{}}), Result{}, "/actions/0/evidence"},
		{"evidence missing", `{"summary":"s","actions":[{"action":"reinforce","insight":"i1"}]}`, Result{}, "/actions/0"},
		{"too much evidence", answerJSON("s", answerAction{Action: "reinforce", Insight: "i1", Evidence: slices.Repeat([]int64{5}, memory.MaxEvidencePerItem+1)}), Result{}, "/actions/0/evidence"},
		{"layer 0", `{"summary":"s","actions":[{"action":"add","layer":0,"text":"t","evidence":[5]}]}`, Result{}, "/actions/0/layer"},
		{"layer 8", answerJSON("s", answerAction{Action: "add", Layer: 8, Text: "t", Evidence: []int64{5}}), Result{}, "/actions/0/layer"},
		{"add without a layer", answerJSON("s", answerAction{Action: "add", Text: "t", Evidence: []int64{5}}), Result{}, "add: layer must be 1 to 7"},
		{"text too long", answerJSON("s", answerAction{Action: "add", Layer: 1, Text: long + "x", Evidence: []int64{5}}), Result{}, "/actions/0/text"},
		{"text empty", `{"summary":"s","actions":[{"action":"add","layer":1,"text":"","evidence":[5]}]}`, Result{}, "/actions/0/text"},
		{"text only spaces", answerJSON("s", answerAction{Action: "add", Layer: 1, Text: "   ", Evidence: []int64{5}}), Result{}, "add: text must be 1 to 500 characters"},
		{"add without text", answerJSON("s", answerAction{Action: "add", Layer: 1, Evidence: []int64{5}}), Result{}, "add: text must be 1 to 500 characters"},
		{"update without text", answerJSON("s", answerAction{Action: "update", Insight: "i1", Evidence: []int64{5}}), Result{}, "update: text must be 1 to 500 characters"},
		{"confidence above 1", answerJSON("s", answerAction{Action: "add", Layer: 1, Text: "t", Confidence: ptr(1.5), Evidence: []int64{5}}), Result{}, "/actions/0/confidence"},
		{"confidence below 0", answerJSON("s", answerAction{Action: "update", Insight: "i1", Text: "t", Confidence: ptr(-0.1), Evidence: []int64{5}}), Result{}, "/actions/0/confidence"},
		{"too many actions", answerJSON("s", slices.Repeat([]answerAction{{Action: "reinforce", Insight: "i1", Evidence: []int64{5}}}, memory.MaxActionsPerRun+1)...), Result{}, "/actions"},
		{"summary too long", answerJSON(strings.Repeat("s", memory.MaxSummary+1)), Result{}, "/summary"},
		{"summary missing", `{"actions":[]}`, Result{}, "summary"},
		{"unknown property", `{"summary":"s","actions":[],"notes":"x"}`, Result{}, "notes"},
		{"malformed JSON", `{"summary":"s","actions":[`, Result{}, "the answer is not JSON"},
		{"prose", `Here is the memory update you asked for.`, Result{}, "the answer is not JSON"},
		{"empty answer", ``, Result{}, "the answer is not JSON"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := parseAnswer(schema, c.answer, handles, w)
			if c.err == "" {
				if err != nil {
					t.Fatalf("parseAnswer: %v", err)
				}
				if !reflect.DeepEqual(got, c.want) {
					t.Fatalf("parseAnswer =\n %+v\nwant\n %+v", got, c.want)
				}
				return
			}
			if err == nil {
				t.Fatalf("parseAnswer = %+v, want an error containing %q", got, c.err)
			}
			if !strings.Contains(err.Error(), c.err) {
				t.Errorf("error %q does not contain %q", err, c.err)
			}
		})
	}
}

// With no candidates the schema has no insight property, so naming one fails validation.
func TestParseAnswerWithoutCandidates(t *testing.T) {
	_, _, w := shown()
	schema := compileFor(t, nil, w)
	for _, text := range []string{
		answerJSON("s", answerAction{Action: "reinforce", Insight: "i1", Evidence: []int64{5}}),
		answerJSON("s", answerAction{Action: "add", Layer: 1, Text: "t", Insight: "i1", Evidence: []int64{5}}),
	} {
		if r, err := parseAnswer(schema, text, map[string]memory.Insight{}, w); err == nil {
			t.Errorf("parseAnswer(%s) = %+v, want an error", text, r)
		}
	}
	r, err := parseAnswer(schema, answerJSON("s", answerAction{Action: "invalidate", Evidence: []int64{5}}), map[string]memory.Insight{}, w)
	if err == nil || !strings.Contains(err.Error(), "is not one of the insights shown") {
		t.Errorf("invalidate without an insight = %+v, %v", r, err)
	}
}

// A handle the schema allows but the run was not shown (the schema and the handles disagree) is
// still refused by the second check, not mapped to an empty id.
func TestParseAnswerChecksHandlesBeyondTheSchema(t *testing.T) {
	handles, _, w := shown()
	schema := compileFor(t, []string{"i1", "i2", "i3"}, w)
	_, err := parseAnswer(schema, answerJSON("s", answerAction{Action: "reinforce", Insight: "i3", Evidence: []int64{5}}), handles, w)
	if err == nil || !strings.Contains(err.Error(), `actions[0]: insight "i3" is not one of the insights shown`) {
		t.Fatalf("err = %v", err)
	}
}

func TestUserPrompt(t *testing.T) {
	handles, order, w := shown()
	p := userPrompt(w, order, handles)
	for _, want := range []string{
		"i1 [layer 5 Integration Rhythms, confidence 0.70] Drinks tea every morning\n",
		"i2 [layer 1 Narrative Core, confidence 0.90] Lives in Lisbon\n",
		"Summary of the conversation so far:\nThey talked about mornings.\n",
		"5 user: I moved to Porto last month.\n",
		"6 assistant: How do you like Porto?\n",
		"7 user: Love it. Still tea first thing.\n",
		"8 assistant: Nice.\n",
	} {
		if !strings.Contains(p, want) {
			t.Errorf("prompt lacks %q:\n%s", want, p)
		}
	}
	for _, id := range []string{idTea, idCity} {
		if strings.Contains(p, id) {
			t.Errorf("prompt reveals insight id %s:\n%s", id, p)
		}
	}
	// Candidates in the order given, messages in seq order.
	if strings.Index(p, "i1 [") > strings.Index(p, "i2 [") || strings.Index(p, "5 user") > strings.Index(p, "8 assistant") {
		t.Errorf("prompt out of order:\n%s", p)
	}

	empty := userPrompt(Work{After: 0, Through: 1, Messages: []Message{{Seq: 1, Role: "user", Content: "hi"}}}, nil, nil)
	want := "Known insights:\n(none yet)\n\nSummary of the conversation so far:\n(none yet)\n\nNew messages:\n1 user: hi\n"
	if empty != want {
		t.Errorf("prompt of a first run =\n%q\nwant\n%q", empty, want)
	}
}

func TestAnswerSchema(t *testing.T) {
	type prop = map[string]any
	decode := func(t *testing.T, handles []string, w Work) prop {
		t.Helper()
		var s prop
		if err := json.Unmarshal([]byte(answerSchema(handles, w)), &s); err != nil {
			t.Fatal(err)
		}
		return s
	}
	actionProps := func(s prop) prop {
		return s["properties"].(prop)["actions"].(prop)["items"].(prop)["properties"].(prop)
	}
	w := Work{After: 10, Through: 14}
	for _, handles := range [][]string{{"i1"}, {"i1", "i2", "i3"}, {"i2", "i1"}} {
		t.Run(fmt.Sprint(handles), func(t *testing.T) {
			p := actionProps(decode(t, handles, w))
			var enum []string
			for _, h := range p["insight"].(prop)["enum"].([]any) {
				enum = append(enum, h.(string))
			}
			if !slices.Equal(enum, handles) {
				t.Errorf("insight enum = %v, want exactly %v", enum, handles)
			}
			items := p["evidence"].(prop)["items"].(prop)
			if items["minimum"] != float64(11) || items["maximum"] != float64(14) {
				t.Errorf("evidence items = %v, want 11 to 14", items)
			}
			layer := p["layer"].(prop)
			if layer["minimum"] != float64(1) || layer["maximum"] != float64(7) {
				t.Errorf("layer = %v", layer)
			}
		})
	}
	t.Run("no handles", func(t *testing.T) {
		p := actionProps(decode(t, nil, w))
		if _, ok := p["insight"]; ok {
			t.Errorf("schema names insights though none were shown: %v", p["insight"])
		}
	})
	// The schema never carries anything but handles: no ids to copy.
	handles, order, w2 := shown()
	text := answerSchema(order, w2)
	for _, i := range handles {
		if strings.Contains(text, i.ID) || strings.Contains(text, i.Text) {
			t.Errorf("schema carries insight %s", i.ID)
		}
	}
}

func TestSystemPromptListsEveryLayer(t *testing.T) {
	for _, l := range memory.Layers() {
		line := fmt.Sprintf("%d %s: %s\n", int(l), l.Name(), l.About())
		if !strings.Contains(systemPrompt, line) {
			t.Errorf("system prompt lacks %q", line)
		}
	}
}
