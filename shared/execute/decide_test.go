package execute_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/helixhq/helix/shared/access"
	"github.com/helixhq/helix/shared/approval"
	"github.com/helixhq/helix/shared/budget"
	"github.com/helixhq/helix/shared/catalog"
	"github.com/helixhq/helix/shared/execute"
	"github.com/helixhq/helix/shared/llm"
	"github.com/helixhq/helix/shared/money"
	"github.com/helixhq/helix/shared/postgres"
	"github.com/helixhq/helix/shared/router"
)

var user = access.Caller{UserID: "u1"}

// The decision is the one execution makes: the same skip rules (kill switches, open breakers),
// and "providers unavailable" when they leave nothing.
func TestDecideSkipsWhatExecutionSkips(t *testing.T) {
	tests := []struct {
		name      string
		env       map[string]bool
		openGem   bool // open Gemini's breaker
		wantChain []string
		wantErr   error
	}{
		{name: "nothing off", wantChain: []string{"deepseek", "gemini_flash", "claude"}},
		{name: "DeepSeek switched off", env: map[string]bool{"DISABLE_DEEPSEEK": true}, wantChain: []string{"gemini_flash", "claude"}},
		{name: "Gemini's breaker open", openGem: true, wantChain: []string{"deepseek", "claude"}},
		{name: "everything off", env: map[string]bool{"DISABLE_DEEPSEEK": true, "DISABLE_GEMINI": true, "DISABLE_ANTHROPIC": true},
			wantErr: execute.ErrProvidersUnavailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, withEnvToggles(tt.env))
			if tt.openGem {
				for range breakerPolicy.Threshold {
					if err := e.breakers.Failure(context.Background(), "gemini", "test"); err != nil {
						t.Fatal(err)
					}
				}
			}
			d, err := e.p.Decide(context.Background(), execute.Query{Caller: user, OperationID: "email-compose"})
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				// Execution refuses the same way.
				if _, err := e.execute(composeCall("r")); !errors.Is(err, tt.wantErr) {
					t.Fatalf("Execute err = %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var chain []string
			for i := 0; i < d.ChainLen; i++ {
				chain = append(chain, d.Chain[i].Key)
			}
			if !equal(chain, tt.wantChain) {
				t.Fatalf("chain = %v, want %v", chain, tt.wantChain)
			}
			// Execution calls the decision's first model.
			res, err := e.execute(composeCall("r"))
			if err != nil || res.Model.Key != tt.wantChain[0] {
				t.Fatalf("Execute answered with %q (%v); the decision said %q", res.Model.Key, err, tt.wantChain[0])
			}
		})
	}
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// The worst case of a decision is the amount execution reserves for a call of that input bound,
// so within_budget is true exactly when the call is admitted.
func TestDecideWorstCaseIsWhatExecutionReserves(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	// A call that never finishes, so its reservation can be read while it is held.
	e.deepseek.Default(step{block: true})
	bound := inputBound()
	d, err := e.p.Decide(ctx, execute.Query{Caller: user, OperationID: "email-compose", InputTokens: bound})
	if err != nil {
		t.Fatal(err)
	}
	// Claude is the most expensive model of the chain: its prices make the worst case, its input
	// at the 1-hour cache-write price, the dearest an input token can cost there.
	want, _ := money.CostOf(money.TokenCharge{Tokens: bound, PerMillion: claudeWorstIn * 1_000_000},
		money.TokenCharge{Tokens: composeMaxOutput, PerMillion: claudeOut * 1_000_000})
	if d.WorstCase != want {
		t.Fatalf("decision worst case %s, want %s", d.WorstCase, want)
	}

	cctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = e.p.Execute(cctx, composeCall("held"))
	}()
	var status string
	var amount money.Nano
	for range 200 {
		if status, amount = e.reservation("held"); status == "reserved" {
			break
		}
		sleepABit()
	}
	cancel()
	<-done
	if amount != d.WorstCase {
		t.Fatalf("execution reserved %s, the decision's worst case is %s", amount, d.WorstCase)
	}
}

