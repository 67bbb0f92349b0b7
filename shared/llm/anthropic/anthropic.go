// Package anthropic calls Claude through github.com/anthropics/anthropic-sdk-go.
//
// The SDK retries twice by default and, unless told otherwise, configures itself from the process
// environment (ANTHROPIC_BASE_URL, ANTHROPIC_AUTH_TOKEN, profiles on disk, custom headers). Both
// are switched off: the pipeline owns retries, and the adapter is configured only by Config.
package anthropic

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"time"

	sdk "github.com/anthropics/anthropic-sdk-go"
	"github.com/anthropics/anthropic-sdk-go/option"

	"github.com/helixhq/helix/shared/llm"
	"github.com/helixhq/helix/shared/llm/internal/wire"
)

// jsonInstruction is appended to the system prompt of JSON requests: the Messages API has no
// JSON mode short of structured outputs, which not every model accepts.
const jsonInstruction = "Respond with a single JSON object and nothing else: no prose, no code fences."

// noDeadlineTimeout bounds a call whose context has no deadline (the SDK's own default). It also
// keeps the SDK from refusing large max_tokens values without streaming: it only estimates a
// duration, and refuses, when no request timeout is set.
const noDeadlineTimeout = 10 * time.Minute

// Config configures the Anthropic provider.
type Config struct {
	// Name is the provider name as ai_models.provider spells it; empty means "anthropic".
	Name string
	// BaseURL is the API root (the SDK appends /v1/messages); empty means the SDK's default,
	// https://api.anthropic.com/.
	BaseURL string
	// APIKey is sent as x-api-key.
	APIKey string
	// HTTPClient carries timeouts and proxies; nil means a default client. It is copied.
	HTTPClient *http.Client
	// StructuredOutputs sends a request's Schema as output_config.format (constrained decoding)
	// instead of describing it in the system prompt. Only for models that support structured
	// outputs.
	StructuredOutputs bool
}

// Provider is an llm.Provider for Claude. It is safe for concurrent use.
type Provider struct {
	name       string
	apiKey     string
	structured bool
	client     sdk.Client
}

var _ llm.Provider = (*Provider)(nil)

// New builds the provider. It does not contact the API.
func New(cfg Config) *Provider {
	name := cfg.Name
	if name == "" {
		name = "anthropic"
	}
	opts := []option.RequestOption{
		option.WithoutEnvironmentDefaults(),
		option.WithAPIKey(cfg.APIKey),
		option.WithHTTPClient(wire.Client(cfg.HTTPClient)),
		option.WithMaxRetries(0),
	}
	if cfg.BaseURL != "" {
		opts = append(opts, option.WithBaseURL(cfg.BaseURL))
	}
	return &Provider{name: name, apiKey: cfg.APIKey, structured: cfg.StructuredOutputs, client: sdk.NewClient(opts...)}
}

// Name implements llm.Provider.
func (p *Provider) Name() string { return p.name }

// Complete implements llm.Provider.
func (p *Provider) Complete(ctx context.Context, req llm.Request) (llm.Response, error) {
	params, err := p.request(req)
	if err != nil {
		return llm.Response{}, err
	}
	timeout := noDeadlineTimeout
	if deadline, ok := ctx.Deadline(); ok {
		// A little past the caller's deadline, so the caller's context is what ends the call.
		timeout = time.Until(deadline) + time.Second
	}
	ctx, ex := wire.Track(ctx, false)
	msg, err := p.client.Messages.New(ctx, params, option.WithRequestTimeout(timeout))
	if err != nil {
		return llm.Response{}, p.classify(ctx, err, ex)
	}
	reqID := ex.Header().Get("Request-Id")
	if reqID == "" {
		reqID = msg.ID
	}
	return p.response(req, msg, reqID, ex.Status())
}

// Probe implements llm.Prober: one model of the model list, which costs nothing.
func (p *Provider) Probe(ctx context.Context) error {
	ctx, ex := wire.Track(ctx, false)
	if _, err := p.client.Models.List(ctx, sdk.ModelListParams{Limit: sdk.Int(1)}); err != nil {
		return p.classify(ctx, err, ex)
	}
	return nil
}

func (p *Provider) request(req llm.Request) (sdk.MessageNewParams, error) {
	if req.MaxOutputTokens <= 0 {
		return sdk.MessageNewParams{}, wire.NeedsMaxTokens(p.name)
	}
	params := sdk.MessageNewParams{Model: req.Model, MaxTokens: req.MaxOutputTokens}
	for _, m := range req.Messages {
		switch m.Role {
		case llm.RoleSystem:
			params.System = append(params.System, sdk.TextBlockParam{Text: m.Content})
		case llm.RoleUser:
			params.Messages = append(params.Messages, sdk.NewUserMessage(sdk.NewTextBlock(m.Content)))
		case llm.RoleAssistant:
			params.Messages = append(params.Messages, sdk.NewAssistantMessage(sdk.NewTextBlock(m.Content)))
		default:
			return params, &llm.Error{Provider: p.name, Kind: llm.KindInvalidRequest, Message: "unknown message role " + string(m.Role)}
		}
	}
	if len(params.Messages) == 0 {
		return params, &llm.Error{Provider: p.name, Kind: llm.KindInvalidRequest, Message: "no user or assistant message"}
	}
	if req.Temperature != nil {
		params.Temperature = sdk.Float(*req.Temperature)
	}
	if req.JSON {
		instruction := jsonInstruction
		if len(req.Schema) > 0 {
			var schema map[string]any
			if err := json.Unmarshal(req.Schema, &schema); err != nil {
				return params, &llm.Error{Provider: p.name, Kind: llm.KindInvalidRequest, Message: "schema is not a JSON object"}
			}
			if p.structured {
				params.OutputConfig.Format = sdk.JSONOutputFormatParam{Schema: schema}
			} else {
				instruction += " It must validate against this JSON Schema: " + string(req.Schema)
			}
		}
		params.System = append(params.System, sdk.TextBlockParam{Text: instruction})
	}
	return params, nil
}

