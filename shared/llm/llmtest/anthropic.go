package llmtest

import (
	"fmt"
	"net/http"
)

// Anthropic Messages: POST /v1/messages with x-api-key and anthropic-version headers. The
// request id is the request-id header (error bodies repeat it as request_id). input_tokens
// excludes cache reads and cache writes, which are reported apart; output_tokens includes
// thinking, broken out in output_tokens_details.thinking_tokens.

func anthropicAnswer(w http.ResponseWriter, ex exchange) {
	r := ex.reply
	stop := "end_turn"
	content := []any{}
	if r.text != "" {
		content = append(content, map[string]any{"type": "text", "text": r.text})
	}
	if r.kind == kindFiltered {
		stop = "refusal"
	}
	stop = orDefault(r.finishReason, stop)
	body := map[string]any{
		"id":            fmt.Sprintf("msg_mock_%d", ex.seq),
		"type":          "message",
		"role":          "assistant",
		"model":         orDefault(ex.model, "claude-haiku-4-5"),
		"content":       content,
		"stop_reason":   stop,
		"stop_sequence": nil,
		"usage":         anthropicUsage(r),
	}
	writeJSON(w, http.StatusOK, map[string]string{"request-id": requestID(r, ex.seq)}, mustJSON(body))
}

func anthropicUsage(r Reply) any {
	if r.rawUsage != nil {
		return r.rawUsage
	}
	u := r.usageOrDefault()
	return map[string]any{
		"input_tokens":                u.InputTokens,
		"cache_creation_input_tokens": u.CacheWriteTokens + u.CacheWrite1hTokens,
		"cache_creation": map[string]any{
			"ephemeral_5m_input_tokens": u.CacheWriteTokens,
			"ephemeral_1h_input_tokens": u.CacheWrite1hTokens,
		},
		"cache_read_input_tokens": u.CachedInputTokens,
		"output_tokens":           u.OutputTokens + u.ReasoningTokens,
		"output_tokens_details":   map[string]any{"thinking_tokens": u.ReasoningTokens},
		"service_tier":            "standard",
	}
}

func anthropicError(w http.ResponseWriter, ex exchange) {
	r := ex.reply
	typ := anthropicErrorType(r.status)
	id := requestID(r, ex.seq)
	body := map[string]any{
		"type":       "error",
		"error":      map[string]any{"type": typ, "message": r.message},
		"request_id": id,
	}
	writeJSON(w, r.status, map[string]string{"request-id": id, "retry-after": r.retryAfter}, mustJSON(body))
}

// anthropicStream renders the Messages streaming events. message_start carries the message with
// the input usage (and output_tokens 1, as the API reports it there); message_delta carries the
// stop_reason and the cumulative usage (its counts, without the cache_creation breakdown).
type anthropicStream struct {
	ex    exchange
	id    string
	model string
}

func newAnthropicStream(ex exchange) *anthropicStream {
	return &anthropicStream{ex: ex, id: fmt.Sprintf("msg_mock_%d", ex.seq), model: orDefault(ex.model, "claude-haiku-4-5")}
}

func (a *anthropicStream) header() map[string]string {
	return map[string]string{"request-id": requestID(a.ex.reply, a.ex.seq)}
}

func event(name string, v any) sseEvent { return sseEvent{name: name, data: string(mustJSON(v))} }

func (a *anthropicStream) start() []sseEvent {
	usage := anthropicUsage(a.ex.reply)
	if m, ok := usage.(map[string]any); ok {
		start := make(map[string]any, len(m))
		for k, v := range m {
			start[k] = v
		}
		start["output_tokens"] = 1
		start["output_tokens_details"] = map[string]any{"thinking_tokens": 0}
		usage = start
	}
	return []sseEvent{
		event("message_start", map[string]any{"type": "message_start", "message": map[string]any{
			"id": a.id, "type": "message", "role": "assistant", "model": a.model, "content": []any{},
			"stop_reason": nil, "stop_sequence": nil, "usage": usage}}),
		event("content_block_start", map[string]any{"type": "content_block_start", "index": 0,
			"content_block": map[string]any{"type": "text", "text": ""}}),
		event("ping", map[string]any{"type": "ping"}),
	}
}

func (a *anthropicStream) chunk(text string) []sseEvent {
	return []sseEvent{event("content_block_delta", map[string]any{"type": "content_block_delta", "index": 0,
		"delta": map[string]any{"type": "text_delta", "text": text}})}
}

func (a *anthropicStream) end() []sseEvent {
	r := a.ex.reply
	stop := "end_turn"
	if r.kind == kindFiltered {
		stop = "refusal"
	}
	var usage any
	if r.rawUsage != nil {
		usage = r.rawUsage
	} else {
		u := r.usageOrDefault()
		usage = map[string]any{
			"input_tokens":                u.InputTokens,
			"cache_creation_input_tokens": u.CacheWriteTokens + u.CacheWrite1hTokens,
			"cache_read_input_tokens":     u.CachedInputTokens,
			"output_tokens":               u.OutputTokens + u.ReasoningTokens,
			"output_tokens_details":       map[string]any{"thinking_tokens": u.ReasoningTokens},
		}
	}
	return []sseEvent{
		event("content_block_stop", map[string]any{"type": "content_block_stop", "index": 0}),
		event("message_delta", map[string]any{"type": "message_delta",
			"delta": map[string]any{"stop_reason": orDefault(r.finishReason, stop), "stop_sequence": nil}, "usage": usage}),
		event("message_stop", map[string]any{"type": "message_stop"}),
	}
}

// fail is an "event: error" with the error type the status maps to, as the API reports an
// overload or other failure after the stream started.
func (a *anthropicStream) fail(status int, message string) []sseEvent {
	return []sseEvent{event("error", map[string]any{"type": "error",
		"error": map[string]any{"type": anthropicErrorType(status), "message": message}})}
}

func (a *anthropicStream) malformed() []sseEvent {
	return []sseEvent{{name: "content_block_delta", data: `{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"cut`}}
}

// anthropicErrorType is the error type the API names for an HTTP status.
func anthropicErrorType(status int) string {
	switch status {
	case http.StatusUnauthorized:
		return "authentication_error"
	case http.StatusForbidden:
		return "permission_error"
	case http.StatusNotFound:
		return "not_found_error"
	case http.StatusRequestEntityTooLarge:
		return "request_too_large"
	case http.StatusTooManyRequests:
		return "rate_limit_error"
	case 529:
		return "overloaded_error"
	}
	if status >= 500 {
		return "api_error"
	}
	return "invalid_request_error"
}
