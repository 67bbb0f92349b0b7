// Package llmtest runs local HTTP servers that speak the providers' wire formats (OpenAI-style
// chat completions as DeepSeek serves them, Gemini generateContent, Anthropic Messages), so the
// real SDK adapters can be tested, and the pipeline tested and benchmarked, without the internet.
//
// A server answers each request with the next scripted Reply, or with its default reply once the
// script is used up, and records every request it received. Bodies follow the providers'
// documented formats; the JSON is written here, field by field.
//
//	s := llmtest.NewOpenAI(t)                    // closed by t.Cleanup
//	s.Script(llmtest.RateLimited("3"), llmtest.OK("hi").WithUsage(llmtest.Usage{InputTokens: 9}))
//	p := openaicompat.New(openaicompat.Config{BaseURL: s.URL, APIKey: "k"})
//	...
//	body := s.Requests()[0].JSON()
//
// Streaming requests get the wire's Server-Sent Events (see stream.go: StreamOK, WithChunkDelay,
// StreamBreakAfter, StreamErrorAfter, ...), and StreamContract is the streaming half of the
// contract suite.
//
// Start* constructors take no testing.TB, for benchmarks and load runs: call Close yourself.
package llmtest

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/helixhq/helix/shared/llm"
)

// Wire names a provider wire format.
type Wire string

// Wire formats.
const (
	OpenAI    Wire = "openai"
	Gemini    Wire = "gemini"
	Anthropic Wire = "anthropic"
)

// Usage is the usage a reply reports, in normalized terms; each wire renders it the way that
// provider does (OpenAI-style prompt_tokens include cached and cache-write tokens, Anthropic's
// input_tokens include neither, and so on). Normalized (see Normalized) is what an adapter that
// reads the wire correctly reports back.
type Usage struct {
	InputTokens        int64 // uncached input, excluding cache writes
	CachedInputTokens  int64 // input read from the provider's cache
	CacheWriteTokens   int64 // input written to a 5-minute cache (Anthropic reports these apart)
	CacheWrite1hTokens int64 // input written to a 1-hour cache (Anthropic's cache_creation breakdown)
	OutputTokens       int64 // visible output
	ReasoningTokens    int64 // thinking / reasoning output
}

// Normalized is the llm.Usage an adapter of wire w must report for u: Anthropic reports cache
// writes apart; OpenAI-style and Gemini wires bill them as plain prompt tokens.
func (u Usage) Normalized(w Wire) llm.Usage {
	n := llm.Usage{InputTokens: u.InputTokens, CachedInputTokens: u.CachedInputTokens,
		OutputTokens: u.OutputTokens, ReasoningTokens: u.ReasoningTokens}
	if w == Anthropic {
		n.CacheWriteTokens, n.CacheWrite1hTokens = u.CacheWriteTokens, u.CacheWrite1hTokens
	} else {
		n.InputTokens += u.CacheWriteTokens + u.CacheWrite1hTokens
	}
	return n
}

// DefaultUsage is what replies that set no usage report.
func DefaultUsage() Usage { return Usage{InputTokens: 20, OutputTokens: 10} }

type replyKind int

const (
	kindOK replyKind = iota
	kindError
	kindHang
	kindMalformed
	kindFiltered
)

// Reply is one scripted answer. Build it with OK, Error, RateLimited, Hang, Malformed or
// Filtered, and adjust it with the With* methods (they return a copy).
type Reply struct {
	kind         replyKind
	text         string
	usage        *Usage
	rawUsage     json.RawMessage
	status       int
	message      string
	retryAfter   string
	retryDelay   string
	requestID    string
	model        string
	finishReason string
	delay        time.Duration

	// Streaming (see stream.go).
	chunks     []string
	echo       int
	chunkDelay time.Duration
	cut        streamCut
}

// OK is a successful answer with the given text, DefaultUsage() and a normal stop.
func OK(text string) Reply { return Reply{kind: kindOK, text: text} }

// Error is an error response with the wire's error body for status (the provider's error type
// and, for Gemini, the gRPC status name).
func Error(status int, message string) Reply {
	return Reply{kind: kindError, status: status, message: message}
}

// RateLimited is a 429 with a Retry-After header (seconds or an HTTP date; "" for none).
func RateLimited(retryAfter string) Reply {
	return Reply{kind: kindError, status: http.StatusTooManyRequests, message: "rate limit reached, slow down", retryAfter: retryAfter}
}

