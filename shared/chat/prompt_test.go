package chat

import (
	"strings"
	"testing"
	"time"

	"github.com/helixhq/helix/shared/memory"
)

// insight is an active insight with an id that must never reach a prompt.
func insight(id string, l memory.Layer, text string) memory.Insight {
	return memory.Insight{ID: id, UserID: "alice", Layer: l, Text: text, Confidence: 0.9, ReinforcementCount: 3}
}

func invalidated(i memory.Insight) memory.Insight {
	i.InvalidatedAt = time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	i.SupersededBy = "ins-replacement-id"
	return i
}

const (
	creatorLine  = "The user is the deployment's creator."
	verifiedLine = "The user is the deployment's creator and has verified it in this conversation."
	summaryHead  = "\n\nEarlier in this conversation (a summary):\n"
	memoryHead   = "\n\nWhat you know about the user from earlier conversations:\n"
)

// TestSystemPrompt: what each part of the input puts in the prompt, and what it must not.
func TestSystemPrompt(t *testing.T) {
	lisbon := insight("ins-0001-lisbon", memory.ProspectiveSelf, "Plans a trip to Lisbon in May")
	sister := insight("ins-0002-sister", memory.RelationalMemory, "Has a sister called Ana")
	runner := insight("ins-0003-runner", memory.IntegrationRhythms, "Runs every morning before work")
	lisbonLine := "- [Prospective Self] Plans a trip to Lisbon in May"
	sisterLine := "- [Relational Memory] Has a sister called Ana"
	runnerLine := "- [Integration Rhythms] Runs every morning before work"

	tests := []struct {
		name    string
		in      PromptInput
		want    []string // substrings, in this order
		wantNot []string
	}{
		{
			name:    "default trust",
			in:      PromptInput{Trust: 0.5},
			want:    []string{persona, "The user's trust level is 0.50 on a scale where 1.00 is the owner of this deployment."},
			wantNot: []string{"creator", summaryHead, memoryHead},
		},
		{
			name:    "stored trust rounds to two places",
			in:      PromptInput{Trust: 0.876},
			want:    []string{"trust level is 0.88 "},
			wantNot: []string{"creator"},
		},
		{
			name:    "creator",
			in:      PromptInput{Trust: 1, Creator: true},
			want:    []string{"trust level is 1.00 ", creatorLine},
			wantNot: []string{"verified"},
		},
		{
			name: "creator stepped up",
			in:   PromptInput{Trust: 1, Creator: true, SteppedUp: true},
			want: []string{"trust level is 1.00 ", verifiedLine},
		},
		{
			// A step-up only ever means something for the creator.
			name:    "stepped up but not the creator",
			in:      PromptInput{Trust: 0.5, SteppedUp: true},
			want:    []string{"trust level is 0.50 "},
			wantNot: []string{"creator", "verified"},
		},
		{
			name: "summary",
			in:   PromptInput{Trust: 0.5, Summary: "The user asked about flights to Lisbon; Helix listed three."},
			want: []string{"trust level", summaryHead + "The user asked about flights to Lisbon; Helix listed three."},
		},
		{
			name: "insights in the order given, within the budget",
			in: PromptInput{Trust: 0.5, Insights: []memory.Insight{sister, lisbon, runner},
				MemoryBytes: 1000},
			want:    []string{memoryHead + sisterLine + "\n" + lisbonLine + "\n" + runnerLine},
			wantNot: []string{"ins-0001", "ins-0002", "ins-0003", "0.9"},
		},
		{
			name: "insights cut to the budget",
			in: PromptInput{Trust: 0.5, Insights: []memory.Insight{lisbon, sister, runner},
				MemoryBytes: len(lisbonLine) + 1 + len(sisterLine) + 1},
			want:    []string{memoryHead + lisbonLine + "\n" + sisterLine},
			wantNot: []string{runnerLine, "ins-000"},
		},
		{
			name:    "no memory budget: no insights",
			in:      PromptInput{Trust: 0.5, Insights: []memory.Insight{lisbon, sister}, MemoryBytes: 0},
			wantNot: []string{memoryHead, "Lisbon", "Ana"},
		},
		{
			name: "invalidated insights never appear",
			in: PromptInput{Trust: 0.5, MemoryBytes: 1000,
				Insights: []memory.Insight{invalidated(lisbon), sister}},
			want:    []string{memoryHead + sisterLine},
			wantNot: []string{"Lisbon", "ins-replacement-id", "ins-0001", "ins-0002"},
		},
		{
			name:    "only invalidated insights: no memory section",
			in:      PromptInput{Trust: 0.5, MemoryBytes: 1000, Insights: []memory.Insight{invalidated(lisbon)}},
			wantNot: []string{memoryHead, "Lisbon"},
		},
		{
			name: "every part, in order",
			in: PromptInput{Trust: 1, Creator: true, SteppedUp: true, Summary: "Talked about Lisbon.",
				Insights: []memory.Insight{lisbon}, MemoryBytes: 1000},
			want: []string{persona, "trust level is 1.00 ", verifiedLine, summaryHead + "Talked about Lisbon.", memoryHead + lisbonLine},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := SystemPrompt(tt.in)
			if !strings.HasPrefix(got, persona) {
				t.Errorf("prompt does not start with the persona:\n%s", got)
			}
			rest := got
			for _, w := range tt.want {
				i := strings.Index(rest, w)
				if i < 0 {
					t.Errorf("prompt lacks %q (or has it out of order):\n%s", w, got)
					continue
				}
				rest = rest[i+len(w):]
			}
			for _, w := range tt.wantNot {
				if strings.Contains(got, w) {
					t.Errorf("prompt contains %q:\n%s", w, got)
				}
			}
		})
	}
}

