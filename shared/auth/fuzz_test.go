package auth_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"

	"github.com/helixhq/helix/shared/auth"
)

// FuzzVerify feeds arbitrary strings to Verify (HS256 and a JWKS with one RSA key configured):
// it never panics, every failure wraps ErrMissingToken or ErrInvalidToken with a zero
// principal, and a success can only be one of the two users whose tokens were really signed.
func FuzzVerify(f *testing.F) {
	k := rsaKey(f, "fuzz-rsa", jwa.RS256())
	srv := newJWKSServer(f, k.jwk)
	a, err := auth.New(f.Context(), auth.Config{
		HS256Secret: hsSecret, JWKSURL: srv.URL, Issuer: issuer, Audience: audience,
		AdminClaim: "role", AdminValue: "admin",
	})
	if err != nil {
		f.Fatal(err)
	}
	long := func(c map[string]any) map[string]any {
		c["exp"] = time.Now().Add(24 * time.Hour)
		return c
	}
	hs := mint(f, jwa.HS256(), hsSecret, "", long(claims()))
	rs := mint(f, jwa.RS256(), k.jwk, "fuzz-rsa", edit(long(claims()), func(c map[string]any) { c["sub"] = "bob" }))
	admin := mint(f, jwa.HS256(), hsSecret, "", edit(long(claims()), func(c map[string]any) { c["role"] = "admin" }))
	for _, seed := range []string{
		hs, rs, admin,
		hs[:len(hs)/2], rs[:len(rs)-10], hs + ".", "." + hs, strings.ReplaceAll(hs, ".", ".."),
		"", ".", "..", "a.b.c", "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.", "\x00\xff\xfe",
		`{"payload":"eyJzdWIiOiJ4In0","signatures":[]}`, strings.Repeat("A", 20000),
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, token string) {
		p, err := a.Verify(t.Context(), token)
		if err != nil {
			if !errors.Is(err, auth.ErrInvalidToken) && !errors.Is(err, auth.ErrMissingToken) {
				t.Fatalf("Verify error %v wraps neither ErrInvalidToken nor ErrMissingToken", err)
			}
			if p != (auth.Principal{}) {
				t.Fatalf("failed Verify returned principal %+v", p)
			}
			return
		}
		switch p {
		case auth.Principal{UserID: "alice"}, auth.Principal{UserID: "alice", Admin: true}, auth.Principal{UserID: "bob"}:
		default:
			t.Fatalf("token %q verified as %+v, which no signed token carries", token, p)
		}
	})
}
