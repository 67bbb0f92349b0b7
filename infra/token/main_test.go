package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/helixhq/helix/infra/devenv"
	"github.com/helixhq/helix/shared/auth"
)

func TestToken(t *testing.T) {
	dev := devenv.Defaults()
	verifier, err := auth.New(context.Background(), auth.Config{
		HS256Secret: []byte(dev["HELIX_JWT_SECRET"]), Issuer: dev["HELIX_JWT_ISSUER"], Audience: dev["HELIX_JWT_AUDIENCE"],
		AdminClaim: "role", AdminValue: "admin",
	})
	if err != nil {
		t.Fatal(err)
	}
	noEnv := func(string) string { return "" }
	tests := []struct {
		name     string
		args     []string
		getenv   func(string) string
		wantCode int
		wantErr  string
		want     auth.Principal
	}{
		{name: "user", args: []string{"-user", "alice"}, getenv: noEnv, want: auth.Principal{UserID: "alice"}},
		{name: "admin", args: []string{"-user", "ops", "-role", "admin"}, getenv: noEnv, want: auth.Principal{UserID: "ops", Admin: true}},
		{name: "no user", args: nil, getenv: noEnv, wantCode: 2, wantErr: "USER="},
		{name: "empty user", args: []string{"-user", ""}, getenv: noEnv, wantCode: 2, wantErr: "USER="},
		{name: "user with a NUL", args: []string{"-user", "a\x00b"}, getenv: noEnv, wantCode: 2, wantErr: "control"},
		{name: "negative TTL", args: []string{"-user", "a", "-ttl", "-1h"}, getenv: noEnv, wantCode: 2, wantErr: "TTL"},
		{name: "short secret", args: []string{"-user", "a"}, getenv: func(k string) string {
			if k == "HELIX_JWT_SECRET" {
				return "short"
			}
			return ""
		}, wantCode: 1, wantErr: "at least 32 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := run(tt.args, tt.getenv, &out, &errb)
			if code != tt.wantCode {
				t.Fatalf("exit %d, want %d; stderr %s", code, tt.wantCode, errb.String())
			}
			if tt.wantCode != 0 {
				if !strings.Contains(errb.String(), tt.wantErr) || out.Len() != 0 {
					t.Errorf("stderr %q, stdout %q; want an error mentioning %q and no token", errb.String(), out.String(), tt.wantErr)
				}
				return
			}
			p, err := verifier.Verify(context.Background(), strings.TrimSpace(out.String()))
			if err != nil || p != tt.want {
				t.Fatalf("the dev server's verifier says %+v, %v; want %+v", p, err, tt.want)
			}
		})
	}
}

// TTL is honoured: a token for one minute expires within the minute.
func TestTokenTTL(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"-user", "alice", "-ttl", "1m"}, func(string) string { return "" }, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	parts := strings.Split(strings.TrimSpace(out.String()), ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT: %q", out.String())
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var claims struct {
		Exp int64 `json:"exp"`
	}
	if err := json.Unmarshal(payload, &claims); err != nil {
		t.Fatal(err)
	}
	if d := time.Until(time.Unix(claims.Exp, 0)); d <= 0 || d > time.Minute+time.Second {
		t.Fatalf("token expires in %v, want about 1m", d)
	}
}
