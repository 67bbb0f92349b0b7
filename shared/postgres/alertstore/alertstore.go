// Package alertstore keeps alert rules, their state and their events in Postgres, reads what
// each rule watches, and records every fire and clear in the audit log (so it reaches
// #helix-alerts through the outbox) in the transaction that changes the state.
package alertstore

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/helixhq/helix/shared/alerts"
	"github.com/helixhq/helix/shared/auditlog"
	"github.com/helixhq/helix/shared/postgres/auditstore"
)

// The store's errors are the domain's.
var (
	ErrNotFound = alerts.ErrNotFound
	ErrStanding = alerts.ErrStanding
)

// Store is the alerts in Postgres.
type Store struct {
	pool   *pgxpool.Pool
	sealer *alerts.Sealer // nil: rules cannot have webhooks of their own
}

// New returns the store; sealer opens and seals rules' webhooks (nil: none allowed).
func New(pool *pgxpool.Pool, sealer *alerts.Sealer) *Store { return &Store{pool: pool, sealer: sealer} }

// WithKey returns the store with rules' own webhooks sealed by key (HELIX_ALERT_WEBHOOK_KEY:
// 32 bytes in base64; "" allows no webhooks of their own).
func WithKey(pool *pgxpool.Pool, key string) (*Store, error) {
	if strings.TrimSpace(key) == "" {
		return New(pool, nil), nil
	}
	sealer, err := alerts.NewSealer(strings.TrimSpace(key))
	if err != nil {
		return nil, err
	}
	return New(pool, sealer), nil
}

// CanSealWebhooks reports whether rules may have webhooks of their own.
func (s *Store) CanSealWebhooks() bool { return s.sealer != nil }

const ruleColumns = `id::text, name, type, threshold, severity, standing, enabled, webhook_sealed, created_by, created_at, updated_at`

func (s *Store) scanRule(row pgx.Row) (alerts.Rule, error) {
	var r alerts.Rule
	var sev string
	var sealed []byte
	if err := row.Scan(&r.ID, &r.Name, &r.Type, &r.Threshold, &sev, &r.Standing, &r.Enabled, &sealed, &r.CreatedBy, &r.CreatedAt, &r.UpdatedAt); err != nil {
		return r, err
	}
	r.Severity = alerts.Severity(sev)
	if sealed != nil {
		if s.sealer == nil {
			return r, errors.New("an alert rule has a sealed webhook but HELIX_ALERT_WEBHOOK_KEY is not set")
		}
		hook, err := s.sealer.Open(sealed)
		if err != nil {
			return r, err
		}
		r.Webhook = hook
	}
	return r, nil
}

// Rules lists the rules (not deleted), standing ones first.
func (s *Store) Rules(ctx context.Context, enabledOnly bool) ([]alerts.Rule, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+ruleColumns+` FROM alert_rules
		WHERE deleted_at IS NULL AND (enabled OR NOT $1) ORDER BY standing DESC, created_at, id`, enabledOnly)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []alerts.Rule
	for rows.Next() {
		r, err := s.scanRule(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// Rule reads one rule.
func (s *Store) Rule(ctx context.Context, id string) (alerts.Rule, error) {
	r, err := s.scanRule(s.pool.QueryRow(ctx, `SELECT `+ruleColumns+` FROM alert_rules WHERE id::text = $1 AND deleted_at IS NULL`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return r, ErrNotFound
	}
	return r, err
}

// Create adds an operator rule, recorded in the audit log as an admin change (never the webhook).
func (s *Store) Create(ctx context.Context, r alerts.Rule, by string) (alerts.Rule, error) {
	var sealed []byte
	if r.Webhook != "" {
		if s.sealer == nil {
			return r, fmt.Errorf("%w: webhook_url needs HELIX_ALERT_WEBHOOK_KEY on the server", alerts.ErrInvalid)
		}
		var err error
		if sealed, err = s.sealer.Seal(r.Webhook); err != nil {
			return r, err
		}
	}
	var out alerts.Rule
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var err error
		out, err = s.scanRule(tx.QueryRow(ctx, `
			INSERT INTO alert_rules (name, type, threshold, severity, webhook_sealed, created_by)
			VALUES ($1, $2, $3, $4, $5, $6) RETURNING `+ruleColumns,
			r.Name, r.Type, r.Threshold, string(r.Severity), sealed, by))
		if err != nil {
			return err
		}
		return auditstore.Record(ctx, tx, auditlog.Event{Kind: auditlog.AdminChange, Actor: by,
			Payload: auditlog.Change{What: "alert_rule", ID: out.ID, After: view(out)}})
	})
	return out, err
}

// Update applies a patch, recorded with the values before and after.
func (s *Store) Update(ctx context.Context, id string, p alerts.Patch, by string) (alerts.Rule, error) {
	var out alerts.Rule
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		before, err := s.scanRule(tx.QueryRow(ctx, `SELECT `+ruleColumns+` FROM alert_rules WHERE id::text = $1 AND deleted_at IS NULL FOR UPDATE`, id))
		if errors.Is(err, pgx.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		after := before
		if p.Name != nil {
			after.Name = *p.Name
		}
		if p.Threshold != nil {
			after.Threshold = *p.Threshold
		}
		if p.Severity != nil {
			after.Severity = *p.Severity
		}
		if p.Enabled != nil {
			after.Enabled = *p.Enabled
		}
		if out, err = s.scanRule(tx.QueryRow(ctx, `
			UPDATE alert_rules SET name = $2, threshold = $3, severity = $4, enabled = $5, updated_at = now()
			 WHERE id::text = $1 RETURNING `+ruleColumns, id, after.Name, after.Threshold, string(after.Severity), after.Enabled)); err != nil {
			return err
		}
		if !out.Enabled {
			// A disabled rule's open alerts end without a clear: it no longer watches.
			if _, err := tx.Exec(ctx, `DELETE FROM alert_state WHERE rule_id::text = $1`, id); err != nil {
				return err
			}
		}
		return auditstore.Record(ctx, tx, auditlog.Event{Kind: auditlog.AdminChange, Actor: by,
			Payload: auditlog.Change{What: "alert_rule", ID: id, Before: view(before), After: view(out)}})
	})
	return out, err
}

