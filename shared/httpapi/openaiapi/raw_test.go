package openaiapi_test

import (
	"encoding/json"
	"net/http"
	"reflect"
	"strings"
	"testing"

	"github.com/helixhq/helix/shared/llm/llmtest"
)

// sentMessage is a message as the OpenAI-style wire carries it to DeepSeek.
type sentMessage struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

// deepseekRequest is what the DeepSeek adapter sent.
type deepseekRequest struct {
	Model          string          `json:"model"`
	Messages       []sentMessage   `json:"messages"`
	MaxTokens      *int            `json:"max_tokens"`
	Temperature    *float64        `json:"temperature"`
	ResponseFormat json.RawMessage `json:"response_format"`
}

func lastDeepseek(t *testing.T, e *env) deepseekRequest {
	t.Helper()
	reqs := e.DeepSeek.Requests()
	if len(reqs) == 0 {
		t.Fatal("DeepSeek received no request")
	}
	var r deepseekRequest
	if err := json.Unmarshal(reqs[len(reqs)-1].Body, &r); err != nil {
		t.Fatalf("%s: %v", reqs[len(reqs)-1].Body, err)
	}
	return r
}

// Request parameters reach the provider in its own wire format.
func TestRequestMapping(t *testing.T) {
	e := newEnv(t)
	const chatCap = 2048 // chat_message's seeded max_output_tokens
	cases := []struct {
		name  string
		body  string
		check func(t *testing.T, r deepseekRequest)
	}{
		{"no max_tokens sends the route's cap", `{"model":"auto","messages":[{"role":"user","content":"hi"}]}`,
			func(t *testing.T, r deepseekRequest) {
				if r.MaxTokens == nil || *r.MaxTokens != chatCap {
					t.Errorf("max_tokens %v, want %d", r.MaxTokens, chatCap)
				}
				if r.Model != "deepseek-chat" || len(r.ResponseFormat) != 0 {
					t.Errorf("model %q response_format %s", r.Model, r.ResponseFormat)
				}
			}},
		{"max_tokens below the cap", `{"model":"auto","max_tokens":100,"messages":[{"role":"user","content":"hi"}]}`,
			func(t *testing.T, r deepseekRequest) {
				if r.MaxTokens == nil || *r.MaxTokens != 100 {
					t.Errorf("max_tokens %v, want 100", r.MaxTokens)
				}
			}},
		{"max_tokens above the cap", `{"model":"auto","max_tokens":100000,"messages":[{"role":"user","content":"hi"}]}`,
			func(t *testing.T, r deepseekRequest) {
				if r.MaxTokens == nil || *r.MaxTokens != chatCap {
					t.Errorf("max_tokens %v, want the cap %d", r.MaxTokens, chatCap)
				}
			}},
		{"max_completion_tokens wins", `{"model":"auto","max_tokens":300,"max_completion_tokens":50,"messages":[{"role":"user","content":"hi"}]}`,
			func(t *testing.T, r deepseekRequest) {
				if r.MaxTokens == nil || *r.MaxTokens != 50 {
					t.Errorf("max_tokens %v, want 50", r.MaxTokens)
				}
			}},
		{"operation's own cap", `{"model":"helix/email-classify","max_tokens":1000,"messages":[{"role":"user","content":"hi"}]}`,
			func(t *testing.T, r deepseekRequest) {
				if r.MaxTokens == nil || *r.MaxTokens != 256 {
					t.Errorf("max_tokens %v, want email-classify's cap 256", r.MaxTokens)
				}
			}},
		{"json_object", `{"model":"auto","response_format":{"type":"json_object"},"messages":[{"role":"user","content":"give me JSON"}]}`,
			func(t *testing.T, r deepseekRequest) {
				if string(r.ResponseFormat) != `{"type":"json_object"}` {
					t.Errorf("response_format %s, want json_object", r.ResponseFormat)
				}
			}},
		{"json_schema on DeepSeek is JSON mode", `{"model":"auto","response_format":{"type":"json_schema","json_schema":{"name":"x","schema":{"type":"object"}}},
			"messages":[{"role":"user","content":"hi"}]}`,
			func(t *testing.T, r deepseekRequest) {
				if string(r.ResponseFormat) != `{"type":"json_object"}` {
					t.Errorf("response_format %s, want json_object", r.ResponseFormat)
				}
			}},
		{"text format", `{"model":"auto","response_format":{"type":"text"},"messages":[{"role":"user","content":"hi"}]}`,
			func(t *testing.T, r deepseekRequest) {
				if len(r.ResponseFormat) != 0 {
					t.Errorf("response_format %s, want none", r.ResponseFormat)
				}
			}},
		{"temperature", `{"model":"auto","temperature":0.25,"messages":[{"role":"user","content":"hi"}]}`,
			func(t *testing.T, r deepseekRequest) {
				if r.Temperature == nil || *r.Temperature != 0.25 {
					t.Errorf("temperature %v, want 0.25", r.Temperature)
				}
			}},
		{"text parts", `{"model":"auto","messages":[{"role":"user","content":[{"type":"text","text":"Hello, "},{"type":"text","text":"world"}]}]}`,
			func(t *testing.T, r deepseekRequest) {
				if len(r.Messages) != 1 || r.Messages[0].Content != "Hello, world" {
					t.Errorf("messages %+v, want the parts' text", r.Messages)
				}
			}},
		{"roles", `{"model":"auto","messages":[{"role":"developer","content":"be brief"},{"role":"user","content":"hi"},
			{"role":"assistant","content":"hello"},{"role":"user","content":"again","name":"ann"}]}`,
			func(t *testing.T, r deepseekRequest) {
				want := []sentMessage{{"system", "be brief"}, {"user", "hi"}, {"assistant", "hello"}, {"user", "again"}}
				if !reflect.DeepEqual(r.Messages, want) {
					t.Errorf("messages %+v, want %+v", r.Messages, want)
				}
			}},
		{"neutral values of unsupported parameters", `{"model":"auto","messages":[{"role":"user","content":"hi"}],"stream":false,"n":1,"top_p":1,
			"presence_penalty":0,"frequency_penalty":0,"logprobs":false,"tools":null,"user":"u-1","seed":7,"store":false,"metadata":{"a":"b"}}`,
			func(t *testing.T, r deepseekRequest) {}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := e.DeepSeek.Count()
			r := e.chat(t, e.Alice, tc.body)
			r.WantStatus(t, http.StatusOK)
			if e.DeepSeek.Count() != before+1 {
				t.Fatalf("DeepSeek requests %d → %d", before, e.DeepSeek.Count())
			}
			tc.check(t, lastDeepseek(t, e))
		})
	}
}

