package auth_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"
	"github.com/lestrrat-go/jwx/v3/jwt"

	"github.com/helixhq/helix/shared/auth"
)

const (
	issuer   = "https://project.supabase.test/auth/v1"
	audience = "authenticated"
)

var hsSecret = []byte("test-secret-that-is-at-least-32-bytes-long")

// claims are the default claims of a valid token; tests edit a copy.
func claims() map[string]any {
	now := time.Now()
	return map[string]any{
		"sub": "alice",
		"iss": issuer,
		"aud": []string{audience},
		"iat": now.Add(-time.Minute),
		"exp": now.Add(time.Hour),
	}
}

// mint signs claims with alg and key through jwx, with kid in the protected header when set.
func mint(t testing.TB, alg jwa.SignatureAlgorithm, key any, kid string, c map[string]any) string {
	t.Helper()
	tok := jwt.New()
	for k, v := range c {
		if err := tok.Set(k, v); err != nil {
			t.Fatalf("set claim %s: %v", k, err)
		}
	}
	hdr := jws.NewHeaders()
	if kid != "" {
		if err := hdr.Set(jws.KeyIDKey, kid); err != nil {
			t.Fatal(err)
		}
	}
	signed, err := jwt.Sign(tok, jwt.WithKey(alg, key, jws.WithProtectedHeaders(hdr)))
	if err != nil {
		t.Fatalf("sign %s: %v", alg, err)
	}
	return string(signed)
}

func edit(c map[string]any, f func(map[string]any)) map[string]any {
	f(c)
	return c
}

func newAuth(t testing.TB, cfg auth.Config) *auth.Authenticator {
	t.Helper()
	if cfg.Issuer == "" {
		cfg.Issuer = issuer
	}
	if cfg.Audience == "" {
		cfg.Audience = audience
	}
	a, err := auth.New(t.Context(), cfg)
	if err != nil {
		t.Fatalf("auth.New: %v", err)
	}
	return a
}

