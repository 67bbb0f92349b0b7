package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/helixhq/helix/shared/auditlog"
	"github.com/helixhq/helix/shared/postgres/auditstore"
	"github.com/helixhq/helix/shared/toggles"
)

// Toggles reads and writes feature_toggles.
type Toggles struct{ pool *pgxpool.Pool }

var _ toggles.Store = (*Toggles)(nil)

// NewToggles returns the toggle repository.
func NewToggles(pool *pgxpool.Pool) *Toggles { return &Toggles{pool: pool} }

const toggleColumns = `toggle_key, enabled, description, updated_by, updated_at`

func scanToggle(row pgx.CollectableRow) (toggles.Toggle, error) {
	var t toggles.Toggle
	err := row.Scan(&t.Key, &t.Enabled, &t.Description, &t.UpdatedBy, &t.UpdatedAt)
	return t, err
}

// LoadToggles implements toggles.Store.
func (s *Toggles) LoadToggles(ctx context.Context) (map[string]toggles.Toggle, error) {
	rows, _ := s.pool.Query(ctx, `SELECT `+toggleColumns+` FROM feature_toggles`)
	list, err := pgx.CollectRows(rows, scanToggle)
	if err != nil {
		return nil, err
	}
	out := make(map[string]toggles.Toggle, len(list))
	for _, t := range list {
		out[t.Key] = t
	}
	return out, nil
}

// SetToggle implements toggles.Store.
func (s *Toggles) SetToggle(ctx context.Context, key string, enabled bool, actor string) (toggles.Toggle, error) {
	var t toggles.Toggle
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var was *bool
		if err := tx.QueryRow(ctx, `SELECT enabled FROM feature_toggles WHERE toggle_key = $1 FOR UPDATE`, key).Scan(&was); err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		rows, _ := tx.Query(ctx, `
			INSERT INTO feature_toggles (toggle_key, enabled, updated_by, updated_at)
			VALUES ($1, $2, $3, now())
			ON CONFLICT (toggle_key) DO UPDATE
			   SET enabled = EXCLUDED.enabled, updated_by = EXCLUDED.updated_by, updated_at = now()
			RETURNING `+toggleColumns, key, enabled, actor)
		var err error
		if t, err = pgx.CollectExactlyOneRow(rows, scanToggle); err != nil {
			return err
		}
		var before any
		if was != nil {
			before = toggleFacts(toggles.Toggle{Enabled: *was})
		}
		return auditstore.Record(ctx, tx, adminChange(actor, auditlog.ChangedToggle, key, before, toggleFacts(t), false))
	})
	if err != nil {
		return t, fmt.Errorf("set toggle %s: %w", key, err)
	}
	return t, nil
}
