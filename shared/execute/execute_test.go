package execute_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/helixhq/helix/shared/approval"
	"github.com/helixhq/helix/shared/budget"
	"github.com/helixhq/helix/shared/catalog"
	"github.com/helixhq/helix/shared/execute"
	"github.com/helixhq/helix/shared/llm"
	"github.com/helixhq/helix/shared/money"
	"github.com/helixhq/helix/shared/postgres"
	"github.com/helixhq/helix/shared/router"
)

func TestSuccessOnPrimaryChargesTheExactCost(t *testing.T) {
	e := newEnv(t)
	usage := llm.Usage{InputTokens: 1234, CachedInputTokens: 5678, OutputTokens: 910, ReasoningTokens: 112}
	s := okStep(usage)
	s.resp.ProviderRequestID, s.resp.Text = "ds-req-42", "Dear manager, ..."
	e.deepseek.Script(s)

	res := e.mustExecute(composeCall("req-1"))

	// 1234 × 280 (input) + 5678 × 28 (cached input) + (910 + 112) × 420 (output incl. reasoning)
	// = 345 520 + 158 984 + 429 240 nano-USD.
	const want money.Nano = 933_744
	if res.Cost != want {
		t.Errorf("cost = %d nano-USD, want %d", res.Cost, want)
	}
	if res.Model.Key != "deepseek" || res.FallbackUsed || res.Offline || res.Attempts != 1 || res.RequestID != "req-1" ||
		res.Route.OperationID != "email-compose" || res.Text != "Dear manager, ..." || res.FinishReason != "stop" {
		t.Errorf("result = %+v", res)
	}
	wantUsage := catalog.Usage{InputTokens: 1234, CachedInputTokens: 5678, OutputTokens: 910, ReasoningTokens: 112}
	if res.Usage != wantUsage {
		t.Errorf("usage = %+v, want %+v", res.Usage, wantUsage)
	}

	reqs := e.deepseek.Requests()
	if len(reqs) != 1 {
		t.Fatalf("deepseek calls = %d, want 1", len(reqs))
	}
	if reqs[0].Model != "deepseek-chat" || reqs[0].MaxOutputTokens != composeMaxOutput || !reflect.DeepEqual(reqs[0].Messages, composeMessages) {
		t.Errorf("request = %+v, want model deepseek-chat, max output %d, the call's messages", reqs[0], composeMaxOutput)
	}
	if c := e.calls(); c != [3]int{1, 0, 0} {
		t.Errorf("calls (deepseek, gemini, claude) = %v", c)
	}
	// Without a caller deadline the call is bounded by DefaultTimeout less FinishMargin.
	if dl := e.deepseek.Deadlines()[0]; dl.IsZero() || dl.After(e.clock.Now().Add(testPolicy().DefaultTimeout-testPolicy().FinishMargin)) {
		t.Errorf("provider deadline = %v, want at most DefaultTimeout - FinishMargin from the start", dl)
	}

	got := e.mustLog("req-1")
	wantLog := logRow{
		Model: "deepseek", Provider: "deepseek", PriceVersion: "deepseek-v3.2@2026-11", ProviderRequestID: "ds-req-42",
		Input: 1234, Cached: 5678, Output: 910, Reasoning: 112, Cost: int64(want), Success: true, LatencyMS: got.LatencyMS,
	}
	if got != wantLog {
		t.Errorf("log row\n got %+v\nwant %+v", got, wantLog)
	}
	if got.LatencyMS < 0 {
		t.Errorf("latency_ms = %d", got.LatencyMS)
	}
	if n := e.count(`SELECT count(*) FROM ai_operation_log`); n != 1 {
		t.Errorf("log rows = %d, want 1", n)
	}
	if d := e.day("u1"); d.Spent != want || d.Reserved != 0 {
		t.Errorf("budget = spent %d reserved %d, want %d / 0", d.Spent, d.Reserved, want)
	}
	// The hold was the worst case: the input bound plus max_output_tokens at the most
	// expensive model of the chain (Claude, the emergency fallback).
	status, amount := e.reservation("req-1")
	if wantHold := money.Nano(inputBound()*claudeWorstIn + composeMaxOutput*claudeOut); status != "settled" || amount != wantHold {
		t.Errorf("reservation = %s %d, want settled %d", status, amount, wantHold)
	}
}

func TestOutputCapSentToTheProvider(t *testing.T) {
	tests := []struct {
		asked, want int64
	}{
		{0, composeMaxOutput},
		{100, 100},
		{composeMaxOutput, composeMaxOutput},
		{5000, composeMaxOutput}, // a caller cannot raise the operation's cap
	}
	e := newEnv(t)
	for i, tt := range tests {
		c := composeCall(fmt.Sprintf("cap-%d", i))
		c.MaxOutputTokens = tt.asked
		e.mustExecute(c)
		reqs := e.deepseek.Requests()
		if got := reqs[len(reqs)-1].MaxOutputTokens; got != tt.want {
			t.Errorf("asked %d: provider got max output %d, want %d", tt.asked, got, tt.want)
		}
		if _, amount := e.reservation(c.RequestID); amount != money.Nano(inputBound()*claudeWorstIn+tt.want*claudeOut) {
			t.Errorf("asked %d: reserved %d, want the worst case at cap %d", tt.asked, amount, tt.want)
		}
	}
}

