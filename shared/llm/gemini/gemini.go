// Package gemini calls Google's Gemini API through google.golang.org/genai.
//
// The SDK is told everything explicitly (backend, key, base URL) so the process environment
// (GOOGLE_GENAI_USE_VERTEXAI, GOOGLE_GEMINI_BASE_URL, ...) cannot redirect it. Its HTTP retries
// are pinned to one attempt and its automatic continuation (re-sending the request when an answer
// ends with finish reason CONTINUATION) is switched off: each Complete is exactly one billed
// request, which is what the budget reserved for.
package gemini

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"net/http"
	"strings"
	"time"

	"google.golang.org/genai"

	"github.com/helixhq/helix/shared/llm"
	"github.com/helixhq/helix/shared/llm/internal/wire"
)

// DefaultBaseURL is the Gemini API's root; the SDK appends /v1beta/models/{model}:generateContent.
const DefaultBaseURL = "https://generativelanguage.googleapis.com/"

// Config configures the Gemini provider.
type Config struct {
	// Name is the provider name as ai_models.provider spells it; empty means "gemini".
	Name string
	// BaseURL is the API root; empty means DefaultBaseURL.
	BaseURL string
	// APIKey is sent as x-goog-api-key. Required.
	APIKey string
	// HTTPClient carries timeouts and proxies; nil means a default client. It is copied.
	HTTPClient *http.Client
}

// Provider is an llm.Provider for Gemini. It is safe for concurrent use.
type Provider struct {
	name   string
	apiKey string
	client *genai.Client
}

var _ llm.Provider = (*Provider)(nil)

// New builds the provider. It does not contact the API; it fails only on a missing key.
func New(ctx context.Context, cfg Config) (*Provider, error) {
	name := cfg.Name
	if name == "" {
		name = "gemini"
	}
	if cfg.APIKey == "" {
		return nil, errors.New("gemini: API key is required")
	}
	base := cfg.BaseURL
	if base == "" {
		base = DefaultBaseURL
	}
	one := int32(1)
	client, err := genai.NewClient(ctx, &genai.ClientConfig{
		APIKey:     cfg.APIKey,
		Backend:    genai.BackendGeminiAPI,
		HTTPClient: wire.Client(cfg.HTTPClient),
		HTTPOptions: genai.HTTPOptions{
			BaseURL:      base,
			RetryOptions: &genai.HTTPRetryOptions{Attempts: &one},
		},
	})
	if err != nil {
		// genai's messages print the whole config, key included: never pass them on.
		return nil, errors.New("gemini: could not build the client (check base URL and key)")
	}
	return &Provider{name: name, apiKey: cfg.APIKey, client: client}, nil
}

// Name implements llm.Provider.
func (p *Provider) Name() string { return p.name }

// Complete implements llm.Provider.
func (p *Provider) Complete(ctx context.Context, req llm.Request) (llm.Response, error) {
	contents, config, err := p.request(req)
	if err != nil {
		return llm.Response{}, err
	}
	ctx, ex := wire.Track(ctx, false)
	resp, err := p.client.Models.GenerateContent(ctx, req.Model, contents, config)
	if err != nil {
		return llm.Response{}, p.classify(ctx, err, ex)
	}
	return p.response(req, resp, ex)
}

// Probe implements llm.Prober: one page of the model list, which costs nothing.
func (p *Provider) Probe(ctx context.Context) error {
	ctx, ex := wire.Track(ctx, false)
	if _, err := p.client.Models.List(ctx, &genai.ListModelsConfig{PageSize: 1}); err != nil {
		return p.classify(ctx, err, ex)
	}
	return nil
}

