// Package alerts is Helix's alerting: rules (standing ones, with configurable thresholds, and
// operators' own), what each rule reads from the system every minute, and the state machine that
// makes an alert fire once when its condition starts and once when it clears, never every minute
// in between, with flapping damped.
package alerts

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"time"
	"unicode/utf8"
)

// The standing rules' types (seeded by migration 00012; thresholds configurable, never deleted).
const (
	HighDailySpend   = "high_daily_spend"  // all users' spend today above the threshold (USD)
	BudgetExceeded   = "budget_exceeded"   // a user reached their daily limit (one alert per user)
	HighErrorRate    = "high_error_rate"   // failed share of the window's operations above the threshold
	SlowOperations   = "slow_operations"   // the window's average latency above the threshold (ms)
	ModelUnavailable = "model_unavailable" // a provider's breaker open (its calls or health probe failing)
	CostAnomaly      = "cost_anomaly"      // today's spend so far above threshold × the trailing baseline
	DiscordBacklog   = "discord_backlog"   // a channel's oldest undelivered message older than threshold s
	StepUpAttack     = "stepup_attack"     // threshold or more failed creator step-ups in the window
)

// The types operators may create rules of (POST /admin/alerts); daily_spend is the seeds' example.
const (
	DailySpend = "daily_spend" // all users' spend today above threshold_usd
	UserSpend  = "user_spend"  // any one user's spend today above threshold_usd (one alert per user)
	ErrorRate  = "error_rate"  // like high_error_rate, with the rule's own threshold (a fraction)
	Latency    = "latency"     // like slow_operations, with the rule's own threshold (ms)
)

// Window is how far back the rate and latency rules look; MinCalls is the least traffic in the
// window for them to judge (three failures of five calls is not an incident of the service).
const (
	Window        = 5 * time.Minute
	MinCalls      = 20
	StepUpWindow  = 15 * time.Minute
	AnomalyFloor  = 1.0 // USD: below this, today's spend is never an anomaly
	BaselineDays  = 7
	ClearAfter    = 3 // consecutive evaluations without the condition before an alert clears
	MaxNameLength = 100
)

// Severity is how urgent an alert is.
type Severity string

// The severities.
const (
	Warning  Severity = "warning"
	Critical Severity = "critical"
)

// Rule is an alert rule.
type Rule struct {
	ID        string
	Name      string
	Type      string
	Threshold float64 // USD, a fraction, milliseconds or a count, by type
	Severity  Severity
	Standing  bool
	Enabled   bool
	// Webhook is an operator rule's own Discord webhook, opened only to deliver ("" for none).
	Webhook   string
	CreatedBy string
	CreatedAt time.Time
	UpdatedAt time.Time
}

// HasWebhook reports whether the rule delivers to a webhook of its own too.
func (r Rule) HasWebhook() bool { return r.Webhook != "" }

// Reading is what a rule saw of one subject in one evaluation.
type Reading struct {
	Subject string // "" for the system as a whole, else a user, provider or channel
	Active  bool   // the condition holds
	Value   float64
	Detail  string // what a human reads in the alert
}

// State is a rule's standing for one subject between evaluations.
type State struct {
	Firing      bool
	Since       time.Time
	FalseStreak int
	Value       float64
}

// Transition is what an evaluation changed.
type Transition int

// The transitions.
const (
	None Transition = iota
	Fired
	Cleared
)

// Step advances a subject's state by one evaluation. An alert fires on the first evaluation its
// condition holds, and clears only after ClearAfter evaluations in a row without it: a
// condition that comes and goes (flapping) stays one incident instead of a fire and a clear
// every minute.
func Step(s State, active bool, value float64, now time.Time) (State, Transition) {
	s.Value = value
	switch {
	case active && !s.Firing:
		return State{Firing: true, Since: now, Value: value}, Fired
	case active:
		s.FalseStreak = 0
		return s, None
	case s.Firing:
		s.FalseStreak++
		if s.FalseStreak >= ClearAfter {
			return State{Firing: false, Since: now, Value: value}, Cleared
		}
		return s, None
	default:
		return s, None
	}
}

// OperatorTypes are the types POST /admin/alerts accepts.
func OperatorTypes() []string { return []string{DailySpend, UserSpend, ErrorRate, Latency} }

// StandingTypes are the standing rules' types.
func StandingTypes() []string {
	return []string{HighDailySpend, BudgetExceeded, HighErrorRate, SlowOperations, ModelUnavailable, CostAnomaly, DiscordBacklog, StepUpAttack}
}

// ErrNotFound: no such rule (or it was deleted).
var ErrNotFound = errors.New("alert rule not found")

// ErrStanding: standing rules can be changed and disabled, not deleted.
var ErrStanding = errors.New("a standing alert rule cannot be deleted (disable it instead)")

// Patch is a partial update of a rule.
type Patch struct {
	Name      *string
	Threshold *float64
	Severity  *Severity
	Enabled   *bool
}

// Event is an alert fired or cleared.
type Event struct {
	ID        int64
	RuleID    string
	RuleName  string
	Type      string
	Severity  Severity
	Subject   string
	State     string // fired, cleared
	Value     float64
	Detail    string
	At        time.Time
	Delivered *time.Time // to the rule's own webhook (nil: not yet, or it has none)
	// Attempts and LastError are the deliveries to the rule's own webhook so far (never its URL).
	Attempts  int
	LastError string
}

// ErrInvalid wraps what is wrong with a rule an operator sent.
var ErrInvalid = errors.New("invalid alert rule")

// CheckName checks a rule's name.
func CheckName(name string) error {
	n := strings.TrimSpace(name)
	if n == "" || !utf8.ValidString(name) || utf8.RuneCountInString(name) > MaxNameLength || strings.ContainsFunc(name, isControl) {
		return fmt.Errorf("%w: name must be 1 to %d characters, without control characters", ErrInvalid, MaxNameLength)
	}
	return nil
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7f }

// CheckThreshold checks a threshold for a type: its unit and a sane range.
func CheckThreshold(typ string, v float64) error {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return fmt.Errorf("%w: threshold must be a number", ErrInvalid)
	}
	var lo, hi float64
	var unit string
	switch typ {
	case HighDailySpend, DailySpend, UserSpend:
		lo, hi, unit = 0.01, 1_000_000, "USD"
	case HighErrorRate, ErrorRate:
		lo, hi, unit = 0.001, 1, "a fraction of the window's operations"
	case SlowOperations, Latency:
		lo, hi, unit = 1, 600_000, "milliseconds"
	case CostAnomaly:
		lo, hi, unit = 1.1, 100, "times the trailing baseline"
	case DiscordBacklog:
		lo, hi, unit = 60, 86_400, "seconds"
	case StepUpAttack:
		lo, hi, unit = 1, 1000, "failed attempts"
	case BudgetExceeded, ModelUnavailable:
		return nil // no threshold: the user's own limit, the provider's breaker
	default:
		return fmt.Errorf("%w: unknown type %q", ErrInvalid, typ)
	}
	if v < lo || v > hi {
		return fmt.Errorf("%w: %s threshold must be from %g to %g (%s)", ErrInvalid, typ, lo, hi, unit)
	}
	return nil
}

// DefaultSeverity is an operator rule's severity when it names none.
func DefaultSeverity(typ string) Severity {
	if typ == ErrorRate {
		return Critical
	}
	return Warning
}
