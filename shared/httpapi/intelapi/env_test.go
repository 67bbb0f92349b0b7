package intelapi_test

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/helixhq/helix/shared/apitest"
	"github.com/helixhq/helix/shared/app/routeapp/routeapptest"
	"github.com/helixhq/helix/shared/execute"
	"github.com/helixhq/helix/shared/llm"
)

// env is the route function served over HTTP on its own database, with the real provider
// adapters pointed at local wire servers (see routeapptest).
type env struct{ *routeapptest.Env }

func newEnv(t *testing.T) *env {
	t.Helper()
	return newEnvWith(t, nil)
}

// newEnvWith builds the env; wrap, when set, replaces the provider registry (e.g. to force the
// offline model).
func newEnvWith(t *testing.T, wrap func(*llm.Registry) execute.Providers) *env {
	t.Helper()
	return &env{routeapptest.New(t, pg.NewPool(t), wrap)}
}

// resp is an HTTP response with its body read.
type resp struct{ apitest.Response }

// do sends body (none when "") with the bearer token (none when "").
func (e *env) do(t *testing.T, method, path, tok, body string) resp {
	t.Helper()
	return resp{apitest.Do(t, method, e.URL+path, tok, body)}
}

// post POSTs an intelligence request as tok.
func (e *env) post(t *testing.T, path, tok, body string) resp {
	t.Helper()
	return e.do(t, http.MethodPost, "/intelligence"+path, tok, body)
}

// fields decodes the body as an object of raw JSON values (numbers keep their text).
func (r resp) fields(t *testing.T) map[string]json.RawMessage {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal(r.Body, &m); err != nil {
		t.Fatalf("body is not a JSON object: %v\n%s", err, r.Body)
	}
	return m
}

// wantError checks the status and Helix's error envelope, and returns it.
func (r resp) wantError(t *testing.T, status int, code string) apitest.ErrorBody {
	t.Helper()
	if r.Status != status {
		t.Fatalf("status = %d, want %d (%s); body %s", r.Status, status, code, r.Body)
	}
	var b apitest.ErrorBody
	r.Decode(t, &b)
	if b.Error.Code != code || b.Error.Message == "" {
		t.Errorf("error = %+v, want code %q and a message", b.Error, code)
	}
	if id := r.Header.Get("X-Request-Id"); id == "" || b.Error.RequestID != id {
		t.Errorf("error.request_id %q, X-Request-Id %q", b.Error.RequestID, id)
	}
	return b
}
