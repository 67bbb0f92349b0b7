package anthropic

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"

	sdk "github.com/anthropics/anthropic-sdk-go"
	"github.com/anthropics/anthropic-sdk-go/packages/ssestream"

	"github.com/helixhq/helix/shared/llm"
	"github.com/helixhq/helix/shared/llm/internal/wire"
)

var _ llm.Streamer = (*Provider)(nil)

// Stream implements llm.Streamer through anthropic-sdk-go's Messages.NewStreaming, with the
// client Complete uses (no retries) and no request timeout of its own: the caller's context
// bounds the stream. It reads up to the first text before returning, so every failure before
// any text (an error status, a hung server, an error event, a refusal, an empty answer) comes
// from Stream with Complete's kinds.
//
// Usage comes in two reports: message_start has the input (with the cache-write breakdown by
// lifetime) and a first output count; message_delta has the cumulative counts, which replace
// the ones it carries. A stream that breaks off keeps what was reported so far.
//
// A JSON request's answer is streamed as it comes: the code fence Complete strips, if Claude
// adds one, is not removed.
func (p *Provider) Stream(ctx context.Context, req llm.Request) (llm.Stream, error) {
	params, err := p.request(req)
	if err != nil {
		return nil, err
	}
	caller := ctx
	ctx, cancel := context.WithCancel(ctx)
	ctx, ex := wire.Track(ctx, false)
	s := &stream{p: p, cancel: cancel, ex: ex, sdk: p.client.Messages.NewStreaming(ctx, params)}
	s.Stream = wire.Stream{Provider: p.name, Ctx: caller, Pull: s.pull, Release: s.release, Status: ex.Status}
	s.Resp.Model = req.Model
	s.Resp.ProviderRequestID = ex.Header().Get("Request-Id")
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
	ex     *wire.Exchange
	sdk    *ssestream.Stream[sdk.MessageStreamEventUnion]

	acc     sdk.Usage // the usage reported so far, in Anthropic's terms
	stop    sdk.StopReason
	stopped bool // message_stop arrived
}

// release ends the HTTP exchange: the context first, so a read in progress ends too.
func (s *stream) release() {
	s.cancel()
	_ = s.sdk.Close()
}

// deltaCacheCreation is message_delta's cache-write breakdown, which the SDK's
// MessageDeltaUsage does not declare; read from the raw usage when the API sends it.
type deltaCacheCreation struct {
	CacheCreation *struct {
		Ephemeral5m *int64 `json:"ephemeral_5m_input_tokens"`
		Ephemeral1h *int64 `json:"ephemeral_1h_input_tokens"`
	} `json:"cache_creation"`
}

// pull reads events until one carries text, and returns it; at the stream's end it returns
// io.EOF, or an *llm.Error when the end is not a usable answer. Every other error is an
// *llm.Error.
func (s *stream) pull() (string, error) {
	for s.sdk.Next() {
		ev := s.sdk.Current()
		switch ev.Type {
		case "message_start":
			m := ev.Message
			if s.Resp.ProviderRequestID == "" {
				s.Resp.ProviderRequestID = m.ID
			}
			if m.Model != "" {
				s.Resp.Model = string(m.Model)
			}
			s.acc = m.Usage
			s.report()
		case "content_block_delta":
			if ev.Delta.Type == "text_delta" && ev.Delta.Text != "" {
				return ev.Delta.Text, nil
			}
		case "message_delta":
			if ev.Delta.StopReason != "" {
				s.stop = ev.Delta.StopReason
			}
			s.merge(ev.Usage)
		case "message_stop":
			s.stopped = true
		}
	}
	if err := s.sdk.Err(); err != nil {
		return "", s.readError(err)
	}
	return "", s.end()
}

// merge takes message_delta's cumulative counts over message_start's, field by field: only the
// fields it carries.
func (s *stream) merge(d sdk.MessageDeltaUsage) {
	if d.JSON.InputTokens.Valid() {
		s.acc.InputTokens = d.InputTokens
	}
	if d.JSON.CacheReadInputTokens.Valid() {
		s.acc.CacheReadInputTokens = d.CacheReadInputTokens
	}
	if d.JSON.CacheCreationInputTokens.Valid() {
		s.acc.CacheCreationInputTokens = d.CacheCreationInputTokens
	}
	if d.JSON.OutputTokens.Valid() {
		s.acc.OutputTokens = d.OutputTokens
	}
	if d.JSON.OutputTokensDetails.Valid() {
		s.acc.OutputTokensDetails.ThinkingTokens = d.OutputTokensDetails.ThinkingTokens
	}
	var cc deltaCacheCreation
	if json.Unmarshal([]byte(d.RawJSON()), &cc) == nil && cc.CacheCreation != nil {
		if v := cc.CacheCreation.Ephemeral5m; v != nil {
			s.acc.CacheCreation.Ephemeral5mInputTokens = *v
		}
		if v := cc.CacheCreation.Ephemeral1h; v != nil {
			s.acc.CacheCreation.Ephemeral1hInputTokens = *v
		}
	}
	s.report()
}

func (s *stream) report() {
	s.Resp.Usage = usage(s.acc)
	s.Resp.HasUsage = true
}

// end judges a stream whose events ran out without an error: message_stop must have come, the
// answer must not be a refusal, and there must be an answer.
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
	case !s.stopped:
		return fail(llm.KindUnavailable, "stream ended before message_stop")
	case s.stop == sdk.StopReasonRefusal:
		return fail(llm.KindContentFiltered, "Claude declined to answer (stop_reason refusal)")
	case s.Resp.Chunks == 0 && finishReason(s.stop) != "length": // called before any text
		return fail(llm.KindBadResponse, "empty answer (stop_reason "+string(s.stop)+")")
	}
	s.Resp.FinishReason = finishReason(s.stop)
	return io.EOF
}

// readError classifies a failure the SDK's stream reported: the caller's context; an error
// status (classified as Complete's); an error event, by its error type; a failure before any
// response; a broken connection; or an event that could not be decoded.
func (s *stream) readError(err error) *llm.Error {
	if wire.IsTimeout(s.Ctx, err) {
		return s.Timeout(err)
	}
	var apiErr *sdk.Error
	switch {
	case errors.As(err, &apiErr) && apiErr.StatusCode >= 400:
		return s.p.classify(s.Ctx, err, s.ex)
	case apiErr != nil:
		return s.eventError(apiErr)
	case s.ex.Status() != http.StatusOK:
		return wire.Fallback(s.p.name, s.Ctx, err, s.ex)
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
	return &llm.Error{Provider: s.p.name, Kind: llm.KindBadResponse, StatusCode: s.ex.Status(), Message: "stream event not understood", Err: err}
}

// eventError classifies an "event: error", which arrives inside a 200 response: by its type.
func (s *stream) eventError(e *sdk.Error) *llm.Error {
	var kind llm.ErrorKind
	switch e.Type() {
	case "invalid_request_error", "not_found_error", "request_too_large":
		kind = llm.KindInvalidRequest
	case "authentication_error", "permission_error":
		kind = llm.KindAuth
	case "rate_limit_error":
		kind = llm.KindRateLimited
	default: // overloaded_error, api_error, ...: the provider broke off
		kind = llm.KindUnavailable
	}
	var body struct {
		Error struct {
			Message string `json:"message"`
		} `json:"error"`
	}
	_ = json.Unmarshal([]byte(e.RawJSON()), &body)
	return &llm.Error{Provider: s.p.name, Kind: kind, StatusCode: s.ex.Status(), RequestID: e.RequestID,
		Message: wire.StatusMessage(kind, body.Error.Message, s.p.apiKey), Err: e}
}