func (p *Provider) request(req llm.Request) ([]*genai.Content, *genai.GenerateContentConfig, error) {
	if req.MaxOutputTokens <= 0 {
		return nil, nil, wire.NeedsMaxTokens(p.name)
	}
	off := false
	config := &genai.GenerateContentConfig{
		MaxOutputTokens:       int32(min(req.MaxOutputTokens, math.MaxInt32)),
		AutomaticContinuation: &off,
	}
	var system []*genai.Part
	var contents []*genai.Content
	for _, m := range req.Messages {
		var role string
		switch m.Role {
		case llm.RoleSystem:
			system = append(system, &genai.Part{Text: m.Content})
			continue
		case llm.RoleUser:
			role = genai.RoleUser
		case llm.RoleAssistant:
			role = genai.RoleModel
		default:
			return nil, nil, &llm.Error{Provider: p.name, Kind: llm.KindInvalidRequest, Message: "unknown message role " + string(m.Role)}
		}
		// Consecutive turns of one role become one content with several parts: Gemini expects
		// the conversation to alternate.
		if n := len(contents); n > 0 && contents[n-1].Role == role {
			contents[n-1].Parts = append(contents[n-1].Parts, &genai.Part{Text: m.Content})
			continue
		}
		contents = append(contents, &genai.Content{Role: role, Parts: []*genai.Part{{Text: m.Content}}})
	}
	if len(contents) == 0 {
		return nil, nil, &llm.Error{Provider: p.name, Kind: llm.KindInvalidRequest, Message: "no user or assistant message"}
	}
	if len(system) > 0 {
		config.SystemInstruction = &genai.Content{Parts: system}
	}
	if req.Temperature != nil {
		t := float32(*req.Temperature)
		config.Temperature = &t
	}
	if req.JSON {
		config.ResponseMIMEType = "application/json"
		if len(req.Schema) > 0 {
			if !json.Valid(req.Schema) {
				return nil, nil, &llm.Error{Provider: p.name, Kind: llm.KindInvalidRequest, Message: "schema is not valid JSON"}
			}
			// responseJsonSchema takes JSON Schema as it is; responseSchema would need a
			// translation to Google's OpenAPI subset.
			config.ResponseJsonSchema = req.Schema
		}
	}
	return contents, config, nil
}

func (p *Provider) response(req llm.Request, resp *genai.GenerateContentResponse, ex *wire.Exchange) (llm.Response, error) {
	id := resp.ResponseID
	if id == "" && resp.SDKHTTPResponse != nil {
		id = resp.SDKHTTPResponse.Headers.Get("X-Request-Id")
	}
	// A blocked prompt or withheld answer is still billed for what Gemini processed: the error
	// carries the usage it reported (none when it reported none).
	var billed *llm.Usage
	if resp.UsageMetadata != nil {
		u := usage(resp.UsageMetadata)
		billed = &u
	}
	fail := func(kind llm.ErrorKind, msg string) (llm.Response, error) {
		return llm.Response{}, &llm.Error{Provider: p.name, Kind: kind, StatusCode: ex.Status(), RequestID: id, Message: msg, Usage: billed}
	}
	if pf := resp.PromptFeedback; pf != nil && pf.BlockReason != "" {
		return fail(llm.KindContentFiltered, "prompt blocked: "+string(pf.BlockReason))
	}
	if len(resp.Candidates) == 0 || resp.Candidates[0] == nil {
		return fail(llm.KindBadResponse, "response has no candidates")
	}
	cand := resp.Candidates[0]
	if filtered(cand.FinishReason) {
		return fail(llm.KindContentFiltered, "answer stopped: "+string(cand.FinishReason))
	}
	text := answerText(cand)
	finish := finishReason(cand.FinishReason)
	if text == "" && finish != "length" {
		return fail(llm.KindBadResponse, "empty answer (finishReason "+string(cand.FinishReason)+")")
	}
	model := resp.ModelVersion
	if model == "" {
		model = req.Model
	}
	return llm.Response{
		Text:              text,
		Usage:             usage(resp.UsageMetadata),
		ProviderRequestID: id,
		Model:             model,
		FinishReason:      finish,
	}, nil
}

