package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/helixhq/helix/shared/auth"
	"github.com/helixhq/helix/shared/fault"
	"github.com/helixhq/helix/shared/httpapi"
)

// fakeAuth accepts the tokens it knows.
type fakeAuth struct {
	mu       sync.Mutex
	verified []string
}

func (f *fakeAuth) Verify(_ context.Context, token string) (auth.Principal, error) {
	f.mu.Lock()
	f.verified = append(f.verified, token)
	f.mu.Unlock()
	switch token {
	case "user-token":
		return auth.Principal{UserID: "user-1"}, nil
	case "admin-token":
		return auth.Principal{UserID: "admin-1", Admin: true}, nil
	case "":
		return auth.Principal{}, auth.ErrMissingToken
	}
	return auth.Principal{}, fmt.Errorf("%w: signature mismatch", auth.ErrInvalidToken)
}

func (f *fakeAuth) FromGatewayClaims(claims map[string]string) (auth.Principal, error) {
	if claims["sub"] == "" {
		return auth.Principal{}, auth.ErrInvalidToken
	}
	return auth.Principal{UserID: claims["sub"], Admin: claims["role"] == "admin"}, nil
}

// syncBuffer is a log sink safe for concurrent handlers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

const leakedText = "pq: password authentication failed for user helix_secret_pw"

func newTestServer(a httpapi.Authenticator) (*httpapi.Server, *syncBuffer) {
	logs := &syncBuffer{}
	s := httpapi.NewServer(a, slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	registerTestRoutes(s)
	return s, logs
}

func registerTestRoutes(s *httpapi.Server) {
	s.Handle("GET /me", func(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
		httpapi.WriteJSON(w, http.StatusOK, map[string]any{"user_id": p.UserID, "admin": p.Admin, "request_id": httpapi.RequestID(r.Context())})
		return nil
	})
	s.Handle("POST /echo", func(w http.ResponseWriter, r *http.Request, _ auth.Principal) error {
		var body struct {
			Name string `json:"name"`
		}
		if err := httpapi.DecodeJSON(r, &body); err != nil {
			return err
		}
		httpapi.WriteJSON(w, http.StatusCreated, body)
		return nil
	})
	s.Handle("GET /panic", func(http.ResponseWriter, *http.Request, auth.Principal) error {
		panic("boom")
	})
	s.Handle("GET /panic-after-write", func(w http.ResponseWriter, _ *http.Request, _ auth.Principal) error {
		httpapi.WriteJSON(w, http.StatusAccepted, map[string]string{"ok": "partly"})
		panic("late boom")
	})
	s.Handle("DELETE /nothing", func(http.ResponseWriter, *http.Request, auth.Principal) error { return nil })
	s.Handle("GET /plain-error", func(http.ResponseWriter, *http.Request, auth.Principal) error {
		return errors.New(leakedText)
	})
	s.Handle("GET /deadline", func(http.ResponseWriter, *http.Request, auth.Principal) error {
		return fmt.Errorf("query catalog: %w", context.DeadlineExceeded)
	})
	s.Handle("GET /canceled", func(http.ResponseWriter, *http.Request, auth.Principal) error {
		return fmt.Errorf("query catalog: %w", context.Canceled)
	})
	s.Handle("GET /teapot", func(http.ResponseWriter, *http.Request, auth.Principal) error {
		e := fault.Errorf(fault.BudgetExceeded, "daily budget of %s USD exceeded", "50")
		e.Details = map[string]any{"remaining": 0}
		return fmt.Errorf("wrapped: %w", e)
	})
	s.HandleAdmin("GET /admin/thing", func(w http.ResponseWriter, _ *http.Request, p auth.Principal) error {
		httpapi.WriteJSON(w, http.StatusOK, map[string]string{"admin": p.UserID})
		return nil
	})
	s.HandlePublic("GET /health", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("ok"))
	})
}

type errorResponse struct {
	Error struct {
		Code      string         `json:"code"`
		Message   string         `json:"message"`
		RequestID string         `json:"request_id"`
		Details   map[string]any `json:"details"`
	} `json:"error"`
}

