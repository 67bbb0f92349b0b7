package auditstore

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/helixhq/helix/shared/auditlog"
	"github.com/helixhq/helix/shared/outbox"
)

// The integrator's advisory lock key (two int4s). (Outbox channels take leases instead.)
const (
	lockClass      = 7345
	integratorLock = 1
)

// ErrNotFound: no such entry, or a size the tree has not reached.
var ErrNotFound = auditlog.ErrNotFound

// Log is the audit log in Postgres.
type Log struct {
	pool *pgxpool.Pool
}

// New returns the log over pool.
func New(pool *pgxpool.Pool) *Log { return &Log{pool: pool} }

// Integrated is what one Integrate call did.
type Integrated struct {
	Entries int   // sequenced now
	Size    int64 // the tree size after
	Busy    bool  // another integrator held the lock: nothing done
}

// Integrate sequences up to limit pending events, oldest first, in one transaction: it takes the
// integrator lock (or returns Busy at once), reads the chain's head and the tree's frontier,
// links the events into entries, appends them to the tree, and writes entries, tree hashes and
// the Discord messages they call for, deleting the events it sequenced. Producers never wait for
// it: they only insert into audit_pending, which this reads without blocking them.
func (l *Log) Integrate(ctx context.Context, limit int) (Integrated, error) {
	var out Integrated
	err := pgx.BeginFunc(ctx, l.pool, func(tx pgx.Tx) error {
		var ok bool
		if err := tx.QueryRow(ctx, `SELECT pg_try_advisory_xact_lock($1, $2)`, lockClass, integratorLock).Scan(&ok); err != nil {
			return err
		}
		if !ok {
			out.Busy = true
			return nil
		}
		head, err := readHead(ctx, tx)
		if err != nil {
			return err
		}
		out.Size = head.Size
		frontier, err := readHashes(ctx, tx, auditlog.FrontierIndexes(head.Size))
		if err != nil {
			return fmt.Errorf("audit frontier: %w", err)
		}
		// An operation's event names its log row (migration 00010): its payload is built here.
		rows, _ := tx.Query(ctx, `
			WITH p AS (
				DELETE FROM audit_pending WHERE id IN (SELECT id FROM audit_pending ORDER BY id LIMIT $1)
				RETURNING id, created_at, kind, actor, payload, op_id)
			SELECT p.id, p.created_at, p.kind, p.actor, p.payload, p.op_id, l.id IS NOT NULL,
			       coalesce(l.request_id, ''), coalesce(l.operation_id, ''), coalesce(l.model_used, ''),
			       coalesce(l.provider, ''), coalesce(l.input_tokens, 0), coalesce(l.output_tokens, 0),
			       coalesce(l.cached_input_tokens, 0), coalesce(l.reasoning_tokens, 0),
			       coalesce(l.cache_write_tokens, 0), coalesce(l.cache_write_1h_tokens, 0),
			       coalesce(l.cost_nano, 0), coalesce(l.latency_ms, 0), coalesce(l.success, false),
			       coalesce(l.error_code, ''), coalesce(l.fallback_used, false)
			  FROM p LEFT JOIN ai_operation_log l ON l.id = p.op_id`, limit)
		pending, err := pgx.CollectRows(rows, scanPending)
		if err != nil {
			return fmt.Errorf("audit pending: %w", err)
		}
		if len(pending) == 0 {
			return nil
		}
		slices.SortFunc(pending, func(a, b auditlog.Pending) int { return cmp.Compare(a.ID, b.ID) })
		entries := auditlog.Link(head, pending)
		tree, err := auditlog.NewAppender(head.Size, frontier)
		if err != nil {
			return err
		}
		var hashRows, entryRows, outboxRows [][]any
		for _, e := range entries {
			stored, err := tree.Append(e.LeafHash())
			if err != nil {
				return err
			}
			for _, h := range stored {
				hashRows = append(hashRows, []any{h.Index, h.Hash[:]})
			}
			entryRows = append(entryRows, []any{e.Seq, e.PrevHash[:], e.Hash[:], e.At, string(e.Kind), e.Actor, e.Payload})
			channels := outbox.Route(e)
			if len(channels) == 0 {
				continue
			}
			item, err := outbox.ItemOf(e)
			if err != nil {
				return err
			}
			for _, ch := range channels {
				outboxRows = append(outboxRows, []any{string(ch), string(e.Kind), string(item), e.Seq})
			}
		}
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"audit_entries"},
			[]string{"seq", "prev_hash", "hash", "created_at", "kind", "actor", "payload"}, pgx.CopyFromRows(entryRows)); err != nil {
			return fmt.Errorf("audit entries: %w", err)
		}
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"audit_tree_hashes"}, []string{"idx", "hash"}, pgx.CopyFromRows(hashRows)); err != nil {
			return fmt.Errorf("audit tree: %w", err)
		}
		if len(outboxRows) > 0 {
			if _, err := tx.CopyFrom(ctx, pgx.Identifier{"discord_outbox"}, []string{"channel", "kind", "payload", "audit_seq"},
				pgx.CopyFromRows(outboxRows)); err != nil {
				return fmt.Errorf("audit outbox: %w", err)
			}
		}
		out.Entries = len(entries)
		out.Size = tree.Size()
		return nil
	})
	if err != nil {
		return Integrated{}, fmt.Errorf("integrate audit events: %w", err)
	}
	return out, nil
}

