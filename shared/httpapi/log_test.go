package httpapi_test

import (
	"bufio"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/helixhq/helix/shared/auth"
	"github.com/helixhq/helix/shared/httpapi"
)

// logLines decodes the JSON log lines whose msg is msg.
func logLines(t *testing.T, logs *syncBuffer, msg string) []map[string]any {
	t.Helper()
	var out []map[string]any
	sc := bufio.NewScanner(strings.NewReader(logs.String()))
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("log line is not JSON: %s", sc.Text())
		}
		if m["msg"] == msg {
			out = append(out, m)
		}
	}
	return out
}

// One access line per request at info, with the route pattern (not the raw path's ids), status,
// latency, user and request id; only Helix's own faults are logged as errors.
func TestAccessLog(t *testing.T) {
	tests := []struct {
		name, path, authz string
		wantStatus        int
		wantLevel         string
		wantUser          string
		wantCode          string
	}{
		{"success", "/me", "Bearer user-token", 200, "INFO", "user-1", ""},
		{"refused token", "/me", "Bearer nope", 401, "INFO", "", "unauthorized"},
		{"client error", "/teapot", "Bearer user-token", 402, "INFO", "user-1", "budget_exceeded"},
		{"maintenance", "/maintained", "Bearer user-token", 503, "INFO", "user-1", "maintenance"},
		{"Helix's fault", "/plain-error", "Bearer user-token", 500, "ERROR", "user-1", "internal_error"},
		{"no route", "/nope", "Bearer user-token", 404, "INFO", "", "not_found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			logs := &syncBuffer{}
			s := withLog(logs)
			method := http.MethodGet
			if tt.path == "/maintained" {
				method = http.MethodPost // the gate lets reads through
			}
			r := httptest.NewRequest(method, tt.path, nil)
			r.Header.Set("Authorization", tt.authz)
			rec := httptest.NewRecorder()
			s.ServeHTTP(rec, r)
			if rec.Code != tt.wantStatus {
				t.Fatalf("status %d, want %d", rec.Code, tt.wantStatus)
			}
			lines := logLines(t, logs, "request")
			if len(lines) != 1 {
				t.Fatalf("%d access lines, want 1:\n%s", len(lines), logs)
			}
			l := lines[0]
			if l["level"] != tt.wantLevel || l["status"] != float64(tt.wantStatus) || l["method"] != method ||
				l["request_id"] != rec.Header().Get("X-Request-Id") || l["ms"] == nil {
				t.Errorf("access line %v", l)
			}
			if u, _ := l["user"].(string); u != tt.wantUser {
				t.Errorf("user = %q, want %q", u, tt.wantUser)
			}
			if c, _ := l["code"].(string); c != tt.wantCode {
				t.Errorf("code = %q, want %q", c, tt.wantCode)
			}
			if tt.wantStatus == 503 && rec.Header().Get("Retry-After") == "" {
				t.Error("503 maintenance without Retry-After")
			}
		})
	}
}

// The route pattern, not the path, so ids do not end up in every log line.
func TestAccessLogNamesThePattern(t *testing.T) {
	logs := &syncBuffer{}
	s := httpapi.NewServer(&fakeAuth{}, slog.New(slog.NewJSONHandler(logs, nil)))
	s.Handle("GET /things/{id}", func(w http.ResponseWriter, _ *http.Request, _ auth.Principal) error { return nil })
	r := httptest.NewRequest(http.MethodGet, "/things/42", nil)
	r.Header.Set("Authorization", "Bearer user-token")
	s.ServeHTTP(httptest.NewRecorder(), r)
	lines := logLines(t, logs, "request")
	if len(lines) != 1 || lines[0]["route"] != "GET /things/{id}" {
		t.Fatalf("access lines %v", lines)
	}
}

// withLog rebuilds newTestServer's routes on a server logging to logs at info, plus a route
// behind an active maintenance gate.
func withLog(logs *syncBuffer) *httpapi.Server {
	s := httpapi.NewServer(&fakeAuth{}, slog.New(slog.NewJSONHandler(logs, nil)))
	registerTestRoutes(s)
	s.AddGate(httpapi.MaintenanceGate(func(context.Context) (bool, error) { return true, nil }, "GET /me", "GET /teapot", "GET /plain-error"))
	s.Handle("POST /maintained", func(http.ResponseWriter, *http.Request, auth.Principal) error { return nil })
	return s
}

// A refused token says why in plain words, with RFC 6750's challenge; no credentials at all
// gets the challenge without an error code.
func TestUnauthorizedAnswers(t *testing.T) {
	s, _ := newTestServer(&fakeAuth{})
	for _, tt := range []struct {
		authz, wantChallenge, wantMessage string
	}{
		{"", `Bearer realm="helix"`, "Authorization: Bearer"},
		{"Bearer bad", `error="invalid_token"`, "signature mismatch"},
	} {
		r := httptest.NewRequest(http.MethodGet, "/me", nil)
		if tt.authz != "" {
			r.Header.Set("Authorization", tt.authz)
		}
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, r)
		if rec.Code != 401 || !strings.Contains(rec.Header().Get("WWW-Authenticate"), tt.wantChallenge) || !strings.Contains(rec.Body.String(), tt.wantMessage) {
			t.Errorf("%q: %d, WWW-Authenticate %q, body %s", tt.authz, rec.Code, rec.Header().Get("WWW-Authenticate"), rec.Body)
		}
		if tt.authz == "" && strings.Contains(rec.Header().Get("WWW-Authenticate"), "error=") {
			t.Errorf("no credentials, but the challenge has an error code: %q", rec.Header().Get("WWW-Authenticate"))
		}
	}
}
