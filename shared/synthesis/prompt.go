package synthesis

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/helixhq/helix/shared/memory"
)

// systemPrompt explains the job to the model: consolidate, do not accumulate.
var systemPrompt = func() string {
	var b strings.Builder
	b.WriteString(`You maintain Helix's long-term memory of one user. You are given what is already
known about the user (insights with handles such as i1), a summary of the conversation so far,
and the conversation's new messages, numbered. Update the memory so it stays true and small:

- "add" a new insight only for something durable the user revealed about themselves that no
  known insight already covers (layer, text, confidence 0 to 1, evidence = message numbers);
- "reinforce" a known insight the new messages confirm (insight, evidence);
- "update" a known insight whose details changed: give its new full text (insight, text,
  confidence, evidence); the old version is kept as history;
- "invalidate" a known insight the new messages show is no longer true and nothing replaces
  (insight, evidence).

Prefer reinforce or update over add. Routines (layer 5) fade unless reinforced: reinforce one
the new messages show is still followed, invalidate one they show was dropped. Never record the assistant's words as facts about the user.
Never record secrets, keys or passwords. Write insights in the third person, one fact each.
Also write a short summary of the whole conversation so far (the old summary plus the new
messages), for the assistant to read later. The seven layers are:
`)
	for _, l := range memory.Layers() {
		fmt.Fprintf(&b, "%d %s: %s\n", int(l), l.Name(), l.About())
	}
	return b.String()
}()

// userPrompt lays out the run's material.
func userPrompt(w Work, order []string, handles map[string]memory.Insight) string {
	var b strings.Builder
	b.WriteString("Known insights:\n")
	if len(order) == 0 {
		b.WriteString("(none yet)\n")
	}
	for _, h := range order {
		i := handles[h]
		fmt.Fprintf(&b, "%s [layer %d %s, confidence %.2f] %s\n", h, int(i.Layer), i.Layer.Name(), i.Confidence, i.Text)
	}
	b.WriteString("\nSummary of the conversation so far:\n")
	if w.Summary == "" {
		b.WriteString("(none yet)\n")
	} else {
		b.WriteString(w.Summary + "\n")
	}
	b.WriteString("\nNew messages:\n")
	for _, m := range w.Messages {
		fmt.Fprintf(&b, "%d %s: %s\n", m.Seq, m.Role, m.Content)
	}
	return b.String()
}

// answerSchema is the JSON Schema of the answer: the handles the model may name, and the message
// numbers it may cite as evidence, are enumerated, so a made-up id or message fails validation.
func answerSchema(handles []string, w Work) string {
	action := map[string]any{
		"type":                 "object",
		"additionalProperties": false,
		"required":             []string{"action", "evidence"},
		"properties": map[string]any{
			"action":     map[string]any{"enum": []string{"add", "reinforce", "update", "invalidate"}},
			"layer":      map[string]any{"type": "integer", "minimum": int(memory.MinLayer), "maximum": int(memory.MaxLayer)},
			"text":       map[string]any{"type": "string", "minLength": 1, "maxLength": memory.MaxInsightText},
			"confidence": map[string]any{"type": "number", "minimum": 0, "maximum": 1},
			"evidence": map[string]any{
				"type": "array", "minItems": 1, "maxItems": memory.MaxEvidencePerItem,
				"items": map[string]any{"type": "integer", "minimum": w.After + 1, "maximum": w.Through},
			},
		},
	}
	if len(handles) > 0 {
		action["properties"].(map[string]any)["insight"] = map[string]any{"enum": handles}
	}
	schema := map[string]any{
		"type":                 "object",
		"additionalProperties": false,
		"required":             []string{"summary", "actions"},
		"properties": map[string]any{
			"summary": map[string]any{"type": "string", "maxLength": memory.MaxSummary},
			"actions": map[string]any{"type": "array", "maxItems": memory.MaxActionsPerRun, "items": action},
		},
	}
	b, _ := json.Marshal(schema)
	return string(b)
}
