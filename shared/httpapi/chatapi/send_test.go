package chatapi_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/google/uuid"

	"github.com/helixhq/helix/shared/apitest"
	"github.com/helixhq/helix/shared/budget"
	"github.com/helixhq/helix/shared/httpapi/chatapi"
	"github.com/helixhq/helix/shared/money"
)

// TestResendIsReplayed: the same client_message_id again answers 200 with the original pair,
// replayed; nothing is stored, called or charged again. A resend with other content is still the
// same message (the id is what a resend is known by): the original pair comes back and the new
// text is neither stored nor answered.
func TestResendIsReplayed(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	s := e.createSession(t, e.alice, "Trip planning")
	cmid := uuid.NewString()
	var first chatapi.ExchangeView
	decodeStatus(t, e.send(t, e.alice, s.ID, "Hello, Helix!", cmid), http.StatusCreated, &first)
	spent := e.today(t, "alice").Spent
	if spent <= 0 || spent != first.Assistant.CostUSD {
		t.Fatalf("spent %s after the first send, want its cost %s", spent, first.Assistant.CostUSD)
	}

	for _, content := range []string{"Hello, Helix!", "Something else entirely"} {
		t.Run(content, func(t *testing.T) {
			r := e.send(t, e.alice, s.ID, content, cmid)
			var again chatapi.ExchangeView
			decodeStatus(t, r, http.StatusOK, &again)
			if !again.Replayed || !sameMessage(again.User, first.User) || !sameMessage(again.Assistant, first.Assistant) {
				t.Errorf("resend answered %+v, want the original pair replayed: %+v", again, first)
			}
			if h := r.Header.Get("X-Helix-Cost-Usd"); h != first.Assistant.CostUSD.String() {
				t.Errorf("X-Helix-Cost-Usd = %q on a replay, want the original reply's cost %s", h, first.Assistant.CostUSD)
			}
		})
	}
	if row, _ := e.sessionRow(t, s.ID); row.Messages != 2 || row.LastSeq != 2 {
		t.Errorf("session after resends: %+v, want 2 messages", row)
	}
	if n := e.count(t, `SELECT count(*) FROM session_messages WHERE content = 'Something else entirely'`); n != 0 {
		t.Errorf("the resend's other content was stored")
	}
	if rows, cost := e.logged(t, "alice"); rows != 1 || money.Nano(cost) != first.Assistant.CostUSD {
		t.Errorf("%d model calls logged at %d, want 1 at %s", rows, cost, first.Assistant.CostUSD)
	}
	if n := e.deepseek.Count(); n != 1 {
		t.Errorf("%d model requests, want 1", n)
	}
	if d := e.today(t, "alice"); d.Spent != spent || d.Reserved != 0 {
		t.Errorf("spent %s, reserved %s after resends; want %s, nothing held", d.Spent, d.Reserved, spent)
	}

	// The same id in another session is another message there.
	other := e.createSession(t, e.alice, "Other")
	var there chatapi.ExchangeView
	decodeStatus(t, e.send(t, e.alice, other.ID, "Hello, Helix!", cmid), http.StatusCreated, &there)
	if there.Replayed || there.User.Seq != 1 {
		t.Errorf("same id in another session: %+v, want a new message", there)
	}
}