// unsigned builds an "alg: none" token by hand.
func unsigned(t *testing.T, c map[string]any) string {
	t.Helper()
	payload := map[string]any{}
	for k, v := range c {
		if tm, ok := v.(time.Time); ok {
			v = tm.Unix()
		}
		payload[k] = v
	}
	p, err := json.Marshal(payload)
	if err != nil {
		t.Fatal(err)
	}
	enc := base64.RawURLEncoding.EncodeToString
	return enc([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + enc(p) + "."
}

func TestVerifyHS256(t *testing.T) {
	base := auth.Config{HS256Secret: hsSecret, AdminClaim: "role", AdminValue: "admin"}
	withCfg := func(f func(*auth.Config)) auth.Config {
		c := base
		f(&c)
		return c
	}
	now := time.Now()
	tests := []struct {
		name      string
		cfg       auth.Config
		token     func(t *testing.T) string
		wantUser  string // "" means the token must be rejected
		wantAdmin bool
	}{
		{name: "valid", cfg: base, wantUser: "alice",
			token: func(t *testing.T) string { return mint(t, jwa.HS256(), hsSecret, "", claims()) }},
		{name: "admin by role claim", cfg: base, wantUser: "alice", wantAdmin: true,
			token: func(t *testing.T) string {
				return mint(t, jwa.HS256(), hsSecret, "", edit(claims(), func(c map[string]any) { c["role"] = "admin" }))
			}},
		{name: "other role is not admin", cfg: base, wantUser: "alice",
			token: func(t *testing.T) string {
				return mint(t, jwa.HS256(), hsSecret, "", edit(claims(), func(c map[string]any) { c["role"] = "authenticated" }))
			}},
		{name: "role value is case-sensitive", cfg: base, wantUser: "alice",
			token: func(t *testing.T) string {
				return mint(t, jwa.HS256(), hsSecret, "", edit(claims(), func(c map[string]any) { c["role"] = "Admin" }))
			}},
		{name: "admin by nested claim", cfg: withCfg(func(c *auth.Config) { c.AdminClaim = "app_metadata.role" }), wantUser: "alice", wantAdmin: true,
			token: func(t *testing.T) string {
				return mint(t, jwa.HS256(), hsSecret, "", edit(claims(), func(c map[string]any) {
					c["app_metadata"] = map[string]any{"role": "admin", "provider": "email"}
				}))
			}},
		{name: "nested claim with another value", cfg: withCfg(func(c *auth.Config) { c.AdminClaim = "app_metadata.role" }), wantUser: "alice",
			token: func(t *testing.T) string {
				return mint(t, jwa.HS256(), hsSecret, "", edit(claims(), func(c map[string]any) {
					c["app_metadata"] = map[string]any{"role": "user"}
					c["role"] = "admin" // the top-level claim is not the configured one
				}))
			}},
		{name: "nested path through a non-object", cfg: withCfg(func(c *auth.Config) { c.AdminClaim = "app_metadata.role" }), wantUser: "alice",
			token: func(t *testing.T) string {
				return mint(t, jwa.HS256(), hsSecret, "", edit(claims(), func(c map[string]any) { c["app_metadata"] = "admin" }))
			}},
		{name: "deeply nested claim", cfg: withCfg(func(c *auth.Config) { c.AdminClaim = "a.b.c" }), wantUser: "alice", wantAdmin: true,
			token: func(t *testing.T) string {
				return mint(t, jwa.HS256(), hsSecret, "", edit(claims(), func(c map[string]any) {
					c["a"] = map[string]any{"b": map[string]any{"c": []any{"x", "admin"}}}
				}))
			}},
		{name: "admin by array claim", cfg: withCfg(func(c *auth.Config) { c.AdminClaim = "cognito:groups" }), wantUser: "alice", wantAdmin: true,
			token: func(t *testing.T) string {
				return mint(t, jwa.HS256(), hsSecret, "", edit(claims(), func(c map[string]any) { c["cognito:groups"] = []string{"admin", "x"} }))
			}},
		{name: "array claim without admin", cfg: withCfg(func(c *auth.Config) { c.AdminClaim = "cognito:groups" }), wantUser: "alice",
			token: func(t *testing.T) string {
				return mint(t, jwa.HS256(), hsSecret, "", edit(claims(), func(c map[string]any) { c["cognito:groups"] = []string{"staff", "x"} }))
			}},
		{name: "array claim with non-strings", cfg: withCfg(func(c *auth.Config) { c.AdminClaim = "groups" }), wantUser: "alice", wantAdmin: true,
			token: func(t *testing.T) string {
				return mint(t, jwa.HS256(), hsSecret, "", edit(claims(), func(c map[string]any) { c["groups"] = []any{1, true, "admin"} }))
			}},
		{name: "numeric claim is not admin", cfg: base, wantUser: "alice",
			token: func(t *testing.T) string {
				return mint(t, jwa.HS256(), hsSecret, "", edit(claims(), func(c map[string]any) { c["role"] = 1 }))
			}},
		{name: "admin by user id", cfg: withCfg(func(c *auth.Config) { c.AdminUserIDs = []string{"bob", "alice"} }), wantUser: "alice", wantAdmin: true,
			token: func(t *testing.T) string { return mint(t, jwa.HS256(), hsSecret, "", claims()) }},
		{name: "empty admin value never matches", cfg: withCfg(func(c *auth.Config) { c.AdminValue = "" }), wantUser: "alice",
			token: func(t *testing.T) string {
				return mint(t, jwa.HS256(), hsSecret, "", edit(claims(), func(c map[string]any) { c["role"] = "" }))
			}},
		{name: "no admin claim configured", cfg: withCfg(func(c *auth.Config) { c.AdminClaim = "" }), wantUser: "alice",
			token: func(t *testing.T) string {
				return mint(t, jwa.HS256(), hsSecret, "", edit(claims(), func(c map[string]any) { c["role"] = "admin" }))
			}},
		{name: "audience among several", cfg: base, wantUser: "alice",
			token: func(t *testing.T) string {
				return mint(t, jwa.HS256(), hsSecret, "", edit(claims(), func(c map[string]any) { c["aud"] = []string{"other", audience} }))
			}},
		{name: "expired within leeway", cfg: base, wantUser: "alice",
			token: func(t *testing.T) string {
				return mint(t, jwa.HS256(), hsSecret, "", edit(claims(), func(c map[string]any) { c["exp"] = now.Add(-10 * time.Second) }))
			}},
		{name: "nbf within leeway", cfg: base, wantUser: "alice",
			token: func(t *testing.T) string {
				return mint(t, jwa.HS256(), hsSecret, "", edit(claims(), func(c map[string]any) { c["nbf"] = now.Add(10 * time.Second) }))
			}},

		{name: "expired beyond leeway",
			cfg: base, token: func(t *testing.T) string {
				return mint(t, jwa.HS256(), hsSecret, "", edit(claims(), func(c map[string]any) { c["exp"] = now.Add(-2 * time.Minute) }))
			}},
		{name: "expired beyond a custom leeway", cfg: withCfg(func(c *auth.Config) { c.Leeway = time.Second }),
			token: func(t *testing.T) string {
				return mint(t, jwa.HS256(), hsSecret, "", edit(claims(), func(c map[string]any) { c["exp"] = now.Add(-10 * time.Second) }))
			}},
		{name: "nbf in the future", cfg: base,
			token: func(t *testing.T) string {
				return mint(t, jwa.HS256(), hsSecret, "", edit(claims(), func(c map[string]any) { c["nbf"] = now.Add(5 * time.Minute) }))
			}},
		{name: "iat in the future", cfg: base,
			token: func(t *testing.T) string {
				return mint(t, jwa.HS256(), hsSecret, "", edit(claims(), func(c map[string]any) { c["iat"] = now.Add(5 * time.Minute) }))
			}},
		{name: "wrong issuer", cfg: base,
			token: func(t *testing.T) string {
				return mint(t, jwa.HS256(), hsSecret, "", edit(claims(), func(c map[string]any) { c["iss"] = "https://evil.test" }))
			}},
		{name: "missing issuer", cfg: base,
			token: func(t *testing.T) string {
				return mint(t, jwa.HS256(), hsSecret, "", edit(claims(), func(c map[string]any) { delete(c, "iss") }))
			}},
		{name: "wrong audience", cfg: base,
			token: func(t *testing.T) string {
				return mint(t, jwa.HS256(), hsSecret, "", edit(claims(), func(c map[string]any) { c["aud"] = []string{"anon"} }))
			}},
		{name: "missing audience", cfg: base,
			token: func(t *testing.T) string {
				return mint(t, jwa.HS256(), hsSecret, "", edit(claims(), func(c map[string]any) { delete(c, "aud") }))
			}},
		{name: "missing exp", cfg: base,
			token: func(t *testing.T) string {
				return mint(t, jwa.HS256(), hsSecret, "", edit(claims(), func(c map[string]any) { delete(c, "exp") }))
			}},
		{name: "missing sub", cfg: base,
			token: func(t *testing.T) string {
				return mint(t, jwa.HS256(), hsSecret, "", edit(claims(), func(c map[string]any) { delete(c, "sub") }))
			}},
		{name: "empty sub", cfg: base,
			token: func(t *testing.T) string {
				return mint(t, jwa.HS256(), hsSecret, "", edit(claims(), func(c map[string]any) { c["sub"] = "" }))
			}},
		{name: "wrong secret", cfg: base,
			token: func(t *testing.T) string {
				return mint(t, jwa.HS256(), []byte("a-different-secret-of-32-bytes-or-more"), "", claims())
			}},
		{name: "HS512 with the right secret is not pinned", cfg: base,
			token: func(t *testing.T) string { return mint(t, jwa.HS512(), hsSecret, "", claims()) }},
		{name: "HS384 with the right secret is not pinned", cfg: base,
			token: func(t *testing.T) string { return mint(t, jwa.HS384(), hsSecret, "", claims()) }},
		{name: "alg none", cfg: base,
			token: func(t *testing.T) string { return unsigned(t, claims()) }},
		{name: "alg none with a signature appended", cfg: base,
			token: func(t *testing.T) string { return unsigned(t, claims()) + "c2ln" }},
		{name: "signature stripped", cfg: base,
			token: func(t *testing.T) string {
				tok := mint(t, jwa.HS256(), hsSecret, "", claims())
				return tok[:strings.LastIndexByte(tok, '.')+1]
			}},
		{name: "payload swapped under a valid signature", cfg: base,
			token: func(t *testing.T) string {
				good := strings.Split(mint(t, jwa.HS256(), hsSecret, "", claims()), ".")
				evil := strings.Split(mint(t, jwa.HS256(), hsSecret, "", edit(claims(), func(c map[string]any) { c["role"] = "admin"; c["sub"] = "mallory" })), ".")
				return good[0] + "." + evil[1] + "." + good[2]
			}},
		{name: "two parts", cfg: base, token: func(*testing.T) string { return "a.b" }},
		{name: "garbage", cfg: base, token: func(*testing.T) string { return "not a token" }},
		{name: "too long", cfg: base,
			token: func(t *testing.T) string {
				return mint(t, jwa.HS256(), hsSecret, "", edit(claims(), func(c map[string]any) { c["pad"] = strings.Repeat("x", 17<<10) }))
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := newAuth(t, tt.cfg)
			p, err := a.Verify(t.Context(), tt.token(t))
			if tt.wantUser == "" {
				if err == nil {
					t.Fatalf("Verify accepted the token as %+v", p)
				}
				if !errors.Is(err, auth.ErrInvalidToken) {
					t.Errorf("error %v does not wrap ErrInvalidToken", err)
				}
				if p != (auth.Principal{}) {
					t.Errorf("rejected token still yields principal %+v", p)
				}
				return
			}
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if want := (auth.Principal{UserID: tt.wantUser, Admin: tt.wantAdmin}); p != want {
				t.Fatalf("principal = %+v, want %+v", p, want)
			}
		})
	}
}

func TestVerifyEmptyToken(t *testing.T) {
	a := newAuth(t, auth.Config{HS256Secret: hsSecret})
	if _, err := a.Verify(t.Context(), ""); !errors.Is(err, auth.ErrMissingToken) {
		t.Fatalf("Verify(\"\") = %v, want ErrMissingToken", err)
	}
}

func TestSignHS256RoundTrip(t *testing.T) {
	a := newAuth(t, auth.Config{HS256Secret: hsSecret, AdminClaim: "role", AdminValue: "admin", MonitoringValue: "monitoring"})
	tests := []struct {
		name    string
		spec    auth.TokenSpec
		want    auth.Principal
		wantErr bool // Verify rejects
	}{
		{name: "user", spec: auth.TokenSpec{Subject: "u1", TTL: time.Hour}, want: auth.Principal{UserID: "u1"}},
		{name: "admin", spec: auth.TokenSpec{Subject: "u2", TTL: time.Hour, Claims: map[string]any{"role": "admin"}}, want: auth.Principal{UserID: "u2", Admin: true}},
		{name: "monitoring role", spec: auth.TokenSpec{Subject: "u5", TTL: time.Hour, Claims: map[string]any{"role": "monitoring"}}, want: auth.Principal{UserID: "u5", Monitoring: true}},
		{name: "monitoring among roles", spec: auth.TokenSpec{Subject: "u6", TTL: time.Hour, Claims: map[string]any{"role": []any{"reader", "monitoring"}}}, want: auth.Principal{UserID: "u6", Monitoring: true}},
		{name: "fixed clock in the past", spec: auth.TokenSpec{Subject: "u3", TTL: time.Hour, Now: time.Now().Add(-2 * time.Hour)}, wantErr: true},
		{name: "fixed clock now", spec: auth.TokenSpec{Subject: "u4", TTL: time.Minute, Now: time.Now()}, want: auth.Principal{UserID: "u4"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spec := tt.spec
			spec.Secret, spec.Issuer, spec.Audience = hsSecret, issuer, audience
			tok, err := auth.SignHS256(spec)
			if err != nil {
				t.Fatal(err)
			}
			p, err := a.Verify(t.Context(), tok)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("Verify accepted %+v", p)
				}
				return
			}
			if err != nil || p != tt.want {
				t.Fatalf("Verify = %+v, %v; want %+v", p, err, tt.want)
			}
		})
	}
	if _, err := auth.SignHS256(auth.TokenSpec{Secret: hsSecret, TTL: time.Hour}); err == nil {
		t.Error("SignHS256 without a subject succeeded")
	}
}

