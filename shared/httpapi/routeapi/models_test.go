package routeapi_test

import (
	"context"
	"encoding/json"
	"net/http"
	"reflect"
	"testing"
)

// The routing decision applies the kill switches and breakers execution applies, and says when
// they leave no model, with a Retry-After.
func TestRouteAppliesKillSwitches(t *testing.T) {
	e := newRouteEnv(t)
	body := `{"operation_id":"email-compose","estimated_tokens":100}`
	steps := []struct {
		name  string
		off   []string // toggles switched on in feature_toggles
		chain []string // nil: 503 providers_unavailable
	}{
		{"DeepSeek off: Gemini serves", []string{"DISABLE_DEEPSEEK"}, []string{"gemini_flash", "claude"}},
		{"DeepSeek and Gemini off: the emergency model", []string{"DISABLE_DEEPSEEK", "DISABLE_GEMINI"}, []string{"claude"}},
		{"every provider off", []string{"DISABLE_DEEPSEEK", "DISABLE_GEMINI", "DISABLE_ANTHROPIC"}, nil},
		{"all back", []string{}, []string{"deepseek", "gemini_flash", "claude"}},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			e.execAndExpireCache(t, `UPDATE feature_toggles SET enabled = (toggle_key = ANY($1)) WHERE toggle_key LIKE 'DISABLE_%'`, s.off)
			if s.chain == nil {
				res := e.route(t, e.alice, body)
				res.wantError(t, http.StatusServiceUnavailable, "providers_unavailable")
				if res.Header.Get("Retry-After") == "" {
					t.Error("503 providers_unavailable without Retry-After")
				}
				return
			}
			d := e.decision(t, e.alice, body)
			if d.Model != s.chain[0] || !reflect.DeepEqual(d.FailoverChain, s.chain) {
				t.Errorf("model %s, chain %v; want %v", d.Model, d.FailoverChain, s.chain)
			}
		})
	}
}

type modelDetail struct {
	Model        string      `json:"model"`
	APIModel     string      `json:"api_model"`
	Input        json.Number `json:"input_usd_per_mtok"`
	Output       json.Number `json:"output_usd_per_mtok"`
	Cached       json.Number `json:"cached_input_usd_per_mtok"`
	PriceVersion string      `json:"price_version"`
	Enabled      bool        `json:"enabled"`
	DirectAccess bool        `json:"direct_access"`
	UpdatedBy    string      `json:"updated_by"`
	Prices       []struct {
		PriceVersion   string      `json:"price_version"`
		Input          json.Number `json:"input_usd_per_mtok"`
		Output         json.Number `json:"output_usd_per_mtok"`
		EffectiveUntil *string     `json:"effective_until"`
		CreatedBy      string      `json:"created_by"`
	} `json:"prices"`
}

func (e *rtEnv) model(t *testing.T, method, key, body string) modelDetail {
	t.Helper()
	res := e.do(t, method, "/admin/models/"+key, e.ops, body)
	res.WantStatus(t, http.StatusOK)
	var m modelDetail
	res.DecodeNumbers(t, &m)
	return m
}

// Operators change a model and its prices through the API. A price change is a new price
// version effective now; the old one stays queryable; routing uses the new price at once.
func TestModelAdministration(t *testing.T) {
	e := newRouteEnv(t)
	m := e.model(t, http.MethodGet, "deepseek", "")
	if m.Input != "0.28" || m.PriceVersion != "deepseek-v3.2@2026-11" || len(m.Prices) != 1 || m.Prices[0].EffectiveUntil != nil || !m.DirectAccess {
		t.Fatalf("seeded deepseek = %+v", m)
	}
	if c := e.model(t, http.MethodGet, "claude", ""); c.DirectAccess {
		t.Error("the emergency model is open to direct access by default")
	}

	m = e.model(t, http.MethodPut, "deepseek", `{"input_usd_per_mtok":0.56,"price_version":"deepseek-v3.2@2026-12"}`)
	if m.Input != "0.56" || m.Output != "0.42" || m.PriceVersion != "deepseek-v3.2@2026-12" || m.UpdatedBy != "ops" {
		t.Fatalf("after the price change = %+v", m)
	}
	if len(m.Prices) != 2 || m.Prices[0].PriceVersion != "deepseek-v3.2@2026-12" || m.Prices[0].EffectiveUntil != nil ||
		m.Prices[1].PriceVersion != "deepseek-v3.2@2026-11" || m.Prices[1].EffectiveUntil == nil || m.Prices[1].Input != "0.28" {
		t.Fatalf("price history = %+v", m.Prices)
	}
	// The admin write invalidates this instance's cache: the next decision uses the new price.
	if d := e.decision(t, e.alice, `{"operation_id":"email-compose","estimated_tokens":100}`); d.EstimatedCostUSD != "0.000203" || d.PriceVersion != "deepseek-v3.2@2026-12" {
		t.Errorf("decision after the change: %s at %s, want 0.000203 at the new version", d.EstimatedCostUSD, d.PriceVersion)
	}
	// An unnamed change gets a version of its own.
	m = e.model(t, http.MethodPut, "deepseek", `{"output_usd_per_mtok":0.5}`)
	if m.PriceVersion == "deepseek-v3.2@2026-12" || len(m.Prices) != 3 {
		t.Fatalf("unnamed price change: version %q, %d versions", m.PriceVersion, len(m.Prices))
	}
	// Non-price fields make no price version.
	m = e.model(t, http.MethodPut, "deepseek", `{"enabled":false,"api_model":"deepseek-chat-v2","direct_access":false}`)
	if m.Enabled || m.APIModel != "deepseek-chat-v2" || m.DirectAccess || len(m.Prices) != 3 {
		t.Fatalf("after the field change = %+v", m)
	}
	if d := e.decision(t, e.alice, `{"operation_id":"email-compose"}`); d.Model != "gemini_flash" {
		t.Errorf("decision with deepseek disabled: %s", d.Model)
	}
	var n int
	if err := e.pool.QueryRow(context.Background(), `SELECT count(*) FROM ai_model_prices WHERE model_key = 'deepseek' AND effective_until IS NULL`).Scan(&n); err != nil || n != 1 {
		t.Fatalf("%d current price versions (%v), want 1", n, err)
	}
}

