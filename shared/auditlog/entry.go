// Package auditlog is Helix's tamper-evident log of everything that matters to money and
// security: executed operations, admin changes, step-up attempts, alerts, synthesis runs,
// heartbeats, deployments and migrations. Events are committed with the change that caused them
// (one insert, never on a lock), then sequenced in batches by a single integrator into entries
// that form both a hash chain (each entry names the previous one's hash, the first one a fixed
// genesis value) and the leaves of an RFC 6962 Merkle tree (golang.org/x/mod/sumdb/tlog), whose
// signed checkpoints are witnessed outside the database. Anyone can check the chain with the rows
// alone, any entry's inclusion with a proof, and that the log only grew with consistency proofs
// between checkpoints.
package auditlog

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"time"

	"golang.org/x/mod/sumdb/tlog"
)

// Kind says what an event records.
type Kind string

// The kinds of events.
const (
	Operation   Kind = "operation"    // an executed operation (a summary; never prompt or reply text)
	AdminChange Kind = "admin_change" // routes, models, prices, budgets, toggles, approvals: who, before, after
	StepUp      Kind = "stepup"       // a creator step-up attempt and its outcome
	Alert       Kind = "alert"        // an alert fired or cleared
	Synthesis   Kind = "synthesis"    // a memory synthesis run: counts and layers, never content
	Heartbeat   Kind = "heartbeat"    // the audit function's minute: activity and its own outcome
	Deployment  Kind = "deployment"   // a function's version seen for the first time at cold start
	Migration   Kind = "migration"    // a database migration applied
)

// Event is something to record, before it has a place in the chain.
type Event struct {
	Kind  Kind
	Actor string // who caused it: a user id, an admin, a function ("" when nobody in particular)
	// Payload is the event's facts, encoded as JSON once, when recorded; that text is what the
	// entry's hash covers.
	Payload any
}

// PayloadJSON encodes the event's payload as it is stored and hashed.
func (e Event) PayloadJSON() (string, error) {
	b, err := json.Marshal(e.Payload)
	if err != nil {
		return "", fmt.Errorf("audit %s payload: %w", e.Kind, err)
	}
	return string(b), nil
}

// Pending is a recorded event waiting to be sequenced.
type Pending struct {
	ID      int64
	At      time.Time
	Kind    Kind
	Actor   string
	Payload string
}

// Entry is an event with its place in the chain.
type Entry struct {
	Seq      int64 // from 0
	PrevHash tlog.Hash
	Hash     tlog.Hash
	At       time.Time // when the event was recorded (microseconds, as Postgres keeps them)
	Kind     Kind
	Actor    string
	Payload  string
}

// Genesis is the hash the first entry (seq 0) names as its previous one: SHA-256 of the text
// "helix audit log genesis v1".
func Genesis() tlog.Hash {
	return sha256.Sum256([]byte("helix audit log genesis v1"))
}

// encodingTag starts every entry's canonical encoding, naming its version.
const encodingTag = "helix-audit-entry-v1\n"

// Encode is the entry's canonical encoding, which its hash covers and which is its leaf in the
// Merkle tree:
//
//	"helix-audit-entry-v1\n"
//	seq                       8 bytes, big-endian
//	previous entry's hash     32 bytes
//	time                      8 bytes, big-endian: microseconds since 1970-01-01T00:00:00Z
//	kind, actor, payload      each a 4-byte big-endian length, then its UTF-8 bytes
//
// Every field has a fixed size or a length prefix, so no two different entries encode alike.
func (e Entry) Encode() []byte {
	b := make([]byte, 0, len(encodingTag)+8+32+8+12+len(e.Kind)+len(e.Actor)+len(e.Payload))
	b = append(b, encodingTag...)
	b = binary.BigEndian.AppendUint64(b, uint64(e.Seq))
	b = append(b, e.PrevHash[:]...)
	b = binary.BigEndian.AppendUint64(b, uint64(e.At.UnixMicro()))
	for _, s := range []string{string(e.Kind), e.Actor, e.Payload} {
		b = binary.BigEndian.AppendUint32(b, uint32(len(s)))
		b = append(b, s...)
	}
	return b
}

// ComputeHash is SHA-256 of the canonical encoding: what Hash must be.
func (e Entry) ComputeHash() tlog.Hash {
	return sha256.Sum256(e.Encode())
}

// LeafHash is the entry's record hash in the Merkle tree (RFC 6962: SHA-256 of 0x00 and the
// canonical encoding).
func (e Entry) LeafHash() tlog.Hash {
	return tlog.RecordHash(e.Encode())
}

// Head is where the chain ends: how many entries it has and the last one's hash (Genesis when
// it has none).
type Head struct {
	Size     int64
	LastHash tlog.Hash
}

// Link turns pending events into the next entries of the chain after head, in the order given.
// Times are kept to the microsecond, as stored.
func Link(head Head, pending []Pending) []Entry {
	out := make([]Entry, len(pending))
	prev := head.LastHash
	for i, p := range pending {
		e := Entry{Seq: head.Size + int64(i), PrevHash: prev, At: p.At.UTC().Truncate(time.Microsecond),
			Kind: p.Kind, Actor: p.Actor, Payload: p.Payload}
		e.Hash = e.ComputeHash()
		out[i] = e
		prev = e.Hash
	}
	return out
}
