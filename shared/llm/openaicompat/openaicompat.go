// Package openaicompat calls DeepSeek, and any server that speaks OpenAI's chat completions wire
// format (vLLM, Ollama, OpenRouter, OpenAI itself), through github.com/sashabaranov/go-openai.
//
// go-openai does not retry, so nothing needs switching off. It does hide two things the pipeline
// needs, so the adapter's HTTP client records the exchange (see internal/wire): the headers of
// error responses (Retry-After) and the raw usage object (DeepSeek's prompt_cache_hit_tokens,
// which go-openai does not decode).
package openaicompat

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"math"
	"net/http"
	"strings"
	"time"

	openai "github.com/sashabaranov/go-openai"

	"github.com/helixhq/helix/shared/llm"
	"github.com/helixhq/helix/shared/llm/internal/wire"
)

// DeepSeekBaseURL is DeepSeek's API root; go-openai appends /chat/completions.
const DeepSeekBaseURL = "https://api.deepseek.com"

// jsonHint is added to the system prompt when a JSON request's prompt never says "json":
// DeepSeek rejects JSON mode otherwise. It is kept short because it costs input tokens the pipeline's
// estimate does not see.
const jsonHint = "Answer with a single JSON object."

// Config configures one OpenAI-compatible provider.
type Config struct {
	// Name is the provider name as ai_models.provider spells it; empty means "deepseek".
	Name string
	// BaseURL is the API root (the part before /chat/completions). Empty means DeepSeekBaseURL
	// for the provider named "deepseek" and go-openai's default (api.openai.com/v1) otherwise.
	BaseURL string
	// APIKey is sent as "Authorization: Bearer"; servers without auth (Ollama) take it empty.
	APIKey string
	// HTTPClient carries timeouts and proxies; nil means a default client. It is copied, not
	// modified.
	HTTPClient *http.Client
}

// Provider is an llm.Provider for one OpenAI-compatible server. It is safe for concurrent use.
type Provider struct {
	name   string
	apiKey string
	client *openai.Client
}

var _ llm.Provider = (*Provider)(nil)

// New builds the provider. It does not contact the server.
func New(cfg Config) *Provider {
	name := cfg.Name
	if name == "" {
		name = "deepseek"
	}
	oc := openai.DefaultConfig(cfg.APIKey)
	switch {
	case cfg.BaseURL != "":
		oc.BaseURL = cfg.BaseURL
	case name == "deepseek":
		oc.BaseURL = DeepSeekBaseURL
	}
	oc.HTTPClient = wire.Client(cfg.HTTPClient)
	return &Provider{name: name, apiKey: cfg.APIKey, client: openai.NewClientWithConfig(oc)}
}

// Name implements llm.Provider.
func (p *Provider) Name() string { return p.name }

// Complete implements llm.Provider.
func (p *Provider) Complete(ctx context.Context, req llm.Request) (llm.Response, error) {
	creq, err := p.request(req)
	if err != nil {
		return llm.Response{}, err
	}
	ctx, ex := wire.Track(ctx, true)
	resp, err := p.client.CreateChatCompletion(ctx, creq)
	if err != nil {
		return llm.Response{}, p.classify(ctx, err, ex)
	}
	return p.response(resp, ex)
}

// Probe implements llm.Prober: GET /models, which costs nothing.
func (p *Provider) Probe(ctx context.Context) error {
	ctx, ex := wire.Track(ctx, true)
	if _, err := p.client.ListModels(ctx); err != nil {
		return p.classify(ctx, err, ex)
	}
	return nil
}

func (p *Provider) request(req llm.Request) (openai.ChatCompletionRequest, error) {
	if req.MaxOutputTokens <= 0 {
		return openai.ChatCompletionRequest{}, wire.NeedsMaxTokens(p.name)
	}
	creq := openai.ChatCompletionRequest{
		Model: req.Model,
		// DeepSeek and most compatible servers read max_tokens; max_completion_tokens is
		// OpenAI-only.
		//lint:ignore SA1019 deprecated only for OpenAI's own reasoning models
		MaxTokens: int(min(req.MaxOutputTokens, math.MaxInt32)),
	}
	mentionsJSON := false
	for _, m := range req.Messages {
		switch m.Role {
		case llm.RoleSystem, llm.RoleUser, llm.RoleAssistant:
		default:
			return creq, &llm.Error{Provider: p.name, Kind: llm.KindInvalidRequest, Message: "unknown message role " + string(m.Role)}
		}
		creq.Messages = append(creq.Messages, openai.ChatCompletionMessage{Role: string(m.Role), Content: m.Content})
		if strings.Contains(strings.ToLower(m.Content), "json") {
			mentionsJSON = true
		}
	}
	if req.Temperature != nil {
		t := float32(*req.Temperature)
		if t == 0 {
			// go-openai drops a zero temperature (omitempty), which would leave the server's
			// default (1.0 at DeepSeek) in place; the smallest float32 is 0 for every sampler.
			t = math.SmallestNonzeroFloat32
		}
		creq.Temperature = t
	}
	if req.JSON {
		// json_object rather than json_schema: DeepSeek and most compatible servers only know
		// the former. The pipeline validates the answer against the schema.
		creq.ResponseFormat = &openai.ChatCompletionResponseFormat{Type: openai.ChatCompletionResponseFormatTypeJSONObject}
		if !mentionsJSON {
			// Into the first system message rather than a new one: some chat templates (vLLM,
			// Ollama) accept a single system message, and only in first place.
			if len(creq.Messages) > 0 && creq.Messages[0].Role == openai.ChatMessageRoleSystem {
				creq.Messages[0].Content += "\n\n" + jsonHint
			} else {
				creq.Messages = append([]openai.ChatCompletionMessage{{Role: openai.ChatMessageRoleSystem, Content: jsonHint}}, creq.Messages...)
			}
		}
	}
	return creq, nil
}

