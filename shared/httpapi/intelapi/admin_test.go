package intelapi_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/helixhq/helix/shared/llm/llmtest"
)

// pendingView is the 202 answer of a held request.
type pendingView struct {
	Status           string          `json:"status"`
	ApprovalID       string          `json:"approval_id"`
	OperationID      string          `json:"operation_id"`
	Reason           string          `json:"reason"`
	EstimatedCostUSD json.RawMessage `json:"estimated_cost_usd"`
	ExpiresAt        string          `json:"expires_at"`
}

// approvalView is an approval as the admin API lists it.
type approvalView struct {
	ApprovalID    string `json:"approval_id"`
	UserID        string `json:"user_id"`
	OperationID   string `json:"operation_id"`
	Status        string `json:"status"`
	Reason        string `json:"reason"`
	Summary       string `json:"summary"`
	DecidedBy     string `json:"decided_by"`
	UsedRequestID string `json:"used_request_id"`
}

func (e *env) approvals(t *testing.T, status string) []approvalView {
	t.Helper()
	path := "/admin/approvals"
	if status != "" {
		path += "?status=" + status
	}
	r := e.do(t, http.MethodGet, path, e.Admin, "")
	r.WantStatus(t, http.StatusOK)
	var body struct {
		Approvals []approvalView `json:"approvals"`
	}
	r.Decode(t, &body)
	return body.Approvals
}

func findApproval(list []approvalView, id string) *approvalView {
	for i := range list {
		if list[i].ApprovalID == id {
			return &list[i]
		}
	}
	return nil
}

// hold sends body to an operation that requires approval and returns the pending answer.
func (e *env) hold(t *testing.T, path, tok, body string) pendingView {
	t.Helper()
	r := e.post(t, path, tok, body)
	r.WantStatus(t, http.StatusAccepted)
	var p pendingView
	r.Decode(t, &p)
	if p.Status != "pending_approval" || p.ApprovalID == "" || p.Reason == "" || p.ExpiresAt == "" || len(p.EstimatedCostUSD) == 0 {
		t.Fatalf("pending answer = %s", r.Body)
	}
	return p
}

func withApprovalID(body, id string) string {
	return `{"approval_id":"` + id + `",` + strings.TrimPrefix(strings.TrimSpace(body), "{")
}

// Approvals end to end over HTTP: an operation that requires approval is held (202), listed
// for the admin, approved, then runs exactly once for the user who sent it.
func TestApprovalFlow(t *testing.T) {
	e := newEnv(t)
	tc := caseFor(t, "task-breakdown")
	e.do(t, http.MethodPut, "/admin/routes/task-breakdown", e.Admin, `{"requires_approval":true}`).WantStatus(t, http.StatusOK)

	p := e.hold(t, tc.path, e.Alice, tc.body)
	if p.OperationID != "task-breakdown" {
		t.Errorf("pending operation %q", p.OperationID)
	}
	if c := e.RequestCounts(); c != [3]int{} {
		t.Fatalf("provider requests %v for a held operation", c)
	}
	if d := e.Today(t, "alice"); d.Reserved != 0 || d.Spent != 0 {
		t.Errorf("a held operation holds money: %+v", d)
	}

	a := findApproval(e.approvals(t, ""), p.ApprovalID)
	if a == nil || a.UserID != "alice" || a.OperationID != "task-breakdown" || a.Status != "pending" || a.Summary == "" {
		t.Fatalf("GET /admin/approvals: %+v, want alice's pending approval %s", a, p.ApprovalID)
	}

	// Not usable before it is approved.
	e.post(t, tc.path, e.Alice, withApprovalID(tc.body, p.ApprovalID)).wantError(t, http.StatusConflict, "approval_not_usable")

	r := e.do(t, http.MethodPost, "/admin/approvals/"+p.ApprovalID+"/approve", e.Admin, "")
	r.WantStatus(t, http.StatusOK)
	var decided approvalView
	r.Decode(t, &decided)
	if decided.Status != "approved" || decided.DecidedBy != "ops" {
		t.Errorf("approve = %s", r.Body)
	}
	if findApproval(e.approvals(t, ""), p.ApprovalID) != nil {
		t.Errorf("the approved approval is still listed as pending")
	}

	// Another user cannot use it, nor can alice for another request; neither attempt uses it up.
	e.post(t, tc.path, e.Bob, withApprovalID(tc.body, p.ApprovalID)).wantError(t, http.StatusNotFound, "approval_not_found")
	e.post(t, tc.path, e.Alice, withApprovalID(`{"task":"Something else"}`, p.ApprovalID)).wantError(t, http.StatusConflict, "approval_mismatch")
	e.post(t, "/email/compose", e.Alice, withApprovalID(`{"subject":"s","recipient_context":"r"}`, p.ApprovalID)).wantError(t, http.StatusConflict, "approval_mismatch")
	if c := e.RequestCounts(); c != [3]int{} {
		t.Fatalf("provider requests %v before the approved request ran", c)
	}

	// The approved request runs once; its repair call is a continuation, not held again.
	e.DeepSeek.Script(llmtest.OK("not yet JSON"), llmtest.OK(tc.answer))
	r = e.post(t, tc.path, e.Alice, withApprovalID(tc.body, p.ApprovalID))
	r.WantStatus(t, http.StatusOK)
	if f := r.fields(t); string(f["repaired"]) != "true" || string(f["operation_id"]) != `"task-breakdown"` {
		t.Errorf("approved run = %s", r.Body)
	}
	usedBy := r.Header.Get("X-Request-Id")
	if n := e.DeepSeek.Count(); n != 2 {
		t.Errorf("%d provider requests, want 2 (the call and its repair)", n)
	}

	// Used: not again, and the admin sees by which request.
	e.post(t, tc.path, e.Alice, withApprovalID(tc.body, p.ApprovalID)).wantError(t, http.StatusConflict, "approval_not_usable")
	if a := findApproval(e.approvals(t, "used"), p.ApprovalID); a == nil || a.UsedRequestID != usedBy {
		t.Errorf("used approvals: %+v, want %s used by %s", a, p.ApprovalID, usedBy)
	}
	e.do(t, http.MethodPost, "/admin/approvals/"+p.ApprovalID+"/approve", e.Admin, "").wantError(t, http.StatusConflict, "approval_not_pending")
	if n := e.DeepSeek.Count(); n != 2 {
		t.Errorf("%d provider requests after the refused re-sends, want still 2", n)
	}

	// Without an approval id the operation is held again.
	if p2 := e.hold(t, tc.path, e.Alice, tc.body); p2.ApprovalID == p.ApprovalID {
		t.Errorf("a new request reused approval %s", p.ApprovalID)
	}
}

