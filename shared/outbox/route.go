package outbox

import (
	"encoding/json"
	"time"

	"github.com/helixhq/helix/shared/auditlog"
	"github.com/helixhq/helix/shared/optimize"
)

// Kinds of outbox items that are not audit entries.
const (
	KindDigest     = "api_digest" // the minute's calls that were not posted one by one
	KindCheckpoint = "checkpoint" // a signed checkpoint
)

// EntryItem is the payload of an item made from an audit entry.
type EntryItem struct {
	Seq     int64           `json:"seq"`
	At      time.Time       `json:"at"`
	Kind    auditlog.Kind   `json:"kind"`
	Actor   string          `json:"actor"`
	Payload json.RawMessage `json:"payload"`
}

// Digest is the payload of the api channel's minute digest.
type Digest struct {
	From       time.Time        `json:"from"`
	To         time.Time        `json:"to"`
	Calls      int64            `json:"calls"`
	CostNano   int64            `json:"cost_nano"`
	ByModel    map[string]int64 `json:"by_model"`
	Operations map[string]int64 `json:"by_operation"`
}

// CheckpointItem is the payload of a checkpoint item.
type CheckpointItem struct {
	Size   int64  `json:"size"`
	Root   string `json:"root"`
	Signed string `json:"signed"`
}

// Route says which channels an audit entry goes to: admin changes to commands (price changes to
// file-changes too); operations that failed, fell back or were refused for budget to api, one by
// one (the rest go in the minute's digest); heartbeats; deployments and migrations to
// file-changes; synthesis runs that learned to consciousness; alerts, step-up attempts and the
// optimizer's daily report to alerts.
func Route(e auditlog.Entry) []Channel {
	switch e.Kind {
	case auditlog.AdminChange:
		var c auditlog.Change
		if json.Unmarshal([]byte(e.Payload), &c) == nil && c.Reprice {
			return []Channel{Commands, FileChanges}
		}
		return []Channel{Commands}
	case auditlog.Operation:
		var op auditlog.OperationFacts
		if err := json.Unmarshal([]byte(e.Payload), &op); err != nil {
			return []Channel{API} // unreadable: post it rather than hide it
		}
		if !op.Success || op.FallbackUsed {
			return []Channel{API}
		}
		return nil
	case auditlog.Heartbeat:
		return []Channel{Heartbeat}
	case auditlog.Deployment, auditlog.Migration:
		return []Channel{FileChanges}
	case auditlog.Synthesis:
		// Runs that learned; skipped ones (over budget, disabled, nothing new) stay in the log.
		var run auditlog.SynthesisRun
		if json.Unmarshal([]byte(e.Payload), &run) == nil && run.Status != "done" {
			return nil
		}
		return []Channel{Consciousness}
	case auditlog.Alert, auditlog.StepUp, optimize.AuditKind:
		return []Channel{Alerts}
	}
	return nil
}

// ItemOf is the outbox payload of an audit entry.
func ItemOf(e auditlog.Entry) (json.RawMessage, error) {
	payload := json.RawMessage(e.Payload)
	if !json.Valid(payload) {
		b, _ := json.Marshal(e.Payload)
		payload = b
	}
	return json.Marshal(EntryItem{Seq: e.Seq, At: e.At, Kind: e.Kind, Actor: e.Actor, Payload: payload})
}
