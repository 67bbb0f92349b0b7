package outbox_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/helixhq/helix/shared/auditlog"
	"github.com/helixhq/helix/shared/discord"
	"github.com/helixhq/helix/shared/discord/discordtest"
	"github.com/helixhq/helix/shared/money"
	"github.com/helixhq/helix/shared/optimize"
	"github.com/helixhq/helix/shared/outbox"
)

func TestFitKeepsEveryLimit(t *testing.T) {
	long := strings.Repeat("é", 9000)
	fields := make([]outbox.Field, 40)
	for i := range fields {
		fields[i] = outbox.Field{Name: long, Value: long}
	}
	m := outbox.Message{Title: long, Description: long, Footer: long, Fields: fields}.Fit()
	n := utf8.RuneCountInString
	if n(m.Title) > outbox.MaxTitle || n(m.Description) > outbox.MaxDescription || n(m.Footer) > outbox.MaxFooter ||
		len(m.Fields) > outbox.MaxFields || m.Size() > outbox.MaxTotal {
		t.Errorf("fitted message still over a limit: title %d, description %d, footer %d, fields %d, total %d",
			n(m.Title), n(m.Description), n(m.Footer), len(m.Fields), m.Size())
	}
	for _, f := range m.Fields {
		if n(f.Name) > outbox.MaxFieldName || n(f.Value) > outbox.MaxFieldValue {
			t.Errorf("field over its limit: %d, %d", n(f.Name), n(f.Value))
		}
	}
	if !strings.HasSuffix(m.Title, "…") {
		t.Error("a cut title does not show it was cut")
	}
	empty := outbox.Message{Fields: []outbox.Field{{}}}.Fit()
	if empty.Fields[0].Name == "" || empty.Fields[0].Value == "" {
		t.Error("an empty field name or value was kept (Discord refuses them)")
	}
}

func TestBatch(t *testing.T) {
	small := outbox.Message{Title: "x"}
	big := outbox.Message{Description: strings.Repeat("d", 2500)}
	tests := []struct {
		name string
		msgs []outbox.Message
		want int
	}{
		{"none", nil, 0},
		{"a few", slices.Repeat([]outbox.Message{small}, 3), 3},
		{"more than ten", slices.Repeat([]outbox.Message{small}, 14), 10},
		{"over 6000 characters", slices.Repeat([]outbox.Message{big}, 4), 2},
		{"one huge one still goes", []outbox.Message{outbox.Message{Description: strings.Repeat("d", 9000)}.Fit()}, 1},
	}
	for _, tt := range tests {
		if got := outbox.Batch(tt.msgs); got != tt.want {
			t.Errorf("%s: Batch = %d, want %d", tt.name, got, tt.want)
		}
	}
}

func entry(kind auditlog.Kind, payload any) auditlog.Entry {
	b, _ := json.Marshal(payload)
	return auditlog.Entry{Seq: 9, Kind: kind, Actor: "alice", Payload: string(b), At: time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)}
}

