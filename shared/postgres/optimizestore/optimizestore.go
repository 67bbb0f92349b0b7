// Package optimizestore is the optimizer's Postgres side: the week of ai_operation_log it
// analyses (aggregated in Postgres; idx_ai_ops_created bounds the scan to the window),
// the routines' decay counts, and helix_recommendations with their decisions. Approving a model
// switch changes the route in the same transaction as the recommendation's status, and records
// the route's before and after in the audit log as the admin route edit does.
package optimizestore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/helixhq/helix/shared/auditlog"
	"github.com/helixhq/helix/shared/catalog"
	"github.com/helixhq/helix/shared/fault"
	"github.com/helixhq/helix/shared/memory"
	"github.com/helixhq/helix/shared/money"
	"github.com/helixhq/helix/shared/optimize"
	"github.com/helixhq/helix/shared/postgres"
	"github.com/helixhq/helix/shared/postgres/auditstore"
)

// Store reads the log and keeps the recommendations.
type Store struct {
	pool *pgxpool.Pool
}

// New returns the store.
func New(pool *pgxpool.Pool) *Store { return &Store{pool: pool} }

// ErrNotFound: no recommendation has the id.
var ErrNotFound = optimize.ErrNotFound

// Load reads what the analysis needs for w: per operation and model the window's calls, and the
// spend of today so far and of the same hours of the days before, per operation and per user;
// and the catalog as it is now (current prices, current routes).
func (s *Store) Load(ctx context.Context, w optimize.Window) (optimize.Input, error) {
	in := optimize.Input{Window: w}
	elapsedMicros := w.Elapsed().Microseconds()
	// The same hours of earlier days: a row's time of day (UTC) below today's elapsed time.
	const sameHours = `((created_at AT TIME ZONE 'UTC') - date_trunc('day', created_at AT TIME ZONE 'UTC')) < $4::bigint * interval '1 microsecond'`
	opSpend := map[string]*optimize.Spend{}
	var order []string
	rows, err := s.pool.Query(ctx, `
		SELECT operation_id, COALESCE(model_used, ''),
		       count(*) FILTER (WHERE created_at < $2),
		       count(*) FILTER (WHERE created_at < $2 AND success),
		       COALESCE(sum(latency_ms) FILTER (WHERE created_at < $2), 0),
		       COALESCE(sum(cost_nano) FILTER (WHERE created_at < $2), 0),
		       COALESCE(sum(input_tokens) FILTER (WHERE created_at < $2), 0),
		       COALESCE(sum(cached_input_tokens) FILTER (WHERE created_at < $2), 0),
		       COALESCE(sum(cache_write_tokens) FILTER (WHERE created_at < $2), 0),
		       COALESCE(sum(cache_write_1h_tokens) FILTER (WHERE created_at < $2), 0),
		       COALESCE(sum(output_tokens) FILTER (WHERE created_at < $2), 0),
		       COALESCE(sum(reasoning_tokens) FILTER (WHERE created_at < $2), 0),
		       COALESCE(sum(cost_nano) FILTER (WHERE created_at >= $2), 0),
		       COALESCE(sum(cost_nano) FILTER (WHERE created_at < $2 AND `+sameHours+`), 0)
		  FROM ai_operation_log
		 WHERE created_at >= $1 AND created_at < $3
		 GROUP BY 1, 2`, w.From, w.Today, w.Now, elapsedMicros)
	if err != nil {
		return in, fmt.Errorf("optimizer stats: %w", err)
	}
	for rows.Next() {
		var st optimize.Stats
		var cost, today, base int64
		if err := rows.Scan(&st.OperationID, &st.Model, &st.Calls, &st.Successes, &st.LatencyMS, &cost,
			&st.Tokens.InputTokens, &st.Tokens.CachedInputTokens, &st.Tokens.CacheWriteTokens, &st.Tokens.CacheWrite1hTokens,
			&st.Tokens.OutputTokens, &st.Tokens.ReasoningTokens, &today, &base); err != nil {
			rows.Close()
			return in, fmt.Errorf("optimizer stats: %w", err)
		}
		st.Cost = money.Nano(cost)
		if st.Calls > 0 {
			in.Stats = append(in.Stats, st)
		}
		sp := opSpend[st.OperationID]
		if sp == nil {
			sp = &optimize.Spend{Key: st.OperationID}
			opSpend[st.OperationID] = sp
			order = append(order, st.OperationID)
		}
		sp.Today += money.Nano(today)
		sp.Baseline += money.Nano(base)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return in, fmt.Errorf("optimizer stats: %w", err)
	}
	for _, k := range order {
		in.OpSpend = append(in.OpSpend, *opSpend[k])
	}

	// Schema repairs: a structured answer that failed its schema is repaired by a second call
	// whose request id is the first's plus "-repair" (shared/intelligence); the repair is the
	// first call's model's. Only the window's repair calls are looked up (request_id is unique).
	rows, err = s.pool.Query(ctx, `
		SELECT b.operation_id, COALESCE(b.model_used, ''), count(*)
		  FROM ai_operation_log r JOIN ai_operation_log b ON b.request_id = left(r.request_id, -length('-repair'))
		 WHERE r.created_at >= $1 AND r.created_at < $2 AND r.request_id LIKE '%-repair'
		   AND b.created_at >= $1 AND b.created_at < $2
		 GROUP BY 1, 2`, w.From, w.Today)
	if err != nil {
		return in, fmt.Errorf("optimizer repairs: %w", err)
	}
	repaired := map[[2]string]int64{}
	for rows.Next() {
		var op, model string
		var n int64
		if err := rows.Scan(&op, &model, &n); err != nil {
			rows.Close()
			return in, fmt.Errorf("optimizer repairs: %w", err)
		}
		repaired[[2]string{op, model}] = n
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return in, fmt.Errorf("optimizer repairs: %w", err)
	}
	for i := range in.Stats {
		in.Stats[i].Repaired = repaired[[2]string{in.Stats[i].OperationID, in.Stats[i].Model}]
	}

	// Users who spent today: only they can be anomalies (today above twice a baseline).
	rows, err = s.pool.Query(ctx, `
		SELECT user_id,
		       COALESCE(sum(cost_nano) FILTER (WHERE created_at >= $2), 0),
		       COALESCE(sum(cost_nano) FILTER (WHERE created_at < $2 AND `+sameHours+`), 0)
		  FROM ai_operation_log
		 WHERE created_at >= $1 AND created_at < $3
		 GROUP BY 1
		HAVING sum(cost_nano) FILTER (WHERE created_at >= $2) > 0`, w.From, w.Today, w.Now, elapsedMicros)
	if err != nil {
		return in, fmt.Errorf("optimizer user spend: %w", err)
	}
	for rows.Next() {
		var sp optimize.Spend
		var today, base int64
		if err := rows.Scan(&sp.Key, &today, &base); err != nil {
			rows.Close()
			return in, fmt.Errorf("optimizer user spend: %w", err)
		}
		sp.Today, sp.Baseline = money.Nano(today), money.Nano(base)
		in.UserSpend = append(in.UserSpend, sp)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return in, fmt.Errorf("optimizer user spend: %w", err)
	}

	snap, err := postgres.NewCatalog(s.pool, nil).LoadCatalog(ctx)
	if err != nil {
		return in, err
	}
	in.Models, in.Routes = snap.Models(), snap.Routes()
	return in, nil
}

