package auditstore

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
	"github.com/helixhq/helix/shared/outbox"
)

// Outbox is the Discord outbox in Postgres (outbox.Store), and the alerter it raises alerts with.
type Outbox struct {
	pool *pgxpool.Pool
}

// NewOutbox returns the outbox over pool.
func NewOutbox(pool *pgxpool.Pool) *Outbox { return &Outbox{pool: pool} }

var (
	_ outbox.Store   = (*Outbox)(nil)
	_ outbox.Alerter = (*Outbox)(nil)
)

// leaseFor is how long a channel's lease lasts: longer than a delivery can run (the audit
// function's deliver step is bounded at 20 s), shorter than the gap to the next minute's run,
// so a run that died does not cost the channel a minute.
const leaseFor = 45 * time.Second

// Lock implements outbox.Store with a lease in discord_leases: taken when it is free or expired,
// given back by unlock. It holds no connection while the channel is delivered, so channels are
// delivered side by side over a small pool.
func (o *Outbox) Lock(ctx context.Context, ch outbox.Channel) (func(), bool, error) {
	holder := uuid.NewString()
	var got string
	err := o.pool.QueryRow(ctx, `
		INSERT INTO discord_leases (channel, holder, until) VALUES ($1, $2, clock_timestamp() + $3::interval)
		ON CONFLICT (channel) DO UPDATE SET holder = excluded.holder, until = excluded.until
		WHERE discord_leases.until < clock_timestamp()
		RETURNING holder`, string(ch), holder, leaseFor.String()).Scan(&got)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	return func() {
		// Given back even when the run's context has ended; if this fails, the lease expires.
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, _ = o.pool.Exec(ctx, `DELETE FROM discord_leases WHERE channel = $1 AND holder = $2`, string(ch), holder)
	}, true, nil
}

// Backlog counts the living undelivered messages and says when the oldest was written (zero
// when none). The partial index discord_outbox_undelivered holds exactly these rows, so the
// read stays small however large the delivered history grows.
func (o *Outbox) Backlog(ctx context.Context) (int64, time.Time, error) {
	var n int64
	var oldest *time.Time
	if err := o.pool.QueryRow(ctx, `SELECT count(*), min(created_at) FROM discord_outbox WHERE delivered_at IS NULL AND dead_at IS NULL`).
		Scan(&n, &oldest); err != nil || oldest == nil {
		return n, time.Time{}, err
	}
	return n, *oldest, nil
}

