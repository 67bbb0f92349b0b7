package execute_test

// Streamed calls (Call.Stream) keep every money rule: the worst case is reserved before the first
// piece, failover happens only before it, a stream that ends early is settled at what it
// consumed, and one log row says how it ended.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/helixhq/helix/shared/budget"
	"github.com/helixhq/helix/shared/execute"
	"github.com/helixhq/helix/shared/llm"
	"github.com/helixhq/helix/shared/money"
)

// streamStep is one scripted streamed answer.
type streamStep struct {
	pieces    []string
	usage     *llm.Usage // reported at the end (nil: none)
	errBefore error      // Stream itself fails: nothing was sent
	errAfter  int        // with err: Next fails after this many pieces
	err       error
	hangAfter int // > 0: after this many pieces Next waits for the call's context to end
}

// streamFake is a provider that streams scripted answers.
type streamFake struct {
	name string

	mu     sync.Mutex
	script []streamStep
	def    streamStep
	opened int
}

func newStreamFake(name string, def streamStep) *streamFake { return &streamFake{name: name, def: def} }

func (f *streamFake) Name() string { return f.name }

func (f *streamFake) Complete(context.Context, llm.Request) (llm.Response, error) {
	return llm.Response{}, errors.New("a streamed call must not complete")
}

func (f *streamFake) Stream(ctx context.Context, _ llm.Request) (llm.Stream, error) {
	f.mu.Lock()
	f.opened++
	s := f.def
	if len(f.script) > 0 {
		s, f.script = f.script[0], f.script[1:]
	}
	f.mu.Unlock()
	if s.errBefore != nil {
		return nil, s.errBefore
	}
	return &fakeStream{ctx: ctx, step: s}, nil
}

func (f *streamFake) Opened() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.opened
}

type fakeStream struct {
	ctx  context.Context
	step streamStep
	next int
	text strings.Builder
}

func (s *fakeStream) Next() (llm.Delta, error) {
	if err := s.ctx.Err(); err != nil {
		return llm.Delta{}, &llm.Error{Kind: llm.KindTimeout, Message: "context ended", Err: err}
	}
	if s.step.err != nil && s.next == s.step.errAfter {
		return llm.Delta{}, s.step.err
	}
	if s.step.hangAfter > 0 && s.next == s.step.hangAfter {
		<-s.ctx.Done()
		return llm.Delta{}, &llm.Error{Kind: llm.KindTimeout, Message: "context ended", Err: s.ctx.Err()}
	}
	if s.next == len(s.step.pieces) {
		return llm.Delta{}, io.EOF
	}
	p := s.step.pieces[s.next]
	s.next++
	s.text.WriteString(p)
	return llm.Delta{Text: p}, nil
}

func (s *fakeStream) Response() llm.StreamResponse {
	r := llm.StreamResponse{Response: llm.Response{Text: s.text.String(), FinishReason: "stop"}, Chunks: s.next}
	if s.next == len(s.step.pieces) && s.step.usage != nil {
		r.Usage, r.HasUsage = *s.step.usage, true
	}
	return r
}

func (s *fakeStream) Close() error { return nil }

var fivePieces = []string{"Dear ", "manager, ", "the ", "project ", "is on track."}

// streamEnv is an env whose DeepSeek and Gemini stream.
func streamEnv(t *testing.T) (*env, *streamFake, *streamFake) {
	e := newEnv(t)
	u := llm.Usage{InputTokens: 120, OutputTokens: 60}
	ds := newStreamFake("deepseek", streamStep{pieces: fivePieces, usage: &u})
	gm := newStreamFake("gemini", streamStep{pieces: fivePieces, usage: &u})
	e.instance = e.newInstance(registry{"deepseek": ds, "gemini": gm, "anthropic": e.claude}, nil, testPolicy())
	return e, ds, gm
}

// collect is a stream consumer that keeps the pieces and stops after stopAfter (0: never).
type collect struct {
	mu        sync.Mutex
	pieces    []string
	stopAfter int
}