func TestRoute(t *testing.T) {
	tests := []struct {
		name string
		e    auditlog.Entry
		want []outbox.Channel
	}{
		{"a successful call: digest only", entry(auditlog.Operation, auditlog.OperationFacts{Success: true}), nil},
		{"a failed call", entry(auditlog.Operation, auditlog.OperationFacts{Success: false, ErrorCode: "providers_unavailable"}), []outbox.Channel{outbox.API}},
		{"a budget refusal", entry(auditlog.Operation, auditlog.OperationFacts{Success: false, ErrorCode: "budget_exceeded"}), []outbox.Channel{outbox.API}},
		{"a fallback", entry(auditlog.Operation, auditlog.OperationFacts{Success: true, FallbackUsed: true}), []outbox.Channel{outbox.API}},
		{"an admin change", entry(auditlog.AdminChange, auditlog.Change{What: "route"}), []outbox.Channel{outbox.Commands}},
		{"a price change", entry(auditlog.AdminChange, auditlog.Change{What: "model", Reprice: true}), []outbox.Channel{outbox.Commands, outbox.FileChanges}},
		{"a step-up", entry(auditlog.StepUp, auditlog.StepUpAttempt{Result: "failed"}), []outbox.Channel{outbox.Alerts}},
		{"an alert", entry(auditlog.Alert, auditlog.AlertEvent{State: "fired"}), []outbox.Channel{outbox.Alerts}},
		{"a synthesis", entry(auditlog.Synthesis, auditlog.SynthesisRun{Status: "done"}), []outbox.Channel{outbox.Consciousness}},
		{"a skipped synthesis: the log only", entry(auditlog.Synthesis, auditlog.SynthesisRun{Status: "skipped", Reason: "over_budget"}), nil},
		{"a heartbeat", entry(auditlog.Heartbeat, auditlog.HeartbeatFacts{}), []outbox.Channel{outbox.Heartbeat}},
		{"a deployment", entry(auditlog.Deployment, auditlog.DeploymentFacts{}), []outbox.Channel{outbox.FileChanges}},
		{"a migration", entry(auditlog.Migration, auditlog.MigrationFacts{}), []outbox.Channel{outbox.FileChanges}},
		{"the optimizer's daily report", entry(optimize.AuditKind, optimize.Summary{Day: "2026-12-01"}), []outbox.Channel{outbox.Alerts}},
	}
	for _, tt := range tests {
		if got := outbox.Route(tt.e); !slices.Equal(got, tt.want) {
			t.Errorf("%s: Route = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestRenderEveryKind(t *testing.T) {
	entries := []auditlog.Entry{
		entry(auditlog.Operation, auditlog.OperationFacts{RequestID: "r1", OperationID: "email-compose", Model: "deepseek", ErrorCode: "timeout", CostNano: 1234}),
		entry(auditlog.AdminChange, auditlog.Change{What: "route", ID: "email-compose", Before: map[string]any{"enabled": true}, After: map[string]any{"enabled": false}}),
		entry(auditlog.StepUp, auditlog.StepUpAttempt{UserID: "creator", Result: "locked"}),
		entry(auditlog.Alert, auditlog.AlertEvent{Name: "discord_webhook_gone", State: "fired", Detail: strings.Repeat("x", 10000)}),
		entry(auditlog.Synthesis, auditlog.SynthesisRun{Status: "done", Added: 2, Layers: map[string]int{"Narrative Core": 2}}),
		entry(auditlog.Heartbeat, auditlog.HeartbeatFacts{Operations: 3, Steps: map[string]string{"integrate": "ok", "deliver": "timeout"}}),
		entry(auditlog.Deployment, auditlog.DeploymentFacts{Function: "route", Version: "abc"}),
		entry(auditlog.Migration, auditlog.MigrationFacts{Version: 8}),
		entry(optimize.AuditKind, optimize.Summary{Day: "2026-12-01", TopCostly: []optimize.Costly{{OperationID: "chat_message", Calls: 3, Cost: 1234}},
			Anomalies: []optimize.Anomaly{{Scope: "user", Key: "alice", Today: 5 * money.PerUSD}}, NewRecommendations: 1}),
	}
	for _, e := range entries {
		payload, err := outbox.ItemOf(e)
		if err != nil {
			t.Fatal(err)
		}
		m := outbox.Render(outbox.Item{ID: 1, Kind: string(e.Kind), Payload: payload})
		if m.Title == "" || m.Size() > outbox.MaxTotal || utf8.RuneCountInString(m.Description) > outbox.MaxDescription {
			t.Errorf("%s rendered as %+v", e.Kind, m)
		}
		if m.Footer != "audit entry 9" {
			t.Errorf("%s: footer %q, want the entry's seq", e.Kind, m.Footer)
		}
	}
	digest, _ := json.Marshal(outbox.Digest{Calls: 10, CostNano: 5_000_000, ByModel: map[string]int64{"deepseek": 10}})
	if m := outbox.Render(outbox.Item{Kind: outbox.KindDigest, Payload: digest}); !strings.Contains(m.Title, "10 calls") || !strings.Contains(m.Title, "$0.005") {
		t.Errorf("digest rendered as %+v", m)
	}
	// A heartbeat says how its steps went: this minute's before it, the previous minute's after.
	beat := entry(auditlog.Heartbeat, auditlog.HeartbeatFacts{
		Steps:       map[string]string{"integrate": "ok", "sweep_reservations": "ok"},
		PreviousRun: map[string]string{"checkpoint": "timed out after 4s", "deliver": "ok"}})
	payload, _ := outbox.ItemOf(beat)
	m := outbox.Render(outbox.Item{Kind: string(auditlog.Heartbeat), Payload: payload})
	if m.Description != "previous minute's checkpoint: timed out after 4s" || !slices.Contains(m.Fields, outbox.Field{Name: "steps", Value: "1 of 4 failed", Inline: true}) {
		t.Errorf("heartbeat rendered as %q, %+v", m.Description, m.Fields)
	}
	cp, _ := json.Marshal(outbox.CheckpointItem{Size: 5, Signed: "helix audit log\n5\n...\n"})
	if m := outbox.Render(outbox.Item{Kind: outbox.KindCheckpoint, Payload: cp}); !strings.Contains(m.Description, "helix audit log") {
		t.Errorf("checkpoint rendered as %+v", m)
	}
}

// memStore is the outbox's Store in memory.
type memStore struct {
	mu     sync.Mutex
	items  []*row
	gone   map[string]bool
	locked map[outbox.Channel]bool
}

type row struct {
	outbox.Item
	next      time.Time
	delivered bool
	dead      bool
}

func newMemStore() *memStore {
	return &memStore{gone: map[string]bool{}, locked: map[outbox.Channel]bool{}}
}

func (s *memStore) add(ch outbox.Channel, n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for range n {
		id := int64(len(s.items) + 1)
		payload, _ := outbox.ItemOf(entry(auditlog.Heartbeat, auditlog.HeartbeatFacts{Operations: id}))
		s.items = append(s.items, &row{Item: outbox.Item{ID: id, Channel: ch, Kind: string(auditlog.Heartbeat), Payload: payload}})
	}
}

func (s *memStore) Lock(_ context.Context, ch outbox.Channel) (func(), bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.locked[ch] {
		return nil, false, nil
	}
	s.locked[ch] = true
	return func() { s.mu.Lock(); delete(s.locked, ch); s.mu.Unlock() }, true, nil
}

func (s *memStore) Due(_ context.Context, ch outbox.Channel, now time.Time, limit int) ([]outbox.Item, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []outbox.Item
	for _, r := range s.items {
		if r.Channel != ch || r.delivered || r.dead {
			continue
		}
		if r.next.After(now) || len(out) == limit {
			break
		}
		out = append(out, r.Item)
	}
	return out, nil
}

func (s *memStore) find(id int64) *row { return s.items[id-1] }

func (s *memStore) Delivered(_ context.Context, ids []int64, _ time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, id := range ids {
		s.find(id).delivered = true
	}
	return nil
}

func (s *memStore) Failed(_ context.Context, ids []int64, _ string, retryAt time.Time, dead bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, id := range ids {
		r := s.find(id)
		r.Attempts++
		r.next, r.dead = retryAt, dead
	}
	return nil
}

func (s *memStore) Gone(_ context.Context, ch outbox.Channel, fp, _ string, _ time.Time) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := string(ch) + fp
	first := !s.gone[k]
	s.gone[k] = true
	return first, nil
}

func (s *memStore) IsGone(_ context.Context, ch outbox.Channel, fp string) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.gone[string(ch)+fp], nil
}

func (s *memStore) Revived(_ context.Context, ch outbox.Channel, fp string) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	back := false
	for k := range s.gone {
		if strings.HasPrefix(k, string(ch)) && k != string(ch)+fp {
			delete(s.gone, k)
			back = true
		}
	}
	return back, nil
}

