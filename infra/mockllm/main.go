// Command mockllm is a mock OpenAI-compatible upstream (DeepSeek's chat completions wire format)
// for load runs: `make bench` points Helix's "deepseek" provider at it to measure what the gateway
// adds on top of a provider call.
//
//	go run ./infra/mockllm -addr 127.0.0.1:0 [-delay 20ms] [-token-delay 20ms] [-stream-tokens 50]
//
// The first line on stdout is the base URL (http://127.0.0.1:<port>), so scripts can read it;
// the provider's base URL is that URL, and requests go to <url>/chat/completions.
//
// Every POST to a path ending in /chat/completions without "stream": true gets the same answer: a
// short text with a fixed usage (see the constants below), rendered once at start-up by llmtest's
// OpenAI server, so it is byte for byte what the adapter tests use. The hot path only reads the
// request body into a pooled buffer, optionally sleeps -delay (simulated provider latency) and
// writes the prepared bytes: no per-request logging, no JSON work, no recording.
//
// A request with "stream": true is answered with Server-Sent Events in OpenAI's format (stream.go):
// after -delay, a role chunk, then -stream-tokens content chunks (one word each; fewer when the
// request's max_tokens is smaller, then finish_reason "length"), each after -token-delay, a chunk
// with the finish reason, a usage chunk when stream_options.include_usage is set, and data: [DONE].
// A client that goes away ends its stream at once.
//
// GET /stats answers {"requests":N,"connections":M,"streams":S,"open_streams":O}: the chat
// requests served (streamed ones included), the TCP connections accepted, the streamed answers
// started and those still open, to check how many upstream calls a load run made, whether its
// client reused connections, and how many streams are open at once. Anything else is a 404 in
// OpenAI's error format.
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
	"sync"
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

// options are the mock's behaviour, from its flags.
type options struct {
	delay        time.Duration // before the answer's first byte
	tokenDelay   time.Duration // before each content chunk of a streamed answer
	streamTokens int           // content chunks of a streamed answer
}

// defaultOptions: no latency, and a streamed answer of 50 words at 20 ms each.
var defaultOptions = options{tokenDelay: 20 * time.Millisecond, streamTokens: 50}

func main() {
	addr, o, err := parseFlags(os.Args[1:], os.Stderr)
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "mockllm:", err)
		}
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, addr, o, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "mockllm:", err)
		os.Exit(1)
	}
}

// parseFlags reads the command line; usage and flag errors go to errOut.
func parseFlags(args []string, errOut io.Writer) (string, options, error) {
	fs := flag.NewFlagSet("mockllm", flag.ContinueOnError)
	fs.SetOutput(errOut)
	addr := fs.String("addr", "127.0.0.1:0", "listen address (port 0: any free port)")
	delay := fs.Duration("delay", defaultOptions.delay, "time to wait before answering each chat request (simulated provider latency)")
	tokenDelay := fs.Duration("token-delay", defaultOptions.tokenDelay, "time to wait before each content chunk of a streamed answer")
	tokens := fs.Int("stream-tokens", defaultOptions.streamTokens, "content chunks (words) of a streamed answer, at most the request's max_tokens")
	if err := fs.Parse(args); err != nil {
		return "", options{}, err
	}
	switch {
	case fs.NArg() > 0:
		return "", options{}, fmt.Errorf("unexpected arguments %q", fs.Args())
	case *delay < 0:
		return "", options{}, errors.New("-delay must not be negative")
	case *tokenDelay < 0:
		return "", options{}, errors.New("-token-delay must not be negative")
	case *tokens < 1:
		return "", options{}, errors.New("-stream-tokens must be at least 1")
	}
	return *addr, options{delay: *delay, tokenDelay: *tokenDelay, streamTokens: *tokens}, nil
}

// run serves until ctx is done, after writing the base URL as the first line of out.
func run(ctx context.Context, addr string, o options, out io.Writer) error {
	m, err := newMock(o)
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
		// Open streams do not end by themselves soon: they are cut after the grace period.
		shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := hs.Shutdown(shutdown); err != nil && !errors.Is(err, context.DeadlineExceeded) {
			return err
		}
		_ = hs.Close()
		return nil
	}
}

// mock is the handler. Its header values are built once and shared by every response: net/http
// only reads them.
type mock struct {
	opts options
	// wait sleeps d, or less when ctx ends first (then it returns false); tests record the calls
	// instead.
	wait   func(ctx context.Context, d time.Duration) bool
	body   []byte
	stream *streamReply

	contentType   []string
	contentLength []string
	requestID     []string
	notFoundLen   []string
	eventStream   []string
	noCache       []string

	requests    atomic.Int64
	connections atomic.Int64
	streams     atomic.Int64
	openStreams atomic.Int64
}

func newMock(o options) (*mock, error) {
	body, err := renderReply()
	if err != nil {
		return nil, err
	}
	st, err := renderStream(o.streamTokens, time.Now().Unix())
	if err != nil {
		return nil, err
	}
	return &mock{
		opts:          o,
		wait:          wait,
		body:          body,
		stream:        st,
		contentType:   []string{"application/json"},
		contentLength: []string{strconv.Itoa(len(body))},
		requestID:     []string{replyID},
		notFoundLen:   []string{strconv.Itoa(len(notFoundReply))},
		eventStream:   []string{"text/event-stream"},
		noCache:       []string{"no-cache"},
	}, nil
}

// wait is mock.wait outside tests.
func wait(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
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

// bodies holds the request bodies while they are looked at: the hot path allocates none.
var bodies = sync.Pool{New: func() any { return new(bytes.Buffer) }}

func (m *mock) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, chatPathEnd):
		m.requests.Add(1)
		// The whole body is read (so the connection can be reused) and looked at for "stream".
		buf := bodies.Get().(*bytes.Buffer)
		buf.Reset()
		_, _ = buf.ReadFrom(r.Body)
		req, streamed := parseRequest(buf.Bytes())
		bodies.Put(buf)
		if streamed {
			m.serveStream(w, r, req)
			return
		}
		if m.opts.delay > 0 {
			m.wait(r.Context(), m.opts.delay)
		}
		h := w.Header()
		h["Content-Type"] = m.contentType
		h["Content-Length"] = m.contentLength
		h["X-Request-Id"] = m.requestID
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(m.body)
	case r.Method == http.MethodGet && r.URL.Path == statsPath:
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"requests":%d,"connections":%d,"streams":%d,"open_streams":%d}`+"\n",
			m.requests.Load(), m.connections.Load(), m.streams.Load(), m.openStreams.Load())
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
