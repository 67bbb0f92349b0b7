package main

// These tests invoke the audit function as the Lambda runtime does: an event's JSON goes to
// lambda.NewHandler(newHandler(...)).Invoke under a deadline (the function's Timeout, or a
// shorter one where a test wants the run cut short), and the answer is read back as JSON. The
// function is booted the way main boots it (app.Boot over an environment, providers.New from its
// configuration, the synthesis queue from HELIX_SYNTHESIS_QUEUE_URL, auditapp.New), on a fresh
// migrated database, with every Discord channel's webhook pointing at a local server speaking
// Discord's webhook API (discordtest), every provider at a local server speaking its wire
// (llmtest) and the queue at an in-memory SQS (sqstest). The minute itself is tested in
// shared/app/auditapp; these tests are about the function: what it runs on, what it answers,
// and that a failing step or a hanging webhook neither stops the others nor overruns the
// deadline.

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/mod/sumdb/note"

	"github.com/helixhq/helix/shared/app"
	"github.com/helixhq/helix/shared/app/auditapp"
	"github.com/helixhq/helix/shared/app/auditapp/auditapptest"
	"github.com/helixhq/helix/shared/auditlog"
	"github.com/helixhq/helix/shared/discord/discordtest"
	"github.com/helixhq/helix/shared/llm/llmtest"
	"github.com/helixhq/helix/shared/outbox"
	"github.com/helixhq/helix/shared/pgtest"
	"github.com/helixhq/helix/shared/postgres/auditstore"
	"github.com/helixhq/helix/shared/queue/sqsqueue"
	"github.com/helixhq/helix/shared/queue/sqstest"
	"github.com/helixhq/helix/shared/synthesis"
)

var pg *pgtest.Server

func TestMain(m *testing.M) {
	os.Exit(pgtest.Main(m, func(s *pgtest.Server) { pg = s }))
}

// scheduledEvent is the event the EventBridge schedule sends every minute.
const scheduledEvent = "../../events/audit/scheduled.json"

// lambdaTimeout is AuditFunction's Timeout in template.yaml: every invocation runs with that
// deadline unless a test gives it a shorter one.
const lambdaTimeout = 55 * time.Second

// The keys the provider servers insist on, so the probes are seen sending what configuration set.

// queueName is the synthesis queue the sweep sends to.
const queueName = "helix-synthesis"

// The steps of a minute, in the order they run.
var allSteps = []string{"sweep_reservations", "synthesis_sweep", "provider_probes", "alerts", "integrate", "metrics",
	"heartbeat", "integrate_heartbeat", "checkpoint", "api_digest", "deliver"}

// answer is the invocation's answer as the runtime returns it, read with the field names the
// Lambda console shows (not through Answer, so a renamed JSON tag fails here).
type answer struct {
	Steps      map[string]string `json:"steps"`
	Integrated int               `json:"integrated"`
	LogSize    int64             `json:"log_size"`
}

// env is the audit function booted as main boots it, with its local servers.
type env struct {
	core                     *app.Core
	pool                     *pgxpool.Pool
	a                        *auditapp.Audit
	h                        lambda.Handler
	discord                  *discordtest.Server
	sqs                      *sqstest.Server
	verifier                 note.Verifier
	deepseek, gemini, claude *llmtest.Server
	log                      *auditapptest.LockedBuffer
}

func newEnv(t *testing.T) *env {
	t.Helper()
	e := &env{sqs: sqstest.NewServer(t, queueName)}
	x := auditapptest.New(t, auditapptest.Options{DatabaseURL: pg.NewDatabase(t),
		Extra: []string{"HELIX_SYNTHESIS_QUEUE_URL=" + e.sqs.QueueURL(queueName)},
		// main builds the queue with sqsqueue.FromAWS (the account's credentials); here the
		// same adapter gets a client pointed at the in-memory SQS, and the URL comes from
		// configuration.
		Queue: func(core *app.Core) synthesis.Queue {
			return sqsqueue.New(e.sqs.Client(), core.Config.Synthesis.QueueURL)
		}})
	e.core, e.pool, e.a, e.discord, e.verifier, e.log = x.Core, x.Pool, x.Audit, x.Discord, x.Verifier, x.Log
	e.deepseek, e.gemini, e.claude = x.DeepSeek, x.Gemini, x.Claude
	e.h = lambda.NewHandler(newHandler(e.a))
	return e
}

