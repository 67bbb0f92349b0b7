// Package intelapi serves the intelligence operations over HTTP (POST /intelligence/...), in the
// route function.
package intelapi

import (
	"encoding/json"
	"net/http"

	"github.com/helixhq/helix/shared/auth"
	"github.com/helixhq/helix/shared/execute"
	"github.com/helixhq/helix/shared/httpapi"
	"github.com/helixhq/helix/shared/httpapi/execapi"
	"github.com/helixhq/helix/shared/intelligence"
	"github.com/helixhq/helix/shared/money"
)

// Register adds POST /intelligence/<path> for every intelligence operation.
func Register(s *httpapi.Server, ex intelligence.Executor) {
	for _, op := range intelligence.Operations() {
		s.Handle("POST /intelligence"+op.Path(), handler(op, ex))
	}
}

func handler(op intelligence.Operation, ex intelligence.Executor) httpapi.Handler {
	return func(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
		in := op.NewInput()
		if err := httpapi.DecodeJSON(r, in); err != nil {
			return err
		}
		if err := in.Validate(); err != nil {
			return err
		}
		if err := intelligence.CheckEnvelope(in); err != nil {
			return err
		}
		out, err := op.Run(r.Context(), ex, in, execute.Call{
			RequestID: httpapi.RequestID(r.Context()),
			UserID:    p.UserID,
		})
		if execapi.WritePending(w, err) {
			return nil
		}
		if err != nil {
			return err
		}
		body, err := merge(out.Result, meta{
			OperationID: out.OperationID, Model: out.Model, CostUSD: out.Cost, RequestID: out.RequestID,
			Repaired: out.Repaired, FallbackUsed: out.FallbackUsed, Offline: out.Offline,
		})
		if err != nil {
			return err
		}
		w.Header().Set("X-Helix-Cost-Usd", out.Cost.String())
		httpapi.WriteJSON(w, http.StatusOK, body)
		return nil
	}
}

// meta is what every intelligence response carries besides its result.
type meta struct {
	OperationID  string     `json:"operation_id"`
	Model        string     `json:"model"`
	CostUSD      money.Nano `json:"cost_usd"`
	RequestID    string     `json:"request_id"`
	Repaired     bool       `json:"repaired,omitempty"`
	FallbackUsed bool       `json:"fallback_used,omitempty"`
	// Offline is set when the local offline model answered (no provider key configured).
	Offline bool `json:"offline,omitempty"`
}

// merge puts the result's fields and the meta fields in one JSON object.
func merge(result any, m meta) (json.RawMessage, error) {
	fields := map[string]json.RawMessage{}
	for _, part := range []any{result, m} {
		b, err := json.Marshal(part)
		if err != nil {
			return nil, err
		}
		if err := json.Unmarshal(b, &fields); err != nil {
			return nil, err
		}
	}
	return json.Marshal(fields)
}