// scanPending reads a pending event; an operation's payload is its log row's summary.
func scanPending(r pgx.CollectableRow) (auditlog.Pending, error) {
	var p auditlog.Pending
	var kind string
	var payload *string
	var opID *int64
	var found bool
	var f auditlog.OperationFacts
	if err := r.Scan(&p.ID, &p.At, &kind, &p.Actor, &payload, &opID, &found,
		&f.RequestID, &f.OperationID, &f.Model, &f.Provider, &f.InputTokens, &f.OutputTokens,
		&f.CachedInputTokens, &f.ReasoningTokens, &f.CacheWriteTokens, &f.CacheWrite1hTokens,
		&f.CostNano, &f.LatencyMS, &f.Success, &f.ErrorCode, &f.FallbackUsed); err != nil {
		return p, err
	}
	p.Kind = auditlog.Kind(kind)
	switch {
	case payload != nil:
		p.Payload = *payload
	case opID != nil && found:
		b, err := json.Marshal(f)
		if err != nil {
			return p, err
		}
		p.Payload = string(b)
	case opID != nil:
		// The row was deleted between the call's commit and its sequencing: that is a fact too.
		b, _ := json.Marshal(map[string]any{"op_log_id": *opID, "missing": "the operation's log row was deleted before it was sequenced"})
		p.Payload = string(b)
	default:
		return p, fmt.Errorf("audit pending event %d has neither a payload nor an operation", p.ID)
	}
	return p, nil
}

// IntegrateAll sequences batches until nothing is pending, another integrator holds the lock,
// or ctx ends; it returns how many entries it sequenced.
func (l *Log) IntegrateAll(ctx context.Context, batch int) (Integrated, error) {
	var total Integrated
	for {
		r, err := l.Integrate(ctx, batch)
		total.Entries += r.Entries
		total.Size = max(total.Size, r.Size)
		total.Busy = r.Busy
		if err != nil || r.Busy || r.Entries < batch || ctx.Err() != nil {
			return total, err
		}
	}
}

type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

func readHead(ctx context.Context, q querier) (auditlog.Head, error) {
	var seq int64
	var hash []byte
	err := q.QueryRow(ctx, `SELECT seq, hash FROM audit_entries ORDER BY seq DESC LIMIT 1`).Scan(&seq, &hash)
	if errors.Is(err, pgx.ErrNoRows) {
		return auditlog.Head{Size: 0, LastHash: auditlog.Genesis()}, nil
	}
	if err != nil {
		return auditlog.Head{}, fmt.Errorf("audit head: %w", err)
	}
	return auditlog.Head{Size: seq + 1, LastHash: tlog.Hash(hash)}, nil
}

