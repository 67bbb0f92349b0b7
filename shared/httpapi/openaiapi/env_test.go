package openaiapi_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/helixhq/helix/shared/apitest"
	"github.com/helixhq/helix/shared/app/routeapp/routeapptest"
)

// env is the route function served over HTTP on its own database, with the real provider
// adapters pointed at local wire servers (see routeapptest).
type env struct{ *routeapptest.Env }

func newEnv(t *testing.T) *env {
	t.Helper()
	return &env{routeapptest.New(t, pg.NewPool(t), nil)}
}

// resp is an HTTP response with its body read.
type resp struct{ apitest.Response }

// do sends body (none when "") with the bearer token (none when "").
func (e *env) do(t *testing.T, method, path, tok, body string) resp {
	t.Helper()
	return resp{apitest.Do(t, method, e.URL+path, tok, body)}
}

// chat POSTs a chat completion request as tok, with extra headers ("Name: value").
func (e *env) chat(t *testing.T, tok, body string, headers ...string) resp {
	t.Helper()
	req := apitest.NewRequest(t, http.MethodPost, e.URL+"/v1/chat/completions", tok, strings.NewReader(body))
	for _, h := range headers {
		k, v, _ := strings.Cut(h, ": ")
		req.Header.Set(k, v)
	}
	return resp{apitest.Send(t, req)}
}

// openAIError is OpenAI's error object.
type openAIError struct {
	Error struct {
		Message string  `json:"message"`
		Type    string  `json:"type"`
		Param   *string `json:"param"`
		Code    string  `json:"code"`
	} `json:"error"`
}

// wantOpenAIError checks the status and OpenAI's error object: Helix's code in error.code, the
// type, and the parameter (none when param is "").
func (r resp) wantOpenAIError(t *testing.T, status int, code, typ, param string) {
	t.Helper()
	if r.Status != status {
		t.Fatalf("status = %d, want %d (%s); body %s", r.Status, status, code, r.Body)
	}
	var b openAIError
	r.Decode(t, &b)
	if b.Error.Code != code || b.Error.Type != typ || b.Error.Message == "" {
		t.Errorf("error = %s, want code %q type %q and a message", r.Body, code, typ)
	}
	switch {
	case param == "" && b.Error.Param != nil:
		t.Errorf("error.param = %q, want null", *b.Error.Param)
	case param != "" && (b.Error.Param == nil || *b.Error.Param != param):
		t.Errorf("error.param = %v, want %q; body %s", b.Error.Param, param, r.Body)
	}
	if r.Header.Get("X-Request-Id") == "" {
		t.Errorf("no X-Request-Id on an error")
	}
}
