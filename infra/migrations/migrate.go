package migrations

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"

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
// records each applied version in goose_db_version so each file runs once, and a session advisory
// lock serializes concurrent runs. Only `make migrate`, the dev server and tests call this: a
// Lambda never migrates on cold start.
func Apply(ctx context.Context, url string, log *slog.Logger) (Summary, error) {
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		// pgx's message can echo the URL, password included.
		return Summary{}, errors.New("parse database URL: invalid connection string")
	}
	db := stdlib.OpenDB(*cfg)
	defer db.Close()
	locker, err := lock.NewPostgresSessionLocker()
	if err != nil {
		return Summary{}, fmt.Errorf("migration lock: %w", err)
	}
	opts := []goose.ProviderOption{goose.WithSessionLocker(locker)}
	if log != nil {
		opts = append(opts, goose.WithSlog(log))
	}
	p, err := goose.NewProvider(goose.DialectPostgres, db, FS, opts...)
	if err != nil {
		return Summary{}, fmt.Errorf("load migrations: %w", err)
	}
	results, err := p.Up(ctx)
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
	conn, err := pgx.Connect(ctx, url)
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