func TestNewConfigErrors(t *testing.T) {
	tests := []struct {
		name    string
		cfg     auth.Config
		wantErr bool
	}{
		{"HS256 only", auth.Config{HS256Secret: hsSecret, Issuer: issuer, Audience: audience}, false},
		{"JWKS only", auth.Config{JWKSURL: "http://127.0.0.1:1/jwks.json", Issuer: issuer, Audience: audience}, false},
		{"secret of exactly 32 bytes", auth.Config{HS256Secret: []byte(strings.Repeat("s", 32)), Issuer: issuer, Audience: audience}, false},
		{"explicit algorithms", auth.Config{HS256Secret: hsSecret, Issuer: issuer, Audience: audience, Algorithms: []string{"ES256", "RS512", "PS256", "EdDSA"}}, false},
		{"short HS256 secret", auth.Config{HS256Secret: []byte(strings.Repeat("s", 31)), Issuer: issuer, Audience: audience}, true},
		{"no issuer", auth.Config{HS256Secret: hsSecret, Audience: audience}, true},
		{"no audience", auth.Config{HS256Secret: hsSecret, Issuer: issuer}, true},
		{"no key material", auth.Config{Issuer: issuer, Audience: audience}, true},
		{"unknown algorithm", auth.Config{HS256Secret: hsSecret, Issuer: issuer, Audience: audience, Algorithms: []string{"RS257"}}, true},
		{"symmetric algorithm for JWKS", auth.Config{HS256Secret: hsSecret, Issuer: issuer, Audience: audience, Algorithms: []string{"HS256"}}, true},
		{"none algorithm", auth.Config{HS256Secret: hsSecret, Issuer: issuer, Audience: audience, Algorithms: []string{"none"}}, true},
		{"lowercase algorithm name", auth.Config{HS256Secret: hsSecret, Issuer: issuer, Audience: audience, Algorithms: []string{"rs256"}}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := auth.New(t.Context(), tt.cfg)
			if tt.wantErr != (err != nil) {
				t.Fatalf("New = %v, %v; wantErr %v", a, err, tt.wantErr)
			}
		})
	}
}