func TestApprovalRejected(t *testing.T) {
	e := newEnv(t)
	tc := caseFor(t, "email-classify")
	e.do(t, http.MethodPut, "/admin/routes/email-classify", e.Admin, `{"requires_approval":true}`).WantStatus(t, http.StatusOK)
	p := e.hold(t, tc.path, e.Alice, tc.body)

	r := e.do(t, http.MethodPost, "/admin/approvals/"+p.ApprovalID+"/reject", e.Admin, "")
	r.WantStatus(t, http.StatusOK)
	var v approvalView
	r.Decode(t, &v)
	if v.Status != "rejected" {
		t.Errorf("reject = %s", r.Body)
	}
	e.post(t, tc.path, e.Alice, withApprovalID(tc.body, p.ApprovalID)).wantError(t, http.StatusConflict, "approval_not_usable")
	e.do(t, http.MethodPost, "/admin/approvals/"+p.ApprovalID+"/approve", e.Admin, "").wantError(t, http.StatusConflict, "approval_not_pending")
	if a := findApproval(e.approvals(t, "rejected"), p.ApprovalID); a == nil {
		t.Errorf("GET /admin/approvals?status=rejected does not list %s", p.ApprovalID)
	}
	if c := e.RequestCounts(); c != [3]int{} {
		t.Errorf("provider requests %v for a rejected operation", c)
	}

	for _, id := range []string{"00000000-0000-4000-8000-000000000000", "not-a-uuid"} {
		e.do(t, http.MethodPost, "/admin/approvals/"+id+"/approve", e.Admin, "").wantError(t, http.StatusNotFound, "approval_not_found")
		e.post(t, tc.path, e.Alice, withApprovalID(tc.body, id)).wantError(t, http.StatusNotFound, "approval_not_found")
	}
	e.do(t, http.MethodGet, "/admin/approvals?status=maybe", e.Admin, "").wantError(t, http.StatusBadRequest, "invalid_field")
}