// Due implements outbox.Store: the oldest undelivered, living items, stopping at the first that
// is not due yet.
func (o *Outbox) Due(ctx context.Context, ch outbox.Channel, now time.Time, limit int) ([]outbox.Item, error) {
	rows, _ := o.pool.Query(ctx, `
		SELECT id, kind, payload, attempts, created_at, next_attempt_at <= $2
		  FROM discord_outbox
		 WHERE channel = $1 AND delivered_at IS NULL AND dead_at IS NULL
		 ORDER BY id LIMIT $3`, string(ch), now, limit)
	var out []outbox.Item
	var it outbox.Item
	var payload []byte
	var due bool
	stop := false
	_, err := pgx.ForEachRow(rows, []any{&it.ID, &it.Kind, &payload, &it.Attempts, &it.CreatedAt, &due}, func() error {
		if stop || !due {
			stop = true
			return nil
		}
		it.Channel, it.Payload = ch, json.RawMessage(append([]byte(nil), payload...))
		out = append(out, it)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("outbox due: %w", err)
	}
	return out, nil
}

// Delivered implements outbox.Store.
func (o *Outbox) Delivered(ctx context.Context, ids []int64, at time.Time) error {
	_, err := o.pool.Exec(ctx, `UPDATE discord_outbox SET delivered_at = $2, attempts = attempts + 1 WHERE id = ANY($1)`, ids, at)
	return err
}

// Failed implements outbox.Store.
func (o *Outbox) Failed(ctx context.Context, ids []int64, reason string, retryAt time.Time, dead bool) error {
	_, err := o.pool.Exec(ctx, `
		UPDATE discord_outbox
		   SET attempts = attempts + 1, last_error = $2, next_attempt_at = $3,
		       dead_at = CASE WHEN $4 THEN now() END
		 WHERE id = ANY($1)`, ids, reason, retryAt, dead)
	return err
}

// Gone implements outbox.Store.
func (o *Outbox) Gone(ctx context.Context, ch outbox.Channel, fingerprint, reason string, at time.Time) (bool, error) {
	var first bool
	err := o.pool.QueryRow(ctx, `
		INSERT INTO discord_channels (channel, webhook_hash, gone_at, gone_reason) VALUES ($1, $2, $3, $4)
		ON CONFLICT (channel) DO UPDATE SET webhook_hash = $2, gone_at = $3, gone_reason = $4
		 WHERE discord_channels.webhook_hash <> $2 OR discord_channels.gone_at IS NULL
		RETURNING true`, string(ch), fingerprint, at, reason).Scan(&first)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	return first, err
}

// IsGone implements outbox.Store.
func (o *Outbox) IsGone(ctx context.Context, ch outbox.Channel, fingerprint string) (bool, error) {
	var gone bool
	err := o.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM discord_channels WHERE channel = $1 AND webhook_hash = $2 AND gone_at IS NOT NULL)`,
		string(ch), fingerprint).Scan(&gone)
	return gone, err
}

// Alert implements outbox.Alerter: the alert is an audit event, which the integrator routes to
// #helix-alerts.
func (o *Outbox) Alert(ctx context.Context, name, detail string) error {
	return Record(ctx, o.pool, auditlog.Event{Kind: auditlog.Alert, Actor: "audit",
		Payload: auditlog.AlertEvent{Name: name, State: auditlog.Fired, Detail: detail}})
}

// Clear implements outbox.Alerter: an alert cleared, in the audit log.
func (o *Outbox) Clear(ctx context.Context, name, detail string) error {
	return Record(ctx, o.pool, auditlog.Event{Kind: auditlog.Alert, Actor: "audit",
		Payload: auditlog.AlertEvent{Name: name, State: auditlog.Cleared, Detail: detail}})
}

// Revived implements outbox.Store.
func (o *Outbox) Revived(ctx context.Context, ch outbox.Channel, fingerprint string) (bool, error) {
	tag, err := o.pool.Exec(ctx, `
		UPDATE discord_channels SET webhook_hash = $2, gone_at = NULL, gone_reason = ''
		 WHERE channel = $1 AND gone_at IS NOT NULL AND webhook_hash <> $2`, string(ch), fingerprint)
	return tag.RowsAffected() == 1, err
}

// Digest queues the api channel's digest of the calls in (from, to] that were not posted one by
// one (successful, without fallback), when there were any. It returns the digest's calls.
func (o *Outbox) Digest(ctx context.Context, from, to time.Time) (int64, error) {
	d := outbox.Digest{From: from, To: to, ByModel: map[string]int64{}, Operations: map[string]int64{}}
	rows, _ := o.pool.Query(ctx, `
		SELECT coalesce(model_used, ''), operation_id, count(*), sum(cost_nano)
		  FROM ai_operation_log
		 WHERE created_at > $1 AND created_at <= $2 AND success AND NOT fallback_used
		 GROUP BY 1, 2`, from, to)
	var model, op string
	var n, cost int64
	if _, err := pgx.ForEachRow(rows, []any{&model, &op, &n, &cost}, func() error {
		d.Calls += n
		d.CostNano += cost
		d.ByModel[model] += n
		d.Operations[op] += n
		return nil
	}); err != nil {
		return 0, fmt.Errorf("api digest: %w", err)
	}
	if d.Calls == 0 {
		return 0, nil
	}
	payload, err := json.Marshal(d)
	if err != nil {
		return 0, err
	}
	_, err = o.pool.Exec(ctx, `INSERT INTO discord_outbox (channel, kind, payload) VALUES ($1, $2, $3)`,
		string(outbox.API), outbox.KindDigest, string(payload))
	return d.Calls, err
}

// LastDigest is the end of the last digest's window (zero when none was made).
func (o *Outbox) LastDigest(ctx context.Context) (time.Time, error) {
	var to *time.Time
	err := o.pool.QueryRow(ctx, `SELECT (payload->>'to')::timestamptz FROM discord_outbox WHERE kind = $1 ORDER BY id DESC LIMIT 1`,
		outbox.KindDigest).Scan(&to)
	if errors.Is(err, pgx.ErrNoRows) || (err == nil && to == nil) {
		return time.Time{}, nil
	}
	if err != nil {
		return time.Time{}, err
	}
	return *to, nil
}
