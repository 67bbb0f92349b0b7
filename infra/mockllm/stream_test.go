package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/helixhq/helix/shared/llm"
	"github.com/helixhq/helix/shared/llm/openaicompat"
)

// wireChunk is what the tests read of a chunk.
type wireChunk struct {
	ID      string `json:"id"`
	Object  string `json:"object"`
	Model   string `json:"model"`
	Choices []struct {
		Index int `json:"index"`
		Delta struct {
			Role    *string `json:"role"`
			Content *string `json:"content"`
		} `json:"delta"`
		FinishReason *string `json:"finish_reason"`
	} `json:"choices"`
	Usage *struct {
		Prompt     int `json:"prompt_tokens"`
		Completion int `json:"completion_tokens"`
		Total      int `json:"total_tokens"`
	} `json:"usage"`
}

// describe turns a streamed body into one line per event: "role", "text:<content>",
// "finish:<reason>", "usage:<prompt>/<completion>/<total>", "[DONE]"; anything else fails the test.
func describe(t *testing.T, body string) []string {
	t.Helper()
	if !strings.HasSuffix(body, "\n\n") {
		t.Fatalf("body does not end with an empty line: %q", body)
	}
	var out []string
	for _, ev := range strings.Split(strings.TrimSuffix(body, "\n\n"), "\n\n") {
		data, ok := strings.CutPrefix(ev, "data: ")
		if !ok || strings.Contains(data, "\n") {
			t.Fatalf("event %q is not one data line", ev)
		}
		if data == "[DONE]" {
			out = append(out, data)
			continue
		}
		var c wireChunk
		if err := json.Unmarshal([]byte(data), &c); err != nil {
			t.Fatalf("event %q: %v", data, err)
		}
		if c.ID != replyID || c.Object != "chat.completion.chunk" || c.Model != replyModel {
			t.Fatalf("event %q: wrong id, object or model", data)
		}
		switch {
		case c.Usage != nil:
			if len(c.Choices) != 0 {
				t.Fatalf("usage chunk with choices: %q", data)
			}
			out = append(out, "usage:"+itoa(c.Usage.Prompt)+"/"+itoa(c.Usage.Completion)+"/"+itoa(c.Usage.Total))
		case len(c.Choices) != 1 || c.Choices[0].Index != 0:
			t.Fatalf("event %q: want one choice with index 0", data)
		case c.Choices[0].FinishReason != nil:
			if c.Choices[0].Delta.Content != nil || c.Choices[0].Delta.Role != nil {
				t.Fatalf("finish chunk with a delta: %q", data)
			}
			out = append(out, "finish:"+*c.Choices[0].FinishReason)
		case c.Choices[0].Delta.Role != nil:
			if *c.Choices[0].Delta.Role != "assistant" || c.Choices[0].Delta.Content == nil || *c.Choices[0].Delta.Content != "" {
				t.Fatalf("role chunk %q: want role assistant and empty content", data)
			}
			out = append(out, "role")
		case c.Choices[0].Delta.Content != nil && *c.Choices[0].Delta.Content != "":
			out = append(out, "text:"+*c.Choices[0].Delta.Content)
		default:
			t.Fatalf("event %q is none of role, text, finish, usage", data)
		}
	}
	return out
}

func itoa(n int) string {
	b, _ := json.Marshal(n)
	return string(b)
}

