package openaiapi

import (
	"bytes"
	"errors"
	"testing"

	"github.com/helixhq/helix/shared/fault"
	"github.com/helixhq/helix/shared/httpapi"
)

// FuzzChatRequestDecode sends arbitrary bodies through what POST /v1/chat/completions does before
// anything is routed: strict decoding, then validate. Neither may panic, and every refusal is a
// 4xx *fault.Error (a client's fault, never a 500).
func FuzzChatRequestDecode(f *testing.F) {
	for _, s := range []string{
		`{"model":"auto","messages":[{"role":"user","content":"hi"}]}`,
		`{"model":"helix/email-compose","max_tokens":100,"temperature":0.2,"messages":[{"role":"system","content":"s"},{"role":"user","content":"u"}]}`,
		`{"model":"deepseek","messages":[{"role":"user","content":[{"type":"text","text":"a"},{"type":"image_url","image_url":{"url":"x"}}]}]}`,
		`{"model":"auto","response_format":{"type":"json_schema","json_schema":{"name":"x","schema":{"type":"object"}}},"messages":[{"role":"user","content":"j"}]}`,
		`{"model":"auto","stream":true,"n":2,"top_p":0.1,"tools":[],"stop":null,"messages":[{"role":"tool","content":null}]}`,
		`{"model":"auto","messages":[{"role":"assistant","content":null,"tool_calls":[{"id":"c"}]}],"max_completion_tokens":-1}`,
		`{"model":"auto","messages":[{"role":"user","content":{"text":"object"}}]}`,
		`{"model":"auto","messages":null,"metadata":{"a":1},"user":"u","seed":1,"store":true}`,
		`{"messages":[{"role":"user","content":"hi","name":"n","refusal":"r","reasoning_content":"c"}]}`,
		`{"model":"auto","messages":[{"role":"user","content":"hi"}],"temperature":1e400}`,
		`[]`, `null`, `"x"`, ``, `{}`, `{"model":1}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var req ChatRequest
		err := httpapi.DecodeJSONBytes(bytes.NewReader(body), &req)
		if err == nil {
			err = req.validate()
			if err == nil {
				// A valid request names a model and has messages whose text can be sent.
				if req.Model == "" || len(req.Messages) == 0 {
					t.Fatalf("valid request without model or messages: %s", body)
				}
				for _, m := range req.Messages {
					if m.Content.NonText != "" {
						t.Fatalf("valid request with a %q part: %s", m.Content.NonText, body)
					}
				}
				return
			}
		}
		var he *fault.Error
		if !errors.As(err, &he) || httpapi.StatusOf(he.Code) < 400 || httpapi.StatusOf(he.Code) > 499 || he.Code == "" {
			t.Fatalf("error %v (%T), want a 4xx *fault.Error\nbody %s", err, err, body)
		}
	})
}
