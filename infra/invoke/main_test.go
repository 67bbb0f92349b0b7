package main

// These tests run the functions' real binaries through the Lambda runtime stand-in, as `make
// invoke` does, against fresh migrated databases (shared/pgtest).

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-lambda-go/events"

	"github.com/helixhq/helix/infra/lambdarun"
	"github.com/helixhq/helix/shared/pgtest"
)

var pg *pgtest.Server

func TestMain(m *testing.M) {
	os.Exit(pgtest.Main(m, func(s *pgtest.Server) { pg = s }))
}

const root = "../.."

// syncBuffer is a log both of a process's output pipes write to.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// kind is what an event is, by its shape.
func kind(payload []byte) string {
	var ev struct {
		Version     string `json:"version"`
		RouteKey    string `json:"routeKey"`
		Source      string `json:"source"`
		ResponseURL string `json:"ResponseURL"`
		Records     []struct {
			EventSource string `json:"eventSource"`
		} `json:"Records"`
	}
	_ = json.Unmarshal(payload, &ev)
	switch {
	case ev.Version == "2.0" && ev.RouteKey != "":
		return "http"
	case isFunctionURL(payload):
		return "function-url"
	case len(ev.Records) > 0 && ev.Records[0].EventSource == "aws:sqs":
		return "sqs"
	case ev.Source == "aws.events":
		return "scheduled"
	case ev.ResponseURL != "":
		return "custom-resource"
	}
	return "unknown"
}

// check says what is wrong with an answer to an event of the kind, or "".
func check(k string, a answer) string {
	if a.fnErr != nil {
		return "function error: " + a.fnErr.Error()
	}
	switch k {
	case "http":
		var r events.APIGatewayV2HTTPResponse
		if err := json.Unmarshal(a.response, &r); err != nil || r.StatusCode < 100 {
			return "not an API Gateway v2 response: " + string(a.response)
		}
		if r.StatusCode >= 500 {
			return "status " + strconv.Itoa(r.StatusCode) + ": " + r.Body
		}
	case "function-url":
		// The runtime got the prelude (status and headers), 8 zero bytes, then the body.
		prelude, body, ok := bytes.Cut(a.response, make([]byte, 8))
		var r struct {
			StatusCode int `json:"statusCode"`
		}
		if !ok || json.Unmarshal(prelude, &r) != nil || r.StatusCode < 100 {
			return "not a streamed answer (prelude, 8 zero bytes, body): " + string(a.response)
		}
		if r.StatusCode >= 500 {
			return "status " + strconv.Itoa(r.StatusCode) + ": " + string(body)
		}
	case "sqs":
		var r map[string]json.RawMessage
		if err := json.Unmarshal(a.response, &r); err != nil {
			return "not a batch response: " + string(a.response)
		}
		if _, ok := r["batchItemFailures"]; !ok {
			return "no batchItemFailures in " + string(a.response)
		}
	case "scheduled":
	case "custom-resource":
		if len(a.cfn) != 1 || a.cfn[0].Status != "SUCCESS" {
			return "CloudFormation got " + strings.TrimSpace(string(mustJSON(a.cfn))) + ", want one SUCCESS"
		}
	default:
		return "an event of no known kind"
	}
	return ""
}

func mustJSON(v any) []byte {
	raw, _ := json.Marshal(v)
	return raw
}

// TestEveryEvent pushes every sample event under events/ through its function's real binary:
// each function built once, one process serving all its events, one function after another.
func TestEveryEvent(t *testing.T) {
	fns, err := os.ReadDir(filepath.Join(root, "functions"))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	local, err := lambdarun.StartLocal()
	if err != nil {
		t.Fatal(err)
	}
	defer local.Close()
	db := pg.NewDatabase(t)
	tmp := t.TempDir()
	seen := 0
	for _, fn := range fns {
		if !fn.IsDir() {
			continue
		}
		seen++
		t.Run(fn.Name(), func(t *testing.T) {
			files, _ := filepath.Glob(filepath.Join(root, "events", fn.Name(), "*.json"))
			if len(files) == 0 {
				t.Fatalf("no sample events in events/%s", fn.Name())
			}
			// A streaming twin's events go to a process started as the twin (HELIX_LAMBDA_ENTRY).
			streamed, _ := filepath.Glob(filepath.Join(root, "events", fn.Name(), "function-url", "*.json"))
			if _, twin := lambdarun.StreamSettings(fn.Name()); twin != (len(streamed) > 0) {
				t.Errorf("events/%s/function-url has %d events; the function has a streaming twin: %v", fn.Name(), len(streamed), twin)
			}
			bin, err := build(ctx, root, fn.Name(), tmp)
			if err != nil {
				t.Fatal(err)
			}
			for _, batch := range []struct {
				files  []string
				stream bool
			}{{files, false}, {streamed, true}} {
				if len(batch.files) == 0 {
					continue
				}
				func() {
					var env []string
					if batch.stream {
						env = []string{"HELIX_LAMBDA_ENTRY=function_url"}
					}
					var logs syncBuffer
					p, err := start(ctx, bin, fn.Name(), batch.stream, db, local, env, &logs)
					if err != nil {
						t.Fatal(err)
					}
					defer p.Stop()
					if p.InitDuration() <= 0 {
						t.Errorf("init duration %v", p.InitDuration())
					}
					for _, f := range batch.files {
						payload, err := os.ReadFile(f)
						if err != nil {
							t.Fatal(err)
						}
						k := kind(payload)
						if batch.stream != (k == "function-url") {
							t.Errorf("%s: a %s event", f, k)
						}
						if payload, err = withDevToken(payload, local.Env(fn.Name(), db)); err != nil {
							t.Fatal(err)
						}
						a, err := invoke(ctx, p, local, fn.Name(), payload)
						if err != nil {
							t.Fatalf("%s: %v", filepath.Base(f), err)
						}
						if msg := check(k, a); msg != "" {
							t.Errorf("%s (%s event): %s", filepath.Base(f), k, msg)
						}
						// The OpenAI-compatible stream ends as the SDKs expect.
						if k == "function-url" && fn.Name() == "route" && !bytes.Contains(a.response, []byte("data: [DONE]\n\n")) {
							t.Errorf("%s: the stream has no data: [DONE]: %q", filepath.Base(f), a.response)
						}
					}
					if t.Failed() {
						t.Logf("the function's log:\n%s", logs.String())
					}
				}()
			}
		})
	}
	if seen < 7 {
		t.Errorf("%d functions in functions/, want at least the 7 of the template", seen)
	}
}