// TestConcurrentResends: 8 sends with the same client_message_id at once make one message, one
// model call, one charge: exactly one answers 201, the others 200 replayed, all with the same
// pair (those that arrive while the reply is produced wait for it).
func TestConcurrentResends(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	s := e.createSession(t, e.alice, "Trip planning")
	cmid := uuid.NewString()
	const n = 8

	// The model call waits until every request has reached the server.
	release := e.model.Hold(t)
	var arrived sync.WaitGroup
	arrived.Add(n)
	e.onArrival(func(r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/messages") {
			arrived.Done()
		}
	})
	type answer struct {
		status int
		ex     chatapi.ExchangeView
		cost   string
		body   string
	}
	answers := make([]answer, n)
	var done sync.WaitGroup
	for i := range n {
		req := apitest.NewRequest(t, http.MethodPost, e.url+"/chat/sessions/"+s.ID+"/messages", e.alice,
			strings.NewReader(sendBody(t, "Hello, Helix!", cmid)))
		done.Add(1)
		go func() {
			defer done.Done()
			r, err := sendAsync(req)
			if err != nil {
				t.Errorf("send %d: %v", i, err)
				return
			}
			a := answer{status: r.Status, cost: r.Header.Get("X-Helix-Cost-Usd"), body: string(r.Body)}
			if r.Status == http.StatusOK || r.Status == http.StatusCreated {
				if err := json.Unmarshal(r.Body, &a.ex); err != nil {
					t.Errorf("send %d: %v in %s", i, err, r.Body)
				}
			}
			answers[i] = a
		}()
	}
	arrived.Wait()
	e.model.waitEntered(t) // the one call that produces the reply
	release()
	done.Wait()
	e.onArrival(nil)

	created := 0
	var first chatapi.ExchangeView
	for i, a := range answers {
		switch a.status {
		case http.StatusCreated:
			created++
			if a.ex.Replayed {
				t.Errorf("send %d: 201 marked replayed", i)
			}
			first = a.ex
		case http.StatusOK:
			if !a.ex.Replayed {
				t.Errorf("send %d: 200 not marked replayed", i)
			}
		default:
			t.Errorf("send %d: status %d, want 201 or 200; body %s", i, a.status, a.body)
		}
	}
	if created != 1 {
		t.Fatalf("%d sends answered 201, want exactly 1", created)
	}
	for i, a := range answers {
		if !sameMessage(a.ex.User, first.User) || !sameMessage(a.ex.Assistant, first.Assistant) {
			t.Errorf("send %d answered pair %+v / %+v, want the one pair %+v / %+v", i, a.ex.User, a.ex.Assistant, first.User, first.Assistant)
		}
		if a.cost != first.Assistant.CostUSD.String() {
			t.Errorf("send %d: X-Helix-Cost-Usd %q, want %s", i, a.cost, first.Assistant.CostUSD)
		}
	}
	if first.User.Seq != 1 || first.Assistant.Seq != 2 || first.Assistant.CostUSD <= 0 {
		t.Errorf("pair %d/%d at %s, want 1/2 at a cost", first.User.Seq, first.Assistant.Seq, first.Assistant.CostUSD)
	}
	if row, _ := e.sessionRow(t, s.ID); row.Messages != 2 || row.LastSeq != 2 {
		t.Errorf("session: %+v, want one pair stored", row)
	}
	rows, cost := e.logged(t, "alice")
	if rows != 1 || money.Nano(cost) != first.Assistant.CostUSD {
		t.Errorf("%d model calls logged at %d nano, want 1 at %s", rows, cost, first.Assistant.CostUSD)
	}
	if k := e.count(t, `SELECT count(*) FROM budget_reservations WHERE user_id = 'alice' AND status = 'settled'`); k != 1 {
		t.Errorf("%d settled reservations, want 1", k)
	}
	if d := e.today(t, "alice"); d.Spent != first.Assistant.CostUSD || d.Reserved != 0 {
		t.Errorf("alice's day: spent %s, reserved %s; want one charge of %s and nothing held", d.Spent, d.Reserved, first.Assistant.CostUSD)
	}
	if k := e.deepseek.Count(); k != 1 {
		t.Errorf("%d requests reached the model, want 1", k)
	}
}

// TestSendWhileReplying: while a session's reply is being produced, another message answers 409
// reply_in_progress and is not stored; once the reply is in, the same message goes through.
func TestSendWhileReplying(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	s := e.createSession(t, e.alice, "Trip planning")
	release := e.model.Hold(t)

	firstDone := e.sendInBackground(t, e.alice, s.ID, "First", uuid.NewString())
	e.model.waitEntered(t) // the first reply is being produced

	second := uuid.NewString()
	busy := e.send(t, e.alice, s.ID, "Second", second)
	wantError(t, busy, http.StatusConflict, "reply_in_progress")
	if got := busy.Header.Get("Retry-After"); got != "2" {
		t.Errorf("Retry-After = %q, want 2 (seconds: a reply takes a few)", got)
	}
	if row, _ := e.sessionRow(t, s.ID); row.Messages != 1 {
		t.Errorf("%d messages stored while the first reply is produced, want the first only", row.Messages)
	}
	release()
	r := <-firstDone
	var ex chatapi.ExchangeView
	decodeStatus(t, r, http.StatusCreated, &ex)
	if ex.User.Content != "First" || ex.Assistant.Seq != 2 {
		t.Errorf("first exchange %+v", ex)
	}

	var again chatapi.ExchangeView
	decodeStatus(t, e.send(t, e.alice, s.ID, "Second", second), http.StatusCreated, &again)
	if again.Replayed || again.User.Seq != 3 || again.User.Content != "Second" || again.Assistant.Seq != 4 {
		t.Errorf("second message once the first reply is in: %+v, want seq 3 answered by 4", again)
	}
	if rows, _ := e.logged(t, "alice"); rows != 2 {
		t.Errorf("%d model calls, want 2 (the refused send made none)", rows)
	}
}