// A json_schema response format reaches a provider that takes a schema (Gemini) as it was sent.
func TestJSONSchemaReachesGemini(t *testing.T) {
	e := newEnv(t)
	schema := `{"type":"object","properties":{"answer":{"type":"integer"}},"required":["answer"],"additionalProperties":false}`
	e.Gemini.Script(llmtest.OK(`{"answer":42}`))
	r := e.chat(t, e.Alice, `{"model":"gemini_flash","max_tokens":30,"response_format":{"type":"json_schema","json_schema":{"name":"a","strict":true,"schema":`+schema+`}},
		"messages":[{"role":"system","content":"Answer in JSON."},{"role":"user","content":"6 times 7?"}]}`)
	r.WantStatus(t, http.StatusOK)
	var res struct {
		Model   string `json:"model"`
		Choices []struct {
			Message struct{ Content string } `json:"message"`
		} `json:"choices"`
	}
	r.Decode(t, &res)
	if res.Model != "gemini_flash" || len(res.Choices) != 1 || res.Choices[0].Message.Content != `{"answer":42}` {
		t.Errorf("response = %s", r.Body)
	}
	reqs := e.Gemini.Requests()
	if len(reqs) != 1 {
		t.Fatalf("%d Gemini requests", len(reqs))
	}
	gc, _ := reqs[0].JSON()["generationConfig"].(map[string]any)
	var want any
	if err := json.Unmarshal([]byte(schema), &want); err != nil {
		t.Fatal(err)
	}
	if gc["responseMimeType"] != "application/json" || !reflect.DeepEqual(gc["responseJsonSchema"], want) || gc["maxOutputTokens"] != 30.0 {
		t.Errorf("generationConfig = %v, want JSON mode, the schema and 30 tokens", gc)
	}
}

