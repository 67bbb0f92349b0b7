package stepup_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/helixhq/helix/shared/stepup"
)

const (
	phrase  = "THANOS_MODE"
	key     = "Sphinx-of-black-quartz-1142"
	creator = "creator-1"
	conv    = "0c9e7a52-3d1b-4f6a-8e2d-5b4c3a291807"
)

// memStore is a stepup.Store: attempts serialized by a mutex; failures are the user's
// unsuccessful attempts after since (a refused, locked attempt counts too), as chatstore.StepUps
// counts them in Postgres.
type memStore struct {
	mu       sync.Mutex
	err      error
	attempts []stepup.Attempt
	sinces   []time.Time
	users    []string
}

func (s *memStore) Attempt(_ context.Context, userID string, since time.Time, decide func(int) stepup.Attempt) (stepup.Attempt, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sinces = append(s.sinces, since)
	s.users = append(s.users, userID)
	if s.err != nil {
		return stepup.Attempt{}, s.err
	}
	n := 0
	for _, a := range s.attempts {
		if a.UserID == userID && a.At.After(since) && !a.Success {
			n++
		}
	}
	a := decide(n)
	s.attempts = append(s.attempts, a)
	return a, nil
}

func (s *memStore) recorded() []stepup.Attempt {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]stepup.Attempt(nil), s.attempts...)
}

// clock is a fixed clock the test moves.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

var keyHash = func() []byte {
	h, err := bcrypt.GenerateFromPassword([]byte(key), bcrypt.MinCost)
	if err != nil {
		panic(err)
	}
	return h
}()

func config() stepup.Config {
	return stepup.Config{Phrase: phrase, KeyHash: keyHash, CreatorUserID: creator,
		MaxFailures: 3, Window: 15 * time.Minute, Lasts: time.Hour}
}

func newGuard(cfg stepup.Config) (*stepup.Guard, *memStore, *clock) {
	s := &memStore{}
	c := &clock{t: time.Date(2026, 6, 1, 9, 0, 0, 0, time.UTC)}
	return stepup.New(cfg, s, c.Now), s, c
}

// TestMatches: a step-up message starts with the phrase, in any case, whatever follows it
// (surrounding whitespace ignored): a mistyped attempt must be redacted too. A message that only
// mentions the phrase later is not one.
func TestMatches(t *testing.T) {
	g, _, _ := newGuard(config())
	tests := []struct {
		content string
		want    bool
	}{
		{phrase, true},
		{phrase + " " + key, true},
		{phrase + "  " + key, true},
		{phrase + "\n" + key, true},
		{"  " + phrase + " " + key + "\n", true},
		{"\n\t" + phrase, true},
		{phrase + " ", true},
		{"thanos_mode " + key, true},
		{"Thanos_Mode " + key, true},
		{phrase + key, true},
		{phrase + "_EXTRA " + key, true},
		{"say " + phrase + " " + key, false},
		{"I typed " + phrase + " yesterday", false},
		{"", false},
		{"   ", false},
		{"THANOS", false},
	}
	for _, tt := range tests {
		if got := g.Matches(tt.content); got != tt.want {
			t.Errorf("Matches(%q) = %v, want %v", tt.content, got, tt.want)
		}
	}

	off, _, _ := newGuard(stepup.Config{KeyHash: keyHash, CreatorUserID: creator})
	for _, c := range []string{"", " ", phrase + " " + key, "anything"} {
		if off.Matches(c) {
			t.Errorf("with no phrase configured, Matches(%q) = true", c)
		}
	}
}

// TestMatchesAnyWhitespaceSeparator: the phrase followed by any whitespace is a step-up
// attempt. A message that is not matched is stored as typed and sent to the model, so a key typed
// after a tab or a Windows line break ("\r\n") would be stored and sent: Check already accepts
// these separators (it trims any whitespace off the key), Matches does not.
func TestMatchesAnyWhitespaceSeparator(t *testing.T) {
	g, _, _ := newGuard(config())
	for _, c := range []string{
		phrase + "\t" + key,
		phrase + "\r\n" + key,
		phrase + "\u00a0" + key, // a no-break space, as some keyboards and phones type
	} {
		if !g.Matches(c) {
			t.Errorf("Matches(%q) = false: the key would be stored and sent to the model", c)
		}
	}
}

