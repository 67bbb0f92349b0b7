// Package httpapi is the HTTP transport every Helix function shares: a net/http ServeMux whose
// handlers get an authenticated principal, strict JSON decoding with a body limit, and errors that
// are always {"error":{"code":"<stable_code>","message":"<text>"}}.
package httpapi

import (
	"encoding/json"
	"fmt"
	"net/http"
)

// Error is an error with the status and stable code a client sees.
type Error struct {
	Status  int
	Code    string
	Message string
	// Details, when set, is sent as error.details (e.g. the remaining budget).
	Details any
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

// Errorf builds an *Error.
func Errorf(status int, code, format string, args ...any) *Error {
	return &Error{Status: status, Code: code, Message: fmt.Sprintf(format, args...)}
}

// Stable error codes shared by every function; feature packages add their own.
const (
	CodeUnauthorized     = "unauthorized"
	CodeForbidden        = "forbidden"
	CodeNotFound         = "not_found"
	CodeMethodNotAllowed = "method_not_allowed"
	CodeBodyTooLarge     = "body_too_large"
	CodeEmptyBody        = "empty_body"
	CodeMalformedJSON    = "malformed_json"
	CodeUnknownField     = "unknown_field"
	CodeInvalidType      = "invalid_type"
	CodeInvalidField     = "invalid_field"
	CodeMissingField     = "missing_field"
	CodeInternal         = "internal_error"
)

type errorBody struct {
	Error errorPayload `json:"error"`
}

type errorPayload struct {
	Code      string `json:"code"`
	Message   string `json:"message"`
	RequestID string `json:"request_id,omitempty"`
	Details   any    `json:"details,omitempty"`
}

// WriteJSON writes v as a JSON response with the given status.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		// Only a programming error (an unmarshalable type) gets here.
		status = http.StatusInternalServerError
		b = []byte(`{"error":{"code":"internal_error","message":"response encoding failed"}}`)
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

func writeError(w http.ResponseWriter, requestID string, e *Error) {
	WriteJSON(w, e.Status, errorBody{Error: errorPayload{
		Code: e.Code, Message: e.Message, RequestID: requestID, Details: e.Details,
	}})
}
