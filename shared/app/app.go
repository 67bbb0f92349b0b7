// Package app does the cold-start work every Helix function shares: read the environment,
// resolve secret references, read the configuration, set up JSON logging, open the Postgres pool
// and build the authenticator. Each functions/<name>/main.go then builds its own services on top.
package app

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/helixhq/helix/shared/auth"
	"github.com/helixhq/helix/shared/breaker"
	"github.com/helixhq/helix/shared/budget"
	"github.com/helixhq/helix/shared/catalog"
	"github.com/helixhq/helix/shared/config"
	"github.com/helixhq/helix/shared/execute"
	"github.com/helixhq/helix/shared/postgres"
	"github.com/helixhq/helix/shared/secrets"
	"github.com/helixhq/helix/shared/toggles"
)

// Base is what every function starts from.
type Base struct {
	Config config.Config
	Log    *slog.Logger
	Pool   *pgxpool.Pool
	Auth   *auth.Authenticator
	// Getenv reads the environment with secret references already resolved.
	Getenv func(string) string
	// ToggleEnv holds the kill switches the environment overrides.
	ToggleEnv map[string]bool
}

// Options adjust Boot for where it runs.
type Options struct {
	Function string   // logged with every line
	Environ  []string // os.Environ()
	// Defaults supplies values for variables the environment does not set (local dev only).
	Defaults func(string) string
	LogOut   io.Writer // os.Stdout
	// NewSecrets builds the AWS secret resolver; nil means secrets.NewAWSResolver.
	NewSecrets func(context.Context) (*secrets.Resolver, error)
}

// Boot resolves the environment and opens the pool and the authenticator.
func Boot(ctx context.Context, o Options) (*Base, error) {
	// Lambda gives the init phase 10 s: secret stores and the database get 8 of them, so a
	// black-holed endpoint fails the cold start with a clear error instead of a silent timeout.
	// (The authenticator gets the parent: its JWKS cache refreshes in the background for the
	// life of the instance and stops when its context ends.)
	parent := ctx
	ctx, cancel := context.WithTimeout(ctx, 8*time.Second)
	defer cancel()
	env := make(map[string]string, len(o.Environ))
	for _, kv := range o.Environ {
		if k, v, ok := strings.Cut(kv, "="); ok && v != "" {
			env[k] = v
		}
	}
	// Any variable may name a secret (ssm:..., secretsmanager:...): database URL, JWT secret,
	// provider API keys. Resolve them all now, once, so nothing reads a secret store per request.
	newSecrets := o.NewSecrets
	if newSecrets == nil {
		newSecrets = secrets.NewAWSResolver
	}
	if err := resolveEnv(ctx, env, newSecrets); err != nil {
		return nil, fmt.Errorf("secrets: %w", err)
	}
	getenv := func(k string) string {
		if v, ok := env[k]; ok {
			return v
		}
		if o.Defaults != nil {
			return o.Defaults(k)
		}
		return ""
	}

	cfg, err := config.Load(getenv)
	if err != nil {
		return nil, fmt.Errorf("configuration: %w", err)
	}
	resolved := make([]string, 0, len(env))
	for k, v := range env {
		resolved = append(resolved, k+"="+v)
	}
	toggleEnv, err := toggles.EnvOverrides(resolved)
	if err != nil {
		return nil, fmt.Errorf("configuration: %w", err)
	}
	log := slog.New(slog.NewJSONHandler(o.LogOut, &slog.HandlerOptions{Level: cfg.LogLevel})).With("function", o.Function)
	pool, err := postgres.Open(ctx, postgres.PoolConfig{
		URL:             cfg.DatabaseURL,
		MaxConns:        cfg.DB.MaxConns,
		ExecMode:        cfg.DB.ExecMode,
		MaxConnIdleTime: 5 * time.Minute,
		MaxConnLifetime: 30 * time.Minute,
		ApplicationName: "helix-" + o.Function,
	})
	if err != nil {
		return nil, err
	}
	authn, err := auth.New(parent, auth.Config{
		HS256Secret:  []byte(cfg.Auth.HS256Secret),
		JWKSURL:      cfg.Auth.JWKSURL,
		Algorithms:   cfg.Auth.Algorithms,
		Issuer:       cfg.Auth.Issuer,
		Audience:     cfg.Auth.Audience,
		AdminClaim:   cfg.Auth.AdminClaim,
		AdminValue:   cfg.Auth.AdminValue,
		AdminUserIDs: cfg.Auth.AdminUserIDs,
	})
	if err != nil {
		pool.Close()
		return nil, err
	}
	return &Base{Config: cfg, Log: log, Pool: pool, Auth: authn, Getenv: getenv, ToggleEnv: toggleEnv}, nil
}

// resolveEnv replaces every secret reference in env with its value.
func resolveEnv(ctx context.Context, env map[string]string, newSecrets func(context.Context) (*secrets.Resolver, error)) error {
	keys := make([]string, 0)
	vals := make([]*string, 0)
	for k, v := range env {
		if secrets.IsReference(v) {
			v := v
			keys, vals = append(keys, k), append(vals, &v)
		}
	}
	if err := secrets.ResolveAll(ctx, newSecrets, vals...); err != nil {
		return err
	}
	for i, k := range keys {
		env[k] = *vals[i]
	}
	return nil
}

// Catalog returns the catalog cache over this base's pool, and its repository.
func (b *Base) Catalog() (*catalog.Cache, *postgres.Catalog) {
	repo := postgres.NewCatalog(b.Pool, nil)
	return catalog.NewCache(repo, b.Config.CatalogTTL, nil), repo
}

// Ledger returns the budget ledger over this base's pool.
func (b *Base) Ledger() *postgres.Ledger {
	return postgres.NewLedger(b.Pool, budget.Limits{
		DailyLimit: b.Config.Budget.DefaultDailyLimit,
		Warning:    b.Config.Budget.DefaultWarning,
	}, nil)
}

// Toggles returns the kill-switch service; it shares the catalog's TTL.
func (b *Base) Toggles() *toggles.Service {
	return toggles.NewService(postgres.NewToggles(b.Pool), b.ToggleEnv, b.Config.CatalogTTL, nil)
}

// Pipeline builds the execution pipeline over this base's pool.
func (b *Base) Pipeline(cat *catalog.Cache, tg *toggles.Service, providers execute.Providers) *execute.Pipeline {
	policy := execute.DefaultPolicy()
	policy.ReservationTTL = b.Config.Budget.ReservationTTL
	return &execute.Pipeline{
		Catalog:   cat,
		Toggles:   tg,
		Breakers:  breaker.New(postgres.NewBreakers(b.Pool), breaker.DefaultPolicy(), b.Config.CatalogTTL, nil),
		Ledger:    b.Ledger(),
		Log:       postgres.NewOperations(b.Pool, nil),
		Approvals: postgres.NewApprovals(b.Pool, nil),
		Providers: providers,
		Logger:    b.Log,
		Policy:    policy,
	}
}

// ProviderNames lists the providers the catalog's models use, for the kill-switch admin.
func ProviderNames(cat *catalog.Cache) func(context.Context) ([]string, error) {
	return func(ctx context.Context) ([]string, error) {
		snap, err := cat.Get(ctx)
		if err != nil {
			return nil, err
		}
		seen := map[string]bool{}
		var out []string
		for _, m := range snap.Models() {
			if m.Provider != catalog.NoProvider && !seen[m.Provider] {
				seen[m.Provider] = true
				out = append(out, m.Provider)
			}
		}
		return out, nil
	}
}
