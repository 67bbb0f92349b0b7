package llmtest

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/helixhq/helix/shared/llm"
)

// NewProviderFunc builds the adapter under test against a server's base URL with an API key.
type NewProviderFunc func(t *testing.T, baseURL, apiKey string) llm.Provider

// contractKey and contractPrompt are looked for in error messages, which must never hold them.
const (
	contractKey    = "sk-contract-SECRET-0123456789"
	contractPrompt = "PROMPT-SECRET: the quarterly numbers are"
)

// ContractRequest is the request the contract suite sends.
func ContractRequest(model string) llm.Request {
	return llm.Request{
		Model:           model,
		Messages:        []llm.Message{{Role: llm.RoleSystem, Content: "You are terse."}, {Role: llm.RoleUser, Content: contractPrompt}},
		MaxOutputTokens: 256,
	}
}

// RequireError asserts err is an *llm.Error of the given kind and returns it.
func RequireError(t testing.TB, err error, kind llm.ErrorKind) *llm.Error {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want kind %s", kind)
	}
	var e *llm.Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v (%T) is not an *llm.Error", err, err)
	}
	if e.Kind != kind {
		t.Fatalf("error kind = %s, want %s (error: %v)", e.Kind, kind, e)
	}
	return e
}

// Contract runs the behaviour every HTTP adapter shares against a server of wire w: success with
// normalized usage, request id and finish reasons; each failure class mapped to its kind (429
// with its retry hint, 5xx, a hung server against a short deadline, a cut-off body, a content
// filter, a wrong key, any other 4xx); exactly one HTTP request per call (no SDK retries); no key
// or prompt in error messages; MaxOutputTokens enforced before sending; concurrent calls kept
// apart.
func Contract(t *testing.T, w Wire, model string, newProvider NewProviderFunc) {
	setup := func(t *testing.T) (*Server, llm.Provider) {
		s := New(t, w)
		return s, newProvider(t, s.URL, contractKey)
	}
	call := func(p llm.Provider, timeout time.Duration) (llm.Response, error) {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		return p.Complete(ctx, ContractRequest(model))
	}
	noSecrets := func(t *testing.T, err error) {
		t.Helper()
		var e *llm.Error
		if !errors.As(err, &e) {
			return
		}
		for _, s := range []string{e.Error(), e.Message} {
			if strings.Contains(s, contractKey) || strings.Contains(s, "PROMPT-SECRET") {
				t.Errorf("error text leaks the key or the prompt: %q", s)
			}
		}
	}
	oneRequest := func(t *testing.T, s *Server) {
		t.Helper()
		if n := len(s.Requests()); n != 1 {
			t.Errorf("server got %d requests, want exactly 1 (the adapter must not retry)", n)
		}
	}

	t.Run("probe", func(t *testing.T) {
		s, p := setup(t)
		pr, ok := p.(llm.Prober)
		if !ok {
			t.Fatal("the adapter cannot be probed (llm.Prober): the audit function's health checks need it")
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := pr.Probe(ctx); err != nil {
			t.Fatalf("Probe of a healthy server: %v", err)
		}
		reqs := s.Requests()
		if len(reqs) != 1 || reqs[0].Method != "GET" {
			t.Fatalf("a probe sent %v, want one GET of the model list", reqs)
		}
		s.Script(Error(503, "overloaded"))
		err := pr.Probe(ctx)
		RequireError(t, err, llm.KindUnavailable)
		noSecrets(t, err)
		if n := len(s.Requests()); n != 2 {
			t.Errorf("a failed probe made %d requests, want 1 (no retries)", n-1)
		}
	})

	t.Run("success", func(t *testing.T) {
		s, p := setup(t)
		u := Usage{InputTokens: 100, CachedInputTokens: 40, CacheWriteTokens: 25, CacheWrite1hTokens: 7, OutputTokens: 30, ReasoningTokens: 12}
		s.Script(OK("Hello there.").WithUsage(u).WithRequestID("req-contract-1"))
		resp, err := call(p, 5*time.Second)
		if err != nil {
			t.Fatalf("Complete: %v", err)
		}
		want := llm.Response{
			Text:              "Hello there.",
			Usage:             u.Normalized(w),
			ProviderRequestID: "req-contract-1",
			Model:             model,
			FinishReason:      "stop",
		}
		if resp != want {
			t.Errorf("response = %+v\nwant       %+v", resp, want)
		}
		oneRequest(t, s)
	})

	t.Run("cut at max tokens", func(t *testing.T) {
		s, p := setup(t)
		s.Script(OK("Hello th").WithFinishReason(lengthReason(w)))
		resp, err := call(p, 5*time.Second)
		if err != nil {
			t.Fatalf("Complete: %v", err)
		}
		if resp.FinishReason != "length" || resp.Text != "Hello th" {
			t.Errorf("got finish %q text %q, want length and the partial text", resp.FinishReason, resp.Text)
		}
	})

	t.Run("429 with retry-after", func(t *testing.T) {
		s, p := setup(t)
		s.Script(RateLimited("7").WithRequestID("req-limited"))
		_, err := call(p, 5*time.Second)
		e := RequireError(t, err, llm.KindRateLimited)
		if e.RetryAfter != 7*time.Second || e.StatusCode != http.StatusTooManyRequests || !e.Retryable() {
			t.Errorf("got RetryAfter %v status %d retryable %t, want 7s, 429, true", e.RetryAfter, e.StatusCode, e.Retryable())
		}
		if w != Gemini && e.RequestID != "req-limited" {
			t.Errorf("RequestID = %q, want req-limited", e.RequestID)
		}
		if e.Provider != p.Name() {
			t.Errorf("Provider = %q, want %q", e.Provider, p.Name())
		}
		oneRequest(t, s)
		noSecrets(t, err)
	})

	for _, status := range []int{http.StatusInternalServerError, http.StatusServiceUnavailable} {
		t.Run(http.StatusText(status), func(t *testing.T) {
			s, p := setup(t)
			s.Script(Error(status, "upstream trouble"))
			_, err := call(p, 5*time.Second)
			e := RequireError(t, err, llm.KindUnavailable)
			if e.StatusCode != status || !e.Retryable() {
				t.Errorf("got status %d retryable %t, want %d, true", e.StatusCode, e.Retryable(), status)
			}
			oneRequest(t, s)
			noSecrets(t, err)
		})
	}

	t.Run("timeout", func(t *testing.T) {
		// The server never answers; the call can only come back through its deadline.
		s, p := setup(t)
		s.Script(Hang())
		_, err := call(p, 100*time.Millisecond)
		e := RequireError(t, err, llm.KindTimeout)
		if e.StatusCode != 0 {
			t.Errorf("StatusCode = %d, want 0 (no response)", e.StatusCode)
		}
		oneRequest(t, s)
		noSecrets(t, err)
	})

	t.Run("malformed body", func(t *testing.T) {
		s, p := setup(t)
		s.Script(Malformed())
		_, err := call(p, 5*time.Second)
		RequireError(t, err, llm.KindBadResponse)
		oneRequest(t, s)
		noSecrets(t, err)
	})

	t.Run("content filtered", func(t *testing.T) {
		s, p := setup(t)
		billed := Usage{InputTokens: 120, CachedInputTokens: 8, OutputTokens: 9}
		s.Script(Filtered().WithUsage(billed))
		_, err := call(p, 5*time.Second)
		e := RequireError(t, err, llm.KindContentFiltered)
		if !e.Final() {
			t.Error("a content-filtered error must be final")
		}
		// The provider billed the refusal: its usage travels with the error.
		if e.Usage == nil || *e.Usage != billed.Normalized(w) {
			t.Errorf("Usage = %+v, want the billed %+v", e.Usage, billed.Normalized(w))
		}
		noSecrets(t, err)
	})

	t.Run("billed empty answer", func(t *testing.T) {
		s, p := setup(t)
		billed := Usage{InputTokens: 64, OutputTokens: 3}
		s.Script(OK("").WithUsage(billed))
		_, err := call(p, 5*time.Second)
		e := RequireError(t, err, llm.KindBadResponse)
		if e.Usage == nil || *e.Usage != billed.Normalized(w) {
			t.Errorf("Usage = %+v, want the billed %+v", e.Usage, billed.Normalized(w))
		}
	})

	t.Run("HTTP errors carry no usage", func(t *testing.T) {
		s, p := setup(t)
		s.Script(Error(http.StatusBadRequest, "bad request"), Error(http.StatusInternalServerError, "boom"))
		for range 2 {
			_, err := call(p, 5*time.Second)
			var e *llm.Error
			if !errors.As(err, &e) || e.Usage != nil {
				t.Errorf("error %v carries usage %+v; an HTTP error bills nothing", err, e.Usage)
			}
		}
	})

	t.Run("wrong key", func(t *testing.T) {
		s, p := setup(t)
		s.RequireAPIKey("the-right-key")
		_, err := call(p, 5*time.Second)
		e := RequireError(t, err, llm.KindAuth)
		if e.Retryable() {
			t.Error("an auth error must not be retryable")
		}
		oneRequest(t, s)
		noSecrets(t, err)
	})

	t.Run("401", func(t *testing.T) {
		s, p := setup(t)
		s.Script(Error(http.StatusUnauthorized, "invalid key "+contractKey))
		_, err := call(p, 5*time.Second)
		e := RequireError(t, err, llm.KindAuth)
		if e.StatusCode != http.StatusUnauthorized {
			t.Errorf("StatusCode = %d, want 401", e.StatusCode)
		}
		noSecrets(t, err)
	})

	t.Run("other 4xx", func(t *testing.T) {
		s, p := setup(t)
		s.Script(Error(http.StatusBadRequest, "context too long"))
		_, err := call(p, 5*time.Second)
		e := RequireError(t, err, llm.KindInvalidRequest)
		if !strings.Contains(e.Message, "context too long") {
			t.Errorf("Message = %q, want the provider's reason", e.Message)
		}
		oneRequest(t, s)
	})

	t.Run("max tokens required", func(t *testing.T) {
		s, p := setup(t)
		req := ContractRequest(model)
		req.MaxOutputTokens = 0
		_, err := p.Complete(context.Background(), req)
		RequireError(t, err, llm.KindInvalidRequest)
		if n := len(s.Requests()); n != 0 {
			t.Errorf("server got %d requests; a request without max tokens must not be sent", n)
		}
	})

	t.Run("concurrent calls", func(t *testing.T) {
		s, p := setup(t)
		s.SetDefault(OK("fine").WithUsage(Usage{InputTokens: 5, OutputTokens: 2}))
		var wg sync.WaitGroup
		errs := make(chan error, 16)
		for range 16 {
			wg.Go(func() {
				resp, err := call(p, 10*time.Second)
				if err == nil && (resp.Text != "fine" || resp.Usage.InputTokens != 5) {
					err = errors.New("wrong answer: " + resp.Text)
				}
				if err != nil {
					errs <- err
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
	})
}

// lengthReason is the wire's finish reason for an answer cut at max tokens.
func lengthReason(w Wire) string {
	switch w {
	case Gemini:
		return "MAX_TOKENS"
	case Anthropic:
		return "max_tokens"
	}
	return "length"
}