// Decay counts the routines as of now: active, faded (strength below memory.FadedStrength, the
// same formula as memory.Insight.Strength), newly faded (at or above it a day ago) and reinforced
// in the last day. It reads counts only.
func (s *Store) Decay(ctx context.Context, now time.Time) (optimize.Decay, error) {
	const strength = `confidence::float8 * power(0.5, GREATEST(extract(epoch FROM ($1::timestamptz - interval '%s' - last_reinforced_at))::float8, 0) / $2::float8)`
	at := func(ago string) string { return fmt.Sprintf(strength, ago) }
	var d optimize.Decay
	err := s.pool.QueryRow(ctx, `
		SELECT count(*),
		       count(*) FILTER (WHERE `+at("0 seconds")+` < $3),
		       count(*) FILTER (WHERE `+at("0 seconds")+` < $3 AND `+at("1 day")+` >= $3),
		       count(*) FILTER (WHERE last_reinforced_at > $1::timestamptz - interval '1 day')
		  FROM conversation_insights
		 WHERE layer = $4 AND invalidated_at IS NULL`,
		now, memory.RoutineHalfLife.Seconds(), memory.FadedStrength, int(memory.IntegrationRhythms)).
		Scan(&d.Routines, &d.Faded, &d.NewlyFaded, &d.Reinforced)
	if err != nil {
		return d, fmt.Errorf("routine decay: %w", err)
	}
	return d, nil
}

