// Package auth turns a request's credentials into a Principal: the claims API Gateway's JWT
// authorizer already verified, or, when there are none (local dev, a route without the
// authorizer), a bearer token this package verifies itself with lestrrat-go/jwx: the algorithm
// pinned per key, and exp, iss and aud checked.
package auth

import (
	"context"
	"crypto/ecdsa"
	"crypto/rsa"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/lestrrat-go/httprc/v3"
	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"
	"github.com/lestrrat-go/jwx/v3/jwt"

	"github.com/helixhq/helix/shared/ident"
)

// Principal is the authenticated caller.
type Principal struct {
	UserID string
	Admin  bool
	// Monitoring: the admin claim carries the monitoring role (Config.MonitoringValue), which
	// reads the live operation feed without being an admin. Admins need not carry it.
	Monitoring bool
}

// Errors a client can cause; both mean 401. Every verification failure wraps ErrInvalidToken
// with a reason in plain words (expired, wrong audience, bad signature, ...): safe to show, since
// it never holds the token or a library's internals.
var (
	ErrMissingToken = errors.New("missing bearer token")
	ErrInvalidToken = errors.New("invalid token")
)

// Why the key provider found no key; classified into reasons by invalid.
var (
	errAlgorithm       = errors.New("algorithm not accepted")
	errNoKid           = errors.New("no kid")
	errUnknownKid      = errors.New("unknown kid")
	errKeyMismatch     = errors.New("key does not fit")
	errJWKSUnavailable = errors.New("JWKS unavailable")
)

// invalid is the client-facing error of a failed verification.
func invalid(reason string) error { return fmt.Errorf("%w: %s", ErrInvalidToken, reason) }

// reasonOf says in plain words why jwt.ParseString refused a token.
func reasonOf(err error) string {
	switch {
	case errors.Is(err, jwt.TokenExpiredError()):
		return "the token has expired"
	case errors.Is(err, jwt.TokenNotYetValidError()):
		return "the token is not valid yet (nbf is in the future)"
	case errors.Is(err, jwt.InvalidIssuedAtError()):
		return "the token was issued in the future (iat)"
	case errors.Is(err, jwt.InvalidIssuerError()):
		return "the token's issuer (iss) is not the one this server trusts"
	case errors.Is(err, jwt.InvalidAudienceError()):
		return "the token's audience (aud) is not this API"
	case errors.Is(err, jwt.MissingRequiredClaimError()):
		return "the token lacks a required claim (exp and sub are required)"
	case errors.Is(err, errAlgorithm):
		return "the token is signed with an algorithm this server does not accept"
	case errors.Is(err, errNoKid):
		return "the token names no signing key (kid)"
	case errors.Is(err, errUnknownKid):
		return "the token's signing key (kid) is not in the issuer's key set"
	case errors.Is(err, errKeyMismatch):
		return "the token's signing key does not fit its algorithm"
	case errors.Is(err, errJWKSUnavailable):
		return "the issuer's signing keys could not be fetched; retry"
	case errors.Is(err, jws.VerificationError()):
		return "the token's signature does not verify"
	case errors.Is(err, jwt.ValidateError()):
		return "the token's claims are not valid"
	}
	return "the token is malformed (not a signed JWT)"
}

// Config configures verification and the admin rule.
type Config struct {
	// HS256Secret verifies HS256 tokens (Supabase-style shared secret); empty disables HS256.
	HS256Secret []byte
	// JWKSURL verifies asymmetric tokens with the keys it serves; empty disables them.
	JWKSURL string
	// Algorithms are the asymmetric algorithms accepted with JWKS keys (default RS256, ES256).
	Algorithms []string
	Issuer     string
	Audience   string
	// Leeway tolerates clock skew on exp and nbf.
	Leeway time.Duration
	// AdminClaim is the claim (a dotted path into nested objects for self-verified tokens) whose
	// value, or one of whose values, equal to AdminValue makes the caller an admin.
	AdminClaim   string
	AdminValue   string
	AdminUserIDs []string
	// MonitoringValue, when set, is a value of AdminClaim that grants the monitoring role.
	MonitoringValue string
}

