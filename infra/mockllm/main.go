// Command mockllm is a mock OpenAI-compatible upstream (DeepSeek's chat completions wire format)
// for load runs: `make bench` points Helix's "deepseek" provider at it to measure what the gateway
// adds on top of a provider call.
//
//	go run ./infra/mockllm -addr 127.0.0.1:0 [-delay 20ms]
//
// The first line on stdout is the base URL (http://127.0.0.1:<port>), so scripts can read it;
// the provider's base URL is that URL, and requests go to <url>/chat/completions.
//
// Every POST to a path ending in /chat/completions gets the same answer: a short text with a fixed
// usage (see the constants below), rendered once at start-up by llmtest's OpenAI server, so it is
// byte for byte what the adapter tests use. The hot path only drains the request body, optionally
// sleeps -delay (simulated provider latency) and writes the prepared bytes: no per-request logging,
// no JSON work, no recording. GET /stats answers {"requests":N,"connections":M}: the chat requests
// served and the TCP connections accepted so far, to check how many upstream calls a load run made
// and whether its client reused connections. Anything else is a 404 in OpenAI's error format.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/helixhq/helix/shared/llm/llmtest"
)

// The fixed reply.
const (
	replyText     = "Hello from mockllm."
	replyModel    = "deepseek-chat"
	replyID       = "req_mockllm"
	inputTokens   = 12
	outputTokens  = 6
	statsPath     = "/stats"
	chatPathEnd   = "/chat/completions"
	notFoundReply = `{"error":{"message":"mockllm serves POST .../chat/completions and GET /stats","type":"invalid_request_error","param":null,"code":null}}`
)

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "listen address (port 0: any free port)")
	delay := flag.Duration("delay", 0, "time to wait before answering each chat request (simulated provider latency)")
	flag.Parse()
	if *delay < 0 {
		fmt.Fprintln(os.Stderr, "mockllm: -delay must not be negative")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *addr, *delay, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "mockllm:", err)
		os.Exit(1)
	}
}

// run serves until ctx is done, after writing the base URL as the first line of out.
func run(ctx context.Context, addr string, delay time.Duration, out io.Writer) error {
	m, err := newMock(delay)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	hs := &http.Server{
		Handler:           m,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ConnState:         m.connState,
	}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	if _, err := fmt.Fprintf(out, "http://%s\n", ln.Addr()); err != nil {
		_ = hs.Close()
		return err
	}
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := hs.Shutdown(shutdown); err != nil && !errors.Is(err, context.DeadlineExceeded) {
			return err
		}
		return nil
	}
}

// mock is the handler. Its header values are built once and shared by every response: net/http
// only reads them.
type mock struct {
	delay time.Duration
	sleep func(time.Duration) // time.Sleep; tests record the calls instead
	body  []byte

	contentType   []string
	contentLength []string
	requestID     []string
	notFoundLen   []string

	requests    atomic.Int64
	connections atomic.Int64
}

func newMock(delay time.Duration) (*mock, error) {
	body, err := renderReply()
	if err != nil {
		return nil, err
	}
	return &mock{
		delay:         delay,
		sleep:         time.Sleep,
		body:          body,
		contentType:   []string{"application/json"},
		contentLength: []string{strconv.Itoa(len(body))},
		requestID:     []string{replyID},
		notFoundLen:   []string{strconv.Itoa(len(notFoundReply))},
	}, nil
}

// renderReply asks an llmtest OpenAI server for the fixed reply once and keeps its body.
func renderReply() ([]byte, error) {
	s := llmtest.StartOpenAI()
	defer s.Close()
	s.SetRecording(false)
	s.SetDefault(llmtest.OK(replyText).
		WithUsage(llmtest.Usage{InputTokens: inputTokens, OutputTokens: outputTokens}).
		WithRequestID(replyID))
	req := `{"model":"` + replyModel + `","messages":[{"role":"user","content":"Hello"}]}`
	resp, err := http.Post(s.URL+chatPathEnd, "application/json", strings.NewReader(req))
	if err != nil {
		return nil, fmt.Errorf("render the reply: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("render the reply: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("render the reply: llmtest answered %d: %s", resp.StatusCode, body)
	}
	return bytes.TrimSpace(body), nil
}

func (m *mock) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, chatPathEnd):
		m.requests.Add(1)
		// Drain the body so the connection can be reused; io.Discard reads into a pooled buffer.
		_, _ = io.Copy(io.Discard, r.Body)
		if m.delay > 0 {
			m.sleep(m.delay)
		}
		h := w.Header()
		h["Content-Type"] = m.contentType
		h["Content-Length"] = m.contentLength
		h["X-Request-Id"] = m.requestID
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(m.body)
	case r.Method == http.MethodGet && r.URL.Path == statsPath:
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"requests":%d,"connections":%d}`+"\n", m.requests.Load(), m.connections.Load())
	default:
		h := w.Header()
		h["Content-Type"] = m.contentType
		h["Content-Length"] = m.notFoundLen
		w.WriteHeader(http.StatusNotFound)
		_, _ = io.WriteString(w, notFoundReply)
	}
}

func (m *mock) connState(_ net.Conn, s http.ConnState) {
	if s == http.StateNew {
		m.connections.Add(1)
	}
}