func TestFailoverToTheFallback(t *testing.T) {
	attempts := int(testPolicy().AttemptsPerModel)
	tests := []struct {
		name          string
		err           error
		primaryCalls  int
		countsAgainst bool // the failures feed deepseek's breaker
	}{
		{"unavailable", failStep(llm.KindUnavailable).err, attempts, true},
		{"timeout", failStep(llm.KindTimeout).err, attempts, true},
		{"bad response", failStep(llm.KindBadResponse).err, attempts, true},
		{"rate limited without retry-after", failStep(llm.KindRateLimited).err, attempts, true},
		{"an unclassified adapter error", errors.New("connection reset by peer"), attempts, true},
		{"invalid request: not retried", failStep(llm.KindInvalidRequest).err, 1, false},
		{"auth: not retried", failStep(llm.KindAuth).err, 1, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			e.deepseek.Default(step{err: tt.err})
			e.gemini.Script(okStep(llm.Usage{InputTokens: 500, CachedInputTokens: 100, OutputTokens: 180, ReasoningTokens: 20}))

			res := e.mustExecute(composeCall("r"))

			// 500 × 100 + 100 × 10 + (180 + 20) × 400, at Gemini's prices, not DeepSeek's.
			const want money.Nano = 50_000 + 1_000 + 80_000
			if res.Model.Key != "gemini_flash" || !res.FallbackUsed || res.Cost != want || res.Attempts != tt.primaryCalls+1 {
				t.Errorf("result: model %s fallback %v cost %d attempts %d; want gemini_flash, true, %d, %d",
					res.Model.Key, res.FallbackUsed, res.Cost, res.Attempts, want, tt.primaryCalls+1)
			}
			if c := e.calls(); c != [3]int{tt.primaryCalls, 1, 0} {
				t.Errorf("calls (deepseek, gemini, claude) = %v, want [%d 1 0]", c, tt.primaryCalls)
			}
			if r := e.gemini.Requests()[0]; r.Model != "gemini-2.5-flash-lite" || r.MaxOutputTokens != composeMaxOutput {
				t.Errorf("fallback request = %+v", r)
			}
			got := e.mustLog("r")
			if got.Model != "gemini_flash" || got.Provider != "gemini" || !got.Fallback || !got.Success ||
				got.Cost != int64(want) || got.PriceVersion != "gemini-2.5-flash-lite@2026-11" || got.ErrorCode != "" {
				t.Errorf("log row = %+v", got)
			}
			if d := e.day("u1"); d.Spent != want || d.Reserved != 0 {
				t.Errorf("budget = %+v", d)
			}
			row, ok := e.breaker("deepseek")
			switch {
			case tt.countsAgainst && (!ok || row.Failures != tt.primaryCalls):
				t.Errorf("deepseek breaker = %+v (present %v), want %d failures", row, ok, tt.primaryCalls)
			case !tt.countsAgainst && ok && row.Failures != 0:
				t.Errorf("a request-specific failure counted against deepseek: %+v", row)
			}
		})
	}
}

func TestFailoverChainEndsAtTheEmergencyModel(t *testing.T) {
	e := newEnv(t)
	e.deepseek.Default(failStep(llm.KindUnavailable))
	e.gemini.Default(failStep(llm.KindUnavailable))
	e.claude.Script(okStep(llm.Usage{InputTokens: 10, CachedInputTokens: 20, OutputTokens: 30}))
	res := e.mustExecute(composeCall("r"))
	if res.Model.Key != "claude" || !res.FallbackUsed || res.Cost != 10*claudeIn+20*claudeCached+30*claudeOut {
		t.Errorf("result = %s fallback %v cost %d", res.Model.Key, res.FallbackUsed, res.Cost)
	}
	if r := e.claude.Requests()[0]; r.Model != "claude-haiku-4-5" {
		t.Errorf("claude got model %q", r.Model)
	}
	if got := e.mustLog("r"); got.Model != "claude" || got.Provider != "anthropic" || !got.Fallback {
		t.Errorf("log row = %+v", got)
	}
}

func TestNoEmergencyWhereTheRouteForbidsIt(t *testing.T) {
	e := newEnv(t)
	e.gemini.Default(failStep(llm.KindUnavailable))
	c := composeCall("r")
	c.OperationID = "video_understanding" // gemini_flash only, allow_emergency false
	if _, err := e.execute(c); !errors.Is(err, execute.ErrProvidersUnavailable) {
		t.Fatalf("err = %v, want ErrProvidersUnavailable", err)
	}
	if calls := e.calls(); calls != [3]int{0, int(testPolicy().AttemptsPerModel), 0} {
		t.Errorf("calls = %v, want only gemini", calls)
	}
}

func TestUnconfiguredProviderIsSkipped(t *testing.T) {
	e := newEnv(t)
	reg := registry{"gemini": e.gemini, "anthropic": e.claude} // no DeepSeek key configured
	in := e.newInstance(reg, nil, testPolicy())
	res, err := in.p.Execute(context.Background(), composeCall("r"))
	if err != nil {
		t.Fatal(err)
	}
	if res.Model.Key != "gemini_flash" || !res.FallbackUsed {
		t.Errorf("result = %s fallback %v", res.Model.Key, res.FallbackUsed)
	}
	if _, ok := e.breaker("deepseek"); ok {
		t.Error("a missing configuration counted against the provider's health")
	}
}

func TestBreakerIsSharedBetweenInstances(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	e.deepseek.Default(failStep(llm.KindUnavailable))

	// Two failed attempts reach the threshold of 2: the breaker opens, in Postgres.
	if res := e.mustExecute(composeCall("r1")); res.Model.Key != "gemini_flash" {
		t.Fatalf("r1 answered by %s", res.Model.Key)
	}
	row, ok := e.breaker("deepseek")
	if !ok || row.Failures != 2 || !row.OpenUntil.Valid || !row.OpenUntil.Time.After(e.clock.Now()) {
		t.Fatalf("breaker after two failures = %+v (present %v), want open", row, ok)
	}
	// This instance skips DeepSeek at once.
	if res := e.mustExecute(composeCall("r2")); res.Model.Key != "gemini_flash" || e.deepseek.Calls() != 2 {
		t.Errorf("r2: model %s, deepseek calls %d; want gemini_flash, still 2", res.Model.Key, e.deepseek.Calls())
	}

	// A second instance, its own empty caches, whose DeepSeek would answer: it never asks it.
	f2 := newFakes()
	second := e.newInstance(f2.registry(), nil, testPolicy())
	res, err := second.p.Execute(ctx, composeCall("r3"))
	if err != nil {
		t.Fatal(err)
	}
	if res.Model.Key != "gemini_flash" || f2.deepseek.Calls() != 0 {
		t.Errorf("second instance: model %s, deepseek calls %d; want gemini_flash, 0", res.Model.Key, f2.deepseek.Calls())
	}

	// After the cooldown (and past the breaker cache's TTL) a trial call goes through; its
	// success closes the breaker for everyone.
	e.clock.Advance(breakerPolicy.Cooldown + time.Second)
	res, err = second.p.Execute(ctx, composeCall("r4"))
	if err != nil {
		t.Fatal(err)
	}
	if res.Model.Key != "deepseek" || f2.deepseek.Calls() != 1 || res.FallbackUsed {
		t.Errorf("trial: model %s, deepseek calls %d", res.Model.Key, f2.deepseek.Calls())
	}
	if row, _ := e.breaker("deepseek"); row.OpenUntil.Valid || row.Failures != 0 {
		t.Errorf("breaker after a successful trial = %+v, want closed", row)
	}
	loaded, err := postgres.NewBreakers(e.pool).LoadBreakers(ctx)
	if err != nil || len(loaded) != 0 {
		t.Errorf("open breakers after the trial = %v, %v", loaded, err)
	}
	// A third instance uses DeepSeek again.
	f3 := newFakes()
	third := e.newInstance(f3.registry(), nil, testPolicy())
	if res, err := third.p.Execute(ctx, composeCall("r5")); err != nil || res.Model.Key != "deepseek" {
		t.Errorf("after close: %s, %v", res.Model.Key, err)
	}
}