// readHashes reads stored tree hashes, in the order asked; a missing one is an error.
func readHashes(ctx context.Context, q querier, indexes []int64) ([]tlog.Hash, error) {
	if len(indexes) == 0 {
		return nil, nil
	}
	rows, _ := q.Query(ctx, `SELECT idx, hash FROM audit_tree_hashes WHERE idx = ANY($1)`, indexes)
	got := make(map[int64]tlog.Hash, len(indexes))
	var idx int64
	var hash []byte
	if _, err := pgx.ForEachRow(rows, []any{&idx, &hash}, func() error {
		if len(hash) != tlog.HashSize {
			return fmt.Errorf("tree hash %d has %d bytes", idx, len(hash))
		}
		got[idx] = tlog.Hash(hash)
		return nil
	}); err != nil {
		return nil, err
	}
	out := make([]tlog.Hash, len(indexes))
	for i, x := range indexes {
		h, ok := got[x]
		if !ok {
			return nil, fmt.Errorf("tree hash %d is missing", x)
		}
		out[i] = h
	}
	return out, nil
}

// Head is the chain's head now.
func (l *Log) Head(ctx context.Context) (auditlog.Head, error) { return readHead(ctx, l.pool) }

// Pending counts the events waiting to be sequenced.
func (l *Log) Pending(ctx context.Context) (int64, error) {
	var n int64
	err := l.pool.QueryRow(ctx, `SELECT count(*) FROM audit_pending`).Scan(&n)
	return n, err
}

// PendingAtLeast reports whether n or more events wait to be sequenced, reading at most n rows
// of the queue however long it has grown.
func (l *Log) PendingAtLeast(ctx context.Context, n int64) (bool, error) {
	var got int64
	err := l.pool.QueryRow(ctx, `SELECT count(*) FROM (SELECT 1 FROM audit_pending LIMIT $1) p`, n).Scan(&got)
	return got >= n, err
}

// OldestPending is when the oldest unsequenced event was recorded (zero when none).
func (l *Log) OldestPending(ctx context.Context) (time.Time, error) {
	var at *time.Time
	err := l.pool.QueryRow(ctx, `SELECT min(created_at) FROM audit_pending`).Scan(&at)
	if err != nil || at == nil {
		return time.Time{}, err
	}
	return *at, nil
}

// hashReader reads the stored tree with ctx (tlog's HashReader has none).
func (l *Log) hashReader(ctx context.Context) tlog.HashReader {
	return tlog.HashReaderFunc(func(indexes []int64) ([]tlog.Hash, error) {
		return readHashes(ctx, l.pool, indexes)
	})
}

// Root is the root hash of the tree's first size entries.
func (l *Log) Root(ctx context.Context, size int64) (tlog.Hash, error) {
	head, err := l.Head(ctx)
	if err != nil {
		return tlog.Hash{}, err
	}
	if size < 0 || size > head.Size {
		return tlog.Hash{}, ErrNotFound
	}
	return tlog.TreeHash(size, l.hashReader(ctx))
}

// Entries lists entries after seq after (from 0 when after < 0), oldest first, up to limit.
func (l *Log) Entries(ctx context.Context, after int64, limit int) ([]auditlog.Entry, error) {
	rows, _ := l.pool.Query(ctx, `SELECT seq, prev_hash, hash, created_at, kind, actor, payload
		FROM audit_entries WHERE seq > $1 ORDER BY seq LIMIT $2`, after, limit)
	return pgx.CollectRows(rows, scanEntry)
}

// Entry reads one entry.
func (l *Log) Entry(ctx context.Context, seq int64) (auditlog.Entry, error) {
	rows, _ := l.pool.Query(ctx, `SELECT seq, prev_hash, hash, created_at, kind, actor, payload
		FROM audit_entries WHERE seq = $1`, seq)
	e, err := pgx.CollectExactlyOneRow(rows, scanEntry)
	if errors.Is(err, pgx.ErrNoRows) {
		return e, ErrNotFound
	}
	return e, err
}

