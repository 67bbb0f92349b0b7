package lambdaio_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambda"

	"github.com/helixhq/helix/shared/auth"
	"github.com/helixhq/helix/shared/lambdaio"
)

// functionURLEvent is what a Function URL sends (payload 2.0), with no authorizer: the token is
// in the Authorization header for the function to verify.
const functionURLEvent = `{
  "version": "2.0",
  "rawPath": "/v1/chat/completions",
  "rawQueryString": "trace=1",
  "cookies": ["session=abc"],
  "headers": {"authorization": "Bearer the-token", "content-type": "application/json", "accept": "text/event-stream", "x-forwarded-for": "198.51.100.7"},
  "queryStringParameters": {"trace": "1"},
  "requestContext": {
    "accountId": "anonymous", "requestId": "c2b3f0e9-1a2b-4c3d-8e9f-0a1b2c3d4e5f", "apiId": "abcdefghijkl",
    "domainName": "abcdefghijkl.lambda-url.eu-west-1.on.aws", "domainPrefix": "abcdefghijkl",
    "time": "02/Dec/2026:06:00:00 +0000", "timeEpoch": 1796191200000,
    "http": {"method": "POST", "path": "/v1/chat/completions", "protocol": "HTTP/1.1", "sourceIp": "198.51.100.7", "userAgent": "openai-go"}
  },
  "body": "eyJzdHJlYW0iOnRydWV9",
  "isBase64Encoded": true
}`

func discard() *slog.Logger { return slog.New(slog.NewJSONHandler(io.Discard, nil)) }

// The request reaches the handler as the client sent it (method, path, query, headers, cookies,
// the decoded body), with no gateway claims; the answer streams with its status and headers in
// the prelude Function URLs read, and the runtime gets the whole body.
func TestStreamingHandlerThroughTheRuntime(t *testing.T) {
	var seen *http.Request
	var body string
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen = r
		b, _ := io.ReadAll(r.Body)
		body = string(b)
		w.Header().Set("Content-Type", "text/event-stream")
		w.Header().Add("Set-Cookie", "a=1")
		w.WriteHeader(http.StatusOK)
		for i := range 3 {
			fmt.Fprintf(w, "data: chunk %d\n\n", i)
			w.(http.Flusher).Flush()
		}
		fmt.Fprint(w, "data: [DONE]\n\n")
	})
	out, err := lambda.NewHandler(lambdaio.StreamingHandler(h, discard())).Invoke(context.Background(), []byte(functionURLEvent))
	if err != nil {
		t.Fatal(err)
	}
	if seen.Method != http.MethodPost || seen.URL.Path != "/v1/chat/completions" || seen.URL.Query().Get("trace") != "1" ||
		seen.Header.Get("Authorization") != "Bearer the-token" || body != `{"stream":true}` {
		t.Errorf("handler saw %s %s ? %s, auth %q, body %q", seen.Method, seen.URL.Path, seen.URL.RawQuery, seen.Header.Get("Authorization"), body)
	}
	if c, err := seen.Cookie("session"); err != nil || c.Value != "abc" {
		t.Errorf("cookie session = %v, %v", c, err)
	}
	if _, ok := auth.GatewayClaims(seen.Context()); ok {
		t.Error("a Function URL request carries gateway claims: nothing verified them")
	}
	prelude, rest, ok := bytes.Cut(out, make([]byte, 8))
	if !ok {
		t.Fatalf("no prelude separator in %q", out)
	}
	var head struct {
		StatusCode int               `json:"statusCode"`
		Headers    map[string]string `json:"headers"`
		Cookies    []string          `json:"cookies"`
	}
	if err := json.Unmarshal(prelude, &head); err != nil {
		t.Fatalf("prelude %q: %v", prelude, err)
	}
	if head.StatusCode != 200 || head.Headers["Content-Type"] != "text/event-stream" || len(head.Cookies) != 1 || head.Cookies[0] != "a=1" {
		t.Errorf("prelude %+v", head)
	}
	if want := "data: chunk 0\n\ndata: chunk 1\n\ndata: chunk 2\n\ndata: [DONE]\n\n"; string(rest) != want {
		t.Errorf("body %q, want %q", rest, want)
	}
}