// Hang never answers: the handler waits until the client gives up (or the server closes), so a
// call returns only through its own deadline.
func Hang() Reply { return Reply{kind: kindHang} }

// Malformed is a 200 whose JSON body is cut off midway.
func Malformed() Reply { return Reply{kind: kindMalformed} }

// Filtered is the wire's content-filter answer: OpenAI finish_reason "content_filter", Gemini
// promptFeedback.blockReason "SAFETY" with no candidates, Anthropic stop_reason "refusal".
func Filtered() Reply { return Reply{kind: kindFiltered} }

// WithUsage sets the usage the reply reports.
func (r Reply) WithUsage(u Usage) Reply { r.usage = &u; return r }

// WithRawUsage replaces the usage object with this JSON, verbatim: for recorded usage shapes.
func (r Reply) WithRawUsage(raw string) Reply { r.rawUsage = json.RawMessage(raw); return r }

// WithFinishReason sets the wire's own finish/stop reason ("length", "MAX_TOKENS", "SAFETY",
// "max_tokens", "refusal", ...).
func (r Reply) WithFinishReason(reason string) Reply { r.finishReason = reason; return r }

// WithRequestID sets the request id the reply carries (header and/or body, as the wire does).
func (r Reply) WithRequestID(id string) Reply { r.requestID = id; return r }

// WithModel sets the model name the reply says answered (default: the one requested).
func (r Reply) WithModel(model string) Reply { r.model = model; return r }

// WithRetryAfter sets a Retry-After header on an error reply.
func (r Reply) WithRetryAfter(v string) Reply { r.retryAfter = v; return r }

// WithDelay makes the server wait d before answering (a slow provider); a client that gives up
// first gets nothing.
func (r Reply) WithDelay(d time.Duration) Reply { r.delay = d; return r }

// WithRetryDelay adds a google.rpc.RetryInfo detail ("7s") to a Gemini error reply.
func (r Reply) WithRetryDelay(d string) Reply { r.retryDelay = d; return r }

func (r Reply) usageOrDefault() Usage {
	if r.usage != nil {
		return *r.usage
	}
	return DefaultUsage()
}

// Request is what the server received.
type Request struct {
	Method string
	Path   string
	Header http.Header
	Body   []byte
	// Stream is true when the request asked for a streamed answer (OpenAI and Anthropic:
	// "stream": true; Gemini: the :streamGenerateContent method).
	Stream bool
}

// JSON decodes the body into a generic map (nil when it is not a JSON object). Numbers are
// float64, as encoding/json decodes them.
func (r Request) JSON() map[string]any {
	var m map[string]any
	if json.Unmarshal(r.Body, &m) != nil {
		return nil
	}
	return m
}

// Server is a local provider endpoint. It is safe for concurrent use.
type Server struct {
	// URL is the base URL to configure the adapter with.
	URL string

	wire      Wire
	srv       *httptest.Server
	done      chan struct{}
	closeOnce sync.Once

	mu       sync.Mutex
	script   []Reply
	fallback Reply
	apiKey   string
	requests []Request
	noRecord bool
	seq      int
	gone     int
}

// Start starts a server for the wire format; Close it when done.
func Start(w Wire) *Server {
	switch w {
	case OpenAI, Gemini, Anthropic:
	default:
		panic(fmt.Sprintf("llmtest: unknown wire %q", w))
	}
	s := &Server{wire: w, done: make(chan struct{}), fallback: OK("Hello from the " + string(w) + " test server.")}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	s.URL = s.srv.URL
	return s
}

// StartOpenAI starts an OpenAI-style (DeepSeek) server; the adapter's base URL is s.URL.
func StartOpenAI() *Server { return Start(OpenAI) }

// StartGemini starts a Gemini API server; the adapter's base URL is s.URL.
func StartGemini() *Server { return Start(Gemini) }

// StartAnthropic starts an Anthropic Messages server; the adapter's base URL is s.URL.
func StartAnthropic() *Server { return Start(Anthropic) }

// New starts a server that tb closes when the test ends.
func New(tb testing.TB, w Wire) *Server {
	tb.Helper()
	s := Start(w)
	tb.Cleanup(s.Close)
	return s
}

