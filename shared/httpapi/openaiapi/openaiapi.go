// Package openaiapi serves an OpenAI-compatible API (POST /v1/chat/completions, GET
// /v1/models) in the route function, so any OpenAI SDK pointed at Helix, with a Helix token as
// its API key, gets routing, budgets and cost tracking. The model is "auto" (the chat_message
// operation), "helix/<operation_id>", or a model key such as "deepseek" (that model only).
package openaiapi

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/helixhq/helix/shared/auth"
	"github.com/helixhq/helix/shared/catalog"
	"github.com/helixhq/helix/shared/execute"
	"github.com/helixhq/helix/shared/fault"
	"github.com/helixhq/helix/shared/httpapi"
	"github.com/helixhq/helix/shared/llm"
)

// Executor runs a call through the execution pipeline.
type Executor interface {
	Execute(ctx context.Context, c execute.Call) (execute.Result, error)
}

// Catalog is the cached catalog.
type Catalog interface {
	Get(ctx context.Context) (*catalog.Snapshot, error)
}

// ApprovalHeader re-sends a held request once an admin approved it.
const ApprovalHeader = "X-Helix-Approval-Id"

// CostHeader carries the exact cost of the call in USD.
const CostHeader = "X-Helix-Cost-Usd"

// defaultOperation serves model "auto" and bare model keys.
const defaultOperation = "chat_message"

// Register adds the OpenAI-compatible endpoints to s.
func Register(s *httpapi.Server, ex Executor, cat Catalog) {
	h := &handlers{ex: ex, cat: cat}
	format := httpapi.WithErrorFormat(writeError)
	s.Handle("POST /v1/chat/completions", h.chat, format)
	s.Handle("GET /v1/models", h.models, format)
	s.Handle("GET /v1/models/{id...}", h.model, format)
	s.UseErrorFormatFor("/v1/", writeError)
}

type handlers struct {
	ex  Executor
	cat Catalog
}

func (h *handlers) chat(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	var req ChatRequest
	if err := httpapi.DecodeJSON(r, &req); err != nil {
		return err
	}
	if err := req.validate(); err != nil {
		return err
	}
	snap, err := h.cat.Get(r.Context())
	if err != nil {
		return err
	}
	op, pinned, err := resolveModel(snap, req.Model, p.Admin)
	if err != nil {
		return err
	}
	approvalID := r.Header.Get(ApprovalHeader)
	if approvalID != "" {
		if err := httpapi.CheckID(ApprovalHeader, approvalID); err != nil {
			return err
		}
	}
	call := execute.Call{
		RequestID:   httpapi.RequestID(r.Context()),
		UserID:      p.UserID,
		OperationID: op,
		Model:       pinned,
		Temperature: req.Temperature,
		ApprovalID:  approvalID,
	}
	for _, m := range req.Messages {
		call.Messages = append(call.Messages, llm.Message{Role: role(m.Role), Content: m.Content.Text})
	}
	if req.MaxCompletionTokens != nil {
		call.MaxOutputTokens = *req.MaxCompletionTokens
	} else if req.MaxTokens != nil {
		call.MaxOutputTokens = *req.MaxTokens
	}
	if f := req.ResponseFormat; f != nil && f.Type != "text" {
		call.JSON = true
		if f.JSONSchema != nil {
			call.Schema = f.JSONSchema.Schema
		}
	}
	// The approval is bound to the request as sent, minus fields that do not change the answer.
	fp := req
	fp.User, fp.Metadata, fp.Store, fp.SafetyIdentifier = "", nil, nil, ""
	call.Fingerprint, _ = json.Marshal(fp)
	call.Summary = fmt.Sprintf("/v1/chat/completions model %q, %d messages, %d bytes", req.Model, len(req.Messages), len(call.Fingerprint))

	if req.Stream != nil && *req.Stream {
		return h.stream(r.Context(), w, call, req.StreamOptions)
	}
	res, err := h.ex.Execute(r.Context(), call)
	if err != nil {
		// A hold is an error here (approval_required), so the SDKs raise it rather than hand the
		// app a completion without choices.
		return err
	}
	w.Header().Set(CostHeader, res.Cost.String())
	w.Header().Set("X-Helix-Model", res.Model.Key)
	w.Header().Set("X-Helix-Operation-Id", res.Route.OperationID)
	httpapi.WriteJSON(w, http.StatusOK, ChatResponse{
		ID:      "chatcmpl-" + res.RequestID,
		Object:  "chat.completion",
		Created: time.Now().Unix(),
		Model:   res.Model.Key,
		Choices: []Choice{{
			Message:      ResponseMessage{Role: "assistant", Content: res.Text},
			FinishReason: finishReason(res.FinishReason),
		}},
		Usage: usageOf(res),
	})
	return nil
}

