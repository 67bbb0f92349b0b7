package httpapi_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/helixhq/helix/shared/httpapi"
)

func TestCORS(t *testing.T) {
	tests := []struct {
		name       string
		origins    []string
		method     string
		origin     string
		preflight  bool
		wantStatus int
		wantAllow  string // Access-Control-Allow-Origin; "" for none
	}{
		{"preflight from an allowed origin", []string{"https://app.example.com"}, "OPTIONS", "https://app.example.com", true, 204, "https://app.example.com"},
		{"preflight with any origin allowed", []string{"*"}, "OPTIONS", "http://localhost:5173", true, 204, "*"},
		{"preflight from another origin", []string{"https://app.example.com"}, "OPTIONS", "https://evil.example", true, 204, ""},
		{"request from an allowed origin", []string{"https://app.example.com"}, "GET", "https://app.example.com", false, 200, "https://app.example.com"},
		{"request from another origin", []string{"https://app.example.com"}, "GET", "https://evil.example", false, 200, ""},
		{"request without an origin", []string{"*"}, "GET", "", false, 200, ""},
		// OPTIONS without Access-Control-Request-Method is no preflight: routed (and refused) as usual.
		{"plain OPTIONS", []string{"*"}, "OPTIONS", "https://app.example.com", false, 405, "*"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, _ := newTestServer(&fakeAuth{})
			s.UseCORS(httpapi.CORS{AllowOrigins: tt.origins})
			r := httptest.NewRequest(tt.method, "/me", nil)
			r.Header.Set("Authorization", "Bearer user-token")
			if tt.origin != "" {
				r.Header.Set("Origin", tt.origin)
			}
			if tt.preflight {
				r.Header.Del("Authorization") // browsers send no credentials on a preflight
				r.Header.Set("Access-Control-Request-Method", "POST")
				r.Header.Set("Access-Control-Request-Headers", "authorization,content-type")
			}
			rec := httptest.NewRecorder()
			s.ServeHTTP(rec, r)
			if rec.Code != tt.wantStatus {
				t.Fatalf("status %d, want %d: %s", rec.Code, tt.wantStatus, rec.Body)
			}
			h := rec.Header()
			if got := h.Get("Access-Control-Allow-Origin"); got != tt.wantAllow {
				t.Errorf("Allow-Origin = %q, want %q", got, tt.wantAllow)
			}
			if tt.preflight && tt.wantAllow != "" {
				if !strings.Contains(h.Get("Access-Control-Allow-Headers"), "authorization") || !strings.Contains(h.Get("Access-Control-Allow-Methods"), "POST") {
					t.Errorf("preflight headers = %v", h)
				}
			}
			if !tt.preflight && tt.wantAllow != "" && !strings.Contains(h.Get("Access-Control-Expose-Headers"), "x-request-id") {
				t.Errorf("Expose-Headers = %q", h.Get("Access-Control-Expose-Headers"))
			}
			if tt.origin != "" && h.Get("Vary") != "Origin" {
				t.Errorf("Vary = %q, want Origin", h.Get("Vary"))
			}
		})
	}
}

// Every code a handler can return has a status in the one table; only internal_error is a 500.
func TestEveryCodeHasAStatus(t *testing.T) {
	for _, c := range httpapi.Codes() {
		s := httpapi.StatusOf(c)
		if s < 400 || s > 599 {
			t.Errorf("%s: status %d", c, s)
		}
		if s == http.StatusInternalServerError && c != "internal_error" {
			t.Errorf("%s maps to 500, which is kept for Helix's own faults", c)
		}
	}
	if httpapi.StatusOf("no_such_code") != http.StatusInternalServerError {
		t.Error("an unknown code must be a 500 (a bug), not a client error")
	}
}
