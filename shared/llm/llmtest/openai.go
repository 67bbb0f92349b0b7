package llmtest

import (
	"fmt"
	"net/http"
)

// OpenAI-style chat completions, as DeepSeek serves them: POST {base}/chat/completions with
// "Authorization: Bearer <key>". Usage carries both OpenAI's detail objects and DeepSeek's
// prompt_cache_hit_tokens / prompt_cache_miss_tokens; the request id is the x-request-id header.

func openaiAnswer(w http.ResponseWriter, ex exchange) {
	r := ex.reply
	finish := "stop"
	content := r.text
	if r.kind == kindFiltered {
		finish, content = "content_filter", ""
	}
	finish = orDefault(r.finishReason, finish)
	body := map[string]any{
		"id":                 fmt.Sprintf("chatcmpl-mock-%d", ex.seq),
		"object":             "chat.completion",
		"created":            1767225600,
		"model":              orDefault(ex.model, "deepseek-chat"),
		"system_fingerprint": "fp_mock",
		"choices": []any{map[string]any{
			"index":         0,
			"message":       map[string]any{"role": "assistant", "content": content},
			"logprobs":      nil,
			"finish_reason": finish,
		}},
		"usage": openaiUsage(r),
	}
	writeJSON(w, http.StatusOK, map[string]string{"x-request-id": requestID(r, ex.seq)}, mustJSON(body))
}

func openaiUsage(r Reply) any {
	if r.rawUsage != nil {
		return r.rawUsage
	}
	u := r.usageOrDefault()
	prompt := u.InputTokens + u.CacheWriteTokens + u.CacheWrite1hTokens + u.CachedInputTokens
	completion := u.OutputTokens + u.ReasoningTokens
	return map[string]any{
		"prompt_tokens":             prompt,
		"completion_tokens":         completion,
		"total_tokens":              prompt + completion,
		"prompt_tokens_details":     map[string]any{"cached_tokens": u.CachedInputTokens},
		"completion_tokens_details": map[string]any{"reasoning_tokens": u.ReasoningTokens},
		"prompt_cache_hit_tokens":   u.CachedInputTokens,
		"prompt_cache_miss_tokens":  prompt - u.CachedInputTokens,
	}
}

func openaiError(w http.ResponseWriter, ex exchange) {
	r := ex.reply
	typ, code := "invalid_request_error", any(nil)
	switch {
	case r.status == http.StatusUnauthorized:
		code = "invalid_api_key"
	case r.status == http.StatusTooManyRequests:
		typ, code = "requests", "rate_limit_exceeded"
	case r.status >= 500:
		typ = "server_error"
	}
	body := map[string]any{"error": map[string]any{"message": r.message, "type": typ, "param": nil, "code": code}}
	writeJSON(w, r.status, map[string]string{"x-request-id": requestID(r, ex.seq), "Retry-After": r.retryAfter}, mustJSON(body))
}

func requestID(r Reply, seq int) string {
	return orDefault(r.requestID, fmt.Sprintf("req_mock_%d", seq))
}