func TestServer(t *testing.T) {
	tests := []struct {
		name       string
		method     string
		path       string
		authz      string // Authorization header; "-" for none
		claims     map[string]string
		body       string
		wantStatus int
		wantCode   fault.Code // error code, when the response is an error
		check      func(t *testing.T, rec *httptest.ResponseRecorder)
	}{
		{name: "authenticated", method: "GET", path: "/me", authz: "Bearer user-token", wantStatus: 200,
			check: wantJSONField("user_id", "user-1")},
		{name: "lowercase scheme", method: "GET", path: "/me", authz: "bearer user-token", wantStatus: 200},
		{name: "uppercase scheme", method: "GET", path: "/me", authz: "BEARER user-token", wantStatus: 200},
		{name: "no Authorization", method: "GET", path: "/me", authz: "-", wantStatus: 401, wantCode: fault.Unauthorized},
		{name: "Basic scheme", method: "GET", path: "/me", authz: "Basic dXNlcjpwYXNz", wantStatus: 401, wantCode: fault.Unauthorized},
		{name: "scheme only", method: "GET", path: "/me", authz: "Bearer", wantStatus: 401, wantCode: fault.Unauthorized},
		{name: "empty token", method: "GET", path: "/me", authz: "Bearer ", wantStatus: 401, wantCode: fault.Unauthorized},
		{name: "token without scheme", method: "GET", path: "/me", authz: "user-token", wantStatus: 401, wantCode: fault.Unauthorized},
		{name: "garbled token", method: "GET", path: "/me", authz: "Bearer x.y.z", wantStatus: 401, wantCode: fault.Unauthorized},
		{name: "gateway claims", method: "GET", path: "/me", authz: "-", claims: map[string]string{"sub": "gw-user"}, wantStatus: 200,
			check: wantJSONField("user_id", "gw-user")},
		{name: "gateway claims win over a bad header", method: "GET", path: "/me", authz: "Bearer garbage", claims: map[string]string{"sub": "gw-user"}, wantStatus: 200,
			check: wantJSONField("user_id", "gw-user")},
		{name: "gateway claims win over a good header", method: "GET", path: "/me", authz: "Bearer admin-token", claims: map[string]string{"sub": "gw-user"}, wantStatus: 200,
			check: wantJSONField("user_id", "gw-user")},
		{name: "gateway claims without sub", method: "GET", path: "/me", authz: "Bearer user-token", claims: map[string]string{"email": "a@b"}, wantStatus: 401, wantCode: fault.Unauthorized},
		{name: "empty gateway claims fall back to the header", method: "GET", path: "/me", authz: "Bearer user-token", claims: map[string]string{}, wantStatus: 200,
			check: wantJSONField("user_id", "user-1")},
		{name: "gateway admin", method: "GET", path: "/admin/thing", authz: "-", claims: map[string]string{"sub": "gw-admin", "role": "admin"}, wantStatus: 200},
		{name: "admin route, admin", method: "GET", path: "/admin/thing", authz: "Bearer admin-token", wantStatus: 200, check: wantJSONField("admin", "admin-1")},
		{name: "admin route, non-admin", method: "GET", path: "/admin/thing", authz: "Bearer user-token", wantStatus: 403, wantCode: fault.Forbidden},
		{name: "admin route, gateway non-admin", method: "GET", path: "/admin/thing", authz: "-", claims: map[string]string{"sub": "gw-user"}, wantStatus: 403, wantCode: fault.Forbidden},
		{name: "admin route, anonymous", method: "GET", path: "/admin/thing", authz: "-", wantStatus: 401, wantCode: fault.Unauthorized},
		{name: "unknown path", method: "GET", path: "/nope", authz: "Bearer user-token", wantStatus: 404, wantCode: fault.NotFound},
		{name: "unknown path, anonymous", method: "GET", path: "/nope", authz: "-", wantStatus: 404, wantCode: fault.NotFound},
		{name: "wrong method", method: "DELETE", path: "/me", authz: "Bearer user-token", wantStatus: 405, wantCode: fault.MethodNotAllowed,
			check: func(t *testing.T, rec *httptest.ResponseRecorder) {
				allow := rec.Header().Get("Allow")
				if !strings.Contains(allow, "GET") {
					t.Errorf("Allow = %q, want it to list GET", allow)
				}
			}},
		{name: "wrong method on a POST route", method: "GET", path: "/echo", authz: "-", wantStatus: 405, wantCode: fault.MethodNotAllowed,
			check: func(t *testing.T, rec *httptest.ResponseRecorder) {
				if allow := rec.Header().Get("Allow"); !strings.Contains(allow, "POST") {
					t.Errorf("Allow = %q, want it to list POST", allow)
				}
			}},
		{name: "panic", method: "GET", path: "/panic", authz: "Bearer user-token", wantStatus: 500, wantCode: fault.Internal,
			check: wantNotInBody("boom")},
		{name: "panic after the response started keeps its status", method: "GET", path: "/panic-after-write", authz: "Bearer user-token", wantStatus: 202},
		{name: "handler writes nothing", method: "DELETE", path: "/nothing", authz: "Bearer user-token", wantStatus: 204,
			check: func(t *testing.T, rec *httptest.ResponseRecorder) {
				if rec.Body.Len() != 0 {
					t.Errorf("204 with body %q", rec.Body)
				}
			}},
		{name: "plain error is hidden", method: "GET", path: "/plain-error", authz: "Bearer user-token", wantStatus: 500, wantCode: fault.Internal,
			check: wantNotInBody("password")},
		{name: "deadline", method: "GET", path: "/deadline", authz: "Bearer user-token", wantStatus: 503, wantCode: "timeout",
			check: wantNotInBody("catalog")},
		{name: "canceled", method: "GET", path: "/canceled", authz: "Bearer user-token", wantStatus: 503, wantCode: "timeout"},
		{name: "wrapped fault is sent as is, with details", method: "GET", path: "/teapot", authz: "Bearer user-token", wantStatus: 402, wantCode: "budget_exceeded",
			check: func(t *testing.T, rec *httptest.ResponseRecorder) {
				var e errorResponse
				_ = json.Unmarshal(rec.Body.Bytes(), &e)
				if e.Error.Details["remaining"] != float64(0) || !strings.Contains(e.Error.Message, "50 USD") {
					t.Errorf("error = %+v", e.Error)
				}
			}},
		{name: "decode error through the server", method: "POST", path: "/echo", authz: "Bearer user-token", body: `{"nmae":"x"}`, wantStatus: 400, wantCode: fault.UnknownField},
		{name: "body too large through the server", method: "POST", path: "/echo", authz: "Bearer user-token", body: padded(httpapi.MaxBodyBytes + 1), wantStatus: 413, wantCode: fault.BodyTooLarge},
		{name: "auth before decoding", method: "POST", path: "/echo", authz: "-", body: `not json`, wantStatus: 401, wantCode: fault.Unauthorized},
		{name: "post ok", method: "POST", path: "/echo", authz: "Bearer user-token", body: `{"name":"n"}`, wantStatus: 201, check: wantJSONField("name", "n")},
		{name: "public route needs no token", method: "GET", path: "/health", authz: "-", wantStatus: 200,
			check: func(t *testing.T, rec *httptest.ResponseRecorder) {
				if rec.Body.String() != "ok" {
					t.Errorf("body = %q", rec.Body)
				}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, _ := newTestServer(&fakeAuth{})
			var body *strings.Reader
			if tt.body != "" {
				body = strings.NewReader(tt.body)
			}
			var r *http.Request
			if body != nil {
				r = httptest.NewRequest(tt.method, tt.path, body)
			} else {
				r = httptest.NewRequest(tt.method, tt.path, nil)
			}
			if tt.authz != "-" {
				r.Header.Set("Authorization", tt.authz)
			}
			if tt.claims != nil {
				r = r.WithContext(auth.WithGatewayClaims(r.Context(), tt.claims))
			}
			rec := httptest.NewRecorder()
			s.ServeHTTP(rec, r)

			if rec.Code != tt.wantStatus {
				t.Fatalf("status = %d, want %d; body %s", rec.Code, tt.wantStatus, rec.Body)
			}
			id := rec.Header().Get("X-Request-Id")
			if id == "" {
				t.Error("no X-Request-Id header")
			}
			if tt.wantCode != "" {
				if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
					t.Errorf("Content-Type = %q, want application/json", ct)
				}
				var e errorResponse
				if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil {
					t.Fatalf("error body is not JSON: %v: %s", err, rec.Body)
				}
				if fault.Code(e.Error.Code) != tt.wantCode {
					t.Errorf("error.code = %q, want %q", e.Error.Code, tt.wantCode)
				}
				if e.Error.Message == "" {
					t.Error("error.message is empty")
				}
				if e.Error.RequestID != id {
					t.Errorf("error.request_id = %q, X-Request-Id = %q", e.Error.RequestID, id)
				}
			}
			if tt.check != nil {
				tt.check(t, rec)
			}
		})
	}
}

