// Package outbox delivers Helix's Discord messages without losing any: a message is committed in
// Postgres first (with the change that caused it, or when its audit entry is sequenced), then
// delivered to its channel's webhook in order, batched to Discord's limits, honouring its rate
// limits and retrying through outages. A message that keeps failing is marked dead and kept;
// none is ever dropped.
package outbox

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"strings"
	"time"
)

// Channel is one of the seven Discord channels.
type Channel string

// The channels and what each gets.
const (
	Commands      Channel = "commands"      // admin actions
	API           Channel = "api"           // LLM calls: failures, fallbacks and budget refusals each; a digest of the rest
	Heartbeat     Channel = "heartbeat"     // the audit function's minute
	FileChanges   Channel = "file_changes"  // deployments, migrations, price changes
	Consciousness Channel = "consciousness" // synthesis runs and the layers they changed (never content)
	Alerts        Channel = "alerts"        // alerts fired and cleared, step-up attempts
	HashChain     Channel = "hash_chain"    // signed checkpoints
)

// Channels lists every channel.
func Channels() []Channel {
	return []Channel{Commands, API, Heartbeat, FileChanges, Consciousness, Alerts, HashChain}
}

// EnvVar is the variable holding the channel's webhook URL (a secret reference in AWS).
func (c Channel) EnvVar() string { return "DISCORD_WEBHOOK_" + strings.ToUpper(string(c)) }

// Discord's name of the channel, as the seeds call it.
func (c Channel) Name() string { return "#helix-" + strings.ReplaceAll(string(c), "_", "-") }

// Valid reports whether c is one of the channels.
func (c Channel) Valid() bool {
	for _, k := range Channels() {
		if c == k {
			return true
		}
	}
	return false
}

// Item is a message waiting in the outbox.
type Item struct {
	ID        int64
	Channel   Channel
	Kind      string
	Payload   json.RawMessage
	Attempts  int
	CreatedAt time.Time
}

// Webhooks are the channels' webhook URLs; a channel without one keeps its messages undelivered.
type Webhooks map[Channel]string

// Fingerprint identifies a webhook without revealing it (a gone webhook is remembered by it, so
// a new URL for the channel is used again).
func Fingerprint(url string) string {
	sum := sha256.Sum256([]byte(url))
	return hex.EncodeToString(sum[:8])
}

// Missing lists the channels without a webhook, to say so at start-up.
func (w Webhooks) Missing() []Channel {
	var out []Channel
	for _, c := range Channels() {
		if w[c] == "" {
			out = append(out, c)
		}
	}
	return out
}
