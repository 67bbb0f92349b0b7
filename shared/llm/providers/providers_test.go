package providers_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/helixhq/helix/shared/config"
	"github.com/helixhq/helix/shared/llm"
	"github.com/helixhq/helix/shared/llm/llmtest"
	"github.com/helixhq/helix/shared/llm/providers"
)

// fromEnv is what a cold start does: the configuration from the environment, then the registry.
func fromEnv(env map[string]string) (*llm.Registry, error) {
	vars := map[string]string{"DATABASE_URL": "postgres://unused.invalid/helix"}
	for k, v := range env {
		vars[k] = v
	}
	cfg, err := config.Load(vars, config.Parts{})
	if err != nil {
		return nil, err
	}
	return providers.New(context.Background(), cfg.Providers, nil)
}

func TestFromConfiguration(t *testing.T) {
	tests := []struct {
		name       string
		env        map[string]string
		configured []string
		forced     bool
		noFallback bool // HELIX_OFFLINE unset or false: unconfigured providers are unavailable
		errHas     string
	}{
		{name: "nothing set: no provider, no offline model", env: map[string]string{}, configured: []string{}, noFallback: true},
		{name: "nothing set but fallback: everything offline", env: map[string]string{"HELIX_OFFLINE": "fallback"}, configured: []string{}},
		{name: "deepseek only", env: map[string]string{"DEEPSEEK_API_KEY": "sk-1"}, configured: []string{"deepseek"}, noFallback: true},
		{name: "deepseek only, fallback", env: map[string]string{"DEEPSEEK_API_KEY": "sk-1", "HELIX_OFFLINE": "fallback"}, configured: []string{"deepseek"}},
		{name: "all three", env: map[string]string{"DEEPSEEK_API_KEY": "a", "GEMINI_API_KEY": "b", "ANTHROPIC_API_KEY": "c"},
			configured: []string{"anthropic", "deepseek", "gemini"}, noFallback: true},
		{name: "blank key is no key", env: map[string]string{"GEMINI_API_KEY": "  ", "HELIX_OFFLINE": "fallback"}, configured: []string{}},
		{name: "forced offline keeps the keys but answers offline", env: map[string]string{"DEEPSEEK_API_KEY": "a", "HELIX_OFFLINE": "true"},
			configured: []string{"deepseek"}, forced: true},
		{name: "HELIX_OFFLINE=1", env: map[string]string{"HELIX_OFFLINE": "1"}, configured: []string{}, forced: true},
		{name: "HELIX_OFFLINE=false", env: map[string]string{"HELIX_OFFLINE": "false"}, configured: []string{}, noFallback: true},
		{name: "HELIX_OFFLINE nonsense", env: map[string]string{"HELIX_OFFLINE": "maybe"}, errHas: "HELIX_OFFLINE"},
		{name: "compat providers", env: map[string]string{
			"HELIX_OPENAI_COMPAT_PROVIDERS": "ollama, open-router",
			"OLLAMA_BASE_URL":               "http://127.0.0.1:11434/v1",
			"OPEN_ROUTER_BASE_URL":          "https://openrouter.ai/api/v1", "OPEN_ROUTER_API_KEY": "or-key",
			"HELIX_OFFLINE": "fallback",
		}, configured: []string{"ollama", "open-router"}},
		{name: "compat provider without base URL", env: map[string]string{"HELIX_OPENAI_COMPAT_PROVIDERS": "vllm"}, errHas: "VLLM_BASE_URL"},
		{name: "compat provider shadowing a built-in", env: map[string]string{"HELIX_OPENAI_COMPAT_PROVIDERS": "deepseek", "DEEPSEEK_BASE_URL": "x"}, errHas: "already"},
		{name: "compat provider named twice", env: map[string]string{"HELIX_OPENAI_COMPAT_PROVIDERS": "a,a", "A_BASE_URL": "http://x"}, errHas: "already"},
		{name: "compat provider with a bad name", env: map[string]string{"HELIX_OPENAI_COMPAT_PROVIDERS": "Big Model"}, errHas: "not a provider name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reg, err := fromEnv(tt.env)
			if tt.errHas != "" {
				if err == nil || !strings.Contains(err.Error(), tt.errHas) {
					t.Fatalf("err = %v, want one mentioning %q", err, tt.errHas)
				}
				return
			}
			if err != nil {
				t.Fatalf("fromEnv: %v", err)
			}
			if got := reg.Names(); !slices.Equal(got, tt.configured) {
				t.Errorf("configured = %v, want %v", got, tt.configured)
			}
			if reg.ForcedOffline() != tt.forced {
				t.Errorf("forced offline = %t, want %t", reg.ForcedOffline(), tt.forced)
			}
			// Configured names resolve to themselves (unless forced); the others to the offline
			// model with a fallback, and to nothing without one.
			for _, name := range []string{"deepseek", "gemini", "anthropic", "ollama"} {
				p, ok := reg.Get(name)
				if tt.noFallback {
					if ok != slices.Contains(tt.configured, name) {
						t.Errorf("Get(%q) found=%t without a fallback, configured=%v", name, ok, tt.configured)
					}
					continue
				}
				if !ok {
					t.Fatalf("Get(%q) found nothing; the offline fallback should answer", name)
				}
				want := "offline"
				if !tt.forced && slices.Contains(tt.configured, name) {
					want = name
				}
				if p.Name() != want {
					t.Errorf("Get(%q) = %s, want %s", name, p.Name(), want)
				}
			}
		})
	}
}

// TestEachProviderIsWired points every adapter at its own local server and checks that a
// call through the registry reaches that server with that key.
func TestEachProviderIsWired(t *testing.T) {
	ds, gm, an, ol := llmtest.NewOpenAI(t), llmtest.NewGemini(t), llmtest.NewAnthropic(t), llmtest.NewOpenAI(t)
	ds.RequireAPIKey("ds-key")
	gm.RequireAPIKey("gm-key")
	an.RequireAPIKey("an-key")
	env := map[string]string{
		"DEEPSEEK_API_KEY": "ds-key", "DEEPSEEK_BASE_URL": ds.URL,
		"GEMINI_API_KEY": "gm-key", "GEMINI_BASE_URL": gm.URL,
		"ANTHROPIC_API_KEY": "an-key", "ANTHROPIC_BASE_URL": an.URL,
		"HELIX_OPENAI_COMPAT_PROVIDERS": "ollama", "OLLAMA_BASE_URL": ol.URL,
		"HELIX_OFFLINE": "fallback",
	}
	reg, err := fromEnv(env)
	if err != nil {
		t.Fatal(err)
	}
	for name, s := range map[string]*llmtest.Server{"deepseek": ds, "gemini": gm, "anthropic": an, "ollama": ol} {
		p, _ := reg.Get(name)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		resp, err := p.Complete(ctx, llmtest.ContractRequest("some-model"))
		cancel()
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if resp.Offline || p.Name() != name {
			t.Errorf("%s answered as %s (offline %t)", name, p.Name(), resp.Offline)
		}
		if n := len(s.Requests()); n != 1 {
			t.Errorf("%s's server got %d requests, want 1", name, n)
		}
	}
	p, _ := reg.Get("unknown-provider")
	resp, err := p.Complete(context.Background(), llmtest.ContractRequest("m"))
	if err != nil || !resp.Offline {
		t.Errorf("unknown provider: offline %t, err %v; want the offline model", resp.Offline, err)
	}
}
