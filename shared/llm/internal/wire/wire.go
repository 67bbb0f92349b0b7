// Package wire holds what the provider adapters share about HTTP: seeing the one exchange an SDK
// call made (status, headers, optionally the body) and turning HTTP-level failures into llm.Error
// kinds.
//
// The SDKs hide parts of the exchange the pipeline needs: go-openai drops the headers of error
// responses (so a 429's Retry-After is lost) and does not decode DeepSeek's cache fields; genai's
// APIError carries no headers. Rather than fork the SDKs, each adapter hands its SDK an
// *http.Client whose transport records the exchange into a per-call Exchange carried by the
// request's context. The SDKs pass the caller's context down to the request, so concurrent calls
// on one client never see each other's exchanges.
package wire

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/helixhq/helix/shared/llm"
)

// maxBody bounds how much of a response body an Exchange keeps. Chat answers are bounded by
// max_tokens and are far smaller; a body beyond this is simply not kept (Body returns nil).
const maxBody = 8 << 20

// Exchange is what the transport saw of one call's HTTP exchange. When an SDK sends more than one
// request in a call (it should not: retries are off), the last one wins.
type Exchange struct {
	keepBody bool

	mu       sync.Mutex
	sent     bool
	status   int
	header   http.Header
	body     bytes.Buffer
	overflow bool
}

type exchangeKey struct{}

// Track returns a context that makes the transport of a client built by Client record its
// exchange into the returned Exchange. keepBody also keeps a copy of the response body.
func Track(ctx context.Context, keepBody bool) (context.Context, *Exchange) {
	ex := &Exchange{keepBody: keepBody}
	return context.WithValue(ctx, exchangeKey{}, ex), ex
}

// Sent reports whether a request reached the transport (false: the SDK refused it first).
func (e *Exchange) Sent() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.sent
}

// Status is the HTTP status of the response, 0 when none arrived.
func (e *Exchange) Status() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.status
}

// Header is the response's header, nil when no response arrived.
func (e *Exchange) Header() http.Header {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.header
}

// Body is the part of the response body the SDK read, or nil when it was not kept (keepBody
// false, or larger than the limit).
func (e *Exchange) Body() []byte {
	e.mu.Lock()
	defer e.mu.Unlock()
	if !e.keepBody || e.overflow {
		return nil
	}
	return bytes.Clone(e.body.Bytes())
}

func (e *Exchange) start() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.sent = true
	e.status = 0
	e.header = nil
	e.body.Reset()
	e.overflow = false
}

func (e *Exchange) respond(status int, h http.Header) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.status = status
	e.header = h
}

func (e *Exchange) write(p []byte) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.overflow {
		return
	}
	if e.body.Len()+len(p) > maxBody {
		e.overflow = true
		e.body.Reset()
		return
	}
	e.body.Write(p)
}

// Client returns a copy of c (a new default client when nil) whose transport records exchanges
// for contexts made by Track. Requests without such a context pass through untouched.
func Client(c *http.Client) *http.Client {
	var out http.Client
	if c != nil {
		out = *c
	}
	out.Transport = transport{base: out.Transport}
	return &out
}

type transport struct{ base http.RoundTripper }

func (t transport) RoundTrip(req *http.Request) (*http.Response, error) {
	base := t.base
	if base == nil {
		base = http.DefaultTransport
	}
	ex, _ := req.Context().Value(exchangeKey{}).(*Exchange)
	if ex == nil {
		return base.RoundTrip(req)
	}
	ex.start()
	resp, err := base.RoundTrip(req)
	if resp != nil {
		ex.respond(resp.StatusCode, resp.Header.Clone())
		if ex.keepBody && resp.Body != nil {
			resp.Body = &teeBody{rc: resp.Body, ex: ex}
		}
	}
	return resp, err
}

type teeBody struct {
	rc io.ReadCloser
	ex *Exchange
}

func (b *teeBody) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	if n > 0 {
		b.ex.write(p[:n])
	}
	return n, err
}

func (b *teeBody) Close() error { return b.rc.Close() }

