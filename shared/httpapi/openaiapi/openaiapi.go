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
	"github.com/helixhq/helix/shared/httpapi"
	"github.com/helixhq/helix/shared/httpapi/execapi"
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
	op, pinned, err := resolveModel(snap, req.Model)
	if err != nil {
		return err
	}
	call := execute.Call{
		RequestID:   httpapi.RequestID(r.Context()),
		UserID:      p.UserID,
		OperationID: op,
		Model:       pinned,
		Temperature: req.Temperature,
		ApprovalID:  r.Header.Get(ApprovalHeader),
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

	res, err := h.ex.Execute(r.Context(), call)
	if err != nil {
		if pending, ok := execapi.Pending(err); ok {
			httpapi.WriteJSON(w, http.StatusAccepted, pending)
			return nil
		}
		return execapi.ClientError(err)
	}
	u := res.Usage
	prompt, completion := u.InputTokens+u.CachedInputTokens, u.OutputTokens+u.ReasoningTokens
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
		Usage: Usage{
			PromptTokens: prompt, CompletionTokens: completion, TotalTokens: prompt + completion,
			PromptTokensDetails:     PromptDetails{CachedTokens: u.CachedInputTokens},
			CompletionTokensDetails: OutputDetails{ReasoningTokens: u.ReasoningTokens},
		},
	})
	return nil
}

// resolveModel maps the request's model to an operation and, for a model key, the pinned model.
func resolveModel(snap *catalog.Snapshot, model string) (op, pinned string, err error) {
	switch {
	case model == "auto":
		return defaultOperation, "", nil
	case strings.HasPrefix(model, "helix/"):
		op = strings.TrimPrefix(model, "helix/")
		if _, ok := snap.Route(op); ok {
			return op, "", nil
		}
	default:
		if _, ok := snap.Model(model); ok {
			return defaultOperation, model, nil
		}
	}
	return "", "", &httpapi.Error{Status: http.StatusNotFound, Code: "model_not_found",
		Message: fmt.Sprintf("the model %q does not exist; use \"auto\", \"helix/<operation_id>\" or a model from GET /v1/models", model)}
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

func (h *handlers) models(w http.ResponseWriter, r *http.Request, _ auth.Principal) error {
	snap, err := h.cat.Get(r.Context())
	if err != nil {
		return err
	}
	list := ModelList{Object: "list", Data: []Model{{ID: "auto", Object: "model", OwnedBy: "helix"}}}
	for _, rt := range snap.Routes() {
		if rt.Enabled {
			list.Data = append(list.Data, Model{ID: "helix/" + rt.OperationID, Object: "model",
				Created: rt.UpdatedAt.Unix(), OwnedBy: "helix"})
		}
	}
	for _, m := range snap.Models() {
		if m.Usable() {
			list.Data = append(list.Data, Model{ID: m.Key, Object: "model", Created: m.UpdatedAt.Unix(), OwnedBy: m.Provider})
		}
	}
	httpapi.WriteJSON(w, http.StatusOK, list)
	return nil
}

// writeError writes OpenAI's error object; Helix's stable code goes in error.code.
func writeError(w http.ResponseWriter, requestID string, e *httpapi.Error) {
	typ := "invalid_request_error"
	switch {
	case e.Status == http.StatusUnauthorized:
		typ = "authentication_error"
	case e.Status == http.StatusForbidden:
		typ = "permission_error"
	case e.Status == http.StatusNotFound:
		typ = "not_found_error"
	case e.Status == http.StatusPaymentRequired:
		typ = "insufficient_quota"
	case e.Status == http.StatusTooManyRequests:
		typ = "rate_limit_error"
	case e.Status >= 500:
		typ = "api_error"
	}
	msg := e.Message
	if requestID != "" {
		w.Header().Set("X-Request-Id", requestID)
	}
	body := ErrorBody{Error: ErrorDetail{Message: msg, Type: typ, Code: e.Code}}
	if f, ok := e.Details.(param); ok {
		name := string(f)
		body.Error.Param = &name
	}
	httpapi.WriteJSON(w, e.Status, body)
}

// param names the request parameter an error is about (OpenAI's error.param).
type param string
