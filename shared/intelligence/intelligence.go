// Package intelligence is Helix's operation catalogue for apps: nine operations (compose an
// email, prioritize tasks, find anomalies, ...), each with a typed input, a prompt, and a typed
// JSON result that must validate against a JSON Schema. A model answer that does not validate
// gets one repair retry (the model sees its answer and the validation error); a second invalid
// answer is reported as bad model output rather than passed on.
package intelligence

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/helixhq/helix/shared/execute"
	"github.com/helixhq/helix/shared/fault"
	"github.com/helixhq/helix/shared/ident"
	"github.com/helixhq/helix/shared/llm"
	"github.com/helixhq/helix/shared/money"
	"github.com/helixhq/helix/shared/structured"
)

// Executor runs one model call (the execution pipeline).
type Executor interface {
	Execute(ctx context.Context, c execute.Call) (execute.Result, error)
}

// Input is what every operation input implements.
type Input interface {
	// Validate checks the decoded input and fills defaults; errors are *FieldError.
	Validate() error
	// approvalID returns the envelope's approval id field.
	approvalID() *string
}

// Envelope holds the fields every intelligence request may carry besides its own.
type Envelope struct {
	// ApprovalID re-sends a held request once an admin approved it.
	ApprovalID string `json:"approval_id,omitempty"`
}

func (e *Envelope) approvalID() *string { return &e.ApprovalID }

// CheckEnvelope validates the envelope fields of a decoded input (the approval id, which is
// looked up in Postgres), as Validate does the operation's own.
func CheckEnvelope(in Input) error {
	if id := *in.approvalID(); id != "" {
		if err := ident.Check(id); err != nil {
			return invalid("approval_id", "%v", err)
		}
	}
	return nil
}

// FieldError is an invalid input field (a 400 for the client).
type FieldError struct {
	Field   string
	Missing bool
	Message string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Message }

// Fault is a 400: missing_field or invalid_field.
func (e *FieldError) Fault() *fault.Error {
	code := fault.InvalidField
	if e.Missing {
		code = fault.MissingField
	}
	return fault.New(code, e.Error())
}

func missing(field string) error {
	return &FieldError{Field: field, Missing: true, Message: "is required"}
}

func invalid(field, format string, args ...any) error {
	return &FieldError{Field: field, Message: fmt.Sprintf(format, args...)}
}

// BadOutputError means the model's answer did not validate, even after the repair retry. The
// calls were made and charged; Cost says how much.
type BadOutputError struct {
	OperationID string
	Reason      string
	Cost        money.Nano
	RequestID   string
	// Err is what stopped the repair attempt, if it did not run to an answer.
	Err error
}

func (e *BadOutputError) Unwrap() error { return e.Err }

// Fault says the calls were charged, and how much, though their answer is unusable.
func (e *BadOutputError) Fault() *fault.Error {
	return &fault.Error{Code: fault.BadModelOutput,
		Message: "the model's answer did not match the result schema, even after a repair attempt",
		Details: map[string]any{"reason": e.Reason, "cost_usd": e.Cost}}
}

func (e *BadOutputError) Error() string {
	return fmt.Sprintf("%s: the model's answer did not match the result schema: %s", e.OperationID, e.Reason)
}

// Outcome is a validated result and what it took.
type Outcome struct {
	Result       any // the typed result
	OperationID  string
	Model        string
	Cost         money.Nano // of every call made, the repair included
	RequestID    string
	Repaired     bool
	FallbackUsed bool
	Offline      bool
}

// spec defines one operation over its input type I and result type O.
type spec[I Input, O any] struct {
	operationID string
	path        string // under /intelligence
	newInput    func() I
	system      string
	prompt      func(in I) string
	// schema returns the result schema; it may depend on the input (e.g. an enum of the task
	// ids given), so the model cannot answer about things it was not asked about.
	schema func(in I) string
	// check rejects a schema-valid result that breaks a rule the schema cannot express; the
	// model then gets the repair attempt like for any invalid answer.
	check func(in I, out *O) error
	// after may clean up a validated result (drop what the schema cannot express).
	after func(in I, out *O)
}

