package openapi_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/helixhq/helix/shared/httpapi"
	"github.com/helixhq/helix/shared/httpapi/openapi"
	"github.com/helixhq/helix/shared/httpapi/openapi/openapitest"
)

// repoRoot is where events/ and README.md are, from this package's folder.
const repoRoot = "../../.."

// The document is OpenAPI 3.1 and valid against the specification's own schema.
func TestDocumentIsValidOpenAPI31(t *testing.T) {
	spec := openapitest.Load(t)
	if v := spec.Doc.GetVersion(); !regexp.MustCompile(`^3\.1\.\d+$`).MatchString(v) {
		t.Fatalf("openapi: %q, want 3.1.x", v)
	}
	for _, e := range spec.DocumentErrors() {
		t.Errorf("invalid document: %s", e)
	}
	if len(spec.Operations()) == 0 {
		t.Fatal("the document has no operations")
	}
}

// JSON is the YAML, converted: the same values, keys in the order written.
func TestJSONIsTheYAML(t *testing.T) {
	b, err := openapi.JSON()
	if err != nil {
		t.Fatal(err)
	}
	var fromJSON, fromYAML any
	if err := json.Unmarshal(b, &fromJSON); err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(openapi.YAML(), &fromYAML); err != nil {
		t.Fatal(err)
	}
	// Round-trip the YAML through JSON so that numbers compare as JSON numbers.
	yb, err := json.Marshal(fromYAML)
	if err != nil {
		t.Fatal(err)
	}
	var want any
	if err := json.Unmarshal(yb, &want); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(fromJSON, want) {
		t.Fatal("JSON() differs from openapi.yaml")
	}
	if !bytes.HasPrefix(b, []byte(`{"openapi":"3.1.`)) {
		t.Errorf("JSON() starts %q: keys are not in the order written", b[:min(len(b), 40)])
	}
}

func TestToJSONRefusesBrokenYAML(t *testing.T) {
	for name, src := range map[string]string{
		"syntax":    "a: [1, 2\n",
		"two docs":  "a: 1\n---\nb: 2\n",
		"alias":     "x: &a [1]\ny: *a\n",
		"merge key": "base: &b {x: 1}\nother:\n  <<: *b\n",
		"map key":   "? [1, 2]\n: x\n",
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := openapi.ToJSONForTest([]byte(src)); err == nil {
				t.Errorf("%q converted", src)
			}
		})
	}
	b, err := openapi.ToJSONForTest([]byte("z: 1\na: [true, null, 'x', 1.5]\n"))
	if err != nil || string(b) != `{"z":1,"a":[true,null,"x",1.5]}`+"\n" {
		t.Errorf("got %q, %v", b, err)
	}
}