func TestFromGatewayClaims(t *testing.T) {
	tests := []struct {
		name    string
		cfg     auth.Config
		claims  map[string]string
		want    auth.Principal
		wantErr bool
	}{
		{name: "user", cfg: auth.Config{AdminClaim: "role", AdminValue: "admin"}, claims: map[string]string{"sub": "u1", "role": "authenticated"}, want: auth.Principal{UserID: "u1"}},
		{name: "admin role", cfg: auth.Config{AdminClaim: "role", AdminValue: "admin"}, claims: map[string]string{"sub": "u1", "role": "admin"}, want: auth.Principal{UserID: "u1", Admin: true}},
		{name: "cognito groups list", cfg: auth.Config{AdminClaim: "cognito:groups", AdminValue: "admin"}, claims: map[string]string{"sub": "u1", "cognito:groups": "[admin other]"}, want: auth.Principal{UserID: "u1", Admin: true}},
		{name: "cognito groups list, admin last", cfg: auth.Config{AdminClaim: "cognito:groups", AdminValue: "admin"}, claims: map[string]string{"sub": "u1", "cognito:groups": "[other admin]"}, want: auth.Principal{UserID: "u1", Admin: true}},
		{name: "cognito groups, comma list", cfg: auth.Config{AdminClaim: "cognito:groups", AdminValue: "admin"}, claims: map[string]string{"sub": "u1", "cognito:groups": "[other,admin]"}, want: auth.Principal{UserID: "u1", Admin: true}},
		{name: "cognito groups without admin", cfg: auth.Config{AdminClaim: "cognito:groups", AdminValue: "admin"}, claims: map[string]string{"sub": "u1", "cognito:groups": "[administrators other]"}, want: auth.Principal{UserID: "u1"}},
		{name: "single group not in brackets", cfg: auth.Config{AdminClaim: "cognito:groups", AdminValue: "admin"}, claims: map[string]string{"sub": "u1", "cognito:groups": "admin"}, want: auth.Principal{UserID: "u1", Admin: true}},
		{name: "empty group list", cfg: auth.Config{AdminClaim: "cognito:groups", AdminValue: "admin"}, claims: map[string]string{"sub": "u1", "cognito:groups": "[]"}, want: auth.Principal{UserID: "u1"}},
		{name: "admin in another claim", cfg: auth.Config{AdminClaim: "cognito:groups", AdminValue: "admin"}, claims: map[string]string{"sub": "u1", "role": "admin"}, want: auth.Principal{UserID: "u1"}},
		{name: "admin user id", cfg: auth.Config{AdminClaim: "role", AdminValue: "admin", AdminUserIDs: []string{"root"}}, claims: map[string]string{"sub": "root"}, want: auth.Principal{UserID: "root", Admin: true}},
		{name: "monitoring role", cfg: auth.Config{AdminClaim: "role", AdminValue: "admin", MonitoringValue: "monitoring"}, claims: map[string]string{"sub": "u1", "role": "monitoring"}, want: auth.Principal{UserID: "u1", Monitoring: true}},
		{name: "monitoring in a group list", cfg: auth.Config{AdminClaim: "cognito:groups", AdminValue: "admin", MonitoringValue: "monitoring"}, claims: map[string]string{"sub": "u1", "cognito:groups": "[admin monitoring]"}, want: auth.Principal{UserID: "u1", Admin: true, Monitoring: true}},
		{name: "monitoring role not configured", cfg: auth.Config{AdminClaim: "role", AdminValue: "admin"}, claims: map[string]string{"sub": "u1", "role": "monitoring"}, want: auth.Principal{UserID: "u1"}},
		{name: "empty role with no monitoring role configured", cfg: auth.Config{AdminClaim: "role", AdminValue: "admin"}, claims: map[string]string{"sub": "u1", "role": ""}, want: auth.Principal{UserID: "u1"}},
		{name: "monitoring in another claim", cfg: auth.Config{AdminClaim: "role", AdminValue: "admin", MonitoringValue: "monitoring"}, claims: map[string]string{"sub": "u1", "group": "monitoring"}, want: auth.Principal{UserID: "u1"}},
		{name: "missing sub", cfg: auth.Config{AdminClaim: "role", AdminValue: "admin"}, claims: map[string]string{"role": "admin"}, wantErr: true},
		{name: "empty sub", cfg: auth.Config{AdminClaim: "role", AdminValue: "admin"}, claims: map[string]string{"sub": "", "role": "admin"}, wantErr: true},
		{name: "nil claims", cfg: auth.Config{AdminClaim: "role", AdminValue: "admin"}, claims: nil, wantErr: true},
		{name: "sub with a NUL", cfg: auth.Config{AdminClaim: "role", AdminValue: "admin"}, claims: map[string]string{"sub": "a\x00b"}, wantErr: true},
		{name: "sub of invalid UTF-8", cfg: auth.Config{AdminClaim: "role", AdminValue: "admin"}, claims: map[string]string{"sub": "a\xffb"}, wantErr: true},
		{name: "sub of 8000 bytes", cfg: auth.Config{AdminClaim: "role", AdminValue: "admin"}, claims: map[string]string{"sub": strings.Repeat("s", 8000)}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := tt.cfg
			cfg.HS256Secret = hsSecret
			a := newAuth(t, cfg)
			p, err := a.FromGatewayClaims(tt.claims)
			if tt.wantErr {
				if !errors.Is(err, auth.ErrInvalidToken) {
					t.Fatalf("FromGatewayClaims = %+v, %v; want ErrInvalidToken", p, err)
				}
				return
			}
			if err != nil || p != tt.want {
				t.Fatalf("FromGatewayClaims = %+v, %v; want %+v", p, err, tt.want)
			}
		})
	}
}

