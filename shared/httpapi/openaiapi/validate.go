package openaiapi

import (
	"encoding/json"

	"github.com/helixhq/helix/shared/fault"
	"github.com/helixhq/helix/shared/httpapi"
)

func badParam(name string, code fault.Code, format string, args ...any) *fault.Error {
	e := fault.Errorf(code, format, args...)
	e.Details = param(name)
	return e
}

func unsupported(name string) *fault.Error {
	return badParam(name, fault.UnsupportedParameter, "%s is not supported by Helix", name)
}

// validate checks the request before anything is routed or reserved.
func (r *ChatRequest) validate() error {
	if r.Model == "" {
		return badParam("model", fault.MissingField, "model is required: \"auto\", \"helix/<operation_id>\" or a model key")
	}
	if err := httpapi.CheckID("model", r.Model); err != nil {
		return badParam("model", fault.InvalidField, "%s", err.(*fault.Error).Message)
	}
	if len(r.Messages) == 0 {
		return badParam("messages", fault.MissingField, "messages must hold at least one message")
	}
	for i, m := range r.Messages {
		switch m.Role {
		case "system", "developer", "user", "assistant":
		case "tool", "function":
			return badParam("messages", fault.UnsupportedParameter, "messages[%d]: tool messages are not supported", i)
		default:
			return badParam("messages", fault.InvalidField, "messages[%d].role must be system, developer, user or assistant", i)
		}
		if m.Content.NonText != "" {
			return badParam("messages", fault.UnsupportedParameter, "messages[%d]: content parts of type %q are not supported; send text", i, m.Content.NonText)
		}
		if len(m.ToolCalls) > 0 || len(m.FunctionCall) > 0 {
			return badParam("messages", fault.UnsupportedParameter, "messages[%d]: tool calls are not supported", i)
		}
	}
	for _, t := range []*int64{r.MaxTokens, r.MaxCompletionTokens} {
		if t != nil && *t < 1 {
			return badParam("max_tokens", fault.InvalidField, "max_tokens must be at least 1")
		}
	}
	if t := r.Temperature; t != nil && (*t < 0 || *t > 2) {
		return badParam("temperature", fault.InvalidField, "temperature must be between 0 and 2")
	}
	if f := r.ResponseFormat; f != nil {
		switch f.Type {
		case "text", "json_object":
		case "json_schema":
			if f.JSONSchema == nil || len(f.JSONSchema.Schema) == 0 {
				return badParam("response_format", fault.MissingField, "response_format.json_schema.schema is required")
			}
			var obj map[string]json.RawMessage
			if json.Unmarshal(f.JSONSchema.Schema, &obj) != nil || obj == nil {
				return badParam("response_format", fault.InvalidField, "response_format.json_schema.schema must be a JSON Schema object")
			}
		default:
			return badParam("response_format", fault.InvalidField, "response_format.type must be text, json_object or json_schema")
		}
	}
	// Neutral values are what SDKs and frameworks send by default; anything else would be
	// silently ignored, so it is refused.
	switch {
	case r.StreamOptions != nil && (r.Stream == nil || !*r.Stream):
		return badParam("stream_options", fault.InvalidField, "stream_options is only allowed when stream is true")
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
		{"stop", r.Stop}, {"logit_bias", r.LogitBias},
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
