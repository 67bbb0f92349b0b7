package auditlog

import (
	"errors"
	"fmt"

	"golang.org/x/mod/sumdb/tlog"
)

// ErrNotFound: no such entry, or a tree size the log has not reached.
var ErrNotFound = errors.New("audit: no such entry or tree size")

// Report is what a verification found.
type Report struct {
	From    int64 // the first entry checked
	Checked int64 // entries checked
	Size    int64 // the tree size reached
	Root    tlog.Hash
	// Checkpoints are the stored checkpoints within the walk whose root (and signature, when a
	// verifier key was given) were checked against the tree.
	Checkpoints int
	// Broken is the first entry found wrong (nil: everything checked holds).
	Broken *Broken
}

// Broken names the first entry verification found wrong, and how.
type Broken struct {
	Seq    int64
	Reason string
}

func (b *Broken) Error() string { return fmt.Sprintf("audit entry %d: %s", b.Seq, b.Reason) }

// Walker re-walks the chain and the tree from a starting entry, one entry at a time, holding no
// more than the tree's frontier: a walk over millions of entries runs in constant memory.
type Walker struct {
	next int64
	prev tlog.Hash
	tree *Appender
}

// NewWalker starts a walk at entry from, which must name prev as its previous hash (Genesis for
// entry 0) and extend the tree whose frontier at size from is given (none for 0).
func NewWalker(from int64, prev tlog.Hash, frontier []tlog.Hash) (*Walker, error) {
	tree, err := NewAppender(from, frontier)
	if err != nil {
		return nil, err
	}
	return &Walker{next: from, prev: prev, tree: tree}, nil
}

// Next is the seq of the entry the walk expects next (also the tree size so far).
func (w *Walker) Next() int64 { return w.next }

// Root is the root of the tree walked so far.
func (w *Walker) Root() (tlog.Hash, error) { return w.tree.Root() }

// Check takes the next entry and the hashes the database stores for it (the leaf and the subtrees
// it completes, from index tlog.StoredHashIndex(0, seq)). It returns a *Broken when the entry is
// out of place (a gap: an entry deleted; a seq already seen: reordered), does not link to the one
// before, has a hash that does not cover its contents, or when the stored tree hashes are not
// the ones its contents give.
func (w *Walker) Check(e Entry, stored []StoredHash) error {
	switch {
	case e.Seq > w.next:
		return &Broken{Seq: w.next, Reason: fmt.Sprintf("missing: the next entry stored is %d", e.Seq)}
	case e.Seq < w.next:
		return &Broken{Seq: e.Seq, Reason: "out of order"}
	case e.PrevHash != w.prev:
		return &Broken{Seq: e.Seq, Reason: "does not link to the entry before it (prev_hash differs)"}
	case e.ComputeHash() != e.Hash:
		return &Broken{Seq: e.Seq, Reason: "its hash does not cover its contents (a field was changed)"}
	}
	want, err := w.tree.Append(e.LeafHash())
	if err != nil {
		return err
	}
	if len(stored) != len(want) {
		return &Broken{Seq: e.Seq, Reason: fmt.Sprintf("the tree stores %d hashes for it, want %d", len(stored), len(want))}
	}
	for i := range want {
		if stored[i] != want[i] {
			return &Broken{Seq: e.Seq, Reason: fmt.Sprintf("the tree's stored hash %d is not the one its contents give", want[i].Index)}
		}
	}
	w.prev = e.Hash
	w.next++
	return nil
}
