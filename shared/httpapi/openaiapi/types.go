package openaiapi

import (
	"encoding/json"
	"errors"
	"strings"
)

// ChatRequest is OpenAI's chat completion request. Every parameter OpenAI defines is listed, so
// that requests the official SDKs build decode, while a misspelt one is rejected (unknown fields
// are errors) instead of being silently ignored. Parameters Helix cannot honour are rejected
// with unsupported_parameter unless they hold their neutral value.
type ChatRequest struct {
	Model               string          `json:"model"`
	Messages            []ChatMessage   `json:"messages"`
	MaxTokens           *int64          `json:"max_tokens,omitempty"`
	MaxCompletionTokens *int64          `json:"max_completion_tokens,omitempty"`
	Temperature         *float64        `json:"temperature,omitempty"`
	ResponseFormat      *ResponseFormat `json:"response_format,omitempty"`
	User                string          `json:"user,omitempty"`
	Seed                *int64          `json:"seed,omitempty"`
	Store               *bool           `json:"store,omitempty"`
	Metadata            map[string]any  `json:"metadata,omitempty"`
	SafetyIdentifier    string          `json:"safety_identifier,omitempty"`
	ServiceTier         string          `json:"service_tier,omitempty"`

	// Accepted only at their neutral values.
	Stream           *bool    `json:"stream,omitempty"`
	N                *int     `json:"n,omitempty"`
	TopP             *float64 `json:"top_p,omitempty"`
	PresencePenalty  *float64 `json:"presence_penalty,omitempty"`
	FrequencyPenalty *float64 `json:"frequency_penalty,omitempty"`
	Logprobs         *bool    `json:"logprobs,omitempty"`

	// StreamOptions is allowed only with stream: true.
	StreamOptions *StreamOptions `json:"stream_options,omitempty"`

	// Not supported at all.
	Stop               json.RawMessage `json:"stop,omitempty"`
	LogitBias          json.RawMessage `json:"logit_bias,omitempty"`
	TopLogprobs        json.RawMessage `json:"top_logprobs,omitempty"`
	Tools              json.RawMessage `json:"tools,omitempty"`
	ToolChoice         json.RawMessage `json:"tool_choice,omitempty"`
	ParallelToolCalls  json.RawMessage `json:"parallel_tool_calls,omitempty"`
	Functions          json.RawMessage `json:"functions,omitempty"`
	FunctionCall       json.RawMessage `json:"function_call,omitempty"`
	ReasoningEffort    json.RawMessage `json:"reasoning_effort,omitempty"`
	Modalities         json.RawMessage `json:"modalities,omitempty"`
	Audio              json.RawMessage `json:"audio,omitempty"`
	Prediction         json.RawMessage `json:"prediction,omitempty"`
	WebSearchOptions   json.RawMessage `json:"web_search_options,omitempty"`
	Verbosity          json.RawMessage `json:"verbosity,omitempty"`
	ChatTemplateKwargs json.RawMessage `json:"chat_template_kwargs,omitempty"`
}

// StreamOptions are a streamed request's options.
type StreamOptions struct {
	// IncludeUsage asks for a last chunk with the call's usage (and, Helix's addition, its cost).
	IncludeUsage bool `json:"include_usage"`
}

// ChatMessage is one message; Content is a string or an array of content parts.
type ChatMessage struct {
	Role             string          `json:"role"`
	Content          MessageContent  `json:"content"`
	Name             string          `json:"name,omitempty"`
	Refusal          string          `json:"refusal,omitempty"`
	ReasoningContent string          `json:"reasoning_content,omitempty"`
	ToolCalls        json.RawMessage `json:"tool_calls,omitempty"`
	ToolCallID       string          `json:"tool_call_id,omitempty"`
	FunctionCall     json.RawMessage `json:"function_call,omitempty"`
}

// MessageContent is a message's text, from a string or from text parts.
type MessageContent struct {
	Text string
	// NonText is the type of the first part Helix cannot forward (an image, audio), if any.
	NonText string
}