func TestGatewayClaimsContext(t *testing.T) {
	ctx := context.Background()
	if _, ok := auth.GatewayClaims(ctx); ok {
		t.Error("bare context has claims")
	}
	if _, ok := auth.GatewayClaims(auth.WithGatewayClaims(ctx, map[string]string{})); ok {
		t.Error("empty claims count as present")
	}
	c, ok := auth.GatewayClaims(auth.WithGatewayClaims(ctx, map[string]string{"sub": "x"}))
	if !ok || c["sub"] != "x" {
		t.Errorf("GatewayClaims = %v, %v", c, ok)
	}
}

// --- JWKS ---

type jwksServer struct {
	*httptest.Server
	mu    sync.Mutex
	body  []byte
	hits  atomic.Int64
	fails atomic.Int64 // respond 500 to this many requests first
}

func newJWKSServer(t testing.TB, keys ...jwk.Key) *jwksServer {
	t.Helper()
	s := &jwksServer{}
	s.setKeys(t, keys...)
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		s.hits.Add(1)
		if s.fails.Add(-1) >= 0 {
			http.Error(w, "unavailable", http.StatusInternalServerError)
			return
		}
		s.mu.Lock()
		body := s.body
		s.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(body)
	}))
	t.Cleanup(s.Close)
	return s
}

// setKeys publishes the public halves of keys.
func (s *jwksServer) setKeys(t testing.TB, keys ...jwk.Key) {
	t.Helper()
	set := jwk.NewSet()
	for _, k := range keys {
		pub, err := k.PublicKey()
		if err != nil {
			t.Fatal(err)
		}
		if err := set.AddKey(pub); err != nil {
			t.Fatal(err)
		}
	}
	b, err := json.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	s.mu.Lock()
	s.body = b
	s.mu.Unlock()
}