func TestAdminEndpointsNeedAdmin(t *testing.T) {
	e := newEnv(t)
	for _, tc := range []struct{ method, path, body string }{
		{http.MethodGet, "/admin/approvals", ""},
		{http.MethodPost, "/admin/approvals/00000000-0000-4000-8000-000000000000/approve", ""},
		{http.MethodPost, "/admin/approvals/00000000-0000-4000-8000-000000000000/reject", ""},
		{http.MethodGet, "/admin/toggles", ""},
		{http.MethodPut, "/admin/toggles/DISABLE_DEEPSEEK", `{"enabled":true}`},
		{http.MethodPut, "/admin/routes/email-compose", `{"requires_approval":false}`},
	} {
		e.do(t, tc.method, tc.path, e.Alice, tc.body).wantError(t, http.StatusForbidden, "forbidden")
		e.do(t, tc.method, tc.path, "", tc.body).wantError(t, http.StatusUnauthorized, "unauthorized")
	}
	// Nothing changed.
	r := e.do(t, http.MethodGet, "/admin/toggles", e.Admin, "")
	r.WantStatus(t, http.StatusOK)
	if v := toggle(t, r, "DISABLE_DEEPSEEK"); v == nil || v.Enabled {
		t.Errorf("DISABLE_DEEPSEEK = %+v after a refused PUT", v)
	}
}

type toggleView struct {
	Key     string `json:"key"`
	Enabled bool   `json:"enabled"`
	Source  string `json:"source"`
}

func toggle(t *testing.T, r resp, key string) *toggleView {
	t.Helper()
	var body struct {
		Toggles []toggleView `json:"toggles"`
	}
	r.Decode(t, &body)
	for i := range body.Toggles {
		if body.Toggles[i].Key == key {
			return &body.Toggles[i]
		}
	}
	return nil
}

func (e *env) setToggle(t *testing.T, key string, on bool) {
	t.Helper()
	body := `{"enabled":false}`
	if on {
		body = `{"enabled":true}`
	}
	r := e.do(t, http.MethodPut, "/admin/toggles/"+key, e.Admin, body)
	r.WantStatus(t, http.StatusOK)
	var v toggleView
	r.Decode(t, &v)
	if v.Key != key || v.Enabled != on {
		t.Fatalf("PUT /admin/toggles/%s = %s", key, r.Body)
	}
}

// DISABLE_DEEPSEEK routes DeepSeek's operations to their fallback at once, and back when off.
func TestProviderKillSwitch(t *testing.T) {
	e := newEnv(t)
	tc := caseFor(t, "email-compose")
	e.setToggle(t, "DISABLE_DEEPSEEK", true)
	if v := toggle(t, e.do(t, http.MethodGet, "/admin/toggles", e.Admin, ""), "DISABLE_DEEPSEEK"); v == nil || !v.Enabled {
		t.Errorf("GET /admin/toggles: DISABLE_DEEPSEEK = %+v", v)
	}

	e.Gemini.Script(llmtest.OK(tc.answer))
	r := e.post(t, tc.path, e.Alice, tc.body)
	r.WantStatus(t, http.StatusOK)
	if f := r.fields(t); string(f["model"]) != `"gemini_flash"` || string(f["fallback_used"]) != "true" {
		t.Errorf("with DeepSeek disabled: model %s fallback %s", f["model"], f["fallback_used"])
	}
	if c := e.RequestCounts(); c != [3]int{0, 1, 0} {
		t.Errorf("provider requests %v: DeepSeek must not be called at all", c)
	}

	e.setToggle(t, "DISABLE_DEEPSEEK", false)
	e.DeepSeek.Script(llmtest.OK(tc.answer))
	r = e.post(t, tc.path, e.Alice, tc.body)
	r.WantStatus(t, http.StatusOK)
	if f := r.fields(t); string(f["model"]) != `"deepseek"` {
		t.Errorf("with DeepSeek enabled again: model %s", f["model"])
	}
}

