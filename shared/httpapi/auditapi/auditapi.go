// Package auditapi is the read side of the audit log, for admins (in the budget function):
// entries, inclusion and consistency proofs, verification, and the signed checkpoints. Hashes are
// base64 (as golang.org/x/mod/sumdb/tlog writes them) and each entry's payload is its exact
// stored text, so an auditor can recompute every hash from the answers alone.
package auditapi

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/helixhq/helix/shared/auditlog"
	"github.com/helixhq/helix/shared/auth"
	"github.com/helixhq/helix/shared/fault"
	"github.com/helixhq/helix/shared/httpapi"
)

// Log is what the API reads.
type Log interface {
	Head(ctx context.Context) (auditlog.Head, error)
	Root(ctx context.Context, size int64) (tlog.Hash, error)
	Pending(ctx context.Context) (int64, error)
	Entries(ctx context.Context, after int64, limit int) ([]auditlog.Entry, error)
	InclusionProof(ctx context.Context, seq, size int64) (tlog.RecordProof, tlog.Hash, tlog.Hash, error)
	ConsistencyProof(ctx context.Context, from, to int64) (tlog.TreeProof, tlog.Hash, tlog.Hash, error)
	Verify(ctx context.Context, from int64, v note.Verifiers) (auditlog.Report, error)
	Checkpoints(ctx context.Context, limit int) ([]auditlog.SignedCheckpoint, error)
}

// Register adds the audit endpoints to s; verifier (nil: none configured) checks the stored
// checkpoints' signatures during verification.
func Register(s *httpapi.Server, log Log, verifier note.Verifiers) {
	h := &handlers{log: log, verifier: verifier}
	s.HandleAdmin("GET /admin/audit/entries", h.entries)
	s.HandleAdmin("GET /admin/audit/entries/{seq}/proof", h.proof)
	s.HandleAdmin("GET /admin/audit/consistency", h.consistency)
	s.HandleAdmin("GET /admin/audit/verify", h.verify)
	s.HandleAdmin("GET /admin/audit/checkpoints", h.checkpoints)
}

type handlers struct {
	log      Log
	verifier note.Verifiers
}

// EntryView is an entry as the API shows it.
type EntryView struct {
	Seq      int64  `json:"seq"`
	PrevHash string `json:"prev_hash"`
	Hash     string `json:"hash"`
	Time     string `json:"time"` // RFC 3339 with microseconds, UTC: what the hash covers
	Kind     string `json:"kind"`
	Actor    string `json:"actor"`
	// Payload is the stored JSON text, byte for byte (a string, so no encoder reformats it).
	Payload string `json:"payload"`
}

func entryView(e auditlog.Entry) EntryView {
	return EntryView{Seq: e.Seq, PrevHash: e.PrevHash.String(), Hash: e.Hash.String(),
		Time: e.At.UTC().Format("2006-01-02T15:04:05.000000Z07:00"), Kind: string(e.Kind), Actor: e.Actor, Payload: e.Payload}
}

// EntryList is a page of entries.
type EntryList struct {
	Entries []EntryView `json:"entries"`
	// Size is the log's size (entries sequenced); Pending, the events waiting to be.
	Size    int64 `json:"size"`
	Pending int64 `json:"pending"`
	// NextAfter continues the listing (?after=), absent at the end.
	NextAfter *int64 `json:"next_after,omitempty"`
}

const (
	defaultEntries = 100
	maxEntries     = 1000
)

// intParam reads an integer query parameter in [min, max]; def when absent.
func intParam(r *http.Request, name string, def, min, max int64) (int64, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < min || n > max {
		return 0, fault.Errorf(fault.InvalidField, "%s must be an integer from %d to %d", name, min, max)
	}
	return n, nil
}

func (h *handlers) entries(w http.ResponseWriter, r *http.Request, _ auth.Principal) error {
	after, err := intParam(r, "after", -1, -1, 1<<62)
	if err != nil {
		return err
	}
	limit, err := intParam(r, "limit", defaultEntries, 1, maxEntries)
	if err != nil {
		return err
	}
	head, err := h.log.Head(r.Context())
	if err != nil {
		return err
	}
	pending, err := h.log.Pending(r.Context())
	if err != nil {
		return err
	}
	list, err := h.log.Entries(r.Context(), after, int(limit))
	if err != nil {
		return err
	}
	out := EntryList{Entries: []EntryView{}, Size: head.Size, Pending: pending}
	for _, e := range list {
		out.Entries = append(out.Entries, entryView(e))
	}
	if n := len(list); n == int(limit) && list[n-1].Seq+1 < head.Size {
		next := list[n-1].Seq
		out.NextAfter = &next
	}
	httpapi.WriteJSON(w, http.StatusOK, out)
	return nil
}

// Proof is an inclusion proof: entry seq is in the tree of size entries whose root is Root.
type Proof struct {
	Seq      int64    `json:"seq"`
	Size     int64    `json:"size"`
	LeafHash string   `json:"leaf_hash"`
	Root     string   `json:"root"`
	Proof    []string `json:"proof"`
}

func hashes[T ~[]tlog.Hash](p T) []string {
	out := make([]string, len(p))
	for i, h := range p {
		out[i] = h.String()
	}
	return out
}

// notFound turns the store's "no such entry or size" into the API's 404.
func notFound(err error, what string) error {
	if errors.Is(err, auditlog.ErrNotFound) {
		return fault.Wrap(fault.NotFound, err, what)
	}
	return err
}