// Saved is what Save did.
type Saved struct {
	New, Refreshed, Stale int
	IDs                   []string // of the recommendations proposed this run, new or refreshed
}

// Save writes a run's recommendations and its audit event in one transaction. A pending
// recommendation for the same type and target is refreshed, never duplicated (a second run the
// same day adds nothing); a pending model switch whose route changed since, or that this run no
// longer proposes, becomes stale with the reason. event is recorded with the counts filled in by
// fill (so the audit entry says what was saved).
func (s *Store) Save(ctx context.Context, day string, recs []optimize.Recommendation, event func(Saved) auditlog.Event) (Saved, error) {
	var out Saved
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		out = Saved{}
		proposed := map[string]bool{}
		for _, r := range recs {
			proposed[r.Type+"\x00"+r.Target] = true
			proposal, _ := json.Marshal(r.Proposal)
			evidence, _ := json.Marshal(r.Evidence)
			basis, _ := json.Marshal(r.Basis)
			var id string
			var inserted bool
			err := tx.QueryRow(ctx, `
				INSERT INTO helix_recommendations (id, type, target, proposal, estimated_monthly_saving_nano,
				                                   evidence, reasoning, based_on, analysis_day, refreshed_day)
				VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9)
				ON CONFLICT (type, target) WHERE status = 'pending' DO UPDATE
				   SET proposal = EXCLUDED.proposal,
				       estimated_monthly_saving_nano = EXCLUDED.estimated_monthly_saving_nano,
				       evidence = EXCLUDED.evidence, reasoning = EXCLUDED.reasoning,
				       based_on = EXCLUDED.based_on, refreshed_day = EXCLUDED.refreshed_day, updated_at = now()
				RETURNING id::text, xmax = 0`,
				uuid.NewString(), r.Type, r.Target, string(proposal), int64(r.MonthlySaving), string(evidence), r.Reasoning, string(basis), day).
				Scan(&id, &inserted)
			if err != nil {
				return fmt.Errorf("save recommendation: %w", err)
			}
			out.IDs = append(out.IDs, id)
			if inserted {
				out.New++
			} else {
				out.Refreshed++
			}
		}
		// Pending switches this run did not propose: the route changed, or the evidence no
		// longer supports them.
		rows, _ := tx.Query(ctx, `
			SELECT r.id::text, r.type, r.target, r.based_on->>'primary_model', COALESCE(r.based_on->>'fallback_model', ''),
			       rt.primary_model, COALESCE(rt.fallback_model, '')
			  FROM helix_recommendations r LEFT JOIN ai_model_routes rt ON rt.operation_id = r.target
			 WHERE r.status = 'pending' AND r.type = $1`, optimize.TypeModelSwitch)
		type pend struct{ id, typ, target, bp, bf, rp, rf string }
		list, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (pend, error) {
			var p pend
			var rp, rf *string
			err := row.Scan(&p.id, &p.typ, &p.target, &p.bp, &p.bf, &rp, &rf)
			if rp != nil {
				p.rp, p.rf = *rp, *rf
			}
			return p, err
		})
		if err != nil {
			return fmt.Errorf("pending recommendations: %w", err)
		}
		for _, p := range list {
			if proposed[p.typ+"\x00"+p.target] {
				continue
			}
			reason := fmt.Sprintf("the run of %s no longer proposes it (the evidence changed)", day)
			switch {
			case p.rp == "":
				reason = fmt.Sprintf("operation %s no longer has a route", p.target)
			case p.rp != p.bp || p.rf != p.bf:
				// The route changed: Stale says how (the model checks do not apply here).
				reason = optimize.Stale(optimize.Basis{PrimaryModel: p.bp, FallbackModel: p.bf}, optimize.Proposal{},
					catalog.Route{PrimaryModel: p.rp, FallbackModel: p.rf}, catalog.Model{}, true)
			}
			if _, err := tx.Exec(ctx, `UPDATE helix_recommendations SET status = 'stale', stale_reason = $2, updated_at = now() WHERE id = $1`, p.id, reason); err != nil {
				return err
			}
			out.Stale++
		}
		return auditstore.Record(ctx, tx, event(out))
	})
	return out, err
}

