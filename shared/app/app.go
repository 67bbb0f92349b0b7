// Package app does the cold-start work every Helix function shares: read the configuration,
// resolve secret references, set up JSON logging, open the Postgres pool and build the
// authenticator. Each functions/<name>/main.go then builds its own services on top.
package app

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/helixhq/helix/shared/auth"
	"github.com/helixhq/helix/shared/budget"
	"github.com/helixhq/helix/shared/catalog"
	"github.com/helixhq/helix/shared/config"
	"github.com/helixhq/helix/shared/secrets"
	"github.com/helixhq/helix/shared/store"
)

// Base is what every function starts from.
type Base struct {
	Config config.Config
	Log    *slog.Logger
	Pool   *pgxpool.Pool
	Auth   *auth.Authenticator
}

// Options adjust Boot for where it runs.
type Options struct {
	Function string              // logged with every line
	Getenv   func(string) string // os.Getenv
	LogOut   io.Writer           // os.Stdout
	// NewSecrets builds the AWS secret resolver; nil means secrets.NewAWSResolver.
	NewSecrets func(context.Context) (*secrets.Resolver, error)
}

// Boot reads the configuration and opens the pool and the authenticator.
func Boot(ctx context.Context, o Options) (*Base, error) {
	cfg, err := config.Load(o.Getenv)
	if err != nil {
		return nil, fmt.Errorf("configuration: %w", err)
	}
	log := slog.New(slog.NewJSONHandler(o.LogOut, &slog.HandlerOptions{Level: cfg.LogLevel})).With("function", o.Function)
	newSecrets := o.NewSecrets
	if newSecrets == nil {
		newSecrets = secrets.NewAWSResolver
	}
	if err := secrets.ResolveAll(ctx, newSecrets, &cfg.DatabaseURL, &cfg.Auth.HS256Secret); err != nil {
		return nil, fmt.Errorf("secrets: %w", err)
	}
	pool, err := store.Open(ctx, store.PoolConfig{
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
	authn, err := auth.New(ctx, auth.Config{
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
	return &Base{Config: cfg, Log: log, Pool: pool, Auth: authn}, nil
}

// Catalog returns the catalog cache over this base's pool.
func (b *Base) Catalog() (*catalog.Cache, *store.Catalog) {
	repo := store.NewCatalog(b.Pool, nil)
	return catalog.NewCache(repo, b.Config.CatalogTTL, nil), repo
}

// Ledger returns the budget ledger over this base's pool.
func (b *Base) Ledger() *store.Ledger {
	return store.NewLedger(b.Pool, budget.Limits{
		DailyLimit: b.Config.Budget.DefaultDailyLimit,
		Warning:    b.Config.Budget.DefaultWarning,
	}, nil)
}
