package openaiapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/helixhq/helix/shared/execute"
	"github.com/helixhq/helix/shared/httpapi"
	"github.com/helixhq/helix/shared/money"
)

// ChatChunk is one server-sent event of a streamed chat completion (OpenAI's
// chat.completion.chunk).
type ChatChunk struct {
	ID      string        `json:"id"`
	Object  string        `json:"object"`
	Created int64         `json:"created"`
	Model   string        `json:"model"`
	Choices []ChunkChoice `json:"choices"`
	// Usage is set only on the last chunk, when stream_options.include_usage asked for it.
	Usage *StreamUsage `json:"usage,omitempty"`
}

// ChunkChoice is a chunk's only choice.
type ChunkChoice struct {
	Index        int     `json:"index"`
	Delta        Delta   `json:"delta"`
	FinishReason *string `json:"finish_reason"`
}

// Delta is what a chunk adds to the message.
type Delta struct {
	Role    string `json:"role,omitempty"`
	Content string `json:"content,omitempty"`
}

// StreamUsage is the usage of a streamed call, with its cost: the X-Helix-Cost-Usd header of a
// complete answer cannot follow a body that is already on its way, so the last chunk carries it.
type StreamUsage struct {
	Usage
	CostUSD money.Nano `json:"cost_usd"`
}

// sse writes a streamed answer. Nothing is written until the first piece: until then a failure
// is an ordinary error answer, with its status.
type sse struct {
	w       http.ResponseWriter
	rc      *http.ResponseController
	id      string
	created int64
	model   string
	op      string
	started bool
	err     error // the first write error: the client went away
}

func newSSE(w http.ResponseWriter, requestID, op string) *sse {
	return &sse{w: w, rc: http.NewResponseController(w), id: "chatcmpl-" + requestID, created: time.Now().Unix(), op: op}
}

// piece is the pipeline's Call.Stream: the first one sends the headers and the role chunk.
func (s *sse) piece(p execute.Piece) error {
	if !s.started {
		s.start(p.Model.Key)
	}
	return s.chunk(ChunkChoice{Delta: Delta{Content: p.Text}}, nil)
}

func (s *sse) start(model string) {
	s.started, s.model = true, model
	h := s.w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no") // proxies that buffer (nginx) pass events on at once
	h.Set("X-Helix-Model", model)
	h.Set("X-Helix-Operation-Id", s.op)
	s.w.WriteHeader(http.StatusOK)
	_ = s.chunk(ChunkChoice{Delta: Delta{Role: "assistant"}}, nil)
}

func (s *sse) chunk(choice ChunkChoice, usage *StreamUsage) error {
	c := ChatChunk{ID: s.id, Object: "chat.completion.chunk", Created: s.created, Model: s.model, Choices: []ChunkChoice{choice}, Usage: usage}
	if usage != nil {
		c.Choices = []ChunkChoice{} // OpenAI's usage chunk has no choices
	}
	return s.event(c)
}

func (s *sse) event(v any) error {
	if s.err != nil {
		return s.err
	}
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if _, err := fmt.Fprintf(s.w, "data: %s\n\n", b); err != nil {
		s.err = err
		return err
	}
	// A writer that cannot flush (the HTTP API's buffered Lambda adapter) still takes the
	// answer whole: only a failed write means the client is gone.
	if err := s.rc.Flush(); err != nil && !errors.Is(err, http.ErrNotSupported) {
		s.err = err
	}
	return s.err
}

// finish ends a complete answer: the finish reason, the usage chunk if asked for, [DONE].
func (s *sse) finish(res execute.Result, includeUsage bool) {
	if !s.started {
		s.start(res.Model.Key) // an empty answer: no piece came
	}
	reason := finishReason(res.FinishReason)
	_ = s.chunk(ChunkChoice{Delta: Delta{}, FinishReason: &reason}, nil)
	if includeUsage {
		u := usageOf(res)
		_ = s.chunk(ChunkChoice{}, &StreamUsage{Usage: u, CostUSD: res.Cost})
	}
	s.done()
}

// fail ends a stream that broke after its first piece with an error event in OpenAI's shape,
// which the SDKs raise (a data line holding {"error": ...}).
func (s *sse) fail(requestID string, err error) {
	p, _ := httpapi.ProblemOf(err)
	_ = s.event(ErrorBody{Error: ErrorDetail{Message: p.Message, Type: errorType(p.Status), Code: string(p.Code)}})
	s.done()
}

func (s *sse) done() {
	if s.err == nil {
		if _, err := fmt.Fprint(s.w, "data: [DONE]\n\n"); err == nil {
			_ = s.rc.Flush() // ErrNotSupported included: the last line is written either way
		}
	}
}

// stream runs a streamed call: pieces go out as they come; a failure before the first is the
// usual error answer.
func (h *handlers) stream(ctx context.Context, w http.ResponseWriter, call execute.Call, opts *StreamOptions) error {
	s := newSSE(w, call.RequestID, call.OperationID)
	call.Stream = s.piece
	res, err := h.ex.Execute(ctx, call)
	switch {
	case err != nil && !s.started:
		return err
	case err != nil:
		s.fail(call.RequestID, err)
	default:
		s.finish(res, opts != nil && opts.IncludeUsage)
	}
	return nil
}