func (h *handlers) proof(w http.ResponseWriter, r *http.Request, _ auth.Principal) error {
	raw, err := httpapi.PathID(r, "seq")
	if err != nil {
		return err
	}
	seq, err := strconv.ParseInt(raw, 10, 64)
	if err != nil || seq < 0 {
		return fault.New(fault.InvalidField, "seq must be an entry's number (0 or more)")
	}
	head, err := h.log.Head(r.Context())
	if err != nil {
		return err
	}
	size, err := intParam(r, "size", head.Size, 1, 1<<62)
	if err != nil {
		return err
	}
	proof, leaf, root, err := h.log.InclusionProof(r.Context(), seq, size)
	if err != nil {
		return notFound(err, "no such entry in a tree of that size")
	}
	httpapi.WriteJSON(w, http.StatusOK, Proof{Seq: seq, Size: size, LeafHash: leaf.String(), Root: root.String(), Proof: hashes(proof)})
	return nil
}

// Consistency proves the tree of From entries is a prefix of the tree of To entries.
type Consistency struct {
	From     int64    `json:"from"`
	To       int64    `json:"to"`
	FromRoot string   `json:"from_root"`
	ToRoot   string   `json:"to_root"`
	Proof    []string `json:"proof"`
}

func (h *handlers) consistency(w http.ResponseWriter, r *http.Request, _ auth.Principal) error {
	head, err := h.log.Head(r.Context())
	if err != nil {
		return err
	}
	from, err := intParam(r, "from", 0, 1, 1<<62)
	if err != nil {
		return err
	}
	if from == 0 {
		return fault.New(fault.MissingField, "from is required: the size of the earlier tree (a checkpoint's)")
	}
	to, err := intParam(r, "to", head.Size, 1, 1<<62)
	if err != nil {
		return err
	}
	if to < from {
		if r.URL.Query().Get("to") == "" {
			return fault.Errorf(fault.NotFound, "the log has %d entries, fewer than from", head.Size)
		}
		return fault.New(fault.InvalidField, "to must be at least from")
	}
	proof, fromRoot, toRoot, err := h.log.ConsistencyProof(r.Context(), from, to)
	if err != nil {
		return notFound(err, "the log has not reached that size")
	}
	httpapi.WriteJSON(w, http.StatusOK, Consistency{From: from, To: to, FromRoot: fromRoot.String(), ToRoot: toRoot.String(), Proof: hashes(proof)})
	return nil
}

// Verification is what a walk over the log found.
type Verification struct {
	OK          bool   `json:"ok"`
	From        int64  `json:"from"`
	Checked     int64  `json:"checked"`
	Size        int64  `json:"size"`
	Root        string `json:"root,omitempty"`
	Checkpoints int    `json:"checkpoints"`
	// SignaturesChecked: the stored checkpoints' signatures were checked with the verifier key
	// (HELIX_AUDIT_VERIFIER_KEY); without it only their roots were.
	SignaturesChecked bool        `json:"signatures_checked"`
	Broken            *BrokenView `json:"broken,omitempty"`
	TookMS            int64       `json:"took_ms"`
}

// BrokenView names the first broken entry.
type BrokenView struct {
	Seq    int64  `json:"seq"`
	Reason string `json:"reason"`
}

func (h *handlers) verify(w http.ResponseWriter, r *http.Request, _ auth.Principal) error {
	from, err := intParam(r, "from", 0, 0, 1<<62)
	if err != nil {
		return err
	}
	start := time.Now()
	rep, err := h.log.Verify(r.Context(), from, h.verifier)
	switch {
	case errors.Is(err, auditlog.ErrNotFound):
		return fault.Wrap(fault.InvalidField, err, "from must be 0 or the size of a stored checkpoint")
	case errors.Is(err, context.DeadlineExceeded):
		return fault.Wrap(fault.Timeout, err, "verification ran out of time: verify from a recent checkpoint (?from=<its size>)")
	case err != nil:
		return err
	}
	out := Verification{OK: rep.Broken == nil, From: rep.From, Checked: rep.Checked, Size: rep.Size,
		Checkpoints: rep.Checkpoints, SignaturesChecked: h.verifier != nil, TookMS: time.Since(start).Milliseconds()}
	if rep.Broken == nil {
		out.Root = rep.Root.String()
	} else {
		out.Broken = &BrokenView{Seq: rep.Broken.Seq, Reason: rep.Broken.Reason}
	}
	httpapi.WriteJSON(w, http.StatusOK, out)
	return nil
}

// CheckpointView is a stored signed checkpoint.
type CheckpointView struct {
	Size   int64     `json:"size"`
	Root   string    `json:"root"`
	Signed string    `json:"signed"`
	At     time.Time `json:"created_at"`
}

func (h *handlers) checkpoints(w http.ResponseWriter, r *http.Request, _ auth.Principal) error {
	limit, err := intParam(r, "limit", 60, 1, 10000)
	if err != nil {
		return err
	}
	list, err := h.log.Checkpoints(r.Context(), int(limit))
	if err != nil {
		return err
	}
	out := []CheckpointView{}
	for _, c := range list {
		out = append(out, CheckpointView{Size: c.Size, Root: c.Root.String(), Signed: c.Signed, At: c.At})
	}
	httpapi.WriteJSON(w, http.StatusOK, map[string]any{"checkpoints": out})
	return nil
}