// The whole response, field by field, as OpenAI's wire format has it.
func TestResponseShape(t *testing.T) {
	e := newEnv(t)
	e.DeepSeek.Script(llmtest.OK("Cut sho").WithFinishReason("length").WithUsage(llmtest.Usage{InputTokens: 7, OutputTokens: 3}))
	r := e.chat(t, e.Alice, `{"model":"auto","max_tokens":3,"messages":[{"role":"user","content":"Tell me a story"}]}`)
	r.WantStatus(t, http.StatusOK)
	var got map[string]any
	r.Decode(t, &got)
	id := r.Header.Get("X-Request-Id")
	delete(got, "created")
	want := map[string]any{
		"id": "chatcmpl-" + id, "object": "chat.completion", "model": "deepseek", "system_fingerprint": nil,
		"choices": []any{map[string]any{
			"index": 0.0, "finish_reason": "length", "logprobs": nil,
			"message": map[string]any{"role": "assistant", "content": "Cut sho", "refusal": nil},
		}},
		"usage": map[string]any{
			"prompt_tokens": 7.0, "completion_tokens": 3.0, "total_tokens": 10.0,
			"prompt_tokens_details":     map[string]any{"cached_tokens": 0.0},
			"completion_tokens_details": map[string]any{"reasoning_tokens": 0.0},
		},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("response =\n%s\nwant (without created)\n%v", r.Body, want)
	}
	// 7×280 + 3×420 = 1960 + 1260 nano-USD.
	if h := r.Header.Get("X-Helix-Cost-Usd"); h != "0.00000322" {
		t.Errorf("X-Helix-Cost-Usd = %q, want 0.00000322", h)
	}
}