// Delete removes an operator rule (kept, marked deleted, for its events' sake).
func (s *Store) Delete(ctx context.Context, id, by string) error {
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		r, err := s.scanRule(tx.QueryRow(ctx, `SELECT `+ruleColumns+` FROM alert_rules WHERE id::text = $1 AND deleted_at IS NULL FOR UPDATE`, id))
		if errors.Is(err, pgx.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		if r.Standing {
			return ErrStanding
		}
		if _, err := tx.Exec(ctx, `UPDATE alert_rules SET deleted_at = now(), enabled = false, webhook_sealed = NULL WHERE id::text = $1`, id); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `DELETE FROM alert_state WHERE rule_id::text = $1`, id); err != nil {
			return err
		}
		return auditstore.Record(ctx, tx, auditlog.Event{Kind: auditlog.AdminChange, Actor: by,
			Payload: auditlog.Change{What: "alert_rule", ID: id, Before: view(r)}})
	})
}

// view is a rule as the audit log records it: never its webhook.
func view(r alerts.Rule) map[string]any {
	return map[string]any{"name": r.Name, "type": r.Type, "threshold": r.Threshold, "severity": string(r.Severity),
		"enabled": r.Enabled, "own_webhook": r.HasWebhook()}
}

// Events lists events newest first, before id (0: from the newest).
func (s *Store) Events(ctx context.Context, before int64, limit int) ([]alerts.Event, error) {
	rows, err := s.pool.Query(ctx, `
		SELECT e.id, e.rule_id::text, r.name, r.type, r.severity, e.subject, e.state, e.value, e.detail, e.created_at, e.delivered_at,
		       e.attempts, e.last_error
		  FROM alert_events e JOIN alert_rules r ON r.id = e.rule_id
		 WHERE ($1 = 0 OR e.id < $1) ORDER BY e.id DESC LIMIT $2`, before, limit)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (alerts.Event, error) {
		var e alerts.Event
		var sev string
		err := r.Scan(&e.ID, &e.RuleID, &e.RuleName, &e.Type, &sev, &e.Subject, &e.State, &e.Value, &e.Detail, &e.At, &e.Delivered, &e.Attempts, &e.LastError)
		e.Severity = alerts.Severity(sev)
		return e, err
	})
}

