// Package auditstore keeps the audit log in Postgres: the pending events producers record with
// their changes, the integrator that sequences them into the hash chain and the Merkle tree,
// proofs and verification over them, checkpoints, and the Discord outbox.
package auditstore

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/helixhq/helix/shared/auditlog"
)

// Execer is a transaction or a pool: Record joins whatever transaction the change runs in.
type Execer interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

// recordSQL is the one insert an event costs its producer.
const recordSQL = `INSERT INTO audit_pending (kind, actor, payload) VALUES ($1, $2, $3)`

// Record adds an event to the log, in q's transaction: committed with the change it records, or
// not at all. It is one insert; sequencing happens later, in batches (Integrate).
func Record(ctx context.Context, q Execer, ev auditlog.Event) error {
	payload, err := ev.PayloadJSON()
	if err != nil {
		return err
	}
	if _, err := q.Exec(ctx, recordSQL, string(ev.Kind), ev.Actor, payload); err != nil {
		return fmt.Errorf("record audit %s: %w", ev.Kind, err)
	}
	return nil
}

// RecordDeployment records a deployment the first time function runs version (a cold start of a
// version no instance ran before); later cold starts of it record nothing. One statement.
func RecordDeployment(ctx context.Context, q Execer, function, version string) error {
	payload, err := json.Marshal(auditlog.DeploymentFacts{Function: function, Version: version})
	if err != nil {
		return err
	}
	_, err = q.Exec(ctx, `
		WITH seen AS (
			INSERT INTO deployments_seen (function, version) VALUES ($1, $2)
			ON CONFLICT DO NOTHING RETURNING 1)
		INSERT INTO audit_pending (kind, actor, payload) SELECT 'deployment', $1, $3 FROM seen`,
		function, version, string(payload))
	if err != nil {
		return fmt.Errorf("record deployment: %w", err)
	}
	return nil
}

// Record adds an event that is a change of its own (a heartbeat, an alert), in a transaction of
// its own.
func (l *Log) Record(ctx context.Context, ev auditlog.Event) error {
	return Record(ctx, l.pool, ev)
}
