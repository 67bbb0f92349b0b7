// Package memory is what Helix learns about each user: insights in seven layers, each with the
// evidence (the messages) it rests on, a confidence, and a history. Memory consolidates rather
// than accumulates: a synthesis run adds, reinforces, updates or invalidates insights, and an
// insight that stops being true is kept, marked invalidated and linked to what replaced it, but
// never shown to a model again. Users can list, export and erase what was learned.
package memory

import (
	"fmt"
	"math"
	"time"

	"github.com/helixhq/helix/shared/fault"
)

// Layer is one of the seven layers of memory.
type Layer int

// The layers, numbered as stored.
const (
	NarrativeCore      Layer = 1 // identity, life story
	EmotionalMemory    Layer = 2 // emotionally salient moments
	RelationalMemory   Layer = 3 // people and trust
	ProspectiveSelf    Layer = 4 // goals, hopes, fears
	IntegrationRhythms Layer = 5 // routines; decays and reconsolidates over time
	Transformation     Layer = 6 // changes the user is going through
	PurposeEngine      Layer = 7 // meaning, values
	MinLayer, MaxLayer       = NarrativeCore, PurposeEngine
)

var layerNames = map[Layer]string{
	NarrativeCore:      "Narrative Core",
	EmotionalMemory:    "Emotional Memory",
	RelationalMemory:   "Relational Memory",
	ProspectiveSelf:    "Prospective Self",
	IntegrationRhythms: "Integration Rhythms",
	Transformation:     "Transformation",
	PurposeEngine:      "Purpose Engine",
}

// layerAbout says what belongs in a layer, for the synthesis prompt.
var layerAbout = map[Layer]string{
	NarrativeCore:      "identity and life story",
	EmotionalMemory:    "emotionally salient moments",
	RelationalMemory:   "the people in the user's life and how much they trust them",
	ProspectiveSelf:    "goals, hopes and fears",
	IntegrationRhythms: "routines and habits",
	Transformation:     "changes the user is going through",
	PurposeEngine:      "meaning and values",
}

// Valid reports whether l is one of the seven layers.
func (l Layer) Valid() bool { return l >= MinLayer && l <= MaxLayer }

// Name is the layer's name ("Narrative Core").
func (l Layer) Name() string { return layerNames[l] }

// About says what the layer holds.
func (l Layer) About() string { return layerAbout[l] }

// Layers lists the seven layers in order.
func Layers() []Layer {
	return []Layer{NarrativeCore, EmotionalMemory, RelationalMemory, ProspectiveSelf, IntegrationRhythms, Transformation, PurposeEngine}
}

// ParseLayer reads a layer number from outside (a query parameter).
func ParseLayer(n int) (Layer, error) {
	l := Layer(n)
	if !l.Valid() {
		return 0, fault.Errorf(fault.InvalidField, "layer must be 1 to 7, got %d", n)
	}
	return l, nil
}

// Evidence is a message an insight rests on.
type Evidence struct {
	ConversationID string
	Seq            int64
}

// Insight is one thing learned about a user.
type Insight struct {
	ID                 string
	UserID             string
	Layer              Layer
	Text               string
	Confidence         float64 // 0 to 1
	ReinforcementCount int     // how many times later evidence confirmed it
	ValidFrom          time.Time
	LastReinforcedAt   time.Time
	// InvalidatedAt is set when the insight stopped being true; SupersededBy names the insight
	// that replaced it, if one did.
	InvalidatedAt time.Time
	SupersededBy  string
	Evidence      []Evidence
	CreatedAt     time.Time
	UpdatedAt     time.Time
}

// Active reports whether the insight is still believed.
func (i Insight) Active() bool { return i.InvalidatedAt.IsZero() }

// Routines fade: an Integration Rhythms insight (a habit, a routine) is only as strong as its
// recent evidence. Its strength is its confidence halved every RoutineHalfLife since it was last
// reinforced; below FadedStrength it stays out of chat prompts, but synthesis still sees it, so
// new evidence of the routine reconsolidates it (a reinforce restores its strength) and evidence
// against it invalidates it. Other layers do not fade.
const (
	RoutineHalfLife = 14 * 24 * time.Hour
	FadedStrength   = 0.1
)

// Strength is the insight's confidence as of now, after a routine's fading.
func (i Insight) Strength(now time.Time) float64 {
	if i.Layer != IntegrationRhythms || !now.After(i.LastReinforcedAt) {
		return i.Confidence
	}
	return i.Confidence * math.Pow(0.5, float64(now.Sub(i.LastReinforcedAt))/float64(RoutineHalfLife))
}

// Listing asks for a user's insights.
type Listing struct {
	Layer              Layer // 0: every layer
	IncludeInvalidated bool
}

// ExportedEvidence is a piece of evidence with the message it points at.
type ExportedEvidence struct {
	ConversationID string
	Seq            int64
	Kind           Kind
	Message        string // the message's text ("" if the message is gone)
}

// ErrNotFound also covers another user's insight: ids of others are not revealed.
var ErrNotFound = fault.New(fault.NotFound, "no such insight")

// Limits on what a synthesis run may write, so a model's answer cannot flood a user's memory.
const (
	MaxInsightText     = 500 // characters
	MaxActionsPerRun   = 40
	MaxSummary         = 4000 // characters
	MaxEvidencePerItem = 50
)

// Kind is what a synthesis action does.
type Kind string

// Action kinds.
const (
	Add        Kind = "add"
	Reinforce  Kind = "reinforce"
	Update     Kind = "update"
	Invalidate Kind = "invalidate"
)

// Action is one change a synthesis run makes to a user's memory.
type Action struct {
	Kind Kind
	// InsightID names the existing insight (reinforce, update, invalidate).
	InsightID string
	// Layer and Text describe a new insight (add) or an insight's new text (update).
	Layer Layer
	Text  string
	// Confidence of a new or updated insight.
	Confidence float64
	// Evidence are the message seqs (in the synthesized conversation) the action rests on.
	Evidence []int64
}

// Check validates an action against the insights the run was shown (known, by id) and the
// messages it covered (seqs in (after, through]).
func (a Action) Check(known map[string]Insight, after, through int64) error {
	switch a.Kind {
	case Add:
		if !a.Layer.Valid() {
			return fmt.Errorf("add: layer must be 1 to 7")
		}
	case Reinforce, Update, Invalidate:
		if _, ok := known[a.InsightID]; !ok {
			return fmt.Errorf("%s: insight %q is not one of the insights shown", a.Kind, a.InsightID)
		}
	default:
		return fmt.Errorf("unknown action %q", a.Kind)
	}
	if a.Kind == Add || a.Kind == Update {
		if a.Text == "" || len([]rune(a.Text)) > MaxInsightText {
			return fmt.Errorf("%s: text must be 1 to %d characters", a.Kind, MaxInsightText)
		}
		if a.Confidence < 0 || a.Confidence > 1 {
			return fmt.Errorf("%s: confidence must be between 0 and 1", a.Kind)
		}
	}
	if len(a.Evidence) == 0 || len(a.Evidence) > MaxEvidencePerItem {
		return fmt.Errorf("%s: evidence must name 1 to %d messages", a.Kind, MaxEvidencePerItem)
	}
	for _, s := range a.Evidence {
		if s <= after || s > through {
			return fmt.Errorf("%s: evidence message %d is not one of the new messages (%d to %d)", a.Kind, s, after+1, through)
		}
	}
	return nil
}