func TestBreakerFailedTrialReopensAtOnce(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	e.deepseek.Default(failStep(llm.KindUnavailable))
	e.mustExecute(composeCall("r1")) // opens
	opened, _ := e.breaker("deepseek")
	if !opened.OpenUntil.Valid {
		t.Fatalf("breaker = %+v, want open", opened)
	}

	e.clock.Advance(breakerPolicy.Cooldown + time.Second)
	before := e.deepseek.Calls()
	if res := e.mustExecute(composeCall("r2")); res.Model.Key != "gemini_flash" {
		t.Fatalf("r2 answered by %s", res.Model.Key)
	}
	if e.deepseek.Calls() == before {
		t.Fatal("no trial call after the cooldown")
	}
	row, _ := e.breaker("deepseek")
	// Reopened for a whole new cooldown from the trial, which came after the first one ended.
	if !row.OpenUntil.Valid || !row.OpenUntil.Time.After(opened.OpenUntil.Time.Add(breakerPolicy.Cooldown)) {
		t.Fatalf("breaker after a failed trial = %+v, want reopened for a new cooldown", row)
	}
	f2 := newFakes()
	second := e.newInstance(f2.registry(), nil, testPolicy())
	if res, err := second.p.Execute(ctx, composeCall("r3")); err != nil || res.Model.Key != "gemini_flash" || f2.deepseek.Calls() != 0 {
		t.Errorf("second instance after the reopen: %s, deepseek calls %d, %v", res.Model.Key, f2.deepseek.Calls(), err)
	}
}

func TestAllProvidersDown(t *testing.T) {
	e := newEnv(t)
	for _, f := range []*fakeProvider{e.deepseek, e.gemini, e.claude} {
		f.Default(failStep(llm.KindUnavailable))
	}
	_, err := e.execute(composeCall("r"))
	if !errors.Is(err, execute.ErrProvidersUnavailable) {
		t.Fatalf("err = %v, want ErrProvidersUnavailable", err)
	}
	a := int(testPolicy().AttemptsPerModel)
	if c := e.calls(); c != [3]int{a, a, a} {
		t.Errorf("calls = %v, want each model tried %d times", c, a)
	}
	if d := e.day("u1"); d.Spent != 0 || d.Reserved != 0 {
		t.Errorf("budget = spent %d reserved %d, want 0 / 0", d.Spent, d.Reserved)
	}
	if status, _ := e.reservation("r"); status != "released" {
		t.Errorf("reservation = %q, want released", status)
	}
	got := e.mustLog("r")
	if got.Success || got.ErrorCode != "providers_unavailable" || got.Cost != 0 {
		t.Errorf("log row = %+v", got)
	}
	if n := e.count(`SELECT count(*) FROM ai_operation_log`); n != 1 {
		t.Errorf("log rows = %d, want 1", n)
	}
}

func TestContentFilteredIsFinal(t *testing.T) {
	e := newEnv(t)
	e.deepseek.Default(failStep(llm.KindContentFiltered))
	_, err := e.execute(composeCall("r"))
	if !errors.Is(err, execute.ErrContentFiltered) || errors.Is(err, execute.ErrProvidersUnavailable) {
		t.Fatalf("err = %v, want ErrContentFiltered", err)
	}
	if c := e.calls(); c != [3]int{1, 0, 0} {
		t.Errorf("calls = %v, want only one call to deepseek", c)
	}
	if d := e.day("u1"); d.Spent != 0 || d.Reserved != 0 {
		t.Errorf("budget = %+v", d)
	}
	if status, _ := e.reservation("r"); status != "released" {
		t.Errorf("reservation = %q, want released", status)
	}
	if got := e.mustLog("r"); got.Success || got.ErrorCode != "content_filtered" || got.Model != "deepseek" || got.Cost != 0 {
		t.Errorf("log row = %+v", got)
	}
	if row, ok := e.breaker("deepseek"); ok && row.Failures != 0 {
		t.Errorf("a refusal counted against the provider: %+v", row)
	}
}

func TestRetryAfter(t *testing.T) {
	t.Run("honoured when the deadline allows", func(t *testing.T) {
		e := newEnv(t)
		const wait = 20 * time.Millisecond
		e.deepseek.Script(rateLimitedStep(wait))
		res := e.mustExecute(composeCall("r"))
		if res.Model.Key != "deepseek" || res.Attempts != 2 || res.FallbackUsed {
			t.Errorf("result: model %s attempts %d fallback %v; want deepseek, 2, false", res.Model.Key, res.Attempts, res.FallbackUsed)
		}
		if c := e.calls(); c != [3]int{2, 0, 0} {
			t.Errorf("calls = %v", c)
		}
		// The retry waited at least what the provider asked for (the backoff alone is ~1 ms).
		if ts := e.deepseek.CallTimes(); len(ts) == 2 && ts[1].Sub(ts[0]) < wait {
			t.Errorf("retried after %v, before the provider's Retry-After of %v", ts[1].Sub(ts[0]), wait)
		}
	})
	t.Run("longer than the deadline: fail over at once", func(t *testing.T) {
		e := newEnv(t)
		e.deepseek.Script(rateLimitedStep(time.Hour))
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		res, err := e.p.Execute(ctx, composeCall("r"))
		if err != nil {
			t.Fatal(err)
		}
		if res.Model.Key != "gemini_flash" || res.Attempts != 2 || e.deepseek.Calls() != 1 {
			t.Errorf("model %s attempts %d deepseek calls %d; want gemini_flash, 2, 1", res.Model.Key, res.Attempts, e.deepseek.Calls())
		}
	})
}

