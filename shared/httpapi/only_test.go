package httpapi_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/helixhq/helix/shared/httpapi"
)

// Only the listed routes (and preflights) reach the handler; everything else is a JSON 404 that
// names the routes served here and where to go instead.
func TestOnlyRoutes(t *testing.T) {
	var reached []string
	inner := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reached = append(reached, r.Method+" "+r.URL.Path)
		w.WriteHeader(http.StatusTeapot)
	})
	h := httpapi.OnlyRoutes(inner, "the HTTP API", "POST /v1/chat/completions", "POST /chat/sessions/{id}/messages")
	cases := []struct {
		method, path string
		passes       bool
	}{
		{"POST", "/v1/chat/completions", true},
		{"POST", "/chat/sessions/s-1/messages", true},
		{"OPTIONS", "/v1/chat/completions", true}, // the preflight, for the server's CORS
		{"GET", "/v1/chat/completions", false},
		{"GET", "/v1/models", false},
		{"GET", "/chat/sessions/s-1/messages", false},
		{"POST", "/chat/sessions/s-1/messages/x", false},
		{"POST", "/ai-router/route", false},
		{"POST", "/v1/chat/completions/", false},
		{"DELETE", "/chat/sessions/s-1", false},
	}
	for _, tc := range cases {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			reached = nil
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(tc.method, tc.path, strings.NewReader("{}")))
			if tc.passes {
				if rec.Code != http.StatusTeapot || len(reached) != 1 {
					t.Errorf("status %d, handler saw %v: want it passed through", rec.Code, reached)
				}
				return
			}
			if len(reached) != 0 {
				t.Errorf("the handler saw %v", reached)
			}
			var body struct {
				Error struct{ Code, Message string }
			}
			if rec.Code != http.StatusNotFound || !strings.HasPrefix(rec.Header().Get("Content-Type"), "application/json") ||
				json.Unmarshal(rec.Body.Bytes(), &body) != nil {
				t.Fatalf("status %d, %q: %s", rec.Code, rec.Header().Get("Content-Type"), rec.Body)
			}
			want := "this URL serves only POST /v1/chat/completions, POST /chat/sessions/{id}/messages; send " +
				tc.method + " " + tc.path + " to the HTTP API"
			if body.Error.Code != "not_found" || body.Error.Message != want {
				t.Errorf("error %+v, want not_found %q", body.Error, want)
			}
		})
	}
}