type alerts struct {
	mu    sync.Mutex
	names []string
}

func (a *alerts) Alert(_ context.Context, name, detail string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.names = append(a.names, name+": "+detail)
	return nil
}

func (a *alerts) Clear(_ context.Context, name, detail string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.names = append(a.names, "cleared "+name+": "+detail)
	return nil
}

// clock is a test clock the deliverer's sleeps move forward.
type clock struct {
	mu    sync.Mutex
	t     time.Time
	slept []time.Duration
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}
func (c *clock) sleep(_ context.Context, d time.Duration) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.slept = append(c.slept, d)
	c.t = c.t.Add(d)
	return nil
}

func newDeliverer(s *discordtest.Server, st *memStore, a *alerts, c *clock) *outbox.Deliverer {
	hooks := outbox.Webhooks{}
	for _, ch := range outbox.Channels() {
		hooks[ch] = s.Webhook(string(ch))
	}
	return &outbox.Deliverer{Store: st, Sender: discord.New(), Webhooks: hooks, Alerter: a,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Policy: outbox.DefaultPolicy(), Now: c.now, Sleep: c.sleep}
}

func TestOutageThenRecoveryDeliversEverythingOnceInOrder(t *testing.T) {
	s := discordtest.New(t)
	st, a, c := newMemStore(), &alerts{}, &clock{t: time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)}
	d := newDeliverer(s, st, a, c)
	s.Default("heartbeat", discordtest.Reply{Status: 503})
	// Ten minutes of outage: a heartbeat a minute, a delivery run a minute.
	for range 10 {
		st.add(outbox.Heartbeat, 1)
		res := d.Deliver(context.Background())[outbox.Heartbeat]
		if res.Delivered != 0 {
			t.Fatalf("delivered %d during the outage", res.Delivered)
		}
		c.advance(time.Minute)
	}
	for _, r := range st.items {
		if r.dead {
			t.Fatalf("item %d died during a ten-minute outage", r.ID)
		}
	}
	s.Default("heartbeat", discordtest.Reply{Status: 204})
	c.advance(time.Hour) // past every backoff
	res := d.Deliver(context.Background())[outbox.Heartbeat]
	if res.Delivered != 10 {
		t.Fatalf("delivered %d after recovery, want 10 (%s)", res.Delivered, res.Note)
	}
	got := s.Received("heartbeat")
	if len(got) != 10 {
		t.Fatalf("the webhook got %d embeds, want each of 10 once", len(got))
	}
	for i, e := range got {
		if !strings.Contains(fmt.Sprint(e.Fields), fmt.Sprintf("{operations %d true}", i+1)) {
			t.Errorf("embed %d is %v: out of order", i, e.Fields)
		}
	}
	if p := s.Problems(); len(p) > 0 {
		t.Errorf("requests broke Discord's limits: %v", p)
	}
	// A second run sends nothing again.
	if res := d.Deliver(context.Background())[outbox.Heartbeat]; res.Delivered != 0 || len(s.Received("heartbeat")) != 10 {
		t.Errorf("a run after delivery sent %d more", res.Delivered)
	}
}