func TestDeadline(t *testing.T) {
	t.Run("no time left to call", func(t *testing.T) {
		p := testPolicy()
		p.FinishMargin = 10 * time.Second // more than the caller has left
		e := newEnv(t, withPolicy(p))
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, err := e.p.Execute(ctx, composeCall("r"))
		if !errors.Is(err, execute.ErrDeadline) {
			t.Fatalf("err = %v, want ErrDeadline", err)
		}
		if c := e.calls(); c != [3]int{} {
			t.Errorf("calls = %v, want none", c)
		}
		if status, _ := e.reservation("r"); status != "released" {
			t.Errorf("reservation = %q, want released", status)
		}
		if d := e.day("u1"); d.Reserved != 0 || d.Spent != 0 {
			t.Errorf("budget = %+v", d)
		}
		if got := e.mustLog("r"); got.Success || got.ErrorCode != "timeout" {
			t.Errorf("log row = %+v", got)
		}
	})
	t.Run("a provider that hangs: the call ends before the caller's deadline", func(t *testing.T) {
		// A margin that settling fits in even on a loaded machine running every package's tests
		// (100 ms did not, always: the hold then waits for its TTL, as in production).
		pol := testPolicy()
		pol.FinishMargin = time.Second
		e := newEnv(t, withPolicy(pol))
		e.deepseek.Default(step{block: true})
		ctx, cancel := context.WithTimeout(context.Background(), 2500*time.Millisecond)
		defer cancel()
		callerDeadline, _ := ctx.Deadline()
		_, err := e.p.Execute(ctx, composeCall("r"))
		if !errors.Is(err, execute.ErrDeadline) {
			t.Fatalf("err = %v, want ErrDeadline (the deadline passed while the provider hung)", err)
		}
		// The provider's deadline keeps FinishMargin back from the caller's, to settle and log.
		if dls := e.deepseek.Deadlines(); len(dls) != 1 || !dls[0].Equal(callerDeadline.Add(-pol.FinishMargin)) {
			t.Errorf("provider deadlines = %v, want caller's deadline %v minus %v", dls, callerDeadline, pol.FinishMargin)
		}
		if c := e.calls(); c != [3]int{1, 0, 0} {
			t.Errorf("calls = %v, want one (no time for retries or other models)", c)
		}
		// DeepSeek had the prompt when the call was cut off: charged for the input bound at its
		// input price, not released at $0 and not the whole worst case.
		wantCost := inputBound() * deepseekIn
		if status, _ := e.reservation("r"); status != "settled" {
			t.Errorf("reservation = %s, want settled at the input bound's cost %d", status, wantCost)
		}
		if got := e.mustLog("r"); got.Success || got.ErrorCode != "timeout" || got.Cost != wantCost || got.Model != "deepseek" || got.Input != inputBound() {
			t.Errorf("log row = %+v, want a failed deepseek call charged %d for %d input tokens", got, wantCost, inputBound())
		}
		if d := e.day("u1"); int64(d.Spent) != wantCost || d.Reserved != 0 {
			t.Errorf("budget = %+v", d)
		}
	})
}

func TestKillSwitches(t *testing.T) {
	tests := []struct {
		name      string
		env       map[string]bool
		db        map[string]bool
		wantModel string // "" means ErrProvidersUnavailable
		wantCalls [3]int
	}{
		{name: "env disables deepseek", env: map[string]bool{"DISABLE_DEEPSEEK": true}, wantModel: "gemini_flash", wantCalls: [3]int{0, 1, 0}},
		{name: "db disables deepseek", db: map[string]bool{"DISABLE_DEEPSEEK": true}, wantModel: "gemini_flash", wantCalls: [3]int{0, 1, 0}},
		{name: "env false overrides db true", env: map[string]bool{"DISABLE_DEEPSEEK": false}, db: map[string]bool{"DISABLE_DEEPSEEK": true}, wantModel: "deepseek", wantCalls: [3]int{1, 0, 0}},
		{name: "both models of the route: emergency", env: map[string]bool{"DISABLE_DEEPSEEK": true, "DISABLE_GEMINI": true}, wantModel: "claude", wantCalls: [3]int{0, 0, 1}},
		{name: "all three", env: map[string]bool{"DISABLE_DEEPSEEK": true}, db: map[string]bool{"DISABLE_GEMINI": true, "DISABLE_ANTHROPIC": true}, wantCalls: [3]int{}},
		{name: "the emergency model alone changes nothing", db: map[string]bool{"DISABLE_ANTHROPIC": true}, wantModel: "deepseek", wantCalls: [3]int{1, 0, 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pool := pg.NewPool(t)
			for k, v := range tt.db {
				if _, err := postgres.NewToggles(pool).SetToggle(context.Background(), k, v, "ops"); err != nil {
					t.Fatal(err)
				}
			}
			e := newEnv(t, withPool(pool), withEnvToggles(tt.env))
			res, err := e.execute(composeCall("r"))
			if tt.wantModel == "" {
				if !errors.Is(err, execute.ErrProvidersUnavailable) {
					t.Fatalf("err = %v, want ErrProvidersUnavailable", err)
				}
				if status, _ := e.reservation("r"); status != "" {
					t.Errorf("a reservation was made (%s) though nothing could be called", status)
				}
				if got := e.mustLog("r"); got.Success || got.ErrorCode != "providers_unavailable" {
					t.Errorf("log row = %+v", got)
				}
			} else if err != nil || res.Model.Key != tt.wantModel {
				t.Fatalf("model %s, err %v; want %s", res.Model.Key, err, tt.wantModel)
			}
			if c := e.calls(); c != tt.wantCalls {
				t.Errorf("calls (deepseek, gemini, claude) = %v, want %v", c, tt.wantCalls)
			}
		})
	}
}

