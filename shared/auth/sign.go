package auth

import (
	"errors"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwt"
)

// TokenSpec describes an HS256 token to mint, for local development (`make token`) and tests.
type TokenSpec struct {
	Secret   []byte
	Subject  string
	Issuer   string
	Audience string
	TTL      time.Duration
	// Claims are extra claims, e.g. {"role": "admin"}.
	Claims map[string]any
	Now    time.Time
}

// SignHS256 mints a token the Authenticator accepts with the same secret, issuer and audience.
func SignHS256(s TokenSpec) (string, error) {
	if s.Subject == "" {
		return "", errors.New("subject is required")
	}
	now := s.Now
	if now.IsZero() {
		now = time.Now()
	}
	b := jwt.NewBuilder().Subject(s.Subject).Issuer(s.Issuer).Audience([]string{s.Audience}).
		IssuedAt(now).Expiration(now.Add(s.TTL))
	for k, v := range s.Claims {
		b = b.Claim(k, v)
	}
	tok, err := b.Build()
	if err != nil {
		return "", err
	}
	signed, err := jwt.Sign(tok, jwt.WithKey(jwa.HS256(), s.Secret))
	return string(signed), err
}
