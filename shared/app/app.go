// Package app does the cold-start work every Helix function shares, whatever triggers it: read
// the environment, resolve secret references, load the configuration, set up JSON logging and
// open the Postgres pool. HTTP functions add their part with package app/httpapp; each
// functions/<name>/main.go then builds its own services on top (the wiring lives in app/<name>app).
package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"runtime/debug"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/helixhq/helix/shared/breaker"
	"github.com/helixhq/helix/shared/budget"
	"github.com/helixhq/helix/shared/catalog"
	"github.com/helixhq/helix/shared/config"
	"github.com/helixhq/helix/shared/emf"
	"github.com/helixhq/helix/shared/groupcommit"
	"github.com/helixhq/helix/shared/postgres"
	"github.com/helixhq/helix/shared/postgres/auditstore"
	"github.com/helixhq/helix/shared/secrets"
	"github.com/helixhq/helix/shared/toggles"
)

// Core is what every function starts from.
type Core struct {
	Config config.Config
	Log    *slog.Logger
	Pool   *pgxpool.Pool
	// Listen is where a session-level LISTEN connects (config DB.ListenURL); nil means the
	// pool's database.
	Listen *pgx.ConnConfig
	// Metrics writes CloudWatch metrics (EMF) on the log stream; the Lambda mains set it, nil
	// elsewhere (tests, the dev server) writes none.
	Metrics *emf.Writer
}

// Options adjust Boot for where it runs.
type Options struct {
	Function string   // logged with every line
	Environ  []string // os.Environ()
	// Defaults supplies values for variables the environment does not set (local dev only).
	Defaults map[string]string
	LogOut   io.Writer // os.Stdout
	// NewSecrets builds the AWS secret resolver; nil means secrets.NewAWSResolver.
	NewSecrets func(context.Context) (*secrets.Resolver, error)
	// Parts are the settings beyond the core the function needs (HTTP functions: Parts.HTTP).
	Parts config.Parts
}

// Boot resolves the environment, loads the configuration and opens the pool.
func Boot(ctx context.Context, o Options) (*Core, error) {
	// Lambda gives the init phase 10 s: secret stores and the database get 8 of them, so a
	// black-holed endpoint fails the cold start with a clear error instead of a silent timeout.
	ctx, cancel := context.WithTimeout(ctx, 8*time.Second)
	defer cancel()
	cfg, env, err := configure(ctx, o)
	if err != nil {
		return nil, err
	}
	log := slog.New(slog.NewJSONHandler(o.LogOut, &slog.HandlerOptions{Level: cfg.LogLevel})).With("function", o.Function)
	var listen *pgx.ConnConfig
	if cfg.DB.ListenURL != "" {
		if listen, err = pgx.ParseConfig(cfg.DB.ListenURL); err != nil {
			// pgx's message can echo the URL, password included.
			return nil, errors.New("configuration: HELIX_DB_LISTEN_URL is not a valid connection string")
		}
	}
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
	// The first cold start of a version is a deployment (audit log, #helix-file-changes). A
	// database without the audit tables yet (migrations not run) must not stop the function.
	version := Version(env)
	if err := auditstore.RecordDeployment(ctx, pool, o.Function, version); err != nil {
		log.Warn("deployment not recorded in the audit log", "version", version, "err", err)
	}
	return &Core{Config: cfg, Log: log, Pool: pool, Listen: listen}, nil
}

// Configure resolves the environment's secret references and loads the configuration, without
// opening the pool: for a function that connects its own way (the migrate function).
func Configure(ctx context.Context, o Options) (config.Config, error) {
	ctx, cancel := context.WithTimeout(ctx, 8*time.Second)
	defer cancel()
	cfg, _, err := configure(ctx, o)
	return cfg, err
}

