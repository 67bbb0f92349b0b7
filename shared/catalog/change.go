package catalog

import "fmt"

// RouteChange is an operator's edit of a route; nil fields are left as they are.
type RouteChange struct {
	PrimaryModel     *string
	FallbackModel    *string // "" removes the fallback
	Enabled          *bool
	RequiresApproval *bool
	MaxOutputTokens  *int64
	Criticality      *Criticality
}

// Empty reports whether the change would change nothing.
func (c RouteChange) Empty() bool {
	return c.PrimaryModel == nil && c.FallbackModel == nil && c.Enabled == nil &&
		c.RequiresApproval == nil && c.MaxOutputTokens == nil && c.Criticality == nil
}

// ApplyTo validates the change against the known models and applies it to r. Errors wrap
// ErrUnknownModel or ErrInvalidChange.
func (c RouteChange) ApplyTo(r *Route, models map[string]Model) error {
	next := *r
	if c.PrimaryModel != nil {
		if _, ok := models[*c.PrimaryModel]; !ok {
			return fmt.Errorf("%w: primary_model %q does not exist", ErrUnknownModel, *c.PrimaryModel)
		}
		next.PrimaryModel = *c.PrimaryModel
	}
	if c.FallbackModel != nil {
		if *c.FallbackModel != "" {
			if _, ok := models[*c.FallbackModel]; !ok {
				return fmt.Errorf("%w: fallback_model %q does not exist", ErrUnknownModel, *c.FallbackModel)
			}
		}
		next.FallbackModel = *c.FallbackModel
	}
	if next.FallbackModel != "" && next.FallbackModel == next.PrimaryModel {
		return fmt.Errorf("%w: fallback_model must differ from primary_model", ErrInvalidChange)
	}
	if c.Enabled != nil {
		next.Enabled = *c.Enabled
	}
	if c.RequiresApproval != nil {
		next.RequiresApproval = *c.RequiresApproval
	}
	if c.MaxOutputTokens != nil {
		if v := *c.MaxOutputTokens; v < 1 || v > MaxOutputTokensLimit {
			return fmt.Errorf("%w: max_output_tokens must be between 1 and %d", ErrInvalidChange, MaxOutputTokensLimit)
		}
		next.MaxOutputTokens = *c.MaxOutputTokens
	}
	if c.Criticality != nil {
		if !c.Criticality.Valid() {
			return fmt.Errorf("%w: cost_criticality must be LOW, MEDIUM or HIGH", ErrInvalidChange)
		}
		next.Criticality = *c.Criticality
	}
	*r = next
	return nil
}
