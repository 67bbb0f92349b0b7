package intelligence

import (
	"fmt"
	"strings"
)

// Task is a to-do item.
type Task struct {
	ID              string `json:"id"`
	Title           string `json:"title"`
	Due             string `json:"due,omitempty"` // RFC 3339
	EstimateMinutes int    `json:"estimate_minutes,omitempty"`
	Notes           string `json:"notes,omitempty"`
}

// TaskPrioritizeInput is the body of POST /intelligence/task/prioritize.
type TaskPrioritizeInput struct {
	Envelope
	Tasks   []Task `json:"tasks"`
	Context string `json:"context,omitempty"`
}

// Validate implements Input.
func (in *TaskPrioritizeInput) Validate() error {
	if len(in.Tasks) == 0 {
		return missing("tasks")
	}
	if len(in.Tasks) > maxItems {
		return invalid("tasks", "must have at most %d tasks", maxItems)
	}
	seen := map[string]bool{}
	for i := range in.Tasks {
		t := &in.Tasks[i]
		if err := text("tasks.id", &t.ID, 100, true); err != nil {
			return err
		}
		if seen[t.ID] {
			return invalid("tasks.id", "%q appears twice", t.ID)
		}
		seen[t.ID] = true
		if err := text("tasks.title", &t.Title, 500, true); err != nil {
			return err
		}
		if _, err := timestamp("tasks.due", t.Due, false); err != nil {
			return err
		}
		if t.EstimateMinutes < 0 {
			return invalid("tasks.estimate_minutes", "must not be negative")
		}
		if err := text("tasks.notes", &t.Notes, 2000, false); err != nil {
			return err
		}
	}
	return text("context", &in.Context, maxText, false)
}

// RankedTask is one task in priority order.
type RankedTask struct {
	ID       string `json:"id"`
	Priority string `json:"priority"`
	Reason   string `json:"reason"`
}

// TaskPrioritizeResult is the result of task-prioritize.
type TaskPrioritizeResult struct {
	Ordered []RankedTask `json:"ordered"`
}

func taskPrioritize() Operation {
	return &spec[*TaskPrioritizeInput, TaskPrioritizeResult]{
		operationID: "task-prioritize",
		path:        "/task/prioritize",
		newInput:    func() *TaskPrioritizeInput { return &TaskPrioritizeInput{} },
		system:      "You order a to-do list by what should be done first, considering deadlines, effort and impact.",
		prompt: func(in *TaskPrioritizeInput) string {
			var b strings.Builder
			b.WriteString("Prioritize these tasks, most important first:")
			for _, t := range in.Tasks {
				fmt.Fprintf(&b, "\n- id %s: %s", t.ID, t.Title)
				if t.Due != "" {
					fmt.Fprintf(&b, " (due %s)", t.Due)
				}
				if t.EstimateMinutes > 0 {
					fmt.Fprintf(&b, " (about %d min)", t.EstimateMinutes)
				}
				if t.Notes != "" {
					fmt.Fprintf(&b, " notes: %s", t.Notes)
				}
			}
			if in.Context != "" {
				b.WriteString("\nContext: " + in.Context)
			}
			return b.String()
		},
		// The ids are an enum of the ids given: the model cannot rank a task it made up.
		schema: func(in *TaskPrioritizeInput) string {
			ids := make([]string, len(in.Tasks))
			for i, t := range in.Tasks {
				ids[i] = t.ID
			}
			return fmt.Sprintf(`{
  "type": "object", "additionalProperties": false, "required": ["ordered"],
  "properties": {"ordered": {"type": "array", "minItems": 1, "maxItems": %d, "items": {
    "type": "object", "additionalProperties": false, "required": ["id", "priority", "reason"],
    "properties": {"id": {"enum": %s}, "priority": {"enum": ["high", "medium", "low"]}, "reason": {"type": "string"}}}}}}`,
				len(ids), jsonList(ids))
		},
		check: func(_ *TaskPrioritizeInput, out *TaskPrioritizeResult) error {
			seen := map[string]bool{}
			for _, t := range out.Ordered {
				if seen[t.ID] {
					return fmt.Errorf("task %q is ranked twice; rank each task once", t.ID)
				}
				seen[t.ID] = true
			}
			return nil
		},
	}
}

// TaskBreakdownInput is the body of POST /intelligence/task/breakdown.
type TaskBreakdownInput struct {
	Envelope
	Task     string `json:"task"`
	Context  string `json:"context,omitempty"`
	MaxSteps int    `json:"max_steps,omitempty"`
}

// Validate implements Input.
func (in *TaskBreakdownInput) Validate() error {
	if err := text("task", &in.Task, 2000, true); err != nil {
		return err
	}
	if err := text("context", &in.Context, maxText, false); err != nil {
		return err
	}
	return count("max_steps", &in.MaxSteps, 8, 1, 20)
}

// Step is one step of a broken-down task.
type Step struct {
	Title           string `json:"title"`
	EstimateMinutes int    `json:"estimate_minutes"`
	Details         string `json:"details"`
}

// TaskBreakdownResult is the result of task-breakdown.
type TaskBreakdownResult struct {
	Steps []Step `json:"steps"`
}

func taskBreakdown() Operation {
	return &spec[*TaskBreakdownInput, TaskBreakdownResult]{
		operationID: "task-breakdown",
		path:        "/task/breakdown",
		newInput:    func() *TaskBreakdownInput { return &TaskBreakdownInput{} },
		system:      "You break a task into small, concrete, ordered steps that one person can do.",
		prompt: func(in *TaskBreakdownInput) string {
			p := fmt.Sprintf("Break this task into at most %d steps: %s", in.MaxSteps, in.Task)
			if in.Context != "" {
				p += "\nContext: " + in.Context
			}
			return p
		},
		schema: func(in *TaskBreakdownInput) string {
			return fmt.Sprintf(`{
  "type": "object", "additionalProperties": false, "required": ["steps"],
  "properties": {"steps": {"type": "array", "minItems": 1, "maxItems": %d, "items": {
    "type": "object", "additionalProperties": false, "required": ["title", "estimate_minutes", "details"],
    "properties": {"title": {"type": "string", "minLength": 1}, "estimate_minutes": {"type": "integer", "minimum": 0, "maximum": 10000},
                   "details": {"type": "string"}}}}}}`, in.MaxSteps)
		},
	}
}
