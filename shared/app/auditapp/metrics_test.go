package auditapp_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/helixhq/helix/shared/app/auditapp"
	"github.com/helixhq/helix/shared/app/auditapp/auditapptest"
	"github.com/helixhq/helix/shared/emf"
	"github.com/helixhq/helix/shared/outbox"
)

// The minute writes one EMF line with the backlogs the alarms watch: living undelivered outbox
// entries and the oldest one's age, unsequenced audit events and the oldest one's age. Another
// integrator holds the lock here (the test, with auditstore's lock key), so the events stay
// pending; the outbox entries are not due, so they stay undelivered; a dead and a delivered entry
// are not backlog. The living entries are younger than the discord_backlog alert's 10 minutes,
// so the minute's alert evaluation adds no event of its own.
func TestTheMinuteWritesTheBacklogMetrics(t *testing.T) {
	e := newEnv(t)
	var out auditapptest.LockedBuffer
	e.a.Metrics = emf.New(&out, emf.Options{Function: "audit"})
	ch := string(outbox.Channels()[0])
	if n := e.count(t, `SELECT count(*) FROM discord_outbox WHERE delivered_at IS NULL AND dead_at IS NULL`); n != 0 {
		t.Fatalf("test setup: %d undelivered outbox entries at the start", n)
	}
	e.exec(t, `INSERT INTO discord_outbox (channel, kind, payload, created_at, next_attempt_at, delivered_at, dead_at) VALUES
		($1, 'test', '{}', now() - interval '4 minutes', now() + interval '1 hour', NULL, NULL),
		($1, 'test', '{}', now() - interval '3 minutes', now() + interval '1 hour', NULL, NULL),
		($1, 'test', '{}', now() - interval '2 hours', now(), NULL, now()),
		($1, 'test', '{}', now() - interval '3 hours', now(), now(), NULL)`, ch)
	e.exec(t, `INSERT INTO audit_pending (kind, actor, payload, created_at)
		SELECT 'admin_change', 'ops', '{"what":"toggle"}', now() - interval '5 minutes' FROM generate_series(1, 3)`)
	pending := e.count(t, `SELECT count(*) FROM audit_pending`) // the three, and the cold start's deployment

	// Hold the integrator's lock (auditstore's key: class 7345, lock 1) for the minute.
	tx, err := e.pool.Begin(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(t.Context()) }()
	if _, err := tx.Exec(t.Context(), `SELECT pg_advisory_xact_lock(7345, 1)`); err != nil {
		t.Fatal(err)
	}
	res := e.run(t)
	if res.Steps["metrics"] != "ok" {
		t.Fatalf("metrics step: %q", res.Steps["metrics"])
	}
	if res.Integrated != 0 {
		t.Fatalf("test setup: %d events integrated although the lock was held", res.Integrated)
	}

	var docs []map[string]any
	for _, l := range strings.Split(out.String(), "\n") {
		if l == "" {
			continue
		}
		var d map[string]any
		if err := json.Unmarshal([]byte(l), &d); err != nil {
			t.Fatalf("a metrics line that is not JSON: %q", l)
		}
		docs = append(docs, d)
	}
	if len(docs) != 1 {
		t.Fatalf("%d metrics lines, want 1:\n%s", len(docs), out.String())
	}
	d := docs[0]
	if d["function"] != "audit" || d[auditapp.MetricOutboxBacklog] != 2.0 || d[auditapp.MetricAuditPending] != float64(pending) {
		t.Errorf("line %v, want function audit, 2 outbox entries and %d pending events", d, pending)
	}
	// Ages are whole seconds since the oldest entry: at least what was inserted, and not more
	// than the minute's own run on top.
	for name, lo := range map[string]float64{auditapp.MetricOutboxOldestAge: 4 * 60, auditapp.MetricAuditIntegrationLag: 5 * 60} {
		if v, _ := d[name].(float64); v < lo || v > lo+60 {
			t.Errorf("%s = %v, want between %v and %v", name, d[name], lo, lo+60)
		}
	}
	dir := d["_aws"].(map[string]any)["CloudWatchMetrics"].([]any)[0].(map[string]any)
	if sets, _ := json.Marshal(dir["Dimensions"]); string(sets) != `[["function"]]` {
		t.Errorf("dimension sets %s, want [[\"function\"]]", sets)
	}
}

// Nothing waiting: zeros, not missing values (an alarm on a missing value cannot tell "fine"
// from "not measured"). The first minute sequences and delivers the cold start's deployment
// event; the second finds nothing.
func TestTheBacklogMetricsAreZeroWhenNothingWaits(t *testing.T) {
	e := newEnv(t)
	wantAllOK(t, e.run(t).Steps)
	var out auditapptest.LockedBuffer
	e.a.Metrics = emf.New(&out, emf.Options{Function: "audit"})
	if s := e.run(t).Steps["metrics"]; s != "ok" {
		t.Fatalf("metrics step: %q", s)
	}
	var d map[string]any
	if err := json.Unmarshal([]byte(strings.TrimSpace(out.String())), &d); err != nil {
		t.Fatalf("%v: %q", err, out.String())
	}
	for _, name := range []string{auditapp.MetricOutboxBacklog, auditapp.MetricOutboxOldestAge,
		auditapp.MetricAuditPending, auditapp.MetricAuditIntegrationLag} {
		if d[name] != 0.0 {
			t.Errorf("%s = %v, want 0", name, d[name])
		}
	}
}
