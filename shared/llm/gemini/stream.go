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
	s := &stream{p: p, cancel: cancel, next: next, stop: stop, ex: ex, model: req.Model}
	s.Stream = wire.Stream{Provider: p.name, Ctx: caller, Pull: s.pull, Release: s.release, Status: ex.Status}
	s.Resp.Model = req.Model
	first, err := s.pull()
	switch {
	case err == io.EOF: // a whole answer without text (cut at max tokens before any)
		s.Err = err
		s.release()
	case err != nil:
		s.release()
		return nil, err
	}
	s.Pending = first
	return s, nil
}

type stream struct {
	wire.Stream
	p       *Provider
	cancel  context.CancelFunc
	next    func() (*genai.GenerateContentResponse, error, bool)
	stop    func()
	ex      *wire.Exchange
	model   string
	finish  genai.FinishReason
	blocked genai.BlockedReason
}

// release ends the HTTP exchange: the context first, then the iterator, which closes the body.
func (s *stream) release() {
	s.cancel()
	s.stop()
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
			s.Resp.ProviderRequestID = resp.ResponseID
		} else if s.Resp.ProviderRequestID == "" && resp.SDKHTTPResponse != nil {
			s.Resp.ProviderRequestID = resp.SDKHTTPResponse.Headers.Get("X-Request-Id")
		}
		if resp.ModelVersion != "" {
			s.Resp.Model = resp.ModelVersion
		}
		if resp.UsageMetadata != nil {
			s.Resp.Usage = usage(resp.UsageMetadata)
			s.Resp.HasUsage = true
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
		e := &llm.Error{Provider: s.p.name, Kind: kind, StatusCode: s.ex.Status(), RequestID: s.Resp.ProviderRequestID, Message: msg}
		if s.Resp.HasUsage {
			u := s.Resp.Usage
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
	case s.Resp.Chunks == 0 && finishReason(s.finish) != "length": // called before any text
		return fail(llm.KindBadResponse, "empty answer (finishReason "+string(s.finish)+")")
	}
	s.Resp.FinishReason = finishReason(s.finish)
	return io.EOF
}

// readError classifies a failure the iterator yielded: the caller's context; an error status or
// an error object sent as an event (genai.APIError, classified as Complete's); a failure before
// any response (connection refused); a broken connection; or an event that could not be decoded.
func (s *stream) readError(err error) *llm.Error {
	if wire.IsTimeout(s.Ctx, err) {
		return s.Timeout(err)
	}
	var apiErr genai.APIError
	var apiErrPtr *genai.APIError
	if errors.As(err, &apiErr) || errors.As(err, &apiErrPtr) || s.ex.Status() != http.StatusOK {
		return s.p.classify(s.Ctx, err, s.ex)
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