func (p *Provider) response(req llm.Request, msg *sdk.Message, reqID string, status int) (llm.Response, error) {
	// A message that fails (a refusal, an empty answer) was still generated and billed: the
	// error carries its usage.
	billed := usage(msg.Usage)
	fail := func(kind llm.ErrorKind, m string) (llm.Response, error) {
		return llm.Response{}, &llm.Error{Provider: p.name, Kind: kind, StatusCode: status, RequestID: reqID, Message: m, Usage: &billed}
	}
	if msg.StopReason == sdk.StopReasonRefusal {
		return fail(llm.KindContentFiltered, "Claude declined to answer (stop_reason refusal)")
	}
	var b strings.Builder
	for _, block := range msg.Content {
		if block.Type == "text" {
			b.WriteString(block.Text)
		}
	}
	text := b.String()
	if req.JSON {
		text = stripFences(text)
	}
	finish := finishReason(msg.StopReason)
	if text == "" && finish != "length" {
		return fail(llm.KindBadResponse, "empty answer (stop_reason "+string(msg.StopReason)+")")
	}
	model := msg.Model
	if model == "" {
		model = req.Model
	}
	return llm.Response{
		Text:              text,
		Usage:             billed,
		ProviderRequestID: reqID,
		Model:             model,
		FinishReason:      finish,
	}, nil
}

func finishReason(r sdk.StopReason) string {
	switch r {
	case sdk.StopReasonEndTurn, sdk.StopReasonStopSequence:
		return "stop"
	case sdk.StopReasonMaxTokens, sdk.StopReasonModelContextWindowExceeded:
		return "length"
	}
	return string(r)
}

// usage normalizes Anthropic's usage. input_tokens excludes both cache reads and cache writes.
// Cache reads are CachedInputTokens. Cache writes are cache_creation_input_tokens, broken down
// by lifetime in cache_creation (ephemeral_5m / ephemeral_1h input tokens), priced apart
// (1.25× and 2× the input price); writes the breakdown does not account for are 5-minute
// writes, the default lifetime. output_tokens includes thinking;
// output_tokens_details.thinking_tokens is split off as ReasoningTokens.
func usage(u sdk.Usage) llm.Usage {
	reasoning := min(max(u.OutputTokensDetails.ThinkingTokens, 0), u.OutputTokens)
	writes := max(u.CacheCreationInputTokens, 0)
	hour := min(max(u.CacheCreation.Ephemeral1hInputTokens, 0), writes)
	return llm.Usage{
		InputTokens:        u.InputTokens,
		CachedInputTokens:  u.CacheReadInputTokens,
		CacheWriteTokens:   writes - hour,
		CacheWrite1hTokens: hour,
		OutputTokens:       u.OutputTokens - reasoning,
		ReasoningTokens:    reasoning,
	}
}

// stripFences removes a Markdown code fence around a JSON answer, which Claude sometimes adds
// despite the instruction.
func stripFences(s string) string {
	t := strings.TrimSpace(s)
	if !strings.HasPrefix(t, "```") || !strings.HasSuffix(t, "```") || len(t) < 6 {
		return s
	}
	t = strings.TrimSuffix(strings.TrimPrefix(t, "```"), "```")
	if nl := strings.IndexByte(t, '\n'); nl >= 0 && !strings.ContainsAny(t[:nl], "{[") {
		t = t[nl+1:] // the info string, e.g. "json"
	}
	return strings.TrimSpace(t)
}

func (p *Provider) classify(ctx context.Context, err error, ex *wire.Exchange) *llm.Error {
	var apiErr *sdk.Error
	if !errors.As(err, &apiErr) || apiErr.StatusCode == 0 {
		return wire.Fallback(p.name, ctx, err, ex)
	}
	kind := wire.KindForStatus(apiErr.StatusCode)
	switch apiErr.Type() {
	case "overloaded_error":
		kind = llm.KindUnavailable
	case "rate_limit_error":
		kind = llm.KindRateLimited
	case "authentication_error", "permission_error":
		kind = llm.KindAuth
	}
	var header http.Header
	if apiErr.Response != nil {
		header = apiErr.Response.Header
	}
	var body struct {
		Error struct {
			Message string `json:"message"`
		} `json:"error"`
	}
	_ = json.Unmarshal([]byte(apiErr.RawJSON()), &body)
	return &llm.Error{
		Provider:   p.name,
		Kind:       kind,
		StatusCode: apiErr.StatusCode,
		RetryAfter: wire.RetryAfter(header, time.Now()),
		RequestID:  apiErr.RequestID,
		Message:    wire.StatusMessage(kind, body.Error.Message, p.apiKey),
		Err:        err,
	}
}
