package chat

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/helixhq/helix/shared/catalog"
	"github.com/helixhq/helix/shared/execute"
	"github.com/helixhq/helix/shared/stepup"
)

// streamingExec is the pipeline of these tests: it hands pieces to the call's Stream, then
// answers like fakeExec (or fails with failAfter's error once the pieces are out).
type streamingExec struct {
	*fakeExec
	pieces    []string
	failAfter error
	sinkErr   error // what Stream returned, if it refused a piece
}

func (e *streamingExec) Execute(ctx context.Context, c execute.Call) (execute.Result, error) {
	if c.Stream != nil {
		for _, p := range e.pieces {
			if err := c.Stream(execute.Piece{Text: p, Model: catalog.Model{Key: "deepseek"}}); err != nil {
				e.sinkErr = err
				_, _ = e.fakeExec.Execute(ctx, c) // recorded
				return execute.Result{}, fmt.Errorf("%w: client stopped", execute.ErrProvidersUnavailable)
			}
		}
	}
	res, err := e.fakeExec.Execute(ctx, c)
	if e.failAfter != nil {
		return execute.Result{}, e.failAfter
	}
	return res, err
}

// TestSendStreams: a send with Stream hands it the reply's pieces, in order, through the
// pipeline call, and stores the whole reply once it is complete; a stream that breaks after its
// first pieces stores no reply and ends the lease, as any failed reply; a client that refuses a
// piece ends the call the same way.
func TestSendStreams(t *testing.T) {
	broken := fmt.Errorf("%w: %w", execute.ErrProvidersUnavailable, execute.ErrStreamBroken)
	gone := errors.New("write: broken pipe")
	for _, tt := range []struct {
		name      string
		failAfter error
		sinkErr   error
		wantErr   error
	}{
		{name: "complete"},
		{name: "broken after the first pieces", failAfter: broken, wantErr: execute.ErrStreamBroken},
		{name: "client stops reading", sinkErr: gone, wantErr: execute.ErrProvidersUnavailable},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			f.store.begun = goBegun("What should I pack?")
			f.store.replySeq = 6
			f.exec.res = okResult()
			ex := &streamingExec{fakeExec: f.exec, pieces: []string{"Pack ", "light: ", "it is warm in May."}, failAfter: tt.failAfter}
			f.svc.Exec = ex
			var got []string
			in := send("What should I pack?")
			in.Stream = func(p execute.Piece) error {
				got = append(got, p.Text)
				if p.Model.Key != "deepseek" {
					t.Errorf("piece from model %q", p.Model.Key)
				}
				return tt.sinkErr
			}
			res, err := f.svc.Send(t.Context(), in)
			_, replies, aborts, _ := f.store.calls()
			if calls := f.exec.Calls(); len(calls) != 1 || calls[0].Stream == nil {
				t.Fatalf("pipeline calls %d (stream set: %v), want one with the stream", len(calls), len(calls) == 1 && calls[0].Stream != nil)
			}
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				if len(replies) != 0 || len(aborts) != 1 || aborts[0] != 5 {
					t.Errorf("replies %+v, aborts %v; want none stored and the lease of 5 ended", replies, aborts)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if strings.Join(got, "") != okResult().Text {
				t.Errorf("pieces %q, want the reply %q", got, okResult().Text)
			}
			if len(replies) != 1 || replies[0].Reply.Content != okResult().Text || res.Assistant.Content != okResult().Text || res.Assistant.Seq != 6 {
				t.Errorf("stored %+v, answered %+v; want the whole reply stored once, seq 6", replies, res.Assistant)
			}
		})
	}
}

// TestSendStepUpDoesNotStream: a step-up message is answered by Helix, never by a model: its
// Stream gets nothing (the key can be in no piece), and the redacted pair is returned.
func TestSendStepUpDoesNotStream(t *testing.T) {
	f := newFixture(t)
	withStepUp(t, f)
	f.store.begun = goBegun("")
	f.store.begun.Message = Message{}
	f.store.replySeq = 6
	in := send(phrase + " " + theKey)
	in.UserID = creatorUser
	pieces := 0
	in.Stream = func(execute.Piece) error { pieces++; return nil }
	ex, err := f.svc.Send(t.Context(), in)
	if err != nil {
		t.Fatal(err)
	}
	if pieces != 0 || len(f.exec.Calls()) != 0 {
		t.Errorf("%d pieces streamed, %d pipeline calls for a step-up; want none", pieces, len(f.exec.Calls()))
	}
	if ex.User.Content != stepup.Redacted || ex.Assistant.Content != stepup.Answer(stepup.Verified) {
		t.Errorf("exchange %+v", ex)
	}
}

// TestSendReplayDoesNotStream: a resend whose reply is stored answers the pair and streams
// nothing (no model is called).
func TestSendReplayDoesNotStream(t *testing.T) {
	f := newFixture(t)
	f.store.begun = Begun{Outcome: Replied, Seq: 5, ReplySeq: 6}
	f.store.put(Message{ConversationID: conv, Seq: 5, Role: User, Content: "Hello"})
	f.store.put(Message{ConversationID: conv, Seq: 6, Role: Assistant, Content: "Hi", ReplyToSeq: 5})
	in := send("Hello")
	in.Stream = func(execute.Piece) error { t.Error("a replay streamed a piece"); return nil }
	ex, err := f.svc.Send(t.Context(), in)
	if err != nil {
		t.Fatal(err)
	}
	if !ex.Replayed || ex.Assistant.Content != "Hi" || len(f.exec.Calls()) != 0 {
		t.Errorf("exchange %+v after %d calls; want the stored pair replayed, no call", ex, len(f.exec.Calls()))
	}
}
