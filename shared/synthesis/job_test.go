package synthesis_test

import (
	"strings"
	"testing"

	"github.com/helixhq/helix/shared/ident"
	"github.com/helixhq/helix/shared/synthesis"
)

const convID = "0b7f5b56-6c1e-4d49-9a59-3c3b9f0f6a11"

func TestParseJob(t *testing.T) {
	valid := synthesis.Job{ConversationID: convID, UserID: "user-1", ThroughSeq: 12}
	cases := []struct {
		name string
		body string
		want synthesis.Job // zero when an error is expected
		err  string        // a part of the error; "" for success
	}{
		{"valid", `{"conversation_id":"` + convID + `","user_id":"user-1","through_seq":12}`, valid, ""},
		{"valid with whitespace", " \n{ \"through_seq\": 12, \"user_id\": \"user-1\", \"conversation_id\": \"" + convID + "\" }\n", valid, ""},
		{"unicode user id", `{"conversation_id":"` + convID + `","user_id":"ユーザー","through_seq":1}`,
			synthesis.Job{ConversationID: convID, UserID: "ユーザー", ThroughSeq: 1}, ""},
		{"unknown field", `{"conversation_id":"` + convID + `","user_id":"user-1","through_seq":12,"thru":3}`, synthesis.Job{}, "unknown field"},
		{"trailing object", `{"conversation_id":"` + convID + `","user_id":"user-1","through_seq":12}{"conversation_id":"` + convID + `","user_id":"other","through_seq":1}`, synthesis.Job{}, "job"},
		{"trailing garbage", `{"conversation_id":"` + convID + `","user_id":"user-1","through_seq":12} x`, synthesis.Job{}, "job"},
		{"empty body", ``, synthesis.Job{}, "not a JSON object"},
		{"null", `null`, synthesis.Job{}, "conversation_id"},
		{"array", `[]`, synthesis.Job{}, "not a JSON object"},
		{"truncated", `{"conversation_id":"` + convID, synthesis.Job{}, "not a JSON object"},
		{"missing conversation_id", `{"user_id":"user-1","through_seq":12}`, synthesis.Job{}, "conversation_id must be a UUID"},
		{"missing user_id", `{"conversation_id":"` + convID + `","through_seq":12}`, synthesis.Job{}, "user_id must not be empty"},
		{"missing through_seq", `{"conversation_id":"` + convID + `","user_id":"user-1"}`, synthesis.Job{}, "through_seq must be positive"},
		{"non-UUID conversation_id", `{"conversation_id":"conv-1","user_id":"user-1","through_seq":12}`, synthesis.Job{}, "conversation_id must be a UUID"},
		{"conversation_id not a string", `{"conversation_id":7,"user_id":"user-1","through_seq":12}`, synthesis.Job{}, "not a JSON object"},
		{"through_seq a string", `{"conversation_id":"` + convID + `","user_id":"user-1","through_seq":"12"}`, synthesis.Job{}, "not a JSON object"},
		{"through_seq fractional", `{"conversation_id":"` + convID + `","user_id":"user-1","through_seq":1.5}`, synthesis.Job{}, "not a JSON object"},
		{"through_seq zero", `{"conversation_id":"` + convID + `","user_id":"user-1","through_seq":0}`, synthesis.Job{}, "through_seq must be positive"},
		{"through_seq negative", `{"conversation_id":"` + convID + `","user_id":"user-1","through_seq":-4}`, synthesis.Job{}, "through_seq must be positive"},
		{"user_id empty", `{"conversation_id":"` + convID + `","user_id":"","through_seq":12}`, synthesis.Job{}, "user_id must not be empty"},
		{"user_id too long", `{"conversation_id":"` + convID + `","user_id":"` + strings.Repeat("u", ident.MaxLen+1) + `","through_seq":12}`, synthesis.Job{}, "user_id must be at most"},
		{"user_id NUL escape", `{"conversation_id":"` + convID + `","user_id":"a\u0000b","through_seq":12}`, synthesis.Job{}, "user_id must not contain control characters"},
		{"user_id control character", `{"conversation_id":"` + convID + `","user_id":"a\nb","through_seq":12}`, synthesis.Job{}, "user_id must not contain control characters"},
		// encoding/json turns invalid UTF-8 into U+FFFD: accepting it would name another user.
		{"user_id raw invalid UTF-8", "{\"conversation_id\":\"" + convID + "\",\"user_id\":\"a\xffb\",\"through_seq\":12}", synthesis.Job{}, "UTF-8"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := synthesis.ParseJob([]byte(c.body))
			if c.err == "" {
				if err != nil || got != c.want {
					t.Fatalf("ParseJob = %+v, %v; want %+v", got, err, c.want)
				}
				return
			}
			if err == nil {
				t.Fatalf("ParseJob = %+v, want an error containing %q", got, c.err)
			}
			if !strings.Contains(err.Error(), c.err) {
				t.Errorf("error %q does not contain %q", err, c.err)
			}
			if got != (synthesis.Job{}) {
				t.Errorf("a failed parse returned %+v, want the zero Job", got)
			}
		})
	}
}