// Authenticator authenticates requests. It is safe for concurrent use.
type Authenticator struct {
	cfg   Config
	algs  []jwa.SignatureAlgorithm
	cache *jwk.Cache // nil without JWKS

	refreshMu   sync.Mutex
	lastRefresh time.Time // forced fetch for an unknown kid
	lastRetry   time.Time // forced fetch after a failed first fetch

	verified *verifiedCache
}

// New builds an Authenticator. With a JWKS URL it starts a background cache of the key set; the
// first fetch happens on the first token that needs it, so a cold start does not wait for it.
func New(ctx context.Context, cfg Config) (*Authenticator, error) {
	if cfg.Issuer == "" || cfg.Audience == "" {
		return nil, errors.New("auth: issuer and audience are required")
	}
	if len(cfg.HS256Secret) == 0 && cfg.JWKSURL == "" {
		return nil, errors.New("auth: configure an HS256 secret, a JWKS URL, or both")
	}
	if len(cfg.HS256Secret) > 0 {
		if err := CheckHS256Secret(cfg.HS256Secret); err != nil {
			return nil, fmt.Errorf("auth: %w", err)
		}
	}
	if cfg.Leeway == 0 {
		cfg.Leeway = 30 * time.Second
	}
	if len(cfg.Algorithms) == 0 {
		cfg.Algorithms = []string{"RS256", "ES256"}
	}
	a := &Authenticator{cfg: cfg, verified: newVerifiedCache(4096, 5*time.Minute)}
	for _, name := range cfg.Algorithms {
		alg, ok := jwa.LookupSignatureAlgorithm(name)
		if !ok || !asymmetric(alg) {
			return nil, fmt.Errorf("auth: algorithm %q is not an accepted asymmetric algorithm", name)
		}
		a.algs = append(a.algs, alg)
	}
	if cfg.JWKSURL != "" {
		cache, err := jwk.NewCache(ctx, httprc.NewClient())
		if err != nil {
			return nil, fmt.Errorf("auth: JWKS cache: %w", err)
		}
		if err := cache.Register(ctx, cfg.JWKSURL, jwk.WithWaitReady(false)); err != nil {
			return nil, fmt.Errorf("auth: register JWKS URL: %w", err)
		}
		a.cache = cache
	}
	return a, nil
}

// MinHS256SecretLen is the shortest HS256 secret accepted: RFC 7518 wants a key at least as long
// as the hash (256 bits).
const MinHS256SecretLen = 32

// CheckHS256Secret says whether secret is long enough to sign and verify with; `make token`
// checks it too, so it refuses to mint a token the server would not accept.
func CheckHS256Secret(secret []byte) error {
	if len(secret) < MinHS256SecretLen {
		return fmt.Errorf("the HS256 secret (HELIX_JWT_SECRET) must be at least %d bytes, got %d", MinHS256SecretLen, len(secret))
	}
	return nil
}

func asymmetric(alg jwa.SignatureAlgorithm) bool {
	switch alg {
	case jwa.RS256(), jwa.RS384(), jwa.RS512(), jwa.PS256(), jwa.PS384(), jwa.PS512(),
		jwa.ES256(), jwa.ES384(), jwa.ES512(), jwa.EdDSA():
		return true
	}
	return false
}