// Operation is a spec with its types erased, for the HTTP layer.
type Operation interface {
	OperationID() string
	Path() string
	// NewInput returns an empty input to decode the request body into.
	NewInput() Input
	// Run executes the operation for a validated input.
	Run(ctx context.Context, ex Executor, in Input, base execute.Call) (Outcome, error)
}

func (s *spec[I, O]) OperationID() string { return s.operationID }
func (s *spec[I, O]) Path() string        { return s.path }
func (s *spec[I, O]) NewInput() Input     { return s.newInput() }

// Run prompts the model with the input and the result schema, validates the answer, and repairs
// it once if needed.
func (s *spec[I, O]) Run(ctx context.Context, ex Executor, input Input, base execute.Call) (Outcome, error) {
	in, ok := input.(I)
	if !ok {
		return Outcome{}, fmt.Errorf("%s: input of type %T", s.operationID, input)
	}
	schemaText := s.schema(in)
	schema, err := structured.Compile(schemaText)
	if err != nil {
		return Outcome{}, fmt.Errorf("%s: result schema: %w", s.operationID, err)
	}
	approvalID := *in.approvalID()
	*in.approvalID() = "" // the fingerprint is the request without the envelope
	fingerprint, err := json.Marshal(in)
	if err != nil {
		return Outcome{}, err
	}
	msgs := []llm.Message{
		{Role: llm.RoleSystem, Content: s.system + "\n\nAnswer with one JSON object and nothing else. It must validate against this JSON Schema:\n" + schemaText},
		{Role: llm.RoleUser, Content: s.prompt(in)},
	}
	call := base
	call.OperationID = s.operationID
	call.Messages = msgs
	call.JSON = true
	call.Schema = json.RawMessage(schemaText)
	call.ApprovalID = approvalID
	call.Fingerprint = fingerprint
	call.Summary = fmt.Sprintf("%s, %d bytes of input", s.operationID, len(fingerprint))

	res, err := ex.Execute(ctx, call)
	if err != nil {
		return Outcome{}, err
	}
	out := Outcome{OperationID: s.operationID, RequestID: res.RequestID, Model: res.Model.Key, Cost: res.Cost,
		FallbackUsed: res.FallbackUsed, Offline: res.Offline}
	result, verr := s.parse(in, schema, res.Text)
	if verr != nil {
		repair := call
		repair.RequestID = base.RequestID + "-repair"
		repair.ApprovalID = ""
		repair.Continuation = true
		repair.Messages = append(append([]llm.Message{}, msgs...),
			llm.Message{Role: llm.RoleAssistant, Content: res.Text},
			llm.Message{Role: llm.RoleUser, Content: "That answer is not valid: " + verr.Error() +
				"\nReply again with only the corrected JSON object."})
		res2, err := ex.Execute(ctx, repair)
		if err != nil {
			// The first, invalid answer was made and charged: the client must hear so, not
			// "nothing was charged", whatever stopped the repair.
			return Outcome{}, &BadOutputError{OperationID: s.operationID, Cost: out.Cost, RequestID: res.RequestID,
				Reason: verr.Error() + "; the repair attempt failed: " + err.Error(), Err: err}
		}
		out.Cost += res2.Cost
		out.Model, out.Repaired = res2.Model.Key, true
		out.FallbackUsed = out.FallbackUsed || res2.FallbackUsed
		out.Offline = out.Offline && res2.Offline
		if result, verr = s.parse(in, schema, res2.Text); verr != nil {
			return Outcome{}, &BadOutputError{OperationID: s.operationID, Reason: verr.Error(), Cost: out.Cost, RequestID: res.RequestID}
		}
	}
	out.Result = result
	return out, nil
}

// parse validates the model's text against the schema and decodes it into O.
func (s *spec[I, O]) parse(in I, schema *structured.Schema, text string) (*O, error) {
	var out O
	if err := schema.Decode(text, &out); err != nil {
		return nil, err
	}
	if s.check != nil {
		if err := s.check(in, &out); err != nil {
			return nil, err
		}
	}
	if s.after != nil {
		s.after(in, &out)
	}
	return &out, nil
}

// Operations returns every intelligence operation.
func Operations() []Operation {
	return []Operation{
		emailCompose(), emailClassify(), emailRespond(),
		calendarPrep(), calendarTime(),
		taskPrioritize(), taskBreakdown(),
		analyticsSummary(), analyticsAnomaly(),
	}
}