const columns = `id::text, type, target, proposal, estimated_monthly_saving_nano, evidence, reasoning, based_on,
	status, stale_reason, analysis_day, refreshed_day, created_at, COALESCE(decided_by, ''), decided_at, decision_note`

func scan(row pgx.CollectableRow) (optimize.Stored, error) {
	var r optimize.Stored
	var saving int64
	var decided *time.Time
	err := row.Scan(&r.ID, &r.Type, &r.Target, &r.Proposal, &saving, &r.Evidence, &r.Reasoning, &r.Basis,
		&r.Status, &r.StaleReason, &r.AnalysisDay, &r.RefreshedDay, &r.CreatedAt, &r.DecidedBy, &decided, &r.DecisionNote)
	r.MonthlySaving = money.Nano(saving)
	if decided != nil {
		r.DecidedAt = *decided
	}
	return r, err
}

// List returns recommendations with the status ("" for all), newest first, largest saving first
// within a day (helix_recommendations_status serves the filter and the order).
func (s *Store) List(ctx context.Context, status string, limit int) ([]optimize.Stored, error) {
	rows, _ := s.pool.Query(ctx, `SELECT `+columns+` FROM helix_recommendations
		 WHERE ($1 = '' OR status = $1) ORDER BY created_at DESC, estimated_monthly_saving_nano DESC, id LIMIT $2`, status, limit)
	list, err := pgx.CollectRows(rows, scan)
	if err != nil {
		return nil, fmt.Errorf("recommendations: %w", err)
	}
	return list, nil
}

// Get returns one recommendation.
func (s *Store) Get(ctx context.Context, id string) (optimize.Stored, error) {
	rows, _ := s.pool.Query(ctx, `SELECT `+columns+` FROM helix_recommendations WHERE id = $1`, id)
	r, err := pgx.CollectExactlyOneRow(rows, scan)
	if errors.Is(err, pgx.ErrNoRows) {
		return r, ErrNotFound
	}
	return r, err
}