// KindForStatus classifies an HTTP error status.
func KindForStatus(status int) llm.ErrorKind {
	switch {
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		return llm.KindAuth
	case status == http.StatusTooManyRequests:
		return llm.KindRateLimited
	case status == http.StatusRequestTimeout:
		return llm.KindTimeout
	case status >= 500: // includes Anthropic's 529 overloaded
		return llm.KindUnavailable
	case status >= 400:
		return llm.KindInvalidRequest
	}
	// A non-error status reaching here means the body could not be used.
	return llm.KindBadResponse
}

// RetryAfter reads a provider's retry hint from response headers: retry-after-ms (OpenAI), or
// Retry-After as seconds (integer or decimal) or as an HTTP date. 0 when absent or unparseable.
func RetryAfter(h http.Header, now time.Time) time.Duration {
	if h == nil {
		return 0
	}
	if v := strings.TrimSpace(h.Get("Retry-After-Ms")); v != "" {
		if ms, err := strconv.ParseFloat(v, 64); err == nil && ms > 0 {
			return time.Duration(ms * float64(time.Millisecond))
		}
	}
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0
	}
	if s, err := strconv.ParseFloat(v, 64); err == nil {
		if s <= 0 {
			return 0
		}
		return time.Duration(s * float64(time.Second))
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := t.Sub(now); d > 0 {
			return d
		}
	}
	return 0
}

// IsTimeout reports whether err means the call ran out of time: the caller's context ended
// (deadline or cancel: either way the pipeline is no longer waiting) or a transport timeout hit.
func IsTimeout(ctx context.Context, err error) bool {
	if ctx.Err() != nil || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// Fallback classifies an SDK error that is not the provider's own error object, from what the
// transport saw: out of time, an error status whose body the SDK could not parse, a response that
// arrived but could not be decoded, a request the SDK refused to send, or a failed connection.
// It never includes err's text in Message: SDK errors may quote request or response bodies.
func Fallback(provider string, ctx context.Context, err error, ex *Exchange) *llm.Error {
	e := &llm.Error{Provider: provider, Err: err, StatusCode: ex.Status()}
	switch {
	case IsTimeout(ctx, err):
		e.Kind, e.Message = llm.KindTimeout, "no answer before the deadline"
	case e.StatusCode >= 400:
		e.Kind, e.Message = KindForStatus(e.StatusCode), "error response without a readable body"
		e.RetryAfter = RetryAfter(ex.Header(), time.Now())
	case e.StatusCode != 0:
		e.Kind, e.Message = llm.KindBadResponse, "response body could not be decoded"
	case !ex.Sent():
		e.Kind, e.Message = llm.KindInvalidRequest, "request rejected by the client library before sending"
	default:
		e.Kind, e.Message = llm.KindUnavailable, "connection failed"
	}
	return e
}

// CleanMessage makes a provider's error message safe and short enough to log: it removes the
// given secrets (API keys some providers echo back, partly masked or not), collapses whitespace
// and truncates.
func CleanMessage(msg string, secrets ...string) string {
	for _, s := range secrets {
		if s != "" {
			msg = strings.ReplaceAll(msg, s, "[redacted]")
		}
	}
	msg = strings.Join(strings.Fields(msg), " ")
	const limit = 200
	if len(msg) > limit {
		cut := limit
		for cut > 0 && !isRuneStart(msg[cut]) {
			cut--
		}
		msg = msg[:cut] + "…"
	}
	return msg
}

func isRuneStart(b byte) bool { return b&0xC0 != 0x80 }

// StatusMessage is the Message for an error response: the provider's own words, except for auth
// failures, whose messages tend to quote the key (masked or not) and help no one in a log.
func StatusMessage(kind llm.ErrorKind, providerMsg, apiKey string) string {
	if kind == llm.KindAuth {
		return "authentication rejected: check the API key"
	}
	if m := CleanMessage(providerMsg, apiKey); m != "" {
		return m
	}
	return "error response"
}

// NeedsMaxTokens is the error every adapter returns for a request without a positive
// MaxOutputTokens: the budget reserved a worst case that only holds when the cap is sent.
func NeedsMaxTokens(provider string) *llm.Error {
	return &llm.Error{Provider: provider, Kind: llm.KindInvalidRequest,
		Message: "MaxOutputTokens must be positive: it bounds the reserved cost"}
}
