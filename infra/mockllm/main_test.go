package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/helixhq/helix/shared/llm"
	"github.com/helixhq/helix/shared/llm/openaicompat"
)

func newTestServer(t *testing.T, o options) (*mock, *httptest.Server) {
	t.Helper()
	m, err := newMock(o)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(m)
	srv.Config.ConnState = m.connState
	srv.Start()
	t.Cleanup(srv.Close)
	return m, srv
}

// The DeepSeek adapter Helix uses reads the mock's answer as a normal provider answer.
func TestAdapterReadsTheReply(t *testing.T) {
	m, srv := newTestServer(t, defaultOptions)
	p := openaicompat.New(openaicompat.Config{Name: "deepseek", BaseURL: srv.URL, APIKey: "bench"})
	for i := range 3 {
		resp, err := p.Complete(context.Background(), llm.Request{
			Model:           "deepseek-chat",
			Messages:        []llm.Message{{Role: llm.RoleUser, Content: "Hello"}},
			MaxOutputTokens: 64,
		})
		if err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
		want := llm.Response{
			Text:              replyText,
			Usage:             llm.Usage{InputTokens: inputTokens, OutputTokens: outputTokens},
			ProviderRequestID: replyID,
			Model:             replyModel,
			FinishReason:      "stop",
		}
		if resp != want {
			t.Fatalf("call %d: response = %+v\nwant             %+v", i, resp, want)
		}
	}
	if got := m.requests.Load(); got != 3 {
		t.Errorf("requests = %d, want 3", got)
	}
}

func TestRoutesAndStats(t *testing.T) {
	_, srv := newTestServer(t, defaultOptions)
	do := func(method, path, body string) (int, string) {
		t.Helper()
		req, err := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, string(b)
	}

	chat := `{"model":"deepseek-chat","messages":[{"role":"user","content":"Hello"}],"max_tokens":64}`
	for _, path := range []string{"/chat/completions", "/v1/chat/completions"} {
		status, body := do(http.MethodPost, path, chat)
		if status != http.StatusOK {
			t.Fatalf("POST %s = %d %s", path, status, body)
		}
		var reply struct {
			Choices []struct {
				Message struct{ Content string } `json:"message"`
			} `json:"choices"`
			Usage struct {
				Prompt     int `json:"prompt_tokens"`
				Completion int `json:"completion_tokens"`
			} `json:"usage"`
		}
		if err := json.Unmarshal([]byte(body), &reply); err != nil {
			t.Fatalf("POST %s: %v in %s", path, err, body)
		}
		if len(reply.Choices) != 1 || reply.Choices[0].Message.Content != replyText ||
			reply.Usage.Prompt != inputTokens || reply.Usage.Completion != outputTokens {
			t.Errorf("POST %s: unexpected reply %s", path, body)
		}
	}
	for _, tc := range []struct{ method, path string }{
		{http.MethodGet, "/chat/completions"},
		{http.MethodPost, "/completions"},
		{http.MethodPost, "/"},
	} {
		if status, body := do(tc.method, tc.path, ""); status != http.StatusNotFound || !json.Valid([]byte(body)) {
			t.Errorf("%s %s = %d %s, want 404 with a JSON error", tc.method, tc.path, status, body)
		}
	}

	status, body := do(http.MethodGet, statsPath, "")
	var stats struct{ Requests, Connections, Streams int64 }
	if err := json.Unmarshal([]byte(body), &stats); status != http.StatusOK || err != nil {
		t.Fatalf("GET /stats = %d %s (%v)", status, body, err)
	}
	// Two chat requests count; the 404s and the stats request do not. The test client reuses
	// one keep-alive connection.
	if stats.Requests != 2 || stats.Connections != 1 {
		t.Errorf("stats = %+v, want 2 requests on 1 connection", stats)
	}
}

func TestDelay(t *testing.T) {
	const delay = 30 * time.Millisecond
	m, srv := newTestServer(t, options{delay: delay, tokenDelay: time.Millisecond, streamTokens: 2})
	slept := make(chan time.Duration, 10)
	m.wait = func(_ context.Context, d time.Duration) bool { slept <- d; return true }
	post := func(path string) {
		t.Helper()
		resp, err := srv.Client().Post(srv.URL+path, "application/json", strings.NewReader("{}"))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	post("/chat/completions")
	post("/nothing-here") // only chat requests wait
	close(slept)
	var got []time.Duration
	for d := range slept {
		got = append(got, d)
	}
	if len(got) != 1 || got[0] != delay {
		t.Errorf("slept %v, want once for %v", got, delay)
	}
}

// The chat path allocates nothing of its own (net/http's per-request work aside).
func TestChatPathAllocations(t *testing.T) {
	if raceEnabled {
		t.Skip("sync.Pool drops items under the race detector")
	}
	m, err := newMock(defaultOptions)
	if err != nil {
		t.Fatal(err)
	}
	payload := []byte(`{"model":"deepseek-chat","messages":[{"role":"user","content":"Hello"}],"max_tokens":64}`)
	body := &readCloser{}
	req := httptest.NewRequest(http.MethodPost, "/chat/completions", nil)
	req.Body = body
	w := &discardWriter{header: http.Header{}}
	allocs := testing.AllocsPerRun(1000, func() {
		body.Reset(payload)
		w.n = 0
		m.ServeHTTP(w, req)
	})
	if allocs != 0 {
		t.Errorf("chat path allocates %v times per request, want 0", allocs)
	}
	if w.status != http.StatusOK || w.n != len(m.body) {
		t.Errorf("wrote status %d and %d bytes, want 200 and %d", w.status, w.n, len(m.body))
	}
}

type readCloser struct{ bytes.Reader }

func (*readCloser) Close() error { return nil }

type discardWriter struct {
	header http.Header
	status int
	n      int
}

func (w *discardWriter) Header() http.Header         { return w.header }
func (w *discardWriter) WriteHeader(status int)      { w.status = status }
func (w *discardWriter) Write(b []byte) (int, error) { w.n += len(b); return len(b), nil }

// run prints the base URL first, serves on it, and returns when its context ends.
func TestRunPrintsURLAndStops(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() { done <- run(ctx, "127.0.0.1:0", defaultOptions, pw) }()

	line, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	url := strings.TrimSpace(line)
	if !strings.HasPrefix(url, "http://127.0.0.1:") {
		t.Fatalf("first line %q is not the base URL", line)
	}
	resp, err := http.Post(url+"/chat/completions", "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("POST %s/chat/completions = %d", url, resp.StatusCode)
	}
	http.DefaultClient.CloseIdleConnections()

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("run did not return after its context ended")
	}
}

func TestRunRejectsABadAddress(t *testing.T) {
	if err := run(context.Background(), "not-an-address", defaultOptions, io.Discard); err == nil {
		t.Error("run with a bad address returned nil")
	}
}