func TestKillSwitchFlippedInTheDatabaseAppliesAfterTheCacheRefreshes(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	e.mustExecute(composeCall("r1")) // warms the toggle cache
	if _, err := postgres.NewToggles(e.pool).SetToggle(ctx, "DISABLE_DEEPSEEK", true, "ops"); err != nil {
		t.Fatal(err)
	}
	if res := e.mustExecute(composeCall("r2")); res.Model.Key != "deepseek" {
		t.Errorf("within the toggle TTL: %s (the cache should still hold the old toggles)", res.Model.Key)
	}
	e.clock.Advance(stateTTL)
	if res := e.mustExecute(composeCall("r3")); res.Model.Key != "gemini_flash" {
		t.Errorf("after the toggle TTL: %s, want gemini_flash", res.Model.Key)
	}
	if n := e.deepseek.Calls(); n != 2 {
		t.Errorf("deepseek calls = %d, want 2 (none after the switch took effect)", n)
	}
	// Switching it back works the same way.
	if _, err := postgres.NewToggles(e.pool).SetToggle(ctx, "DISABLE_DEEPSEEK", false, "ops"); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(stateTTL)
	if res := e.mustExecute(composeCall("r4")); res.Model.Key != "deepseek" {
		t.Errorf("after switching back: %s", res.Model.Key)
	}
}

func TestPinnedModel(t *testing.T) {
	t.Run("only the pinned model is called", func(t *testing.T) {
		e := newEnv(t)
		c := composeCall("r")
		c.Model = "claude"
		res := e.mustExecute(c)
		if res.Model.Key != "claude" || res.FallbackUsed {
			t.Errorf("result = %s fallback %v", res.Model.Key, res.FallbackUsed)
		}
		if calls := e.calls(); calls != [3]int{0, 0, 1} {
			t.Errorf("calls = %v", calls)
		}
		if got := e.mustLog("r"); got.Model != "claude" || got.Cost != 100*claudeIn+50*claudeOut {
			t.Errorf("log row = %+v", got)
		}
	})
	t.Run("no failover away from a pinned model", func(t *testing.T) {
		e := newEnv(t)
		e.deepseek.Default(failStep(llm.KindUnavailable))
		c := composeCall("r")
		c.Model = "deepseek"
		if _, err := e.execute(c); !errors.Is(err, execute.ErrProvidersUnavailable) {
			t.Errorf("err = %v", err)
		}
		if calls := e.calls(); calls[1] != 0 || calls[2] != 0 {
			t.Errorf("calls = %v, want none to gemini or claude", calls)
		}
		if status, _ := e.reservation("r"); status != "released" {
			t.Errorf("reservation = %q", status)
		}
	})
	t.Run("unknown model", func(t *testing.T) {
		e := newEnv(t)
		c := composeCall("r")
		c.Model = "gpt-17"
		if _, err := e.execute(c); !errors.Is(err, router.ErrUnknownModel) {
			t.Errorf("err = %v, want ErrUnknownModel", err)
		}
		if calls := e.calls(); calls != [3]int{} {
			t.Errorf("calls = %v", calls)
		}
		if status, _ := e.reservation("r"); status != "" {
			t.Errorf("reservation = %q, want none", status)
		}
	})
	t.Run("unknown and disabled operations", func(t *testing.T) {
		e := newEnv(t)
		c := composeCall("r1")
		c.OperationID = "email-teleport"
		if _, err := e.execute(c); !errors.Is(err, router.ErrUnknownOperation) {
			t.Errorf("unknown operation: %v", err)
		}
		c = composeCall("r2")
		c.OperationID = "email_analysis" // seeded disabled
		if _, err := e.execute(c); !errors.Is(err, router.ErrOperationDisabled) {
			t.Errorf("disabled operation: %v", err)
		}
		if calls := e.calls(); calls != [3]int{} {
			t.Errorf("calls = %v", calls)
		}
	})
}

func TestOfflineCostsNothing(t *testing.T) {
	e := newEnv(t)
	e.deepseek.Script(step{resp: llm.Response{Text: "[offline model] ...", Offline: true, Usage: llm.Usage{InputTokens: 300, OutputTokens: 120}}})
	res := e.mustExecute(composeCall("r"))
	if !res.Offline || res.Cost != 0 || res.Model.Key != "deepseek" {
		t.Errorf("result: offline %v cost %d model %s", res.Offline, res.Cost, res.Model.Key)
	}
	got := e.mustLog("r")
	if got.Provider != "offline" || got.PriceVersion != "offline" || got.Cost != 0 || !got.Success || got.Input != 300 || got.Output != 120 {
		t.Errorf("log row = %+v", got)
	}
	if d := e.day("u1"); d.Spent != 0 || d.Reserved != 0 {
		t.Errorf("budget = %+v", d)
	}
	if status, _ := e.reservation("r"); status != "settled" {
		t.Errorf("reservation = %q, want settled (at 0)", status)
	}
}

// 200 concurrent executions against a limit that fits only some of them, with each write its
// own statement and with group commit (concurrent reservations and settlements batched).
func TestBudgetRaceThroughThePipeline(t *testing.T) {
	for _, gc := range []bool{false, true} {
		t.Run(fmt.Sprint("group commit ", gc), func(t *testing.T) { budgetRaceThroughThePipeline(t, gc) })
	}
}