// TestOtherSessionsAreNotBlocked: a reply in production blocks its own session only.
func TestOtherSessionsAreNotBlocked(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	busy := e.createSession(t, e.alice, "Busy")
	free := e.createSession(t, e.alice, "Free")
	release := e.model.Hold(t)
	done := e.sendInBackground(t, e.alice, busy.ID, "slow", uuid.NewString())
	e.model.waitEntered(t)
	e.model.passNew() // the held call keeps waiting; the next goes through
	var ex chatapi.ExchangeView
	decodeStatus(t, e.send(t, e.alice, free.ID, "fast", uuid.NewString()), http.StatusCreated, &ex)
	if ex.User.Seq != 1 || ex.Assistant.Seq != 2 {
		t.Errorf("exchange in the free session %+v", ex)
	}
	release()
	if r := <-done; r.Status != http.StatusCreated {
		t.Errorf("held send answered %d, want 201; body %s", r.Status, r.Body)
	}
}

// TestFailedReplyIsRetriedWithTheSameID: a reply that fails (here the budget refuses it) answers
// the pipeline's error; the user message stays stored and the session is not left blocked, and
// the same client_message_id sent again produces the reply to the stored message, charged once.
func TestFailedReplyIsRetriedWithTheSameID(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	s := e.createSession(t, e.alice, "Trip planning")
	ledger := e.app.Ledger()
	if _, err := ledger.SetLimits(t.Context(), "alice", budget.Limits{}, "test"); err != nil {
		t.Fatal(err)
	}
	cmid := uuid.NewString()
	wantError(t, e.send(t, e.alice, s.ID, "Hello, Helix!", cmid), http.StatusPaymentRequired, "budget_exceeded")
	if row, _ := e.sessionRow(t, s.ID); row.Messages != 1 || row.LastSeq != 1 {
		t.Fatalf("after the refused reply: %+v, want the user message stored", row)
	}
	if n := e.deepseek.Count(); n != 0 {
		t.Errorf("%d model calls for a refused reply", n)
	}

	lim := money.MustUSD(5)
	if _, err := ledger.SetLimits(t.Context(), "alice", budget.Limits{DailyLimit: lim, Warning: lim}, "test"); err != nil {
		t.Fatal(err)
	}
	var ex chatapi.ExchangeView
	decodeStatus(t, e.send(t, e.alice, s.ID, "Hello, Helix!", cmid), http.StatusCreated, &ex)
	if ex.Replayed || ex.User.Seq != 1 || ex.User.Content != "Hello, Helix!" || ex.Assistant.Seq != 2 || ex.Assistant.ReplyToSeq != 1 {
		t.Errorf("retry answered %+v, want message 1 answered by 2", ex)
	}
	// The refusal is logged as a failure that cost nothing; the retry as the one call.
	if rows, cost := e.logged(t, "alice"); rows != 2 || money.Nano(cost) != ex.Assistant.CostUSD {
		t.Errorf("%d operations logged at %d, want the refusal and the retry at %s", rows, cost, ex.Assistant.CostUSD)
	}
	if n := e.count(t, `SELECT count(*) FROM ai_operation_log WHERE user_id = 'alice' AND NOT success AND error_code = 'budget_exceeded' AND cost_nano = 0`); n != 1 {
		t.Errorf("%d logged budget refusals, want 1", n)
	}
	if d := e.today(t, "alice"); d.Spent != ex.Assistant.CostUSD || d.Reserved != 0 {
		t.Errorf("spent %s, reserved %s; want %s once", d.Spent, d.Reserved, ex.Assistant.CostUSD)
	}
	if n := e.deepseek.Count(); n != 1 {
		t.Errorf("%d model calls, want the retry's 1", n)
	}
	// A new message goes: the failed reply left no lease behind.
	if again := e.exchange(t, e.alice, s.ID, "Next"); again.User.Seq != 3 {
		t.Errorf("next message stored as %d, want 3", again.User.Seq)
	}
}
