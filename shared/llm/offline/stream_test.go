package offline_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/helixhq/helix/shared/llm"
	"github.com/helixhq/helix/shared/llm/llmtest"
	"github.com/helixhq/helix/shared/llm/offline"
)

func TestStreamMatchesComplete(t *testing.T) {
	schema := json.RawMessage(`{"type":"object","required":["summary"],"properties":{"summary":{"type":"string"}}}`)
	tests := []struct {
		name string
		req  func() llm.Request
	}{
		{"text", func() llm.Request { return request("What is on my calendar?") }},
		{"cut at max tokens", func() llm.Request { r := request("hello"); r.MaxOutputTokens = 5; return r }},
		{"JSON without schema", func() llm.Request { r := request("classify"); r.JSON = true; return r }},
		{"JSON with schema", func() llm.Request { r := request("summarize"); r.JSON, r.Schema = true, schema; return r }},
		{"non-ASCII", func() llm.Request {
			return llm.Request{Model: "模型-éèê-ünïcødé-ßßßßßßßß", MaxOutputTokens: 500, Messages: []llm.Message{{Role: llm.RoleUser, Content: "héllo"}}}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := offline.New()
			want, err := p.Complete(context.Background(), tt.req())
			if err != nil {
				t.Fatal(err)
			}
			st, err := p.Stream(context.Background(), tt.req())
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			if r := st.Response(); !r.Offline || r.HasUsage || r.Text != "" {
				t.Errorf("before the first delta: %+v, want Offline, no usage, no text", r)
			}
			deltas, err := llmtest.ReadStream(t, st)
			if err != io.EOF {
				t.Fatalf("stream ended with %v, want io.EOF", err)
			}
			if len(deltas) < 2 && len(want.Text) > 16 {
				t.Errorf("%d deltas for %d bytes; the answer should come in several", len(deltas), len(want.Text))
			}
			for _, d := range deltas {
				if len(d) > 16 && strings.Count(d, " ") == 0 {
					t.Errorf("delta %q is longer than a piece", d)
				}
			}
			got := st.Response()
			if got.Response != want || !got.HasUsage || got.Chunks != len(deltas) || strings.Join(deltas, "") != want.Text {
				t.Errorf("stream response %+v (%d deltas %q)\nwant Complete's %+v", got, len(deltas), deltas, want)
			}
		})
	}
}

func TestStreamSaysOffline(t *testing.T) {
	st, err := offline.New().Stream(context.Background(), request("What is on my calendar?"))
	if err != nil {
		t.Fatal(err)
	}
	first, err := st.Next()
	if err != nil {
		t.Fatal(err)
	}
	// The first words already say it: a client showing deltas as they come shows that first.
	if !strings.HasPrefix(offline.Prefix, first.Text) || first.Text == "" {
		t.Errorf("first delta %q, want the start of %q", first.Text, offline.Prefix)
	}
	rest, err := llmtest.ReadStream(t, st)
	if err != io.EOF {
		t.Fatal(err)
	}
	text := first.Text + strings.Join(rest, "")
	if !strings.HasPrefix(text, offline.Prefix) || !strings.Contains(text, "offline model") || !st.Response().Offline {
		t.Errorf("streamed %q (offline %t) does not say it is the offline model", text, st.Response().Offline)
	}
}

func TestStreamFailures(t *testing.T) {
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	noMax := request("hi")
	noMax.MaxOutputTokens = 0
	tests := []struct {
		name string
		ctx  context.Context
		req  llm.Request
		kind llm.ErrorKind
	}{
		{"context done", cancelled, request("hi"), llm.KindTimeout},
		{"no max tokens", context.Background(), noMax, llm.KindInvalidRequest},
		{"unknown role", context.Background(), llm.Request{MaxOutputTokens: 5, Messages: []llm.Message{{Role: "tool", Content: "x"}}}, llm.KindInvalidRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, err := offline.New().Stream(tt.ctx, tt.req)
			if st != nil {
				t.Error("a failed Stream returned a stream")
			}
			llmtest.RequireError(t, err, tt.kind)
		})
	}
}

func TestStreamEndsEarly(t *testing.T) {
	for _, how := range []string{"cancel", "close"} {
		t.Run(how, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			st, err := offline.New().Stream(ctx, request("What is on my calendar?"))
			if err != nil {
				t.Fatal(err)
			}
			for range 3 {
				if _, err := st.Next(); err != nil {
					t.Fatal(err)
				}
			}
			if how == "cancel" {
				cancel()
			} else {
				for range 2 {
					if err := st.Close(); err != nil {
						t.Fatal(err)
					}
				}
			}
			_, err = st.Next()
			e := llmtest.RequireError(t, err, llm.KindTimeout)
			if _, again := st.Next(); !errors.Is(again, e) {
				t.Errorf("Next after the failure = %v, want the same error", again)
			}
			if r := st.Response(); r.Chunks != 3 || r.HasUsage || r.FinishReason != "" || !r.Offline {
				t.Errorf("partial response %+v, want 3 chunks, no usage or finish, offline", r)
			}
		})
	}
}