// NewOpenAI is New(tb, OpenAI).
func NewOpenAI(tb testing.TB) *Server { tb.Helper(); return New(tb, OpenAI) }

// NewGemini is New(tb, Gemini).
func NewGemini(tb testing.TB) *Server { tb.Helper(); return New(tb, Gemini) }

// NewAnthropic is New(tb, Anthropic).
func NewAnthropic(tb testing.TB) *Server { tb.Helper(); return New(tb, Anthropic) }

// Wire is the server's wire format.
func (s *Server) Wire() Wire { return s.wire }

// Script queues replies; each answers one request, in order.
func (s *Server) Script(replies ...Reply) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.script = append(s.script, replies...)
}

// SetDefault sets the reply used once the script is empty (initially OK with DefaultUsage()).
func (s *Server) SetDefault(r Reply) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fallback = r
}

// RequireAPIKey makes the server reject requests that do not carry key the way the wire sends
// it, as the provider does (Gemini: 400 API_KEY_INVALID; others: 401). Rejected requests are
// recorded but do not use up the script.
func (s *Server) RequireAPIKey(key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.apiKey = key
}

// SetRecording turns keeping requests on (the default) or off; load runs turn it off so memory
// stays flat. Count keeps counting either way.
func (s *Server) SetRecording(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.noRecord = !on
}

// Count is how many requests the server has received.
func (s *Server) Count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.seq
}

// Requests returns a copy of every request recorded so far, in arrival order.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.requests...)
}

// Close stops the server, releasing any Hang handlers first.
func (s *Server) Close() {
	s.closeOnce.Do(func() {
		close(s.done)
		s.srv.Close()
	})
}

// exchange is what a handler decided for one request.
type exchange struct {
	reply Reply
	seq   int
	model string
	body  []byte // the request body
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	listing := s.listsModels(r.Method, r.URL.Path)
	model, stream, ok := s.route(r.Method, r.URL.Path, body)
	rec := Request{Method: r.Method, Path: r.URL.Path, Header: r.Header.Clone(), Body: body, Stream: stream}

	s.mu.Lock()
	if !s.noRecord {
		s.requests = append(s.requests, rec)
	}
	s.seq++
	seq := s.seq
	wantKey := s.apiKey
	s.mu.Unlock()

	if !ok && !listing {
		s.writeError(w, exchange{reply: Error(http.StatusNotFound, "no such endpoint: "+r.Method+" "+r.URL.Path), seq: seq})
		return
	}
	if wantKey != "" && s.presentedKey(r) != wantKey {
		s.rejectKey(w, exchange{seq: seq, model: model})
		return
	}

	s.mu.Lock()
	reply := s.fallback
	if len(s.script) > 0 {
		reply = s.script[0]
		s.script = s.script[1:]
	}
	s.mu.Unlock()

	ex := exchange{reply: reply, seq: seq, model: model, body: body}
	if reply.model != "" {
		ex.model = reply.model
	}
	if reply.delay > 0 {
		t := time.NewTimer(reply.delay)
		defer t.Stop()
		select {
		case <-t.C:
		case <-r.Context().Done():
			return
		case <-s.done:
			return
		}
	}
	if stream && reply.kind != kindHang && reply.kind != kindError {
		s.writeStream(w, r, ex)
		return
	}
	switch reply.kind {
	case kindHang:
		select {
		case <-r.Context().Done():
		case <-s.done:
		}
	case kindError:
		s.writeError(w, ex)
	case kindMalformed:
		writeJSON(w, http.StatusOK, nil, []byte(s.malformedBody()))
	default:
		if listing {
			s.writeModels(w)
			return
		}
		if reply.echo > 0 {
			ex.reply.text = strings.Join(ex.chunks(), "")
		}
		s.writeAnswer(w, ex)
	}
}

// listsModels: the wire's model listing (GET), what a health probe calls because it costs nothing.
func (s *Server) listsModels(method, path string) bool {
	if method != http.MethodGet {
		return false
	}
	switch s.wire {
	case OpenAI:
		return strings.HasSuffix(path, "/models")
	case Anthropic:
		return path == "/v1/models"
	default:
		return path == "/v1beta/models" || path == "/v1/models"
	}
}

