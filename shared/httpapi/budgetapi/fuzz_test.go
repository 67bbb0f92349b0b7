package budgetapi_test

import (
	"bytes"
	"errors"
	"net/http"
	"testing"

	"github.com/helixhq/helix/shared/fault"
	"github.com/helixhq/helix/shared/httpapi"
	"github.com/helixhq/helix/shared/httpapi/budgetapi"
	"github.com/helixhq/helix/shared/money"
)

// FuzzLimitsUpdateDecode: arbitrary bodies of PUT /admin/budgets/{user_id} never panic, fail
// only with a 400 or 413, and a body that decodes carries only amounts that are valid money:
// non-negative, at most nine decimals, and printed back as the same amount.
func FuzzLimitsUpdateDecode(f *testing.F) {
	for _, seed := range []string{
		`{"daily_limit":50,"warning_threshold":25}`,
		`{"daily_limit":12.5}`,
		`{"warning_threshold":0.000000001}`,
		`{"daily_limit":0}`,
		`{"daily_limit":100000}`,
		`{"daily_limit":1e-7}`,
		`{"daily_limit":-1}`,
		`{"daily_limit":0.0000000001}`,
		`{"daily_limit":1e30}`,
		`{"daily_limit":"50"}`,
		`{"daily_limit":null}`,
		`{"daily_limit":true}`,
		`{"daily_limit":[50]}`,
		`{"daily_limit":{}}`,
		`{"limit":50}`,
		`{"daily_limit":50}{"daily_limit":50}`,
		`{"daily_limit":50,"daily_limit":-5}`,
		`{}`, `null`, `[]`, ``, `{"daily_limit":`, "\x00",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var u budgetapi.LimitsUpdate
		err := httpapi.DecodeJSONBytes(bytes.NewReader(body), &u)
		if err != nil {
			var he *fault.Error
			if !errors.As(err, &he) {
				t.Fatalf("body %q: error %v (%T) is not an *fault.Error", body, err, err)
			}
			if httpapi.StatusOf(he.Code) != http.StatusBadRequest && httpapi.StatusOf(he.Code) != http.StatusRequestEntityTooLarge {
				t.Fatalf("body %q: status %d (%s), want 400 or 413", body, httpapi.StatusOf(he.Code), he)
			}
			if he.Code == "" || he.Message == "" {
				t.Fatalf("body %q: error without code or message: %+v", body, he)
			}
			return
		}
		for name, v := range map[string]*money.Nano{"daily_limit": u.DailyLimit, "warning_threshold": u.WarningThreshold} {
			if v == nil {
				continue
			}
			if *v < 0 || *v > 1_000_000_000*money.PerUSD {
				t.Fatalf("body %q: %s decoded to %d", body, name, *v)
			}
			back, err := money.ParseUSD(v.String())
			if err != nil || back != *v {
				t.Fatalf("body %q: %s = %d prints as %s, which parses to %d, %v", body, name, *v, v, back, err)
			}
		}
	})
}
