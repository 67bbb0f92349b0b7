package chatapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"strconv"
	"strings"

	"github.com/helixhq/helix/shared/execute"
	"github.com/helixhq/helix/shared/httpapi"
)

// A send whose Accept names text/event-stream streams the reply as Server-Sent Events:
//
//	event: delta      data: {"text":"..."}       one per piece of the reply, as the model produces it
//	event: message    data: <ExchangeView>       the stored pair, the same JSON a send answers
//	event: error      data: {"error":{...}}      the reply failed after its first delta
//
// Exactly one message or error event ends a stream; a stream that closes without one was cut
// off (send the same client_message_id again: it answers the stored pair, or produces it).
// Nothing is written before the first delta, so a failure before it is the usual JSON error with
// its status. A resend whose reply is already stored answers the pair as JSON (200, replayed),
// even when it asks for a stream: there is nothing to stream. A reply no model produced (a
// step-up message, answered by Helix) streams as a message event alone.

// Event names of a streamed reply.
const (
	eventDelta   = "delta"
	eventMessage = "message"
	eventError   = "error"
)

// DeltaEvent is the data of a delta event: the next piece of the reply's text.
type DeltaEvent struct {
	Text string `json:"text"`
}

// ErrorEvent is the data of an error event: Helix's error object, as a JSON error answer has it.
type ErrorEvent struct {
	Error ErrorDetail `json:"error"`
}

// ErrorDetail is the error of an ErrorEvent.
type ErrorDetail struct {
	Code      string `json:"code"`
	Message   string `json:"message"`
	RequestID string `json:"request_id,omitempty"`
}

// wantsStream reports whether the request's Accept header names text/event-stream (with a
// quality above 0). Wildcards do not ask for a stream: a client that does not say so gets JSON.
func wantsStream(r *http.Request) bool {
	for _, v := range r.Header.Values("Accept") {
		for part := range strings.SplitSeq(v, ",") {
			mt, params, err := mime.ParseMediaType(strings.TrimSpace(part))
			if err != nil || mt != "text/event-stream" {
				continue
			}
			if q, ok := params["q"]; ok {
				f, err := strconv.ParseFloat(q, 64)
				if err != nil || !(f > 0) {
					continue
				}
			}
			return true
		}
	}
	return false
}

// eventStream writes a streamed reply. The pipeline calls delta on the handler's goroutine.
type eventStream struct {
	w       http.ResponseWriter
	rc      *http.ResponseController
	started bool
	err     error // the first write error: the client went away
}

func newEventStream(w http.ResponseWriter) *eventStream {
	return &eventStream{w: w, rc: http.NewResponseController(w)}
}

// delta is the send's Stream: the first piece sends the headers. An error (the client went
// away) stops the model.
func (s *eventStream) delta(p execute.Piece) error {
	if p.Text == "" {
		return s.err // nothing to show; not worth committing the answer to a stream for
	}
	if !s.started {
		s.start(p.Model.Key)
	}
	return s.event(eventDelta, DeltaEvent{Text: p.Text})
}

// start sends the headers: 200 and text/event-stream. The model that answers is known from the
// first piece (the message event has it too); the cost only at the end, in the message event.
func (s *eventStream) start(model string) {
	s.started = true
	h := s.w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no") // proxies that buffer (nginx) pass events on at once
	if model != "" {
		h.Set("X-Helix-Model", model)
	}
	s.w.WriteHeader(http.StatusOK)
}

// message ends a stream with the stored pair.
func (s *eventStream) message(v ExchangeView) {
	if !s.started {
		s.start(v.Assistant.Model)
	}
	_ = s.event(eventMessage, v)
}

// fail ends a stream that broke after its first delta with Helix's error object.
func (s *eventStream) fail(requestID string, err error) {
	p, internal := httpapi.ProblemOf(err)
	if internal {
		p.Message = "internal error; quote request id " + requestID + " when reporting it"
	}
	_ = s.event(eventError, ErrorEvent{Error: ErrorDetail{Code: string(p.Code), Message: p.Message, RequestID: requestID}})
}

// event writes one event and flushes it. Data is JSON, which holds no newline, so it is one
// data line.
func (s *eventStream) event(name string, v any) error {
	if s.err != nil {
		return s.err
	}
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if _, err := fmt.Fprintf(s.w, "event: %s\ndata: %s\n\n", name, b); err != nil {
		s.err = err
		return err
	}
	// A writer that cannot flush (API Gateway's HTTP API adapter buffers the whole answer) is
	// not a client that went away: the events reach it at the end, all at once.
	if err := s.rc.Flush(); err != nil && !errors.Is(err, http.ErrNotSupported) {
		s.err = err
	}
	return s.err
}