// The exact wire of a streamed answer, for the shapes of request Helix and SDKs send.
func TestStreamWire(t *testing.T) {
	words := func(n int) []string {
		var out []string
		for i := range n {
			w := streamWords[i%len(streamWords)]
			if i > 0 {
				w = " " + w
			}
			out = append(out, "text:"+w)
		}
		return out
	}
	seq := func(parts ...[]string) []string { return slices.Concat(parts...) }
	role, done := []string{"role"}, []string{"[DONE]"}
	const tokens = 4
	for _, tc := range []struct {
		name, body string
		want       []string // nil: the non-streaming JSON answer
	}{
		{"usage asked for", `{"model":"deepseek-chat","messages":[],"stream":true,"stream_options":{"include_usage":true}}`,
			seq(role, words(tokens), []string{"finish:stop", "usage:12/4/16"}, done)},
		{"no stream options", `{"model":"deepseek-chat","stream":true}`,
			seq(role, words(tokens), []string{"finish:stop"}, done)},
		{"usage not asked for", `{"stream":true,"stream_options":{"include_usage":false}}`,
			seq(role, words(tokens), []string{"finish:stop"}, done)},
		{"spaces and max_tokens above the answer", "{\n  \"stream\": true,\n  \"max_tokens\": 64, \"stream_options\": {\"include_usage\": true}\n}",
			seq(role, words(tokens), []string{"finish:stop", "usage:12/4/16"}, done)},
		{"max_tokens cuts the answer", `{"stream":true,"max_tokens":2,"stream_options":{"include_usage":true}}`,
			seq(role, words(2), []string{"finish:length", "usage:12/2/14"}, done)},
		{"max_completion_tokens cuts it", `{"stream":true,"max_completion_tokens":3,"max_tokens":100}`,
			seq(role, words(3), []string{"finish:length"}, done)},
		{"the smaller limit wins", `{"stream":true,"max_completion_tokens":3,"max_tokens":1}`,
			seq(role, words(1), []string{"finish:length"}, done)},
		{"stream false", `{"model":"deepseek-chat","stream":false,"stream_options":{"include_usage":true}}`, nil},
		{"stream_options alone", `{"stream_options":{"include_usage":true}}`, nil},
		{"stream not a boolean", `{"stream":"yes"}`, nil},
		{"not JSON", `"stream": true`, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, srv := newTestServer(t, options{streamTokens: tokens})
			resp, err := srv.Client().Post(srv.URL+"/v1/chat/completions", "application/json", strings.NewReader(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			raw, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != http.StatusOK || resp.Header.Get("X-Request-Id") != replyID {
				t.Fatalf("status %d, X-Request-Id %q", resp.StatusCode, resp.Header.Get("X-Request-Id"))
			}
			if tc.want == nil {
				if ct := resp.Header.Get("Content-Type"); ct != "application/json" || !bytes.Equal(raw, m.body) {
					t.Errorf("Content-Type %q, body %s; want the JSON answer", ct, raw)
				}
				if m.streams.Load() != 0 {
					t.Errorf("streams = %d, want 0", m.streams.Load())
				}
				return
			}
			if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
				t.Errorf("Content-Type %q, want text/event-stream", ct)
			}
			if got := describe(t, string(raw)); !slices.Equal(got, tc.want) {
				t.Errorf("events\n got %q\nwant %q", got, tc.want)
			}
			if m.requests.Load() != 1 || m.streams.Load() != 1 || m.openStreams.Load() != 0 {
				t.Errorf("requests %d, streams %d, open %d; want 1, 1, 0", m.requests.Load(), m.streams.Load(), m.openStreams.Load())
			}
		})
	}
}

