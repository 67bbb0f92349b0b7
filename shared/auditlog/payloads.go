package auditlog

// The payloads of each kind, as recorded. Field names are part of the log's format: an auditor
// reads them, and a renamed field would make old and new entries read differently.

// OperationFacts is an operation entry's payload (written by the ai_operation_log trigger).
type OperationFacts struct {
	RequestID          string `json:"request_id"`
	OperationID        string `json:"operation_id"`
	Model              string `json:"model"`
	Provider           string `json:"provider"`
	InputTokens        int64  `json:"input_tokens"`
	OutputTokens       int64  `json:"output_tokens"`
	CachedInputTokens  int64  `json:"cached_input_tokens"`
	ReasoningTokens    int64  `json:"reasoning_tokens"`
	CacheWriteTokens   int64  `json:"cache_write_tokens"`
	CacheWrite1hTokens int64  `json:"cache_write_1h_tokens"`
	CostNano           int64  `json:"cost_nano"`
	LatencyMS          int64  `json:"latency_ms"`
	Success            bool   `json:"success"`
	ErrorCode          string `json:"error_code"`
	FallbackUsed       bool   `json:"fallback_used"`
}

// What an admin change changed.
const (
	ChangedRoute    = "route"
	ChangedModel    = "model"
	ChangedBudget   = "budget"
	ChangedToggle   = "toggle"
	ChangedApproval = "approval"
)

// Change is an admin change's payload: what was changed, and its values before and after.
type Change struct {
	What   string `json:"what"`
	ID     string `json:"id"`
	Before any    `json:"before"`
	After  any    `json:"after"`
	// Reprice: the change set new prices (file-changes gets it too).
	Reprice bool `json:"reprice,omitempty"`
}

// StepUpAttempt is a step-up entry's payload (never the key).
type StepUpAttempt struct {
	UserID         string `json:"user_id"`
	ConversationID string `json:"conversation_id"`
	Result         string `json:"result"` // verified, failed, locked
}

// Alert states.
const (
	Fired   = "fired"
	Cleared = "cleared"
)

// AlertEvent is an alert entry's payload.
type AlertEvent struct {
	Name   string `json:"name"`
	State  string `json:"state"` // fired or cleared
	Detail string `json:"detail"`
}

// SynthesisRun is a synthesis entry's payload: what changed, never what was learned.
type SynthesisRun struct {
	ConversationID string `json:"conversation_id"`
	ThroughSeq     int64  `json:"through_seq"`
	Status         string `json:"status"` // done, skipped
	Reason         string `json:"reason,omitempty"`
	Messages       int    `json:"messages"`
	Added          int    `json:"added"`
	Reinforced     int    `json:"reinforced"`
	Updated        int    `json:"updated"`
	Invalidated    int    `json:"invalidated"`
	// Layers counts the insights changed per layer name.
	Layers   map[string]int `json:"layers,omitempty"`
	CostNano int64          `json:"cost_nano"`
}

// HeartbeatFacts is a heartbeat entry's payload: the last minute, and the audit run itself.
type HeartbeatFacts struct {
	Operations   int64             `json:"operations"`
	Errors       int64             `json:"errors"`
	P95LatencyMS int64             `json:"p95_latency_ms"`
	TreeSize     int64             `json:"tree_size"`
	Pending      int64             `json:"pending"`
	Steps        map[string]string `json:"steps"` // step name: "ok" or what went wrong
	// PreviousRun is how the previous minute's steps after its heartbeat went (they ran after
	// it was written); absent when there was no previous minute.
	PreviousRun map[string]string `json:"previous_run,omitempty"`
}

// DeploymentFacts is a deployment entry's payload.
type DeploymentFacts struct {
	Function string `json:"function"`
	Version  string `json:"version"`
}

// MigrationFacts is a migration entry's payload.
type MigrationFacts struct {
	Version int64  `json:"version"`
	Source  string `json:"source"`
}
