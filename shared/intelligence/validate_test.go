package intelligence_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/helixhq/helix/shared/httpapi"
	"github.com/helixhq/helix/shared/intelligence"
)

// validateCase is one body for one operation's Validate: it is valid (field "") or fails on
// field, as missing or as invalid. check, when set, inspects a valid input after Validate
// (defaults filled, text trimmed).
type validateCase struct {
	name    string
	body    string
	field   string
	missing bool
	check   func(t *testing.T, in intelligence.Input)
}

// repeat returns n copies of item joined by commas (for JSON arrays).
func repeat(item string, n int) string {
	return strings.TrimSuffix(strings.Repeat(item+",", n), ",")
}

// tasks returns n tasks with distinct ids as a JSON array's items.
func tasks(n int) string {
	parts := make([]string, n)
	for i := range parts {
		parts[i] = fmt.Sprintf(`{"id":"t%d","title":"task %d"}`, i, i)
	}
	return strings.Join(parts, ",")
}

// points returns n series points an hour apart.
func points(n int) string {
	parts := make([]string, n)
	for i := range parts {
		parts[i] = fmt.Sprintf(`{"timestamp":"2026-11-01T%02d:%02d:00Z","value":%d}`, (i/60)%24, i%60, i)
	}
	return strings.Join(parts, ",")
}

func long(n int) string { return strings.Repeat("x", n) }

