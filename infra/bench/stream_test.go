package main

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// sseServer answers every request with status and body as the stream.
func sseServer(t *testing.T, status int, contentType, body string) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", contentType)
		w.WriteHeader(status)
		fmt.Fprint(w, body)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

func chunkEvent(content string) string {
	return `data: {"id":"x","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"` + content + `"},"finish_reason":null}]}` + "\n\n"
}

const (
	roleEvent  = `data: {"id":"x","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}` + "\n\n"
	finish     = `data: {"id":"x","object":"chat.completion.chunk","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}` + "\n\n"
	usageEvent = `data: {"id":"x","object":"chat.completion.chunk","choices":[],"usage":{"prompt_tokens":12,"completion_tokens":2,"cost_usd":"0.000001"}}` + "\n\n"
	doneLine   = "data: [DONE]\n\n"
)

// readStream accepts only a complete answer: the content chunks, the usage, [DONE].
func TestReadStream(t *testing.T) {
	good := roleEvent + chunkEvent("Hello") + chunkEvent(" there") + finish + usageEvent + doneLine
	for _, tc := range []struct {
		name, contentType, body string
		status, want            int
		wantErr                 string // "" when the stream is complete
	}{
		{"complete", "text/event-stream", good, 200, 2, ""},
		{"CRLF lines, comments and event names", "text/event-stream; charset=utf-8",
			": keep-alive\r\n\r\n" + strings.ReplaceAll(roleEvent+"event: message\n"+chunkEvent("a")+chunkEvent("b")+usageEvent+doneLine, "\n", "\r\n"), 200, 2, ""},
		{"no usage chunk", "text/event-stream", roleEvent + chunkEvent("a") + chunkEvent("b") + finish + doneLine, 200, 2, "usage chunk false"},
		{"usage null", "text/event-stream", chunkEvent("a") + chunkEvent("b") + `data: {"choices":[],"usage":null}` + "\n\n" + doneLine, 200, 2, "usage chunk false"},
		{"too few words", "text/event-stream", good, 200, 3, "2 content chunks (want 3)"},
		{"no [DONE]", "text/event-stream", roleEvent + chunkEvent("a") + chunkEvent("b") + usageEvent, 200, 2, "without [DONE]"},
		{"an error event", "text/event-stream", chunkEvent("a") + `data: {"error":{"message":"provider broke off","type":"server_error"}}` + "\n\n" + doneLine, 200, 1, "provider broke off"},
		{"an event after [DONE]", "text/event-stream", good + chunkEvent("c"), 200, 2, "after [DONE]"},
		{"not JSON", "text/event-stream", "data: {cut\n\n", 200, 0, "event"},
		{"an error status", "application/json", `{"error":{"message":"budget exceeded"}}`, 402, 0, "status 402: "},
		{"not an event stream", "application/json", `{"choices":[]}`, 200, 0, "not text/event-stream"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			url := sseServer(t, tc.status, tc.contentType, tc.body)
			var chunks atomic.Int64
			firsts := 0
			o, err := readStream(context.Background(), http.DefaultClient, url, "tok", "{}", tc.want, &chunks, func() { firsts++ })
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("readStream: %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("readStream error %v, want one containing %q", err, tc.wantErr)
			}
			if tc.wantErr != "" {
				return
			}
			if o.contents != tc.want || chunks.Load() != int64(tc.want) || firsts != 1 || !o.done || !o.usage || o.ttfb <= 0 || o.total < o.ttfb {
				t.Errorf("outcome %+v, chunks %d, first called %d times", o, chunks.Load(), firsts)
			}
		})
	}
}

// streamLoad counts the complete streams and the failed ones, and sends the worker's token.
func TestStreamLoad(t *testing.T) {
	var seen atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		if r.Header.Get("Authorization") == "Bearer bad" {
			fmt.Fprint(w, chunkEvent("a")+doneLine) // no usage: a failure
			return
		}
		seen.Add(1)
		fmt.Fprint(w, roleEvent+chunkEvent("a")+finish+usageEvent+doneLine)
	}))
	defer srv.Close()
	client := streamClient()
	defer client.CloseIdleConnections()
	run := streamLoad(context.Background(), client, srv.URL, "{}", []string{"good", "bad"}, 2, 50*time.Millisecond, 1)
	if len(run.ttfb) == 0 || int64(len(run.ttfb)) != seen.Load() || run.errors == 0 || run.firstErr == nil ||
		run.started != int64(len(run.ttfb)+run.errors) {
		t.Errorf("run: %d complete (server saw %d), %d errors (%v), %d started", len(run.ttfb), seen.Load(), run.errors, run.firstErr, run.started)
	}
}

func TestParseRSS(t *testing.T) {
	for _, tc := range []struct {
		status string
		want   int64
		ok     bool
	}{
		{"Name:\tdevserver\nVmPeak:\t  900 kB\nVmRSS:\t   23456 kB\nRssAnon:\t 1 kB\n", 23456, true},
		{"Name:\tx\n", 0, false},
		{"VmRSS:\t12 MB\n", 0, false},
		{"VmRSS:\tmany kB\n", 0, false},
	} {
		got, err := parseRSS(tc.status)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("parseRSS(%q) = %d, %v; want %d (ok %v)", tc.status, got, err, tc.want, tc.ok)
		}
	}
}
