package outbox

import (
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/helixhq/helix/shared/auditlog"
	"github.com/helixhq/helix/shared/money"
	"github.com/helixhq/helix/shared/optimize"
)

// Embed colours.
const (
	colorInfo  = 0x3b82f6
	colorOK    = 0x22c55e
	colorWarn  = 0xf59e0b
	colorAlert = 0xef4444
	colorChain = 0x8b5cf6
)

// Render builds an item's Discord message, within Discord's limits. What an item holds was
// written for the log (never prompt text, replies, memory content or secrets), so everything in
// it may be shown.
func Render(it Item) Message {
	var m Message
	switch it.Kind {
	case KindDigest:
		m = renderDigest(it)
	case KindCheckpoint:
		m = renderCheckpoint(it)
	default:
		m = renderEntry(it)
	}
	if m.Timestamp.IsZero() {
		m.Timestamp = it.CreatedAt
	}
	return m.Fit()
}

func renderEntry(it Item) Message {
	var e EntryItem
	if err := json.Unmarshal(it.Payload, &e); err != nil {
		return Message{Title: "Unreadable outbox item " + strconv.FormatInt(it.ID, 10), Description: string(it.Payload), Color: colorWarn}
	}
	m := Message{Timestamp: e.At, Footer: fmt.Sprintf("audit entry %d", e.Seq)}
	switch e.Kind {
	case auditlog.Operation:
		var op auditlog.OperationFacts
		_ = json.Unmarshal(e.Payload, &op)
		switch {
		case op.ErrorCode == "budget_exceeded":
			m.Title, m.Color = "Budget refused "+op.OperationID, colorWarn
		case !op.Success:
			m.Title, m.Color = "Call failed: "+op.OperationID, colorAlert
		default:
			m.Title, m.Color = "Fallback used: "+op.OperationID, colorWarn
		}
		m.Fields = []Field{
			{Name: "user", Value: e.Actor, Inline: true},
			{Name: "model", Value: op.Model, Inline: true},
			{Name: "error", Value: op.ErrorCode, Inline: true},
			{Name: "cost", Value: "$" + money.Nano(op.CostNano).String(), Inline: true},
			{Name: "tokens", Value: fmt.Sprintf("%d in / %d out", op.InputTokens+op.CachedInputTokens, op.OutputTokens+op.ReasoningTokens), Inline: true},
			{Name: "latency", Value: fmt.Sprintf("%d ms", op.LatencyMS), Inline: true},
			{Name: "request", Value: op.RequestID},
		}
	case auditlog.AdminChange:
		var c auditlog.Change
		_ = json.Unmarshal(e.Payload, &c)
		m.Title, m.Color = fmt.Sprintf("%s %s changed by %s", c.What, c.ID, e.Actor), colorInfo
		m.Fields = []Field{{Name: "before", Value: compact(c.Before)}, {Name: "after", Value: compact(c.After)}}
	case auditlog.StepUp:
		var s auditlog.StepUpAttempt
		_ = json.Unmarshal(e.Payload, &s)
		m.Title = "Step-up " + s.Result
		m.Color = map[bool]int{true: colorOK, false: colorAlert}[s.Result == "verified"]
		m.Fields = []Field{{Name: "user", Value: s.UserID, Inline: true}, {Name: "session", Value: s.ConversationID, Inline: true}}
	case auditlog.Alert:
		var a auditlog.AlertEvent
		_ = json.Unmarshal(e.Payload, &a)
		m.Title = fmt.Sprintf("Alert %s: %s", a.State, a.Name)
		m.Color = map[bool]int{true: colorOK, false: colorAlert}[a.State == auditlog.Cleared]
		m.Description = a.Detail
	case auditlog.Synthesis:
		var s auditlog.SynthesisRun
		_ = json.Unmarshal(e.Payload, &s)
		m.Title, m.Color = "Synthesis "+s.Status, colorInfo
		if s.Reason != "" {
			m.Title += " (" + s.Reason + ")"
		}
		m.Fields = []Field{
			{Name: "user", Value: e.Actor, Inline: true},
			{Name: "messages", Value: strconv.Itoa(s.Messages), Inline: true},
			{Name: "changes", Value: fmt.Sprintf("+%d added, %d reinforced, %d updated, %d invalidated", s.Added, s.Reinforced, s.Updated, s.Invalidated)},
			{Name: "layers", Value: counts(s.Layers)},
		}
	case auditlog.Heartbeat:
		var h auditlog.HeartbeatFacts
		_ = json.Unmarshal(e.Payload, &h)
		m.Title, m.Color = "Heartbeat", colorOK
		var failed []string
		for name, outcome := range h.Steps {
			if outcome != "ok" {
				failed = append(failed, name+": "+outcome)
			}
		}
		for name, outcome := range h.PreviousRun {
			if outcome != "ok" {
				failed = append(failed, "previous minute's "+name+": "+outcome)
			}
		}
		sort.Strings(failed)
		if len(failed) > 0 {
			m.Color, m.Description = colorWarn, strings.Join(failed, "\n")
		}
		m.Fields = []Field{
			{Name: "operations", Value: strconv.FormatInt(h.Operations, 10), Inline: true},
			{Name: "errors", Value: strconv.FormatInt(h.Errors, 10), Inline: true},
			{Name: "p95 latency", Value: fmt.Sprintf("%d ms", h.P95LatencyMS), Inline: true},
			{Name: "log size", Value: strconv.FormatInt(h.TreeSize, 10), Inline: true},
			{Name: "unsequenced", Value: strconv.FormatInt(h.Pending, 10), Inline: true},
			{Name: "steps", Value: stepsSummary(len(h.Steps)+len(h.PreviousRun), len(failed)), Inline: true},
		}
	case auditlog.Deployment:
		var d auditlog.DeploymentFacts
		_ = json.Unmarshal(e.Payload, &d)
		m.Title, m.Color = "Deployed "+d.Function, colorInfo
		m.Description = "version " + d.Version
	case auditlog.Migration:
		var d auditlog.MigrationFacts
		_ = json.Unmarshal(e.Payload, &d)
		m.Title, m.Color = fmt.Sprintf("Migration %d applied", d.Version), colorInfo
		m.Description = d.Source
	case optimize.AuditKind:
		var o optimize.Summary
		_ = json.Unmarshal(e.Payload, &o)
		m.Title, m.Color = "Optimizer report "+o.Day, colorInfo
		if len(o.Anomalies) > 0 {
			m.Color = colorWarn
		}
		var top, slow, odd []string
		for _, c := range o.TopCostly {
			top = append(top, fmt.Sprintf("%s $%s (%d calls)", c.OperationID, c.Cost.String(), c.Calls))
		}
		for _, s := range o.Slow {
			slow = append(slow, fmt.Sprintf("%s %d ms", s.OperationID, s.AvgLatencyMS))
		}
		for _, a := range o.Anomalies {
			odd = append(odd, fmt.Sprintf("%s %s: $%s today, baseline $%s", a.Scope, a.Key, a.Today.String(), a.Baseline.String()))
		}
		m.Fields = []Field{
			{Name: "most costly (7 days)", Value: lines(top)},
			{Name: "slow", Value: lines(slow)},
			{Name: "spend anomalies", Value: lines(odd)},
			{Name: "recommendations", Value: fmt.Sprintf("%d new, %d refreshed, %d stale; $%s a month if approved",
				o.NewRecommendations, o.RefreshedRecommendations, o.StaleRecommendations, o.MonthlySaving.String())},
			{Name: "routines", Value: fmt.Sprintf("%d active, %d faded (%d today), %d reinforced today",
				o.Decay.Routines, o.Decay.Faded, o.Decay.NewlyFaded, o.Decay.Reinforced)},
		}
	default:
		m.Title, m.Color, m.Description = string(e.Kind), colorInfo, string(e.Payload)
	}
	return m
}

