// Package stepup is the creator's chat-typed step-up ("THANOS_MODE <key>"), in the only form
// DESIGN.md allows: the phrase and a bcrypt hash of the key come from configuration, the key is
// compared by bcrypt (constant time in the key), failed attempts lock a user out for a while,
// every attempt is recorded for audit, and the key is never stored in a message, sent to a
// model or logged: the message is stored as Redacted and answered by Helix itself.
package stepup

import (
	"context"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"golang.org/x/crypto/bcrypt"
)

// Redacted is what is stored in place of a step-up message.
const Redacted = "[step-up key redacted]"

// Config configures the step-up; a zero Phrase disables it (no message is one).
type Config struct {
	Phrase        string // HELIX_STEPUP_PHRASE, e.g. THANOS_MODE
	KeyHash       []byte // HELIX_STEPUP_KEY_HASH (secret): bcrypt hash of the key
	CreatorUserID string // HELIX_CREATOR_USER_ID: the only user a step-up can verify
	// MaxFailures failed attempts within Window lock the user out until the window has passed.
	MaxFailures int
	Window      time.Duration
	// Lasts is how long a verified step-up holds in its conversation.
	Lasts time.Duration
}

// Attempt is one step-up attempt, as recorded.
type Attempt struct {
	UserID         string
	ConversationID string
	Success        bool
	Locked         bool // refused unchecked: too many recent failures
	At             time.Time
}

// Store records attempts. Attempt runs decide with the number of the user's failed attempts
// since a time and records what it returns, with the user's attempts serialized, so concurrent
// attempts cannot get past the limit.
type Store interface {
	Attempt(ctx context.Context, userID string, since time.Time, decide func(failures int) Attempt) (Attempt, error)
}

// Result of an attempt.
type Result int

// Results.
const (
	Failed Result = iota
	Verified
	Locked
)

// String names the result in logs.
func (r Result) String() string {
	switch r {
	case Verified:
		return "verified"
	case Locked:
		return "locked"
	}
	return "failed"
}

// Guard checks step-up attempts.
type Guard struct {
	cfg   Config
	store Store
	now   func() time.Time
}

// New returns the guard; now is the clock (nil: time.Now).
func New(cfg Config, store Store, now func() time.Time) *Guard {
	if now == nil {
		now = time.Now
	}
	return &Guard{cfg: cfg, store: store, now: now}
}

// Matches reports whether content is a step-up attempt: it starts with the phrase.
func (g *Guard) Matches(content string) bool {
	_, ok := g.cut(content)
	return ok
}

// cut returns what follows the phrase (the key, trimmed) when content starts with it. The phrase
// matches in any case and whatever follows it, a space or not: a mistyped attempt
// ("thanos_mode <key>", "THANOS_MODE<key>") is still an attempt, so its key is redacted rather than
// stored and sent to a model. (It also fails: the key must follow the phrase after whitespace.)
func (g *Guard) cut(content string) (string, bool) {
	p := g.cfg.Phrase
	t := strings.TrimSpace(content)
	if p == "" || len(t) < len(p) || !strings.EqualFold(t[:len(p)], p) {
		return "", false
	}
	rest := t[len(p):]
	if r, _ := utf8.DecodeRuneInString(rest); rest != "" && !unicode.IsSpace(r) {
		return "", true // glued to the phrase: an attempt, but no key
	}
	return strings.TrimSpace(rest), true
}

// Check verifies a step-up message of userID in a conversation and records the attempt. Only the
// creator can be verified; anyone else's attempt fails the same way (after the same bcrypt work,
// so its timing says nothing either).
func (g *Guard) Check(ctx context.Context, userID, conversationID, content string) (Result, time.Time, error) {
	key, _ := g.cut(content)
	now := g.now()
	a, err := g.store.Attempt(ctx, userID, now.Add(-g.cfg.Window), func(failures int) Attempt {
		a := Attempt{UserID: userID, ConversationID: conversationID, At: now}
		if failures >= g.cfg.MaxFailures {
			a.Locked = true
			return a
		}
		ok := len(g.cfg.KeyHash) > 0 && bcrypt.CompareHashAndPassword(g.cfg.KeyHash, []byte(key)) == nil
		a.Success = ok && userID == g.cfg.CreatorUserID && key != ""
		return a
	})
	switch {
	case err != nil:
		return Failed, time.Time{}, err
	case a.Locked:
		return Locked, time.Time{}, nil
	case a.Success:
		return Verified, now.Add(g.cfg.Lasts), nil
	}
	return Failed, time.Time{}, nil
}

// Answer is what Helix replies to a step-up message (no model sees it).
func Answer(r Result) string {
	switch r {
	case Verified:
		return "Step-up verified: creator mode is on in this conversation."
	case Locked:
		return "Step-up refused: too many failed attempts. Try again later."
	}
	return "Step-up failed."
}