// The DeepSeek adapter Helix uses reads the streamed answer through go-openai's stream: every
// word in order, then the usage and the finish reason.
func TestAdapterReadsTheStream(t *testing.T) {
	for _, tc := range []struct {
		name           string
		tokens, limit  int
		wantN          int
		wantFinish     string
		wantUsageTotal int
	}{
		{"whole answer", 50, 64, 50, "stop", inputTokens + 50},
		{"cut by max_tokens", 50, 7, 7, "length", inputTokens + 7},
		{"one word", 1, 64, 1, "stop", inputTokens + 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, srv := newTestServer(t, options{streamTokens: tc.tokens})
			p := openaicompat.New(openaicompat.Config{Name: "deepseek", BaseURL: srv.URL, APIKey: "bench"})
			st, err := p.Stream(context.Background(), llm.Request{
				Model:           "deepseek-chat",
				Messages:        []llm.Message{{Role: llm.RoleUser, Content: "Hello"}},
				MaxOutputTokens: int64(tc.limit),
			})
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			var deltas []string
			for {
				d, err := st.Next()
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatalf("after %d deltas: %v", len(deltas), err)
				}
				deltas = append(deltas, d.Text)
			}
			r := st.Response()
			if len(deltas) != tc.wantN || strings.Join(deltas, "") != streamText(tc.wantN) || r.Text != streamText(tc.wantN) {
				t.Errorf("%d deltas %q, text %q; want %d words", len(deltas), deltas, r.Text, tc.wantN)
			}
			want := llm.Usage{InputTokens: inputTokens, OutputTokens: int64(tc.wantN)}
			if !r.HasUsage || r.Usage != want || r.FinishReason != tc.wantFinish || r.Model != replyModel || r.ProviderRequestID != replyID {
				t.Errorf("response %+v; want usage %+v, finish %q", r, want, tc.wantFinish)
			}
			if m.streams.Load() != 1 {
				t.Errorf("streams = %d, want 1", m.streams.Load())
			}
		})
	}
}

// A streamed answer waits -delay once before its first byte and -token-delay before each word.
func TestStreamDelays(t *testing.T) {
	for _, tc := range []struct {
		name string
		o    options
		body string
		want []time.Duration
	}{
		{"both delays", options{delay: 5 * time.Millisecond, tokenDelay: 7 * time.Millisecond, streamTokens: 3}, `{"stream":true}`,
			[]time.Duration{5 * time.Millisecond, 7 * time.Millisecond, 7 * time.Millisecond, 7 * time.Millisecond}},
		{"token delay only", options{tokenDelay: time.Second, streamTokens: 2}, `{"stream":true}`,
			[]time.Duration{time.Second, time.Second}},
		{"cut by max_tokens", options{tokenDelay: time.Second, streamTokens: 5}, `{"stream":true,"max_tokens":1}`,
			[]time.Duration{time.Second}},
		{"no delays", options{streamTokens: 3}, `{"stream":true}`, nil},
		{"not streamed: -delay only", options{delay: 5 * time.Millisecond, tokenDelay: time.Second, streamTokens: 3}, `{}`,
			[]time.Duration{5 * time.Millisecond}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, srv := newTestServer(t, tc.o)
			var mu sync.Mutex
			var got []time.Duration
			m.wait = func(_ context.Context, d time.Duration) bool {
				mu.Lock()
				defer mu.Unlock()
				got = append(got, d)
				return true
			}
			resp, err := srv.Client().Post(srv.URL+"/chat/completions", "application/json", strings.NewReader(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			// The handler has returned once the whole body is read: got is no longer written.
			_, err = io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil {
				t.Fatal(err)
			}
			mu.Lock()
			defer mu.Unlock()
			if !slices.Equal(got, tc.want) {
				t.Errorf("waited %v, want %v", got, tc.want)
			}
		})
	}
}

// A client that goes away mid-stream ends the stream: the mock stops waiting and writing, and
// the stream no longer counts as open.
func TestStreamEndsWhenTheClientLeaves(t *testing.T) {
	m, srv := newTestServer(t, options{tokenDelay: time.Hour, streamTokens: 10})
	waits := 0
	cut := make(chan struct{})
	m.wait = func(ctx context.Context, _ time.Duration) bool {
		waits++
		if waits <= 2 {
			return true
		}
		<-ctx.Done() // the third word waits for ever, until the client leaves
		close(cut)
		return false
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL+"/chat/completions", strings.NewReader(`{"stream":true}`))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	r := bufio.NewReader(resp.Body)
	var events []string
	for len(events) < 3 { // the role chunk and two words
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("after %d events: %v", len(events), err)
		}
		if strings.HasPrefix(line, "data: ") {
			events = append(events, line)
		}
	}
	if n := m.openStreams.Load(); n != 1 {
		t.Errorf("open streams while streaming = %d, want 1", n)
	}
	cancel()
	select {
	case <-cut:
	case <-time.After(10 * time.Second):
		t.Fatal("the mock kept waiting after the client left")
	}
	for deadline := time.Now().Add(10 * time.Second); m.openStreams.Load() != 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the stream still counts as open after the client left")
		}
	}
	if waits != 3 || m.streams.Load() != 1 {
		t.Errorf("waits %d, streams %d; want 3 and 1", waits, m.streams.Load())
	}
}

