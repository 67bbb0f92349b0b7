// Package httpapi is the HTTP transport every Helix function shares: a net/http ServeMux whose
// handlers get an authenticated principal, strict JSON decoding with a body limit, identifiers
// validated where they enter, and errors that are always
// {"error":{"code":"<stable_code>","message":"<text>"}}.
package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/helixhq/helix/shared/fault"
)

// statuses is the one table from fault codes to HTTP statuses. A code missing here is a bug that
// TestEveryCodeHasAStatus catches; at run time it answers 500.
var statuses = map[fault.Code]int{
	fault.EmptyBody:            http.StatusBadRequest,
	fault.MalformedJSON:        http.StatusBadRequest,
	fault.MalformedEvent:       http.StatusBadRequest,
	fault.UnknownField:         http.StatusBadRequest,
	fault.InvalidType:          http.StatusBadRequest,
	fault.MissingField:         http.StatusBadRequest,
	fault.InvalidField:         http.StatusBadRequest,
	fault.UnsupportedParameter: http.StatusBadRequest,
	fault.UnknownModel:         http.StatusBadRequest,
	fault.BodyTooLarge:         http.StatusRequestEntityTooLarge,

	fault.Unauthorized:      http.StatusUnauthorized,
	fault.Forbidden:         http.StatusForbidden,
	fault.OperationDisabled: http.StatusForbidden,
	fault.ModelNotAllowed:   http.StatusForbidden,
	// As an error (the OpenAI-compatible API); Helix's own endpoints answer 202 instead.
	fault.ApprovalRequired: http.StatusForbidden,

	fault.NotFound:               http.StatusNotFound,
	fault.UnknownOperation:       http.StatusNotFound,
	fault.ModelNotFound:          http.StatusNotFound,
	fault.ApprovalNotFound:       http.StatusNotFound,
	fault.RecommendationNotFound: http.StatusNotFound,
	fault.AlertRuleNotFound:      http.StatusNotFound,
	fault.UnknownToggle:          http.StatusNotFound,
	fault.MethodNotAllowed:       http.StatusMethodNotAllowed,

	fault.BudgetExceeded:           http.StatusPaymentRequired,
	fault.ApprovalNotUsable:        http.StatusConflict,
	fault.ApprovalMismatch:         http.StatusConflict,
	fault.ApprovalNotPending:       http.StatusConflict,
	fault.RecommendationNotPending: http.StatusConflict,
	fault.RecommendationStale:      http.StatusConflict,
	fault.ReplyInProgress:          http.StatusConflict,
	fault.AlertRuleStanding:        http.StatusConflict,
	fault.ContentFiltered:          http.StatusUnprocessableEntity,

	fault.BadModelOutput:       http.StatusBadGateway,
	fault.ProvidersUnavailable: http.StatusServiceUnavailable,
	fault.NoModelAvailable:     http.StatusServiceUnavailable,
	fault.Maintenance:          http.StatusServiceUnavailable,
	fault.Timeout:              http.StatusServiceUnavailable,

	fault.Internal: http.StatusInternalServerError,
}

// retryAfter is how long a client should wait before retrying a refusal that passes by itself
// (sent as Retry-After): maintenance windows are minutes, and a provider's open circuit breaker
// cools down in 30 s; a chat reply in production takes a few seconds.
var retryAfter = map[fault.Code]time.Duration{
	fault.Maintenance:          2 * time.Minute,
	fault.ProvidersUnavailable: 30 * time.Second,
	fault.Timeout:              time.Second,
	fault.ReplyInProgress:      2 * time.Second,
}

// StatusOf is the HTTP status of a code.
func StatusOf(c fault.Code) int {
	if s, ok := statuses[c]; ok {
		return s
	}
	return http.StatusInternalServerError
}

// Codes lists every code the table knows, for tests.
func Codes() []fault.Code {
	out := make([]fault.Code, 0, len(statuses))
	for c := range statuses {
		out = append(out, c)
	}
	return out
}

// Problem is what a client is told about a failed request.
type Problem struct {
	Status     int
	Code       fault.Code
	Message    string
	Details    any
	RetryAfter time.Duration
}

// ProblemOf turns any error a handler returned into what the client sees: a fault keeps its code
// and message; a deadline or cancellation is a timeout; anything else is Helix's own fault, a 500
// whose text is never shown (internal reports that case, for the log).
func ProblemOf(err error) (p Problem, internal bool) {
	f, ok := fault.From(err)
	switch {
	case ok:
	case errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled):
		f = fault.New(fault.Timeout, "the request ran out of time; retry")
	default:
		f, internal = fault.New(fault.Internal, "internal error"), true
	}
	return Problem{Status: StatusOf(f.Code), Code: f.Code, Message: f.Message, Details: f.Details,
		RetryAfter: retryAfter[f.Code]}, internal
}

type errorBody struct {
	Error errorPayload `json:"error"`
}

type errorPayload struct {
	Code      fault.Code `json:"code"`
	Message   string     `json:"message"`
	RequestID string     `json:"request_id,omitempty"`
	Details   any        `json:"details,omitempty"`
}

// WriteJSON writes v as a JSON response with the given status.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		// Only a programming error (an unmarshalable type) gets here.
		status = http.StatusInternalServerError
		b, _ = json.Marshal(errorBody{Error: errorPayload{Code: fault.Internal, Message: "response encoding failed"}})
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

// SetRetryAfter sends p's Retry-After, if it has one; error formats call it before writing.
func SetRetryAfter(w http.ResponseWriter, p Problem) {
	if p.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int(p.RetryAfter.Round(time.Second)/time.Second)))
	}
}

// writeError is Helix's own error format.
func writeError(w http.ResponseWriter, requestID string, p Problem) {
	SetRetryAfter(w, p)
	WriteJSON(w, p.Status, errorBody{Error: errorPayload{
		Code: p.Code, Message: p.Message, RequestID: requestID, Details: p.Details,
	}})
}
