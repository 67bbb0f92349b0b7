package auditlog_test

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/helixhq/helix/shared/auditlog"
)

var t0 = time.Date(2026, 12, 1, 12, 0, 0, 123456000, time.UTC)

func pending(n int) []auditlog.Pending {
	out := make([]auditlog.Pending, n)
	for i := range out {
		out[i] = auditlog.Pending{ID: int64(i + 1), At: t0.Add(time.Duration(i) * time.Millisecond),
			Kind: auditlog.Operation, Actor: fmt.Sprintf("user-%d", i%7), Payload: fmt.Sprintf(`{"n":%d}`, i)}
	}
	return out
}

func TestEncodeIsUnambiguous(t *testing.T) {
	base := auditlog.Entry{Seq: 7, PrevHash: auditlog.Genesis(), At: t0, Kind: "operation", Actor: "ab", Payload: `{"x":1}`}
	variants := []auditlog.Entry{base}
	add := func(f func(*auditlog.Entry)) {
		e := base
		f(&e)
		variants = append(variants, e)
	}
	add(func(e *auditlog.Entry) { e.Seq = 8 })
	add(func(e *auditlog.Entry) { e.PrevHash[0] ^= 1 })
	add(func(e *auditlog.Entry) { e.At = e.At.Add(time.Microsecond) })
	add(func(e *auditlog.Entry) { e.Kind = "operatio"; e.Actor = "nab" })  // a byte moved across fields
	add(func(e *auditlog.Entry) { e.Actor = "a"; e.Payload = `b{"x":1}` }) // idem
	add(func(e *auditlog.Entry) { e.Payload = `{"x":2}` })
	add(func(e *auditlog.Entry) { e.Kind = "admin_change" })
	seen := map[string]int{}
	for i, e := range variants {
		enc := string(e.Encode())
		if j, ok := seen[enc]; ok {
			t.Errorf("variants %d and %d encode alike", j, i)
		}
		seen[enc] = i
	}
	if !bytes.HasPrefix(base.Encode(), []byte("helix-audit-entry-v1\n")) {
		t.Error("the encoding does not start with its version tag")
	}
	// The time counts in microseconds: nanoseconds below that are not part of the entry.
	e := base
	e.At = e.At.Add(999 * time.Nanosecond)
	if !bytes.Equal(e.Encode(), base.Encode()) {
		t.Error("sub-microsecond time changed the encoding")
	}
}

func TestLink(t *testing.T) {
	entries := auditlog.Link(auditlog.Head{Size: 0, LastHash: auditlog.Genesis()}, pending(5))
	prev := auditlog.Genesis()
	for i, e := range entries {
		if e.Seq != int64(i) || e.PrevHash != prev || e.Hash != e.ComputeHash() {
			t.Fatalf("entry %d = %+v: want seq %d linked to %s", i, e, i, prev)
		}
		prev = e.Hash
	}
	// A batch continues the chain from its head.
	more := auditlog.Link(auditlog.Head{Size: 5, LastHash: entries[4].Hash}, pending(2))
	if more[0].Seq != 5 || more[0].PrevHash != entries[4].Hash {
		t.Errorf("next batch starts %+v", more[0])
	}
	if auditlog.Genesis() == (tlog.Hash{}) {
		t.Error("genesis is the zero hash")
	}
}

// fullTree stores every hash, as tlog does, to compare the appender against.
type fullTree map[int64]tlog.Hash

func (f fullTree) ReadHashes(idx []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(idx))
	for i, x := range idx {
		h, ok := f[x]
		if !ok {
			return nil, fmt.Errorf("no hash %d", x)
		}
		out[i] = h
	}
	return out, nil
}