func budgetRaceThroughThePipeline(t *testing.T, groupCommit bool) {
	const n = 200
	bound := inputBound()

	t.Run("each call costs its whole hold: exactly limit/hold calls run", func(t *testing.T) {
		e := newEnv(t, withGroupCommit(groupCommit))
		// Pinned to DeepSeek, and the provider reports the worst case: every success spends
		// exactly what it held, so the number of successes is determined.
		hold := money.Nano(bound*deepseekIn + composeMaxOutput*deepseekOut)
		limit := 10*hold + hold/2
		e.deepseek.Default(okStep(llm.Usage{InputTokens: bound, OutputTokens: composeMaxOutput}))
		ok, _ := raceBudget(t, e, n, limit, "deepseek", hold)
		if ok != 10 {
			t.Errorf("successes = %d, want exactly 10", ok)
		}
	})
	t.Run("routed calls cost less than they hold", func(t *testing.T) {
		e := newEnv(t, withGroupCommit(groupCommit))
		hold := money.Nano(bound*claudeWorstIn + composeMaxOutput*claudeOut) // Claude is in the chain
		actual := money.Nano(300*deepseekIn + 350*deepseekOut)
		limit := 7 * hold
		if limit >= n*actual {
			t.Fatalf("test setup: the limit %d must be below what %d calls spend (%d)", limit, n, n*actual)
		}
		e.deepseek.Default(okStep(llm.Usage{InputTokens: 300, OutputTokens: 350}))
		ok, _ := raceBudget(t, e, n, limit, "", hold)
		if ok < 7 || money.Nano(ok)*actual > limit {
			t.Errorf("successes = %d; want at least 7 (the holds that always fit) and at most %d", ok, limit/actual)
		}
	})
}

func raceBudget(t *testing.T, e *env, n int, limit money.Nano, model string, hold money.Nano) (succeeded, rejected int) {
	t.Helper()
	ctx := context.Background()
	if _, err := e.ledger.SetLimits(ctx, "u1", budget.Limits{DailyLimit: limit, Warning: limit}, "test"); err != nil {
		t.Fatal(err)
	}
	type outcome struct {
		id  string
		res execute.Result
		err error
	}
	out := make([]outcome, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			<-start
			c := composeCall(fmt.Sprintf("race-%03d", i))
			c.Model = model
			res, err := e.p.Execute(ctx, c)
			out[i] = outcome{id: c.RequestID, res: res, err: err}
		}(i)
	}
	close(start)
	wg.Wait()

	var costSum money.Nano
	rejectedIDs := map[string]bool{}
	for _, o := range out {
		var exceeded *budget.ExceededError
		switch {
		case o.err == nil:
			succeeded++
			costSum += o.res.Cost
		case errors.As(o.err, &exceeded):
			rejected++
			rejectedIDs[o.id] = true
			if exceeded.Requested != hold {
				t.Errorf("%s: rejected request of %d, want the hold %d", o.id, exceeded.Requested, hold)
			}
		default:
			t.Errorf("%s: unexpected error %v", o.id, o.err)
		}
	}
	t.Logf("limit %d nano-USD, hold %d: %d succeeded, %d rejected", limit, hold, succeeded, rejected)
	if succeeded+rejected != n || rejected == 0 || succeeded == 0 {
		t.Fatalf("succeeded %d + rejected %d of %d", succeeded, rejected, n)
	}
	// Rejected calls never reached a provider.
	if calls := e.calls(); calls[0]+calls[1]+calls[2] != succeeded {
		t.Errorf("provider calls %v, want %d in all (one per success)", calls, succeeded)
	}
	d := e.day("u1")
	if d.Spent > limit || d.Reserved != 0 || d.Spent != costSum {
		t.Errorf("budget: spent %d (limit %d) reserved %d; results cost %d", d.Spent, limit, d.Reserved, costSum)
	}
	var logged int64
	if err := e.pool.QueryRow(ctx, `SELECT COALESCE(sum(cost_nano), 0)::bigint FROM ai_operation_log WHERE user_id = 'u1'`).Scan(&logged); err != nil {
		t.Fatal(err)
	}
	if money.Nano(logged) != d.Spent {
		t.Errorf("logged cost %d != budget_days.spent_nano %d", logged, d.Spent)
	}
	if got := e.count(`SELECT count(*) FROM ai_operation_log WHERE success`); got != int64(succeeded) {
		t.Errorf("successful log rows = %d, want %d", got, succeeded)
	}
	rows, err := e.pool.Query(ctx, `SELECT request_id FROM ai_operation_log WHERE error_code = 'budget_exceeded' AND NOT success AND cost_nano = 0`)
	if err != nil {
		t.Fatal(err)
	}
	loggedRejections, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	if len(loggedRejections) != rejected {
		t.Errorf("budget_exceeded log rows = %d, want %d", len(loggedRejections), rejected)
	}
	for _, id := range loggedRejections {
		if !rejectedIDs[id] {
			t.Errorf("%s logged as budget_exceeded but did not get the error", id)
		}
	}
	if open := e.count(`SELECT count(*) FROM budget_reservations WHERE status <> 'settled'`); open != 0 {
		t.Errorf("%d reservations are not settled", open)
	}
	if settled := e.count(`SELECT count(*) FROM budget_reservations`); settled != int64(succeeded) {
		t.Errorf("reservations = %d, want one per success (%d)", settled, succeeded)
	}
	return succeeded, rejected
}

