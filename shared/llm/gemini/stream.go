package gemini

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"iter"
	"net"
	"net/http"

	"google.golang.org/genai"

	"github.com/helixhq/helix/shared/llm"
	"github.com/helixhq/helix/shared/llm/internal/wire"
)

var _ llm.Streamer = (*Provider)(nil)

// Stream implements llm.Streamer through genai's Models.GenerateContentStream
// (:streamGenerateContent?alt=sse), with the client Complete uses (one HTTP attempt, automatic
// continuation off, so a stream is exactly one billed request). It reads up to the first text
// before returning, so every failure before any text comes from Stream with Complete's kinds.
// Gemini's usageMetadata is cumulative: the last chunk's is the call's usage, and a stream that
// breaks off keeps what the last chunk before the break reported (the prompt, at least).
func (p *Provider) Stream(ctx context.Context, req llm.Request) (llm.Stream, error) {
	contents, config, err := p.request(req)
	if err != nil {
		return nil, err
	}
	caller := ctx
	ctx, cancel := context.WithCancel(ctx)
	ctx, ex := wire.Track(ctx, false)
	next, stop := iter.Pull2(p.client.Models.GenerateContentStream(ctx, req.Model, contents, config))
	s := &stream{p: p, ctx: caller, cancel: cancel, next: next, stop: stop, ex: ex, model: req.Model}
	s.resp.Model = req.Model
	first, err := s.pull()
	switch {
	case err == io.EOF: // a whole answer without text (cut at max tokens before any)
		s.err = err
		s.release()
	case err != nil:
		s.release()
		return nil, err
	}
	s.pending = first
	return s, nil
}

type stream struct {
	p      *Provider
	ctx    context.Context // the caller's: its end is KindTimeout
	cancel context.CancelFunc
	next   func() (*genai.GenerateContentResponse, error, bool)
	stop   func()
	ex     *wire.Exchange
	model  string

	resp    llm.StreamResponse
	finish  genai.FinishReason
	blocked genai.BlockedReason
	pending string // the first text, read by Stream
	err     error  // sticky: io.EOF or an *llm.Error
	closed  bool
}

// Next implements llm.Stream.
func (s *stream) Next() (llm.Delta, error) {
	if s.err != nil {
		return llm.Delta{}, s.err
	}
	if s.closed {
		return llm.Delta{}, s.fail(&llm.Error{Provider: s.p.name, Kind: llm.KindTimeout, Message: "stream closed before its end"})
	}
	if err := s.ctx.Err(); err != nil {
		return llm.Delta{}, s.fail(s.timeout(err))
	}
	text := s.pending
	s.pending = ""
	if text == "" {
		var err error
		if text, err = s.pull(); err == io.EOF {
			s.err = err
			s.release()
			return llm.Delta{}, err
		} else if err != nil {
			return llm.Delta{}, s.fail(err.(*llm.Error))
		}
	}
	s.resp.Text += text
	s.resp.Chunks++
	return llm.Delta{Text: text}, nil
}

// Response implements llm.Stream.
func (s *stream) Response() llm.StreamResponse { return s.resp }

// Close implements llm.Stream.
func (s *stream) Close() error {
	if !s.closed {
		s.closed = true
		s.release()
	}
	return nil
}

// release ends the HTTP exchange: the context first, then the iterator, which closes the body.
func (s *stream) release() {
	s.cancel()
	s.stop()
}

func (s *stream) fail(e *llm.Error) *llm.Error {
	if s.resp.HasUsage && e.Usage == nil {
		u := s.resp.Usage
		e.Usage = &u
	}
	if e.RequestID == "" {
		e.RequestID = s.resp.ProviderRequestID
	}
	s.err = e
	s.release()
	return e
}

func (s *stream) timeout(err error) *llm.Error {
	return &llm.Error{Provider: s.p.name, Kind: llm.KindTimeout, StatusCode: s.ex.Status(), Message: "stream ended by the deadline or the caller", Err: err}
}