type keyPair struct {
	jwk jwk.Key // private, with kid and alg
	raw any     // the crypto private key
}

func rsaKey(t testing.TB, kid string, alg jwa.SignatureAlgorithm) keyPair {
	t.Helper()
	priv, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return importKey(t, priv, kid, alg)
}

func ecKey(t testing.TB, kid string) keyPair {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return importKey(t, priv, kid, jwa.ES256())
}

func importKey(t testing.TB, priv any, kid string, alg jwa.SignatureAlgorithm) keyPair {
	t.Helper()
	k, err := jwk.Import(priv)
	if err != nil {
		t.Fatal(err)
	}
	if err := k.Set(jwk.KeyIDKey, kid); err != nil {
		t.Fatal(err)
	}
	if alg.String() != "" {
		if err := k.Set(jwk.AlgorithmKey, alg); err != nil {
			t.Fatal(err)
		}
	}
	return keyPair{jwk: k, raw: priv}
}

// ready waits until the Authenticator has the key set (its first fetch runs in the background),
// by verifying a token that must pass once the set is loaded.
func ready(t *testing.T, a *auth.Authenticator, probe string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := a.Verify(t.Context(), probe)
		if err == nil {
			return
		}
		if !strings.Contains(err.Error(), "not ready") || time.Now().After(deadline) {
			t.Fatalf("JWKS never became usable: %v", err)
		}
		time.Sleep(5 * time.Millisecond) // polling for readiness, not a timing assertion
	}
}

func TestVerifyJWKS(t *testing.T) {
	rs := rsaKey(t, "rsa-1", jwa.RS256())
	es := ecKey(t, "ec-1")
	noAlg := rsaKey(t, "rsa-noalg", jwa.SignatureAlgorithm{})
	ps := rsaKey(t, "rsa-ps", jwa.PS256())
	other := rsaKey(t, "rsa-1", jwa.RS256()) // same kid, different key: an impostor
	srv := newJWKSServer(t, rs.jwk, es.jwk, noAlg.jwk, ps.jwk)

	rsaPub := &rs.raw.(*rsa.PrivateKey).PublicKey
	der, err := x509.MarshalPKIXPublicKey(rsaPub)
	if err != nil {
		t.Fatal(err)
	}
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	pubJWK, err := rs.jwk.PublicKey()
	if err != nil {
		t.Fatal(err)
	}
	pubJWKJSON, err := json.Marshal(pubJWK)
	if err != nil {
		t.Fatal(err)
	}

	jwksOnly := auth.Config{JWKSURL: srv.URL, AdminClaim: "role", AdminValue: "admin"}
	both := auth.Config{JWKSURL: srv.URL, HS256Secret: hsSecret, AdminClaim: "role", AdminValue: "admin"}
	esOnly := auth.Config{JWKSURL: srv.URL, Algorithms: []string{"ES256"}}
	withPS := auth.Config{JWKSURL: srv.URL, Algorithms: []string{"RS256", "PS256"}}

	tests := []struct {
		name      string
		cfg       auth.Config
		token     string
		wantUser  string
		wantAdmin bool
	}{
		{name: "RS256", cfg: jwksOnly, token: mint(t, jwa.RS256(), rs.jwk, "rsa-1", claims()), wantUser: "alice"},
		{name: "ES256", cfg: jwksOnly, token: mint(t, jwa.ES256(), es.jwk, "ec-1", claims()), wantUser: "alice"},
		{name: "RS256 admin", cfg: jwksOnly, token: mint(t, jwa.RS256(), rs.jwk, "rsa-1", edit(claims(), func(c map[string]any) { c["role"] = "admin" })), wantUser: "alice", wantAdmin: true},
		{name: "RS256 with a key that has no alg", cfg: jwksOnly, token: mint(t, jwa.RS256(), noAlg.jwk, "rsa-noalg", claims()), wantUser: "alice"},
		{name: "RS256 and HS256 both configured", cfg: both, token: mint(t, jwa.RS256(), rs.jwk, "rsa-1", claims()), wantUser: "alice"},
		{name: "HS256 with both configured", cfg: both, token: mint(t, jwa.HS256(), hsSecret, "", claims()), wantUser: "alice"},
		{name: "PS256 when allowed", cfg: withPS, token: mint(t, jwa.PS256(), ps.jwk, "rsa-ps", claims()), wantUser: "alice"},

		{name: "unknown kid", cfg: jwksOnly, token: mint(t, jwa.RS256(), rs.raw, "rsa-404", claims())},
		{name: "no kid", cfg: jwksOnly, token: mint(t, jwa.RS256(), rs.raw, "", claims())},
		{name: "impostor key with a known kid", cfg: jwksOnly, token: mint(t, jwa.RS256(), other.raw, "rsa-1", claims())},
		{name: "HS256 when only JWKS is configured", cfg: jwksOnly, token: mint(t, jwa.HS256(), hsSecret, "", claims())},
		{name: "algorithm confusion: HMAC with the RSA public key PEM", cfg: jwksOnly, token: mint(t, jwa.HS256(), pubPEM, "rsa-1", claims())},
		{name: "algorithm confusion: HMAC with the RSA public key DER", cfg: jwksOnly, token: mint(t, jwa.HS256(), der, "rsa-1", claims())},
		{name: "algorithm confusion: HMAC with the public JWK JSON", cfg: jwksOnly, token: mint(t, jwa.HS256(), pubJWKJSON, "rsa-1", claims())},
		{name: "algorithm confusion with HS256 also enabled", cfg: both, token: mint(t, jwa.HS256(), pubPEM, "rsa-1", claims())},
		{name: "RS256 when only ES256 is allowed", cfg: esOnly, token: mint(t, jwa.RS256(), rs.jwk, "rsa-1", claims())},
		{name: "ES256 header on an RSA kid", cfg: jwksOnly, token: mint(t, jwa.ES256(), es.raw, "rsa-1", claims())},
		{name: "RS256 header on an EC kid", cfg: jwksOnly, token: mint(t, jwa.RS256(), rs.raw, "ec-1", claims())},
		{name: "PS256 with a key published for RS256", cfg: withPS, token: mint(t, jwa.PS256(), rs.raw, "rsa-1", claims())},
		{name: "RS512 is not in the default algorithms", cfg: jwksOnly, token: mint(t, jwa.RS512(), rs.raw, "rsa-noalg", claims())},
		{name: "alg none with a kid", cfg: jwksOnly, token: unsigned(t, claims())},
		{name: "RS256 expired", cfg: jwksOnly, token: mint(t, jwa.RS256(), rs.jwk, "rsa-1", edit(claims(), func(c map[string]any) { c["exp"] = time.Now().Add(-time.Hour) }))},
		{name: "RS256 wrong audience", cfg: jwksOnly, token: mint(t, jwa.RS256(), rs.jwk, "rsa-1", edit(claims(), func(c map[string]any) { c["aud"] = "other" }))},
	}
	auths := map[string]*auth.Authenticator{}
	esProbe := mint(t, jwa.ES256(), es.jwk, "ec-1", claims())
	rsProbe := mint(t, jwa.RS256(), rs.jwk, "rsa-1", claims())
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key := strings.Join(tt.cfg.Algorithms, ",") + "|" + string(tt.cfg.HS256Secret)
			a := auths[key]
			if a == nil {
				cfg := tt.cfg
				cfg.Issuer, cfg.Audience = issuer, audience
				var err error
				if a, err = auth.New(context.Background(), cfg); err != nil {
					t.Fatal(err)
				}
				auths[key] = a
				probe := esProbe
				if len(cfg.Algorithms) > 0 && !slices.Contains(cfg.Algorithms, "ES256") {
					probe = rsProbe
				}
				ready(t, a, probe)
			}
			p, err := a.Verify(t.Context(), tt.token)
			if tt.wantUser == "" {
				if err == nil {
					t.Fatalf("Verify accepted the token as %+v", p)
				}
				if !errors.Is(err, auth.ErrInvalidToken) {
					t.Errorf("error %v does not wrap ErrInvalidToken", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if want := (auth.Principal{UserID: tt.wantUser, Admin: tt.wantAdmin}); p != want {
				t.Fatalf("principal = %+v, want %+v", p, want)
			}
		})
	}
}