// GET /openapi.json serves the document as JSON.
func TestHandler(t *testing.T) {
	rec := httptest.NewRecorder()
	openapi.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/openapi.json", nil))
	if rec.Code != http.StatusOK || rec.Header().Get("Content-Type") != "application/json" {
		t.Fatalf("%d %v", rec.Code, rec.Header())
	}
	var doc struct {
		OpenAPI string `json:"openapi"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &doc); err != nil || !strings.HasPrefix(doc.OpenAPI, "3.1.") {
		t.Fatalf("openapi %q, %v", doc.OpenAPI, err)
	}
	want, _ := openapi.JSON()
	if !bytes.Equal(rec.Body.Bytes(), want) {
		t.Error("the handler does not serve JSON()")
	}
}

// The ErrorCode enum is exactly the codes of httpapi's code → status table.
func TestErrorCodesAreHelixCodes(t *testing.T) {
	var doc struct {
		Components struct {
			Schemas struct {
				ErrorCode struct {
					Enum []string `yaml:"enum"`
				} `yaml:"ErrorCode"`
			} `yaml:"schemas"`
		} `yaml:"components"`
	}
	if err := yaml.Unmarshal(openapi.YAML(), &doc); err != nil {
		t.Fatal(err)
	}
	got := slices.Sorted(slices.Values(doc.Components.Schemas.ErrorCode.Enum))
	var want []string
	for _, c := range httpapi.Codes() {
		want = append(want, string(c))
	}
	sort.Strings(want)
	if !slices.Equal(got, want) {
		t.Errorf("ErrorCode enum:\n  %v\nhttpapi.Codes():\n  %v", got, want)
	}
}

// event is the part of an API Gateway v2 event that makes the HTTP request.
type event struct {
	RouteKey              string            `json:"routeKey"`
	RawPath               string            `json:"rawPath"`
	RawQueryString        string            `json:"rawQueryString"`
	QueryStringParameters map[string]string `json:"queryStringParameters"`
	Body                  string            `json:"body"`
	IsBase64Encoded       bool              `json:"isBase64Encoded"`
}

// Every sample HTTP event in events/ is a request the document accepts.
func TestSampleEventsMatchTheSpec(t *testing.T) {
	spec := openapitest.Load(t)
	files, err := filepath.Glob(filepath.Join(repoRoot, "events", "*", "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var e event
		if err := json.Unmarshal(raw, &e); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if e.RouteKey == "" {
			continue // the SQS batch, the schedules
		}
		n++
		t.Run(filepath.Base(filepath.Dir(f))+"/"+filepath.Base(f), func(t *testing.T) {
			if e.IsBase64Encoded {
				t.Fatal("base64 bodies are not handled here")
			}
			method, _, _ := strings.Cut(e.RouteKey, " ")
			req := httptest.NewRequest(method, "http://127.0.0.1:3000"+e.RawPath, nil)
			q := req.URL.Query()
			for k, v := range e.QueryStringParameters {
				q.Set(k, v)
			}
			req.URL.RawQuery = q.Encode()
			if e.RawQueryString != "" && e.RawQueryString != req.URL.RawQuery {
				// The two forms of the query must agree; validate the raw one.
				if parsed, err := url.ParseQuery(e.RawQueryString); err != nil || !reflect.DeepEqual(parsed, q) {
					t.Fatalf("rawQueryString %q disagrees with queryStringParameters %v", e.RawQueryString, e.QueryStringParameters)
				}
				req.URL.RawQuery = e.RawQueryString
			}
			setBody(req, e.Body)
			for _, msg := range spec.RequestErrors(req) {
				t.Errorf("%s %s: %s", method, e.RawPath, msg)
			}
		})
	}
	if n < 50 {
		t.Errorf("only %d HTTP events found", n)
	}
}

// setBody gives r a JSON body (none when body is empty) and the headers a client sends.
func setBody(r *http.Request, body string) {
	r.Header.Set("Authorization", "Bearer a.b.c")
	if body == "" {
		r.Body, r.ContentLength = http.NoBody, 0
		return
	}
	r.Header.Set("Content-Type", "application/json")
	r.Body, r.ContentLength = io.NopCloser(strings.NewReader(body)), int64(len(body))
}

// The validator refuses what the server refuses: a check that cannot fail proves nothing.
func TestSpecRefusesBadRequests(t *testing.T) {
	spec := openapitest.Load(t)
	for _, tc := range []struct {
		name, method, target, body string
	}{
		{"missing required field", "POST", "/ai-router/route", `{"estimated_tokens":100}`},
		{"unknown field", "POST", "/ai-router/route", `{"operation_id":"email-compose","estimatedTokens":1}`},
		{"wrong type", "POST", "/ai-router/route", `{"operation_id":"email-compose","estimated_tokens":"100"}`},
		{"out of range", "POST", "/ai-router/route", `{"operation_id":"email-compose","estimated_tokens":0}`},
		{"control character", "POST", "/ai-router/route", `{"operation_id":"a\u0001b"}`},
		{"no body", "PUT", "/admin/budgets/alice", ""},
		{"empty update", "PUT", "/admin/budgets/alice", `{}`},
		{"money as a string", "PUT", "/admin/budgets/alice", `{"daily_limit":"100"}`},
		{"limit too large", "GET", "/chat/sessions?limit=101", ""},
		{"not an integer", "GET", "/chat/sessions/3f8a2b1c-5d6e-4f70-8a9b-0c1d2e3f4a5b/messages?after=x", ""},
		{"wait too long", "GET", "/chat/sessions/3f8a2b1c-5d6e-4f70-8a9b-0c1d2e3f4a5b/messages?wait=21", ""},
		{"undeclared query parameter", "GET", "/me/usage?user_id=bob", ""},
		{"bad enum", "GET", "/admin/spend?group_by=week", ""},
		{"bad date", "GET", "/admin/spend?from=yesterday", ""},
		{"unknown path", "GET", "/ai-router/budgets", ""},
		{"unknown method", "DELETE", "/ai-router/budget", ""},
		{"too many tasks", "POST", "/intelligence/task/breakdown", `{"task":"x","max_steps":21}`},
		{"series too short", "POST", "/intelligence/analytics/anomaly", `{"series":[{"timestamp":"2026-03-01T00:00:00Z","value":1}]}`},
		{"timestamp not RFC 3339", "POST", "/intelligence/calendar/prep", `{"title":"x","start":"tomorrow"}`},
		{"both thresholds", "POST", "/admin/alerts", `{"name":"x","type":"daily_spend","threshold":1,"threshold_usd":1}`},
		{"no threshold", "POST", "/admin/alerts", `{"name":"x","type":"daily_spend"}`},
		{"unknown stream option", "POST", "/v1/chat/completions", `{"model":"auto","messages":[{"role":"user","content":"hi"}],"stream":true,"stream_options":{"x":1}}`},
		{"tool message", "POST", "/v1/chat/completions", `{"model":"auto","messages":[{"role":"tool","content":"hi"}]}`},
		{"tools", "POST", "/v1/chat/completions", `{"model":"auto","messages":[{"role":"user","content":"hi"}],"tools":[]}`},
		{"schema missing", "POST", "/v1/chat/completions", `{"model":"auto","messages":[{"role":"user","content":"hi"}],"response_format":{"type":"json_schema"}}`},
		{"fallback empty string", "PUT", "/admin/routes/email-compose", `{"fallback_model":""}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest(tc.method, "http://127.0.0.1:3000"+tc.target, nil)
			setBody(req, tc.body)
			if errs := spec.RequestErrors(req); len(errs) == 0 {
				t.Errorf("%s %s %s: accepted", tc.method, tc.target, tc.body)
			}
		})
	}
}