// The command end to end: flags, the database from DATABASE_URL, the migrations, the build, the
// answer on stdout and the exit status.
func TestRun(t *testing.T) {
	db := pg.NewDatabase(t)
	notScheduled := filepath.Join(t.TempDir(), "not-scheduled.json")
	if err := os.WriteFile(notScheduled, []byte(`{"source":"someone","detail-type":"x"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	// The caller's environment: the database, and an AWS profile the function must not see.
	environ := []string{"DATABASE_URL=" + db, "AWS_PROFILE=someone-real"}
	cases := []struct {
		name   string
		args   []string
		code   int
		stdout string // a substring
		stderr string
	}{
		{name: "no flags", args: nil, code: 2, stderr: "usage:"},
		{name: "bad env", args: []string{"-fn", "budget", "-event", "x.json", "-env", "NOEQUALS"}, code: 2, stderr: "KEY=VALUE"},
		{name: "missing event", args: []string{"-fn", "budget", "-event", "missing.json"}, code: 2, stderr: "missing.json"},
		{name: "unknown function", args: []string{"-fn", "nope", "-event", notScheduled}, code: 2, stderr: `no function "nope"`},
		{name: "budget", args: []string{"-fn", "budget", "-event", filepath.Join(root, "events/budget/get-budget.json"),
			"-env", "HELIX_DEFAULT_DAILY_LIMIT_USD=70"},
			code: 0, stdout: `"statusCode": 200`, stderr: "REPORT Duration:"},
		// A Function URL's event: the streaming twin's entry, a dev token in the event's
		// placeholder (no authorizer), the streamed answer on stdout.
		{name: "function url", args: []string{"-fn", "route", "-event", filepath.Join(root, "events/route/function-url/post-v1-chat-completions.json")},
			code: 0, stdout: "data: [DONE]", stderr: "REPORT Duration:"},
		{name: "function error", args: []string{"-fn", "optimize", "-event", notScheduled},
			code: 1, stdout: `"errorMessage": "optimize: not a scheduled event`, stderr: "returned an error"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(tc.args, environ, &stdout, &stderr)
			if code != tc.code || !strings.Contains(stdout.String(), tc.stdout) || !strings.Contains(stderr.String(), tc.stderr) {
				t.Errorf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tc.code, stdout.String(), stderr.String())
			}
			if tc.name == "budget" && !strings.Contains(stdout.String(), `\"daily_limit\":70`) {
				t.Errorf("-env did not reach the function: %s", stdout.String())
			}
		})
	}
}

func TestCallerEnv(t *testing.T) {
	got := callerEnv([]string{"HOME=/root", "AWS_PROFILE=prod", "AWS_ACCESS_KEY_ID=real", "HELIX_LOG_LEVEL=debug"})
	if strings.Join(got, " ") != "HOME=/root HELIX_LOG_LEVEL=debug" {
		t.Errorf("callerEnv = %q", got)
	}
}

func TestFailed(t *testing.T) {
	cases := []struct {
		a    answer
		want bool
	}{
		{answer{response: []byte(`{}`)}, false},
		{answer{fnErr: &lambdarun.ErrorBody{Message: "x"}}, true},
		{answer{cfn: []lambdarun.CFNResponse{{Status: "SUCCESS"}}}, false},
		{answer{cfn: []lambdarun.CFNResponse{{Status: "FAILED"}}}, true},
	}
	for i, tc := range cases {
		if got := tc.a.failed(); got != tc.want {
			t.Errorf("case %d: failed = %v, want %v", i, got, tc.want)
		}
	}
}

func TestKind(t *testing.T) {
	cases := map[string]string{
		"budget/get-budget.json":                            "http",
		"synthesis/sqs-batch.json":                          "sqs",
		"audit/scheduled.json":                              "scheduled",
		"optimize/scheduled.json":                           "scheduled",
		"migrate/create.json":                               "custom-resource",
		"route/get-v1-models.json":                          "http",
		"chat/post-chat-sessions.json":                      "http",
		"route/function-url/post-v1-chat-completions.json":  "function-url",
		"chat/function-url/post-chat-session-messages.json": "function-url",
	}
	for f, want := range cases {
		raw, err := os.ReadFile(filepath.Join(root, "events", f))
		if err != nil {
			t.Fatal(err)
		}
		if got := kind(raw); got != want {
			t.Errorf("%s: kind %q, want %q", f, got, want)
		}
	}
}
