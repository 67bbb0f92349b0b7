package chat

import (
	"fmt"
	"strings"

	"github.com/helixhq/helix/shared/memory"
)

// persona is who Helix is, the first part of every chat system prompt.
const persona = `You are Helix, a personal AI assistant. You are warm, direct and honest: you say
when you do not know something, you never invent facts about the user, and you keep answers as
short as the question allows. You remember what the user told you in earlier conversations; use
that knowledge when it helps, naturally, without reciting it or saying where it came from.`

// PromptInput is what a chat system prompt is built from.
type PromptInput struct {
	Trust     float64 // 0 to 1; the deployment's creator is 1
	Creator   bool    // the user is the deployment's creator
	SteppedUp bool    // the creator verified a step-up in this conversation
	// Summary covers the turns older than the history the model is sent ("" when none).
	Summary  string
	Insights []memory.Insight
	// MemoryBytes bounds the insights' text in the prompt.
	MemoryBytes int
}

// SystemPrompt builds the system prompt of a chat reply: the persona, the user's trust level,
// the conversation's summary, and the learned insights that fit in the memory budget (in the
// order given: most salient and relevant first).
func SystemPrompt(in PromptInput) string {
	var b strings.Builder
	b.WriteString(persona)
	fmt.Fprintf(&b, "\n\nThe user's trust level is %.2f on a scale where 1.00 is the owner of this deployment.", in.Trust)
	switch {
	case in.Creator && in.SteppedUp:
		b.WriteString(" The user is the deployment's creator and has verified it in this conversation.")
	case in.Creator:
		b.WriteString(" The user is the deployment's creator.")
	}
	if in.Summary != "" {
		b.WriteString("\n\nEarlier in this conversation (a summary):\n")
		b.WriteString(in.Summary)
	}
	if lines := insightLines(in.Insights, in.MemoryBytes); len(lines) > 0 {
		b.WriteString("\n\nWhat you know about the user from earlier conversations:\n")
		b.WriteString(strings.Join(lines, "\n"))
	}
	return b.String()
}

// insightLines renders insights as "- [Layer] text" while they fit in max bytes.
func insightLines(insights []memory.Insight, max int) []string {
	var out []string
	used := 0
	for _, i := range insights {
		if !i.Active() {
			continue // never shown once invalidated or superseded
		}
		line := "- [" + i.Layer.Name() + "] " + i.Text
		if used+len(line)+1 > max {
			break
		}
		used += len(line) + 1
		out = append(out, line)
	}
	return out
}