func TestModelAdministrationRejects(t *testing.T) {
	e := newRouteEnv(t)
	tests := []struct {
		name, method, key, body string
		status                  int
		code                    string
	}{
		{"unknown model", http.MethodGet, "gpt-9", "", 404, "model_not_found"},
		{"unknown model, put", http.MethodPut, "gpt-9", `{"enabled":true}`, 404, "model_not_found"},
		{"empty change", http.MethodPut, "deepseek", `{}`, 400, "missing_field"},
		{"negative price", http.MethodPut, "deepseek", `{"input_usd_per_mtok":-1}`, 400, "invalid_field"},
		{"absurd price", http.MethodPut, "deepseek", `{"output_usd_per_mtok":1000000}`, 400, "invalid_field"},
		{"price as a string", http.MethodPut, "deepseek", `{"output_usd_per_mtok":"0.5"}`, 400, "invalid_type"},
		{"version without a price", http.MethodPut, "deepseek", `{"price_version":"x"}`, 400, "invalid_field"},
		{"version used before", http.MethodPut, "deepseek", `{"input_usd_per_mtok":1,"price_version":"deepseek-v3.2@2026-11"}`, 400, "invalid_field"},
		{"empty api_model", http.MethodPut, "deepseek", `{"api_model":""}`, 400, "invalid_field"},
		{"api_model with a NUL", http.MethodPut, "deepseek", `{"api_model":"a\u0000b"}`, 400, "invalid_field"},
		{"unknown field", http.MethodPut, "deepseek", `{"enabeld":true}`, 400, "unknown_field"},
		{"a user", http.MethodGet, "deepseek", "", 403, "forbidden"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			token := e.ops
			if tt.name == "a user" {
				token = e.alice
			}
			e.do(t, tt.method, "/admin/models/"+tt.key, token, tt.body).wantError(t, tt.status, tt.code)
		})
	}
	// Nothing was changed by the refused requests.
	if m := e.model(t, http.MethodGet, "deepseek", ""); m.Input != "0.28" || len(m.Prices) != 1 {
		t.Errorf("deepseek after refused changes = %+v", m)
	}
}

// Cache-write prices are prices like the others: shown, changed as a new price version, kept in
// the history.
func TestModelCacheWritePrices(t *testing.T) {
	e := newRouteEnv(t)
	var m struct {
		Write   json.Number `json:"cache_write_usd_per_mtok"`
		Write1h json.Number `json:"cache_write_1h_usd_per_mtok"`
		Prices  []struct {
			Write1h json.Number `json:"cache_write_1h_usd_per_mtok"`
		} `json:"prices"`
	}
	res := e.do(t, http.MethodGet, "/admin/models/claude", e.ops, "")
	res.WantStatus(t, http.StatusOK)
	res.DecodeNumbers(t, &m)
	if m.Write != "1.25" || m.Write1h != "2" {
		t.Fatalf("seeded Claude cache writes = %s / %s, want 1.25 / 2", m.Write, m.Write1h)
	}
	res = e.do(t, http.MethodPut, "/admin/models/claude", e.ops, `{"cache_write_1h_usd_per_mtok":2.5}`)
	res.WantStatus(t, http.StatusOK)
	res.DecodeNumbers(t, &m)
	if m.Write1h != "2.5" || len(m.Prices) != 2 || m.Prices[0].Write1h != "2.5" || m.Prices[1].Write1h != "2" {
		t.Fatalf("after the change: %+v", m)
	}
	// The worst case follows: 100 × $2.5 + 1024 × $5 per 1M.
	if d := e.decision(t, e.alice, `{"operation_id":"email-compose","estimated_tokens":100}`); d.WorstCaseCostUSD != "0.00537" {
		t.Errorf("worst case %s, want 0.00537", d.WorstCaseCostUSD)
	}
}
