package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
)

// chatRequest is what the mock reads of a chat request: only whether and how to stream.
type chatRequest struct {
	Stream        bool `json:"stream"`
	StreamOptions *struct {
		IncludeUsage bool `json:"include_usage"`
	} `json:"stream_options"`
	MaxTokens           int `json:"max_tokens"`
	MaxCompletionTokens int `json:"max_completion_tokens"`
}

// includeUsage reports whether the request asked for the usage chunk.
func (r chatRequest) includeUsage() bool {
	return r.StreamOptions != nil && r.StreamOptions.IncludeUsage
}

// maxTokens is the request's output limit: the smaller of max_tokens and max_completion_tokens
// that is set (positive), 0 when neither is.
func (r chatRequest) maxTokens() int {
	limit := 0
	for _, v := range []int{r.MaxTokens, r.MaxCompletionTokens} {
		if v > 0 && (limit == 0 || v < limit) {
			limit = v
		}
	}
	return limit
}

// streamKey is the member a streamed request must have; a body without it is decoded no further,
// so the non-streaming path does no JSON work.
var streamKey = []byte(`"stream"`)

// parseRequest reports whether body asks for a streamed answer, and how. A body that is not JSON
// is not streamed (the mock never judged bodies).
func parseRequest(body []byte) (chatRequest, bool) {
	if !bytes.Contains(body, streamKey) {
		return chatRequest{}, false
	}
	var r chatRequest
	if err := json.Unmarshal(body, &r); err != nil {
		return chatRequest{}, false
	}
	return r, r.Stream
}

// The words of a streamed answer, in turn.
var streamWords = strings.Fields("Streaming from mockllm one word at a time so that time to first byte and open streams can be measured.")

// streamReply is a streamed answer's events, rendered once: the role chunk, each content chunk,
// the two possible finish chunks. Only the usage chunk depends on the request.
type streamReply struct {
	role         []byte
	tokens       [][]byte
	stop, length []byte
	created      int64
}

// chunk is OpenAI's chat.completion.chunk.
type chunk struct {
	ID      string        `json:"id"`
	Object  string        `json:"object"`
	Created int64         `json:"created"`
	Model   string        `json:"model"`
	Choices []chunkChoice `json:"choices"`
	Usage   *chunkUsage   `json:"usage,omitempty"`
}

type chunkChoice struct {
	Index        int        `json:"index"`
	Delta        chunkDelta `json:"delta"`
	FinishReason *string    `json:"finish_reason"`
}

// chunkDelta: the role chunk carries an empty content, as OpenAI's does; the finish chunk an
// empty delta.
type chunkDelta struct {
	Role    string  `json:"role,omitempty"`
	Content *string `json:"content,omitempty"`
}

type chunkUsage struct {
	PromptTokens     int `json:"prompt_tokens"`
	CompletionTokens int `json:"completion_tokens"`
	TotalTokens      int `json:"total_tokens"`
}

// event renders one SSE event: "data: <json>\n\n".
func event(c chunk) ([]byte, error) {
	raw, err := json.Marshal(c)
	if err != nil {
		return nil, err
	}
	return fmt.Appendf(nil, "data: %s\n\n", raw), nil
}

// doneEvent ends every complete stream.
var doneEvent = []byte("data: [DONE]\n\n")

func renderStream(tokens int, created int64) (*streamReply, error) {
	s := &streamReply{created: created}
	base := func(choices ...chunkChoice) chunk {
		if choices == nil {
			choices = []chunkChoice{}
		}
		return chunk{ID: replyID, Object: "chat.completion.chunk", Created: created, Model: replyModel, Choices: choices}
	}
	empty := ""
	var err error
	if s.role, err = event(base(chunkChoice{Delta: chunkDelta{Role: "assistant", Content: &empty}})); err != nil {
		return nil, err
	}
	s.tokens = make([][]byte, tokens)
	for i := range s.tokens {
		word := streamWords[i%len(streamWords)]
		if i > 0 {
			word = " " + word
		}
		if s.tokens[i], err = event(base(chunkChoice{Delta: chunkDelta{Content: &word}})); err != nil {
			return nil, err
		}
	}
	stop, length := "stop", "length"
	if s.stop, err = event(base(chunkChoice{FinishReason: &stop})); err != nil {
		return nil, err
	}
	if s.length, err = event(base(chunkChoice{FinishReason: &length})); err != nil {
		return nil, err
	}
	return s, nil
}

// usage renders the usage chunk of an answer of n tokens.
func (s *streamReply) usage(n int) []byte {
	u := chunk{ID: replyID, Object: "chat.completion.chunk", Created: s.created, Model: replyModel, Choices: []chunkChoice{},
		Usage: &chunkUsage{PromptTokens: inputTokens, CompletionTokens: n, TotalTokens: inputTokens + n}}
	b, _ := event(u) // the same types rendered at start-up
	return b
}

// streamText is the text of a streamed answer of n tokens.
func streamText(n int) string {
	var b strings.Builder
	for i := range n {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(streamWords[i%len(streamWords)])
	}
	return b.String()
}

// serveStream answers a streamed request: -delay, the role chunk, a content chunk after each
// -token-delay, the finish chunk, the usage chunk if asked for, [DONE]. It returns as soon as
// the client goes away.
func (m *mock) serveStream(w http.ResponseWriter, r *http.Request, req chatRequest) {
	m.streams.Add(1)
	m.openStreams.Add(1)
	defer m.openStreams.Add(-1)
	ctx := r.Context()
	if m.opts.delay > 0 && !m.wait(ctx, m.opts.delay) {
		return
	}
	n, finish := len(m.stream.tokens), m.stream.stop
	if limit := req.maxTokens(); limit > 0 && limit < n {
		n, finish = limit, m.stream.length
	}
	h := w.Header()
	h["Content-Type"] = m.eventStream
	h["Cache-Control"] = m.noCache
	h["X-Request-Id"] = m.requestID
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	send := func(b []byte) bool {
		if _, err := w.Write(b); err != nil {
			return false
		}
		return rc.Flush() == nil
	}
	if !send(m.stream.role) {
		return
	}
	for _, tok := range m.stream.tokens[:n] {
		if m.opts.tokenDelay > 0 && !m.wait(ctx, m.opts.tokenDelay) {
			return
		}
		if !send(tok) {
			return
		}
	}
	if !send(finish) {
		return
	}
	if req.includeUsage() && !send(m.stream.usage(n)) {
		return
	}
	send(doneEvent)
}