// pull reads chunks until one carries text, and returns it; at the stream's end it returns
// io.EOF, or an *llm.Error when the end is not a usable answer. Every other error is an
// *llm.Error.
func (s *stream) pull() (string, error) {
	for {
		resp, err, ok := s.next()
		if !ok {
			return "", s.end()
		}
		if err != nil {
			return "", s.readError(err)
		}
		if resp == nil {
			continue
		}
		if resp.ResponseID != "" {
			s.resp.ProviderRequestID = resp.ResponseID
		} else if s.resp.ProviderRequestID == "" && resp.SDKHTTPResponse != nil {
			s.resp.ProviderRequestID = resp.SDKHTTPResponse.Headers.Get("X-Request-Id")
		}
		if resp.ModelVersion != "" {
			s.resp.Model = resp.ModelVersion
		}
		if resp.UsageMetadata != nil {
			s.resp.Usage = usage(resp.UsageMetadata)
			s.resp.HasUsage = true
		}
		if pf := resp.PromptFeedback; pf != nil && pf.BlockReason != "" {
			s.blocked = pf.BlockReason
		}
		if len(resp.Candidates) == 0 || resp.Candidates[0] == nil {
			continue
		}
		cand := resp.Candidates[0]
		if cand.FinishReason != "" {
			s.finish = cand.FinishReason
		}
		if text := answerText(cand); text != "" {
			return text, nil
		}
	}
}

// end judges a stream that ended cleanly: a finish reason must have come, the prompt must not
// have been blocked nor the answer withheld, and there must be an answer.
func (s *stream) end() error {
	fail := func(kind llm.ErrorKind, msg string) *llm.Error {
		e := &llm.Error{Provider: s.p.name, Kind: kind, StatusCode: s.ex.Status(), RequestID: s.resp.ProviderRequestID, Message: msg}
		if s.resp.HasUsage {
			u := s.resp.Usage
			e.Usage = &u
		}
		return e
	}
	switch {
	case s.blocked != "":
		return fail(llm.KindContentFiltered, "prompt blocked: "+string(s.blocked))
	case s.finish == "" || s.finish == genai.FinishReasonUnspecified:
		return fail(llm.KindUnavailable, "stream ended before the answer finished")
	case filtered(s.finish):
		return fail(llm.KindContentFiltered, "answer stopped: "+string(s.finish))
	case s.resp.Chunks == 0 && finishReason(s.finish) != "length": // called before any text
		return fail(llm.KindBadResponse, "empty answer (finishReason "+string(s.finish)+")")
	}
	s.resp.FinishReason = finishReason(s.finish)
	return io.EOF
}

// readError classifies a failure the iterator yielded: the caller's context; an error status or
// an error object sent as an event (genai.APIError, classified as Complete's); a failure before
// any response (connection refused); a broken connection; or an event that could not be decoded.
func (s *stream) readError(err error) *llm.Error {
	if wire.IsTimeout(s.ctx, err) {
		return s.timeout(err)
	}
	var apiErr genai.APIError
	var apiErrPtr *genai.APIError
	if errors.As(err, &apiErr) || errors.As(err, &apiErrPtr) || s.ex.Status() != http.StatusOK {
		return s.p.classify(s.ctx, err, s.ex)
	}
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	if errors.As(err, &syntax) || errors.As(err, &typ) {
		return &llm.Error{Provider: s.p.name, Kind: llm.KindBadResponse, StatusCode: s.ex.Status(), Message: "stream event could not be decoded", Err: err}
	}
	var netErr net.Error
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.As(err, &netErr) {
		return &llm.Error{Provider: s.p.name, Kind: llm.KindUnavailable, StatusCode: s.ex.Status(), Message: "stream broken off", Err: err}
	}
	// genai's own complaints about the stream's shape ("invalid stream chunk", a response it
	// could not convert); never its text, which quotes the chunk.
	return &llm.Error{Provider: s.p.name, Kind: llm.KindBadResponse, StatusCode: s.ex.Status(), Message: "stream event not understood", Err: err}
}