func configure(ctx context.Context, o Options) (config.Config, map[string]string, error) {
	env := make(map[string]string, len(o.Environ)+len(o.Defaults))
	for k, v := range o.Defaults {
		env[k] = v
	}
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
		return config.Config{}, nil, fmt.Errorf("secrets: %w", err)
	}
	cfg, err := config.Load(env, o.Parts)
	if err != nil {
		return config.Config{}, nil, fmt.Errorf("configuration: %w", err)
	}
	return cfg, env, nil
}

// EnvValue is name's value in environ (NAME=value entries, as os.Environ gives them), "" when it
// is not there or empty. When environ names it twice the last entry wins, even an empty one
// (os.Environ never has duplicates).
func EnvValue(environ []string, name string) string {
	v := ""
	for _, kv := range environ {
		if rest, ok := strings.CutPrefix(kv, name+"="); ok {
			v = rest
		}
	}
	return v
}

// buildVersion is set at link time (the Makefile's HELIX_VERSION).
var buildVersion string

// Version names the code running: the build's version (HELIX_VERSION at link time, else the VCS
// revision the binary was built from, "+dirty" for uncommitted changes), and the Lambda version
// it runs as, when it is one.
func Version(env map[string]string) string {
	if buildVersion != "" {
		if v := env["AWS_LAMBDA_FUNCTION_VERSION"]; v != "" {
			return buildVersion + "@" + v
		}
		return buildVersion
	}
	rev, dirty := "unknown", false
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value[:min(12, len(s.Value))]
			case "vcs.modified":
				dirty = s.Value == "true"
			}
		}
	}
	if dirty {
		rev += "+dirty"
	}
	if v := env["AWS_LAMBDA_FUNCTION_VERSION"]; v != "" {
		return rev + "@" + v
	}
	return rev
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

// Catalog returns the catalog cache over this core's pool, and its repository.
func (c *Core) Catalog() (*catalog.Cache, *postgres.Catalog) {
	repo := postgres.NewCatalog(c.Pool, nil)
	return catalog.NewCache(repo, c.Config.CatalogTTL, nil), repo
}

// Ledger returns the budget ledger over this core's pool, with group commit when configured.
func (c *Core) Ledger() *postgres.Ledger {
	l := postgres.NewLedger(c.Pool, c.DefaultLimits(), nil)
	if c.Config.DB.GroupCommit {
		l.GroupCommit(c.GroupCommitOptions(), nil)
	}
	return l
}

// Operations returns the operation log over this core's pool, with group commit when configured.
func (c *Core) Operations() *postgres.Operations {
	o := postgres.NewOperations(c.Pool, nil)
	if c.Config.DB.GroupCommit {
		o.GroupCommit(c.GroupCommitOptions(), nil)
	}
	return o
}

// GroupCommitOptions are the batchers' settings: one batch of reservations and one of
// settlements in flight at a time, the rest of the pool for everything else. One writer per kind
// batches best: with two, every item that found the second writer free went alone, a commit of
// its own (make bench, gateway step at -c 64: 2,900 req/s and 0.73 commits per request with two,
// 4,000 and 0.14 with one). A lone request still goes at once.
func (c *Core) GroupCommitOptions() groupcommit.Options {
	return groupcommit.Options{MaxBatch: 64, MaxInFlight: 1}
}

// DefaultLimits are the budget of users without limits of their own.
func (c *Core) DefaultLimits() budget.Limits {
	return budget.Limits{DailyLimit: c.Config.Budget.DefaultDailyLimit, Warning: c.Config.Budget.DefaultWarning}
}

// Toggles returns the kill-switch service with the environment's overrides; it shares the
// catalog's TTL. Build one per function and share it.
func (c *Core) Toggles() *toggles.Service {
	return toggles.NewService(postgres.NewToggles(c.Pool), c.Config.KillSwitches, c.Config.CatalogTTL, nil)
}

// Breakers returns the provider circuit breakers shared through Postgres.
func (c *Core) Breakers() *breaker.Breakers {
	return breaker.New(postgres.NewBreakers(c.Pool), breaker.DefaultPolicy(), c.Config.CatalogTTL, nil)
}
