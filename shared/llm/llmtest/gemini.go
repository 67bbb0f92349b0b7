package llmtest

import (
	"fmt"
	"net/http"
)

// Gemini API generateContent: POST /v1beta/models/{model}:generateContent with x-goog-api-key.
// promptTokenCount includes cachedContentTokenCount; candidatesTokenCount excludes
// thoughtsTokenCount. The answer's id is responseId in the body. Errors are google.rpc.Status
// objects; a 429 may carry a RetryInfo detail, and a wrong key is a 400 with an ErrorInfo whose
// reason is API_KEY_INVALID.

func geminiAnswer(w http.ResponseWriter, ex exchange) {
	r := ex.reply
	body := map[string]any{
		"usageMetadata": geminiUsage(r),
		"modelVersion":  orDefault(ex.model, "gemini-2.5-flash-lite"),
		"responseId":    orDefault(r.requestID, fmt.Sprintf("resp-mock-%d", ex.seq)),
	}
	if r.kind == kindFiltered {
		body["promptFeedback"] = map[string]any{
			"blockReason": "SAFETY",
			"safetyRatings": []any{
				map[string]any{"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "probability": "HIGH", "blocked": true},
			},
		}
	} else {
		parts := []any{}
		if r.text != "" {
			parts = append(parts, map[string]any{"text": r.text})
		}
		body["candidates"] = []any{map[string]any{
			"content":      map[string]any{"role": "model", "parts": parts},
			"finishReason": orDefault(r.finishReason, "STOP"),
			"index":        0,
		}}
	}
	writeJSON(w, http.StatusOK, nil, mustJSON(body))
}

func geminiUsage(r Reply) any {
	if r.rawUsage != nil {
		return r.rawUsage
	}
	u := r.usageOrDefault()
	prompt := u.InputTokens + u.CacheWriteTokens + u.CacheWrite1hTokens + u.CachedInputTokens
	m := map[string]any{
		"promptTokenCount":     prompt,
		"candidatesTokenCount": u.OutputTokens,
		"totalTokenCount":      prompt + u.OutputTokens + u.ReasoningTokens,
		"promptTokensDetails":  []any{map[string]any{"modality": "TEXT", "tokenCount": prompt}},
	}
	// Gemini leaves out zero counts.
	if u.CachedInputTokens != 0 {
		m["cachedContentTokenCount"] = u.CachedInputTokens
	}
	if u.ReasoningTokens != 0 {
		m["thoughtsTokenCount"] = u.ReasoningTokens
	}
	return m
}

// grpcStatus is the google.rpc.Code name Google APIs pair with an HTTP status.
func grpcStatus(status int) string {
	switch status {
	case http.StatusBadRequest:
		return "INVALID_ARGUMENT"
	case http.StatusUnauthorized:
		return "UNAUTHENTICATED"
	case http.StatusForbidden:
		return "PERMISSION_DENIED"
	case http.StatusNotFound:
		return "NOT_FOUND"
	case http.StatusTooManyRequests:
		return "RESOURCE_EXHAUSTED"
	case http.StatusServiceUnavailable:
		return "UNAVAILABLE"
	case http.StatusGatewayTimeout:
		return "DEADLINE_EXCEEDED"
	}
	if status >= 500 {
		return "INTERNAL"
	}
	return "FAILED_PRECONDITION"
}

func geminiError(w http.ResponseWriter, ex exchange) {
	r := ex.reply
	e := map[string]any{"code": r.status, "message": r.message, "status": grpcStatus(r.status)}
	if r.retryDelay != "" {
		e["details"] = []any{
			map[string]any{
				"@type":      "type.googleapis.com/google.rpc.QuotaFailure",
				"violations": []any{map[string]any{"quotaMetric": "generativelanguage.googleapis.com/generate_content_requests", "quotaId": "GenerateRequestsPerMinutePerProjectPerModel"}},
			},
			map[string]any{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": r.retryDelay},
		}
	}
	writeJSON(w, r.status, map[string]string{"Retry-After": r.retryAfter}, mustJSON(map[string]any{"error": e}))
}

func geminiInvalidKey(w http.ResponseWriter, _ exchange) {
	e := map[string]any{
		"code":    http.StatusBadRequest,
		"message": "API key not valid. Please pass a valid API key.",
		"status":  "INVALID_ARGUMENT",
		"details": []any{map[string]any{
			"@type":    "type.googleapis.com/google.rpc.ErrorInfo",
			"reason":   "API_KEY_INVALID",
			"domain":   "googleapis.com",
			"metadata": map[string]any{"service": "generativelanguage.googleapis.com"},
		}},
	}
	writeJSON(w, http.StatusBadRequest, nil, mustJSON(map[string]any{"error": e}))
}

// geminiStream renders streamGenerateContent?alt=sse events: each a whole GenerateContentResponse
// whose candidate holds one text chunk and whose usageMetadata counts the prompt so far; the last
// one has the finishReason and the whole usage (Gemini's usage is cumulative: the last report
// wins).
type geminiStream struct {
	ex         exchange
	model, id  string
	promptOnly map[string]any
}

func newGeminiStream(ex exchange) *geminiStream {
	g := &geminiStream{ex: ex, model: orDefault(ex.model, "gemini-2.5-flash-lite"),
		id: orDefault(ex.reply.requestID, fmt.Sprintf("resp-mock-%d", ex.seq))}
	if ex.reply.rawUsage == nil {
		u := ex.reply.usageOrDefault()
		prompt := u.InputTokens + u.CacheWriteTokens + u.CacheWrite1hTokens + u.CachedInputTokens
		g.promptOnly = map[string]any{"promptTokenCount": prompt, "totalTokenCount": prompt}
		if u.CachedInputTokens != 0 {
			g.promptOnly["cachedContentTokenCount"] = u.CachedInputTokens
		}
	}
	return g
}

func (g *geminiStream) header() map[string]string { return nil }

func (g *geminiStream) event(body map[string]any) sseEvent {
	body["modelVersion"], body["responseId"] = g.model, g.id
	return sseEvent{data: string(mustJSON(body))}
}

func (g *geminiStream) candidate(text string, finish string) []any {
	c := map[string]any{"content": map[string]any{"role": "model", "parts": []any{map[string]any{"text": text}}}, "index": 0}
	if finish != "" {
		c["finishReason"] = finish
	}
	return []any{c}
}

func (g *geminiStream) start() []sseEvent { return nil }

func (g *geminiStream) chunk(text string) []sseEvent {
	body := map[string]any{"candidates": g.candidate(text, "")}
	if g.promptOnly != nil {
		body["usageMetadata"] = g.promptOnly
	}
	return []sseEvent{g.event(body)}
}

func (g *geminiStream) end() []sseEvent {
	r := g.ex.reply
	body := map[string]any{"usageMetadata": geminiUsage(r)}
	if r.kind == kindFiltered {
		body["promptFeedback"] = map[string]any{"blockReason": "SAFETY", "safetyRatings": []any{
			map[string]any{"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "probability": "HIGH", "blocked": true}}}
	} else {
		body["candidates"] = g.candidate("", orDefault(r.finishReason, "STOP"))
	}
	return []sseEvent{g.event(body)}
}

// fail is a google.rpc.Status as a data event, as the API ends a stream that fails midway.
func (g *geminiStream) fail(status int, message string) []sseEvent {
	return []sseEvent{{data: string(mustJSON(map[string]any{"error": map[string]any{
		"code": status, "message": message, "status": grpcStatus(status)}}))}}
}

func (g *geminiStream) malformed() []sseEvent {
	return []sseEvent{{data: `{"candidates":[{"content":{"role":"model","parts":[{"text":"cut`}}
}
