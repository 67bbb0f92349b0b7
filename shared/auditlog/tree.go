package auditlog

import (
	"fmt"
	"math/bits"

	"golang.org/x/mod/sumdb/tlog"
)

// FrontierIndexes are the storage indexes (tlog.StoredHashIndex) of the roots of the perfect
// subtrees a tree of n records is made of, left to right: one per bit set in n. They are all
// tlog needs to append records to the tree and to compute its root, so sequencing a batch reads
// at most 63 stored hashes, however large the tree.
func FrontierIndexes(n int64) []int64 {
	var out []int64
	start := int64(0)
	for level := 62; level >= 0; level-- {
		if n&(1<<level) == 0 {
			continue
		}
		out = append(out, tlog.StoredHashIndex(level, start>>level))
		start += 1 << level
	}
	return out
}

// StoredHash is a hash of the tree at its storage index.
type StoredHash struct {
	Index int64
	Hash  tlog.Hash
}

// Appender adds records to a tree it knows only by its frontier, producing the hashes tlog
// stores for each (tlog.StoredHashesForRecordHash, reading the frontier and what this appender
// computed). It keeps no more than the frontier between records.
type Appender struct {
	n      int64
	hashes map[int64]tlog.Hash
}

// NewAppender starts from a tree of n records whose frontier hashes are given in
// FrontierIndexes(n) order.
func NewAppender(n int64, frontier []tlog.Hash) (*Appender, error) {
	idx := FrontierIndexes(n)
	if len(frontier) != len(idx) {
		return nil, fmt.Errorf("audit tree: a tree of %d records has %d frontier hashes, got %d", n, len(idx), len(frontier))
	}
	a := &Appender{n: n, hashes: make(map[int64]tlog.Hash, len(idx)+2)}
	for i, x := range idx {
		a.hashes[x] = frontier[i]
	}
	return a, nil
}

// ReadHashes implements tlog.HashReader over what the appender holds.
func (a *Appender) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	for i, x := range indexes {
		h, ok := a.hashes[x]
		if !ok {
			level, n := tlog.SplitStoredHashIndex(x)
			return nil, fmt.Errorf("audit tree: hash %d (level %d, node %d) is not on the frontier of a tree of %d", x, level, n, a.n)
		}
		out[i] = h
	}
	return out, nil
}

// Size is the number of records in the tree.
func (a *Appender) Size() int64 { return a.n }

// Append adds the record whose leaf hash is leaf and returns the hashes to store, at consecutive
// indexes from tlog.StoredHashIndex(0, n) (the leaf, then the subtrees it completes).
func (a *Appender) Append(leaf tlog.Hash) ([]StoredHash, error) {
	hashes, err := tlog.StoredHashesForRecordHash(a.n, leaf, a)
	if err != nil {
		return nil, err
	}
	first := tlog.StoredHashIndex(0, a.n)
	out := make([]StoredHash, len(hashes))
	for i, h := range hashes {
		out[i] = StoredHash{Index: first + int64(i), Hash: h}
		a.hashes[first+int64(i)] = h
	}
	a.n++
	a.prune()
	return out, nil
}

// prune keeps the frontier only: nothing else is ever read again. A tree of n records has
// popcount(n) frontier roots, so the map stays under 64 entries.
func (a *Appender) prune() {
	if len(a.hashes) <= 2*bits.OnesCount64(uint64(a.n))+2 {
		return
	}
	keep := map[int64]bool{}
	for _, x := range FrontierIndexes(a.n) {
		keep[x] = true
	}
	for x := range a.hashes {
		if !keep[x] {
			delete(a.hashes, x)
		}
	}
}

// Root is the tree's root hash (RFC 6962), from its frontier.
func (a *Appender) Root() (tlog.Hash, error) {
	return tlog.TreeHash(a.n, a)
}

// Frontier is the appender's frontier, in FrontierIndexes(Size()) order.
func (a *Appender) Frontier() []tlog.Hash {
	idx := FrontierIndexes(a.n)
	out := make([]tlog.Hash, len(idx))
	for i, x := range idx {
		out[i] = a.hashes[x]
	}
	return out
}
