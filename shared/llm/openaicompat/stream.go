package openaicompat

import (
	"context"
	"encoding/json"
	"errors"
	"io"

	openai "github.com/sashabaranov/go-openai"

	"github.com/helixhq/helix/shared/llm"
	"github.com/helixhq/helix/shared/llm/internal/wire"
)

var _ llm.Streamer = (*Provider)(nil)

// Stream implements llm.Streamer through go-openai's CreateChatCompletionStream, asking for the
// usage chunk (stream_options.include_usage). It reads up to the first text before returning,
// so every failure before any text (an error status, a hung server, an error event, a content
// filter, an empty answer) comes from Stream with Complete's kinds.
//
// Each chunk is read with the SDK's RecvRaw and decoded here, so the usage chunk's DeepSeek
// cache field (prompt_cache_hit_tokens), which go-openai does not decode, is kept.
func (p *Provider) Stream(ctx context.Context, req llm.Request) (llm.Stream, error) {
	creq, err := p.request(req)
	if err != nil {
		return nil, err
	}
	creq.Stream = true
	creq.StreamOptions = &openai.StreamOptions{IncludeUsage: true}
	caller := ctx
	ctx, cancel := context.WithCancel(ctx)
	ctx, ex := wire.Track(ctx, false)
	sdk, err := p.client.CreateChatCompletionStream(ctx, creq)
	if err != nil {
		cancel()
		return nil, p.classify(caller, err, ex)
	}
	s := &stream{p: p, cancel: cancel, sdk: sdk}
	s.Stream = wire.Stream{Provider: p.name, Ctx: caller, Pull: s.pull, Release: s.release,
		Status: func() int { return s.status }, RequestID: func() string { return s.reqID }}
	s.reqID = sdk.Header().Get("X-Request-Id")
	s.Resp.ProviderRequestID = s.reqID
	s.status = ex.Status()
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
	p      *Provider
	cancel context.CancelFunc
	sdk    *openai.ChatCompletionStream
	reqID  string
	status int
	finish openai.FinishReason
}

// release ends the HTTP exchange: the context first, so a read in progress ends too.
func (s *stream) release() {
	s.cancel()
	_ = s.sdk.Close()
}

// pull reads chunks until one carries text, and returns it; at the stream's end it returns
// io.EOF, or an *llm.Error when the end is not a usable answer. Every other error is an
// *llm.Error.
func (s *stream) pull() (string, error) {
	for {
		raw, err := s.sdk.RecvRaw()
		if errors.Is(err, io.EOF) {
			return "", s.end()
		}
		if err != nil {
			return "", s.readError(err)
		}
		var c openai.ChatCompletionStreamResponse
		if err := json.Unmarshal(raw, &c); err != nil {
			return "", &llm.Error{Provider: s.p.name, Kind: llm.KindBadResponse, StatusCode: s.status, Message: "stream chunk could not be decoded", Err: err}
		}
		var extra rawUsage // the usage fields go-openai does not decode
		_ = json.Unmarshal(raw, &extra)
		if c.Model != "" {
			s.Resp.Model = c.Model
		}
		if s.Resp.ProviderRequestID == "" {
			s.Resp.ProviderRequestID = c.ID
		}
		if c.Usage != nil {
			s.Resp.Usage = normalize(*c.Usage, extra.Usage.PromptCacheHitTokens)
			s.Resp.HasUsage = true
		}
		if len(c.Choices) == 0 {
			continue
		}
		choice := c.Choices[0]
		if choice.FinishReason != "" {
			s.finish = choice.FinishReason
		}
		if choice.Delta.Content != "" {
			return choice.Delta.Content, nil
		}
	}
}

// end judges a stream that ended cleanly: it must have finished (a finish_reason), with an
// answer, and not by the content filter.
func (s *stream) end() error {
	fail := func(kind llm.ErrorKind, msg string) *llm.Error {
		e := &llm.Error{Provider: s.p.name, Kind: kind, StatusCode: s.status, RequestID: s.reqID, Message: msg}
		if s.Resp.HasUsage {
			u := s.Resp.Usage
			e.Usage = &u
		}
		return e
	}
	switch {
	case s.finish == "":
		return fail(llm.KindUnavailable, "stream ended before the answer finished")
	case s.finish == openai.FinishReasonContentFilter:
		return fail(llm.KindContentFiltered, "answer withheld by the provider's content filter")
	case s.Resp.Chunks == 0 && s.finish != openai.FinishReasonLength: // called before any text
		return fail(llm.KindBadResponse, "empty answer (finish_reason "+string(s.finish)+")")
	}
	s.Resp.FinishReason = string(s.finish)
	return io.EOF
}

// readError classifies a failure while reading the stream: the caller's context, an error
// object the server sent as an event, or a broken connection.
func (s *stream) readError(err error) *llm.Error {
	if wire.IsTimeout(s.Ctx, err) {
		return s.Timeout(err)
	}
	var apiErr *openai.APIError
	if errors.As(err, &apiErr) {
		kind := eventKind(apiErr)
		return &llm.Error{Provider: s.p.name, Kind: kind, StatusCode: s.status, Message: wire.StatusMessage(kind, apiErr.Message, s.p.apiKey), Err: err}
	}
	if errors.Is(err, openai.ErrTooManyEmptyStreamMessages) {
		return &llm.Error{Provider: s.p.name, Kind: llm.KindBadResponse, StatusCode: s.status, Message: "stream sent no data", Err: err}
	}
	return &llm.Error{Provider: s.p.name, Kind: llm.KindUnavailable, StatusCode: s.status, Message: "stream broken off", Err: err}
}

// eventKind classifies an error object sent mid-stream, which has no HTTP status of its own:
// by its numeric code (vLLM and others send the status), else by its type or code name.
func eventKind(e *openai.APIError) llm.ErrorKind {
	switch code := e.Code.(type) {
	case int:
		if code >= 400 {
			return wire.KindForStatus(code)
		}
	case string:
		switch code {
		case "rate_limit_exceeded":
			return llm.KindRateLimited
		case "content_filter", "content_policy_violation":
			return llm.KindContentFiltered
		case "invalid_api_key":
			return llm.KindAuth
		}
	}
	switch e.Type {
	case "invalid_request_error":
		return llm.KindInvalidRequest
	case "authentication_error", "permission_error":
		return llm.KindAuth
	case "rate_limit_error", "requests", "tokens":
		return llm.KindRateLimited
	}
	// server_error, overloaded and anything else: the provider broke off.
	return llm.KindUnavailable
}