// Maintenance mode: operations and writes get 503 maintenance (the /v1 API in OpenAI's error
// format); reads, the routing decision and the toggle endpoint keep working.
func TestMaintenanceMode(t *testing.T) {
	e := newEnv(t)
	tc := caseFor(t, "email-compose")
	e.setToggle(t, "ENABLE_MAINTENANCE_MODE", true)

	for _, c := range opCases {
		e.post(t, c.path, e.Alice, c.body).wantError(t, http.StatusServiceUnavailable, "maintenance")
	}
	e.do(t, http.MethodPut, "/admin/routes/email-compose", e.Admin, `{"requires_approval":true}`).wantError(t, http.StatusServiceUnavailable, "maintenance")

	r := e.do(t, http.MethodPost, "/v1/chat/completions", e.Alice, `{"model":"auto","messages":[{"role":"user","content":"hi"}]}`)
	if r.Status != http.StatusServiceUnavailable {
		t.Fatalf("/v1/chat/completions: %d %s", r.Status, r.Body)
	}
	var oai struct {
		Error struct {
			Message string  `json:"message"`
			Type    string  `json:"type"`
			Code    string  `json:"code"`
			Param   *string `json:"param"`
		} `json:"error"`
	}
	r.Decode(t, &oai)
	if oai.Error.Code != "maintenance" || oai.Error.Type != "api_error" || oai.Error.Message == "" || oai.Error.Param != nil {
		t.Errorf("/v1 maintenance error = %s", r.Body)
	}

	for _, path := range []string{"/v1/models", "/admin/toggles", "/admin/routes", "/admin/approvals"} {
		e.do(t, http.MethodGet, path, e.Admin, "").WantStatus(t, http.StatusOK)
	}
	e.do(t, http.MethodPost, "/ai-router/route", e.Alice, `{"operation_id":"email-compose"}`).WantStatus(t, http.StatusOK)
	if c := e.RequestCounts(); c != [3]int{} {
		t.Errorf("provider requests %v in maintenance", c)
	}

	e.setToggle(t, "ENABLE_MAINTENANCE_MODE", false)
	e.DeepSeek.Script(llmtest.OK(tc.answer))
	e.post(t, tc.path, e.Alice, tc.body).WantStatus(t, http.StatusOK)
}

func TestToggleErrors(t *testing.T) {
	e := newEnv(t)
	for _, tc := range []struct {
		key, body string
		status    int
		code      string
	}{
		{"DISABLE_EVERYTHING", `{"enabled":true}`, 404, "unknown_toggle"},
		{"DISABLE_OPENROUTER", `{"enabled":true}`, 404, "unknown_toggle"}, // no model uses that provider
		{"disable_deepseek", `{"enabled":true}`, 404, "unknown_toggle"},
		{"DISABLE_DEEPSEEK", `{}`, 400, "missing_field"},
		{"DISABLE_DEEPSEEK", `{"enabled":null}`, 400, "missing_field"},
		{"DISABLE_DEEPSEEK", `{"enabled":"yes"}`, 400, "invalid_type"},
		{"DISABLE_DEEPSEEK", `{"enabled":true,"until":"tomorrow"}`, 400, "unknown_field"},
		{"DISABLE_DEEPSEEK", ``, 400, "empty_body"},
	} {
		e.do(t, http.MethodPut, "/admin/toggles/"+tc.key, e.Admin, tc.body).wantError(t, tc.status, tc.code)
	}
	r := e.do(t, http.MethodGet, "/admin/toggles", e.Admin, "")
	r.WantStatus(t, http.StatusOK)
	if toggle(t, r, "DISABLE_EVERYTHING") != nil || toggle(t, r, "DISABLE_OPENROUTER") != nil {
		t.Errorf("a refused toggle was created: %s", r.Body)
	}
	if v := toggle(t, r, "DISABLE_DEEPSEEK"); v == nil || v.Enabled {
		t.Errorf("DISABLE_DEEPSEEK = %+v", v)
	}
}

// Concurrent re-sends of one approved request: exactly one runs.
func TestApprovalUsedOnceConcurrently(t *testing.T) {
	e := newEnv(t)
	tc := caseFor(t, "calendar-prep")
	e.do(t, http.MethodPut, "/admin/routes/calendar-prep", e.Admin, `{"requires_approval":true}`).WantStatus(t, http.StatusOK)
	p := e.hold(t, tc.path, e.Alice, tc.body)
	e.do(t, http.MethodPost, "/admin/approvals/"+p.ApprovalID+"/approve", e.Admin, "").WantStatus(t, http.StatusOK)
	e.DeepSeek.SetDefault(llmtest.OK(tc.answer))

	const n = 8
	statuses := make(chan int, n)
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := http.NewRequest(http.MethodPost, e.URL+"/intelligence"+tc.path, strings.NewReader(withApprovalID(tc.body, p.ApprovalID)))
			if err != nil {
				statuses <- 0
				return
			}
			r.Header.Set("Authorization", "Bearer "+e.Alice)
			res, err := http.DefaultClient.Do(r)
			if err != nil {
				statuses <- 0
				return
			}
			res.Body.Close()
			statuses <- res.StatusCode
		}()
	}
	wg.Wait()
	close(statuses)
	count := map[int]int{}
	for s := range statuses {
		count[s]++
	}
	if count[http.StatusOK] != 1 || count[http.StatusConflict] != n-1 {
		t.Errorf("statuses %v, want one 200 and %d 409", count, n-1)
	}
	if got := e.DeepSeek.Count(); got != 1 {
		t.Errorf("%d provider requests, want 1", got)
	}
}
