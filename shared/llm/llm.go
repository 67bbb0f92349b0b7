// Package llm is the one interface Helix calls models through. Each provider adapter (deepseek /
// any OpenAI-compatible server via go-openai, gemini via google.golang.org/genai, anthropic via
// anthropic-sdk-go, offline for local dev) turns a Request into the provider's wire format and the
// provider's answer, usage and failures back into these types.
//
// Adapters do not retry: the execution pipeline owns retries, backoff, failover and the deadline,
// so SDK-internal retries are switched off.
package llm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Role of a message author.
type Role string

// Roles.
const (
	RoleSystem    Role = "system"
	RoleUser      Role = "user"
	RoleAssistant Role = "assistant"
)

// Message is one turn of the conversation.
type Message struct {
	Role    Role
	Content string
}

// Request is one model call.
type Request struct {
	// Model is the provider's own model name (ai_models.api_model), e.g. "deepseek-chat".
	Model string
	// Messages in order; system messages may appear first.
	Messages []Message
	// MaxOutputTokens is always sent, so the worst case the budget reserved holds.
	MaxOutputTokens int64
	Temperature     *float64
	// JSON asks for a JSON object as the answer. Schema, when set, is the JSON Schema the answer
	// must match; adapters pass it to providers that accept one and offline uses it to answer.
	JSON   bool
	Schema json.RawMessage
}

// Usage is what the provider reported, normalized across providers:
//   - InputTokens excludes cached input tokens (OpenAI-style prompt_tokens and Gemini's
//     promptTokenCount include them; Anthropic's input_tokens does not) and cache writes;
//   - CacheWriteTokens and CacheWrite1hTokens are input written to the provider's prompt cache
//     for 5 minutes and for an hour, which Anthropic reports apart (and bills at 1.25× and 2× the
//     input price); providers that bill cache writes as plain input report them in InputTokens;
//   - OutputTokens excludes reasoning tokens (OpenAI-style completion_tokens includes them;
//     Gemini reports thoughtsTokenCount apart), which are billed at the output price.
type Usage struct {
	InputTokens        int64
	CachedInputTokens  int64
	CacheWriteTokens   int64
	CacheWrite1hTokens int64
	OutputTokens       int64
	ReasoningTokens    int64
}

// Response is a successful call.
type Response struct {
	Text              string
	Usage             Usage
	ProviderRequestID string
	// Model is the model name the provider says answered.
	Model string
	// FinishReason is normalized: "stop", "length", "content_filter" or the provider's own value.
	FinishReason string
	// Offline is true when the offline model answered: the call cost nothing.
	Offline bool
}

// Provider calls one provider's API.
type Provider interface {
	// Name is the provider name as ai_models.provider spells it ("deepseek", "gemini", ...).
	Name() string
	Complete(ctx context.Context, req Request) (Response, error)
}

// Prober is a provider that can check its health without spending anything (it lists its
// models). The audit function probes every enabled provider each minute for the breakers.
type Prober interface {
	Probe(ctx context.Context) error
}

// ErrorKind classifies provider failures for the pipeline's retry and failover decisions.
type ErrorKind string

// Error kinds.
const (
	// KindRateLimited: 429; retry after RetryAfter if the deadline allows, else fail over.
	KindRateLimited ErrorKind = "rate_limited"
	// KindUnavailable: 5xx, connection refused or reset; retryable.
	KindUnavailable ErrorKind = "unavailable"
	// KindTimeout: the call ran out of time.
	KindTimeout ErrorKind = "timeout"
	// KindBadResponse: a body that could not be parsed or holds no answer; fail over.
	KindBadResponse ErrorKind = "bad_response"
	// KindContentFiltered: the provider refused or cut the answer for safety. Final: another
	// model is not asked to produce what one refused.
	KindContentFiltered ErrorKind = "content_filtered"
	// KindAuth: 401/403, a wrong or missing key; an operator problem, fail over.
	KindAuth ErrorKind = "auth"
	// KindInvalidRequest: any other 4xx (context too long, bad parameter); fail over, since
	// another model may accept it, but do not retry the same one.
	KindInvalidRequest ErrorKind = "invalid_request"
)

// Error is a failed provider call.
type Error struct {
	Provider   string
	Kind       ErrorKind
	StatusCode int           // HTTP status, 0 when there was no response
	RetryAfter time.Duration // from a 429's Retry-After or the provider's retry hint, 0 if none
	RequestID  string        // the provider's request id, when it sent one
	Message    string        // safe to log: never holds the API key or the prompt
	// Usage is what the provider reported although the call failed (a refusal or a content filter
	// that still bills, an answer cut off with usage): the call was billed, so it is charged.
	// nil when the provider reported none (an HTTP error, no answer at all).
	Usage *Usage
	Err   error
}

func (e *Error) Error() string {
	s := fmt.Sprintf("%s: %s", e.Provider, e.Kind)
	if e.StatusCode != 0 {
		s += fmt.Sprintf(" (HTTP %d)", e.StatusCode)
	}
	if e.Message != "" {
		s += ": " + e.Message
	}
	return s
}

func (e *Error) Unwrap() error { return e.Err }

// Retryable reports whether calling the same provider again may succeed.
func (e *Error) Retryable() bool {
	switch e.Kind {
	case KindRateLimited, KindUnavailable, KindTimeout, KindBadResponse:
		return true
	}
	return false
}

// Final reports whether no other model should be tried either.
func (e *Error) Final() bool { return e.Kind == KindContentFiltered }

// AsError returns err as an *Error; errors that are not (a bug in an adapter) count as
// KindUnavailable.
func AsError(provider string, err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return &Error{Provider: provider, Kind: KindTimeout, Message: "deadline exceeded", Err: err}
	}
	return &Error{Provider: provider, Kind: KindUnavailable, Message: err.Error(), Err: err}
}