func (c *collect) sink(p execute.Piece) error {
	text := p.Text
	if p.Model.Key == "" {
		return errors.New("a piece without its model")
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopAfter > 0 && len(c.pieces) == c.stopAfter {
		return errors.New("client went away")
	}
	c.pieces = append(c.pieces, text)
	return nil
}

func TestStreamedCallSettlesFromTheFinalUsage(t *testing.T) {
	e, ds, _ := streamEnv(t)
	var got collect
	c := composeCall("stream-ok")
	c.Stream = got.sink
	res := e.mustExecute(c)
	if strings.Join(got.pieces, "") != strings.Join(fivePieces, "") || res.Text != strings.Join(fivePieces, "") {
		t.Errorf("pieces %q, text %q", got.pieces, res.Text)
	}
	want := money.Nano(120*deepseekIn + 60*deepseekOut)
	row := e.mustLog(c.RequestID)
	if res.Cost != want || row.Cost != int64(want) || !row.Success || row.ErrorCode != "" || row.Input != 120 || row.Output != 60 {
		t.Errorf("cost %d, row %+v; want %d from the reported usage", res.Cost, row, want)
	}
	if d := e.day("u1"); d.Reserved != 0 || d.Spent != want {
		t.Errorf("day %+v, want %d spent and nothing reserved", d, want)
	}
	if ds.Opened() != 1 {
		t.Errorf("deepseek streams opened %d, want 1", ds.Opened())
	}
}

// A client that goes away after three pieces: the provider is stopped, and the call is settled
// at the input bound and the pieces handed over (the provider reported no usage), never zero and
// never the whole reservation; the reservation is gone and the row says client_gone.
func TestStreamClientGoneAfterThreePieces(t *testing.T) {
	e, _, gm := streamEnv(t)
	got := collect{stopAfter: 3}
	c := composeCall("stream-gone")
	c.Stream = got.sink
	if _, err := e.execute(c); err == nil {
		t.Fatal("a stream the client left succeeded")
	}
	// The fourth piece was produced and offered: it counts.
	want := money.Nano(inputBound()*deepseekIn + 4*deepseekOut)
	row := e.mustLog(c.RequestID)
	if row.Cost != int64(want) || row.Success || row.ErrorCode != "client_gone" || row.Model != "deepseek" {
		t.Errorf("row %+v, want client_gone at %d", row, want)
	}
	if d := e.day("u1"); d.Reserved != 0 || d.Spent != want {
		t.Errorf("day %+v, want %d spent and nothing reserved", d, want)
	}
	if gm.Opened() != 0 {
		t.Error("a stream the client left failed over to another model")
	}
}

func TestStreamFailsOverOnlyBeforeTheFirstPiece(t *testing.T) {
	t.Run("before the first piece", func(t *testing.T) {
		e, ds, gm := streamEnv(t)
		ds.def = streamStep{errBefore: &llm.Error{Provider: "deepseek", Kind: llm.KindUnavailable, StatusCode: 503, Message: "down"}}
		var got collect
		c := composeCall("stream-failover")
		c.Stream = got.sink
		res := e.mustExecute(c)
		if res.Model.Key != "gemini_flash" || !res.FallbackUsed || strings.Join(got.pieces, "") != strings.Join(fivePieces, "") {
			t.Errorf("model %s fallback %v pieces %q", res.Model.Key, res.FallbackUsed, got.pieces)
		}
		if ds.Opened() != 2 || gm.Opened() != 1 { // AttemptsPerModel tries of the primary, then the fallback
			t.Errorf("opened deepseek %d gemini %d", ds.Opened(), gm.Opened())
		}
		if row := e.mustLog(c.RequestID); !row.Success || row.Model != "gemini_flash" || row.Cost != int64(120*geminiIn+60*geminiOut) {
			t.Errorf("row %+v", row)
		}
	})
	t.Run("after it", func(t *testing.T) {
		e, ds, gm := streamEnv(t)
		ds.def = streamStep{pieces: fivePieces, errAfter: 2, err: &llm.Error{Provider: "deepseek", Kind: llm.KindUnavailable, Message: "connection reset"}}
		var got collect
		c := composeCall("stream-broken")
		c.Stream = got.sink
		_, err := e.execute(c)
		if !errors.Is(err, execute.ErrStreamBroken) {
			t.Fatalf("error %v, want ErrStreamBroken", err)
		}
		if len(got.pieces) != 2 || gm.Opened() != 0 || ds.Opened() != 1 {
			t.Errorf("pieces %q, gemini opened %d, deepseek %d: no retry and no failover after a piece", got.pieces, gm.Opened(), ds.Opened())
		}
		want := money.Nano(inputBound()*deepseekIn + 2*deepseekOut)
		if row := e.mustLog(c.RequestID); row.ErrorCode != "stream_broken" || row.Cost != int64(want) || row.Success {
			t.Errorf("row %+v, want stream_broken at %d", row, want)
		}
		if d := e.day("u1"); d.Reserved != 0 || d.Spent != want {
			t.Errorf("day %+v", d)
		}
	})
	t.Run("usage reported before the break is charged", func(t *testing.T) {
		e, ds, _ := streamEnv(t)
		u := llm.Usage{InputTokens: 130, OutputTokens: 1}
		ds.def = streamStep{pieces: fivePieces, errAfter: 3, err: &llm.Error{Provider: "deepseek", Kind: llm.KindBadResponse, Message: "bad chunk", Usage: &u}}
		c := composeCall("stream-broken-usage")
		c.Stream = (&collect{}).sink
		if _, err := e.execute(c); !errors.Is(err, execute.ErrStreamBroken) {
			t.Fatalf("error %v", err)
		}
		// The provider's input count, and never fewer output tokens than pieces handed over.
		if row := e.mustLog(c.RequestID); row.Cost != int64(130*deepseekIn+3*deepseekOut) || row.Input != 130 || row.Output != 3 {
			t.Errorf("row %+v", row)
		}
	})
}

// 200 streams at once against a limit a few of them fit: the worst case is reserved before any
// piece, so the admitted ones never spend past the limit, and the rest never reach a provider.
func TestConcurrentStreamsNeverOverspend(t *testing.T) {
	e, ds, gm := streamEnv(t)
	hold := money.Nano(inputBound()*claudeWorstIn + composeMaxOutput*claudeOut)
	limit := 7 * hold
	if _, err := e.ledger.SetLimits(context.Background(), "u1", budget.Limits{DailyLimit: limit, Warning: limit}, "test"); err != nil {
		t.Fatal(err)
	}
	const n = 200
	var wg sync.WaitGroup
	var mu sync.Mutex
	ok, refused := 0, 0
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			c := composeCall(fmt.Sprintf("stream-race-%03d", i))
			c.Stream = (&collect{}).sink
			_, err := e.p.Execute(context.Background(), c)
			var exceeded *budget.ExceededError
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				ok++
			case errors.As(err, &exceeded):
				refused++
			default:
				t.Errorf("%s: %v", c.RequestID, err)
			}
		})
	}
	close(start)
	wg.Wait()
	d := e.day("u1")
	if d.Spent > limit || d.Reserved != 0 || ok+refused != n || ok < 7 || refused == 0 {
		t.Errorf("ok %d refused %d; day %+v against limit %d", ok, refused, d, limit)
	}
	if ds.Opened()+gm.Opened() != ok {
		t.Errorf("streams opened %d, want one per admitted call (%d)", ds.Opened()+gm.Opened(), ok)
	}
	if rows := e.count(`SELECT count(*) FROM ai_operation_log WHERE user_id = 'u1'`); rows != int64(n) {
		t.Errorf("%d log rows, want one per call (%d)", rows, n)
	}
}

// The deadline passing mid-stream (a provider that stalls after two pieces): the call ends at
// the deadline less the finish margin, is charged what was consumed, logged as a timeout, and
// nothing stays reserved.
func TestStreamDeadlinePassesMidStream(t *testing.T) {
	e, ds, gm := streamEnv(t)
	ds.def = streamStep{pieces: fivePieces, hangAfter: 2}
	got := collect{}
	c := composeCall("stream-deadline")
	c.Stream = got.sink
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	_, err := e.p.Execute(ctx, c)
	if !errors.Is(err, execute.ErrDeadline) {
		t.Fatalf("error %v, want ErrDeadline", err)
	}
	want := money.Nano(inputBound()*deepseekIn + 2*deepseekOut)
	if row := e.mustLog(c.RequestID); row.ErrorCode != "timeout" || row.Cost != int64(want) || row.Success {
		t.Errorf("row %+v, want timeout at %d", row, want)
	}
	if d := e.day("u1"); d.Reserved != 0 || d.Spent != want {
		t.Errorf("day %+v", d)
	}
	if len(got.pieces) != 2 || gm.Opened() != 0 {
		t.Errorf("pieces %q, gemini opened %d", got.pieces, gm.Opened())
	}
}
