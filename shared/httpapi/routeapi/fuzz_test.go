package routeapi_test

import (
	"bytes"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/helixhq/helix/shared/catalog"
	"github.com/helixhq/helix/shared/fault"
	"github.com/helixhq/helix/shared/httpapi"
	"github.com/helixhq/helix/shared/httpapi/routeapi"
	"github.com/helixhq/helix/shared/ident"
)

// checkClientError fails unless err is nil or an *fault.Error with status 400 or 413 and a code.
func checkClientError(t *testing.T, body []byte, err error) {
	t.Helper()
	if err == nil {
		return
	}
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
}

// FuzzRouteRequestDecode: arbitrary bodies of POST /ai-router/route, decoded and validated as
// the handler does, never panic and only ever fail with a 400 or 413.
func FuzzRouteRequestDecode(f *testing.F) {
	for _, seed := range []string{
		`{"operation_id":"email-compose","user_id":"test-user","estimated_tokens":100}`,
		`{"operation_id":"email-compose"}`,
		`{"operation_id":"chat_message","estimated_tokens":10000000}`,
		`{"operation_id":"chat_message","estimated_tokens":10000001}`,
		`{"operation_id":"x","estimated_tokens":0}`,
		`{"operation_id":"x","estimated_tokens":-1}`,
		`{"operation_id":"x","estimated_tokens":1.5}`,
		`{"operation_id":"x","estimated_tokens":"100"}`,
		`{"operation_id":"x","estimated_tokens":1e400}`,
		`{"operation_id":"x","user_id":""}`,
		`{"operation_id":"x","user_id":null}`,
		`{"operation_id":"` + strings.Repeat("o", 257) + `"}`,
		`{"operation_id":"x","user":"typo"}`,
		`{"operation_id":1}`,
		`{"operation_id":"x"}{"operation_id":"y"}`,
		`{"operation_id":"x"} `,
		`[]`, `null`, `""`, `{}`, ``, `{`, `{"operation_id":"\ud800"}`, "\xff\xfe",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var req routeapi.RouteRequest
		err := httpapi.DecodeJSONBytes(bytes.NewReader(body), &req)
		checkClientError(t, body, err)
		if err != nil {
			return
		}
		err = req.Validate()
		checkClientError(t, body, err)
		if err != nil {
			return
		}
		// What Validate lets through is what the handler may rely on.
		if req.OperationID == "" || ident.Check(req.OperationID) != nil {
			t.Fatalf("body %q: Validate accepted operation_id %q", body, req.OperationID)
		}
		if req.UserID != nil && (*req.UserID == "" || len(*req.UserID) > 256) {
			t.Fatalf("body %q: Validate accepted user_id %q", body, *req.UserID)
		}
		if tk := req.EstimatedTokens; tk != nil && (*tk < 1 || *tk > catalog.MaxInputTokensLimit) {
			t.Fatalf("body %q: Validate accepted estimated_tokens %d", body, *tk)
		}
	})
}

// FuzzRouteUpdateDecode: arbitrary bodies of PUT /admin/routes/{operation_id}, decoded and
// converted with Change(), never panic and only fail with a 400 or 413. Applying the change to a
// seeded route either fails with ErrUnknownModel/ErrInvalidChange, leaving the route untouched,
// or yields a route that keeps the catalog's invariants.
func FuzzRouteUpdateDecode(f *testing.F) {
	for _, seed := range []string{
		`{"primary_model":"gemini_flash","fallback_model":"deepseek"}`,
		`{"fallback_model":null}`,
		`{"fallback_model":""}`,
		`{"fallback_model":"claude","enabled":false}`,
		`{"enabled":true,"requires_approval":true}`,
		`{"max_output_tokens":2048}`,
		`{"max_output_tokens":0}`,
		`{"max_output_tokens":1000001}`,
		`{"max_output_tokens":-1}`,
		`{"cost_criticality":"HIGH"}`,
		`{"cost_criticality":"high"}`,
		`{"primary_model":"gpt-9"}`,
		`{"primary_model":"deepseek"}`,
		`{"primary_model":null}`,
		`{"fallback_model":5}`,
		`{"enabled":"yes"}`,
		`{"primary":"typo"}`,
		`{}`, `null`, `[]`, ``, `{"fallback_model":null}x`,
	} {
		f.Add([]byte(seed))
	}
	models := map[string]catalog.Model{
		"deepseek":     {Key: "deepseek", Provider: "deepseek", Enabled: true},
		"gemini_flash": {Key: "gemini_flash", Provider: "gemini", Enabled: true},
		"claude":       {Key: "claude", Provider: "anthropic", Enabled: true, Emergency: true},
		"speech":       {Key: "speech", Provider: catalog.NoProvider},
	}
	seeded := catalog.Route{
		OperationID: "email-compose", OperationName: "Email compose", PrimaryModel: "deepseek",
		FallbackModel: "gemini_flash", Enabled: true, Criticality: catalog.Low, MaxOutputTokens: 1024,
		AvgInputTokens: 300, AvgOutputTokens: 350, AllowEmergency: true,
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var u routeapi.RouteUpdate
		err := httpapi.DecodeJSONBytes(bytes.NewReader(body), &u)
		checkClientError(t, body, err)
		if err != nil {
			return
		}
		c, err := u.Change()
		checkClientError(t, body, err)
		if err != nil {
			return
		}
		if u.FallbackModel.Set != (c.FallbackModel != nil) {
			t.Fatalf("body %q: fallback_model set=%v but change has %v", body, u.FallbackModel.Set, c.FallbackModel)
		}
		if u.FallbackModel.Set && u.FallbackModel.Value == "" && !bytes.Contains(body, []byte("null")) {
			// Only null removes the fallback; an explicit empty string must be rejected.
			t.Fatalf("body %q: empty fallback_model accepted without a null", body)
		}
		r := seeded
		err = c.ApplyTo(&r, models)
		if err != nil {
			if !errors.Is(err, catalog.ErrUnknownModel) && !errors.Is(err, catalog.ErrInvalidChange) {
				t.Fatalf("body %q: ApplyTo error %v wraps neither ErrUnknownModel nor ErrInvalidChange", body, err)
			}
			if r != seeded {
				t.Fatalf("body %q: failed change modified the route to %+v", body, r)
			}
			return
		}
		if _, ok := models[r.PrimaryModel]; !ok {
			t.Fatalf("body %q: primary %q is not a model", body, r.PrimaryModel)
		}
		if r.FallbackModel != "" {
			if _, ok := models[r.FallbackModel]; !ok || r.FallbackModel == r.PrimaryModel {
				t.Fatalf("body %q: fallback %q (primary %q)", body, r.FallbackModel, r.PrimaryModel)
			}
		}
		if r.MaxOutputTokens < 1 || r.MaxOutputTokens > catalog.MaxOutputTokensLimit || !r.Criticality.Valid() {
			t.Fatalf("body %q: route after change breaks limits: %+v", body, r)
		}
		if c.Empty() && r != seeded {
			t.Fatalf("body %q: empty change modified the route", body)
		}
	})
}