func TestJobValidate(t *testing.T) {
	ok := synthesis.Job{ConversationID: convID, UserID: "u", ThroughSeq: 1}
	with := func(f func(*synthesis.Job)) synthesis.Job { j := ok; f(&j); return j }
	cases := []struct {
		name string
		job  synthesis.Job
		err  string
	}{
		{"valid", ok, ""},
		{"longest user id", with(func(j *synthesis.Job) { j.UserID = strings.Repeat("u", ident.MaxLen) }), ""},
		{"uppercase UUID", with(func(j *synthesis.Job) { j.ConversationID = strings.ToUpper(convID) }), ""},
		{"empty conversation", with(func(j *synthesis.Job) { j.ConversationID = "" }), "conversation_id"},
		{"UUID with junk", with(func(j *synthesis.Job) { j.ConversationID = convID + "x" }), "conversation_id"},
		{"empty user", with(func(j *synthesis.Job) { j.UserID = "" }), "user_id"},
		{"user too long", with(func(j *synthesis.Job) { j.UserID = strings.Repeat("u", ident.MaxLen+1) }), "user_id"},
		{"user invalid UTF-8", with(func(j *synthesis.Job) { j.UserID = "a\xc3" }), "user_id must be valid UTF-8"},
		{"user NUL", with(func(j *synthesis.Job) { j.UserID = "a\x00" }), "user_id must not contain control characters"},
		{"seq zero", with(func(j *synthesis.Job) { j.ThroughSeq = 0 }), "through_seq"},
		{"seq negative", with(func(j *synthesis.Job) { j.ThroughSeq = -1 }), "through_seq"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := c.job.Validate()
			switch {
			case c.err == "" && err != nil:
				t.Fatalf("Validate = %v, want nil", err)
			case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
				t.Fatalf("Validate = %v, want an error containing %q", err, c.err)
			}
		})
	}
}

func TestJobBodyRoundTrips(t *testing.T) {
	j := synthesis.Job{ConversationID: convID, UserID: `quote " and \ backslash`, ThroughSeq: 1 << 53}
	got, err := synthesis.ParseJob(j.Body())
	if err != nil || got != j {
		t.Fatalf("ParseJob(Body()) = %+v, %v; want %+v", got, err, j)
	}
}

func FuzzParseJob(f *testing.F) {
	f.Add([]byte(`{"conversation_id":"` + convID + `","user_id":"user-1","through_seq":12}`))
	f.Add([]byte(`{"conversation_id":"` + convID + `","user_id":"a\u0000","through_seq":1}`))
	f.Add([]byte("{\"conversation_id\":\"" + convID + "\",\"user_id\":\"\xff\",\"through_seq\":1}"))
	f.Add([]byte(`{"conversation_id":"` + convID + `","user_id":"u","through_seq":9223372036854775807}`))
	f.Add([]byte(`{"conversation_id":"` + convID + `","user_id":"u","through_seq":0}`))
	f.Add([]byte(`{"conversation_id":"` + convID + `","user_id":"u","through_seq":1} {}`))
	f.Add([]byte(`{"Conversation_ID":"` + convID + `","USER_ID":"u","through_seq":1}`))
	f.Add([]byte(`{"conversation_id":"x","user_id":"u","through_seq":1,"extra":true}`))
	f.Add([]byte(`null`))
	f.Add([]byte(``))
	f.Add([]byte(`{"user_id":"\ud800","conversation_id":"` + convID + `","through_seq":3}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		j, err := synthesis.ParseJob(body)
		if err != nil {
			if j != (synthesis.Job{}) {
				t.Fatalf("error %v with a non-zero Job %+v", err, j)
			}
			return
		}
		if err := j.Validate(); err != nil {
			t.Fatalf("ParseJob accepted %+v, which does not Validate: %v", j, err)
		}
		back, err := synthesis.ParseJob(j.Body())
		if err != nil || back != j {
			t.Fatalf("ParseJob(Body()) = %+v, %v; want %+v", back, err, j)
		}
	})
}