// The first chunk reaches the runtime while the handler is still working: the answer streams,
// it is not buffered until the end.
func TestStreamingHandlerStreams(t *testing.T) {
	release := make(chan struct{})
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprint(w, "data: first\n\n")
		<-release
		fmt.Fprint(w, "data: second\n\n")
	})
	var ev events.LambdaFunctionURLRequest
	if err := json.Unmarshal([]byte(functionURLEvent), &ev); err != nil {
		t.Fatal(err)
	}
	resp, err := lambdaio.StreamingHandler(h, discard())(context.Background(), ev)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || resp.Headers["Content-Type"] != "text/event-stream" {
		t.Fatalf("response %d %v", resp.StatusCode, resp.Headers)
	}
	r := bufio.NewReader(resp.Body)
	line, err := r.ReadString('\n')
	if err != nil || line != "data: first\n" {
		t.Fatalf("first line %q, %v: the handler is still running, so this came through the stream", line, err)
	}
	close(release)
	rest, _ := io.ReadAll(r)
	if string(rest) != "\ndata: second\n\n" {
		t.Errorf("rest %q", rest)
	}
}

// When the invocation ends while the handler still writes (the client went away, the deadline
// passed), its writes fail, so it stops instead of blocking on a reader that is gone.
func TestStreamingHandlerStopsWhenTheInvocationEnds(t *testing.T) {
	writeErr := make(chan error, 1)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "data: first\n\n")
		for {
			if _, err := fmt.Fprint(w, "data: more\n\n"); err != nil {
				writeErr <- err
				return
			}
		}
	})
	var ev events.LambdaFunctionURLRequest
	if err := json.Unmarshal([]byte(functionURLEvent), &ev); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	resp, err := lambdaio.StreamingHandler(h, discard())(ctx, ev)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bufio.NewReader(resp.Body).ReadString('\n'); err != nil {
		t.Fatal(err)
	}
	cancel() // nobody reads any more
	select {
	case err := <-writeErr:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("write error %v, want the invocation's end", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the handler is still blocked writing after the invocation ended")
	}
}

// A handler that writes nothing answers its status with an empty body; an event that cannot
// become a request is answered in Helix's error format.
func TestStreamingHandlerEdges(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })
	out, err := lambda.NewHandler(lambdaio.StreamingHandler(h, discard())).Invoke(context.Background(), []byte(functionURLEvent))
	if err != nil || !strings.HasPrefix(string(out), `{"statusCode":204`) {
		t.Errorf("204: %q, %v", out, err)
	}
	bad := strings.Replace(functionURLEvent, `"eyJzdHJlYW0iOnRydWV9"`, `"%%% not base64"`, 1)
	out, err = lambda.NewHandler(lambdaio.StreamingHandler(h, discard())).Invoke(context.Background(), []byte(bad))
	if err != nil || !strings.Contains(string(out), `"code":"malformed_event"`) {
		t.Errorf("bad body: %q, %v", out, err)
	}
}

// Whatever arrives as a Function URL event, the adapter answers without panicking: an error for
// what is not an event, a streamed answer for anything that decodes.
func FuzzStreamingHandler(f *testing.F) {
	f.Add([]byte(functionURLEvent))
	f.Add([]byte(strings.Replace(functionURLEvent, `"isBase64Encoded": true`, `"isBase64Encoded": false`, 1)))
	f.Add([]byte(`{"rawPath":"/%zz","requestContext":{"http":{"method":"GET"}}}`))
	f.Add([]byte(`null`))
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		fmt.Fprint(w, "data: ok\n\n")
	})
	handler := lambda.NewHandler(lambdaio.StreamingHandler(h, discard()))
	f.Fuzz(func(t *testing.T, payload []byte) {
		_, _ = handler.Invoke(context.Background(), payload)
	})
}
