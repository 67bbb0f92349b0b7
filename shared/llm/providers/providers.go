// Package providers builds Helix's provider registry from configuration, for the composition
// roots. It is the one place that knows every adapter.
package providers

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"

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

// FromEnv builds the registry from configuration read through getenv (os.Getenv, or a lookup
// that has already resolved secret references). Every variable is optional:
//
//	DEEPSEEK_API_KEY       DeepSeek key; when set, provider "deepseek" calls DeepSeek
//	DEEPSEEK_BASE_URL      DeepSeek API root (default https://api.deepseek.com)
//	GEMINI_API_KEY         Gemini API key; when set, provider "gemini" calls Gemini
//	GEMINI_BASE_URL        Gemini API root (default https://generativelanguage.googleapis.com/)
//	ANTHROPIC_API_KEY      Anthropic key; when set, provider "anthropic" calls Claude
//	ANTHROPIC_BASE_URL     Anthropic API root (default https://api.anthropic.com/)
//	HELIX_OFFLINE          when the offline model answers:
//	                         "false" (or empty, the default): never; a provider without a key
//	                           is unavailable, and its routes fail over as when it is down;
//	                         "fallback": for providers without a key (the dev server's default,
//	                           so the whole API works on a laptop with no keys at all);
//	                         "true": for every provider, keys or not.
//	HELIX_OPENAI_COMPAT_PROVIDERS
//	                       comma-separated names of extra OpenAI-compatible providers (vLLM,
//	                       Ollama, OpenRouter, ...), e.g. "ollama,openrouter"; each is then
//	                       configured by
//	<NAME>_BASE_URL        its API root, the part before /chat/completions (required)
//	<NAME>_API_KEY         its bearer key (optional: local servers often need none)
//	                       where <NAME> is the name upper-cased with "-" as "_"
//	                       ("open-router" → OPEN_ROUTER_BASE_URL).
//
// The offline model says so in every answer and costs nothing; a deployment never falls back to
// it unless HELIX_OFFLINE asks, so a missing key cannot turn into fake answers. Key values must already be resolved: a value still reading "ssm:..." or
// "secretsmanager:..." is an error rather than a key to send. httpClient (nil: a default
// client) is shared by every adapter; its timeouts and transport apply to all provider calls.
func FromEnv(ctx context.Context, getenv func(string) string, httpClient *http.Client) (*llm.Registry, error) {
	env := func(k string) string { return strings.TrimSpace(getenv(k)) }
	fallback, force := false, false
	switch strings.ToLower(env("HELIX_OFFLINE")) {
	case "", "0", "false", "no", "off":
	case "fallback":
		fallback = true
	case "1", "true", "yes", "on":
		fallback, force = true, true
	default:
		return nil, fmt.Errorf("HELIX_OFFLINE: %q must be false, fallback or true", env("HELIX_OFFLINE"))
	}
	key := func(name string) (string, error) {
		v := env(name)
		if isSecretReference(v) {
			return "", fmt.Errorf("%s is an unresolved secret reference; resolve it before building providers", name)
		}
		return v, nil
	}

	var ps []llm.Provider
	if k, err := key("DEEPSEEK_API_KEY"); err != nil {
		return nil, err
	} else if k != "" {
		ps = append(ps, openaicompat.New(openaicompat.Config{Name: DeepSeek, BaseURL: env("DEEPSEEK_BASE_URL"), APIKey: k, HTTPClient: httpClient}))
	}
	if k, err := key("GEMINI_API_KEY"); err != nil {
		return nil, err
	} else if k != "" {
		g, err := gemini.New(ctx, gemini.Config{Name: Gemini, BaseURL: env("GEMINI_BASE_URL"), APIKey: k, HTTPClient: httpClient})
		if err != nil {
			return nil, err
		}
		ps = append(ps, g)
	}
	if k, err := key("ANTHROPIC_API_KEY"); err != nil {
		return nil, err
	} else if k != "" {
		ps = append(ps, anthropic.New(anthropic.Config{Name: Anthropic, BaseURL: env("ANTHROPIC_BASE_URL"), APIKey: k, HTTPClient: httpClient}))
	}

	seen := map[string]bool{DeepSeek: true, Gemini: true, Anthropic: true, offline.Name: true}
	for _, name := range strings.Split(env("HELIX_OPENAI_COMPAT_PROVIDERS"), ",") {
		name = strings.TrimSpace(name)
		if name == "" {
			continue
		}
		if !validName(name) {
			return nil, fmt.Errorf("HELIX_OPENAI_COMPAT_PROVIDERS: %q is not a provider name (lower-case letters, digits, '-', '_')", name)
		}
		if seen[name] {
			return nil, fmt.Errorf("HELIX_OPENAI_COMPAT_PROVIDERS: %q is already a provider", name)
		}
		seen[name] = true
		prefix := envPrefix(name)
		base := env(prefix + "_BASE_URL")
		if base == "" {
			return nil, fmt.Errorf("%s_BASE_URL is required for OpenAI-compatible provider %q", prefix, name)
		}
		k, err := key(prefix + "_API_KEY")
		if err != nil {
			return nil, err
		}
		ps = append(ps, openaicompat.New(openaicompat.Config{Name: name, BaseURL: base, APIKey: k, HTTPClient: httpClient}))
	}
	reg := llm.NewRegistry(ps...)
	if fallback {
		reg = reg.WithOfflineFallback(offline.New(), force)
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

// validName accepts lower-case names of letters, digits, '-' and '_', starting with a letter or
// digit: they become env var prefixes and ai_models.provider values.
func validName(name string) bool {
	for i, c := range name {
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case (c == '-' || c == '_') && i > 0:
		default:
			return false
		}
	}
	return name != ""
}

// envPrefix turns a provider name into its variables' prefix: "open-router" → "OPEN_ROUTER".
func envPrefix(name string) string {
	return strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}

// isSecretReference matches the reference syntax shared/secrets resolves; it is repeated here
// rather than imported so this package does not pull in the AWS SDK.
func isSecretReference(v string) bool {
	return strings.HasPrefix(v, "ssm:") || strings.HasPrefix(v, "secretsmanager:")
}
