package catalog

import (
	"github.com/helixhq/helix/shared/fault"
	"github.com/helixhq/helix/shared/money"
)

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
			return fault.Errorf(fault.UnknownModel, "primary_model %q is not a model", *c.PrimaryModel)
		}
		next.PrimaryModel = *c.PrimaryModel
	}
	if c.FallbackModel != nil {
		if *c.FallbackModel != "" {
			if _, ok := models[*c.FallbackModel]; !ok {
				return fault.Errorf(fault.UnknownModel, "fallback_model %q is not a model", *c.FallbackModel)
			}
		}
		next.FallbackModel = *c.FallbackModel
	}
	if next.FallbackModel != "" && next.FallbackModel == next.PrimaryModel {
		return fault.Errorf(ErrInvalidChange.Code, "fallback_model must differ from primary_model")
	}
	if c.Enabled != nil {
		next.Enabled = *c.Enabled
	}
	if c.RequiresApproval != nil {
		next.RequiresApproval = *c.RequiresApproval
	}
	if c.MaxOutputTokens != nil {
		if v := *c.MaxOutputTokens; v < 1 || v > MaxOutputTokensLimit {
			return fault.Errorf(ErrInvalidChange.Code, "max_output_tokens must be between 1 and %d", MaxOutputTokensLimit)
		}
		next.MaxOutputTokens = *c.MaxOutputTokens
	}
	if c.Criticality != nil {
		if !c.Criticality.Valid() {
			return fault.Errorf(ErrInvalidChange.Code, "cost_criticality must be LOW, MEDIUM or HIGH")
		}
		next.Criticality = *c.Criticality
	}
	*r = next
	return nil
}

// MaxPricePerMTok bounds a price an operator may set: far above any model's (Claude Opus output is
// $75/1M), so that a typo of a few extra zeros is refused rather than billed.
const MaxPricePerMTok = 10_000 * money.PerUSD

// ModelChange is an operator's edit of a model; nil fields are left as they are.
type ModelChange struct {
	Enabled      *bool
	DirectAccess *bool
	APIModel     *string
	// A change of any price makes a new price version, effective from the change. PriceVersion
	// names it; nil lets the store name it after the model and the time.
	InputPerMTok        *money.Nano
	OutputPerMTok       *money.Nano
	CachedInputPerMTok  *money.Nano
	CacheWritePerMTok   *money.Nano
	CacheWrite1hPerMTok *money.Nano
	PriceVersion        *string
}

// Empty reports whether the change would change nothing.
func (c ModelChange) Empty() bool {
	return c.Enabled == nil && c.DirectAccess == nil && c.APIModel == nil && !c.Reprices() && c.PriceVersion == nil
}

// Reprices reports whether the change sets a price.
func (c ModelChange) Reprices() bool {
	return c.InputPerMTok != nil || c.OutputPerMTok != nil || c.CachedInputPerMTok != nil ||
		c.CacheWritePerMTok != nil || c.CacheWrite1hPerMTok != nil
}

// ApplyTo validates the change and applies it to m. A new price version's name is set only when
// the change names one; the caller names it otherwise. Errors are faults with code invalid_field.
func (c ModelChange) ApplyTo(m *Model) error {
	next := *m
	if c.PriceVersion != nil && !c.Reprices() {
		return fault.Errorf(fault.InvalidField, "price_version names a new price: send it with at least one of the *_usd_per_mtok prices")
	}
	for _, p := range []struct {
		name string
		v    *money.Nano
		dst  *money.Nano
	}{
		{"input_usd_per_mtok", c.InputPerMTok, &next.InputPerMTok},
		{"output_usd_per_mtok", c.OutputPerMTok, &next.OutputPerMTok},
		{"cached_input_usd_per_mtok", c.CachedInputPerMTok, &next.CachedInputPerMTok},
		{"cache_write_usd_per_mtok", c.CacheWritePerMTok, &next.CacheWritePerMTok},
		{"cache_write_1h_usd_per_mtok", c.CacheWrite1hPerMTok, &next.CacheWrite1hPerMTok},
	} {
		if p.v == nil {
			continue
		}
		if *p.v < 0 || *p.v > MaxPricePerMTok {
			return fault.Errorf(fault.InvalidField, "%s must be between 0 and %s", p.name, MaxPricePerMTok)
		}
		*p.dst = *p.v
	}
	if c.PriceVersion != nil {
		next.PriceVersion = *c.PriceVersion
	}
	if c.APIModel != nil {
		if *c.APIModel == "" {
			return fault.Errorf(fault.InvalidField, "api_model must not be empty")
		}
		next.APIModel = *c.APIModel
	}
	if c.Enabled != nil {
		next.Enabled = *c.Enabled
	}
	if c.DirectAccess != nil {
		next.DirectAccess = *c.DirectAccess
	}
	*m = next
	return nil
}
