package llmtest

import (
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/helixhq/helix/shared/llm"
)

// Streaming replies. A request that asks for a stream (OpenAI and Anthropic "stream": true,
// Gemini's :streamGenerateContent?alt=sse) is answered with the wire's Server-Sent Events:
//
//   - OpenAI: "data: {chat.completion.chunk}" lines (a first chunk with the assistant role, one
//     per text chunk, one with finish_reason), then, when the request set
//     stream_options.include_usage, a chunk with empty choices and the usage, then "data: [DONE]";
//   - Gemini: "data: {GenerateContentResponse}" events, one per text chunk, each with the prompt's
//     usage so far, then a last one with finishReason and the whole usageMetadata;
//   - Anthropic: named events message_start (with the input usage), content_block_start, ping,
//     content_block_delta per text chunk, content_block_stop, message_delta (stop_reason and the
//     cumulative usage), message_stop; a failure is "event: error".
//
// Any OK reply streams (its text split after each space); StreamOK gives the chunks exactly.
// Error, RateLimited and Hang replies answer a stream request as they answer any other (before
// the stream starts); Malformed is a stream whose first event is cut-off JSON; Filtered streams
// the wire's content-filter ending. The With* methods apply, and the Stream* methods below shape
// the stream: a delay between chunks, a cut connection, an error event, a malformed event, or a
// provider that stops sending, after n chunks.

type cutKind int

const (
	cutNone cutKind = iota
	cutBreak
	cutError
	cutMalformed
	cutHang
)

type streamCut struct {
	kind    cutKind
	after   int
	status  int
	message string
}

// StreamOK is a successful answer streamed as these text chunks, in order (a non-streaming
// request gets them joined). Usage, finish reason and the rest are as for OK.
func StreamOK(chunks ...string) Reply {
	return Reply{kind: kindOK, text: strings.Join(chunks, ""), chunks: append([]string(nil), chunks...)}
}

// EchoModel is a successful answer of n chunks that each name the model the request asked for
// ("[m 1/3] "), so concurrent calls can check they got their own answer.
func EchoModel(n int) Reply { return Reply{kind: kindOK, echo: max(n, 1)} }

// WithChunkDelay makes a streamed reply wait d before each text chunk (after the response
// headers, which go out at once): a slow provider.
func (r Reply) WithChunkDelay(d time.Duration) Reply { r.chunkDelay = d; return r }

// StreamBreakAfter cuts the connection after n text chunks: no closing events, no clean end of
// the HTTP body.
func (r Reply) StreamBreakAfter(n int) Reply {
	r.cut = streamCut{kind: cutBreak, after: n}
	return r
}

// StreamErrorAfter sends the wire's error event after n text chunks and ends the stream. status
// picks the provider's error type as for Error (429 rate limit, 500 server error, 529 or 503
// overloaded, 400 invalid request, ...).
func (r Reply) StreamErrorAfter(n, status int, message string) Reply {
	r.cut = streamCut{kind: cutError, after: n, status: status, message: message}
	return r
}

// StreamMalformedAfter sends a cut-off JSON event after n text chunks and ends the stream.
func (r Reply) StreamMalformedAfter(n int) Reply {
	r.cut = streamCut{kind: cutMalformed, after: n}
	return r
}

// StreamHangAfter stops sending after n text chunks and holds the connection open until the
// client goes away (or the server closes).
func (r Reply) StreamHangAfter(n int) Reply {
	r.cut = streamCut{kind: cutHang, after: n}
	return r
}

// ClientsGone is how many streamed replies the server could not finish because the client went
// away (closed the connection or gave up) first.
func (s *Server) ClientsGone() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.gone
}

func (s *Server) clientGone() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.gone++
}

// chunks are the text chunks the reply streams.
func (ex exchange) chunks() []string {
	r := ex.reply
	if r.echo > 0 {
		out := make([]string, r.echo)
		for i := range out {
			out[i] = fmt.Sprintf("[%s %d/%d] ", ex.model, i+1, r.echo)
		}
		return out
	}
	if r.chunks != nil {
		return r.chunks
	}
	return splitWords(r.text)
}

