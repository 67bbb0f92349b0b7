package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/helixhq/helix/shared/auditlog"
	"github.com/helixhq/helix/shared/catalog"
	"github.com/helixhq/helix/shared/fault"
	"github.com/helixhq/helix/shared/money"
	"github.com/helixhq/helix/shared/postgres/auditstore"
)

// Catalog reads and edits ai_models and ai_model_routes.
type Catalog struct {
	pool *pgxpool.Pool
	now  func() time.Time
}

var _ catalog.Source = (*Catalog)(nil)

// NewCatalog returns the catalog repository.
func NewCatalog(pool *pgxpool.Pool, now func() time.Time) *Catalog {
	if now == nil {
		now = time.Now
	}
	return &Catalog{pool: pool, now: now}
}

const modelColumns = `model_key, provider, api_model, display_name, input_nano_per_mtok,
	output_nano_per_mtok, cached_input_nano_per_mtok, cache_write_nano_per_mtok,
	cache_write_1h_nano_per_mtok, price_version, enabled, is_emergency, direct_access, updated_by,
	updated_at`

const routeColumns = `operation_id, operation_name, primary_model, COALESCE(fallback_model, ''),
	enabled, cost_criticality, requires_approval, max_output_tokens, avg_input_tokens,
	avg_output_tokens, allow_emergency, notes, updated_by, updated_at`

// LoadCatalog reads every model and route in one round trip.
func (c *Catalog) LoadCatalog(ctx context.Context) (*catalog.Snapshot, error) {
	b := &pgx.Batch{}
	b.Queue(`SELECT ` + modelColumns + ` FROM ai_models`)
	b.Queue(`SELECT ` + routeColumns + ` FROM ai_model_routes`)
	res := c.pool.SendBatch(ctx, b)
	defer res.Close()

	rows, _ := res.Query()
	models, err := pgx.CollectRows(rows, scanModel)
	if err != nil {
		return nil, fmt.Errorf("load models: %w", err)
	}
	rows, _ = res.Query()
	routes, err := pgx.CollectRows(rows, scanRoute)
	if err != nil {
		return nil, fmt.Errorf("load routes: %w", err)
	}
	return catalog.NewSnapshot(models, routes, c.now()), nil
}

// UpdateRoute applies change to an operation's route inside one transaction, with the route
// row locked, and records who changed it.
func (c *Catalog) UpdateRoute(ctx context.Context, operationID string, change catalog.RouteChange, actor string) (catalog.Route, error) {
	var out catalog.Route
	err := pgx.BeginFunc(ctx, c.pool, func(tx pgx.Tx) error {
		var err error
		out, err = UpdateRouteTx(ctx, tx, operationID, change, actor, nil)
		return err
	})
	return out, err
}

// UpdateRouteTx is UpdateRoute inside the caller's transaction, for a change that must commit
// with something else (an approved recommendation's status). check, when not nil, sees the
// locked route and the models before the change and may refuse it with an error of its own.
func UpdateRouteTx(ctx context.Context, tx pgx.Tx, operationID string, change catalog.RouteChange, actor string,
	check func(before catalog.Route, models map[string]catalog.Model) error) (catalog.Route, error) {
	rows, _ := tx.Query(ctx, `SELECT `+routeColumns+` FROM ai_model_routes WHERE operation_id = $1 FOR UPDATE`, operationID)
	r, err := pgx.CollectExactlyOneRow(rows, scanRoute)
	if errors.Is(err, pgx.ErrNoRows) {
		return r, catalog.ErrUnknownOperation
	}
	if err != nil {
		return r, err
	}
	rows, _ = tx.Query(ctx, `SELECT `+modelColumns+` FROM ai_models`)
	list, err := pgx.CollectRows(rows, scanModel)
	if err != nil {
		return r, err
	}
	models := make(map[string]catalog.Model, len(list))
	for _, m := range list {
		models[m.Key] = m
	}
	if check != nil {
		if err := check(r, models); err != nil {
			return r, err
		}
	}
	before := r
	if err := change.ApplyTo(&r, models); err != nil {
		return r, err
	}
	rows, _ = tx.Query(ctx, `
		UPDATE ai_model_routes
		   SET primary_model = $2, fallback_model = NULLIF($3, ''), enabled = $4,
		       requires_approval = $5, max_output_tokens = $6, cost_criticality = $7,
		       updated_by = $8, updated_at = now()
		 WHERE operation_id = $1
		RETURNING `+routeColumns,
		operationID, r.PrimaryModel, r.FallbackModel, r.Enabled, r.RequiresApproval,
		r.MaxOutputTokens, string(r.Criticality), actor)
	out, err := pgx.CollectExactlyOneRow(rows, scanRoute)
	if err != nil {
		return out, err
	}
	return out, auditstore.Record(ctx, tx, adminChange(actor, auditlog.ChangedRoute, operationID, routeFacts(before), routeFacts(out), false))
}

