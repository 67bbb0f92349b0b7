package llm

import "context"

// Streamer is a provider that can hand its answer over as it is generated. Every adapter
// implements it (the offline model too), through its SDK's streaming call.
//
// Stream's own error is a failure before any text (the same kinds as Complete's, and the
// pipeline may fail over on it); once it returns a Stream, failures come from Next. Adapters
// read up to the first text before returning, so an error status, a hung server, an error event,
// a content filter or an empty answer that comes before any text is Stream's error; a Stream,
// once returned, has text to give (or, for an answer cut at max tokens before any text, io.EOF).
// Like Complete, a Stream is exactly one HTTP request: adapters do not retry.
type Streamer interface {
	Stream(ctx context.Context, req Request) (Stream, error)
}

// Stream is one streamed answer. It is used from one goroutine.
type Stream interface {
	// Next returns the next piece of text, in order. At the end of the answer it returns
	// io.EOF; a failure mid-stream is an *Error (with Usage when the provider reported any before
	// breaking off), and the context's end is KindTimeout. Empty deltas are never returned.
	Next() (Delta, error)
	// Response is the answer so far: after io.EOF the whole call (Text the concatenated deltas,
	// Usage from the provider's final report, FinishReason, Model, ProviderRequestID); before
	// that, or after a failure, what has arrived (Usage zero unless the provider reported some,
	// HasUsage saying which).
	Response() StreamResponse
	// Close releases the connection; it may be called at any time, more than once. Next after a
	// Close that came before the end returns a KindTimeout *Error, never io.EOF: a stream given
	// up on is not a complete answer.
	Close() error
}

// Delta is a piece of a streamed answer.
type Delta struct {
	Text string
}

// StreamResponse is a streamed call's answer, whole or partial.
type StreamResponse struct {
	Response
	// HasUsage is true when the provider reported usage (at the end of a complete stream, and
	// for some providers at its start: Anthropic reports the input in message_start).
	HasUsage bool
	// Chunks is how many deltas were returned: a lower bound of the output tokens of a stream
	// that ended before the provider reported usage.
	Chunks int
}