// UnmarshalJSON accepts "text", null, or [{"type":"text","text":"..."}, ...].
func (c *MessageContent) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		return nil
	}
	if len(b) > 0 && b[0] == '"' {
		return json.Unmarshal(b, &c.Text)
	}
	var parts []struct {
		Type string `json:"type"`
		Text string `json:"text"`
	}
	if err := json.Unmarshal(b, &parts); err != nil {
		return errors.New("message content must be a string or an array of content parts")
	}
	var sb strings.Builder
	for _, p := range parts {
		if p.Type != "text" {
			if c.NonText == "" {
				c.NonText = p.Type
			}
			continue
		}
		sb.WriteString(p.Text)
	}
	c.Text = sb.String()
	return nil
}

// MarshalJSON writes the text form (used for the approval fingerprint).
func (c MessageContent) MarshalJSON() ([]byte, error) { return json.Marshal(c.Text) }

// ResponseFormat asks for JSON output.
type ResponseFormat struct {
	Type       string      `json:"type"` // text, json_object, json_schema
	JSONSchema *JSONSchema `json:"json_schema,omitempty"`
}

// JSONSchema is response_format.json_schema.
type JSONSchema struct {
	Name        string          `json:"name"`
	Description string          `json:"description,omitempty"`
	Schema      json.RawMessage `json:"schema,omitempty"`
	Strict      *bool           `json:"strict,omitempty"`
}

// ChatResponse is OpenAI's chat completion object.
type ChatResponse struct {
	ID                string   `json:"id"`
	Object            string   `json:"object"`
	Created           int64    `json:"created"`
	Model             string   `json:"model"`
	Choices           []Choice `json:"choices"`
	Usage             Usage    `json:"usage"`
	SystemFingerprint *string  `json:"system_fingerprint"`
}

// Choice is one answer.
type Choice struct {
	Index        int             `json:"index"`
	Message      ResponseMessage `json:"message"`
	FinishReason string          `json:"finish_reason"`
	Logprobs     *struct{}       `json:"logprobs"`
}

// ResponseMessage is the assistant's message.
type ResponseMessage struct {
	Role    string  `json:"role"`
	Content string  `json:"content"`
	Refusal *string `json:"refusal"`
}

// Usage is OpenAI's usage object: prompt_tokens include cached ones, completion_tokens include
// reasoning ones.
type Usage struct {
	PromptTokens            int64         `json:"prompt_tokens"`
	CompletionTokens        int64         `json:"completion_tokens"`
	TotalTokens             int64         `json:"total_tokens"`
	PromptTokensDetails     PromptDetails `json:"prompt_tokens_details"`
	CompletionTokensDetails OutputDetails `json:"completion_tokens_details"`
}

// PromptDetails breaks prompt tokens down.
type PromptDetails struct {
	CachedTokens int64 `json:"cached_tokens"`
}

// OutputDetails breaks completion tokens down.
type OutputDetails struct {
	ReasoningTokens int64 `json:"reasoning_tokens"`
}

// ModelList is GET /v1/models.
type ModelList struct {
	Object string  `json:"object"`
	Data   []Model `json:"data"`
}

// Model is one entry of the model list.
type Model struct {
	ID      string `json:"id"`
	Object  string `json:"object"`
	Created int64  `json:"created"`
	OwnedBy string `json:"owned_by"`
}

// ErrorBody is OpenAI's error object.
type ErrorBody struct {
	Error ErrorDetail `json:"error"`
}

// ErrorDetail describes an error the way OpenAI SDKs expect.
type ErrorDetail struct {
	Message string  `json:"message"`
	Type    string  `json:"type"`
	Param   *string `json:"param"`
	Code    string  `json:"code"`
	// ApprovalID is set with code approval_required: re-send the request with the header
	// X-Helix-Approval-Id once an admin approved it. SDKs expose the error object as the
	// exception's body.
	ApprovalID string `json:"approval_id,omitempty"`
	// Details is Helix's detail of the error, when it has one (the budget left, ...).
	Details any `json:"details,omitempty"`
}