// Requests the API cannot honour are refused in OpenAI's error format before anything is
// routed, reserved or called.
func TestRequestErrors(t *testing.T) {
	e := newEnv(t)
	const user = `[{"role":"user","content":"hi"}]`
	cases := []struct {
		name, body       string
		status           int
		code, typ, param string
	}{
		{"image part", `{"model":"auto","messages":[{"role":"user","content":[{"type":"text","text":"what is this?"},
			{"type":"image_url","image_url":{"url":"https://example.com/cat.png"}}]}]}`, 400, "unsupported_parameter", "invalid_request_error", "messages"},
		{"audio part", `{"model":"auto","messages":[{"role":"user","content":[{"type":"input_audio","input_audio":{"data":"AAAA","format":"wav"}}]}]}`,
			400, "unsupported_parameter", "invalid_request_error", "messages"},
		{"content of the wrong type", `{"model":"auto","messages":[{"role":"user","content":42}]}`, 400, "invalid_field", "invalid_request_error", ""},
		{"tool message", `{"model":"auto","messages":[{"role":"tool","content":"72F","tool_call_id":"c1"}]}`, 400, "unsupported_parameter", "invalid_request_error", "messages"},
		{"tool calls", `{"model":"auto","messages":[{"role":"assistant","content":null,"tool_calls":[{"id":"c1"}]}]}`, 400, "unsupported_parameter", "invalid_request_error", "messages"},
		{"unknown role", `{"model":"auto","messages":[{"role":"narrator","content":"hi"}]}`, 400, "invalid_field", "invalid_request_error", "messages"},
		{"no model", `{"messages":` + user + `}`, 400, "missing_field", "invalid_request_error", "model"},
		{"no messages", `{"model":"auto","messages":[]}`, 400, "missing_field", "invalid_request_error", "messages"},
		{"max_tokens 0", `{"model":"auto","max_tokens":0,"messages":` + user + `}`, 400, "invalid_field", "invalid_request_error", "max_tokens"},
		{"negative temperature", `{"model":"auto","temperature":-0.1,"messages":` + user + `}`, 400, "invalid_field", "invalid_request_error", "temperature"},
		{"unknown response format", `{"model":"auto","response_format":{"type":"xml"},"messages":` + user + `}`, 400, "invalid_field", "invalid_request_error", "response_format"},
		{"json_schema without schema", `{"model":"auto","response_format":{"type":"json_schema","json_schema":{"name":"x"}},"messages":` + user + `}`,
			400, "missing_field", "invalid_request_error", "response_format"},
		{"stream_options without stream", `{"model":"auto","stream_options":{"include_usage":true},"messages":` + user + `}`, 400, "invalid_field", "invalid_request_error", "stream_options"},
		{"unknown stream option", `{"model":"auto","stream":true,"stream_options":{"include_usage":true,"x":1},"messages":` + user + `}`, 400, "unknown_field", "invalid_request_error", ""},
		{"stop", `{"model":"auto","stop":["\n"],"messages":` + user + `}`, 400, "unsupported_parameter", "invalid_request_error", "stop"},
		{"top_p", `{"model":"auto","top_p":0.5,"messages":` + user + `}`, 400, "unsupported_parameter", "invalid_request_error", "top_p"},
		{"tools", `{"model":"auto","tools":[{"type":"function","function":{"name":"f"}}],"messages":` + user + `}`, 400, "unsupported_parameter", "invalid_request_error", "tools"},
		{"tool_choice", `{"model":"auto","tool_choice":"auto","messages":` + user + `}`, 400, "unsupported_parameter", "invalid_request_error", "tool_choice"},
		{"misspelt parameter", `{"model":"auto","max_token":5,"messages":` + user + `}`, 400, "unknown_field", "invalid_request_error", ""},
		{"malformed", `{"model":"auto",`, 400, "malformed_json", "invalid_request_error", ""},
		{"unknown model", `{"model":"gpt-5","messages":` + user + `}`, 404, "model_not_found", "not_found_error", ""},
		{"disabled operation", `{"model":"helix/email_analysis","messages":` + user + `}`, 403, "operation_disabled", "permission_error", ""},
		{"model without a provider", `{"model":"speech","messages":` + user + `}`, 503, "no_model_available", "api_error", ""},
		{"too large", `{"model":"auto","messages":[{"role":"user","content":"` + strings.Repeat("x", 70_000) + `"}]}`, 413, "body_too_large", "invalid_request_error", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e.chat(t, e.Alice, tc.body).wantOpenAIError(t, tc.status, tc.code, tc.typ, tc.param)
		})
	}
	e.chat(t, "", `{"model":"auto","messages":`+user+`}`).wantOpenAIError(t, 401, "unauthorized", "authentication_error", "")
	if c := e.RequestCounts(); c != [3]int{} {
		t.Errorf("provider requests %v for refused requests", c)
	}
	if d := e.Today(t, "alice"); d.Spent != 0 || d.Reserved != 0 {
		t.Errorf("refused requests moved money: %+v", d)
	}
}