// Apply advances a rule's state with one evaluation's readings (a subject with state but no
// reading reads as inactive) and records each fire and clear: in alert_events, and in the audit
// log, all in one transaction. It returns the new events.
func (s *Store) Apply(ctx context.Context, r alerts.Rule, readings []alerts.Reading, now time.Time) ([]alerts.Event, error) {
	var out []alerts.Event
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT subject, firing, since, false_streak, value FROM alert_state WHERE rule_id::text = $1 FOR UPDATE`, r.ID)
		if err != nil {
			return err
		}
		states := map[string]alerts.State{}
		for rows.Next() {
			var subj string
			var st alerts.State
			if err := rows.Scan(&subj, &st.Firing, &st.Since, &st.FalseStreak, &st.Value); err != nil {
				rows.Close()
				return err
			}
			states[subj] = st
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		seen := map[string]bool{}
		step := func(rd alerts.Reading) error {
			seen[rd.Subject] = true
			before, known := states[rd.Subject]
			after, tr := alerts.Step(before, rd.Active, rd.Value, now)
			switch {
			case !after.Firing && after.FalseStreak == 0 && (tr == alerts.Cleared || known):
				// Quiet again: the subject needs no state until its condition comes back.
				if _, err := tx.Exec(ctx, `DELETE FROM alert_state WHERE rule_id::text = $1 AND subject = $2`, r.ID, rd.Subject); err != nil {
					return err
				}
			case after.Firing:
				if _, err := tx.Exec(ctx, `
					INSERT INTO alert_state (rule_id, subject, firing, since, false_streak, value) VALUES ($1::uuid, $2, $3, $4, $5, $6)
					ON CONFLICT (rule_id, subject) DO UPDATE SET firing = $3, since = $4, false_streak = $5, value = $6`,
					r.ID, rd.Subject, after.Firing, after.Since, after.FalseStreak, finite(after.Value)); err != nil {
					return err
				}
			}
			if tr == alerts.None {
				return nil
			}
			state := auditlog.Fired
			if tr == alerts.Cleared {
				state = auditlog.Cleared
			}
			detail := rd.Detail
			if tr == alerts.Cleared {
				detail = fmt.Sprintf("cleared after %d evaluations without the condition: %s", alerts.ClearAfter, rd.Detail)
			}
			e := alerts.Event{RuleID: r.ID, RuleName: r.Name, Type: r.Type, Severity: r.Severity, Subject: rd.Subject, State: state,
				Value: finite(rd.Value), Detail: detail, At: now}
			if err := tx.QueryRow(ctx, `
				INSERT INTO alert_events (rule_id, subject, state, value, detail, created_at)
				VALUES ($1::uuid, $2, $3, $4, $5, $6) RETURNING id`,
				r.ID, rd.Subject, state, e.Value, detail, now).Scan(&e.ID); err != nil {
				return err
			}
			name := r.Type
			if rd.Subject != "" {
				name += " " + rd.Subject
			}
			if err := auditstore.Record(ctx, tx, auditlog.Event{Kind: auditlog.Alert, Actor: "audit",
				Payload: auditlog.AlertEvent{Name: name, State: state, Detail: fmt.Sprintf("%s (%s, rule %q): %s", r.Type, r.Severity, r.Name, detail)}}); err != nil {
				return err
			}
			out = append(out, e)
			return nil
		}
		for _, rd := range readings {
			if err := step(rd); err != nil {
				return err
			}
		}
		for subj, st := range states {
			if !seen[subj] {
				if err := step(alerts.Reading{Subject: subj, Value: st.Value, Detail: "the condition no longer holds"}); err != nil {
					return err
				}
			}
		}
		return nil
	})
	return out, err
}

func finite(v float64) float64 {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return 0
	}
	return v
}

// Undelivered lists events of rules with webhooks of their own not yet delivered, oldest first,
// with fewer than maxAttempts attempts.
func (s *Store) Undelivered(ctx context.Context, limit, maxAttempts int) ([]alerts.Event, error) {
	rows, err := s.pool.Query(ctx, `
		SELECT e.id, e.rule_id::text, r.name, r.type, r.severity, e.subject, e.state, e.value, e.detail, e.created_at, e.delivered_at,
		       e.attempts, e.last_error
		  FROM alert_events e JOIN alert_rules r ON r.id = e.rule_id
		 WHERE e.delivered_at IS NULL AND e.attempts < $2 AND r.webhook_sealed IS NOT NULL
		 ORDER BY e.id LIMIT $1`, limit, maxAttempts)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (alerts.Event, error) {
		var e alerts.Event
		var sev string
		err := r.Scan(&e.ID, &e.RuleID, &e.RuleName, &e.Type, &sev, &e.Subject, &e.State, &e.Value, &e.Detail, &e.At, &e.Delivered, &e.Attempts, &e.LastError)
		e.Severity = alerts.Severity(sev)
		return e, err
	})
}

// Delivered marks an event delivered to its rule's webhook.
func (s *Store) Delivered(ctx context.Context, id int64, at time.Time) error {
	_, err := s.pool.Exec(ctx, `UPDATE alert_events SET delivered_at = $2, attempts = attempts + 1 WHERE id = $1`, id, at)
	return err
}

// Failed counts a failed delivery attempt (the reason never names the URL).
func (s *Store) Failed(ctx context.Context, id int64, reason string) error {
	_, err := s.pool.Exec(ctx, `UPDATE alert_events SET attempts = attempts + 1, last_error = $2 WHERE id = $1`, id, reason)
	return err
}
