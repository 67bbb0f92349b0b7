package postgres

import (
	"github.com/helixhq/helix/shared/auditlog"
	"github.com/helixhq/helix/shared/budget"
	"github.com/helixhq/helix/shared/catalog"
	"github.com/helixhq/helix/shared/toggles"
)

// What admin changes record of each thing, before and after: the fields an operator sets, with
// money as exact USD strings.

func routeFacts(r catalog.Route) map[string]any {
	return map[string]any{
		"primary_model": r.PrimaryModel, "fallback_model": r.FallbackModel, "enabled": r.Enabled,
		"requires_approval": r.RequiresApproval, "max_output_tokens": r.MaxOutputTokens,
		"cost_criticality": string(r.Criticality),
	}
}

func modelFacts(m catalog.Model) map[string]any {
	return map[string]any{
		"api_model": m.APIModel, "enabled": m.Enabled, "direct_access": m.DirectAccess,
		"price_version":               m.PriceVersion,
		"input_usd_per_mtok":          m.InputPerMTok.String(),
		"output_usd_per_mtok":         m.OutputPerMTok.String(),
		"cached_input_usd_per_mtok":   m.CachedInputPerMTok.String(),
		"cache_write_usd_per_mtok":    m.CacheWritePerMTok.String(),
		"cache_write_1h_usd_per_mtok": m.CacheWrite1hPerMTok.String(),
	}
}

func limitsFacts(l budget.Limits) map[string]any {
	return map[string]any{"daily_limit_usd": l.DailyLimit.String(), "warning_threshold_usd": l.Warning.String()}
}

func toggleFacts(t toggles.Toggle) map[string]any {
	return map[string]any{"enabled": t.Enabled}
}

// adminChange is an admin change event.
func adminChange(actor, what, id string, before, after any, reprice bool) auditlog.Event {
	return auditlog.Event{Kind: auditlog.AdminChange, Actor: actor,
		Payload: auditlog.Change{What: what, ID: id, Before: before, After: after, Reprice: reprice}}
}
