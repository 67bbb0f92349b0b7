// Package fault names every way a request can fail that a client may be told about: one stable
// code per way, spelled once, here, and an error type that carries it. Domain packages return
// these errors (or wrap them); each transport turns a code into its own status in one table
// (httpapi.StatusOf for HTTP and the OpenAI-compatible API). It imports nothing of Helix, so any
// package may use it.
package fault

import "fmt"

// Code is a stable, machine-readable error code: clients switch on it, so a code once published
// is never renamed.
type Code string

// The codes. Statuses are the HTTP ones httpapi.StatusOf gives them.
const (
	// The request itself (400, 413).
	EmptyBody            Code = "empty_body"
	MalformedJSON        Code = "malformed_json"
	MalformedEvent       Code = "malformed_event"
	UnknownField         Code = "unknown_field"
	InvalidType          Code = "invalid_type"
	MissingField         Code = "missing_field"
	InvalidField         Code = "invalid_field"
	UnsupportedParameter Code = "unsupported_parameter"
	BodyTooLarge         Code = "body_too_large"

	// Who is calling (401, 403).
	Unauthorized      Code = "unauthorized"
	Forbidden         Code = "forbidden"
	OperationDisabled Code = "operation_disabled"
	ModelNotAllowed   Code = "model_not_allowed"
	// ApprovalRequired: the operation was held until an admin approves it. Helix's own endpoints
	// answer it with 202 and the approval; the OpenAI-compatible API as an error SDKs raise.
	ApprovalRequired Code = "approval_required"

	// What the request names (404, 405).
	NotFound               Code = "not_found"
	MethodNotAllowed       Code = "method_not_allowed"
	UnknownOperation       Code = "unknown_operation"
	UnknownModel           Code = "unknown_model"
	ModelNotFound          Code = "model_not_found"
	ApprovalNotFound       Code = "approval_not_found"
	RecommendationNotFound Code = "recommendation_not_found"
	UnknownToggle          Code = "unknown_toggle"
	AlertRuleNotFound      Code = "alert_rule_not_found"

	// State that does not allow it (402, 409, 422).
	BudgetExceeded     Code = "budget_exceeded"
	ApprovalNotUsable  Code = "approval_not_usable"
	ApprovalMismatch   Code = "approval_mismatch"
	ApprovalNotPending Code = "approval_not_pending"
	// RecommendationNotPending: the optimizer's recommendation was already decided the other
	// way, or went stale; RecommendationStale: approving it found the route changed since.
	RecommendationNotPending Code = "recommendation_not_pending"
	RecommendationStale      Code = "recommendation_stale"
	// AlertRuleStanding: a standing alert rule can be changed or disabled, not deleted.
	AlertRuleStanding Code = "alert_rule_standing"
	// ReplyInProgress: a chat session's previous reply is still being produced.
	ReplyInProgress Code = "reply_in_progress"
	ContentFiltered Code = "content_filtered"

	// Upstream and availability (502, 503).
	BadModelOutput       Code = "bad_model_output"
	ProvidersUnavailable Code = "providers_unavailable"
	NoModelAvailable     Code = "no_model_available"
	Maintenance          Code = "maintenance"
	Timeout              Code = "timeout"

	// Helix's own fault (500): the only code that means a bug or an outage of Helix itself.
	Internal Code = "internal_error"
)

// Error is a failure with a stable code. Message is written for the client; Err, the cause, is
// for logs only and never shown. Two Errors match with errors.Is when their codes are equal, so a
// domain package can declare a sentinel (var ErrUnknownOperation = fault.New(...)) and still
// return a more specific message with the same code.
type Error struct {
	Code    Code
	Message string
	// Details, when set, is shown to the client beside the message (the remaining budget, the
	// parameter at fault, ...).
	Details any
	Err     error
}

// New returns an Error with a fixed message.
func New(code Code, message string) *Error { return &Error{Code: code, Message: message} }

// Errorf returns an Error whose message is formatted. %w is not special: wrap with Wrap.
func Errorf(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Wrap returns an Error with a client message and a cause kept for the logs.
func Wrap(code Code, cause error, message string) *Error {
	return &Error{Code: code, Message: message, Err: cause}
}

func (e *Error) Error() string {
	s := string(e.Code) + ": " + e.Message
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

func (e *Error) Unwrap() error { return e.Err }

// Is matches any *Error with the same code.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code
}

// Faulter is implemented by domain error types that carry more than a code (the budget's
// ExceededError with its amounts): Fault says what the client is told.
type Faulter interface {
	error
	Fault() *Error
}

// From returns the fault err is, or wraps: the outermost *Error or Faulter in its chain.
func From(err error) (*Error, bool) {
	for e := err; e != nil; {
		switch v := e.(type) {
		case *Error:
			return v, true
		case Faulter:
			return v.Fault(), true
		}
		switch u := e.(type) {
		case interface{ Unwrap() error }:
			e = u.Unwrap()
		case interface{ Unwrap() []error }:
			for _, inner := range u.Unwrap() {
				if f, ok := From(inner); ok {
					return f, true
				}
			}
			return nil, false
		default:
			return nil, false
		}
	}
	return nil, false
}

// CodeOf is the code of err's fault, or "" when it carries none (a Helix fault, for HTTP a 500).
func CodeOf(err error) Code {
	if f, ok := From(err); ok {
		return f.Code
	}
	return ""
}