func TestAppenderStoresWhatTlogStores(t *testing.T) {
	full := fullTree{}
	entries := auditlog.Link(auditlog.Head{LastHash: auditlog.Genesis()}, pending(300))
	a, err := auditlog.NewAppender(0, nil)
	if err != nil {
		t.Fatal(err)
	}
	for n, e := range entries {
		want, err := tlog.StoredHashes(int64(n), e.Encode(), full)
		if err != nil {
			t.Fatal(err)
		}
		got, err := a.Append(e.LeafHash())
		if err != nil {
			t.Fatalf("append %d: %v", n, err)
		}
		if len(got) != len(want) {
			t.Fatalf("record %d: %d stored hashes, tlog stores %d", n, len(got), len(want))
		}
		for i := range want {
			if got[i].Index != tlog.StoredHashIndex(0, int64(n))+int64(i) || got[i].Hash != want[i] {
				t.Fatalf("record %d hash %d = %+v, want index %d %s", n, i, got[i], tlog.StoredHashIndex(0, int64(n))+int64(i), want[i])
			}
			full[got[i].Index] = got[i].Hash
		}
		root, err := a.Root()
		if err != nil {
			t.Fatal(err)
		}
		wantRoot, err := tlog.TreeHash(int64(n+1), full)
		if err != nil {
			t.Fatal(err)
		}
		if root != wantRoot {
			t.Fatalf("root after %d records differs from tlog's", n+1)
		}
	}
	// An appender started from a frontier read back continues identically.
	frontier, err := full.ReadHashes(auditlog.FrontierIndexes(300))
	if err != nil {
		t.Fatalf("frontier of 300 is not in the stored hashes: %v", err)
	}
	b, err := auditlog.NewAppender(300, frontier)
	if err != nil {
		t.Fatal(err)
	}
	next := auditlog.Link(auditlog.Head{Size: 300, LastHash: entries[299].Hash}, pending(1))[0]
	got, err := b.Append(next.LeafHash())
	if err != nil {
		t.Fatal(err)
	}
	want, _ := tlog.StoredHashes(300, next.Encode(), full)
	if len(got) != len(want) || got[0].Hash != want[0] {
		t.Errorf("a resumed appender stores %v, tlog %v", got, want)
	}
	if _, err := auditlog.NewAppender(300, frontier[:1]); err == nil {
		t.Error("an appender took a frontier of the wrong length")
	}
}

func TestFrontierIndexes(t *testing.T) {
	tests := []struct {
		n    int64
		want int
	}{{0, 0}, {1, 1}, {2, 1}, {3, 2}, {4, 1}, {7, 3}, {1 << 20, 1}, {1<<20 + 5, 3}}
	for _, tt := range tests {
		if got := auditlog.FrontierIndexes(tt.n); len(got) != tt.want {
			t.Errorf("FrontierIndexes(%d) = %v, want %d roots", tt.n, got, tt.want)
		}
	}
}

func TestCheckpoint(t *testing.T) {
	skey, vkey, err := note.GenerateKey(rand.Reader, "helix-audit")
	if err != nil {
		t.Fatal(err)
	}
	signer, err := auditlog.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	verifier, err := auditlog.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	c := auditlog.Checkpoint{Size: 42, Root: auditlog.Genesis(), At: t0.Truncate(time.Second)}
	signed, err := c.Sign(signer)
	if err != nil {
		t.Fatal(err)
	}
	got, err := auditlog.OpenCheckpoint(signed, verifier)
	if err != nil || got.Size != 42 || got.Root != c.Root || !got.At.Equal(c.At) {
		t.Fatalf("OpenCheckpoint = %+v, %v; want %+v", got, err, c)
	}
	// A changed size, or another key's signature, does not open.
	if _, err := auditlog.OpenCheckpoint(strings.Replace(signed, "\n42\n", "\n43\n", 1), verifier); err == nil {
		t.Error("a checkpoint with its size changed still verified")
	}
	_, otherV, _ := note.GenerateKey(rand.Reader, "helix-audit")
	other, _ := auditlog.NewVerifier(otherV)
	if _, err := auditlog.OpenCheckpoint(signed, other); err == nil {
		t.Error("a checkpoint verified with another key")
	}
	if _, err := auditlog.NewSigner("PRIVATE+KEY+nonsense"); err == nil || strings.Contains(err.Error(), "nonsense") {
		t.Errorf("bad signing key error %v (must refuse, without repeating the key)", err)
	}
	for _, text := range []string{"", "helix audit log\n1\n", "other log\n1\n" + c.Root.String() + "\n2026-12-01T12:00:00Z\n",
		"helix audit log\n-1\n" + c.Root.String() + "\n2026-12-01T12:00:00Z\n"} {
		if _, err := auditlog.ParseCheckpoint(text); err == nil {
			t.Errorf("ParseCheckpoint(%q) accepted", text)
		}
	}
}

// chain builds n entries and the hashes their tree stores.
func chain(t *testing.T, n int) ([]auditlog.Entry, [][]auditlog.StoredHash) {
	t.Helper()
	entries := auditlog.Link(auditlog.Head{LastHash: auditlog.Genesis()}, pending(n))
	a, _ := auditlog.NewAppender(0, nil)
	stored := make([][]auditlog.StoredHash, n)
	for i, e := range entries {
		s, err := a.Append(e.LeafHash())
		if err != nil {
			t.Fatal(err)
		}
		stored[i] = s
	}
	return entries, stored
}

