package monitorapi

import (
	"errors"
	"github.com/helixhq/helix/shared/monitoring"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/helixhq/helix/shared/fault"
)

// FuzzQueryDecode: any query string of the spend, usage and feed endpoints either decodes to a
// selection within the documented bounds (a known grouping, to after from, at most 366 days, a
// limit in range, a positive id) or fails with invalid_field; it never panics.
func FuzzQueryDecode(f *testing.F) {
	for _, seed := range []string{
		"", "group_by=day", "group_by=user&from=2026-01-01&to=2026-02-01", "from=2026-03-01T10:00:00%2B02:00",
		"to=0001-01-01", "from=9999-12-31", "from=9999-12-31T23:59:59.999999999Z", "limit=1000", "limit=-1",
		"after=" + EncodeCursor(42), "after=b3AxLjA", "after=%00", "group_by=day&group_by=day", "%zz", "a=b;c=d",
		"from=2026-02-30", "from=2026-03-01T00:00:00-23:59", "to=2026-03-01T00:00:00+23:59",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		r := httptest.NewRequest(http.MethodGet, "/x", nil)
		r.URL.RawQuery = raw
		check := func(err error) bool {
			if err == nil {
				return true
			}
			var fe *fault.Error
			if !errors.As(err, &fe) || fe.Code != fault.InvalidField || fe.Message == "" {
				t.Fatalf("query %q: error %v (%T), want invalid_field", raw, err, err)
			}
			return false
		}
		q, err := params(r, "group_by", "from", "to", "limit")
		if check(err) {
			if s, err := decodeSpend(q, now); check(err) {
				wantRange(t, raw, s)
				if !slices.Contains([]monitoring.GroupBy{"operation", "user", "model", "day"}, s.By) || s.Limit < 1 || s.Limit > maxGroups || s.UserID != "" {
					t.Fatalf("query %q: spend %+v", raw, s)
				}
			}
		}
		q, err = params(r, "group_by", "from", "to")
		if check(err) {
			if u, err := decodeUsage(q, "alice", now); check(err) {
				wantRange(t, raw, u)
				if (u.By != "day" && u.By != "operation") || u.UserID != "alice" {
					t.Fatalf("query %q: usage %+v", raw, u)
				}
			}
		}
		q, err = params(r, "limit", "after")
		if check(err) {
			if id, err := DecodeCursor(q.Get("after")); check(err) && (id < 0 || (id == 0) != (q.Get("after") == "")) {
				t.Fatalf("query %q: cursor %d", raw, id)
			}
			if n, err := intValue(q, "limit", defaultFeed, 1, maxFeed); check(err) && (n < 1 || n > maxFeed) {
				t.Fatalf("query %q: limit %d", raw, n)
			}
		}
	})
}

func wantRange(t *testing.T, raw string, q monitoring.Query) {
	t.Helper()
	if !q.To.After(q.From) || q.To.Sub(q.From) > MaxSpan || q.From.Location() != time.UTC || q.To.Location() != time.UTC {
		t.Fatalf("query %q: range %s..%s", raw, q.From, q.To)
	}
}