// readEvent reads an event file of the repository.
func readEvent(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// withFields is the event at path with some top-level fields replaced.
func withFields(t *testing.T, path string, fields map[string]any) []byte {
	t.Helper()
	var ev map[string]any
	if err := json.Unmarshal(readEvent(t, path), &ev); err != nil {
		t.Fatal(err)
	}
	for k, v := range fields {
		ev[k] = v
	}
	b, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// invoke runs payload through the handler as the runtime does, under ctx and the function's
// Timeout, and decodes the answer.
func (e *env) invoke(ctx context.Context, payload []byte) (answer, error) {
	ctx, cancel := context.WithTimeout(ctx, lambdaTimeout)
	defer cancel()
	out, err := e.h.Invoke(ctx, payload)
	if err != nil {
		return answer{}, err
	}
	var a answer
	dec := json.NewDecoder(bytes.NewReader(out))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&a); err != nil {
		return answer{}, fmt.Errorf("answer %s: %w", out, err)
	}
	return a, nil
}

// minute invokes the function with the scheduled event.
func (e *env) minute(t *testing.T) answer {
	t.Helper()
	a, err := e.invoke(t.Context(), readEvent(t, scheduledEvent))
	if err != nil {
		t.Fatalf("the scheduled event: %v", err)
	}
	return a
}

func (e *env) exec(t *testing.T, sql string, args ...any) {
	t.Helper()
	if _, err := e.pool.Exec(t.Context(), sql, args...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

func (e *env) count(t *testing.T, sql string, args ...any) int64 {
	t.Helper()
	var n int64
	if err := e.pool.QueryRow(t.Context(), sql, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return n
}

func (e *env) record(t *testing.T, ev auditlog.Event) {
	t.Helper()
	if err := auditstore.Record(t.Context(), e.pool, ev); err != nil {
		t.Fatal(err)
	}
}

// heartbeats are the heartbeat entries sequenced so far, oldest first: their payloads as
// stored and as read.
func (e *env) heartbeats(t *testing.T) (payloads []string, facts []auditlog.HeartbeatFacts) {
	t.Helper()
	rows, _ := e.pool.Query(t.Context(), `SELECT payload FROM audit_entries WHERE kind = 'heartbeat' ORDER BY seq`)
	payloads, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	facts = make([]auditlog.HeartbeatFacts, len(payloads))
	for i, p := range payloads {
		if err := json.Unmarshal([]byte(p), &facts[i]); err != nil {
			t.Fatalf("heartbeat payload %s: %v", p, err)
		}
	}
	return payloads, facts
}

// mentions reports whether a string anywhere in the JSON document (a key or a value) contains s.
func mentions(t *testing.T, doc, s string) bool {
	t.Helper()
	var v any
	if err := json.Unmarshal([]byte(doc), &v); err != nil {
		t.Fatalf("%s: %v", doc, err)
	}
	var walk func(any) bool
	walk = func(v any) bool {
		switch v := v.(type) {
		case string:
			return strings.Contains(v, s)
		case []any:
			return slices.ContainsFunc(v, walk)
		case map[string]any:
			for k, x := range v {
				if strings.Contains(k, s) || walk(x) {
					return true
				}
			}
		}
		return false
	}
	return walk(v)
}

// wantSteps fails unless the answer has exactly the minute's steps, each "ok" but those in
// failed, whose outcome must start with the given prefix.
func wantSteps(t *testing.T, steps map[string]string, failed map[string]string) {
	t.Helper()
	for _, name := range allSteps {
		got, ok := steps[name]
		switch prefix, fails := failed[name]; {
		case !ok:
			t.Errorf("step %s missing from the answer %v", name, steps)
		case fails && !strings.HasPrefix(got, prefix):
			t.Errorf("step %s: %q, want %q…", name, got, prefix)
		case !fails && got != "ok":
			t.Errorf("step %s: %q, want ok", name, got)
		}
	}
	if len(steps) != len(allSteps) {
		t.Errorf("steps %v, want exactly %v", steps, allSteps)
	}
}

func footer(e discordtest.Embed) string {
	if e.Footer == nil {
		return ""
	}
	return e.Footer.Text
}

// signedNote is the signed checkpoint in a #helix-hash-chain message, as an auditor copies it.
func signedNote(description string) string {
	return strings.TrimSuffix(strings.TrimPrefix(description, "```\n"), "```")
}

// outboxItems reads a channel's outbox, in delivery order, and how many are delivered.
func (e *env) outboxItems(t *testing.T, ch outbox.Channel) (items []outbox.Item, delivered int) {
	t.Helper()
	rows, _ := e.pool.Query(t.Context(), `SELECT id, kind, payload, attempts, created_at, delivered_at IS NOT NULL
		FROM discord_outbox WHERE channel = $1 ORDER BY id`, string(ch))
	var it outbox.Item
	var payload []byte
	var done bool
	if _, err := pgx.ForEachRow(rows, []any{&it.ID, &it.Kind, &payload, &it.Attempts, &it.CreatedAt, &done}, func() error {
		it.Channel, it.Payload = ch, json.RawMessage(slices.Clone(payload))
		items = append(items, it)
		if done {
			delivered++
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return items, delivered
}

// wantChannelDelivered checks that a channel's webhook received each of its outbox messages
// exactly once, in the outbox's order, and that all of them are marked delivered.
func (e *env) wantChannelDelivered(t *testing.T, ch outbox.Channel) {
	t.Helper()
	items, delivered := e.outboxItems(t, ch)
	got := e.discord.Received(string(ch))
	if len(items) == 0 {
		t.Errorf("%s: no messages in the outbox; the test meant every channel to have some", ch)
	}
	if delivered != len(items) || len(got) != len(items) {
		t.Errorf("%s: %d of %d messages delivered, the webhook received %d embeds", ch, delivered, len(items), len(got))
		return
	}
	for i, it := range items {
		if want := outbox.Render(it); got[i].Title != want.Title || footer(got[i]) != want.Footer {
			t.Errorf("%s: embed %d is %q (%q), want %q (%q): out of order", ch, i, got[i].Title, footer(got[i]), want.Title, want.Footer)
		}
	}
}

// activity records, before a minute, something for every channel: an admin change that
// reprices (commands and file_changes), a failed call (api) and a successful one (the digest),
// a synthesis run (consciousness) and an alert (alerts); the minute adds the heartbeat and the
// checkpoint (hash_chain).
func (e *env) activity(t *testing.T) {
	t.Helper()
	e.record(t, auditlog.Event{Kind: auditlog.AdminChange, Actor: "ops", Payload: auditlog.Change{
		What: auditlog.ChangedModel, ID: "deepseek", Before: map[string]int{"price": 1}, After: map[string]int{"price": 2}, Reprice: true}})
	for _, ok := range []bool{false, true} {
		e.exec(t, `
			INSERT INTO ai_operation_log (request_id, operation_id, user_id, model_used, provider, input_tokens, output_tokens,
			                              cost_nano, latency_ms, success, error_code, fallback_used)
			VALUES ($1, 'chat', 'alice', 'deepseek', 'deepseek', 100, 50, 1000, 80, $2, CASE WHEN NOT $2 THEN 'providers_unavailable' END, false)`,
			uuid.NewString(), ok)
	}
	e.record(t, auditlog.Event{Kind: auditlog.Synthesis, Actor: "alice", Payload: auditlog.SynthesisRun{
		ConversationID: uuid.NewString(), ThroughSeq: 4, Status: "done", Messages: 4, Added: 1, Layers: map[string]int{"semantic": 1}}})
	e.record(t, auditlog.Event{Kind: auditlog.Alert, Actor: "audit", Payload: auditlog.AlertEvent{
		Name: "test_alert", State: auditlog.Fired, Detail: "raised by the test"}})
}

// TestScheduledEventRunsTheMinute: the schedule's real event runs every step, the answer says
// so, the heartbeat reaches #helix-heartbeat and a checkpoint that verifies with the public key
// reaches #helix-hash-chain; the synthesis sweep sends an idle conversation's job to the queue
// configuration names.
func TestScheduledEventRunsTheMinute(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	// Alice's four messages, nothing learned, quiet for an hour (HELIX_SYNTHESIS_IDLE is 10 m).
	conv := uuid.NewString()
	e.exec(t, `INSERT INTO conversations (conversation_id, user_id, last_seq, synthesized_seq, enqueued_seq, last_activity_at)
		VALUES ($1, 'alice', 4, 0, 0, now() - interval '1 hour')`, conv)
	for seq, role := range []string{"user", "assistant", "user", "assistant"} {
		e.exec(t, `INSERT INTO session_messages (conversation_id, seq, role, content) VALUES ($1, $2, $3, 'hello')`, conv, seq+1, role)
	}

	a := e.minute(t)
	wantSteps(t, a.Steps, nil)
	entries := e.count(t, `SELECT count(*) FROM audit_entries`)
	if a.Integrated <= 0 || a.LogSize <= 0 {
		t.Errorf("integrated %d, log_size %d; want both > 0 (the deployment and the heartbeat at least)", a.Integrated, a.LogSize)
	}
	if a.LogSize != entries || int64(a.Integrated) != entries {
		t.Errorf("integrated %d, log_size %d; the log holds %d entries, all sequenced by this first minute", a.Integrated, a.LogSize, entries)
	}

	// The heartbeat: in the log, and posted with its entry number and no failed step.
	var hbSeq int64
	if err := e.pool.QueryRow(t.Context(), `SELECT seq FROM audit_entries WHERE kind = 'heartbeat'`).Scan(&hbSeq); err != nil {
		t.Fatalf("the heartbeat entry: %v", err)
	}
	hb := e.discord.Received("heartbeat")
	if len(hb) != 1 {
		t.Fatalf("the heartbeat webhook received %d embeds, want the minute's heartbeat", len(hb))
	}
	if hb[0].Title != "Heartbeat" || footer(hb[0]) != fmt.Sprintf("audit entry %d", hbSeq) || hb[0].Description != "" {
		t.Errorf("heartbeat posted as %q / %q / %q, want Heartbeat, audit entry %d, no failed step", hb[0].Title, footer(hb[0]), hb[0].Description, hbSeq)
	}

	// The checkpoint: signed over the whole log, verified with the public key and only with it.
	cps := e.discord.Received("hash_chain")
	if len(cps) != 1 {
		t.Fatalf("the hash_chain webhook received %d embeds, want the minute's checkpoint", len(cps))
	}
	cp, err := auditlog.OpenCheckpoint(signedNote(cps[0].Description), e.verifier)
	if err != nil {
		t.Fatalf("the posted checkpoint does not verify with the signing key's verifier: %v\n%s", err, cps[0].Description)
	}
	if cp.Size != a.LogSize {
		t.Errorf("the checkpoint covers %d entries, the answer's log_size is %d", cp.Size, a.LogSize)
	}
	_, otherKey, err := note.GenerateKey(rand.Reader, "helix-audit-fn-test")
	if err != nil {
		t.Fatal(err)
	}
	other, err := note.NewVerifier(otherKey)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := auditlog.OpenCheckpoint(signedNote(cps[0].Description), other); err == nil {
		t.Error("the checkpoint verifies with another key of the same name")
	}

	// The probes went to every provider, and the sweep sent alice's job to the queue.
	for name, s := range map[string]*llmtest.Server{"deepseek": e.deepseek, "gemini": e.gemini, "anthropic": e.claude} {
		if n := s.Count(); n != 1 {
			t.Errorf("%s got %d requests, want its probe", name, n)
		}
	}
	msgs := e.sqs.Messages(queueName)
	if len(msgs) != 1 {
		t.Fatalf("the queue holds %d messages, want alice's job", len(msgs))
	}
	if j, err := synthesis.ParseJob([]byte(msgs[0].Body)); err != nil || j != (synthesis.Job{ConversationID: conv, UserID: "alice", ThroughSeq: 4}) {
		t.Errorf("queued %q (%v), want alice's conversation through seq 4", msgs[0].Body, err)
	}
	if p := e.discord.Problems(); len(p) > 0 {
		t.Errorf("requests broke Discord's limits: %v", p)
	}
}

// TestOtherEventsAreRefused: only the schedule runs the minute. Any other event invoking the
// function gets an error and runs nothing: no step touches the database (the deployment the
// cold start recorded stays unsequenced, no heartbeat, no checkpoint), Discord, the providers or
// the queue. The real event, last, shows the same checks do see a minute that ran.
func TestOtherEventsAreRefused(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tests := []struct {
		name    string
		payload []byte
		wantErr string // "" for any error
	}{
		{name: "an SQS batch", payload: readEvent(t, "../../events/synthesis/sqs-batch.json"), wantErr: "not a scheduled event"},
		{name: "an API Gateway request", payload: readEvent(t, "../../events/route/get-v1-models.json"), wantErr: "not a scheduled event"},
		{name: "an S3 notification", payload: []byte(`{"Records":[{"eventVersion":"2.1","eventSource":"aws:s3","awsRegion":"us-east-1",
			"eventTime":"2026-12-01T12:00:00.000Z","eventName":"ObjectCreated:Put",
			"s3":{"bucket":{"name":"helix-uploads","arn":"arn:aws:s3:::helix-uploads"},"object":{"key":"a.txt","size":3}}}]}`),
			wantErr: "not a scheduled event"},
		{name: "a Scheduled Event from another source", payload: withFields(t, scheduledEvent, map[string]any{"source": "helix.ops"}),
			wantErr: `source "helix.ops"`},
		{name: "another kind of EventBridge event", payload: withFields(t, scheduledEvent, map[string]any{
			"source": "aws.ec2", "detail-type": "EC2 Instance State-change Notification", "detail": map[string]string{"state": "running"}}),
			wantErr: "not a scheduled event"},
		{name: "an aws.events event of another detail-type", payload: withFields(t, scheduledEvent, map[string]any{"detail-type": "Rule Created"}),
			wantErr: `detail-type "Rule Created"`},
		{name: "an empty object", payload: []byte(`{}`), wantErr: "not a scheduled event"},
		{name: "null", payload: []byte(`null`), wantErr: "not a scheduled event"},
		{name: "not an object", payload: []byte(`["aws.events", "Scheduled Event"]`)},
	}
	// nothingRan checks every trace a minute leaves.
	nothingRan := func(t *testing.T) {
		t.Helper()
		if n := e.count(t, `SELECT (SELECT count(*) FROM audit_pending WHERE kind = 'heartbeat') + (SELECT count(*) FROM audit_entries)
			+ (SELECT count(*) FROM audit_checkpoints) + (SELECT count(*) FROM discord_outbox)`); n != 0 {
			t.Errorf("%d heartbeats, entries, checkpoints and outbox messages written, want none", n)
		}
		for _, ch := range outbox.Channels() {
			if n := e.discord.Requests(string(ch)); n != 0 {
				t.Errorf("%s got %d requests", ch, n)
			}
		}
		if n := e.deepseek.Count() + e.gemini.Count() + e.claude.Count(); n != 0 {
			t.Errorf("the providers got %d requests", n)
		}
		if n := len(e.sqs.Requests()); n != 0 {
			t.Errorf("the queue got %d requests", n)
		}
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := e.invoke(t.Context(), tt.payload)
			if err == nil {
				t.Fatalf("answered %+v, want the event refused", a)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("error %q, want it to say %q", err, tt.wantErr)
			}
			nothingRan(t)
		})
	}

	// The control: the schedule's event, on the same function, runs the minute.
	wantSteps(t, e.minute(t).Steps, nil)
	if n := e.count(t, `SELECT count(*) FROM audit_entries WHERE kind = 'heartbeat'`); n != 1 {
		t.Errorf("after the scheduled event the log holds %d heartbeats, want 1", n)
	}
	if n := e.discord.Requests("heartbeat"); n != 1 {
		t.Errorf("after the scheduled event the heartbeat webhook got %d requests, want 1", n)
	}
}

// TestFailingStepDoesNotStopTheOthers: a database error in one step (its table renamed away,
// so its query fails with 42P01, as a dropped grant or a bad migration would make it fail) is
// that step's outcome; every other step runs and goes well, and a heartbeat reports the
// failure: the minute's own for a step run before the heartbeat, the next minute's for a step
// run after it (auditapp.Run: "the later steps' outcomes are in the next minute's heartbeat").
// With the table back, the next minute goes well.
func TestFailingStepDoesNotStopTheOthers(t *testing.T) {
	t.Parallel()
	tests := []struct {
		step, table string
		// beforeHeartbeat: the step runs before the heartbeat, which reports its outcome.
		beforeHeartbeat bool
	}{
		{step: "sweep_reservations", table: "budget_reservations", beforeHeartbeat: true},
		{step: "checkpoint", table: "audit_checkpoints", beforeHeartbeat: false},
	}
	for _, tt := range tests {
		t.Run(tt.step, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			e.exec(t, `ALTER TABLE `+tt.table+` RENAME TO `+tt.table+`_unusable`)

			first := e.minute(t)
			outcome := first.Steps[tt.step]
			wantSteps(t, first.Steps, map[string]string{tt.step: ""})
			if outcome == "ok" || !strings.Contains(outcome, fmt.Sprintf(`relation %q does not exist`, tt.table)) {
				t.Errorf("step %s: %q, want the database's error", tt.step, outcome)
			}
			if first.Integrated <= 0 || first.LogSize <= 0 {
				t.Errorf("integrated %d, log_size %d; want both > 0", first.Integrated, first.LogSize)
			}
			hb := e.discord.Received("heartbeat")
			if len(hb) != 1 {
				t.Fatalf("the heartbeat webhook received %d heartbeats, want the minute's", len(hb))
			}
			if tt.step == "checkpoint" {
				if n := len(e.discord.Received("hash_chain")); n != 0 {
					t.Errorf("the hash_chain webhook received %d checkpoints in the minute the checkpoint failed", n)
				}
			}

			e.exec(t, `ALTER TABLE `+tt.table+`_unusable RENAME TO `+tt.table)
			second := e.minute(t)
			wantSteps(t, second.Steps, nil)
			hb = e.discord.Received("heartbeat")
			payloads, facts := e.heartbeats(t)
			if len(hb) != 2 || len(facts) != 2 {
				t.Fatalf("after two minutes the heartbeat webhook received %d heartbeats and the log holds %d, want 2", len(hb), len(facts))
			}
			if n := len(e.discord.Received("hash_chain")); tt.step == "checkpoint" && n != 1 {
				t.Errorf("the hash_chain webhook received %d checkpoints once the table was back, want 1", n)
			}

			if tt.beforeHeartbeat {
				// The minute's own heartbeat names the failure; the next one, the failure
				// cleared, says the step went well and names nothing.
				if got := facts[0].Steps[tt.step]; got != outcome || !mentions(t, payloads[0], outcome) {
					t.Errorf("the heartbeat of the failing minute says %s: %q, want %q", tt.step, got, outcome)
				}
				if want := tt.step + ": " + outcome; !strings.Contains(hb[0].Description, want) {
					t.Errorf("the heartbeat of the failing minute is posted with %q, want it to name %q", hb[0].Description, want)
				}
				if got := facts[1].Steps[tt.step]; got != "ok" || hb[1].Description != "" {
					t.Errorf("the next heartbeat says %s: %q, posted with %q; want ok and no failed step", tt.step, got, hb[1].Description)
				}
				return
			}
			// The step ran after the minute's heartbeat: the next minute's heartbeat must carry
			// its outcome (under whatever key), in the log and as posted.
			if !mentions(t, payloads[1], outcome) {
				t.Errorf("the next minute's heartbeat does not report the failed %s (%q): %s", tt.step, outcome, payloads[1])
			}
			if d := hb[1].Description; !strings.Contains(d, tt.step) || !strings.Contains(d, outcome) {
				t.Errorf("the next minute's heartbeat is posted with %q, want it to name %s: %q", d, tt.step, outcome)
			}
		})
	}
}

// TestHangingWebhookDoesNotHoldTheMinute: one channel's webhook hangs while the invocation has
// a few seconds left. The invocation returns by its deadline, give or take a moment (the
// runtime would otherwise time it out, and the minute's answer would be lost), with delivery
// cut short and every other step gone well; the other channels' messages are delivered, and the
// hung channel's message is not lost: the next minute delivers it, with everything else, each
// once and in order. Channels are delivered one after another in outbox.Channels' order, so the
// hung channel is the first of that order (commands) and the last (hash_chain).
func TestHangingWebhookDoesNotHoldTheMinute(t *testing.T) {
	t.Parallel()
	const budget = 4 * time.Second        // the invocation's time left
	const margin = 750 * time.Millisecond // returning after the deadline, by at most this
	for _, hung := range []outbox.Channel{outbox.Commands, outbox.HashChain} {
		t.Run(string(hung), func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			// A minute ahead, so what this run writes is due; advanced below past any backoff.
			c := auditapptest.NewClock(time.Now().Add(time.Minute))
			e.a.Deliverer.Now = c.Now
			e.activity(t)
			e.discord.Script(string(hung), discordtest.Reply{Hang: time.Minute})
			payload := readEvent(t, scheduledEvent)

			ctx, cancel := context.WithTimeout(t.Context(), budget)
			defer cancel()
			deadline, _ := ctx.Deadline()
			a, err := e.invoke(ctx, payload)
			if late := time.Since(deadline); late > margin {
				t.Errorf("the invocation returned %s after its deadline (bound %s)", late, margin)
			}
			if err != nil {
				t.Fatalf("the scheduled event: %v", err)
			}
			wantSteps(t, a.Steps, map[string]string{"deliver": "timed out"})
			if a.LogSize <= 0 || a.Integrated <= 0 {
				t.Errorf("integrated %d, log_size %d; want both > 0", a.Integrated, a.LogSize)
			}
			e.waitLeftBehind(t, hung)

			if n := e.discord.Requests(string(hung)); n != 1 || len(e.discord.Received(string(hung))) != 0 {
				t.Errorf("the hung webhook got %d requests and accepted %d embeds, want one request, nothing accepted",
					n, len(e.discord.Received(string(hung))))
			}
			for _, ch := range outbox.Channels() {
				if ch != hung {
					e.wantChannelDelivered(t, ch)
				}
			}

			// The next minute, the webhook answering again and the backoff passed, delivers the
			// hung channel's message and everything since, each once and in order.
			c.Advance(time.Hour)
			wantSteps(t, e.minute(t).Steps, nil)
			for _, ch := range outbox.Channels() {
				e.wantChannelDelivered(t, ch)
			}
			if n := e.count(t, `SELECT count(*) FROM discord_outbox WHERE dead_at IS NOT NULL`); n != 0 {
				t.Errorf("%d messages marked dead", n)
			}
			if p := e.discord.Problems(); len(p) > 0 {
				t.Errorf("requests broke Discord's limits: %v", p)
			}
		})
	}
}

// leftBehindDone is true once the delivery a run left behind has recorded the hung request's
// failed attempt (the channel's first message tried once) and let go of the channel (its
// delivery lease given back).
const leftBehindDone = `
	SELECT coalesce((SELECT attempts = 1 FROM discord_outbox WHERE channel = $1 ORDER BY id LIMIT 1), false)
	   AND NOT EXISTS (SELECT 1 FROM discord_leases)`

// waitLeftBehind waits for the delivery a run cut short to finish on its own, so the next
// minute finds the channel free.
func (e *env) waitLeftBehind(t *testing.T, hung outbox.Channel) {
	t.Helper()
	for wait := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if e.count(t, `SELECT count(*) WHERE (`+leftBehindDone+`)`, string(hung)) == 1 {
			return
		}
		if time.Now().After(wait) {
			t.Fatal("the delivery left behind never recorded the hung webhook's attempt")
		}
	}
}

// TestDeliveryLeftBehindDoesNotRaceTheAnswer: the delivery a run's deadline cut short is left
// behind and finishes on its own; what it writes must not race with what the run returns (go
// test -race). Here the database answers the run's last query (the log's head, after the
// steps) only once that delivery has finished: the test holds audit_entries while the webhook
// hangs and lets go when the delivery has recorded its attempt and released the channel. Its
// last writes then come before the run reads its result, and nothing orders them (the race
// detector counts any I/O as synchronization, so the order matters: the other way round, the
// I/O in between would hide the race).
func TestDeliveryLeftBehindDoesNotRaceTheAnswer(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	c := auditapptest.NewClock(time.Now().Add(time.Minute))
	e.a.Deliverer.Now = c.Now
	e.discord.Script("hash_chain", discordtest.Reply{Hang: time.Minute})
	payload := readEvent(t, scheduledEvent)
	// The test's own connection: nothing shared with the function.
	hold, err := pgx.Connect(t.Context(), e.core.Config.DatabaseURL)
	if err != nil {
		t.Fatal(err)
	}
	defer hold.Close(context.Background())

	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second)
	defer cancel()
	held := make(chan error, 1)
	go func() {
		held <- func() error {
			bg := context.Background()
			for e.discord.Requests("hash_chain") == 0 {
				if ctx.Err() != nil {
					return errors.New("the hash_chain webhook got no request before the deadline")
				}
				time.Sleep(5 * time.Millisecond)
			}
			tx, err := hold.Begin(bg)
			if err != nil {
				return err
			}
			defer tx.Rollback(bg) // a no-op once committed
			if _, err := tx.Exec(bg, `LOCK TABLE audit_entries IN ACCESS EXCLUSIVE MODE`); err != nil {
				return err
			}
			for wait := time.Now().Add(15 * time.Second); ; time.Sleep(10 * time.Millisecond) {
				var done bool
				if err := tx.QueryRow(bg, leftBehindDone, "hash_chain").Scan(&done); err != nil {
					return err
				}
				if done {
					break
				}
				if time.Now().After(wait) {
					return errors.New("the delivery left behind never recorded the hung webhook's attempt")
				}
			}
			// The delivery has a few instructions left after letting go of the channel.
			time.Sleep(100 * time.Millisecond)
			return tx.Commit(bg)
		}()
	}()
	a, err := e.invoke(ctx, payload)
	if herr := <-held; herr != nil {
		t.Fatal(herr)
	}
	if err != nil {
		t.Fatalf("the scheduled event: %v", err)
	}
	wantSteps(t, a.Steps, map[string]string{"deliver": "timed out"})
	if a.LogSize <= 0 {
		t.Errorf("log_size %d, want > 0", a.LogSize)
	}
}

// TestInvocationAnswersBeforeItsDeadline: the deadline an invocation gets is the moment the
// Lambda runtime times it out; an answer after it is never seen (the invocation is recorded as
// timed out) and whatever runs then is frozen mid-way. So when a step runs into the deadline
// (here delivery, on a hanging webhook), the handler must still answer before it, not a moment
// after.
func TestInvocationAnswersBeforeItsDeadline(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.discord.Script("heartbeat", discordtest.Reply{Hang: time.Minute})
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second)
	defer cancel()
	deadline, _ := ctx.Deadline()
	a, err := e.invoke(ctx, readEvent(t, scheduledEvent))
	if late := time.Since(deadline); late >= 0 {
		t.Errorf("the invocation answered %s after its deadline: under the runtime, a timed-out invocation", late)
	}
	if err != nil {
		t.Fatalf("the scheduled event: %v", err)
	}
	if a.Steps["deliver"] == "ok" {
		t.Errorf("deliver: ok, want it cut short by the hanging webhook")
	}
	e.waitLeftBehind(t, outbox.Heartbeat)
}