func TestApprovalRequiredByTheRoute(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	e.setRoute("email-compose", catalog.RouteChange{RequiresApproval: ptr(true)})

	held := composeCall("held")
	held.Summary = "email-compose for u1"
	_, err := e.execute(held)
	var pending *execute.PendingApprovalError
	if !errors.As(err, &pending) {
		t.Fatalf("err = %v, want *PendingApprovalError", err)
	}
	a := pending.Approval
	wantEstimate := money.Nano(inputBound()*deepseekIn + composeAvgOutput*deepseekOut)
	if uuid.Validate(a.ID) != nil || a.Status != approval.StatusPending || a.Reason != approval.ReasonRouteRequires ||
		a.UserID != "u1" || a.OperationID != "email-compose" || a.EstimatedCost != wantEstimate || a.Summary != held.Summary ||
		!a.ExpiresAt.After(e.clock.Now()) || a.ExpiresAt.After(e.clock.Now().Add(testPolicy().ApprovalTTL)) {
		t.Errorf("approval = %+v (want estimate %d)", a, wantEstimate)
	}
	if row := e.approvalRow(a.ID); row.Status != "pending" {
		t.Errorf("stored approval = %+v", row)
	}
	if c := e.calls(); c != [3]int{} {
		t.Errorf("a held operation reached a provider: %v", c)
	}
	if status, _ := e.reservation("held"); status != "" || e.day("u1").Reserved != 0 {
		t.Errorf("a held operation reserved budget (%q)", status)
	}

	withApproval := func(id, requestID string) execute.Call {
		c := composeCall(requestID)
		c.ApprovalID = id
		return c
	}
	// Not decided yet.
	if _, err := e.execute(withApproval(a.ID, "early")); !errors.Is(err, approval.ErrNotUsable) {
		t.Errorf("before approval: %v, want ErrNotUsable", err)
	}
	if _, err := e.approvals.DecideApproval(ctx, a.ID, true, "admin"); err != nil {
		t.Fatal(err)
	}

	// Misuse first; none of it may use the approval up.
	otherUser := withApproval(a.ID, "m1")
	otherUser.UserID = "u2"
	otherRequest := withApproval(a.ID, "m2")
	otherRequest.Fingerprint = []byte(`{"subject":"Something else"}`)
	otherOperation := withApproval(a.ID, "m3")
	otherOperation.OperationID = "email-respond"
	for _, m := range []struct {
		name string
		call execute.Call
		want error
	}{
		{"another user", otherUser, approval.ErrNotFound},
		{"another request", otherRequest, approval.ErrMismatch},
		{"another operation", otherOperation, approval.ErrMismatch},
		{"an unknown approval", withApproval(uuid.NewString(), "m4"), approval.ErrNotFound},
	} {
		if _, err := e.execute(m.call); !errors.Is(err, m.want) {
			t.Errorf("%s: err = %v, want %v", m.name, err, m.want)
		}
	}
	if c := e.calls(); c != [3]int{} {
		t.Fatalf("refused calls reached a provider: %v", c)
	}

	// The approved request runs, once.
	res, err := e.execute(withApproval(a.ID, "run-1"))
	if err != nil {
		t.Fatalf("approved run: %v", err)
	}
	if res.Model.Key != "deepseek" || e.deepseek.Calls() != 1 {
		t.Errorf("approved run: %s, deepseek calls %d", res.Model.Key, e.deepseek.Calls())
	}
	if row := e.approvalRow(a.ID); row.Status != "used" || row.UsedRequestID != "run-1" {
		t.Errorf("approval after the run = %+v", row)
	}
	if got := e.mustLog("run-1"); !got.Success {
		t.Errorf("log row = %+v", got)
	}
	if _, err := e.execute(withApproval(a.ID, "run-2")); !errors.Is(err, approval.ErrNotUsable) {
		t.Errorf("second use: %v, want ErrNotUsable", err)
	}
	if e.deepseek.Calls() != 1 {
		t.Errorf("the second use reached the provider")
	}
	if status, _ := e.reservation("run-2"); status != "" {
		t.Errorf("the second use reserved budget")
	}
}

func TestApprovalRejected(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	e.setRoute("email-compose", catalog.RouteChange{RequiresApproval: ptr(true)})
	_, err := e.execute(composeCall("held"))
	var pending *execute.PendingApprovalError
	if !errors.As(err, &pending) {
		t.Fatalf("err = %v", err)
	}
	if _, err := e.approvals.DecideApproval(ctx, pending.Approval.ID, false, "admin"); err != nil {
		t.Fatal(err)
	}
	c := composeCall("run")
	c.ApprovalID = pending.Approval.ID
	if _, err := e.execute(c); !errors.Is(err, approval.ErrNotUsable) {
		t.Errorf("err = %v, want ErrNotUsable", err)
	}
	if calls := e.calls(); calls != [3]int{} {
		t.Errorf("calls = %v", calls)
	}
}

func TestApprovalIsUsableAgainWhenTheRunFails(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	e.setRoute("email-compose", catalog.RouteChange{RequiresApproval: ptr(true)})
	_, err := e.execute(composeCall("held"))
	var pending *execute.PendingApprovalError
	if !errors.As(err, &pending) {
		t.Fatalf("err = %v", err)
	}
	id := pending.Approval.ID
	if _, err := e.approvals.DecideApproval(ctx, id, true, "admin"); err != nil {
		t.Fatal(err)
	}
	for _, f := range []*fakeProvider{e.deepseek, e.gemini, e.claude} {
		f.Default(failStep(llm.KindUnavailable))
	}
	c := composeCall("run-1")
	c.ApprovalID = id
	if _, err := e.execute(c); !errors.Is(err, execute.ErrProvidersUnavailable) {
		t.Fatalf("err = %v", err)
	}
	if row := e.approvalRow(id); row.Status != "approved" || row.UsedRequestID != "" {
		t.Errorf("approval after a failed run = %+v, want approved and unclaimed", row)
	}
	// Providers are back (and their breakers cooled down): the approval runs.
	for _, f := range []*fakeProvider{e.deepseek, e.gemini, e.claude} {
		f.Default(okStep(llm.Usage{InputTokens: 10, OutputTokens: 10}))
	}
	e.clock.Advance(breakerPolicy.Cooldown + time.Second)
	c.RequestID = "run-2"
	if _, err := e.execute(c); err != nil {
		t.Fatalf("retry with the approval: %v", err)
	}
	if row := e.approvalRow(id); row.Status != "used" || row.UsedRequestID != "run-2" {
		t.Errorf("approval = %+v", row)
	}
}