func wantJSONField(key, want string) func(*testing.T, *httptest.ResponseRecorder) {
	return func(t *testing.T, rec *httptest.ResponseRecorder) {
		t.Helper()
		var m map[string]any
		if err := json.Unmarshal(rec.Body.Bytes(), &m); err != nil {
			t.Fatalf("body is not JSON: %s", rec.Body)
		}
		if m[key] != want {
			t.Errorf("%s = %v, want %q", key, m[key], want)
		}
	}
}

func wantNotInBody(s string) func(*testing.T, *httptest.ResponseRecorder) {
	return func(t *testing.T, rec *httptest.ResponseRecorder) {
		t.Helper()
		if strings.Contains(rec.Body.String(), s) {
			t.Errorf("response leaks %q: %s", s, rec.Body)
		}
	}
}

func TestServerPlainErrorIsLoggedNotSent(t *testing.T) {
	s, logs := newTestServer(&fakeAuth{})
	r := httptest.NewRequest("GET", "/plain-error", nil)
	r.Header.Set("Authorization", "Bearer user-token")
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, r)
	if rec.Code != 500 || strings.Contains(rec.Body.String(), leakedText) {
		t.Fatalf("status %d body %s", rec.Code, rec.Body)
	}
	id := rec.Header().Get("X-Request-Id")
	if !strings.Contains(rec.Body.String(), id) {
		t.Errorf("500 body does not quote the request id %s: %s", id, rec.Body)
	}
	if !strings.Contains(logs.String(), leakedText) || !strings.Contains(logs.String(), id) {
		t.Errorf("the error and request id should be in the log; log:\n%s", logs)
	}
}