// Whatever YAML comes in, the conversion answers valid JSON or an error, never a panic.
func FuzzToJSON(f *testing.F) {
	f.Add([]byte("a: 1\nb: [x, {c: null}]\n"))
	f.Add([]byte("x: &a [1]\ny: *a\n"))
	f.Add([]byte("'k': !!binary aGk=\n"))
	f.Add(openapi.YAML()[:2000])
	f.Fuzz(func(t *testing.T, src []byte) {
		b, err := openapi.ToJSONForTest(src)
		if err == nil && !json.Valid(b) {
			t.Fatalf("invalid JSON from %q: %q", src, b)
		}
	})
}

// The validator refuses responses the document does not describe.
func TestSpecRefusesBadResponses(t *testing.T) {
	spec := openapitest.Load(t)
	budget := `{"user_id":"alice","date":"2026-11-22","daily_limit":50,"current_spend":0,"reserved":0,"remaining":50,"warning_threshold":25,"status":"ok","resets_at":"2026-11-23T00:00:00Z"}`
	for _, tc := range []struct {
		name, target string
		status       int
		body         string
		ok           bool
	}{
		{"the budget", "/ai-router/budget", 200, budget, true},
		{"a Helix error", "/ai-router/budget", 401, `{"error":{"code":"unauthorized","message":"no token","request_id":"x"}}`, true},
		{"an undeclared field", "/ai-router/budget", 200, strings.Replace(budget, `"status"`, `"extra":1,"status"`, 1), false},
		{"a missing field", "/ai-router/budget", 200, strings.Replace(budget, `"status":"ok",`, "", 1), false},
		{"money as a string", "/ai-router/budget", 200, strings.Replace(budget, `"reserved":0`, `"reserved":"0"`, 1), false},
		{"an unknown code", "/ai-router/budget", 401, `{"error":{"code":"nope","message":"x"}}`, false},
		{"an undeclared status", "/ai-router/budget", 418, `{}`, false},
		{"OpenAI's shape on Helix's route", "/ai-router/budget", 401, `{"error":{"message":"x","type":"authentication_error","param":null,"code":"unauthorized"}}`, false},
		{"Helix's shape on /v1", "/v1/models", 401, `{"error":{"code":"unauthorized","message":"no token"}}`, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest(http.MethodGet, "http://127.0.0.1:3000"+tc.target, nil)
			req.Header.Set("Authorization", "Bearer a.b.c")
			res := &http.Response{StatusCode: tc.status, Header: http.Header{"Content-Type": {"application/json"}},
				Body: io.NopCloser(strings.NewReader(tc.body)), Request: req}
			errs := spec.ResponseErrors(req, res)
			if tc.ok && len(errs) > 0 {
				t.Errorf("refused: %v", errs)
			}
			if !tc.ok && len(errs) == 0 {
				t.Error("accepted")
			}
		})
	}
}