// writeModels answers a model listing in the wire's shape.
func (s *Server) writeModels(w http.ResponseWriter) {
	switch s.wire {
	case OpenAI:
		writeJSON(w, http.StatusOK, nil, mustJSON(map[string]any{"object": "list",
			"data": []any{map[string]any{"id": "deepseek-chat", "object": "model", "created": 1, "owned_by": "test"}}}))
	case Anthropic:
		writeJSON(w, http.StatusOK, map[string]string{"request-id": "req_models"}, mustJSON(map[string]any{
			"data":     []any{map[string]any{"id": "claude-haiku-4-5", "type": "model", "display_name": "Claude Haiku 4.5", "created_at": "2025-10-01T00:00:00Z"}},
			"has_more": false, "first_id": "claude-haiku-4-5", "last_id": "claude-haiku-4-5"}))
	default:
		writeJSON(w, http.StatusOK, nil, mustJSON(map[string]any{"models": []any{map[string]any{
			"name": "models/gemini-2.5-flash-lite", "displayName": "Gemini 2.5 Flash-Lite", "supportedGenerationMethods": []string{"generateContent"}}}}))
	}
}

// route checks the endpoint and returns the requested model and whether a stream was asked for.
func (s *Server) route(method, path string, body []byte) (model string, stream, ok bool) {
	if method != http.MethodPost {
		return "", false, false
	}
	var m struct {
		Model  string `json:"model"`
		Stream bool   `json:"stream"`
	}
	switch s.wire {
	case OpenAI:
		_ = json.Unmarshal(body, &m)
		return m.Model, m.Stream, strings.HasSuffix(path, "/chat/completions")
	case Anthropic:
		_ = json.Unmarshal(body, &m)
		return m.Model, m.Stream, path == "/v1/messages"
	default: // Gemini: /{version}/models/{model}:generateContent or :streamGenerateContent
		rest, ok := strings.CutPrefix(path, "/v1beta/models/")
		if !ok {
			rest, ok = strings.CutPrefix(path, "/v1/models/")
		}
		if model, found := strings.CutSuffix(rest, ":streamGenerateContent"); found {
			return model, true, ok && model != ""
		}
		model, found := strings.CutSuffix(rest, ":generateContent")
		return model, false, ok && found && model != ""
	}
}

func (s *Server) presentedKey(r *http.Request) string {
	switch s.wire {
	case Gemini:
		if k := r.Header.Get("x-goog-api-key"); k != "" {
			return k
		}
		return r.URL.Query().Get("key")
	case Anthropic:
		return r.Header.Get("x-api-key")
	default:
		return strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
	}
}

func (s *Server) writeAnswer(w http.ResponseWriter, ex exchange) {
	switch s.wire {
	case OpenAI:
		openaiAnswer(w, ex)
	case Gemini:
		geminiAnswer(w, ex)
	default:
		anthropicAnswer(w, ex)
	}
}

func (s *Server) writeError(w http.ResponseWriter, ex exchange) {
	switch s.wire {
	case OpenAI:
		openaiError(w, ex)
	case Gemini:
		geminiError(w, ex)
	default:
		anthropicError(w, ex)
	}
}

func (s *Server) rejectKey(w http.ResponseWriter, ex exchange) {
	switch s.wire {
	case Gemini:
		geminiInvalidKey(w, ex)
	default:
		ex.reply = Error(http.StatusUnauthorized, "invalid x-api-key / bearer token")
		s.writeError(w, ex)
	}
}

func (s *Server) malformedBody() string {
	switch s.wire {
	case OpenAI:
		return `{"id":"chatcmpl-broken","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"the answer was cut`
	case Gemini:
		return `{"candidates":[{"content":{"role":"model","parts":[{"text":"the answer was cut`
	default:
		return `{"id":"msg_broken","type":"message","role":"assistant","content":[{"type":"text","text":"the answer was cut`
	}
}

// writeJSON writes status, extra headers and body.
func writeJSON(w http.ResponseWriter, status int, header map[string]string, body []byte) {
	w.Header().Set("Content-Type", "application/json")
	for k, v := range header {
		if v != "" {
			w.Header().Set(k, v)
		}
	}
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// mustJSON marshals values built in this package; failure is a bug here.
func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic("llmtest: " + err.Error())
	}
	return b
}

func orDefault(v, def string) string {
	if v != "" {
		return v
	}
	return def
}