func TestServerSurvivesPanicsAndKeepsServing(t *testing.T) {
	s, logs := newTestServer(&fakeAuth{})
	srv := httptest.NewServer(s)
	defer srv.Close()
	for i := range 3 {
		for _, path := range []string{"/panic", "/me"} {
			req, _ := http.NewRequest("GET", srv.URL+path, nil)
			req.Header.Set("Authorization", "Bearer user-token")
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatalf("round %d %s: %v", i, path, err)
			}
			_ = resp.Body.Close()
			want := 200
			if path == "/panic" {
				want = 500
			}
			if resp.StatusCode != want {
				t.Fatalf("round %d %s: status %d, want %d", i, path, resp.StatusCode, want)
			}
		}
	}
	if !strings.Contains(logs.String(), `"panic"`) {
		t.Errorf("panic not logged:\n%s", logs)
	}
}

func TestRequestIDsAreUniqueAndServerMade(t *testing.T) {
	s, _ := newTestServer(&fakeAuth{})
	seen := map[string]bool{}
	for range 50 {
		r := httptest.NewRequest("GET", "/me", nil)
		r.Header.Set("Authorization", "Bearer user-token")
		r.Header.Set("X-Request-Id", "client-chosen")
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, r)
		id := rec.Header().Get("X-Request-Id")
		if id == "" || id == "client-chosen" || seen[id] {
			t.Fatalf("request id %q (seen before: %v)", id, seen[id])
		}
		seen[id] = true
		// The handler sees the same id through RequestID.
		var m map[string]any
		_ = json.Unmarshal(rec.Body.Bytes(), &m)
		if m["request_id"] != id {
			t.Fatalf("RequestID(ctx) = %v, header %q", m["request_id"], id)
		}
	}
	if httpapi.RequestID(context.Background()) != "" {
		t.Error("RequestID of a bare context is not empty")
	}
}

