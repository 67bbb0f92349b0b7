// Package approval decides which operations a person must approve before they run.
package approval

import (
	"github.com/helixhq/helix/shared/budget"
	"github.com/helixhq/helix/shared/catalog"
	"github.com/helixhq/helix/shared/money"
)

// Reason says why an operation is held.
type Reason string

// Reasons an operation needs approval.
const (
	ReasonNone             Reason = ""
	ReasonRouteRequires    Reason = "operation_requires_approval"
	ReasonAboveWarningHigh Reason = "high_criticality_estimate_above_warning_threshold"
)

// Required reports whether an operation must be approved before it runs: its route says so, or
// it is HIGH criticality and its estimated cost is above the user's warning threshold.
func Required(r catalog.Route, estimate money.Nano, limits budget.Limits) Reason {
	if r.RequiresApproval {
		return ReasonRouteRequires
	}
	if r.Criticality == catalog.High && estimate > limits.Warning {
		return ReasonAboveWarningHigh
	}
	return ReasonNone
}