// usageOf is a call's usage as OpenAI counts it: prompt tokens include the cached ones,
// completion tokens the reasoning ones.
func usageOf(res execute.Result) Usage {
	u := res.Usage
	prompt, completion := u.InputTokens+u.CachedInputTokens, u.OutputTokens+u.ReasoningTokens
	return Usage{
		PromptTokens: prompt, CompletionTokens: completion, TotalTokens: prompt + completion,
		PromptTokensDetails:     PromptDetails{CachedTokens: u.CachedInputTokens},
		CompletionTokensDetails: OutputDetails{ReasoningTokens: u.ReasoningTokens},
	}
}

// resolveModel maps the request's model to an operation and, for a model key, the pinned model.
// Ordinary users may name only models open to direct access; admins any.
func resolveModel(snap *catalog.Snapshot, model string, admin bool) (op, pinned string, err error) {
	switch {
	case model == "auto":
		return defaultOperation, "", nil
	case strings.HasPrefix(model, "helix/"):
		op = strings.TrimPrefix(model, "helix/")
		if _, ok := snap.Route(op); ok {
			return op, "", nil
		}
	default:
		if m, ok := snap.Model(model); ok {
			if !m.DirectAccess && !admin {
				return "", "", fault.Errorf(fault.ModelNotAllowed, "the model %q cannot be named directly; use \"auto\" or \"helix/<operation_id>\", which fall back to it when needed", model)
			}
			return defaultOperation, model, nil
		}
	}
	// As OpenAI answers an unknown model: code model_not_found, no param.
	return "", "", fault.Errorf(fault.ModelNotFound, "the model %q does not exist; use \"auto\", \"helix/<operation_id>\" or a model from GET /v1/models", model)
}

func role(r string) llm.Role {
	switch r {
	case "system", "developer":
		return llm.RoleSystem
	case "assistant":
		return llm.RoleAssistant
	}
	return llm.RoleUser
}

func finishReason(r string) string {
	switch r {
	case "length", "content_filter":
		return r
	}
	return "stop"
}

func (h *handlers) models(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	snap, err := h.cat.Get(r.Context())
	if err != nil {
		return err
	}
	httpapi.WriteJSON(w, http.StatusOK, ModelList{Object: "list", Data: modelsFor(snap, p.Admin)})
	return nil
}

// model is GET /v1/models/{id} (the SDKs' models.retrieve): one entry of the caller's list.
func (h *handlers) model(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	id, err := httpapi.PathID(r, "id")
	if err != nil {
		return err
	}
	snap, err := h.cat.Get(r.Context())
	if err != nil {
		return err
	}
	for _, m := range modelsFor(snap, p.Admin) {
		if m.ID == id {
			httpapi.WriteJSON(w, http.StatusOK, m)
			return nil
		}
	}
	return fault.Errorf(fault.ModelNotFound, "the model %q does not exist, or you cannot use it; GET /v1/models lists yours", id)
}

// modelsFor lists what a caller may send as model: "auto", every enabled operation, and the
// usable models it may name directly.
func modelsFor(snap *catalog.Snapshot, admin bool) []Model {
	list := []Model{{ID: "auto", Object: "model", OwnedBy: "helix"}}
	for _, rt := range snap.Routes() {
		if rt.Enabled {
			list = append(list, Model{ID: "helix/" + rt.OperationID, Object: "model", Created: rt.UpdatedAt.Unix(), OwnedBy: "helix"})
		}
	}
	for _, m := range snap.Models() {
		if m.Usable() && (m.DirectAccess || admin) {
			list = append(list, Model{ID: m.Key, Object: "model", Created: m.UpdatedAt.Unix(), OwnedBy: m.Provider})
		}
	}
	return list
}

// writeError writes OpenAI's error object; Helix's stable code goes in error.code, and the
// status comes from the same table as every other Helix API (httpapi.StatusOf).
func writeError(w http.ResponseWriter, requestID string, p httpapi.Problem) {
	typ := errorType(p.Status)
	if requestID != "" {
		w.Header().Set("X-Request-Id", requestID)
	}
	body := ErrorBody{Error: ErrorDetail{Message: p.Message, Type: typ, Code: string(p.Code)}}
	switch d := p.Details.(type) {
	case param:
		name := string(d)
		body.Error.Param = &name
	case map[string]any:
		body.Error.Details = d
		if id, ok := d["approval_id"].(string); ok {
			body.Error.ApprovalID = id
		}
	case nil:
	default:
		body.Error.Details = d
	}
	httpapi.SetRetryAfter(w, p)
	httpapi.WriteJSON(w, p.Status, body)
}

// errorType is OpenAI's error.type for a status.
func errorType(status int) string {
	switch {
	case status == http.StatusUnauthorized:
		return "authentication_error"
	case status == http.StatusForbidden:
		return "permission_error"
	case status == http.StatusNotFound:
		return "not_found_error"
	case status == http.StatusPaymentRequired:
		return "insufficient_quota"
	case status == http.StatusTooManyRequests:
		return "rate_limit_error"
	case status >= 500:
		return "api_error"
	}
	return "invalid_request_error"
}

// param names the request parameter an error is about (OpenAI's error.param).
type param string