// Decide approves or rejects a recommendation. Approving a model switch applies its proposal to
// the route in the same transaction (status applied; the route's before and after in the audit
// log), unless the route changed since it was made: then it becomes stale, and the answer is
// recommendation_stale saying why. Deciding again what was already decided the same way
// (approve an applied one, reject a rejected one) changes nothing and returns it as it is; a
// contrary decision, or any decision on a stale one, is recommendation_not_pending.
func (s *Store) Decide(ctx context.Context, id string, approve bool, actor, note string) (optimize.Stored, error) {
	var out optimize.Stored
	var staleErr error
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		rows, _ := tx.Query(ctx, `SELECT `+columns+` FROM helix_recommendations WHERE id = $1 FOR UPDATE`, id)
		r, err := pgx.CollectExactlyOneRow(rows, scan)
		if errors.Is(err, pgx.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		out = r
		if r.Status != optimize.StatusPending {
			if (approve && (r.Status == optimize.StatusApplied || r.Status == optimize.StatusApproved)) || (!approve && r.Status == optimize.StatusRejected) {
				return nil // the same decision again: nothing to do
			}
			if r.Status == optimize.StatusStale {
				return fault.Errorf(fault.RecommendationNotPending, "recommendation %s is stale: %s", id, r.StaleReason)
			}
			return fault.Errorf(fault.RecommendationNotPending, "recommendation %s is already %s", id, r.Status)
		}
		status := optimize.StatusRejected
		if approve {
			status = optimize.StatusApproved
			if r.Type == optimize.TypeModelSwitch {
				why, err := applySwitch(ctx, tx, r, actor)
				if err != nil {
					return err
				}
				if why != "" {
					if _, err := tx.Exec(ctx, `UPDATE helix_recommendations SET status = 'stale', stale_reason = $2, updated_at = now() WHERE id = $1`, id, why); err != nil {
						return err
					}
					staleErr = fault.Errorf(fault.RecommendationStale, "recommendation %s is stale and was not applied: %s", id, why)
					out.Status, out.StaleReason = optimize.StatusStale, why
					return nil
				}
				status = optimize.StatusApplied
			}
		}
		rows, _ = tx.Query(ctx, `
			UPDATE helix_recommendations SET status = $2, decided_by = $3, decided_at = now(), decision_note = $4, updated_at = now()
			 WHERE id = $1 RETURNING `+columns, id, status, actor, note)
		if out, err = pgx.CollectExactlyOneRow(rows, scan); err != nil {
			return err
		}
		return auditstore.Record(ctx, tx, auditlog.Event{Kind: auditlog.AdminChange, Actor: actor, Payload: auditlog.Change{
			What: "recommendation", ID: id,
			Before: map[string]any{"status": r.Status}, After: map[string]any{"status": status, "type": r.Type, "target": r.Target},
		}})
	})
	if err != nil {
		return optimize.Stored{}, err
	}
	return out, staleErr
}

// applySwitch sets the route's primary and fallback to the proposal's through the admin route
// edit (postgres.UpdateRouteTx: the route row locked, the before and after in the audit log), in
// the caller's transaction; or says why the recommendation is stale.
func applySwitch(ctx context.Context, tx pgx.Tx, r optimize.Stored, actor string) (string, error) {
	var p optimize.Proposal
	var b optimize.Basis
	if err := json.Unmarshal(r.Proposal, &p); err != nil {
		return "", fmt.Errorf("recommendation %s proposal: %w", r.ID, err)
	}
	if err := json.Unmarshal(r.Basis, &b); err != nil {
		return "", fmt.Errorf("recommendation %s basis: %w", r.ID, err)
	}
	primary, fallback := p.PrimaryModel, p.FallbackModel
	var stale string
	_, err := postgres.UpdateRouteTx(ctx, tx, r.Target, catalog.RouteChange{PrimaryModel: &primary, FallbackModel: &fallback}, actor,
		func(before catalog.Route, models map[string]catalog.Model) error {
			target, known := models[p.PrimaryModel]
			if stale = optimize.Stale(b, p, before, target, known); stale != "" {
				return errStale
			}
			return nil
		})
	switch {
	case errors.Is(err, errStale):
		return stale, nil
	case errors.Is(err, catalog.ErrUnknownOperation):
		return fmt.Sprintf("operation %s no longer has a route", r.Target), nil
	}
	return "", err
}

// errStale stops the route edit when the recommendation no longer applies.
var errStale = errors.New("recommendation stale")