// Approval over the OpenAI-compatible API: a hold is an OpenAI-shaped error (so the SDKs raise
// it instead of handing the app a completion without choices) that carries the approval id;
// re-sending while it is pending finds the same approval; the id travels back in
// X-Helix-Approval-Id; fields that do not change the answer (user, metadata) may differ on the
// re-send.
func TestApprovalHeader(t *testing.T) {
	e := newEnv(t)
	e.do(t, http.MethodPut, "/admin/routes/email-compose", e.Admin, `{"requires_approval":true}`).WantStatus(t, http.StatusOK)
	body := `{"model":"helix/email-compose","messages":[{"role":"user","content":"Draft a thank-you note"}]}`
	var p struct {
		ApprovalID, OperationID string
	}
	for i := range 3 {
		r := e.chat(t, e.Alice, body)
		r.wantOpenAIError(t, http.StatusForbidden, "approval_required", "permission_error", "")
		var held struct {
			Error struct {
				ApprovalID string `json:"approval_id"`
				Details    struct {
					OperationID string `json:"operation_id"`
				} `json:"details"`
			} `json:"error"`
		}
		r.Decode(t, &held)
		if held.Error.ApprovalID == "" || held.Error.Details.OperationID != "email-compose" {
			t.Fatalf("send %d: held = %s", i, r.Body)
		}
		if i > 0 && held.Error.ApprovalID != p.ApprovalID {
			t.Fatalf("send %d made approval %s, the first made %s: a re-send must find the pending one", i, held.Error.ApprovalID, p.ApprovalID)
		}
		p.ApprovalID = held.Error.ApprovalID
	}
	var pending int
	if err := e.Pool.QueryRow(t.Context(), `SELECT count(*) FROM approvals WHERE status = 'pending'`).Scan(&pending); err != nil || pending != 1 {
		t.Fatalf("%d pending approvals (%v), want 1", pending, err)
	}
	e.do(t, http.MethodPost, "/admin/approvals/"+p.ApprovalID+"/approve", e.Admin, "").WantStatus(t, http.StatusOK)

	// Another message is another request.
	other := strings.Replace(body, "thank-you", "sorry", 1)
	e.chat(t, e.Alice, other, "X-Helix-Approval-Id: "+p.ApprovalID).wantOpenAIError(t, 409, "approval_mismatch", "invalid_request_error", "")
	e.chat(t, e.Bob, body, "X-Helix-Approval-Id: "+p.ApprovalID).wantOpenAIError(t, 404, "approval_not_found", "not_found_error", "")

	e.DeepSeek.Script(llmtest.OK("Thank you!"))
	resent := strings.Replace(body, `"messages"`, `"user":"end-user-7","metadata":{"trace":"x"},"messages"`, 1)
	r := e.chat(t, e.Alice, resent, "X-Helix-Approval-Id: "+p.ApprovalID)
	r.WantStatus(t, http.StatusOK)
	if !strings.Contains(string(r.Body), "Thank you!") {
		t.Errorf("approved run = %s", r.Body)
	}
	e.chat(t, e.Alice, body, "X-Helix-Approval-Id: "+p.ApprovalID).wantOpenAIError(t, 409, "approval_not_usable", "invalid_request_error", "")
	if n := e.DeepSeek.Count(); n != 1 {
		t.Errorf("%d provider requests, want exactly 1", n)
	}
}

// response_format.json_schema.schema must be a JSON Schema object. Anything else is the client's
// mistake and must be a 400, not forwarded to providers (Gemini takes it as is) or turned into a
// 503 when an adapter refuses it (Anthropic).
func TestJSONSchemaMustBeAnObject(t *testing.T) {
	e := newEnv(t)
	var failures []string
	for _, model := range []string{"claude", "gemini_flash"} {
		for _, schema := range []string{`5`, `"object"`, `[]`, `null`} {
			r := e.chat(t, e.Alice, `{"model":"`+model+`","response_format":{"type":"json_schema","json_schema":{"name":"x","schema":`+schema+`}},
				"messages":[{"role":"user","content":"hi"}]}`)
			var b openAIError
			r.Decode(t, &b)
			if r.Status != http.StatusBadRequest || b.Error.Param == nil || *b.Error.Param != "response_format" {
				failures = append(failures, model+" schema "+schema+": "+http.StatusText(r.Status)+" "+b.Error.Code)
			}
		}
	}
	if len(failures) > 0 {
		t.Errorf("a json_schema.schema that is not an object passes validate (openaiapi/validate.go checks only "+
			"len(Schema) > 0): %s. Fix: require a JSON object there (400 invalid_field, param response_format); "+
			"the providers request counts were %v", strings.Join(failures, "; "), e.RequestCounts())
	}
}

// Paths and methods under /v1 that Helix does not serve should still answer in OpenAI's error
// format, which SDKs parse (error.type in particular).
func TestUnservedV1RoutesUseOpenAIErrors(t *testing.T) {
	e := newEnv(t)
	for _, tc := range []struct {
		method, path string
		status       int
	}{
		{http.MethodPost, "/v1/embeddings", http.StatusNotFound},
		{http.MethodGet, "/v1/chat/completions", http.StatusMethodNotAllowed},
	} {
		r := e.do(t, tc.method, tc.path, e.Alice, "")
		if r.Status != tc.status {
			t.Fatalf("%s %s: %d, want %d", tc.method, tc.path, r.Status, tc.status)
		}
		var b openAIError
		r.Decode(t, &b)
		if b.Error.Type == "" || b.Error.Message == "" {
			t.Errorf("%s %s answers Helix's error envelope, not OpenAI's (no error.type): %s; "+
				"httpapi.Server.ServeHTTP writes the mux's 404/405 without the route's ErrorFormat", tc.method, tc.path, r.Body)
		}
	}
}
