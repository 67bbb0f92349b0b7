// Package providers builds Helix's provider registry from configuration, for the composition
// roots. It is the one place that knows every adapter.
package providers

import (
	"context"
	"net/http"
	"time"

	"github.com/helixhq/helix/shared/config"
	"github.com/helixhq/helix/shared/llm"
	"github.com/helixhq/helix/shared/llm/anthropic"
	"github.com/helixhq/helix/shared/llm/gemini"
	"github.com/helixhq/helix/shared/llm/offline"
	"github.com/helixhq/helix/shared/llm/openaicompat"
)

// Provider names, as ai_models.provider spells them.
const (
	DeepSeek  = "deepseek"
	Gemini    = "gemini"
	Anthropic = "anthropic"
)

// New builds the registry from the configuration (config.Providers says which variable sets
// what). A provider with a key calls the real API; one without is unavailable, and its routes
// fail over as when it is down, unless cfg.Offline lets the offline model answer for it
// (fallback) or for everyone (always). The offline model says so in every answer and costs
// nothing; a deployment never falls back to it unless HELIX_OFFLINE asks, so a missing key cannot
// turn into fake answers. httpClient (nil: a default client) is shared by every adapter; its
// timeouts and transport apply to all provider calls.
func New(ctx context.Context, cfg config.Providers, httpClient *http.Client) (*llm.Registry, error) {
	var ps []llm.Provider
	if p := cfg.DeepSeek; p.APIKey != "" {
		ps = append(ps, openaicompat.New(openaicompat.Config{Name: DeepSeek, BaseURL: p.BaseURL, APIKey: p.APIKey, HTTPClient: httpClient}))
	}
	if p := cfg.Gemini; p.APIKey != "" {
		g, err := gemini.New(ctx, gemini.Config{Name: Gemini, BaseURL: p.BaseURL, APIKey: p.APIKey, HTTPClient: httpClient})
		if err != nil {
			return nil, err
		}
		ps = append(ps, g)
	}
	if p := cfg.Anthropic; p.APIKey != "" {
		ps = append(ps, anthropic.New(anthropic.Config{Name: Anthropic, BaseURL: p.BaseURL, APIKey: p.APIKey, HTTPClient: httpClient}))
	}
	// Extra OpenAI-compatible servers (vLLM, Ollama, OpenRouter) often need no key.
	for _, p := range cfg.OpenAICompatible {
		ps = append(ps, openaicompat.New(openaicompat.Config{Name: p.Name, BaseURL: p.BaseURL, APIKey: p.APIKey, HTTPClient: httpClient}))
	}
	reg := llm.NewRegistry(ps...)
	if cfg.Offline != config.OfflineNever {
		reg = reg.WithOfflineFallback(offline.New(), cfg.Offline == config.OfflineAlways)
	}
	return reg, nil
}

// NewHTTPClient is the client the composition roots share between the adapters: it reuses
// connections (a handshake per call would cost more than many calls), bounds connection setup,
// and has no overall timeout, because every call's deadline comes from its request.
func NewHTTPClient() *http.Client {
	return &http.Client{Transport: &http.Transport{
		Proxy:               http.ProxyFromEnvironment,
		TLSHandshakeTimeout: 5 * time.Second,
		MaxIdleConns:        256,
		MaxIdleConnsPerHost: 64,
		IdleConnTimeout:     90 * time.Second,
		ForceAttemptHTTP2:   true,
	}}
}