// walk checks entries in the order given and returns the first break.
func walk(t *testing.T, entries []auditlog.Entry, stored map[int64][]auditlog.StoredHash) *auditlog.Broken {
	t.Helper()
	w, err := auditlog.NewWalker(0, auditlog.Genesis(), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if err := w.Check(e, stored[e.Seq]); err != nil {
			b, ok := err.(*auditlog.Broken)
			if !ok {
				t.Fatalf("Check: %v", err)
			}
			return b
		}
	}
	return nil
}

func TestWalkerFindsTheFirstBrokenEntry(t *testing.T) {
	const n = 40
	type tamper func(entries []auditlog.Entry, stored map[int64][]auditlog.StoredHash) []auditlog.Entry
	tests := []struct {
		name   string
		tamper tamper
		want   int64 // -1: intact
	}{
		{name: "intact", tamper: func(e []auditlog.Entry, _ map[int64][]auditlog.StoredHash) []auditlog.Entry { return e }, want: -1},
		{name: "payload changed", want: 17, tamper: func(e []auditlog.Entry, _ map[int64][]auditlog.StoredHash) []auditlog.Entry {
			e[17].Payload = `{"n":999}`
			return e
		}},
		{name: "actor changed", want: 3, tamper: func(e []auditlog.Entry, _ map[int64][]auditlog.StoredHash) []auditlog.Entry {
			e[3].Actor = "mallory"
			return e
		}},
		{name: "kind changed", want: 0, tamper: func(e []auditlog.Entry, _ map[int64][]auditlog.StoredHash) []auditlog.Entry {
			e[0].Kind = auditlog.AdminChange
			return e
		}},
		{name: "time changed", want: 39, tamper: func(e []auditlog.Entry, _ map[int64][]auditlog.StoredHash) []auditlog.Entry {
			e[39].At = e[39].At.Add(time.Second)
			return e
		}},
		{name: "hash recomputed after a change: its tree leaf gives it away", want: 20, tamper: func(e []auditlog.Entry, _ map[int64][]auditlog.StoredHash) []auditlog.Entry {
			e[20].Payload = `{"n":-1}`
			e[20].Hash = e[20].ComputeHash()
			return e
		}},
		{name: "entry deleted", want: 12, tamper: func(e []auditlog.Entry, _ map[int64][]auditlog.StoredHash) []auditlog.Entry {
			return append(e[:12:12], e[13:]...)
		}},
		{name: "two entries reordered", want: 8, tamper: func(e []auditlog.Entry, _ map[int64][]auditlog.StoredHash) []auditlog.Entry {
			e[8].Seq, e[9].Seq = e[9].Seq, e[8].Seq
			e[8], e[9] = e[9], e[8]
			return e
		}},
		{name: "a stored tree hash changed", want: 30, tamper: func(e []auditlog.Entry, s map[int64][]auditlog.StoredHash) []auditlog.Entry {
			s[30][0].Hash[5] ^= 0xff
			return e
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			entries, storedList := chain(t, n)
			stored := map[int64][]auditlog.StoredHash{}
			for i, s := range storedList {
				stored[int64(i)] = append([]auditlog.StoredHash(nil), s...)
			}
			b := walk(t, tt.tamper(entries, stored), stored)
			switch {
			case tt.want < 0 && b != nil:
				t.Errorf("an intact chain broke: %v", b)
			case tt.want >= 0 && b == nil:
				t.Errorf("the tampering went unnoticed")
			case tt.want >= 0 && b.Seq != tt.want:
				t.Errorf("first broken entry %d (%s), want %d", b.Seq, b.Reason, tt.want)
			}
		})
	}
}

// A walk can start at a checkpointed size from the frontier stored there, and reaches the same
// root as a walk from the start.
func TestWalkFromTheMiddle(t *testing.T) {
	entries, stored := chain(t, 100)
	full := fullTree{}
	for _, s := range stored {
		for _, h := range s {
			full[h.Index] = h.Hash
		}
	}
	frontier, err := full.ReadHashes(auditlog.FrontierIndexes(60))
	if err != nil {
		t.Fatal(err)
	}
	w, err := auditlog.NewWalker(60, entries[59].Hash, frontier)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries[60:] {
		if err := w.Check(e, stored[e.Seq]); err != nil {
			t.Fatal(err)
		}
	}
	root, _ := w.Root()
	want, _ := tlog.TreeHash(100, full)
	if root != want || w.Next() != 100 {
		t.Errorf("walk from 60 ends at %d with root %s, want 100 and %s", w.Next(), root, want)
	}
}