// splitWords splits s after each space: "Hello there." is "Hello ", "there.".
func splitWords(s string) []string {
	var out []string
	for s != "" {
		i := strings.IndexByte(s, ' ')
		if i < 0 {
			out = append(out, s)
			break
		}
		out = append(out, s[:i+1])
		s = s[i+1:]
	}
	return out
}

// sseEvent is one Server-Sent Event: an optional event name and one data line.
type sseEvent struct {
	name string
	data string
}

// streamEncoder renders one wire's events for a streamed reply.
type streamEncoder interface {
	header() map[string]string
	start() []sseEvent
	chunk(text string) []sseEvent
	end() []sseEvent
	fail(status int, message string) []sseEvent
	malformed() []sseEvent
}

func (s *Server) encoder(ex exchange) streamEncoder {
	switch s.wire {
	case OpenAI:
		return newOpenAIStream(ex)
	case Gemini:
		return newGeminiStream(ex)
	default:
		return newAnthropicStream(ex)
	}
}

// writeStream answers a stream request: headers at once, then the wire's events, shaped by the
// reply's delay and cut.
func (s *Server) writeStream(w http.ResponseWriter, r *http.Request, ex exchange) {
	enc := s.encoder(ex)
	flusher, _ := w.(http.Flusher)
	for k, v := range enc.header() {
		if v != "" {
			w.Header().Set(k, v)
		}
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	send := func(events []sseEvent) bool {
		var b strings.Builder
		for _, e := range events {
			if e.name != "" {
				b.WriteString("event: " + e.name + "\n")
			}
			b.WriteString("data: " + e.data + "\n\n")
		}
		if _, err := w.Write([]byte(b.String())); err != nil {
			s.clientGone()
			return false
		}
		if flusher != nil {
			flusher.Flush()
		}
		return true
	}
	// wait returns false when the client went away (or the server is closing) first.
	wait := func(d time.Duration) bool {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
			return true
		case <-r.Context().Done():
			s.clientGone()
		case <-s.done:
		}
		return false
	}
	cut := ex.reply.cut
	if ex.reply.kind == kindMalformed {
		cut = streamCut{kind: cutMalformed}
	}
	// doCut ends the stream the way the reply says.
	doCut := func() {
		switch cut.kind {
		case cutBreak:
			// The server closes the connection without ending the chunked body.
			panic(http.ErrAbortHandler)
		case cutError:
			send(enc.fail(cut.status, cut.message))
		case cutMalformed:
			send(enc.malformed())
		case cutHang:
			select {
			case <-r.Context().Done():
				s.clientGone()
			case <-s.done:
			}
		}
	}
	if !send(enc.start()) {
		return
	}
	var chunks []string
	if ex.reply.kind != kindFiltered {
		chunks = ex.chunks()
	}
	for i, c := range chunks {
		if cut.kind != cutNone && i == cut.after {
			doCut()
			return
		}
		if ex.reply.chunkDelay > 0 && !wait(ex.reply.chunkDelay) {
			return
		}
		if !send(enc.chunk(c)) {
			return
		}
	}
	if cut.kind != cutNone {
		doCut()
		return
	}
	send(enc.end())
}

// PartialUsage is the usage an adapter of wire w must report for a stream of a reply with usage
// u that broke off after its text started and before its end: none for OpenAI-style wires (usage
// comes only in the last chunk); the prompt for Gemini (every chunk counts it); for Anthropic what
// message_start reported (the input, cache reads and writes, and one output token).
func PartialUsage(w Wire, u Usage) *llm.Usage {
	n := u.Normalized(w)
	switch w {
	case Gemini:
		return &llm.Usage{InputTokens: n.InputTokens, CachedInputTokens: n.CachedInputTokens}
	case Anthropic:
		n.OutputTokens, n.ReasoningTokens = 1, 0
		return &n
	}
	return nil
}