// GET /stats counts the streams started and those open.
func TestStatsCountStreams(t *testing.T) {
	_, srv := newTestServer(t, options{streamTokens: 2})
	for _, body := range []string{`{"stream":true}`, `{"stream":true,"stream_options":{"include_usage":true}}`, `{}`} {
		resp, err := srv.Client().Post(srv.URL+"/chat/completions", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	resp, err := srv.Client().Get(srv.URL + statsPath)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var s struct {
		Requests    int64 `json:"requests"`
		Streams     int64 `json:"streams"`
		OpenStreams int64 `json:"open_streams"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&s); err != nil {
		t.Fatal(err)
	}
	if s.Requests != 3 || s.Streams != 2 || s.OpenStreams != 0 {
		t.Errorf("stats %+v, want 3 requests, 2 streams, 0 open", s)
	}
}

func TestParseFlags(t *testing.T) {
	for _, tc := range []struct {
		args     []string
		wantAddr string
		want     options
		wantErr  string
	}{
		{nil, "127.0.0.1:0", defaultOptions, ""},
		{[]string{"-addr", ":9", "-delay", "5ms", "-token-delay", "1s", "-stream-tokens", "200"}, ":9",
			options{delay: 5 * time.Millisecond, tokenDelay: time.Second, streamTokens: 200}, ""},
		{[]string{"-token-delay", "0s"}, "127.0.0.1:0", options{streamTokens: 50}, ""},
		{[]string{"-delay", "-1s"}, "", options{}, "-delay"},
		{[]string{"-token-delay", "-1ms"}, "", options{}, "-token-delay"},
		{[]string{"-stream-tokens", "0"}, "", options{}, "-stream-tokens"},
		{[]string{"-stream-tokens", "many"}, "", options{}, "-stream-tokens"},
		{[]string{"extra"}, "", options{}, "unexpected"},
	} {
		addr, o, err := parseFlags(tc.args, io.Discard)
		switch {
		case tc.wantErr != "":
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%q: error %v, want one naming %s", tc.args, err, tc.wantErr)
			}
		case err != nil:
			t.Errorf("%q: %v", tc.args, err)
		case addr != tc.wantAddr || o != tc.want:
			t.Errorf("%q: addr %q, options %+v; want %q, %+v", tc.args, addr, o, tc.wantAddr, tc.want)
		}
	}
	if _, _, err := parseFlags([]string{"-h"}, io.Discard); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("-h: %v, want flag.ErrHelp", err)
	}
}

// parseRequest never fails on any body, and streams only what a JSON decoder reads as
// "stream": true.
func FuzzParseRequest(f *testing.F) {
	for _, s := range []string{`{"stream":true}`, `{"stream":false}`, `{"stream":true,"stream_options":{"include_usage":true},"max_tokens":3}`,
		`{"stream": true, "max_completion_tokens": -1}`, `"stream"`, `{"stream":null}`, ``, `{"stream":true,"stream_options":null}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		req, streamed := parseRequest(body)
		var check struct {
			Stream bool `json:"stream"`
		}
		decoded := json.Unmarshal(body, &check) == nil
		if streamed && !(decoded && check.Stream) {
			t.Errorf("parseRequest(%q) streamed = %v", body, streamed)
		}
		if req.maxTokens() < 0 {
			t.Errorf("parseRequest(%q): negative max tokens %d", body, req.maxTokens())
		}
	})
}