// within_budget agrees with admission at the edge: a remaining budget one nano below the worst
// case says false and the call is refused; exactly the worst case says true and the call runs.
func TestDecideWithinBudgetAgreesWithAdmission(t *testing.T) {
	ctx := context.Background()
	for _, tt := range []struct {
		name  string
		delta money.Nano
		fits  bool
	}{{"one nano short", -1, false}, {"exactly enough", 0, true}} {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			bound := inputBound()
			d, err := e.p.Decide(ctx, execute.Query{Caller: user, OperationID: "email-compose", InputTokens: bound})
			if err != nil {
				t.Fatal(err)
			}
			limit := d.WorstCase + tt.delta
			if _, err := e.ledger.SetLimits(ctx, "u1", budget.Limits{DailyLimit: limit, Warning: limit}, "test"); err != nil {
				t.Fatal(err)
			}
			d, err = e.p.Decide(ctx, execute.Query{Caller: user, OperationID: "email-compose", InputTokens: bound})
			if err != nil {
				t.Fatal(err)
			}
			if d.WithinBudget != tt.fits {
				t.Fatalf("within_budget = %v, want %v (remaining %s, worst case %s)", d.WithinBudget, tt.fits, d.Day.Remaining(), d.WorstCase)
			}
			_, err = e.execute(composeCall("r"))
			var exceeded *budget.ExceededError
			if refused := errors.As(err, &exceeded); refused == tt.fits {
				t.Fatalf("Execute err = %v; the decision said within_budget = %v", err, d.WithinBudget)
			}
		})
	}
}

// The admin rule and the approval rule are the use case's: a user may not decide for another
// user, an admin may; a HIGH-criticality estimate above the warning is reported as needing approval.
func TestDecideRules(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	if _, err := e.p.Decide(ctx, execute.Query{Caller: user, UserID: "u2", OperationID: "email-compose"}); !errors.Is(err, access.ErrOtherUser) {
		t.Fatalf("user deciding for another user: err = %v", err)
	}
	d, err := e.p.Decide(ctx, execute.Query{Caller: access.Caller{UserID: "ops", Admin: true}, UserID: "u2", OperationID: "email-compose"})
	if err != nil || d.Day.UserID != "u2" {
		t.Fatalf("admin deciding for u2: %v, day of %q", err, d.Day.UserID)
	}
	if _, err := e.p.Decide(ctx, execute.Query{Caller: user, OperationID: "no-such-op"}); !errors.Is(err, router.ErrUnknownOperation) {
		t.Fatalf("unknown operation: err = %v", err)
	}
	if _, err := postgres.NewLedger(e.pool, defaultLimits, nil).SetLimits(ctx, "u1",
		budget.Limits{DailyLimit: money.MustUSD(1), Warning: 1}, "test"); err != nil {
		t.Fatal(err)
	}
	d, err = e.p.Decide(ctx, execute.Query{Caller: user, OperationID: "chat_message"})
	if err != nil || d.ApprovalReason != approval.ReasonAboveWarningHigh {
		t.Fatalf("HIGH criticality above the warning: reason %q, err %v", d.ApprovalReason, err)
	}
	e.setRoute("email-compose", catalog.RouteChange{RequiresApproval: ptr(true)})
	d, err = e.p.Decide(ctx, execute.Query{Caller: user, OperationID: "email-compose"})
	if err != nil || d.ApprovalReason != approval.ReasonRouteRequires {
		t.Fatalf("route requires approval: reason %q, err %v", d.ApprovalReason, err)
	}
}

// Holding the same request again returns the approval already pending, also when the re-sends race.
func TestHoldingTheSameRequestFindsThePendingApproval(t *testing.T) {
	e := newEnv(t)
	e.setRoute("email-compose", catalog.RouteChange{RequiresApproval: ptr(true)})
	ids := make(chan string, 8)
	errs := make(chan error, 8)
	for i := range 8 {
		go func() {
			c := composeCall("r" + string(rune('a'+i)))
			_, err := e.execute(c)
			var pending *execute.PendingApprovalError
			if !errors.As(err, &pending) {
				errs <- err
				return
			}
			ids <- pending.Approval.ID
		}()
	}
	seen := map[string]bool{}
	for range 8 {
		select {
		case id := <-ids:
			seen[id] = true
		case err := <-errs:
			t.Fatalf("a re-send was not held: %v", err)
		}
	}
	if len(seen) != 1 {
		t.Fatalf("8 sends of one request made %d approvals, want 1", len(seen))
	}
	// Another request is another approval.
	other := composeCall("other")
	other.Messages = append([]llm.Message{}, other.Messages...)
	other.Fingerprint = []byte(`{"subject":"Something else"}`)
	_, err := e.execute(other)
	var pending *execute.PendingApprovalError
	if !errors.As(err, &pending) || seen[pending.Approval.ID] {
		t.Fatalf("a different request got approval %+v (%v)", pending, err)
	}
}

func sleepABit() { time.Sleep(5 * time.Millisecond) }
