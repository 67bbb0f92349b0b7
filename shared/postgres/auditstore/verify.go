package auditstore

import (
	"context"
	"errors"
	"fmt"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/helixhq/helix/shared/auditlog"
)

// verifyBatch is how many entries a walk reads at a time.
const verifyBatch = 5000

// Verify re-walks the chain and the tree from entry from (0: the start) to the end: every entry's
// place, its link to the one before, its hash against its contents, and every hash the tree
// stores for it; at each stored checkpoint's size, the checkpoint's signature (when a verifier
// is given) and its root against the tree's. A walk from the middle trusts the stored tree up to
// from only as far as that size's checkpoint vouches for it: from must be 0 or the size of a
// stored checkpoint, whose signature and root are checked first.
func (l *Log) Verify(ctx context.Context, from int64, v note.Verifiers) (auditlog.Report, error) {
	rep := auditlog.Report{From: from}
	checkpoints, bad, err := l.checkpointRoots(ctx, v)
	if err != nil {
		return rep, err
	}
	if bad != nil {
		rep.Broken = bad
		return rep, nil
	}
	prev := auditlog.Genesis()
	var frontier []tlog.Hash
	if from > 0 {
		root, ok := checkpoints[from]
		if !ok {
			return rep, fmt.Errorf("%w: verification starts at 0 or at a checkpoint's size", ErrNotFound)
		}
		if frontier, err = readHashes(ctx, l.pool, auditlog.FrontierIndexes(from)); err != nil {
			return rep, err
		}
		start, _ := auditlog.NewAppender(from, frontier)
		if got, err := start.Root(); err != nil || got != root {
			rep.Broken = &auditlog.Broken{Seq: from - 1, Reason: "the stored tree at the starting checkpoint does not match its signed root"}
			return rep, err
		}
		last, err := l.Entry(ctx, from-1)
		if err != nil {
			return rep, err
		}
		prev = last.Hash
	}
	w, err := auditlog.NewWalker(from, prev, frontier)
	if err != nil {
		return rep, err
	}
	for {
		entries, err := l.Entries(ctx, w.Next()-1, verifyBatch)
		if err != nil {
			return rep, err
		}
		if len(entries) == 0 {
			break
		}
		first, last := entries[0].Seq, entries[len(entries)-1].Seq
		stored, err := l.storedRange(ctx, tlog.StoredHashIndex(0, min(first, w.Next())), tlog.StoredHashIndex(0, last+1))
		if err != nil {
			return rep, err
		}
		for _, e := range entries {
			var mine []auditlog.StoredHash
			lo, hi := tlog.StoredHashIndex(0, e.Seq), tlog.StoredHashIndex(0, e.Seq+1)
			for i := lo; i < hi; i++ {
				if h, ok := stored[i]; ok {
					mine = append(mine, auditlog.StoredHash{Index: i, Hash: h})
				}
			}
			if err := w.Check(e, mine); err != nil {
				var b *auditlog.Broken
				if errors.As(err, &b) {
					rep.Broken = b
					rep.Size = w.Next()
					return rep, nil
				}
				return rep, err
			}
			rep.Checked++
			if root, ok := checkpoints[w.Next()]; ok {
				got, err := w.Root()
				if err != nil {
					return rep, err
				}
				if got != root {
					rep.Broken = &auditlog.Broken{Seq: e.Seq, Reason: fmt.Sprintf("the tree of %d entries does not match its signed checkpoint", w.Next())}
					rep.Size = w.Next()
					return rep, nil
				}
				rep.Checkpoints++
			}
		}
	}
	rep.Size = w.Next()
	rep.Root, err = w.Root()
	return rep, err
}

// storedRange reads the stored tree hashes with indexes in [lo, hi).
func (l *Log) storedRange(ctx context.Context, lo, hi int64) (map[int64]tlog.Hash, error) {
	rows, err := l.pool.Query(ctx, `SELECT idx, hash FROM audit_tree_hashes WHERE idx >= $1 AND idx < $2`, lo, hi)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := make(map[int64]tlog.Hash, hi-lo)
	for rows.Next() {
		var idx int64
		var hash []byte
		if err := rows.Scan(&idx, &hash); err != nil {
			return nil, err
		}
		if len(hash) == tlog.HashSize {
			out[idx] = tlog.Hash(hash)
		}
	}
	return out, rows.Err()
}

// checkpointRoots reads the stored checkpoints' roots by size. With verifier keys, a checkpoint
// whose signature does not verify with any of them, or whose signed text disagrees with its
// columns, is a finding (bad), not an error: someone wrote it without the key, or it was signed
// by a key that is not listed (after a rotation, list the old key too).
func (l *Log) checkpointRoots(ctx context.Context, v note.Verifiers) (map[int64]tlog.Hash, *auditlog.Broken, error) {
	list, err := l.Checkpoints(ctx, 0)
	if err != nil {
		return nil, nil, err
	}
	out := make(map[int64]tlog.Hash, len(list))
	for _, c := range list {
		if v != nil {
			signed, err := auditlog.OpenCheckpointWith(c.Signed, v)
			if err != nil {
				return nil, &auditlog.Broken{Seq: c.Size - 1, Reason: fmt.Sprintf(
					"the stored checkpoint of size %d is not signed by a listed verifier key (HELIX_AUDIT_VERIFIER_KEY): written without the signing key, or signed by a key not listed", c.Size)}, nil
			}
			if signed.Size != c.Size || signed.Root != c.Root {
				return nil, &auditlog.Broken{Seq: c.Size - 1, Reason: fmt.Sprintf(
					"the stored checkpoint of size %d disagrees with its own signed text (size %d)", c.Size, signed.Size)}, nil
			}
		}
		out[c.Size] = c.Root
	}
	return out, nil, nil
}