var validateCases = map[string][]validateCase{
	"email-compose": {
		{name: "minimal gets defaults", body: `{"subject":"  Project Update ","recipient_context":" Manager"}`,
			check: func(t *testing.T, in intelligence.Input) {
				c := in.(*intelligence.EmailComposeInput)
				if c.Subject != "Project Update" || c.RecipientContext != "Manager" {
					t.Errorf("not trimmed: %q %q", c.Subject, c.RecipientContext)
				}
				if c.Tone != "neutral" || c.Length != "medium" || c.Suggestions != 2 {
					t.Errorf("defaults: tone %q length %q suggestions %d, want neutral medium 2", c.Tone, c.Length, c.Suggestions)
				}
			}},
		{name: "every option", body: `{"subject":"s","recipient_context":"r","key_points":[" a "],"tone":"persuasive","length":"long","suggestions":3}`,
			check: func(t *testing.T, in intelligence.Input) {
				c := in.(*intelligence.EmailComposeInput)
				if c.Tone != "persuasive" || c.Length != "long" || c.Suggestions != 3 || c.KeyPoints[0] != "a" {
					t.Errorf("options changed: %+v", c)
				}
			}},
		{name: "subject of 300 multi-byte characters", body: `{"subject":"` + strings.Repeat("é", 300) + `","recipient_context":"r"}`},
		{name: "no subject", body: `{"recipient_context":"r"}`, field: "subject", missing: true},
		{name: "blank subject", body: `{"subject":"   ","recipient_context":"r"}`, field: "subject", missing: true},
		{name: "subject too long", body: `{"subject":"` + strings.Repeat("é", 301) + `","recipient_context":"r"}`, field: "subject"},
		{name: "no recipient", body: `{"subject":"s"}`, field: "recipient_context", missing: true},
		{name: "recipient too long", body: `{"subject":"s","recipient_context":"` + long(4001) + `"}`, field: "recipient_context"},
		{name: "21 key points", body: `{"subject":"s","recipient_context":"r","key_points":[` + repeat(`"p"`, 21) + `]}`, field: "key_points"},
		{name: "empty key point", body: `{"subject":"s","recipient_context":"r","key_points":["a",""]}`, field: "key_points", missing: true},
		{name: "key point too long", body: `{"subject":"s","recipient_context":"r","key_points":["` + long(501) + `"]}`, field: "key_points"},
		{name: "unknown tone", body: `{"subject":"s","recipient_context":"r","tone":"angry"}`, field: "tone"},
		{name: "tone is case-sensitive", body: `{"subject":"s","recipient_context":"r","tone":"Formal"}`, field: "tone"},
		{name: "unknown length", body: `{"subject":"s","recipient_context":"r","length":"epic"}`, field: "length"},
		{name: "4 suggestions", body: `{"subject":"s","recipient_context":"r","suggestions":4}`, field: "suggestions"},
		{name: "negative suggestions", body: `{"subject":"s","recipient_context":"r","suggestions":-1}`, field: "suggestions"},
	},
	"email-classify": {
		{name: "body only", body: `{"body":" hello "}`, check: func(t *testing.T, in intelligence.Input) {
			if c := in.(*intelligence.EmailClassifyInput); c.Body != "hello" {
				t.Errorf("body %q, want trimmed", c.Body)
			}
		}},
		{name: "body of 20000 characters", body: `{"body":"` + long(20000) + `"}`},
		{name: "no body", body: `{"subject":"s"}`, field: "body", missing: true},
		{name: "body too long", body: `{"body":"` + long(20001) + `"}`, field: "body"},
		{name: "subject too long", body: `{"body":"b","subject":"` + long(301) + `"}`, field: "subject"},
		{name: "from too long", body: `{"body":"b","from":"` + long(301) + `"}`, field: "from"},
		{name: "31 categories", body: `{"body":"b","categories":[` + repeat(`"c"`, 31) + `]}`, field: "categories"},
		{name: "blank category", body: `{"body":"b","categories":[" "]}`, field: "categories", missing: true},
		{name: "category too long", body: `{"body":"b","categories":["` + long(101) + `"]}`, field: "categories"},
	},
	"email-respond": {
		{name: "accept gets defaults", body: `{"original":{"body":"Lunch?"},"intent":"accept"}`,
			check: func(t *testing.T, in intelligence.Input) {
				c := in.(*intelligence.EmailRespondInput)
				if c.Tone != "neutral" || c.Suggestions != 2 {
					t.Errorf("defaults: tone %q suggestions %d", c.Tone, c.Suggestions)
				}
			}},
		{name: "custom with instructions", body: `{"original":{"body":"Lunch?"},"instructions":"say maybe next week"}`,
			check: func(t *testing.T, in intelligence.Input) {
				if c := in.(*intelligence.EmailRespondInput); c.Intent != "custom" {
					t.Errorf("intent %q, want the default custom", c.Intent)
				}
			}},
		{name: "no original body", body: `{"original":{"subject":"s"},"intent":"accept"}`, field: "original.body", missing: true},
		{name: "no original at all", body: `{"intent":"accept"}`, field: "original.body", missing: true},
		{name: "original subject too long", body: `{"original":{"body":"b","subject":"` + long(301) + `"},"intent":"accept"}`, field: "original.subject"},
		{name: "original from too long", body: `{"original":{"body":"b","from":"` + long(301) + `"},"intent":"accept"}`, field: "original.from"},
		{name: "custom without instructions", body: `{"original":{"body":"b"},"intent":"custom"}`, field: "instructions", missing: true},
		{name: "instructions too long", body: `{"original":{"body":"b"},"instructions":"` + long(4001) + `"}`, field: "instructions"},
		{name: "unknown intent", body: `{"original":{"body":"b"},"intent":"maybe"}`, field: "intent"},
		{name: "persuasive is not a reply tone", body: `{"original":{"body":"b"},"intent":"accept","tone":"persuasive"}`, field: "tone"},
		{name: "4 suggestions", body: `{"original":{"body":"b"},"intent":"accept","suggestions":4}`, field: "suggestions"},
	},
	"calendar-prep": {
		{name: "title only", body: `{"title":"Review"}`},
		{name: "with offset", body: `{"title":"Review","start":"2026-11-23T09:00:00+01:00"}`},
		{name: "no title", body: `{"agenda":"a"}`, field: "title", missing: true},
		{name: "start not RFC 3339", body: `{"title":"t","start":"2026-11-23 09:00"}`, field: "start"},
		{name: "start in words", body: `{"title":"t","start":"tomorrow"}`, field: "start"},
		{name: "51 attendees", body: `{"title":"t","attendees":[` + repeat(`"a"`, 51) + `]}`, field: "attendees"},
		{name: "agenda too long", body: `{"title":"t","agenda":"` + long(4001) + `"}`, field: "agenda"},
		{name: "notes too long", body: `{"title":"t","notes":"` + long(4001) + `"}`, field: "notes"},
	},
	"calendar-time": {
		{name: "minimal", body: `{"duration_minutes":30,"window_start":"2026-11-23T09:00:00Z","window_end":"2026-11-23T17:00:00Z"}`},
		{name: "31 days", body: `{"duration_minutes":30,"window_start":"2026-11-01T00:00:00Z","window_end":"2026-12-02T00:00:00Z"}`},
		{name: "no duration", body: `{"window_start":"2026-11-23T09:00:00Z","window_end":"2026-11-23T17:00:00Z"}`, field: "duration_minutes", missing: true},
		{name: "4 minutes", body: `{"duration_minutes":4,"window_start":"2026-11-23T09:00:00Z","window_end":"2026-11-23T17:00:00Z"}`, field: "duration_minutes"},
		{name: "481 minutes", body: `{"duration_minutes":481,"window_start":"2026-11-23T00:00:00Z","window_end":"2026-11-24T17:00:00Z"}`, field: "duration_minutes"},
		{name: "negative minutes", body: `{"duration_minutes":-30,"window_start":"2026-11-23T09:00:00Z","window_end":"2026-11-23T17:00:00Z"}`, field: "duration_minutes"},
		{name: "no window start", body: `{"duration_minutes":30,"window_end":"2026-11-23T17:00:00Z"}`, field: "window_start", missing: true},
		{name: "no window end", body: `{"duration_minutes":30,"window_start":"2026-11-23T09:00:00Z"}`, field: "window_end", missing: true},
		{name: "bad window start", body: `{"duration_minutes":30,"window_start":"23/11/2026 09:00","window_end":"2026-11-23T17:00:00Z"}`, field: "window_start"},
		{name: "date without time", body: `{"duration_minutes":30,"window_start":"2026-11-23","window_end":"2026-11-24T17:00:00Z"}`, field: "window_start"},
		{name: "end before start", body: `{"duration_minutes":30,"window_start":"2026-11-23T17:00:00Z","window_end":"2026-11-23T09:00:00Z"}`, field: "window_end"},
		{name: "window shorter than the meeting", body: `{"duration_minutes":60,"window_start":"2026-11-23T09:00:00Z","window_end":"2026-11-23T09:59:00Z"}`, field: "window_end"},
		{name: "more than 31 days", body: `{"duration_minutes":30,"window_start":"2026-11-01T00:00:00Z","window_end":"2026-12-02T00:00:01Z"}`, field: "window_end"},
		{name: "busy without end", body: `{"duration_minutes":30,"window_start":"2026-11-23T09:00:00Z","window_end":"2026-11-23T17:00:00Z",
			"busy":[{"start":"2026-11-23T10:00:00Z"}]}`, field: "busy.end", missing: true},
		{name: "busy with a bad start", body: `{"duration_minutes":30,"window_start":"2026-11-23T09:00:00Z","window_end":"2026-11-23T17:00:00Z",
			"busy":[{"start":"10am","end":"2026-11-23T11:00:00Z"}]}`, field: "busy.start"},
		{name: "busy ending before it starts", body: `{"duration_minutes":30,"window_start":"2026-11-23T09:00:00Z","window_end":"2026-11-23T17:00:00Z",
			"busy":[{"start":"2026-11-23T11:00:00Z","end":"2026-11-23T11:00:00Z"}]}`, field: "busy.end"},
		{name: "201 busy intervals", body: `{"duration_minutes":30,"window_start":"2026-11-23T09:00:00Z","window_end":"2026-11-23T17:00:00Z",
			"busy":[` + repeat(`{"start":"2026-11-23T10:00:00Z","end":"2026-11-23T11:00:00Z"}`, 201) + `]}`, field: "busy"},
		{name: "timezone too long", body: `{"duration_minutes":30,"window_start":"2026-11-23T09:00:00Z","window_end":"2026-11-23T17:00:00Z","timezone":"` + long(65) + `"}`, field: "timezone"},
		{name: "preferences too long", body: `{"duration_minutes":30,"window_start":"2026-11-23T09:00:00Z","window_end":"2026-11-23T17:00:00Z","preferences":"` + long(4001) + `"}`, field: "preferences"},
		{name: "51 attendees", body: `{"duration_minutes":30,"window_start":"2026-11-23T09:00:00Z","window_end":"2026-11-23T17:00:00Z","attendees":[` + repeat(`"a"`, 51) + `]}`, field: "attendees"},
	},
	"task-prioritize": {
		{name: "one task", body: `{"tasks":[{"id":" t1 ","title":" Write "}]}`, check: func(t *testing.T, in intelligence.Input) {
			c := in.(*intelligence.TaskPrioritizeInput)
			if c.Tasks[0].ID != "t1" || c.Tasks[0].Title != "Write" {
				t.Errorf("not trimmed: %+v", c.Tasks[0])
			}
		}},
		{name: "100 tasks", body: `{"tasks":[` + tasks(100) + `]}`},
		{name: "no tasks", body: `{"context":"c"}`, field: "tasks", missing: true},
		{name: "empty task list", body: `{"tasks":[]}`, field: "tasks", missing: true},
		{name: "101 tasks", body: `{"tasks":[` + tasks(101) + `]}`, field: "tasks"},
		{name: "task without id", body: `{"tasks":[{"title":"x"}]}`, field: "tasks.id", missing: true},
		{name: "duplicate ids", body: `{"tasks":[{"id":"a","title":"x"},{"id":"a","title":"y"}]}`, field: "tasks.id"},
		{name: "duplicate ids after trimming", body: `{"tasks":[{"id":"a","title":"x"},{"id":" a ","title":"y"}]}`, field: "tasks.id"},
		{name: "id too long", body: `{"tasks":[{"id":"` + long(101) + `","title":"x"}]}`, field: "tasks.id"},
		{name: "task without title", body: `{"tasks":[{"id":"a"}]}`, field: "tasks.title", missing: true},
		{name: "bad due date", body: `{"tasks":[{"id":"a","title":"x","due":"Friday"}]}`, field: "tasks.due"},
		{name: "negative estimate", body: `{"tasks":[{"id":"a","title":"x","estimate_minutes":-5}]}`, field: "tasks.estimate_minutes"},
		{name: "notes too long", body: `{"tasks":[{"id":"a","title":"x","notes":"` + long(2001) + `"}]}`, field: "tasks.notes"},
		{name: "context too long", body: `{"tasks":[{"id":"a","title":"x"}],"context":"` + long(4001) + `"}`, field: "context"},
	},
	"task-breakdown": {
		{name: "default steps", body: `{"task":"Plan"}`, check: func(t *testing.T, in intelligence.Input) {
			if c := in.(*intelligence.TaskBreakdownInput); c.MaxSteps != 8 {
				t.Errorf("max_steps %d, want the default 8", c.MaxSteps)
			}
		}},
		{name: "20 steps", body: `{"task":"Plan","max_steps":20}`},
		{name: "no task", body: `{"max_steps":3}`, field: "task", missing: true},
		{name: "task too long", body: `{"task":"` + long(2001) + `"}`, field: "task"},
		{name: "21 steps", body: `{"task":"Plan","max_steps":21}`, field: "max_steps"},
		{name: "negative steps", body: `{"task":"Plan","max_steps":-1}`, field: "max_steps"},
		{name: "context too long", body: `{"task":"Plan","context":"` + long(4001) + `"}`, field: "context"},
	},
	"analytics-summary": {
		{name: "zero is a value", body: `{"metrics":[{"name":"churn","value":0}]}`},
		{name: "no metrics", body: `{"period":"p"}`, field: "metrics", missing: true},
		{name: "201 metrics", body: `{"metrics":[` + repeat(`{"name":"m","value":1}`, 201) + `]}`, field: "metrics"},
		{name: "metric without name", body: `{"metrics":[{"value":1}]}`, field: "metrics.name", missing: true},
		{name: "metric without value", body: `{"metrics":[{"name":"m"}]}`, field: "metrics.value", missing: true},
		{name: "null value", body: `{"metrics":[{"name":"m","value":null}]}`, field: "metrics.value", missing: true},
		{name: "unit too long", body: `{"metrics":[{"name":"m","value":1,"unit":"` + long(33) + `"}]}`, field: "metrics.unit"},
		{name: "period too long", body: `{"metrics":[{"name":"m","value":1}],"period":"` + long(101) + `"}`, field: "period"},
		{name: "audience too long", body: `{"metrics":[{"name":"m","value":1}],"audience":"` + long(301) + `"}`, field: "audience"},
	},
	"analytics-anomaly": {
		{name: "three points get defaults", body: `{"series":[` + points(3) + `]}`, check: func(t *testing.T, in intelligence.Input) {
			if c := in.(*intelligence.AnalyticsAnomalyInput); c.Sensitivity != "medium" {
				t.Errorf("sensitivity %q, want the default medium", c.Sensitivity)
			}
		}},
		{name: "1000 points", body: `{"series":[` + points(1000) + `]}`},
		{name: "no series", body: `{"metric":"m"}`, field: "series", missing: true},
		{name: "two points", body: `{"series":[` + points(2) + `]}`, field: "series"},
		{name: "1001 points", body: `{"series":[` + points(1001) + `]}`, field: "series"},
		{name: "point without timestamp", body: `{"series":[` + points(2) + `,{"value":1}]}`, field: "series.timestamp", missing: true},
		{name: "bad timestamp", body: `{"series":[` + points(2) + `,{"timestamp":"1700000000","value":1}]}`, field: "series.timestamp"},
		{name: "point without value", body: `{"series":[` + points(2) + `,{"timestamp":"2026-11-05T00:00:00Z"}]}`, field: "series.value", missing: true},
		{name: "unknown sensitivity", body: `{"series":[` + points(3) + `],"sensitivity":"extreme"}`, field: "sensitivity"},
		{name: "metric too long", body: `{"series":[` + points(3) + `],"metric":"` + long(301) + `"}`, field: "metric"},
	},
}