func TestApprovalForHighCriticalityAboveTheWarningThreshold(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	// u1 is warned from 1000 nano-USD on; a chat message's estimate is far above that.
	if _, err := e.ledger.SetLimits(ctx, "u1", budget.Limits{DailyLimit: money.MustUSD(50), Warning: 1000}, "test"); err != nil {
		t.Fatal(err)
	}
	chat := func(user, requestID string) execute.Call {
		c := composeCall(requestID)
		c.UserID, c.OperationID = user, "chat_message"
		return c
	}
	_, err := e.execute(chat("u1", "held"))
	var pending *execute.PendingApprovalError
	if !errors.As(err, &pending) {
		t.Fatalf("err = %v, want *PendingApprovalError", err)
	}
	wantEstimate := money.Nano(inputBound()*deepseekIn + chatAvgOutput*deepseekOut)
	if a := pending.Approval; a.Reason != "high_criticality_estimate_above_warning_threshold" ||
		a.EstimatedCost != wantEstimate || a.OperationID != "chat_message" {
		t.Errorf("approval = %+v", a)
	}
	if status, _ := e.reservation("held"); status != "released" {
		t.Errorf("reservation = %q, want released", status)
	}
	if d := e.day("u1"); d.Reserved != 0 || d.Spent != 0 {
		t.Errorf("budget = %+v", d)
	}
	if c := e.calls(); c != [3]int{} {
		t.Errorf("calls = %v", c)
	}

	// Controls: the same operation for a user with the default threshold, and a LOW operation
	// for u1, run without approval.
	if _, err := e.execute(chat("u2", "u2-chat")); err != nil {
		t.Errorf("chat for a default user: %v", err)
	}
	if _, err := e.execute(composeCall("u1-compose")); err != nil {
		t.Errorf("LOW operation for u1: %v", err)
	}

	// Approved, the held request runs for u1.
	if _, err := e.approvals.DecideApproval(ctx, pending.Approval.ID, true, "admin"); err != nil {
		t.Fatal(err)
	}
	c := chat("u1", "approved")
	c.ApprovalID = pending.Approval.ID
	if _, err := e.execute(c); err != nil {
		t.Errorf("approved run: %v", err)
	}
	if c := e.calls(); c != [3]int{3, 0, 0} {
		t.Errorf("calls = %v, want 3 to deepseek", c)
	}
}

// The success path's Postgres round trips, once the caches are warm: reserve, then settle and
// log in one statement.
func TestRoundTripsOnTheSuccessPath(t *testing.T) {
	ctx := context.Background()
	cfg, err := pgxpool.ParseConfig(pg.NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	counter := &queryCounter{}
	cfg.ConnConfig.Tracer = counter
	cfg.ConnConfig.DefaultQueryExecMode = pgx.QueryExecModeExec // as postgres.Open configures it
	cfg.MaxConns = 4
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)

	e := newEnv(t, withPool(pool))
	e.mustExecute(composeCall("warm")) // loads catalog, toggles and breakers
	counter.reset()
	e.mustExecute(composeCall("measured"))
	n, sqls := counter.snapshot()
	var firstLines []string
	for _, s := range sqls {
		one := strings.Join(strings.Fields(s), " ")
		firstLines = append(firstLines, one[:min(60, len(one))])
	}
	t.Logf("Postgres round trips for one successful Execute with warm caches: %d %q", n, firstLines)
	if n > 3 {
		t.Errorf("round trips = %d, want at most 3", n)
	}
	if n == 0 {
		t.Error("no statement was traced: the tracer is not wired")
	}
}

// ---- behaviour the tests found wrong (skipped until fixed; see the report) ----

// When the primary is skipped (kill switch or open breaker), the fallback answers and the log
// must say so: operators measure failover with fallback_used.
func TestFallbackUsedWhenThePrimaryIsSkipped(t *testing.T) {
	t.Run("kill switch", func(t *testing.T) {
		e := newEnv(t, withEnvToggles(map[string]bool{"DISABLE_DEEPSEEK": true}))
		res := e.mustExecute(composeCall("r"))
		if res.Model.Key != "gemini_flash" || !res.FallbackUsed || !e.mustLog("r").Fallback {
			t.Errorf("model %s, result fallback %v, logged fallback %v; want gemini_flash, true, true", res.Model.Key, res.FallbackUsed, e.mustLog("r").Fallback)
		}
	})
	t.Run("open breaker", func(t *testing.T) {
		e := newEnv(t)
		for i := 0; i < breakerPolicy.Threshold; i++ {
			if _, err := postgres.NewBreakers(e.pool).RecordFailure(context.Background(), "deepseek", e.clock.Now(), breakerPolicy, "unavailable"); err != nil {
				t.Fatal(err)
			}
		}
		res := e.mustExecute(composeCall("r"))
		if res.Model.Key != "gemini_flash" || e.deepseek.Calls() != 0 {
			t.Fatalf("model %s, deepseek calls %d", res.Model.Key, e.deepseek.Calls())
		}
		if !res.FallbackUsed || !e.mustLog("r").Fallback {
			t.Errorf("result fallback %v, logged fallback %v; want true, true", res.FallbackUsed, e.mustLog("r").Fallback)
		}
	})
}

// A provider whose usage cannot be priced (an adapter bug) must not leave the hold open and
// the call unrecorded.
// Usage that cannot be priced still came from a real, billed call: the answer is returned, the
// worst case that was held is charged (never less), and the log row says why.
func TestUnpriceableUsageIsRecorded(t *testing.T) {
	e := newEnv(t)
	e.deepseek.Script(okStep(llm.Usage{InputTokens: -5, OutputTokens: 10}))
	res, err := e.execute(composeCall("r"))
	if err != nil {
		t.Fatalf("the provider answered, yet: %v", err)
	}
	status, held := e.reservation("r")
	if status != "settled" {
		t.Errorf("reservation %q, want settled", status)
	}
	row, ok := e.log("r")
	if !ok {
		t.Fatal("no ai_operation_log row for a call that reached a provider")
	}
	if row.ErrorCode != "unpriced_usage" || money.Nano(row.Cost) != held || res.Cost != held {
		t.Errorf("log %+v, result cost %s; want error_code unpriced_usage and cost = held %s", row, res.Cost, held)
	}
}

// A claimed approval must be given back on every path that does not run the request.
func TestApprovalGivenBackWhenTheReservationIsAReplay(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	e.setRoute("email-compose", catalog.RouteChange{RequiresApproval: ptr(true)})
	_, err := e.execute(composeCall("held"))
	var pending *execute.PendingApprovalError
	if !errors.As(err, &pending) {
		t.Fatalf("err = %v", err)
	}
	if _, err := e.approvals.DecideApproval(ctx, pending.Approval.ID, true, "admin"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.ledger.Reserve(ctx, budget.Reservation{RequestID: "dup", UserID: "u1", Amount: 1}); err != nil {
		t.Fatal(err)
	}
	c := composeCall("dup")
	c.ApprovalID = pending.Approval.ID
	if _, err := e.execute(c); err == nil {
		t.Fatal("a duplicate request id ran")
	}
	if row := e.approvalRow(pending.Approval.ID); row.Status != "approved" {
		t.Errorf("approval = %+v, want approved (usable again)", row)
	}
}
