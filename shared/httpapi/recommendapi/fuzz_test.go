package recommendapi_test

import (
	"errors"
	"net/http"
	"net/url"
	"testing"

	"github.com/helixhq/helix/shared/fault"
	"github.com/helixhq/helix/shared/httpapi"
	"github.com/helixhq/helix/shared/httpapi/recommendapi"
)

// clientError fails unless err is nil or a *fault.Error a client gets a 400 or 413 for.
func clientError(t *testing.T, in string, err error) {
	t.Helper()
	if err == nil {
		return
	}
	var f *fault.Error
	if !errors.As(err, &f) {
		t.Fatalf("%q: %v (%T) is not a *fault.Error", in, err, err)
	}
	if s := httpapi.StatusOf(f.Code); s != http.StatusBadRequest && s != http.StatusRequestEntityTooLarge {
		t.Fatalf("%q: status %d (%s)", in, s, f)
	}
}

// FuzzDecision: any body of approve or reject decodes or fails with a 400/413; a note that
// decodes is within MaxNote and holds no NUL.
func FuzzDecision(f *testing.F) {
	for _, s := range []string{``, `{}`, `{"note":"ok"}`, `{"note":""}`, `{"note":null}`, `{"note":1}`,
		`{"note":"a\u0000b"}`, `{"reason":"x"}`, `[]`, `null`, `{`, "\xff", `{"note":"x"}{}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		d, err := recommendapi.ParseDecision(body)
		clientError(t, string(body), err)
		if err == nil {
			n := 0
			for _, r := range d.Note {
				if r == 0 {
					t.Fatalf("%q: NUL in note", body)
				}
				n++
			}
			if n > recommendapi.MaxNote {
				t.Fatalf("%q: note of %d characters", body, n)
			}
		}
	})
}

// FuzzListQueryAndID: any query string and path id parse or fail with a 400; what parses is a
// known status and a bounded limit, and a canonical UUID.
func FuzzListQueryAndID(f *testing.F) {
	for _, s := range []string{"", "status=pending", "status=all&limit=500", "limit=501", "limit=-1", "status=%00", "limit=1e3"} {
		f.Add(s, "00000000-0000-4000-8000-000000000000")
	}
	f.Add("status=stale", "{00000000-0000-4000-8000-000000000000}")
	f.Add("status=applied", "urn:uuid:00000000-0000-4000-8000-000000000000")
	f.Fuzz(func(t *testing.T, raw, id string) {
		q, _ := url.ParseQuery(raw)
		lq, err := recommendapi.ParseListQuery(q)
		clientError(t, raw, err)
		if err == nil {
			switch lq.Status {
			case "", "pending", "approved", "rejected", "stale", "applied":
			default:
				t.Fatalf("%q: status %q", raw, lq.Status)
			}
			if lq.Limit < 1 || lq.Limit > 500 {
				t.Fatalf("%q: limit %d", raw, lq.Limit)
			}
		}
		got, err := recommendapi.ParseID(id)
		clientError(t, id, err)
		if err == nil && len(got) != 36 {
			t.Fatalf("%q parsed as %q", id, got)
		}
	})
}