// answerText joins the candidate's text parts, leaving out thought summaries. (The SDK's
// Text() does the same but logs warnings through the global logger.)
func answerText(c *genai.Candidate) string {
	if c.Content == nil {
		return ""
	}
	var b strings.Builder
	for _, part := range c.Content.Parts {
		if part != nil && !part.Thought {
			b.WriteString(part.Text)
		}
	}
	return b.String()
}

// filtered reports the finish reasons that mean the answer was withheld for safety, policy or
// recitation.
func filtered(r genai.FinishReason) bool {
	switch r {
	case genai.FinishReasonSafety, genai.FinishReasonProhibitedContent, genai.FinishReasonBlocklist,
		genai.FinishReasonRecitation, genai.FinishReasonSPII, genai.FinishReasonImageSafety,
		genai.FinishReasonImageProhibitedContent, genai.FinishReasonImageRecitation:
		return true
	}
	return false
}

func finishReason(r genai.FinishReason) string {
	switch r {
	case genai.FinishReasonStop, "":
		return "stop"
	case genai.FinishReasonMaxTokens:
		return "length"
	}
	return string(r)
}

// usage normalizes usageMetadata. promptTokenCount includes cachedContentTokenCount, so the
// cached part is subtracted; tool-use prompt tokens (toolUsePromptTokenCount) are billed as
// input. candidatesTokenCount excludes thoughtsTokenCount, which is reported as reasoning.
func usage(m *genai.GenerateContentResponseUsageMetadata) llm.Usage {
	if m == nil {
		return llm.Usage{}
	}
	prompt := int64(m.PromptTokenCount) + int64(m.ToolUsePromptTokenCount)
	cached := min(max(int64(m.CachedContentTokenCount), 0), prompt)
	return llm.Usage{
		InputTokens:       prompt - cached,
		CachedInputTokens: cached,
		OutputTokens:      int64(m.CandidatesTokenCount),
		ReasoningTokens:   int64(m.ThoughtsTokenCount),
	}
}

func (p *Provider) classify(ctx context.Context, err error, ex *wire.Exchange) *llm.Error {
	var apiErr genai.APIError
	if !errors.As(err, &apiErr) {
		var apiErrPtr *genai.APIError
		if !errors.As(err, &apiErrPtr) || apiErrPtr == nil {
			return wire.Fallback(p.name, ctx, err, ex)
		}
		apiErr = *apiErrPtr
	}
	status := apiErr.Code
	if status == 0 {
		status = ex.Status()
	}
	kind := wire.KindForStatus(status)
	if hasReason(apiErr.Details, "API_KEY_INVALID") {
		// Gemini answers a wrong key with 400 INVALID_ARGUMENT; it is an auth problem all the same.
		kind = llm.KindAuth
	}
	retry := retryDelay(apiErr.Details)
	if retry == 0 {
		retry = wire.RetryAfter(ex.Header(), time.Now())
	}
	return &llm.Error{
		Provider:   p.name,
		Kind:       kind,
		StatusCode: status,
		RetryAfter: retry,
		RequestID:  ex.Header().Get("X-Request-Id"),
		Message:    wire.StatusMessage(kind, strings.TrimSpace(apiErr.Status+" "+apiErr.Message), p.apiKey),
		Err:        err,
	}
}

// retryDelay reads google.rpc.RetryInfo's retryDelay, a protobuf Duration in its JSON form
// ("7s", "0.5s").
func retryDelay(details []map[string]any) time.Duration {
	for _, d := range details {
		if t, _ := d["@type"].(string); !strings.HasSuffix(t, "google.rpc.RetryInfo") {
			continue
		}
		s, _ := d["retryDelay"].(string)
		if dur, err := time.ParseDuration(s); err == nil && dur > 0 {
			return dur
		}
	}
	return 0
}

// hasReason reports a google.rpc.ErrorInfo detail with the given reason.
func hasReason(details []map[string]any, reason string) bool {
	for _, d := range details {
		if t, _ := d["@type"].(string); strings.HasSuffix(t, "google.rpc.ErrorInfo") && d["reason"] == reason {
			return true
		}
	}
	return false
}
