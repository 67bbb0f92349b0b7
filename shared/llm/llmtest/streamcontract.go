package llmtest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/helixhq/helix/shared/llm"
)

// returnBound is how long a Next may take to notice that its context ended or its stream was
// closed. The servers below never end those streams themselves, so a Next that returns at all
// returned because of the client; the bound only keeps a broken adapter from hanging the test.
const returnBound = 5 * time.Second

// ReadStream calls Next until it returns an error and returns the deltas and that error (io.EOF
// at a clean end). It fails the test on an empty delta.
func ReadStream(t testing.TB, st llm.Stream) ([]string, error) {
	t.Helper()
	var got []string
	for {
		d, err := st.Next()
		if err != nil {
			return got, err
		}
		if d.Text == "" {
			t.Error("Next returned an empty delta")
		}
		got = append(got, d.Text)
		if len(got) > 10000 {
			t.Fatal("the stream does not end")
		}
	}
}

// StreamContract runs the streaming behaviour every HTTP adapter shares against a server of wire
// w; newProvider's providers must implement llm.Streamer. Deltas come in order and add up to
// Response().Text, with normalized usage, request id, model and finish reason at the end; every
// failure before the first text (each error status, a hung server, a content filter, an empty
// answer, a stream that breaks off or fails before its first text) comes from Stream with
// Complete's kinds; failures after it (an error event, a cut connection, a malformed event, the
// deadline, the caller going away) come from Next with the text so far and any usage reported;
// a caller that cancels or closes ends the HTTP exchange; one HTTP request per stream; Close is
// idempotent; concurrent streams are kept apart.
func StreamContract(t *testing.T, w Wire, model string, newProvider NewProviderFunc) {
	setup := func(t *testing.T) (*Server, llm.Streamer) {
		s := New(t, w)
		p := newProvider(t, s.URL, contractKey)
		st, ok := p.(llm.Streamer)
		if !ok {
			t.Fatalf("%T does not implement llm.Streamer", p)
		}
		return s, st
	}
	open := func(t *testing.T, p llm.Streamer, timeout time.Duration) (llm.Stream, context.CancelFunc, error) {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		st, err := p.Stream(ctx, ContractRequest(model))
		if err == nil && st == nil {
			t.Fatal("Stream returned neither a stream nor an error")
		}
		if err == nil {
			t.Cleanup(func() { _ = st.Close() })
		}
		return st, cancel, err
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
	oneStreamRequest := func(t *testing.T, s *Server) {
		t.Helper()
		reqs := s.Requests()
		if len(reqs) != 1 {
			t.Errorf("server got %d requests, want exactly 1 (the adapter must not retry)", len(reqs))
			return
		}
		if !reqs[0].Stream {
			t.Errorf("the request did not ask for a stream: %s %s", reqs[0].Method, reqs[0].Path)
		}
	}
	// waitGone waits (within returnBound) until the server saw its client go away.
	waitGone := func(t *testing.T, s *Server) {
		t.Helper()
		deadline := time.Now().Add(returnBound)
		for s.ClientsGone() == 0 {
			if time.Now().After(deadline) {
				t.Error("the server never saw the client go away: the HTTP connection was left open")
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	// nextWithin calls Next in a goroutine and fails the test if it does not return in time.
	nextWithin := func(t *testing.T, st llm.Stream) error {
		t.Helper()
		done := make(chan error, 1)
		go func() {
			_, err := ReadStream(t, st)
			done <- err
		}()
		select {
		case err := <-done:
			return err
		case <-time.After(returnBound):
			t.Fatalf("Next did not return within %v", returnBound)
			return nil
		}
	}
	usage := Usage{InputTokens: 100, CachedInputTokens: 40, CacheWriteTokens: 25, CacheWrite1hTokens: 7, OutputTokens: 30, ReasoningTokens: 12}

	t.Run("stream success", func(t *testing.T) {
		s, p := setup(t)
		chunks := []string{"Hel", "lo ", "there", ", ", "friend."}
		s.Script(StreamOK(chunks...).WithUsage(usage).WithRequestID("req-contract-1"))
		st, cancel, err := open(t, p, 5*time.Second)
		defer cancel()
		if err != nil {
			t.Fatalf("Stream: %v", err)
		}
		got, err := ReadStream(t, st)
		if err != io.EOF {
			t.Fatalf("stream ended with %v, want io.EOF", err)
		}
		if strings.Join(got, "|") != strings.Join(chunks, "|") {
			t.Errorf("deltas = %q, want %q in order", got, chunks)
		}
		want := llm.StreamResponse{
			Response: llm.Response{
				Text:              strings.Join(chunks, ""),
				Usage:             usage.Normalized(w),
				ProviderRequestID: "req-contract-1",
				Model:             model,
				FinishReason:      "stop",
			},
			HasUsage: true,
			Chunks:   len(chunks),
		}
		if resp := st.Response(); resp != want {
			t.Errorf("response = %+v\nwant       %+v", resp, want)
		}
		if _, err := st.Next(); err != io.EOF {
			t.Errorf("Next after the end = %v, want io.EOF again", err)
		}
		if err := st.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		if err := st.Close(); err != nil {
			t.Errorf("second Close: %v", err)
		}
		oneStreamRequest(t, s)
		if w == OpenAI {
			opts, _ := s.Requests()[0].JSON()["stream_options"].(map[string]any)
			if opts["include_usage"] != true {
				t.Errorf("stream_options = %v, want include_usage true (else no usage is reported)", opts)
			}
		}
	})

	t.Run("stream cut at max tokens", func(t *testing.T) {
		s, p := setup(t)
		s.Script(StreamOK("Hello", " th").WithFinishReason(lengthReason(w)))
		st, cancel, err := open(t, p, 5*time.Second)
		defer cancel()
		if err != nil {
			t.Fatalf("Stream: %v", err)
		}
		if _, err := ReadStream(t, st); err != io.EOF {
			t.Fatalf("stream ended with %v, want io.EOF", err)
		}
		resp := st.Response()
		if resp.FinishReason != "length" || resp.Text != "Hello th" || resp.Usage != DefaultUsage().Normalized(w) {
			t.Errorf("got finish %q text %q usage %+v, want length, the partial text and the usage", resp.FinishReason, resp.Text, resp.Usage)
		}
	})

	billed := Usage{InputTokens: 120, CachedInputTokens: 8, OutputTokens: 9}
	before := []struct {
		name    string
		reply   Reply
		timeout time.Duration
		kind    llm.ErrorKind
		status  int
		usage   *llm.Usage
	}{
		{name: "429", reply: RateLimited("7").WithRequestID("req-limited"), kind: llm.KindRateLimited, status: http.StatusTooManyRequests},
		{name: "500", reply: Error(http.StatusInternalServerError, "upstream trouble"), kind: llm.KindUnavailable, status: 500},
		{name: "503", reply: Error(http.StatusServiceUnavailable, "overloaded"), kind: llm.KindUnavailable, status: 503},
		{name: "400", reply: Error(http.StatusBadRequest, "context too long"), kind: llm.KindInvalidRequest, status: 400},
		{name: "401", reply: Error(http.StatusUnauthorized, "invalid key "+contractKey), kind: llm.KindAuth, status: 401},
		{name: "hung before the headers", reply: Hang(), timeout: 500 * time.Millisecond, kind: llm.KindTimeout},
		{name: "hung before the first chunk", reply: StreamOK("never", " sent").StreamHangAfter(0), timeout: 500 * time.Millisecond, kind: llm.KindTimeout},
		{name: "malformed first event", reply: Malformed(), kind: llm.KindBadResponse},
		{name: "error event before the first chunk", reply: StreamOK("never").StreamErrorAfter(0, 529, "Overloaded"), kind: llm.KindUnavailable},
		{name: "rate limit event before the first chunk", reply: StreamOK("never").StreamErrorAfter(0, 429, "slow down"), kind: llm.KindRateLimited},
		{name: "cut before the first chunk", reply: StreamOK("never").StreamBreakAfter(0), kind: llm.KindUnavailable},
		{name: "content filtered", reply: Filtered().WithUsage(billed), kind: llm.KindContentFiltered, usage: ptr(billed.Normalized(w))},
		{name: "billed empty answer", reply: StreamOK().WithUsage(billed), kind: llm.KindBadResponse, usage: ptr(billed.Normalized(w))},
	}
	for _, tt := range before {
		t.Run("before the first chunk: "+tt.name, func(t *testing.T) {
			s, p := setup(t)
			s.Script(tt.reply)
			timeout := tt.timeout
			if timeout == 0 {
				timeout = 5 * time.Second
			}
			st, cancel, err := open(t, p, timeout)
			defer cancel()
			if err == nil {
				got, nerr := ReadStream(t, st)
				t.Fatalf("Stream succeeded (deltas %q, then %v); a failure before any text must come from Stream", got, nerr)
			}
			e := RequireError(t, err, tt.kind)
			if tt.status != 0 && e.StatusCode != tt.status {
				t.Errorf("StatusCode = %d, want %d", e.StatusCode, tt.status)
			}
			if tt.kind == llm.KindRateLimited && tt.status != 0 {
				if e.RetryAfter != 7*time.Second {
					t.Errorf("RetryAfter = %v, want 7s", e.RetryAfter)
				}
				if w != Gemini && e.RequestID != "req-limited" {
					t.Errorf("RequestID = %q, want req-limited", e.RequestID)
				}
			}
			if e.Provider == "" {
				t.Error("Provider is empty")
			}
			if tt.usage != nil && (e.Usage == nil || *e.Usage != *tt.usage) {
				t.Errorf("Usage = %+v, want the billed %+v", e.Usage, *tt.usage)
			}
			if tt.status != 0 && e.Usage != nil {
				t.Errorf("an HTTP error carries usage %+v; it bills nothing", *e.Usage)
			}
			oneStreamRequest(t, s)
			noSecrets(t, err)
		})
	}

	t.Run("before the first chunk: connection refused", func(t *testing.T) {
		s, p := setup(t)
		s.Close()
		_, cancel, err := open(t, p, 5*time.Second)
		defer cancel()
		RequireError(t, err, llm.KindUnavailable)
		noSecrets(t, err)
	})

	t.Run("max tokens required", func(t *testing.T) {
		s, p := setup(t)
		req := ContractRequest(model)
		req.MaxOutputTokens = 0
		st, err := p.Stream(context.Background(), req)
		if st != nil {
			_ = st.Close()
		}
		RequireError(t, err, llm.KindInvalidRequest)
		if n := len(s.Requests()); n != 0 {
			t.Errorf("server got %d requests; a request without max tokens must not be sent", n)
		}
	})

	chunks := []string{"one ", "two ", "three ", "four ", "five"}
	mid := []struct {
		name  string
		reply Reply
		kind  llm.ErrorKind
	}{
		{name: "overloaded event", reply: StreamOK(chunks...).WithUsage(usage).StreamErrorAfter(2, 529, "Overloaded"), kind: llm.KindUnavailable},
		{name: "server error event", reply: StreamOK(chunks...).WithUsage(usage).StreamErrorAfter(2, 500, "internal error"), kind: llm.KindUnavailable},
		{name: "rate limit event", reply: StreamOK(chunks...).WithUsage(usage).StreamErrorAfter(2, 429, "rate limited"), kind: llm.KindRateLimited},
		{name: "invalid request event", reply: StreamOK(chunks...).WithUsage(usage).StreamErrorAfter(2, 400, "bad "+contractKey), kind: llm.KindInvalidRequest},
		{name: "cut connection", reply: StreamOK(chunks...).WithUsage(usage).StreamBreakAfter(2), kind: llm.KindUnavailable},
		{name: "malformed event", reply: StreamOK(chunks...).WithUsage(usage).StreamMalformedAfter(2), kind: llm.KindBadResponse},
	}
	for _, tt := range mid {
		t.Run("mid-stream: "+tt.name, func(t *testing.T) {
			s, p := setup(t)
			s.Script(tt.reply)
			st, cancel, err := open(t, p, 5*time.Second)
			defer cancel()
			if err != nil {
				t.Fatalf("Stream: %v", err)
			}
			got, err := ReadStream(t, st)
			e := RequireError(t, err, tt.kind)
			if strings.Join(got, "") != "one two " {
				t.Errorf("deltas before the failure = %q, want the first two chunks", got)
			}
			resp := st.Response()
			if resp.Text != "one two " || resp.Chunks != 2 {
				t.Errorf("partial response: text %q chunks %d, want %q and 2", resp.Text, resp.Chunks, "one two ")
			}
			want := PartialUsage(w, usage)
			switch {
			case want == nil && (e.Usage != nil || resp.HasUsage):
				t.Errorf("usage %+v (HasUsage %t) reported, but the provider reported none", e.Usage, resp.HasUsage)
			case want != nil && (e.Usage == nil || *e.Usage != *want || !resp.HasUsage || resp.Usage != *want):
				t.Errorf("error usage %+v, response usage %+v (HasUsage %t); want the reported %+v", e.Usage, resp.Usage, resp.HasUsage, *want)
			}
			if _, again := st.Next(); !errors.Is(again, e) {
				t.Errorf("Next after the failure = %v, want the same error", again)
			}
			oneStreamRequest(t, s)
			noSecrets(t, err)
		})
	}

	t.Run("slow provider within the deadline", func(t *testing.T) {
		s, p := setup(t)
		s.Script(StreamOK(chunks...).WithChunkDelay(20 * time.Millisecond))
		st, cancel, err := open(t, p, 10*time.Second)
		defer cancel()
		if err != nil {
			t.Fatalf("Stream: %v", err)
		}
		got, err := ReadStream(t, st)
		if err != io.EOF || strings.Join(got, "") != strings.Join(chunks, "") {
			t.Errorf("got %q then %v, want every chunk then io.EOF", got, err)
		}
	})

	t.Run("slow provider beyond the deadline", func(t *testing.T) {
		// 40 chunks 100ms apart cannot all arrive within a second.
		s, p := setup(t)
		s.Script(EchoModel(40).WithChunkDelay(100 * time.Millisecond))
		st, cancel, err := open(t, p, time.Second)
		defer cancel()
		if err != nil {
			// Only a very slow machine misses even the first chunk.
			RequireError(t, err, llm.KindTimeout)
			return
		}
		got, err := ReadStream(t, st)
		e := RequireError(t, err, llm.KindTimeout)
		if len(got) == 0 || len(got) >= 40 || st.Response().Chunks != len(got) {
			t.Errorf("got %d chunks (response says %d), want some but not all", len(got), st.Response().Chunks)
		}
		if e.Usage != nil && PartialUsage(w, DefaultUsage()) == nil {
			t.Errorf("usage %+v on a timeout, but the provider reported none", *e.Usage)
		}
		waitGone(t, s)
		oneStreamRequest(t, s)
	})

	t.Run("client goes away: context cancelled", func(t *testing.T) {
		s, p := setup(t)
		s.Script(StreamOK("a ", "b ", "c ", "d ", "e").StreamHangAfter(3))
		st, cancel, err := open(t, p, 30*time.Second)
		defer cancel()
		if err != nil {
			t.Fatalf("Stream: %v", err)
		}
		for i := range 3 {
			if _, err := st.Next(); err != nil {
				t.Fatalf("Next %d: %v", i, err)
			}
		}
		cancel()
		RequireError(t, nextWithin(t, st), llm.KindTimeout)
		if resp := st.Response(); resp.Text != "a b c " || resp.Chunks != 3 {
			t.Errorf("partial response: text %q chunks %d, want %q and 3", resp.Text, resp.Chunks, "a b c ")
		}
		waitGone(t, s)
		for range 2 {
			if err := st.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
		}
	})

	t.Run("client goes away: Close mid-stream", func(t *testing.T) {
		s, p := setup(t)
		s.Script(StreamOK("a ", "b ", "c ", "d ", "e").StreamHangAfter(3))
		st, cancel, err := open(t, p, 30*time.Second)
		defer cancel()
		if err != nil {
			t.Fatalf("Stream: %v", err)
		}
		for i := range 3 {
			if _, err := st.Next(); err != nil {
				t.Fatalf("Next %d: %v", i, err)
			}
		}
		for range 2 {
			if err := st.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
		}
		waitGone(t, s)
		// A closed stream is not a finished one: it must not look like a complete answer.
		err = nextWithin(t, st)
		if err == io.EOF {
			t.Error("Next after Close = io.EOF; a stream closed before its end must not look complete")
		}
		var e *llm.Error
		if !errors.As(err, &e) {
			t.Errorf("Next after Close = %v, want an *llm.Error", err)
		}
	})

	t.Run("concurrent streams", func(t *testing.T) {
		s, p := setup(t)
		s.SetDefault(EchoModel(6).WithChunkDelay(time.Millisecond))
		const n = 12
		var wg sync.WaitGroup
		errs := make(chan error, n)
		for i := range n {
			wg.Go(func() {
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				defer cancel()
				req := ContractRequest(fmt.Sprintf("%s-%d", model, i))
				st, err := p.Stream(ctx, req)
				if err != nil {
					errs <- err
					return
				}
				defer st.Close()
				var b strings.Builder
				for {
					d, err := st.Next()
					if err == io.EOF {
						break
					}
					if err != nil {
						errs <- err
						return
					}
					b.WriteString(d.Text)
				}
				want := ""
				for j := range 6 {
					want += fmt.Sprintf("[%s %d/6] ", req.Model, j+1)
				}
				if resp := st.Response(); b.String() != want || resp.Text != want || resp.Model != req.Model {
					errs <- fmt.Errorf("stream %d got %q (response %q, model %q), want %q", i, b.String(), resp.Text, resp.Model, want)
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		if got := s.Count(); got != n {
			t.Errorf("server got %d requests for %d streams", got, n)
		}
	})
}

func ptr[T any](v T) *T { return &v }