func TestAuthorizationTokenPassedVerbatim(t *testing.T) {
	fa := &fakeAuth{}
	s, _ := newTestServer(fa)
	for _, h := range []string{"Bearer abc.def.ghi", "bearer  two-spaces", "BeArEr x"} {
		r := httptest.NewRequest("GET", "/me", nil)
		r.Header.Set("Authorization", h)
		s.ServeHTTP(httptest.NewRecorder(), r)
	}
	want := []string{"abc.def.ghi", " two-spaces", "x"}
	if fmt.Sprint(fa.verified) != fmt.Sprint(want) {
		t.Fatalf("Verify saw %q, want %q", fa.verified, want)
	}
}

func TestWriteJSON(t *testing.T) {
	rec := httptest.NewRecorder()
	httpapi.WriteJSON(rec, http.StatusTeapot, map[string]int{"a": 1})
	if rec.Code != http.StatusTeapot || rec.Body.String() != "{\"a\":1}\n" {
		t.Fatalf("WriteJSON = %d %q", rec.Code, rec.Body)
	}
	if rec.Header().Get("Cache-Control") != "no-store" || rec.Header().Get("Content-Type") != "application/json" {
		t.Fatalf("headers = %v", rec.Header())
	}
	rec = httptest.NewRecorder()
	httpapi.WriteJSON(rec, http.StatusOK, map[string]any{"f": func() {}})
	if rec.Code != 500 || !strings.Contains(rec.Body.String(), "internal_error") {
		t.Fatalf("unmarshalable value: %d %s", rec.Code, rec.Body)
	}
}

// With the real Authenticator and an HS256 token made by auth.SignHS256.
func TestServerWithRealAuthenticator(t *testing.T) {
	secret := []byte("0123456789abcdef0123456789abcdef-test-secret")
	a, err := auth.New(t.Context(), auth.Config{
		HS256Secret: secret, Issuer: "https://issuer.test", Audience: "helix",
		AdminClaim: "role", AdminValue: "admin",
	})
	if err != nil {
		t.Fatal(err)
	}
	s, _ := newTestServer(a)
	mint := func(sub string, claims map[string]any, ttl time.Duration, sec []byte) string {
		tok, err := auth.SignHS256(auth.TokenSpec{Secret: sec, Subject: sub, Issuer: "https://issuer.test", Audience: "helix", TTL: ttl, Claims: claims})
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	tests := []struct {
		name       string
		path       string
		token      string
		wantStatus int
		wantUser   string
	}{
		{"user", "/me", mint("alice", nil, time.Hour, secret), 200, "alice"},
		{"admin on admin route", "/admin/thing", mint("root", map[string]any{"role": "admin"}, time.Hour, secret), 200, ""},
		{"user on admin route", "/admin/thing", mint("alice", nil, time.Hour, secret), 403, ""},
		{"expired", "/me", mint("alice", nil, -time.Hour, secret), 401, ""},
		{"wrong secret", "/me", mint("alice", nil, time.Hour, []byte("another-secret-of-at-least-32-bytes!!")), 401, ""},
		{"garbage", "/me", "not-a-jwt", 401, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", tt.path, nil)
			r.Header.Set("Authorization", "Bearer "+tt.token)
			rec := httptest.NewRecorder()
			s.ServeHTTP(rec, r)
			if rec.Code != tt.wantStatus {
				t.Fatalf("status = %d, want %d: %s", rec.Code, tt.wantStatus, rec.Body)
			}
			if tt.wantUser != "" {
				wantJSONField("user_id", tt.wantUser)(t, rec)
			}
			if rec.Code == 401 && strings.Contains(rec.Body.String(), tt.token) {
				t.Errorf("401 body echoes the token: %s", rec.Body)
			}
		})
	}
}