// rawUsage is the part of the usage object go-openai does not decode.
type rawUsage struct {
	Usage struct {
		PromptCacheHitTokens *int64 `json:"prompt_cache_hit_tokens"`
	} `json:"usage"`
}

func (p *Provider) response(resp openai.ChatCompletionResponse, ex *wire.Exchange) (llm.Response, error) {
	reqID := resp.Header().Get("X-Request-Id")
	if reqID == "" {
		reqID = resp.ID
	}
	// An answer that fails below (no choices, filtered, empty) may still have been billed: the
	// error carries the usage the provider reported.
	billed := usage(resp.Usage, ex.Body())
	if len(resp.Choices) == 0 {
		return llm.Response{}, &llm.Error{Provider: p.name, Kind: llm.KindBadResponse, StatusCode: ex.Status(), RequestID: reqID, Message: "response has no choices", Usage: &billed}
	}
	choice := resp.Choices[0]
	finish := string(choice.FinishReason)
	if choice.FinishReason == openai.FinishReasonContentFilter {
		return llm.Response{}, &llm.Error{Provider: p.name, Kind: llm.KindContentFiltered, StatusCode: ex.Status(), RequestID: reqID, Message: "answer withheld by the provider's content filter", Usage: &billed}
	}
	if choice.Message.Content == "" && choice.FinishReason != openai.FinishReasonLength {
		return llm.Response{}, &llm.Error{Provider: p.name, Kind: llm.KindBadResponse, StatusCode: ex.Status(), RequestID: reqID, Message: "empty answer (finish_reason " + finish + ")", Usage: &billed}
	}
	return llm.Response{
		Text:              choice.Message.Content,
		Usage:             billed,
		ProviderRequestID: reqID,
		Model:             resp.Model,
		FinishReason:      finish,
	}, nil
}

// usage normalizes an OpenAI-style usage object. prompt_tokens includes cached tokens and
// completion_tokens includes reasoning tokens, so both are subtracted. DeepSeek reports its cache
// hits as prompt_cache_hit_tokens (with prompt_cache_miss_tokens = prompt_tokens − hits); OpenAI
// and others as prompt_tokens_details.cached_tokens. The DeepSeek field wins when present.
func usage(u openai.Usage, body []byte) llm.Usage {
	// go-openai has decoded the body already; a second full decode is only worth it when the
	// DeepSeek field is there (a byte search is far cheaper than a decode).
	var raw rawUsage
	if bytes.Contains(body, []byte(`"prompt_cache_hit_tokens"`)) && json.Unmarshal(body, &raw) == nil {
		return normalize(u, raw.Usage.PromptCacheHitTokens)
	}
	return normalize(u, nil)
}

// normalize is usage with DeepSeek's prompt_cache_hit_tokens already read (nil when absent).
func normalize(u openai.Usage, cacheHits *int64) llm.Usage {
	var cached, reasoning int64
	if u.PromptTokensDetails != nil {
		cached = int64(u.PromptTokensDetails.CachedTokens)
	}
	if cacheHits != nil {
		cached = *cacheHits
	}
	if u.CompletionTokensDetails != nil {
		reasoning = int64(u.CompletionTokensDetails.ReasoningTokens)
	}
	prompt, completion := int64(u.PromptTokens), int64(u.CompletionTokens)
	cached = min(max(cached, 0), prompt)
	reasoning = min(max(reasoning, 0), completion)
	return llm.Usage{
		InputTokens:       prompt - cached,
		CachedInputTokens: cached,
		OutputTokens:      completion - reasoning,
		ReasoningTokens:   reasoning,
	}
}

func (p *Provider) classify(ctx context.Context, err error, ex *wire.Exchange) *llm.Error {
	var (
		apiErr *openai.APIError
		reqErr *openai.RequestError
		status int
		msg    string
	)
	switch {
	case errors.As(err, &apiErr) && apiErr.HTTPStatusCode != 0:
		status, msg = apiErr.HTTPStatusCode, apiErr.Message
	case errors.As(err, &reqErr) && reqErr.HTTPStatusCode != 0:
		status = reqErr.HTTPStatusCode
	default:
		return wire.Fallback(p.name, ctx, err, ex)
	}
	kind := wire.KindForStatus(status)
	if apiErr != nil && isContentFilterCode(apiErr) {
		kind = llm.KindContentFiltered
	}
	return &llm.Error{
		Provider:   p.name,
		Kind:       kind,
		StatusCode: status,
		RetryAfter: wire.RetryAfter(ex.Header(), time.Now()),
		RequestID:  ex.Header().Get("X-Request-Id"),
		Message:    wire.StatusMessage(kind, msg, p.apiKey),
		Err:        err,
	}
}

// isContentFilterCode recognizes a prompt refused by a content filter: OpenAI and Azure answer
// 400 with code "content_filter" or "content_policy_violation".
func isContentFilterCode(e *openai.APIError) bool {
	code, _ := e.Code.(string)
	if code == "content_filter" || code == "content_policy_violation" {
		return true
	}
	return e.InnerError != nil && e.InnerError.Code == "ResponsibleAIPolicyViolation"
}