func TestRateLimitIsHonoured(t *testing.T) {
	s := discordtest.New(t)
	st, a, c := newMemStore(), &alerts{}, &clock{t: time.Now()}
	d := newDeliverer(s, st, a, c)
	st.add(outbox.API, 25)
	s.Script("api", discordtest.Reply{Status: 429, RetryAfter: 1.5}, discordtest.Reply{Remaining: "0", ResetAfter: "0.25"})
	res := d.Deliver(context.Background())[outbox.API]
	if res.Delivered != 25 || len(s.Received("api")) != 25 {
		t.Fatalf("delivered %d (%s), webhook got %d; want 25", res.Delivered, res.Note, len(s.Received("api")))
	}
	if len(c.slept) < 2 || c.slept[0] != 1500*time.Millisecond || c.slept[1] != 250*time.Millisecond {
		t.Errorf("slept %v, want 1.5s (retry_after) then 0.25s (X-RateLimit-Reset-After)", c.slept)
	}
	if s.Requests("api") != 4 { // the refused one, then 10 + 10 + 5
		t.Errorf("%d requests, want 4 (batches of 10 after the 429)", s.Requests("api"))
	}
	// A wait longer than the policy's leaves the channel for the next run, failing nothing.
	st.add(outbox.API, 1)
	s.Script("api", discordtest.Reply{Status: 429, RetryAfter: 60})
	res = d.Deliver(context.Background())[outbox.API]
	if res.Delivered != 0 || !strings.Contains(res.Note, "rate limited") || st.items[25].Attempts != 0 {
		t.Errorf("long rate limit: %+v, attempts %d", res, st.items[25].Attempts)
	}
}