// Verify checks a bearer token and returns its principal. Every failure wraps ErrInvalidToken.
func (a *Authenticator) Verify(ctx context.Context, token string) (Principal, error) {
	if token == "" {
		return Principal{}, ErrMissingToken
	}
	if len(token) > 16<<10 {
		return Principal{}, invalid("the token is too long")
	}
	now := time.Now()
	if p, ok := a.verified.get(token, now); ok {
		return p, nil
	}
	tok, err := jwt.ParseString(token,
		jwt.WithKeyProvider(jws.KeyProviderFunc(a.keys)),
		jwt.WithContext(ctx),
		jwt.WithValidate(true),
		jwt.WithIssuer(a.cfg.Issuer),
		jwt.WithAudience(a.cfg.Audience),
		jwt.WithAcceptableSkew(a.cfg.Leeway),
		jwt.WithRequiredClaim("exp"),
		jwt.WithRequiredClaim("sub"),
	)
	if err != nil {
		return Principal{}, invalid(reasonOf(err))
	}
	sub, _ := tok.Subject()
	if err := ident.Check(sub); err != nil {
		return Principal{}, invalid("the token's sub is not a usable user id: it " + err.Error())
	}
	values := tokenClaim(tok, a.cfg.AdminClaim)
	p := Principal{UserID: sub, Admin: a.isAdmin(sub, values), Monitoring: a.isMonitoring(values)}
	if exp, ok := tok.Expiration(); ok {
		a.verified.put(token, p, exp.Add(a.cfg.Leeway), now)
	}
	return p, nil
}

// keys hands jws the one key that may verify this signature. The algorithm comes from the
// token, so it is checked against what this deployment pins before any key is offered: HS256
// only with the shared secret, the configured asymmetric algorithms only with a JWKS key of a
// matching type. Anything else ("none", HS256 signed with a public key, ...) finds no key.
func (a *Authenticator) keys(ctx context.Context, sink jws.KeySink, sig *jws.Signature, _ *jws.Message) error {
	alg, ok := sig.ProtectedHeaders().Algorithm()
	if !ok {
		return fmt.Errorf("%w: token has no alg", errAlgorithm)
	}
	if alg == jwa.HS256() {
		if len(a.cfg.HS256Secret) == 0 {
			return fmt.Errorf("%w: HS256 tokens are not accepted", errAlgorithm)
		}
		sink.Key(jwa.HS256(), a.cfg.HS256Secret)
		return nil
	}
	if a.cache == nil || !slices.Contains(a.algs, alg) {
		return fmt.Errorf("%w: %s", errAlgorithm, alg)
	}
	kid, ok := sig.ProtectedHeaders().KeyID()
	if !ok || kid == "" {
		return errNoKid
	}
	key, err := a.lookupKey(ctx, kid)
	if err != nil {
		return err
	}
	if ka, ok := key.Algorithm(); ok && ka.String() != alg.String() {
		return fmt.Errorf("%w: key %s is for %s, not %s", errKeyMismatch, kid, ka, alg)
	}
	var raw any
	if err := jwk.Export(key, &raw); err != nil {
		return fmt.Errorf("%w: key %s: %w", errKeyMismatch, kid, err)
	}
	if !keyFits(alg, raw) {
		return fmt.Errorf("%w: key %s does not fit %s", errKeyMismatch, kid, alg)
	}
	sink.Key(alg, raw)
	return nil
}

// lookupKey finds a key by id, refreshing the set at most once a minute when the id is unknown
// (the issuer rotated its keys). Before the first fetch has landed it waits briefly for it; if
// that fetch failed (the issuer was unreachable at cold start) it fetches again, at most every
// ten seconds, rather than waiting for the cache's own schedule, which can be many minutes.
func (a *Authenticator) lookupKey(ctx context.Context, kid string) (jwk.Key, error) {
	set, err := a.cache.Lookup(ctx, a.cfg.JWKSURL)
	if err != nil {
		wait, cancel := context.WithTimeout(ctx, 2*time.Second)
		ready := a.cache.Ready(wait, a.cfg.JWKSURL)
		cancel()
		if ready {
			set, err = a.cache.Lookup(ctx, a.cfg.JWKSURL)
		}
		if err != nil {
			if !a.allow(&a.lastRetry, 10*time.Second) {
				return nil, fmt.Errorf("%w: %w", errJWKSUnavailable, err)
			}
			if set, err = a.cache.Refresh(ctx, a.cfg.JWKSURL); err != nil {
				return nil, fmt.Errorf("%w: %w", errJWKSUnavailable, err)
			}
		}
	}
	if key, ok := set.LookupKeyID(kid); ok {
		return key, nil
	}
	if !a.allow(&a.lastRefresh, time.Minute) {
		return nil, fmt.Errorf("%w %q", errUnknownKid, kid)
	}
	if set, err = a.cache.Refresh(ctx, a.cfg.JWKSURL); err != nil {
		return nil, fmt.Errorf("%w: %w", errJWKSUnavailable, err)
	}
	if key, ok := set.LookupKeyID(kid); ok {
		return key, nil
	}
	return nil, fmt.Errorf("%w %q", errUnknownKid, kid)
}