// UpdateModel applies change to a model inside one transaction, with the model row locked. A new
// price closes the version in force and opens change's (or, unnamed, "<key>@<UTC time>"),
// effective now; calls already logged keep the version they were charged at.
func (c *Catalog) UpdateModel(ctx context.Context, key string, change catalog.ModelChange, actor string) (catalog.Model, error) {
	var out catalog.Model
	err := pgx.BeginFunc(ctx, c.pool, func(tx pgx.Tx) error {
		rows, _ := tx.Query(ctx, `SELECT `+modelColumns+` FROM ai_models WHERE model_key = $1 FOR UPDATE`, key)
		m, err := pgx.CollectExactlyOneRow(rows, scanModel)
		if errors.Is(err, pgx.ErrNoRows) {
			return catalog.ErrNoSuchModel
		}
		if err != nil {
			return err
		}
		now := c.now().UTC()
		if change.Reprices() && change.PriceVersion == nil {
			v := key + "@" + now.Format("20060102T150405.000Z")
			change.PriceVersion = &v
		}
		before := m
		if err := change.ApplyTo(&m); err != nil {
			return err
		}
		if change.Reprices() {
			var used bool
			if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM ai_model_prices WHERE model_key = $1 AND price_version = $2)`,
				key, m.PriceVersion).Scan(&used); err != nil {
				return err
			}
			if used {
				return fault.Errorf(fault.InvalidField, "price_version %q was already used for %s; name a new one", m.PriceVersion, key)
			}
			if _, err := tx.Exec(ctx, `UPDATE ai_model_prices SET effective_until = $2 WHERE model_key = $1 AND effective_until IS NULL`, key, now); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, `
				INSERT INTO ai_model_prices (model_key, price_version, input_nano_per_mtok, output_nano_per_mtok,
				                             cached_input_nano_per_mtok, cache_write_nano_per_mtok,
				                             cache_write_1h_nano_per_mtok, effective_from, created_by)
				VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
				key, m.PriceVersion, int64(m.InputPerMTok), int64(m.OutputPerMTok), int64(m.CachedInputPerMTok),
				int64(m.CacheWritePerMTok), int64(m.CacheWrite1hPerMTok), now, actor); err != nil {
				return err
			}
		}
		rows, _ = tx.Query(ctx, `
			UPDATE ai_models
			   SET api_model = $2, input_nano_per_mtok = $3, output_nano_per_mtok = $4,
			       cached_input_nano_per_mtok = $5, cache_write_nano_per_mtok = $6,
			       cache_write_1h_nano_per_mtok = $7, price_version = $8, enabled = $9,
			       direct_access = $10, updated_by = $11, updated_at = $12
			 WHERE model_key = $1
			RETURNING `+modelColumns,
			key, m.APIModel, int64(m.InputPerMTok), int64(m.OutputPerMTok), int64(m.CachedInputPerMTok),
			int64(m.CacheWritePerMTok), int64(m.CacheWrite1hPerMTok), m.PriceVersion, m.Enabled,
			m.DirectAccess, actor, now)
		if out, err = pgx.CollectExactlyOneRow(rows, scanModel); err != nil {
			return err
		}
		return auditstore.Record(ctx, tx, adminChange(actor, auditlog.ChangedModel, key, modelFacts(before), modelFacts(out), change.Reprices()))
	})
	return out, err
}

// ModelPrices lists every price version of a model, the one in force first.
func (c *Catalog) ModelPrices(ctx context.Context, key string) ([]catalog.Price, error) {
	rows, _ := c.pool.Query(ctx, `
		SELECT price_version, input_nano_per_mtok, output_nano_per_mtok, cached_input_nano_per_mtok,
		       cache_write_nano_per_mtok, cache_write_1h_nano_per_mtok, effective_from, effective_until,
		       created_by
		  FROM ai_model_prices WHERE model_key = $1
		 ORDER BY effective_until IS NOT NULL, effective_from DESC`, key)
	list, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (catalog.Price, error) {
		var p catalog.Price
		var in, out, cached, write, write1h int64
		var until pgtype.Timestamptz
		err := row.Scan(&p.Version, &in, &out, &cached, &write, &write1h, &p.EffectiveFrom, &until, &p.CreatedBy)
		p.InputPerMTok, p.OutputPerMTok, p.CachedInputPerMTok = money.Nano(in), money.Nano(out), money.Nano(cached)
		p.CacheWritePerMTok, p.CacheWrite1hPerMTok, p.EffectiveUntil = money.Nano(write), money.Nano(write1h), until.Time
		return p, err
	})
	if err != nil {
		return nil, fmt.Errorf("model prices: %w", err)
	}
	return list, nil
}

func scanModel(row pgx.CollectableRow) (catalog.Model, error) {
	var m catalog.Model
	var in, out, cached, write, write1h int64
	err := row.Scan(&m.Key, &m.Provider, &m.APIModel, &m.DisplayName, &in, &out, &cached, &write, &write1h,
		&m.PriceVersion, &m.Enabled, &m.Emergency, &m.DirectAccess, &m.UpdatedBy, &m.UpdatedAt)
	m.InputPerMTok, m.OutputPerMTok, m.CachedInputPerMTok = money.Nano(in), money.Nano(out), money.Nano(cached)
	m.CacheWritePerMTok, m.CacheWrite1hPerMTok = money.Nano(write), money.Nano(write1h)
	return m, err
}

func scanRoute(row pgx.CollectableRow) (catalog.Route, error) {
	var r catalog.Route
	var crit string
	err := row.Scan(&r.OperationID, &r.OperationName, &r.PrimaryModel, &r.FallbackModel, &r.Enabled,
		&crit, &r.RequiresApproval, &r.MaxOutputTokens, &r.AvgInputTokens, &r.AvgOutputTokens,
		&r.AllowEmergency, &r.Notes, &r.UpdatedBy, &r.UpdatedAt)
	r.Criticality = catalog.Criticality(crit)
	return r, err
}
