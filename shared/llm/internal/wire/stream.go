package wire

import (
	"context"
	"io"

	"github.com/helixhq/helix/shared/llm"
)

// Stream is the part of an llm.Stream every adapter shares: handing out the text its Pull
// reads, in order, with the first text (read by the adapter's Stream before it returns) kept
// in Pending; sticky errors; the caller's end as KindTimeout; Close at any time; and the usage
// reported so far kept on a failure. An adapter embeds it and supplies Pull and Release.
type Stream struct {
	Provider string
	Ctx      context.Context // the caller's: its end is KindTimeout
	// Pull reads until the next text and returns it: io.EOF at the end of a usable answer,
	// an *llm.Error for any other end.
	Pull func() (string, error)
	// Release ends the HTTP exchange (the context first, so a read in progress ends too).
	Release func()
	// Status is the HTTP status of the exchange, for the errors Stream makes itself.
	Status func() int
	// RequestID names the call on a failure that does not; nil: Resp.ProviderRequestID.
	RequestID func() string

	Resp    llm.StreamResponse
	Pending string // the first text, read before the stream was handed out
	Err     error  // sticky: io.EOF or an *llm.Error
	closed  bool
}

// Next implements llm.Stream.
func (s *Stream) Next() (llm.Delta, error) {
	if s.Err != nil {
		return llm.Delta{}, s.Err
	}
	if s.closed {
		return llm.Delta{}, s.Fail(&llm.Error{Provider: s.Provider, Kind: llm.KindTimeout, Message: "stream closed before its end"})
	}
	if err := s.Ctx.Err(); err != nil {
		return llm.Delta{}, s.Fail(s.Timeout(err))
	}
	text := s.Pending
	s.Pending = ""
	if text == "" {
		var err error
		if text, err = s.Pull(); err == io.EOF {
			s.End()
			return llm.Delta{}, err
		} else if err != nil {
			return llm.Delta{}, s.Fail(err.(*llm.Error))
		}
	}
	s.Resp.Text += text
	s.Resp.Chunks++
	return llm.Delta{Text: text}, nil
}

// Response implements llm.Stream.
func (s *Stream) Response() llm.StreamResponse { return s.Resp }

// Close implements llm.Stream.
func (s *Stream) Close() error {
	if !s.closed {
		s.closed = true
		s.Release()
	}
	return nil
}

// End records the end of a usable answer and releases the connection.
func (s *Stream) End() {
	s.Err = io.EOF
	s.Release()
}

// Fail records a terminal failure, with the usage and the request id known so far, and
// releases the connection.
func (s *Stream) Fail(e *llm.Error) *llm.Error {
	if s.Resp.HasUsage && e.Usage == nil {
		u := s.Resp.Usage
		e.Usage = &u
	}
	if e.RequestID == "" {
		e.RequestID = s.Resp.ProviderRequestID
		if s.RequestID != nil {
			e.RequestID = s.RequestID()
		}
	}
	s.Err = e
	s.Release()
	return e
}

// Timeout is the error of a stream the deadline or the caller ended.
func (s *Stream) Timeout(err error) *llm.Error {
	return &llm.Error{Provider: s.Provider, Kind: llm.KindTimeout, StatusCode: s.Status(), Message: "stream ended by the deadline or the caller", Err: err}
}
