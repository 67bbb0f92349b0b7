// Package config reads Helix's configuration from the environment into typed values, once per
// cold start. Values that are secrets may be references ("ssm:/path", "secretsmanager:id") that
// the composition root resolves with package secrets before use.
package config

import (
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/helixhq/helix/shared/money"
	"github.com/helixhq/helix/shared/postgres"
)

// Config is everything a Helix function reads from its environment.
type Config struct {
	DatabaseURL string // DATABASE_URL (secret)
	DB          DB
	Auth        Auth
	Budget      Budget
	CatalogTTL  time.Duration // HELIX_CATALOG_TTL
	LogLevel    slog.Level    // HELIX_LOG_LEVEL
}

// DB tunes the connection pool.
type DB struct {
	MaxConns int32  // HELIX_DB_MAX_CONNS
	ExecMode string // HELIX_DB_EXEC_MODE
}

// Auth configures token verification and the admin rule.
type Auth struct {
	HS256Secret  string   // HELIX_JWT_SECRET (secret)
	JWKSURL      string   // HELIX_JWT_JWKS_URL
	Algorithms   []string // HELIX_JWT_ALGORITHMS
	Issuer       string   // HELIX_JWT_ISSUER
	Audience     string   // HELIX_JWT_AUDIENCE
	AdminClaim   string   // HELIX_ADMIN_CLAIM
	AdminValue   string   // HELIX_ADMIN_CLAIM_VALUE
	AdminUserIDs []string // HELIX_ADMIN_USER_IDS
}

// Budget holds the defaults for users without their own limits.
type Budget struct {
	DefaultDailyLimit money.Nano    // HELIX_DEFAULT_DAILY_LIMIT_USD
	DefaultWarning    money.Nano    // HELIX_DEFAULT_WARNING_USD
	ReservationTTL    time.Duration // HELIX_RESERVATION_TTL
}

// Load reads the configuration through getenv (os.Getenv in production) and reports every
// invalid value at once.
func Load(getenv func(string) string) (Config, error) {
	r := reader{getenv: getenv}
	c := Config{
		DatabaseURL: r.str("DATABASE_URL", ""),
		DB: DB{
			MaxConns: int32(r.int("HELIX_DB_MAX_CONNS", 4, 1, 1000)),
			ExecMode: r.str("HELIX_DB_EXEC_MODE", "exec"),
		},
		Auth: Auth{
			HS256Secret:  r.str("HELIX_JWT_SECRET", ""),
			JWKSURL:      r.str("HELIX_JWT_JWKS_URL", ""),
			Algorithms:   r.list("HELIX_JWT_ALGORITHMS", []string{"RS256", "ES256"}),
			Issuer:       r.str("HELIX_JWT_ISSUER", ""),
			Audience:     r.str("HELIX_JWT_AUDIENCE", ""),
			AdminClaim:   r.str("HELIX_ADMIN_CLAIM", "role"),
			AdminValue:   r.str("HELIX_ADMIN_CLAIM_VALUE", "admin"),
			AdminUserIDs: r.list("HELIX_ADMIN_USER_IDS", nil),
		},
		Budget: Budget{
			DefaultDailyLimit: r.usd("HELIX_DEFAULT_DAILY_LIMIT_USD", money.MustUSD(50)),
			DefaultWarning:    r.usd("HELIX_DEFAULT_WARNING_USD", money.MustUSD(25)),
			ReservationTTL:    r.duration("HELIX_RESERVATION_TTL", 5*time.Minute),
		},
		CatalogTTL: r.duration("HELIX_CATALOG_TTL", 5*time.Second),
		LogLevel:   r.level("HELIX_LOG_LEVEL", slog.LevelInfo),
	}
	if _, err := postgres.ParseExecMode(c.DB.ExecMode); err != nil {
		r.fail("HELIX_DB_EXEC_MODE: %v", err)
	}
	if c.DatabaseURL == "" {
		r.fail("DATABASE_URL is required")
	}
	if c.Auth.HS256Secret == "" && c.Auth.JWKSURL == "" {
		r.fail("set HELIX_JWT_SECRET (HS256) or HELIX_JWT_JWKS_URL (RS256/ES256), or both")
	}
	if c.Auth.Issuer == "" || c.Auth.Audience == "" {
		r.fail("HELIX_JWT_ISSUER and HELIX_JWT_AUDIENCE are required")
	}
	if c.Budget.DefaultWarning > c.Budget.DefaultDailyLimit {
		r.fail("HELIX_DEFAULT_WARNING_USD must not exceed HELIX_DEFAULT_DAILY_LIMIT_USD")
	}
	return c, errors.Join(r.errs...)
}

type reader struct {
	getenv func(string) string
	errs   []error
}

func (r *reader) fail(format string, args ...any) {
	r.errs = append(r.errs, fmt.Errorf(format, args...))
}

func (r *reader) str(key, def string) string {
	if v := strings.TrimSpace(r.getenv(key)); v != "" {
		return v
	}
	return def
}

func (r *reader) list(key string, def []string) []string {
	v := r.str(key, "")
	if v == "" {
		return def
	}
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

func (r *reader) int(key string, def, min, max int) int {
	v := r.str(key, "")
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < min || n > max {
		r.fail("%s must be an integer from %d to %d, got %q", key, min, max, v)
		return def
	}
	return n
}

func (r *reader) duration(key string, def time.Duration) time.Duration {
	v := r.str(key, "")
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		r.fail("%s must be a positive duration such as 30s or 5m, got %q", key, v)
		return def
	}
	return d
}

func (r *reader) usd(key string, def money.Nano) money.Nano {
	v := r.str(key, "")
	if v == "" {
		return def
	}
	n, err := money.ParseUSD(v)
	if err != nil {
		r.fail("%s must be a USD amount such as 50 or 12.5, got %q", key, v)
		return def
	}
	return n
}

func (r *reader) level(key string, def slog.Level) slog.Level {
	v := r.str(key, "")
	if v == "" {
		return def
	}
	var l slog.Level
	if err := l.UnmarshalText([]byte(v)); err != nil {
		r.fail("%s must be debug, info, warn or error, got %q", key, v)
		return def
	}
	return l
}