// TestCheck: one attempt on a fresh guard, per input.
func TestCheck(t *testing.T) {
	tests := []struct {
		name    string
		cfg     func(*stepup.Config)
		user    string
		content string
		want    stepup.Result
	}{
		{name: "creator, right key", user: creator, content: phrase + " " + key, want: stepup.Verified},
		{name: "right key with surrounding whitespace", user: creator, content: "  " + phrase + "\n  " + key + " \n", want: stepup.Verified},
		{name: "creator, wrong key", user: creator, content: phrase + " not-the-key", want: stepup.Failed},
		{name: "creator, key in another case", user: creator, content: phrase + " " + strings.ToUpper(key), want: stepup.Failed},
		{name: "creator, key with a suffix", user: creator, content: phrase + " " + key + "x", want: stepup.Failed},
		{name: "creator, no key", user: creator, content: phrase, want: stepup.Failed},
		{name: "another user, right key", user: "alice", content: phrase + " " + key, want: stepup.Failed},
		{name: "no creator configured", cfg: func(c *stepup.Config) { c.CreatorUserID = "" }, user: creator,
			content: phrase + " " + key, want: stepup.Failed},
		{name: "no key hash configured", cfg: func(c *stepup.Config) { c.KeyHash = nil }, user: creator,
			content: phrase + " " + key, want: stepup.Failed},
		{name: "a hash that is not bcrypt", cfg: func(c *stepup.Config) { c.KeyHash = []byte(key) }, user: creator,
			content: phrase + " " + key, want: stepup.Failed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := config()
			if tt.cfg != nil {
				tt.cfg(&cfg)
			}
			g, s, c := newGuard(cfg)
			now := c.Now()
			r, until, err := g.Check(t.Context(), tt.user, conv, tt.content)
			if err != nil {
				t.Fatal(err)
			}
			if r != tt.want {
				t.Errorf("result %v, want %v", r, tt.want)
			}
			wantUntil := time.Time{}
			if tt.want == stepup.Verified {
				wantUntil = now.Add(cfg.Lasts)
			}
			if !until.Equal(wantUntil) {
				t.Errorf("until %s, want %s", until, wantUntil)
			}
			// Every attempt is recorded, whoever made it.
			want := stepup.Attempt{UserID: tt.user, ConversationID: conv, Success: tt.want == stepup.Verified, At: now}
			if got := s.recorded(); len(got) != 1 || got[0] != want {
				t.Errorf("recorded %+v, want [%+v]", got, want)
			}
			if len(s.sinces) != 1 || !s.sinces[0].Equal(now.Add(-cfg.Window)) || s.users[0] != tt.user {
				t.Errorf("store asked for %v since %v, want %s since %s", s.users, s.sinces, tt.user, now.Add(-cfg.Window))
			}
		})
	}
}

