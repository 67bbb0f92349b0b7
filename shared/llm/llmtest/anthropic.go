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
	typ := "invalid_request_error"
	switch r.status {
	case http.StatusUnauthorized:
		typ = "authentication_error"
	case http.StatusForbidden:
		typ = "permission_error"
	case http.StatusNotFound:
		typ = "not_found_error"
	case http.StatusRequestEntityTooLarge:
		typ = "request_too_large"
	case http.StatusTooManyRequests:
		typ = "rate_limit_error"
	case 529:
		typ = "overloaded_error"
	default:
		if r.status >= 500 {
			typ = "api_error"
		}
	}
	id := requestID(r, ex.seq)
	body := map[string]any{
		"type":       "error",
		"error":      map[string]any{"type": typ, "message": r.message},
		"request_id": id,
	}
	writeJSON(w, r.status, map[string]string{"request-id": id, "retry-after": r.retryAfter}, mustJSON(body))
}