func TestJWKSKeyRotation(t *testing.T) {
	k1 := rsaKey(t, "2026-11-a", jwa.RS256())
	k2 := ecKey(t, "2026-11-b")
	k3 := rsaKey(t, "2026-11-c", jwa.RS256())
	srv := newJWKSServer(t, k1.jwk)
	a := newAuth(t, auth.Config{JWKSURL: srv.URL})
	ready(t, a, mint(t, jwa.RS256(), k1.jwk, "2026-11-a", claims()))
	if got := srv.hits.Load(); got != 1 {
		t.Fatalf("JWKS fetched %d times before rotation, want 1", got)
	}

	// The issuer rotates: k2 is published, then tokens signed with it arrive.
	srv.setKeys(t, k1.jwk, k2.jwk)
	p, err := a.Verify(t.Context(), mint(t, jwa.ES256(), k2.jwk, "2026-11-b", claims()))
	if err != nil || p.UserID != "alice" {
		t.Fatalf("token with the rotated-in kid: %+v, %v", p, err)
	}
	if got := srv.hits.Load(); got != 2 {
		t.Fatalf("JWKS fetched %d times, want 2 (one refresh for the new kid)", got)
	}
	// Known kids need no fetch.
	for range 5 {
		if _, err := a.Verify(t.Context(), mint(t, jwa.RS256(), k1.jwk, "2026-11-a", claims())); err != nil {
			t.Fatal(err)
		}
	}
	if got := srv.hits.Load(); got != 2 {
		t.Fatalf("JWKS fetched %d times for known kids, want 2", got)
	}

	// Another unknown kid within the minute: no second refresh, so it is rejected even once
	// published; unknown kids cannot make the Authenticator hammer the issuer.
	srv.setKeys(t, k1.jwk, k2.jwk, k3.jwk)
	for range 3 {
		if _, err := a.Verify(t.Context(), mint(t, jwa.RS256(), k3.jwk, "2026-11-c", claims())); err == nil {
			t.Fatal("a second new kid within a minute was accepted; refreshes are limited to one a minute")
		}
	}
	if got := srv.hits.Load(); got != 2 {
		t.Fatalf("JWKS fetched %d times, want 2 (refresh limited to once a minute)", got)
	}
}

