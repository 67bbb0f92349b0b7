package openaiapi_test

import (
	"context"
	"errors"
	"net/http"
	"testing"

	openai "github.com/sashabaranov/go-openai"

	"github.com/helixhq/helix/shared/llm/llmtest"
)

// The SDK's models.retrieve works for what the caller may use, and is OpenAI's 404 otherwise.
func TestSDKRetrieveModel(t *testing.T) {
	e := newEnv(t)
	user, _ := e.sdk(e.Alice)
	admin, _ := e.sdk(e.Admin)
	for _, tt := range []struct {
		client *openai.Client
		id     string
		owner  string // "" for a 404
	}{
		{user, "auto", "helix"},
		{user, "helix/email-compose", "helix"},
		{user, "deepseek", "deepseek"},
		{user, "claude", ""}, // the emergency model is not open to users
		{admin, "claude", "anthropic"},
		{user, "helix/email_analysis", ""}, // disabled operation
		{user, "gpt-4o", ""},
	} {
		m, err := tt.client.GetModel(context.Background(), tt.id)
		if tt.owner == "" {
			var apiErr *openai.APIError
			if !errors.As(err, &apiErr) || apiErr.HTTPStatusCode != http.StatusNotFound || apiErr.Code != "model_not_found" {
				t.Errorf("GetModel(%q) = %+v, %v; want a 404 model_not_found", tt.id, m, err)
			}
			continue
		}
		if err != nil || m.ID != tt.id || m.OwnedBy != tt.owner || m.Object != "model" {
			t.Errorf("GetModel(%q) = %+v, %v; want owned by %s", tt.id, m, err, tt.owner)
		}
	}
}

// Which models ordinary users may name directly is configurable per model: opening the
// emergency model lets a user pin it; closing DeepSeek stops them pinning it (admins still may).
func TestDirectAccessIsPerModel(t *testing.T) {
	e := newEnv(t)
	body := func(model string) string {
		return `{"model":"` + model + `","messages":[{"role":"user","content":"hi"}]}`
	}
	e.chat(t, e.Alice, body("claude")).wantOpenAIError(t, http.StatusForbidden, "model_not_allowed", "permission_error", "")
	if n := e.Claude.Count(); n != 0 {
		t.Fatalf("a refused request reached Claude (%d requests)", n)
	}
	e.do(t, http.MethodPut, "/admin/models/claude", e.Admin, `{"direct_access":true}`).WantStatus(t, http.StatusOK)
	e.Claude.Script(llmtest.OK("from claude"))
	e.chat(t, e.Alice, body("claude")).WantStatus(t, http.StatusOK)

	e.do(t, http.MethodPut, "/admin/models/deepseek", e.Admin, `{"direct_access":false}`).WantStatus(t, http.StatusOK)
	e.chat(t, e.Alice, body("deepseek")).wantOpenAIError(t, http.StatusForbidden, "model_not_allowed", "permission_error", "")
	e.DeepSeek.Script(llmtest.OK("for the admin"))
	e.chat(t, e.Admin, body("deepseek")).WantStatus(t, http.StatusOK)
	// "auto" still routes through DeepSeek: direct access is about naming a model, not using it.
	e.DeepSeek.Script(llmtest.OK("auto"))
	e.chat(t, e.Alice, body("auto")).WantStatus(t, http.StatusOK)
}
