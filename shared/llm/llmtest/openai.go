package llmtest

import (
	"encoding/json"
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

// openaiStream renders chat.completion.chunk events. Every chunk repeats the id, created and
// model; when the request set stream_options.include_usage, every chunk carries "usage": null and
// a last chunk with empty choices carries the usage.
type openaiStream struct {
	ex           exchange
	id, model    string
	includeUsage bool
}

func newOpenAIStream(ex exchange) *openaiStream {
	var req struct {
		StreamOptions struct {
			IncludeUsage bool `json:"include_usage"`
		} `json:"stream_options"`
	}
	_ = json.Unmarshal(ex.body, &req)
	return &openaiStream{ex: ex, id: fmt.Sprintf("chatcmpl-mock-%d", ex.seq),
		model: orDefault(ex.model, "deepseek-chat"), includeUsage: req.StreamOptions.IncludeUsage}
}

func (o *openaiStream) header() map[string]string {
	return map[string]string{"x-request-id": requestID(o.ex.reply, o.ex.seq)}
}

func (o *openaiStream) event(choices []any, usage any) sseEvent {
	c := map[string]any{
		"id": o.id, "object": "chat.completion.chunk", "created": 1767225600, "model": o.model,
		"system_fingerprint": "fp_mock", "choices": choices,
	}
	if o.includeUsage {
		c["usage"] = usage
	}
	return sseEvent{data: string(mustJSON(c))}
}

func (o *openaiStream) choice(delta map[string]any, finish any) []any {
	return []any{map[string]any{"index": 0, "delta": delta, "logprobs": nil, "finish_reason": finish}}
}

func (o *openaiStream) start() []sseEvent {
	return []sseEvent{o.event(o.choice(map[string]any{"role": "assistant", "content": ""}, nil), nil)}
}

func (o *openaiStream) chunk(text string) []sseEvent {
	return []sseEvent{o.event(o.choice(map[string]any{"content": text}, nil), nil)}
}

func (o *openaiStream) end() []sseEvent {
	finish := "stop"
	if o.ex.reply.kind == kindFiltered {
		finish = "content_filter"
	}
	finish = orDefault(o.ex.reply.finishReason, finish)
	out := []sseEvent{o.event(o.choice(map[string]any{}, finish), nil)}
	if o.includeUsage {
		out = append(out, o.event([]any{}, openaiUsage(o.ex.reply)))
	}
	return append(out, sseEvent{data: "[DONE]"})
}

// fail is the error object OpenAI-style servers send as a data line when a stream fails after
// it started; no [DONE] follows.
func (o *openaiStream) fail(status int, message string) []sseEvent {
	typ, code := "server_error", any(nil)
	switch {
	case status == http.StatusTooManyRequests:
		typ, code = "requests", "rate_limit_exceeded"
	case status == http.StatusUnauthorized:
		typ, code = "invalid_request_error", "invalid_api_key"
	case status < 500:
		typ = "invalid_request_error"
	}
	return []sseEvent{{data: string(mustJSON(map[string]any{"error": map[string]any{"message": message, "type": typ, "param": nil, "code": code}}))}}
}

func (o *openaiStream) malformed() []sseEvent {
	return []sseEvent{{data: `{"id":"` + o.id + `","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"cut`}}
}
