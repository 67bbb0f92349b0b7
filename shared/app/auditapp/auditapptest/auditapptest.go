// Package auditapptest boots the audit function's minute for tests, as the function boots it:
// every Discord channel's webhook on a local webhook server, every provider on a local wire
// server that requires its key, a signing key made for the test, and the function's log kept
// (and checked, at the end, never to carry a webhook URL).
package auditapptest

import (
	"bytes"
	"crypto/rand"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/mod/sumdb/note"

	"github.com/helixhq/helix/shared/app"
	"github.com/helixhq/helix/shared/app/auditapp"
	"github.com/helixhq/helix/shared/discord/discordtest"
	"github.com/helixhq/helix/shared/llm/llmtest"
	"github.com/helixhq/helix/shared/llm/providers"
	"github.com/helixhq/helix/shared/outbox"
	"github.com/helixhq/helix/shared/synthesis"
)

// The providers' keys the wire servers require.
const deepSeekKey, geminiKey, anthropicKey = "ds-audit-key", "gm-audit-key", "an-audit-key"

// Options are what a test varies.
type Options struct {
	DatabaseURL string   // a fresh test database
	Extra       []string // more environment ("NAME=value")
	// Queue builds the synthesis queue from the booted core (nil: no synthesis sweep).
	Queue func(*app.Core) synthesis.Queue
}

// Env is the booted minute and its local servers.
type Env struct {
	Core                     *app.Core
	Pool                     *pgxpool.Pool
	Audit                    *auditapp.Audit
	Discord                  *discordtest.Server
	Verifier                 note.Verifier
	DeepSeek, Gemini, Claude *llmtest.Server
	Log                      *LockedBuffer
}

// New boots the minute.
func New(t *testing.T, o Options) *Env {
	t.Helper()
	e := &Env{Discord: discordtest.New(t), Log: &LockedBuffer{},
		DeepSeek: llmtest.NewOpenAI(t), Gemini: llmtest.NewGemini(t), Claude: llmtest.NewAnthropic(t)}
	e.DeepSeek.RequireAPIKey(deepSeekKey)
	e.Gemini.RequireAPIKey(geminiKey)
	e.Claude.RequireAPIKey(anthropicKey)
	skey, vkey, err := note.GenerateKey(rand.Reader, "helix-audit-test")
	if err != nil {
		t.Fatal(err)
	}
	if e.Verifier, err = note.NewVerifier(vkey); err != nil {
		t.Fatal(err)
	}
	environ := []string{
		"DATABASE_URL=" + o.DatabaseURL,
		"HELIX_AUDIT_SIGNING_KEY=" + skey,
		"DEEPSEEK_API_KEY=" + deepSeekKey, "DEEPSEEK_BASE_URL=" + e.DeepSeek.URL,
		"GEMINI_API_KEY=" + geminiKey, "GEMINI_BASE_URL=" + e.Gemini.URL,
		"ANTHROPIC_API_KEY=" + anthropicKey, "ANTHROPIC_BASE_URL=" + e.Claude.URL,
	}
	for _, ch := range outbox.Channels() {
		environ = append(environ, ch.EnvVar()+"="+e.Discord.Webhook(string(ch)))
	}
	core, err := app.Boot(t.Context(), app.Options{Function: "audit", Environ: append(environ, o.Extra...), LogOut: e.Log})
	if err != nil {
		t.Fatalf("cold start: %v", err)
	}
	t.Cleanup(core.Pool.Close)
	registry, err := providers.New(t.Context(), core.Config.Providers, providers.NewHTTPClient())
	if err != nil {
		t.Fatalf("providers: %v", err)
	}
	var queue synthesis.Queue
	if o.Queue != nil {
		queue = o.Queue(core)
	}
	if e.Audit, err = auditapp.New(core, queue, registry); err != nil {
		t.Fatalf("auditapp.New: %v", err)
	}
	e.Core, e.Pool = core, core.Pool
	t.Cleanup(func() {
		// A webhook URL is a secret: never in the log, whatever happened.
		if log := e.Log.String(); strings.Contains(log, "SECRET") || strings.Contains(log, "/api/webhooks/") {
			t.Errorf("the function's log carries a webhook URL:\n%s", log)
		}
	})
	return e
}

// LockedBuffer is a log written by the minute's goroutines.
type LockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *LockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *LockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Clock is a deliverer's clock the test advances, so backoffs pass without waiting.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// NewClock starts at t.
func NewClock(t time.Time) *Clock { return &Clock{t: t} }

// Now is the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Advance moves the clock on by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}