func TestValidate(t *testing.T) {
	ops := operations(t)
	if len(validateCases) != len(ops) {
		t.Fatalf("validate cases for %d operations, there are %d", len(validateCases), len(ops))
	}
	for opID, cases := range validateCases {
		op, ok := ops[opID]
		if !ok {
			t.Fatalf("no operation %q", opID)
		}
		for _, tc := range cases {
			t.Run(opID+"/"+tc.name, func(t *testing.T) {
				in := op.NewInput()
				if err := httpapi.DecodeJSONBytes(strings.NewReader(tc.body), in); err != nil {
					t.Fatalf("decode: %v", err)
				}
				err := in.Validate()
				if tc.field == "" {
					if err != nil {
						t.Fatalf("Validate: %v, want nil", err)
					}
					if tc.check != nil {
						tc.check(t, in)
					}
					return
				}
				var fe *intelligence.FieldError
				if !errors.As(err, &fe) {
					t.Fatalf("Validate = %v (%T), want a *FieldError for %s", err, err, tc.field)
				}
				if fe.Field != tc.field || fe.Missing != tc.missing {
					t.Errorf("FieldError{Field: %q, Missing: %v}, want {%q, %v}: %v", fe.Field, fe.Missing, tc.field, tc.missing, fe)
				}
				if fe.Message == "" || !strings.HasPrefix(fe.Error(), tc.field+": ") {
					t.Errorf("Error() = %q", fe.Error())
				}
			})
		}
	}
}

// Every sample body used elsewhere must itself be valid, or those tests test nothing.
func TestSamplesAreValid(t *testing.T) {
	ops := operations(t)
	if len(sample) != len(ops) {
		t.Fatalf("%d samples for %d operations", len(sample), len(ops))
	}
	for id, op := range ops {
		decodeInput(t, op, sample[id])
	}
}

// A window exactly as long as the meeting has room for it: the slot that fills it is one the
// result filter itself accepts (start == window_start, end == window_end).
func TestCalendarTimeWindowExactlyTheMeeting(t *testing.T) {
	in := &intelligence.CalendarTimeInput{DurationMinutes: 30, WindowStart: "2026-11-23T09:00:00Z", WindowEnd: "2026-11-23T09:30:00Z"}
	if err := in.Validate(); err != nil {
		t.Errorf("a window exactly as long as the meeting is refused (%v); calendar.go's check "+
			"!end.After(start.Add(d)) should be end.Before(start.Add(d))", err)
	}
}