// TestLockout: MaxFailures failed attempts within the window lock the user out: the next
// attempt is refused unchecked, even with the right key, and recorded as locked; once the
// failures are older than the window, the right key works again.
func TestLockout(t *testing.T) {
	cfg := config()
	g, s, c := newGuard(cfg)
	try := func(content string) stepup.Result {
		t.Helper()
		r, _, err := g.Check(t.Context(), creator, conv, content)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	for i := range cfg.MaxFailures {
		if r := try(fmt.Sprintf("%s guess-%d", phrase, i)); r != stepup.Failed {
			t.Fatalf("wrong attempt %d: %v, want Failed", i+1, r)
		}
		c.Add(time.Minute)
	}
	// Minute 3: three failures in the last 15 minutes.
	if r := try(phrase + " " + key); r != stepup.Locked {
		t.Fatalf("right key while locked out: %v, want Locked", r)
	}
	if got := s.recorded(); len(got) != 4 || !got[3].Locked || got[3].Success {
		t.Fatalf("recorded %+v, want the fourth locked and not a success", got)
	}
	if r := try(phrase + " wrong"); r != stepup.Locked {
		t.Fatalf("wrong key while locked out: %v, want Locked", r)
	}

	// Minute 16: the failures at minutes 0 and 1 are out of the window (1 is exactly a window
	// ago), but the one at minute 2 and the two refused attempts at minute 3 count: a locked
	// attempt counts as a failure, so trying while locked out keeps the lockout going.
	c.Add(13 * time.Minute)
	if r := try(phrase + " " + key); r != stepup.Locked {
		t.Fatalf("16 minutes after the first failure: %v, want still Locked", r)
	}
	// An hour later every failure is old: the right key verifies.
	c.Add(time.Hour)
	if r := try(phrase + " " + key); r != stepup.Verified {
		t.Fatalf("after the window: %v, want Verified", r)
	}
}

// TestWindowBoundary: a failure exactly Window ago no longer counts (since is exclusive).
func TestWindowBoundary(t *testing.T) {
	cfg := config()
	g, _, c := newGuard(cfg)
	for range cfg.MaxFailures {
		if r, _, _ := g.Check(t.Context(), creator, conv, phrase+" wrong"); r != stepup.Failed {
			t.Fatalf("wrong key: %v", r)
		}
	}
	c.Add(cfg.Window)
	if r, _, _ := g.Check(t.Context(), creator, conv, phrase+" "+key); r != stepup.Verified {
		t.Errorf("right key a window after the failures: %v, want Verified", r)
	}
}

// TestFailuresBelowTheLimit: fewer than MaxFailures failures leave the right key working, and a
// success does not reset the count (only time does).
func TestFailuresBelowTheLimit(t *testing.T) {
	cfg := config()
	g, _, _ := newGuard(cfg)
	for range cfg.MaxFailures - 1 {
		g.Check(t.Context(), creator, conv, phrase+" wrong")
	}
	if r, _, _ := g.Check(t.Context(), creator, conv, phrase+" "+key); r != stepup.Verified {
		t.Fatalf("right key after %d failures: %v, want Verified", cfg.MaxFailures-1, r)
	}
	g.Check(t.Context(), creator, conv, phrase+" wrong")
	if r, _, _ := g.Check(t.Context(), creator, conv, phrase+" "+key); r != stepup.Locked {
		t.Errorf("right key after %d failures around a success: %v, want Locked", cfg.MaxFailures, r)
	}
}

// TestLockoutIsPerUser: another user's attempts (which always fail, whatever the key) are
// recorded as theirs and lock only them out; the creator is unaffected.
func TestLockoutIsPerUser(t *testing.T) {
	cfg := config()
	g, s, _ := newGuard(cfg)
	for range cfg.MaxFailures {
		if r, _, _ := g.Check(t.Context(), "mallory", conv, phrase+" "+key); r != stepup.Failed {
			t.Fatalf("another user with the right key: %v, want Failed", r)
		}
	}
	if r, _, _ := g.Check(t.Context(), "mallory", conv, phrase+" "+key); r != stepup.Locked {
		t.Errorf("another user after %d failures: %v, want Locked", cfg.MaxFailures, r)
	}
	if r, _, _ := g.Check(t.Context(), creator, conv, phrase+" "+key); r != stepup.Verified {
		t.Errorf("creator after another user's failures: %v, want Verified", r)
	}
	for i, a := range s.recorded()[:cfg.MaxFailures+1] {
		if a.UserID != "mallory" || a.Success {
			t.Errorf("attempt %d recorded as %+v, want mallory's, failed", i, a)
		}
	}
}

// TestConcurrentAttemptsStayWithinTheLimit: many wrong attempts at once check the key at most
// MaxFailures times; the rest are refused as locked.
func TestConcurrentAttemptsStayWithinTheLimit(t *testing.T) {
	cfg := config()
	g, s, _ := newGuard(cfg)
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() {
			if _, _, err := g.Check(t.Context(), creator, conv, fmt.Sprintf("%s guess-%d", phrase, i)); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	checked := 0
	for _, a := range s.recorded() {
		if !a.Locked {
			checked++
		}
	}
	if checked != cfg.MaxFailures {
		t.Errorf("%d attempts checked, want %d", checked, cfg.MaxFailures)
	}
}

// TestStoreFails: an attempt that cannot be recorded is not verified, and says why.
func TestStoreFails(t *testing.T) {
	g, s, _ := newGuard(config())
	s.err = errors.New("step-up attempt: connection refused")
	r, until, err := g.Check(t.Context(), creator, conv, phrase+" "+key)
	if !errors.Is(err, s.err) || r != stepup.Failed || !until.IsZero() {
		t.Errorf("Check = %v, %s, %v; want Failed, zero, the store's error", r, until, err)
	}
}

// TestKeyNeverEscapes: the key appears in nothing the guard returns or records, whatever the
// attempt's outcome, and Answer never says it.
func TestKeyNeverEscapes(t *testing.T) {
	cfg := config()
	g, s, _ := newGuard(cfg)
	var out []string
	for _, tc := range []struct{ user, content string }{
		{creator, phrase + " " + key},
		{"alice", phrase + " " + key},
		{creator, phrase + " " + key + "-typo"},
		{creator, phrase + " " + key + "-typo"},
		{creator, phrase + " " + key + "-typo"},
		{creator, phrase + " " + key}, // locked
	} {
		r, until, err := g.Check(t.Context(), tc.user, conv, tc.content)
		out = append(out, fmt.Sprintf("%v %v %v %s", r, until, err, stepup.Answer(r)))
	}
	for _, a := range s.recorded() {
		out = append(out, fmt.Sprintf("%+v %#v", a, a))
	}
	s.err = errors.New("db down")
	_, _, err := g.Check(t.Context(), creator, conv, phrase+" "+key)
	out = append(out, err.Error())
	for _, r := range []stepup.Result{stepup.Failed, stepup.Verified, stepup.Locked, stepup.Result(42)} {
		out = append(out, stepup.Answer(r))
	}
	for _, o := range out {
		if strings.Contains(o, key) || strings.Contains(o, "Sphinx") {
			t.Errorf("the key escapes in %q", o)
		}
	}
}

// TestAnswer: each result has its own answer, which an unknown result shares with Failed.
func TestAnswer(t *testing.T) {
	seen := map[string]stepup.Result{}
	for _, r := range []stepup.Result{stepup.Failed, stepup.Verified, stepup.Locked} {
		a := stepup.Answer(r)
		if a == "" {
			t.Errorf("Answer(%v) is empty", r)
		}
		if prev, ok := seen[a]; ok {
			t.Errorf("Answer(%v) = Answer(%v) = %q", r, prev, a)
		}
		seen[a] = r
	}
	if stepup.Answer(stepup.Result(42)) != stepup.Answer(stepup.Failed) {
		t.Errorf("an unknown result is not answered as a failure")
	}
	if !strings.Contains(stepup.Answer(stepup.Verified), "verified") || !strings.Contains(stepup.Answer(stepup.Locked), "too many failed attempts") {
		t.Errorf("answers: %q, %q", stepup.Answer(stepup.Verified), stepup.Answer(stepup.Locked))
	}
}

// TestMistypedAttempts: the phrase in another case still carries the key after whitespace; a key
// glued to the phrase is an attempt (redacted by the caller) that fails, even when it is right.
func TestMistypedAttempts(t *testing.T) {
	tests := []struct {
		content string
		want    stepup.Result
	}{
		{"thanos_mode " + key, stepup.Verified},
		{phrase + key, stepup.Failed},
		{"thanos_mode" + key, stepup.Failed},
	}
	for _, tt := range tests {
		g, _, _ := newGuard(config())
		if !g.Matches(tt.content) {
			t.Errorf("Matches(%q) = false: the key would be stored and sent to a model", tt.content)
		}
		got, _, err := g.Check(t.Context(), creator, "c1", tt.content)
		if err != nil || got != tt.want {
			t.Errorf("Check(%q) = %v, %v; want %v", tt.content, got, err, tt.want)
		}
	}
}
