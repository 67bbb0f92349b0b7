package httpapi_test

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/helixhq/helix/shared/auth"
	"github.com/helixhq/helix/shared/fault"
	"github.com/helixhq/helix/shared/httpapi"
)

// FuzzAuthorizationHeader sends arbitrary Authorization values through the Server with the real
// Authenticator: the answer is 401, or 200 for the one valid token's user, never a 5xx.
func FuzzAuthorizationHeader(f *testing.F) {
	secret := []byte("fuzz-secret-0123456789abcdef-0123456789")
	const iss, aud = "https://issuer.fuzz", "helix"
	valid, err := auth.SignHS256(auth.TokenSpec{Secret: secret, Subject: "fuzz-user", Issuer: iss, Audience: aud, TTL: 24 * time.Hour})
	if err != nil {
		f.Fatal(err)
	}
	expired, err := auth.SignHS256(auth.TokenSpec{Secret: secret, Subject: "fuzz-user", Issuer: iss, Audience: aud, TTL: -time.Hour})
	if err != nil {
		f.Fatal(err)
	}
	a, err := auth.New(f.Context(), auth.Config{HS256Secret: secret, Issuer: iss, Audience: aud, AdminClaim: "role", AdminValue: "admin"})
	if err != nil {
		f.Fatal(err)
	}
	s := httpapi.NewServer(a, slog.New(slog.DiscardHandler))
	s.Handle("GET /me", func(w http.ResponseWriter, _ *http.Request, p auth.Principal) error {
		httpapi.WriteJSON(w, http.StatusOK, map[string]any{"user_id": p.UserID, "admin": p.Admin})
		return nil
	})

	for _, seed := range []string{
		"Bearer " + valid, "bearer " + valid, "BEARER " + valid, valid,
		"Bearer " + valid[:len(valid)-5], "Bearer " + valid + "x", "Bearer " + expired,
		"Bearer ", "Bearer", "", "Basic dXNlcjpwYXNz", "Bearer a.b.c", "Bearer ....",
		"Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.", "Bearer \x00\xff", "Bearer  " + valid,
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, header string) {
		r := httptest.NewRequest(http.MethodGet, "/me", nil)
		r.Header["Authorization"] = []string{header}
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, r)
		switch rec.Code {
		case http.StatusUnauthorized:
			var e struct {
				Error struct{ Code string } `json:"error"`
			}
			if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || e.Error.Code != string(fault.Unauthorized) {
				t.Fatalf("401 body %s", rec.Body)
			}
		case http.StatusOK:
			var m struct {
				UserID string `json:"user_id"`
				Admin  bool   `json:"admin"`
			}
			if err := json.Unmarshal(rec.Body.Bytes(), &m); err != nil || m.UserID != "fuzz-user" || m.Admin {
				t.Fatalf("header %q authenticated as %+v", header, m)
			}
		default:
			t.Fatalf("header %q: status %d, body %s", header, rec.Code, rec.Body)
		}
		if rec.Header().Get("X-Request-Id") == "" {
			t.Fatal("no X-Request-Id")
		}
	})
}
