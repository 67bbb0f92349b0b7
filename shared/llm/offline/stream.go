package offline

import (
	"context"
	"io"
	"strings"
	"unicode/utf8"

	"github.com/helixhq/helix/shared/llm"
)

var _ llm.Streamer = Provider{}

// maxPiece bounds a delta: a long word, or a JSON answer without spaces, comes in pieces too.
const maxPiece = 16

// Stream implements llm.Streamer: Complete's answer, word by word (each delta a word and the
// space after it). It fails, from Stream, exactly when Complete fails; the answer still says it
// is the offline model and Offline is set from the first delta on. Usage (Complete's rough
// counts) and the finish reason come at the end, as a provider's would.
func (p Provider) Stream(ctx context.Context, req llm.Request) (llm.Stream, error) {
	whole, err := p.Complete(ctx, req)
	if err != nil {
		return nil, err
	}
	s := &stream{ctx: ctx, whole: whole, pieces: pieces(whole.Text)}
	s.resp.Model, s.resp.ProviderRequestID, s.resp.Offline = whole.Model, whole.ProviderRequestID, true
	return s, nil
}

type stream struct {
	ctx    context.Context
	whole  llm.Response
	pieces []string
	resp   llm.StreamResponse
	err    error
	closed bool
}

// Next implements llm.Stream.
func (s *stream) Next() (llm.Delta, error) {
	switch {
	case s.err != nil:
		return llm.Delta{}, s.err
	case s.closed:
		s.err = &llm.Error{Provider: Name, Kind: llm.KindTimeout, Message: "stream closed before its end"}
		return llm.Delta{}, s.err
	case s.ctx.Err() != nil:
		s.err = &llm.Error{Provider: Name, Kind: llm.KindTimeout, Message: "stream ended by the deadline or the caller", Err: s.ctx.Err()}
		return llm.Delta{}, s.err
	case len(s.pieces) == 0:
		s.resp.Response = s.whole
		s.resp.HasUsage = true
		s.err = io.EOF
		return llm.Delta{}, s.err
	}
	d := s.pieces[0]
	s.pieces = s.pieces[1:]
	s.resp.Text += d
	s.resp.Chunks++
	return llm.Delta{Text: d}, nil
}

// Response implements llm.Stream.
func (s *stream) Response() llm.StreamResponse { return s.resp }

// Close implements llm.Stream.
func (s *stream) Close() error {
	s.closed = true
	return nil
}

// pieces splits s after each space, and cuts pieces longer than maxPiece at rune boundaries.
func pieces(s string) []string {
	var out []string
	for s != "" {
		n := len(s)
		if i := strings.IndexByte(s, ' '); i >= 0 {
			n = i + 1
		}
		if n > maxPiece {
			n = maxPiece
			for n > 0 && !utf8.RuneStart(s[n]) {
				n--
			}
			if n == 0 { // cannot happen with valid UTF-8 (runes are at most 4 bytes)
				n = maxPiece
			}
		}
		out = append(out, s[:n])
		s = s[n:]
	}
	return out
}
