package openaiapi

import (
	"encoding/json"
	"net/http"

	"github.com/helixhq/helix/shared/httpapi"
)

func badParam(name, code, format string, args ...any) *httpapi.Error {
	e := httpapi.Errorf(http.StatusBadRequest, code, format, args...)
	e.Details = param(name)
	return e
}

func unsupported(name string) *httpapi.Error {
	return badParam(name, "unsupported_parameter", "%s is not supported by Helix", name)
}

// validate checks the request before anything is routed or reserved.
func (r *ChatRequest) validate() error {
	if r.Model == "" {
		return badParam("model", httpapi.CodeMissingField, "model is required: \"auto\", \"helix/<operation_id>\" or a model key")
	}
	if len(r.Messages) == 0 {
		return badParam("messages", httpapi.CodeMissingField, "messages must hold at least one message")
	}
	for i, m := range r.Messages {
		switch m.Role {
		case "system", "developer", "user", "assistant":
		case "tool", "function":
			return badParam("messages", "unsupported_parameter", "messages[%d]: tool messages are not supported", i)
		default:
			return badParam("messages", httpapi.CodeInvalidField, "messages[%d].role must be system, developer, user or assistant", i)
		}
		if m.Content.NonText != "" {
			return badParam("messages", "unsupported_parameter", "messages[%d]: content parts of type %q are not supported; send text", i, m.Content.NonText)
		}
		if len(m.ToolCalls) > 0 || len(m.FunctionCall) > 0 {
			return badParam("messages", "unsupported_parameter", "messages[%d]: tool calls are not supported", i)
		}
	}
	for _, t := range []*int64{r.MaxTokens, r.MaxCompletionTokens} {
		if t != nil && *t < 1 {
			return badParam("max_tokens", httpapi.CodeInvalidField, "max_tokens must be at least 1")
		}
	}
	if t := r.Temperature; t != nil && (*t < 0 || *t > 2) {
		return badParam("temperature", httpapi.CodeInvalidField, "temperature must be between 0 and 2")
	}
	if f := r.ResponseFormat; f != nil {
		switch f.Type {
		case "text", "json_object":
		case "json_schema":
			if f.JSONSchema == nil || len(f.JSONSchema.Schema) == 0 {
				return badParam("response_format", httpapi.CodeMissingField, "response_format.json_schema.schema is required")
			}
			var obj map[string]json.RawMessage
			if json.Unmarshal(f.JSONSchema.Schema, &obj) != nil || obj == nil {
				return badParam("response_format", httpapi.CodeInvalidField, "response_format.json_schema.schema must be a JSON Schema object")
			}
		default:
			return badParam("response_format", httpapi.CodeInvalidField, "response_format.type must be text, json_object or json_schema")
		}
	}
	// Neutral values are what SDKs and frameworks send by default; anything else would be
	// silently ignored, so it is refused.
	switch {
	case r.Stream != nil && *r.Stream:
		return badParam("stream", "unsupported_parameter", "streaming is not supported; send stream: false")
	case r.N != nil && *r.N != 1:
		return unsupported("n")
	case r.TopP != nil && *r.TopP != 1:
		return unsupported("top_p")
	case r.PresencePenalty != nil && *r.PresencePenalty != 0:
		return unsupported("presence_penalty")
	case r.FrequencyPenalty != nil && *r.FrequencyPenalty != 0:
		return unsupported("frequency_penalty")
	case r.Logprobs != nil && *r.Logprobs:
		return unsupported("logprobs")
	}
	for _, f := range []struct {
		name string
		v    []byte
	}{
		{"stream_options", r.StreamOptions}, {"stop", r.Stop}, {"logit_bias", r.LogitBias},
		{"top_logprobs", r.TopLogprobs}, {"tools", r.Tools}, {"tool_choice", r.ToolChoice},
		{"parallel_tool_calls", r.ParallelToolCalls}, {"functions", r.Functions}, {"function_call", r.FunctionCall},
		{"reasoning_effort", r.ReasoningEffort}, {"modalities", r.Modalities}, {"audio", r.Audio},
		{"prediction", r.Prediction}, {"web_search_options", r.WebSearchOptions}, {"verbosity", r.Verbosity},
		{"chat_template_kwargs", r.ChatTemplateKwargs},
	} {
		if len(f.v) > 0 && string(f.v) != "null" {
			return unsupported(f.name)
		}
	}
	return nil
}