func TestGoneWebhookStopsTheChannelAndAlertsOnce(t *testing.T) {
	s := discordtest.New(t)
	st, a, c := newMemStore(), &alerts{}, &clock{t: time.Now()}
	d := newDeliverer(s, st, a, c)
	st.add(outbox.Commands, 3)
	st.add(outbox.Heartbeat, 2)
	s.Default("commands", discordtest.Reply{Status: 404})
	for range 3 {
		all := d.Deliver(context.Background())
		if all[outbox.Heartbeat].Delivered+len(s.Received("heartbeat")) == 0 {
			t.Fatal("a gone channel held the others back")
		}
	}
	if n := s.Requests("commands"); n != 1 {
		t.Errorf("the gone webhook got %d requests, want 1 (then nothing)", n)
	}
	if len(a.names) != 1 || !strings.HasPrefix(a.names[0], "discord_webhook_gone") || !strings.Contains(a.names[0], "#helix-commands") {
		t.Errorf("alerts %v, want one for #helix-commands", a.names)
	}
	if strings.Contains(strings.Join(a.names, " "), "SECRET") {
		t.Error("the alert names the webhook URL")
	}
	for _, r := range st.items[:3] {
		if r.delivered || r.dead || r.Attempts != 0 {
			t.Errorf("item %d of the gone channel: %+v, want kept undelivered", r.ID, r)
		}
	}
	// A new webhook for the channel is used, and the alert is cleared, once.
	d.Webhooks[outbox.Commands] = s.Webhook("commands-new")
	if res := d.Deliver(context.Background())[outbox.Commands]; res.Delivered != 3 {
		t.Errorf("with a new webhook, delivered %d (%s), want 3", res.Delivered, res.Note)
	}
	st.add(outbox.Commands, 1)
	d.Deliver(context.Background())
	if len(a.names) != 2 || !strings.HasPrefix(a.names[1], "cleared discord_webhook_gone") || !strings.Contains(a.names[1], "#helix-commands") {
		t.Errorf("alerts %v, want the gone alert, then one clearing it", a.names)
	}
}

func TestAMessageThatKeepsFailingDiesAndTheRestGoOn(t *testing.T) {
	s := discordtest.New(t)
	st, a, c := newMemStore(), &alerts{}, &clock{t: time.Now()}
	d := newDeliverer(s, st, a, c)
	d.Policy.MaxAttempts = 3
	st.add(outbox.Alerts, 3)
	// The first message is refused every time; the others would go.
	s.Script("alerts", discordtest.Reply{Status: 400}, discordtest.Reply{Status: 400}, discordtest.Reply{Status: 400})
	for range 5 {
		d.Deliver(context.Background())
		c.advance(time.Hour)
	}
	if !st.items[0].dead || st.items[0].Attempts != 3 || st.items[0].delivered {
		t.Errorf("the poisoned message: %+v, want dead after 3 attempts (and kept)", st.items[0])
	}
	if !st.items[1].delivered || !st.items[2].delivered {
		t.Error("the messages after a dead one were not delivered")
	}
}

func TestChannelWithoutWebhookKeepsItsMessages(t *testing.T) {
	s := discordtest.New(t)
	st, a, c := newMemStore(), &alerts{}, &clock{t: time.Now()}
	d := newDeliverer(s, st, a, c)
	delete(d.Webhooks, outbox.Consciousness)
	st.add(outbox.Consciousness, 2)
	res := d.Deliver(context.Background())[outbox.Consciousness]
	if res.Delivered != 0 || !strings.Contains(res.Note, "DISCORD_WEBHOOK_CONSCIOUSNESS") || st.items[0].delivered {
		t.Errorf("no webhook: %+v", res)
	}
	if got := d.Webhooks.Missing(); !slices.Equal(got, []outbox.Channel{outbox.Consciousness}) {
		t.Errorf("Missing = %v", got)
	}
}

func TestAnotherRunHoldingTheChannel(t *testing.T) {
	s := discordtest.New(t)
	st, a, c := newMemStore(), &alerts{}, &clock{t: time.Now()}
	d := newDeliverer(s, st, a, c)
	st.add(outbox.Heartbeat, 1)
	unlock, _, _ := st.Lock(context.Background(), outbox.Heartbeat)
	if res := d.Deliver(context.Background())[outbox.Heartbeat]; res.Delivered != 0 || !strings.Contains(res.Note, "another run") {
		t.Errorf("locked channel: %+v", res)
	}
	unlock()
	if res := d.Deliver(context.Background())[outbox.Heartbeat]; res.Delivered != 1 {
		t.Errorf("after unlock: %+v", res)
	}
}
