package chatapi

import (
	"net/http"
	"strings"
	"testing"

	"github.com/helixhq/helix/shared/catalog"
	"github.com/helixhq/helix/shared/execute"
)

// TestWantsStream: a stream is asked for by naming text/event-stream in Accept, in any case and
// among other types, unless its quality is 0; wildcards and no Accept mean JSON.
func TestWantsStream(t *testing.T) {
	for _, tc := range []struct {
		accept []string
		want   bool
	}{
		{nil, false},
		{[]string{""}, false},
		{[]string{"application/json"}, false},
		{[]string{"*/*"}, false},
		{[]string{"text/*"}, false},
		{[]string{"text/event-stream"}, true},
		{[]string{"Text/Event-Stream"}, true},
		{[]string{"application/json, text/event-stream"}, true},
		{[]string{"application/json", "text/event-stream"}, true},
		{[]string{"text/event-stream;q=0.5"}, true},
		{[]string{"text/event-stream; q=0"}, false},
		{[]string{"text/event-stream;q=0.000"}, false},
		{[]string{"text/event-stream;q=abc"}, false},
		{[]string{"text/event-stream;q=NaN"}, false},
		{[]string{"text/event-streams"}, false},
		{[]string{"text/event-stream;;"}, false},
	} {
		r, _ := http.NewRequest(http.MethodPost, "/", nil)
		for _, a := range tc.accept {
			r.Header.Add("Accept", a)
		}
		if got := wantsStream(r); got != tc.want {
			t.Errorf("Accept %q: stream %v, want %v", tc.accept, got, tc.want)
		}
	}
}

// FuzzWantsStream: any Accept header is read without a panic, and asks for a stream only when it
// names text/event-stream.
func FuzzWantsStream(f *testing.F) {
	for _, s := range []string{"", "text/event-stream", "application/json, text/event-stream;q=0.9", "*/*;q=0", "text/event-stream;q=1e400", `text/event-stream;x="a,b"`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, accept string) {
		r, _ := http.NewRequest(http.MethodPost, "/", nil)
		r.Header["Accept"] = []string{accept}
		if wantsStream(r) && !strings.Contains(strings.ToLower(accept), "text/event-stream") {
			t.Fatalf("Accept %q asks for a stream", accept)
		}
	})
}

// bufferingWriter is a ResponseWriter that cannot flush, as API Gateway's HTTP API adapter
// (aws-lambda-go-api-proxy's) is: it buffers the whole answer.
type bufferingWriter struct {
	header http.Header
	status int
	body   strings.Builder
}

func (b *bufferingWriter) Header() http.Header         { return b.header }
func (b *bufferingWriter) WriteHeader(status int)      { b.status = status }
func (b *bufferingWriter) Write(p []byte) (int, error) { return b.body.Write(p) }

// TestStreamWithoutFlush: a writer that cannot flush is not a client that went away: every
// delta is taken (the model is not stopped) and the whole stream is in the buffered answer.
func TestStreamWithoutFlush(t *testing.T) {
	w := &bufferingWriter{header: http.Header{}}
	s := newEventStream(w)
	for _, text := range []string{"Hello ", "there."} {
		if err := s.delta(execute.Piece{Text: text, Model: catalog.Model{Key: "deepseek"}}); err != nil {
			t.Fatalf("delta %q: %v", text, err)
		}
	}
	s.message(ExchangeView{})
	want := "event: delta\ndata: {\"text\":\"Hello \"}\n\nevent: delta\ndata: {\"text\":\"there.\"}\n\nevent: message\ndata: "
	if w.status != http.StatusOK || w.header.Get("Content-Type") != "text/event-stream" || !strings.HasPrefix(w.body.String(), want) {
		t.Errorf("status %d, headers %v, body %q", w.status, w.header, w.body.String())
	}
}