func renderDigest(it Item) Message {
	var d Digest
	_ = json.Unmarshal(it.Payload, &d)
	return Message{
		Title: fmt.Sprintf("%d calls, $%s", d.Calls, money.Nano(d.CostNano).String()),
		Color: colorInfo, Timestamp: d.To,
		Description: fmt.Sprintf("%s to %s (calls that failed or fell back are posted one by one)",
			d.From.UTC().Format("15:04:05"), d.To.UTC().Format("15:04:05 MST")),
		Fields: []Field{{Name: "by model", Value: counts64(d.ByModel)}, {Name: "by operation", Value: counts64(d.Operations)}},
	}
}

func renderCheckpoint(it Item) Message {
	var c CheckpointItem
	_ = json.Unmarshal(it.Payload, &c)
	return Message{
		Title: fmt.Sprintf("Checkpoint: %d entries", c.Size), Color: colorChain,
		Description: "```\n" + c.Signed + "```",
		Footer:      "verify with the audit public key: go run ./infra/auditcheck",
	}
}

func compact(v any) string {
	if v == nil {
		return "-"
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}

func counts(m map[string]int) string {
	c := make(map[string]int64, len(m))
	for k, v := range m {
		c[k] = int64(v)
	}
	return counts64(c)
}

func counts64(m map[string]int64) string {
	if len(m) == 0 {
		return "-"
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s %d", k, m[k])
	}
	return b.String()
}

// stepsSummary says how a heartbeat's steps went (this minute's before it and the previous
// minute's after it), the failed ones being in the description.
func stepsSummary(total, failed int) string {
	if failed == 0 {
		return fmt.Sprintf("all %d ok", total)
	}
	return fmt.Sprintf("%d of %d failed", failed, total)
}

// lines joins a list one item a line, "-" when empty.
func lines(items []string) string {
	if len(items) == 0 {
		return "-"
	}
	return strings.Join(items, "\n")
}
