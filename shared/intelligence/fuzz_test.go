package intelligence_test

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"sort"
	"testing"

	"github.com/helixhq/helix/shared/fault"
	"github.com/helixhq/helix/shared/httpapi"
	"github.com/helixhq/helix/shared/intelligence"
)

// FuzzIntelligenceInputs sends arbitrary bodies through what the HTTP layer does with them:
// strict decoding into the operation's input, then Validate. Neither may panic; the only
// errors are a 400/413 *fault.Error from decoding or a *intelligence.FieldError from
// validation. An input that validates must then run against the offline model without a repair
// (what `make dev` does for any valid request).
func FuzzIntelligenceInputs(f *testing.F) {
	ops := intelligence.Operations()
	sort.Slice(ops, func(i, j int) bool { return ops[i].OperationID() < ops[j].OperationID() })
	for i, op := range ops {
		f.Add(uint8(i), []byte(sample[op.OperationID()]))
		f.Add(uint8(i), []byte(withApproval(sample[op.OperationID()], "x")))
		for _, tc := range validateCases[op.OperationID()] {
			if len(tc.body) < 2048 {
				f.Add(uint8(i), []byte(tc.body))
			}
		}
	}
	for _, s := range []string{``, `{}`, `null`, `[]`, `"x"`, `{"tasks":null}`, `{"series":[{"timestamp":"2026-11-01T00:00:00Z","value":1e308}]}`,
		`{"duration_minutes":480,"window_start":"0001-01-01T00:00:00Z","window_end":"9999-12-31T23:59:59Z"}`,
		`{"duration_minutes":5,"window_start":"2026-11-23T09:00:00+14:00","window_end":"2026-11-23T09:00:00-12:00"}`,
		`{"subject":"a","recipient_context":"b"} {}`, `{"body":"\u0000"}`, `{"approval_id":1}`} {
		f.Add(uint8(0), []byte(s))
	}
	f.Fuzz(func(t *testing.T, which uint8, body []byte) {
		op := ops[int(which)%len(ops)]
		in := op.NewInput()
		err := httpapi.DecodeJSONBytes(bytes.NewReader(body), in)
		if err != nil {
			var he *fault.Error
			if !errors.As(err, &he) || (httpapi.StatusOf(he.Code) != http.StatusBadRequest && httpapi.StatusOf(he.Code) != http.StatusRequestEntityTooLarge) {
				t.Fatalf("%s: decode error %v (%T), want a 400 or 413 *fault.Error", op.OperationID(), err, err)
			}
			return
		}
		if err := in.Validate(); err != nil {
			var fe *intelligence.FieldError
			if !errors.As(err, &fe) || fe.Field == "" {
				t.Fatalf("%s: Validate error %v (%T), want a *FieldError", op.OperationID(), err, err)
			}
			return
		}
		out, err := op.Run(context.Background(), offlineExec(), in, baseCall("fuzz"))
		if err != nil {
			t.Fatalf("%s: a valid input failed with the offline model: %v\nbody %s", op.OperationID(), err, body)
		}
		if out.Repaired {
			t.Fatalf("%s: the offline answer needed a repair\nbody %s", op.OperationID(), body)
		}
	})
}
