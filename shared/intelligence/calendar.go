package intelligence

import (
	"fmt"
	"strings"
	"time"
)

// CalendarPrepInput is the body of POST /intelligence/calendar/prep.
type CalendarPrepInput struct {
	Envelope
	Title     string   `json:"title"`
	Start     string   `json:"start,omitempty"` // RFC 3339
	Attendees []string `json:"attendees,omitempty"`
	Agenda    string   `json:"agenda,omitempty"`
	Notes     string   `json:"notes,omitempty"`
}

// Validate implements Input.
func (in *CalendarPrepInput) Validate() error {
	if err := text("title", &in.Title, maxShort, true); err != nil {
		return err
	}
	if _, err := timestamp("start", in.Start, false); err != nil {
		return err
	}
	if err := texts("attendees", in.Attendees, maxShort, 50); err != nil {
		return err
	}
	if err := text("agenda", &in.Agenda, maxText, false); err != nil {
		return err
	}
	return text("notes", &in.Notes, maxText, false)
}

// CalendarPrepResult is the result of calendar-prep.
type CalendarPrepResult struct {
	Summary          string   `json:"summary"`
	TalkingPoints    []string `json:"talking_points"`
	Questions        []string `json:"questions"`
	PreparationTasks []string `json:"preparation_tasks"`
}

func calendarPrep() Operation {
	return &spec[*CalendarPrepInput, CalendarPrepResult]{
		operationID: "calendar-prep",
		path:        "/calendar/prep",
		newInput:    func() *CalendarPrepInput { return &CalendarPrepInput{} },
		system:      "You prepare a busy professional for a meeting, briefly and concretely.",
		prompt: func(in *CalendarPrepInput) string {
			p := "Prepare me for this meeting.\nTitle: " + in.Title
			if in.Start != "" {
				p += "\nStarts: " + in.Start
			}
			if len(in.Attendees) > 0 {
				p += "\nAttendees: " + strings.Join(in.Attendees, ", ")
			}
			if in.Agenda != "" {
				p += "\nAgenda: " + in.Agenda
			}
			if in.Notes != "" {
				p += "\nMy notes: " + in.Notes
			}
			return p
		},
		schema: func(*CalendarPrepInput) string {
			return `{
  "type": "object", "additionalProperties": false,
  "required": ["summary", "talking_points", "questions", "preparation_tasks"],
  "properties": {
    "summary": {"type": "string", "minLength": 1},
    "talking_points": {"type": "array", "maxItems": 10, "items": {"type": "string"}},
    "questions": {"type": "array", "maxItems": 10, "items": {"type": "string"}},
    "preparation_tasks": {"type": "array", "maxItems": 10, "items": {"type": "string"}}}}`
		},
	}
}

// Interval is a span of time, RFC 3339 at both ends.
type Interval struct {
	Start string `json:"start"`
	End   string `json:"end"`
}

// CalendarTimeInput is the body of POST /intelligence/calendar/time.
type CalendarTimeInput struct {
	Envelope
	DurationMinutes int        `json:"duration_minutes"`
	WindowStart     string     `json:"window_start"`
	WindowEnd       string     `json:"window_end"`
	Busy            []Interval `json:"busy,omitempty"`
	Attendees       []string   `json:"attendees,omitempty"`
	Preferences     string     `json:"preferences,omitempty"`
	Timezone        string     `json:"timezone,omitempty"`

	window [2]time.Time
	busy   [][2]time.Time
}