func scanEntry(r pgx.CollectableRow) (auditlog.Entry, error) {
	var e auditlog.Entry
	var prev, hash []byte
	var kind string
	if err := r.Scan(&e.Seq, &prev, &hash, &e.At, &kind, &e.Actor, &e.Payload); err != nil {
		return e, err
	}
	if len(prev) != tlog.HashSize || len(hash) != tlog.HashSize {
		return e, fmt.Errorf("audit entry %d: hashes of %d and %d bytes", e.Seq, len(prev), len(hash))
	}
	e.PrevHash, e.Hash, e.Kind, e.At = tlog.Hash(prev), tlog.Hash(hash), auditlog.Kind(kind), e.At.UTC()
	return e, nil
}

// InclusionProof proves entry seq is in the tree of the first size entries: the proof, the
// entry's leaf hash and that tree's root.
func (l *Log) InclusionProof(ctx context.Context, seq, size int64) (tlog.RecordProof, tlog.Hash, tlog.Hash, error) {
	head, err := l.Head(ctx)
	if err != nil {
		return nil, tlog.Hash{}, tlog.Hash{}, err
	}
	if seq < 0 || size <= seq || size > head.Size {
		return nil, tlog.Hash{}, tlog.Hash{}, ErrNotFound
	}
	r := l.hashReader(ctx)
	proof, err := tlog.ProveRecord(size, seq, r)
	if err != nil {
		return nil, tlog.Hash{}, tlog.Hash{}, err
	}
	leaf, err := readHashes(ctx, l.pool, []int64{tlog.StoredHashIndex(0, seq)})
	if err != nil {
		return nil, tlog.Hash{}, tlog.Hash{}, err
	}
	root, err := tlog.TreeHash(size, r)
	return proof, leaf[0], root, err
}

// ConsistencyProof proves the tree of from entries is a prefix of the tree of to entries: the
// proof and both roots.
func (l *Log) ConsistencyProof(ctx context.Context, from, to int64) (tlog.TreeProof, tlog.Hash, tlog.Hash, error) {
	head, err := l.Head(ctx)
	if err != nil {
		return nil, tlog.Hash{}, tlog.Hash{}, err
	}
	if from < 1 || from > to || to > head.Size {
		return nil, tlog.Hash{}, tlog.Hash{}, ErrNotFound
	}
	r := l.hashReader(ctx)
	proof, err := tlog.ProveTree(to, from, r)
	if err != nil {
		return nil, tlog.Hash{}, tlog.Hash{}, err
	}
	fromRoot, err := tlog.TreeHash(from, r)
	if err != nil {
		return nil, tlog.Hash{}, tlog.Hash{}, err
	}
	toRoot, err := tlog.TreeHash(to, r)
	return proof, fromRoot, toRoot, err
}

// SaveRun records how one audit minute's steps went (and forgets runs older than 7 days).
func (l *Log) SaveRun(ctx context.Context, started time.Time, steps map[string]string) error {
	// JSON text, cast in SQL: every query exec mode (PgBouncer-safe ones included) can send it.
	js, err := json.Marshal(steps)
	if err != nil {
		return err
	}
	_, err = l.pool.Exec(ctx, `
		WITH old AS (DELETE FROM audit_runs WHERE started_at < clock_timestamp() - interval '7 days')
		INSERT INTO audit_runs (started_at, steps) VALUES ($1, $2::text::jsonb)`, started, string(js))
	return err
}

// LastRun is how the last recorded minute's steps named went (nil when none was recorded; a
// step it did not run is absent).
func (l *Log) LastRun(ctx context.Context, names ...string) (map[string]string, error) {
	var raw string
	err := l.pool.QueryRow(ctx, `SELECT steps::text FROM audit_runs ORDER BY id DESC LIMIT 1`).Scan(&raw)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var steps map[string]string
	if err := json.Unmarshal([]byte(raw), &steps); err != nil {
		return nil, err
	}
	out := make(map[string]string, len(names))
	for _, n := range names {
		if v, ok := steps[n]; ok {
			out[n] = v
		}
	}
	return out, nil
}