// TestSystemPromptMemoryEndsThePrompt: the last insight that fits is the end of the prompt, so
// nothing is appended after the bounded memory section.
func TestSystemPromptMemoryEndsThePrompt(t *testing.T) {
	got := SystemPrompt(PromptInput{Trust: 0.5, Summary: "s", MemoryBytes: 100,
		Insights: []memory.Insight{insight("x", memory.PurposeEngine, "Values honesty")}})
	if want := memoryHead + "- [Purpose Engine] Values honesty"; !strings.HasSuffix(got, want) {
		t.Errorf("prompt ends %q, want it to end with %q", got[max(0, len(got)-80):], want)
	}
}

// TestInsightLines: the budget counts each line and its newline, in bytes; the first line that
// does not fit ends the list (a later, shorter one is not squeezed in, so rank order holds).
func TestInsightLines(t *testing.T) {
	a := insight("a", memory.NarrativeCore, "Grew up in Porto")                 // "- [Narrative Core] Grew up in Porto"
	b := insight("b", memory.EmotionalMemory, "Was moved by a concert in 2025") // longer
	c := insight("c", memory.PurposeEngine, "Values honesty")                   // short
	multi := insight("m", memory.Transformation, "Está a aprender português")   // multibyte: bytes count, not runes
	lineA, lineC := "- [Narrative Core] Grew up in Porto", "- [Purpose Engine] Values honesty"
	lineM := "- [Transformation] Está a aprender português"

	tests := []struct {
		name     string
		insights []memory.Insight
		max      int
		want     []string
	}{
		{"nothing", nil, 1000, nil},
		{"zero budget", []memory.Insight{a}, 0, nil},
		{"negative budget", []memory.Insight{a}, -1, nil},
		{"exactly one line and its newline", []memory.Insight{a, c}, len(lineA) + 1, []string{lineA}},
		{"one byte short of the first", []memory.Insight{a}, len(lineA), nil},
		{"two exactly", []memory.Insight{a, c}, len(lineA) + len(lineC) + 2, []string{lineA, lineC}},
		{"stops at the first that does not fit", []memory.Insight{a, b, c}, len(lineA) + len(lineC) + 2, []string{lineA}},
		{"invalidated are skipped, not counted", []memory.Insight{invalidated(b), a}, len(lineA) + 1, []string{lineA}},
		{"bytes, not characters", []memory.Insight{multi}, len([]rune(lineM)) + 1, nil},
		{"multibyte fits by bytes", []memory.Insight{multi}, len(lineM) + 1, []string{lineM}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := insightLines(tt.insights, tt.max)
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") || len(got) != len(tt.want) {
				t.Errorf("insightLines(max %d) = %q, want %q", tt.max, got, tt.want)
			}
		})
	}
}