// allow lets one forced key-set fetch through per interval, so a stream of bogus kids or an
// unreachable issuer cannot turn into a stream of requests to the issuer.
func (a *Authenticator) allow(last *time.Time, interval time.Duration) bool {
	a.refreshMu.Lock()
	defer a.refreshMu.Unlock()
	if time.Since(*last) <= interval {
		return false
	}
	*last = time.Now()
	return true
}

func keyFits(alg jwa.SignatureAlgorithm, raw any) bool {
	switch alg {
	case jwa.RS256(), jwa.RS384(), jwa.RS512(), jwa.PS256(), jwa.PS384(), jwa.PS512():
		_, ok := raw.(*rsa.PublicKey)
		return ok
	case jwa.ES256(), jwa.ES384(), jwa.ES512():
		_, ok := raw.(*ecdsa.PublicKey)
		return ok
	}
	return true // EdDSA: jws checks the key type itself
}

// FromGatewayClaims builds the principal from the claims API Gateway's JWT authorizer verified.
// API Gateway flattens claims to strings; arrays arrive as "[a b]".
func (a *Authenticator) FromGatewayClaims(claims map[string]string) (Principal, error) {
	sub := claims["sub"]
	if sub == "" {
		return Principal{}, invalid("the authorizer's claims carry no sub")
	}
	if err := ident.Check(sub); err != nil {
		return Principal{}, invalid("the token's sub is not a usable user id: it " + err.Error())
	}
	var values []string
	if v, ok := claims[a.cfg.AdminClaim]; ok {
		values = splitGatewayList(v)
	}
	return Principal{UserID: sub, Admin: a.isAdmin(sub, values), Monitoring: a.isMonitoring(values)}, nil
}

func (a *Authenticator) isMonitoring(claimValues []string) bool {
	return a.cfg.MonitoringValue != "" && slices.Contains(claimValues, a.cfg.MonitoringValue)
}

func (a *Authenticator) isAdmin(sub string, claimValues []string) bool {
	if slices.Contains(a.cfg.AdminUserIDs, sub) {
		return true
	}
	return a.cfg.AdminValue != "" && slices.Contains(claimValues, a.cfg.AdminValue)
}

// tokenClaim reads a claim by dotted path and returns its string value or values.
func tokenClaim(tok jwt.Token, path string) []string {
	if path == "" {
		return nil
	}
	first, rest, nested := strings.Cut(path, ".")
	var v any
	if err := tok.Get(first, &v); err != nil {
		return nil
	}
	for nested {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		var key string
		key, rest, nested = strings.Cut(rest, ".")
		v = m[key]
	}
	switch v := v.(type) {
	case string:
		return []string{v}
	case []any:
		out := make([]string, 0, len(v))
		for _, e := range v {
			if s, ok := e.(string); ok {
				out = append(out, s)
			}
		}
		return out
	case []string:
		return v
	}
	return nil
}

func splitGatewayList(v string) []string {
	if strings.HasPrefix(v, "[") && strings.HasSuffix(v, "]") {
		return strings.FieldsFunc(v[1:len(v)-1], func(r rune) bool { return r == ' ' || r == ',' })
	}
	return []string{v}
}

type gatewayClaimsKey struct{}

// WithGatewayClaims records the claims of API Gateway's JWT authorizer on the request context.
func WithGatewayClaims(ctx context.Context, claims map[string]string) context.Context {
	return context.WithValue(ctx, gatewayClaimsKey{}, claims)
}

// GatewayClaims returns the authorizer claims recorded on ctx, if any.
func GatewayClaims(ctx context.Context) (map[string]string, bool) {
	c, ok := ctx.Value(gatewayClaimsKey{}).(map[string]string)
	return c, ok && len(c) > 0
}