// Validate implements Input.
func (in *CalendarTimeInput) Validate() error {
	if in.DurationMinutes == 0 {
		return missing("duration_minutes")
	}
	if in.DurationMinutes < 5 || in.DurationMinutes > 480 {
		return invalid("duration_minutes", "must be between 5 and 480")
	}
	start, err := timestamp("window_start", in.WindowStart, true)
	if err != nil {
		return err
	}
	end, err := timestamp("window_end", in.WindowEnd, true)
	if err != nil {
		return err
	}
	if end.Before(start.Add(time.Duration(in.DurationMinutes) * time.Minute)) {
		return invalid("window_end", "must leave room for the meeting after window_start")
	}
	if end.Sub(start) > 31*24*time.Hour {
		return invalid("window_end", "the window may span at most 31 days")
	}
	in.window = [2]time.Time{start, end}
	if len(in.Busy) > 200 {
		return invalid("busy", "must have at most 200 intervals")
	}
	in.busy = in.busy[:0]
	for _, b := range in.Busy {
		bs, err := timestamp("busy.start", b.Start, true)
		if err != nil {
			return err
		}
		be, err := timestamp("busy.end", b.End, true)
		if err != nil {
			return err
		}
		if !be.After(bs) {
			return invalid("busy.end", "must be after busy.start")
		}
		in.busy = append(in.busy, [2]time.Time{bs, be})
	}
	if err := texts("attendees", in.Attendees, maxShort, 50); err != nil {
		return err
	}
	if err := text("preferences", &in.Preferences, maxText, false); err != nil {
		return err
	}
	return text("timezone", &in.Timezone, 64, false)
}

// Slot is a proposed meeting time.
type Slot struct {
	Start  string `json:"start"`
	End    string `json:"end"`
	Reason string `json:"reason"`
}

// CalendarTimeResult is the result of calendar-time. Slots the model proposed outside the
// window, of the wrong length or overlapping a busy interval are dropped and counted, since a
// schema cannot express those rules.
type CalendarTimeResult struct {
	Slots     []Slot `json:"slots"`
	Discarded int    `json:"discarded_slots"`
}

func calendarTime() Operation {
	return &spec[*CalendarTimeInput, CalendarTimeResult]{
		operationID: "calendar-time",
		path:        "/calendar/time",
		newInput:    func() *CalendarTimeInput { return &CalendarTimeInput{} },
		system:      "You find meeting times. Propose only times inside the window that overlap no busy interval.",
		prompt: func(in *CalendarTimeInput) string {
			var b strings.Builder
			fmt.Fprintf(&b, "Find up to 5 slots of %d minutes between %s and %s.", in.DurationMinutes, in.WindowStart, in.WindowEnd)
			if in.Timezone != "" {
				fmt.Fprintf(&b, "\nThe attendees' time zone: %s.", in.Timezone)
			}
			if len(in.Busy) > 0 {
				b.WriteString("\nBusy:")
				for _, x := range in.Busy {
					fmt.Fprintf(&b, "\n  %s to %s", x.Start, x.End)
				}
			}
			if len(in.Attendees) > 0 {
				b.WriteString("\nAttendees: " + strings.Join(in.Attendees, ", "))
			}
			if in.Preferences != "" {
				b.WriteString("\nPreferences: " + in.Preferences)
			}
			return b.String()
		},
		schema: func(*CalendarTimeInput) string {
			return `{
  "type": "object", "additionalProperties": false, "required": ["slots"],
  "properties": {"slots": {"type": "array", "maxItems": 5, "items": {
    "type": "object", "additionalProperties": false, "required": ["start", "end", "reason"],
    "properties": {"start": {"type": "string", "format": "date-time"}, "end": {"type": "string", "format": "date-time"},
                   "reason": {"type": "string"}}}}}}`
		},
		after: func(in *CalendarTimeInput, out *CalendarTimeResult) {
			kept := out.Slots[:0]
			want := time.Duration(in.DurationMinutes) * time.Minute
			for _, s := range out.Slots {
				if in.fits(s, want) {
					kept = append(kept, s)
				} else {
					out.Discarded++
				}
			}
			out.Slots = kept
		},
	}
}

func (in *CalendarTimeInput) fits(s Slot, want time.Duration) bool {
	start, err1 := time.Parse(time.RFC3339, s.Start)
	end, err2 := time.Parse(time.RFC3339, s.End)
	if err1 != nil || err2 != nil || end.Sub(start) != want || start.Before(in.window[0]) || end.After(in.window[1]) {
		return false
	}
	for _, b := range in.busy {
		if start.Before(b[1]) && b[0].Before(end) {
			return false
		}
	}
	return true
}
