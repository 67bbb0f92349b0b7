package auditstore

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/jackc/pgx/v5"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/helixhq/helix/shared/auditlog"
	"github.com/helixhq/helix/shared/outbox"
)

// SaveCheckpoint stores a signed checkpoint and queues it for #helix-hash-chain, in one
// transaction.
func (l *Log) SaveCheckpoint(ctx context.Context, size int64, root tlog.Hash, signed string) error {
	item, err := json.Marshal(outbox.CheckpointItem{Size: size, Root: root.String(), Signed: signed})
	if err != nil {
		return err
	}
	return pgx.BeginFunc(ctx, l.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO audit_checkpoints (size, root, signed) VALUES ($1, $2, $3)`, size, root[:], signed); err != nil {
			return fmt.Errorf("save checkpoint: %w", err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO discord_outbox (channel, kind, payload) VALUES ($1, $2, $3)`,
			string(outbox.HashChain), outbox.KindCheckpoint, string(item)); err != nil {
			return fmt.Errorf("queue checkpoint: %w", err)
		}
		return nil
	})
}

// Checkpoints lists the stored checkpoints, oldest first; limit 0 means all, otherwise the
// newest limit.
func (l *Log) Checkpoints(ctx context.Context, limit int) ([]auditlog.SignedCheckpoint, error) {
	sql := `SELECT id, size, root, signed, created_at FROM audit_checkpoints ORDER BY id`
	if limit > 0 {
		sql = `SELECT * FROM (SELECT id, size, root, signed, created_at FROM audit_checkpoints ORDER BY id DESC LIMIT $1) c ORDER BY id`
	}
	var rows pgx.Rows
	if limit > 0 {
		rows, _ = l.pool.Query(ctx, sql, limit)
	} else {
		rows, _ = l.pool.Query(ctx, sql)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (auditlog.SignedCheckpoint, error) {
		var c auditlog.SignedCheckpoint
		var root []byte
		err := r.Scan(&c.ID, &c.Size, &root, &c.Signed, &c.At)
		if err == nil && len(root) == tlog.HashSize {
			c.Root = tlog.Hash(root)
		}
		return c, err
	})
}