// When the first JWKS fetch of a cold start fails (or has not finished), Verify rejects every
// asymmetric token with "JWKS unavailable": lookupKey returns on the cache's "not ready" error
// without trying a refresh, and httprc only retries after its 15-minute minimum interval.
func TestJWKSRecoversFromFailedFirstFetch(t *testing.T) {
	k := rsaKey(t, "k", jwa.RS256())
	srv := newJWKSServer(t, k.jwk)
	srv.fails.Store(1) // the issuer hiccups once during the cold start
	a := newAuth(t, auth.Config{JWKSURL: srv.URL})
	tok := mint(t, jwa.RS256(), k.jwk, "k", claims())
	deadline := time.Now().Add(10 * time.Second)
	for srv.hits.Load() < 1 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond) // wait for the background fetch to happen
	}
	if _, err := a.Verify(t.Context(), tok); err != nil {
		t.Fatalf("valid token rejected after one failed JWKS fetch (server now healthy): %v", err)
	}
}

func TestJWKSUnavailable(t *testing.T) {
	k := rsaKey(t, "k", jwa.RS256())
	srv := newJWKSServer(t, k.jwk)
	srv.Close() // nothing listens any more
	a := newAuth(t, auth.Config{JWKSURL: srv.URL, HS256Secret: hsSecret})
	if p, err := a.Verify(t.Context(), mint(t, jwa.RS256(), k.jwk, "k", claims())); err == nil || !errors.Is(err, auth.ErrInvalidToken) {
		t.Fatalf("RS256 with the JWKS down = %+v, %v; want ErrInvalidToken", p, err)
	}
	// HS256 keeps working without the JWKS.
	if _, err := a.Verify(t.Context(), mint(t, jwa.HS256(), hsSecret, "", claims())); err != nil {
		t.Fatalf("HS256 with the JWKS down: %v", err)
	}
}

// Every refusal says in plain words what is wrong, and none repeats a library's internals.
func TestVerifyReasons(t *testing.T) {
	a := newAuth(t, auth.Config{HS256Secret: hsSecret})
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	hs := func(f func(map[string]any)) string { return mint(t, jwa.HS256(), hsSecret, "", edit(claims(), f)) }
	tests := []struct {
		name, token, want string
	}{
		{"expired", hs(func(c map[string]any) { c["exp"] = time.Now().Add(-time.Hour) }), "expired"},
		{"not yet valid", hs(func(c map[string]any) { c["nbf"] = time.Now().Add(time.Hour) }), "not valid yet"},
		{"issued in the future", hs(func(c map[string]any) { c["iat"] = time.Now().Add(time.Hour) }), "issued in the future"},
		{"wrong issuer", hs(func(c map[string]any) { c["iss"] = "https://other.test" }), "issuer"},
		{"wrong audience", hs(func(c map[string]any) { c["aud"] = []string{"other"} }), "audience"},
		{"no exp", hs(func(c map[string]any) { delete(c, "exp") }), "required claim"},
		{"no sub", hs(func(c map[string]any) { delete(c, "sub") }), "required claim"},
		{"sub with a NUL", hs(func(c map[string]any) { c["sub"] = "a\x00b" }), "sub"},
		{"bad signature", mint(t, jwa.HS256(), []byte("another-secret-of-at-least-32-bytes!!"), "", claims()), "signature"},
		{"alg none", unsigned(t, claims()), "algorithm"},
		{"RS256 without a JWKS", mint(t, jwa.RS256(), rsaKey, "k1", claims()), "algorithm"},
		{"garbage", "not.a.jwt", "malformed"},
		{"one part", "abc", "malformed"},
		{"too long", strings.Repeat("a", 17<<10), "too long"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := a.Verify(context.Background(), tt.token)
			if !errors.Is(err, auth.ErrInvalidToken) {
				t.Fatalf("err = %v, want ErrInvalidToken", err)
			}
			msg := err.Error()
			if !strings.Contains(msg, tt.want) {
				t.Errorf("message %q does not say %q", msg, tt.want)
			}
			for _, internal := range []string{"jwt.", "jws.", "[]uint8", "ParseString", "key provider"} {
				if strings.Contains(msg, internal) {
					t.Errorf("message %q leaks library internals (%s)", msg, internal)
				}
			}
		})
	}
}

// A token verified once is answered from the cache on the next request, without allocating:
// the cache sits in front of every authenticated request.
func TestVerifyCacheHitDoesNotAllocate(t *testing.T) {
	a := newAuth(t, auth.Config{HS256Secret: hsSecret})
	token := mint(t, jwa.HS256(), hsSecret, "", claims())
	if _, err := a.Verify(context.Background(), token); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	allocs := testing.AllocsPerRun(200, func() {
		if p, err := a.Verify(ctx, token); err != nil || p.UserID != "alice" {
			t.Fatalf("cached verify: %+v, %v", p, err)
		}
	})
	if allocs != 0 {
		t.Errorf("a cache hit allocates %.1f times, want 0", allocs)
	}
}
