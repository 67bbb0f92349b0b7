package wire

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/helixhq/helix/shared/llm"
)

func TestRetryAfter(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name   string
		header map[string]string
		want   time.Duration
	}{
		{"none", nil, 0},
		{"seconds", map[string]string{"Retry-After": "20"}, 20 * time.Second},
		{"decimal seconds", map[string]string{"Retry-After": "0.25"}, 250 * time.Millisecond},
		{"http date", map[string]string{"Retry-After": "Thu, 01 Jan 2026 12:00:30 GMT"}, 30 * time.Second},
		{"date in the past", map[string]string{"Retry-After": "Thu, 01 Jan 2026 11:00:00 GMT"}, 0},
		{"milliseconds win", map[string]string{"Retry-After": "2", "Retry-After-Ms": "1500"}, 1500 * time.Millisecond},
		{"negative", map[string]string{"Retry-After": "-3"}, 0},
		{"garbage", map[string]string{"Retry-After": "soon"}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var h http.Header
			if tt.header != nil {
				h = http.Header{}
				for k, v := range tt.header {
					h.Set(k, v)
				}
			}
			if got := RetryAfter(h, now); got != tt.want {
				t.Errorf("RetryAfter = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestKindForStatus(t *testing.T) {
	for status, want := range map[int]llm.ErrorKind{
		400: llm.KindInvalidRequest, 401: llm.KindAuth, 402: llm.KindInvalidRequest, 403: llm.KindAuth,
		404: llm.KindInvalidRequest, 408: llm.KindTimeout, 413: llm.KindInvalidRequest, 422: llm.KindInvalidRequest,
		429: llm.KindRateLimited, 500: llm.KindUnavailable, 502: llm.KindUnavailable, 503: llm.KindUnavailable,
		504: llm.KindUnavailable, 529: llm.KindUnavailable,
	} {
		if got := KindForStatus(status); got != want {
			t.Errorf("KindForStatus(%d) = %s, want %s", status, got, want)
		}
	}
}

func TestCleanMessage(t *testing.T) {
	got := CleanMessage("Incorrect API key provided: sk-abc123.\n\n  Try again", "sk-abc123")
	if got != "Incorrect API key provided: [redacted]. Try again" {
		t.Errorf("got %q", got)
	}
	long := CleanMessage(strings.Repeat("é", 300))
	if len(long) > 210 || !strings.HasSuffix(long, "…") || !strings.HasPrefix(long, "é") {
		t.Errorf("truncation produced %q", long)
	}
	if StatusMessage(llm.KindAuth, "bad key sk-abc1****", "sk") != "authentication rejected: check the API key" {
		t.Error("auth messages must not carry the provider's text")
	}
}

func TestExchangeRecordsPerContext(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Request-Id", r.URL.Query().Get("id"))
		w.WriteHeader(http.StatusTeapot)
		_, _ = io.WriteString(w, "body-"+r.URL.Query().Get("id"))
	}))
	defer srv.Close()
	client := Client(nil)

	get := func(id string, keep bool) *Exchange {
		ctx, ex := Track(context.Background(), keep)
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"?id="+id, nil)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.ReadAll(resp.Body)
		resp.Body.Close()
		return ex
	}
	a, b := get("a", true), get("b", false)
	if !a.Sent() || a.Status() != http.StatusTeapot || a.Header().Get("X-Request-Id") != "a" || string(a.Body()) != "body-a" {
		t.Errorf("exchange a: sent %t status %d id %q body %q", a.Sent(), a.Status(), a.Header().Get("X-Request-Id"), a.Body())
	}
	if b.Header().Get("X-Request-Id") != "b" || b.Body() != nil {
		t.Errorf("exchange b: id %q body %q (body must not be kept)", b.Header().Get("X-Request-Id"), b.Body())
	}

	// Requests without a tracking context pass through.
	resp, err := client.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
}

func TestFallback(t *testing.T) {
	expired, cancel := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer cancel()
	boom := errors.New("boom with PROMPT inside")

	_, unsent := Track(context.Background(), false)
	if e := Fallback("p", context.Background(), boom, unsent); e.Kind != llm.KindInvalidRequest {
		t.Errorf("unsent: %s", e.Kind)
	}
	if e := Fallback("p", expired, boom, unsent); e.Kind != llm.KindTimeout {
		t.Errorf("expired: %s", e.Kind)
	}
	sent := &Exchange{sent: true}
	if e := Fallback("p", context.Background(), boom, sent); e.Kind != llm.KindUnavailable {
		t.Errorf("sent, no response: %s", e.Kind)
	}
	ok := &Exchange{sent: true, status: 200}
	if e := Fallback("p", context.Background(), boom, ok); e.Kind != llm.KindBadResponse || strings.Contains(e.Error(), "PROMPT") {
		t.Errorf("undecodable 200: %s %q", e.Kind, e.Error())
	}
	limited := &Exchange{sent: true, status: 429, header: http.Header{"Retry-After": {"4"}}}
	if e := Fallback("p", context.Background(), boom, limited); e.Kind != llm.KindRateLimited || e.RetryAfter != 4*time.Second {
		t.Errorf("429: %s %v", e.Kind, e.RetryAfter)
	}
}
