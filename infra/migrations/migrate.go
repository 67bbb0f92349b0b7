package migrations

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"

	"github.com/helixhq/helix/shared/auditlog"
)

// Up applies every pending migration to the database at url (see Apply).
func Up(ctx context.Context, url string, log *slog.Logger) error {
	_, err := Apply(ctx, url, log)
	return err
}

// Summary is what a run of the migrations did.
type Summary struct {
	Applied  []string // the files applied by this run, in order
	Versions []int64  // their versions
	Version  int64    // the database's version afterwards
}

// Apply applies every pending migration to the database at url and says what it did. Goose
// records each applied version in goose_db_version so each file runs once, and a lock row in
// goose_lock (goose's table locker, kept alive by a heartbeat and given up by a lease if the
// process dies) serializes concurrent runs. A row rather than a session advisory lock, so it
// holds through RDS Proxy and PgBouncer in transaction mode, where a session lock would be taken
// and released on whichever server connection each statement landed on. Only `make migrate`,
// the migrate function (the deploy's custom resource), the dev server and tests call this: no
// function migrates on cold start.
func Apply(ctx context.Context, url string, log *slog.Logger) (Summary, error) {
	return apply(ctx, url, FS, log)
}

// apply applies the migrations in fsys (tests give an older set, as the previous release's
// code has).
func apply(ctx context.Context, url string, fsys fs.FS, log *slog.Logger) (Summary, error) {
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		// pgx's message can echo the URL, password included.
		return Summary{}, errors.New("parse database URL: invalid connection string")
	}
	// No named prepared statements: through PgBouncer in transaction mode they would land on
	// another server connection (the functions' pools run the same way).
	cfg.DefaultQueryExecMode = pgx.QueryExecModeExec
	db := stdlib.OpenDB(*cfg)
	defer db.Close()
	// A second run waits for the first for up to two minutes (60 tries, 2 s apart), well inside
	// the migrate function's timeout, then fails rather than migrate beside it.
	locker, err := lock.NewPostgresTableLocker(lock.WithTableLockTimeout(2*time.Second, 60))
	if err != nil {
		return Summary{}, fmt.Errorf("migration lock: %w", err)
	}
	opts := []goose.ProviderOption{goose.WithLocker(locker)}
	if log != nil {
		opts = append(opts, goose.WithSlog(log))
	}
	p, err := goose.NewProvider(goose.DialectPostgres, db, fsys, opts...)
	if err != nil {
		return Summary{}, fmt.Errorf("load migrations: %w", err)
	}
	results, err := p.Up(ctx)
	// A failed file ends the run: say which one (goose names only its version), and count what
	// applied before it, which stays applied.
	var partial *goose.PartialError
	if errors.As(err, &partial) {
		results = partial.Applied
		if partial.Failed != nil && partial.Failed.Source != nil {
			err = fmt.Errorf("%s failed (the migrations before it are applied): %w", filepath.Base(partial.Failed.Source.Path), partial.Err)
		}
	}
	var sum Summary
	for _, r := range results {
		if r.Source != nil {
			sum.Applied = append(sum.Applied, filepath.Base(r.Source.Path))
			sum.Versions = append(sum.Versions, r.Source.Version)
		}
	}
	if err != nil {
		return sum, fmt.Errorf("apply migrations: %w", err)
	}
	if sum.Version, err = p.GetDBVersion(ctx); err != nil {
		return sum, fmt.Errorf("read the database version: %w", err)
	}
	return sum, nil
}

// RecordApplied puts the migrations a run applied in the audit log (and so in
// #helix-file-changes), in one transaction. `make migrate` calls it; it needs the audit tables,
// which the run has just made sure exist.
func RecordApplied(ctx context.Context, url string, sum Summary) error {
	if len(sum.Applied) == 0 {
		return nil
	}
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		return errors.New("record migrations: invalid connection string")
	}
	cfg.DefaultQueryExecMode = pgx.QueryExecModeExec
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return errors.New("record migrations: cannot connect to the database")
	}
	defer conn.Close(context.WithoutCancel(ctx))
	return pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		for i, file := range sum.Applied {
			payload, err := json.Marshal(auditlog.MigrationFacts{Version: sum.Versions[i], Source: file})
			if err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, `INSERT INTO audit_pending (kind, actor, payload) VALUES ($1, 'migrate', $2)`,
				string(auditlog.Migration), string(payload)); err != nil {
				return fmt.Errorf("record migration %s: %w", file, err)
			}
		}
		return nil
	})
}
