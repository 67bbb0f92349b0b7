package main

// These tests push SQS events through the synthesis function exactly as the Lambda runtime
// would: the JSON payload goes to lambda.NewHandler(newHandler(...)).Invoke, with the deadline
// of the function's Timeout, and the answer is read back as an SQSEventResponse. The function is
// booted the way main boots it (app.Boot over an environment, providers.New from its
// configuration), on a fresh migrated database, with every provider's base URL pointing at a
// local server speaking that provider's wire (package llmtest). memory_synthesis runs on Gemini
// Flash, whose server answers with a structured synthesis; DeepSeek (the fallback) and Claude (the
// emergency model) have servers too, so a failing chain is the real one.

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambda"
	"github.com/google/uuid"

	"github.com/helixhq/helix/shared/app"
	"github.com/helixhq/helix/shared/app/synthesisapp"
	"github.com/helixhq/helix/shared/budget"
	"github.com/helixhq/helix/shared/execute"
	"github.com/helixhq/helix/shared/llm"
	"github.com/helixhq/helix/shared/llm/llmtest"
	"github.com/helixhq/helix/shared/llm/providers"
	"github.com/helixhq/helix/shared/memory"
	"github.com/helixhq/helix/shared/money"
	"github.com/helixhq/helix/shared/pgtest"
	"github.com/helixhq/helix/shared/queue/sqsqueue"
	"github.com/helixhq/helix/shared/synthesis"
)

var pg *pgtest.Server

func TestMain(m *testing.M) {
	os.Exit(pgtest.Main(m, func(s *pgtest.Server) { pg = s }))
}

// sampleBatch is the sample SQS event: three jobs of alice's, through seq 5.
const sampleBatch = "../../events/synthesis/sqs-batch.json"

// lambdaTimeout is SynthesisFunction's Timeout in template.yaml: every invocation runs with
// that deadline, as under the runtime (the handler keeps a reserve of it per record).
const lambdaTimeout = 300 * time.Second

// The conversation every test seeds: five messages, the user's at seqs 1, 3 and 5.
var dialogue = []struct {
	role, content string
}{
	{"user", "I'm planning a trip to Lisbon in May."},
	{"assistant", "Lovely! Lisbon is beautiful in spring. Who are you travelling with?"},
	{"user", "My sister Maria is coming with me."},
	{"assistant", "That sounds like a great trip. Anything you want to see?"},
	{"user", "We want to take the train to Sintra one day."},
}

// words of the dialogue and the insights that must never reach the function's log.
var private = []string{"Lisbon", "Maria", "Sintra"}

// What the model learns from the dialogue: its answer adds these two insights.
const learnedSummary = "Alice is planning a trip to Lisbon in May with her sister Maria."

type insightWant struct {
	layer    memory.Layer
	text     string
	evidence []int64
}

var learned = []insightWant{
	{memory.ProspectiveSelf, "Plans a trip to Lisbon in May", []int64{1, 3}},
	{memory.RelationalMemory, "Travels with her sister Maria", []int64{3}},
}

// synthesisAnswer is the model's structured answer: the summary and an add per learned insight.
func synthesisAnswer(t testing.TB) string {
	t.Helper()
	type action struct {
		Action     string  `json:"action"`
		Layer      int     `json:"layer"`
		Text       string  `json:"text"`
		Confidence float64 `json:"confidence"`
		Evidence   []int64 `json:"evidence"`
	}
	a := struct {
		Summary string   `json:"summary"`
		Actions []action `json:"actions"`
	}{Summary: learnedSummary}
	for _, l := range learned {
		a.Actions = append(a.Actions, action{Action: "add", Layer: int(l.layer), Text: l.text, Confidence: 0.8, Evidence: l.evidence})
	}
	b, err := json.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// callUsage is what each model answer reports; oneCallCost prices it.
var callUsage = llmtest.Usage{InputTokens: 1200, OutputTokens: 150}

// The keys the wire servers insist on, so the adapters are seen sending what configuration set.
const geminiKey, deepSeekKey, anthropicKey = "gm-test-key", "ds-test-key", "an-test-key"

// lockedBuffer is the function's log: written by concurrent invocations, read by the test.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// env is the synthesis function booted over one fresh database, with its provider servers.
type env struct {
	core                     *app.Core
	proc                     *synthesis.Processor // tests may tune its Policy before the first invocation
	h                        lambda.Handler
	gemini, deepseek, claude *llmtest.Server
	log                      *lockedBuffer
}

// newEnv boots the function as main does. wrap, when set, wraps the provider registry (to hold
// model calls); Gemini answers with the synthesis, the other servers with their defaults.
func newEnv(t testing.TB, wrap func(execute.Providers) execute.Providers) *env {
	t.Helper()
	e := &env{gemini: llmtest.NewGemini(t), deepseek: llmtest.NewOpenAI(t), claude: llmtest.NewAnthropic(t), log: &lockedBuffer{}}
	e.gemini.RequireAPIKey(geminiKey)
	e.deepseek.RequireAPIKey(deepSeekKey)
	e.claude.RequireAPIKey(anthropicKey)
	e.gemini.SetDefault(llmtest.OK(synthesisAnswer(t)).WithUsage(callUsage))

	core, err := app.Boot(t.Context(), app.Options{
		Function: "synthesis",
		Environ: []string{
			"DATABASE_URL=" + pg.NewDatabase(t),
			"GEMINI_API_KEY=" + geminiKey, "GEMINI_BASE_URL=" + e.gemini.URL,
			"DEEPSEEK_API_KEY=" + deepSeekKey, "DEEPSEEK_BASE_URL=" + e.deepseek.URL,
			"ANTHROPIC_API_KEY=" + anthropicKey, "ANTHROPIC_BASE_URL=" + e.claude.URL,
		},
		LogOut: e.log,
	})
	if err != nil {
		t.Fatalf("cold start: %v", err)
	}
	t.Cleanup(core.Pool.Close)
	registry, err := providers.New(t.Context(), core.Config.Providers, providers.NewHTTPClient())
	if err != nil {
		t.Fatalf("providers: %v", err)
	}
	var ps execute.Providers = registry
	if wrap != nil {
		ps = wrap(registry)
	}
	e.core = core
	e.proc = synthesisapp.NewProcessor(core, core.Toggles(), ps)
	e.h = lambda.NewHandler(newHandler(core, e.proc))
	t.Cleanup(func() {
		// Counts only: no message or insight text goes to the logs, whatever happened.
		log := e.log.String()
		for _, w := range private {
			if strings.Contains(log, w) {
				t.Errorf("the function's log carries memory content (%q):\n%s", w, log)
			}
		}
	})
	return e
}

// seed stores a conversation of user's with the dialogue, as the chat function would have left
// it after sending the job through seq 5.
func (e *env) seed(t *testing.T, user, conv string) {
	t.Helper()
	ctx := t.Context()
	if _, err := e.core.Pool.Exec(ctx, `
		INSERT INTO conversations (conversation_id, user_id, title, last_seq, enqueued_seq, enqueued_at)
		VALUES ($1, $2, 'Trip planning', $3, $3, now())`, conv, user, len(dialogue)); err != nil {
		t.Fatalf("seed conversation %s: %v", conv, err)
	}
	for i, m := range dialogue {
		seq := int64(i + 1)
		var replyTo *int64
		if m.role == "assistant" {
			prev := seq - 1
			replyTo = &prev
		}
		if _, err := e.core.Pool.Exec(ctx, `
			INSERT INTO session_messages (conversation_id, seq, role, content, reply_to_seq, model_used)
			VALUES ($1, $2, $3, $4, $5, CASE WHEN $3 = 'assistant' THEN 'deepseek' END)`, conv, seq, m.role, m.content, replyTo); err != nil {
			t.Fatalf("seed message %d of %s: %v", seq, conv, err)
		}
	}
}

// invoke runs payload through the handler as the runtime does and returns the ids of the
// records reported failed. It calls no t methods, so goroutines may use it.
func (e *env) invoke(ctx context.Context, payload []byte) ([]string, error) {
	ctx, cancel := context.WithTimeout(ctx, lambdaTimeout)
	defer cancel()
	out, err := e.h.Invoke(ctx, payload)
	if err != nil {
		return nil, fmt.Errorf("invoke: %w (a record must fail alone, never the invocation)", err)
	}
	var resp events.SQSEventResponse
	dec := json.NewDecoder(bytes.NewReader(out))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&resp); err != nil {
		return nil, fmt.Errorf("answer %s is not an SQSEventResponse: %w", out, err)
	}
	if resp.BatchItemFailures == nil {
		return nil, fmt.Errorf("answer %s has no batchItemFailures list", out)
	}
	var failed []string
	for _, f := range resp.BatchItemFailures {
		failed = append(failed, f.ItemIdentifier)
	}
	return failed, nil
}

// deliver is invoke for the test goroutine.
func (e *env) deliver(t *testing.T, payload []byte) []string {
	t.Helper()
	failed, err := e.invoke(t.Context(), payload)
	if err != nil {
		t.Fatal(err)
	}
	return failed
}

// failureErrors reads the function's log: the error of every record it reported failed, by
// message id.
func (e *env) failureErrors(t *testing.T) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	for _, line := range strings.Split(e.log.String(), "\n") {
		var l struct {
			Msg       string `json:"msg"`
			MessageID string `json:"message_id"`
			Err       string `json:"err"`
		}
		if line == "" || json.Unmarshal([]byte(line), &l) != nil || l.Msg != "sqs record failed" {
			continue
		}
		out[l.MessageID] = append(out[l.MessageID], l.Err)
	}
	return out
}

// logged reports whether the function logged a line with msg and every attribute of attrs.
func (e *env) logged(msg string, attrs map[string]string) bool {
	for _, line := range strings.Split(e.log.String(), "\n") {
		var l map[string]any
		if line == "" || json.Unmarshal([]byte(line), &l) != nil || l["msg"] != msg {
			continue
		}
		match := true
		for k, v := range attrs {
			if fmt.Sprint(l[k]) != v {
				match = false
			}
		}
		if match {
			return true
		}
	}
	return false
}

func (e *env) count(t *testing.T, query string, args ...any) int {
	t.Helper()
	var n int
	if err := e.core.Pool.QueryRow(t.Context(), query, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}

// texts runs a query of one text column and returns its rows. The queries render rows with
// concat_ws, in which Postgres writes booleans as t and f.
func (e *env) texts(t *testing.T, query string, args ...any) []string {
	t.Helper()
	rows, err := e.core.Pool.Query(t.Context(), query, args...)
	if err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func (e *env) today(t *testing.T, user string) budget.Day {
	t.Helper()
	d, err := e.core.Ledger().Today(t.Context(), user)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// oneCallCost is what one memory_synthesis answer costs: callUsage at gemini_flash's prices.
func (e *env) oneCallCost(t *testing.T) money.Nano {
	t.Helper()
	var in, out int64
	if err := e.core.Pool.QueryRow(t.Context(), `
		SELECT input_nano_per_mtok, output_nano_per_mtok FROM ai_models WHERE model_key = 'gemini_flash'`).Scan(&in, &out); err != nil {
		t.Fatal(err)
	}
	return money.Nano((callUsage.InputTokens*in + callUsage.OutputTokens*out) / 1_000_000)
}

// state is everything a synthesis run can write, rendered so two states compare with ==.
type state struct {
	insights, evidence, jobs, conversations, calls []string
	spent, reserved                                money.Nano
}

func (e *env) state(t *testing.T, user string) state {
	t.Helper()
	d := e.today(t, user)
	return state{
		insights: e.texts(t, `SELECT concat_ws('|', insight_id, user_id, layer, layer_name, text, confidence,
		        reinforcement_count, valid_from, invalidated_at, superseded_by) FROM conversation_insights ORDER BY insight_id`),
		evidence: e.texts(t, `SELECT concat_ws('|', insight_id, conversation_id, seq, kind) FROM insight_evidence
		        ORDER BY insight_id, conversation_id, seq`),
		jobs: e.texts(t, `SELECT concat_ws('|', conversation_id, through_seq, user_id, status, reason, messages, added,
		        reinforced, updated, invalidated, request_id, cost_nano, finished_at) FROM synthesis_jobs
		        ORDER BY conversation_id, through_seq`),
		conversations: e.texts(t, `SELECT concat_ws('|', conversation_id, last_seq, synthesized_seq, enqueued_seq, summary,
		        summary_through_seq, synthesis_until) FROM conversations ORDER BY conversation_id`),
		calls: e.texts(t, `SELECT concat_ws('|', request_id, operation_id, user_id, model_used, success, error_code, cost_nano)
		        FROM ai_operation_log ORDER BY id`),
		spent: d.Spent, reserved: d.Reserved,
	}
}

func wantSameState(t *testing.T, what string, got, want state) {
	t.Helper()
	for _, c := range []struct {
		name      string
		got, want []string
	}{
		{"conversation_insights", got.insights, want.insights},
		{"insight_evidence", got.evidence, want.evidence},
		{"synthesis_jobs", got.jobs, want.jobs},
		{"conversations", got.conversations, want.conversations},
		{"ai_operation_log", got.calls, want.calls},
	} {
		if !slices.Equal(c.got, c.want) {
			t.Errorf("%s changed %s:\n got %q\nwant %q", c.name, what, c.got, c.want)
		}
	}
	if got.spent != want.spent || got.reserved != want.reserved {
		t.Errorf("budget changed %s: spent %s reserved %s, want %s and %s", what, got.spent, got.reserved, want.spent, want.reserved)
	}
}

// wantLearned checks the job of conv (through seq 5) ran to its end: the learned insights exist
// for user with their evidence in conv, the job is recorded done at one call's cost, and the
// conversation moved on with the model's summary and no lease left.
func (e *env) wantLearned(t *testing.T, user, conv string) {
	t.Helper()
	var wantEvidence, wantInsights []string
	for _, l := range learned {
		wantInsights = append(wantInsights, fmt.Sprintf("%s|%d|%s|%s|active", user, l.layer, l.layer.Name(), l.text))
		for _, s := range l.evidence {
			wantEvidence = append(wantEvidence, fmt.Sprintf("%s|%d|add", l.text, s))
		}
	}
	slices.Sort(wantEvidence)
	slices.Sort(wantInsights)
	gotEvidence := e.texts(t, `
		SELECT concat_ws('|', i.text, v.seq, v.kind) FROM insight_evidence v JOIN conversation_insights i USING (insight_id)
		 WHERE v.conversation_id = $1 ORDER BY 1`, conv)
	if !slices.Equal(gotEvidence, wantEvidence) {
		t.Errorf("evidence in %s = %q, want %q", conv, gotEvidence, wantEvidence)
	}
	gotInsights := e.texts(t, `
		SELECT concat_ws('|', user_id, layer, layer_name, text, CASE WHEN invalidated_at IS NULL THEN 'active' ELSE 'invalidated' END)
		  FROM conversation_insights
		 WHERE insight_id IN (SELECT insight_id FROM insight_evidence WHERE conversation_id = $1) ORDER BY 1`, conv)
	if !slices.Equal(gotInsights, wantInsights) {
		t.Errorf("insights learned from %s = %q, want %q", conv, gotInsights, wantInsights)
	}
	job := e.texts(t, `SELECT concat_ws('|', user_id, status, reason, messages, added, reinforced, updated, invalidated,
		request_id IS NOT NULL, cost_nano) FROM synthesis_jobs WHERE conversation_id = $1`, conv)
	wantJob := fmt.Sprintf("%s|done||%d|%d|0|0|0|t|%d", user, len(dialogue), len(learned), e.oneCallCost(t))
	if len(job) != 1 || job[0] != wantJob {
		t.Errorf("synthesis_jobs of %s = %q, want [%q]", conv, job, wantJob)
	}
	c := e.texts(t, `SELECT concat_ws('|', synthesized_seq, summary_through_seq, summary, synthesis_until IS NULL)
		FROM conversations WHERE conversation_id = $1`, conv)
	if want := fmt.Sprintf("%d|%d|%s|t", len(dialogue), len(dialogue), learnedSummary); len(c) != 1 || c[0] != want {
		t.Errorf("conversation %s = %q, want [%q] (synthesized, summarized, lease ended)", conv, c, want)
	}
}

// wantUntouched checks nothing was learned from conv and no lease is left on it.
func (e *env) wantUntouched(t *testing.T, conv string) {
	t.Helper()
	if n := e.count(t, `SELECT count(*) FROM insight_evidence WHERE conversation_id = $1`, conv); n != 0 {
		t.Errorf("%d evidence rows in %s, want none", n, conv)
	}
	if n := e.count(t, `SELECT count(*) FROM synthesis_jobs WHERE conversation_id = $1`, conv); n != 0 {
		t.Errorf("%d synthesis_jobs rows for %s, want none", n, conv)
	}
	c := e.texts(t, `SELECT concat_ws('|', synthesized_seq, summary, synthesis_until IS NULL) FROM conversations WHERE conversation_id = $1`, conv)
	if len(c) != 1 || c[0] != "0||t" {
		t.Errorf("conversation %s = %q, want [0||t] (nothing synthesized, no lease held)", conv, c)
	}
}

// wantCalls checks how many requests each provider server received.
func (e *env) wantCalls(t *testing.T, gemini, deepseek, claude int) {
	t.Helper()
	if g, d, c := e.gemini.Count(), e.deepseek.Count(), e.claude.Count(); g != gemini || d != deepseek || c != claude {
		t.Errorf("provider requests: gemini %d, deepseek %d, claude %d; want %d, %d, %d", g, d, c, gemini, deepseek, claude)
	}
}

// wantCharged checks ai_operation_log holds n successful memory_synthesis calls of user's, and
// nothing else, and that the user's budget was charged exactly their cost.
func (e *env) wantCharged(t *testing.T, user string, n int) {
	t.Helper()
	cost := e.oneCallCost(t)
	rows := e.texts(t, `SELECT concat_ws('|', operation_id, user_id, model_used, provider, success, cost_nano) FROM ai_operation_log ORDER BY id`)
	want := slices.Repeat([]string{fmt.Sprintf("memory_synthesis|%s|gemini_flash|gemini|t|%d", user, cost)}, n)
	if !slices.Equal(rows, want) {
		t.Errorf("ai_operation_log = %q, want %q", rows, want)
	}
	if d := e.today(t, user); d.Spent != money.Nano(n)*cost || d.Reserved != 0 {
		t.Errorf("budget: spent %s, reserved %s; want %s (%d × %s) and nothing held", d.Spent, d.Reserved, money.Nano(n)*cost, n, cost)
	}
}

// loadSample reads the sample event; every key must be one of the event type's.
func loadSample(t testing.TB) ([]byte, events.SQSEvent) {
	t.Helper()
	raw, err := os.ReadFile(sampleBatch)
	if err != nil {
		t.Fatal(err)
	}
	var ev events.SQSEvent
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&ev); err != nil {
		t.Fatalf("%s is not an SQS event: %v", sampleBatch, err)
	}
	if len(ev.Records) < 3 {
		t.Fatalf("%s has %d records; these tests need 3", sampleBatch, len(ev.Records))
	}
	return raw, ev
}

// jobOf parses a sample record's body.
func jobOf(t testing.TB, r events.SQSMessage) synthesis.Job {
	t.Helper()
	j, err := synthesis.ParseJob([]byte(r.Body))
	if err != nil {
		t.Fatalf("record %s: %v", r.MessageId, err)
	}
	return j
}

// seedSample seeds the conversation of every sample record and returns the sample.
func (e *env) seedSample(t *testing.T) ([]byte, events.SQSEvent) {
	t.Helper()
	raw, ev := loadSample(t)
	for _, r := range ev.Records {
		j := jobOf(t, r)
		e.seed(t, j.UserID, j.ConversationID)
	}
	return raw, ev
}

// redelivered is record r delivered again: the same message, with a new receipt handle and a
// higher receive count, as SQS redelivers it. A new id makes it another message with that body.
func redelivered(r events.SQSMessage, id string, receive int) events.SQSMessage {
	attrs := make(map[string]string, len(r.Attributes)+1)
	for k, v := range r.Attributes {
		attrs[k] = v
	}
	r.Attributes = attrs
	if id != "" {
		r.MessageId = id
	}
	r.ReceiptHandle = "AQEB" + strings.ReplaceAll(uuid.NewString(), "-", "")
	r.Attributes["ApproximateReceiveCount"] = strconv.Itoa(receive)
	return r
}

// withBody is r carrying body, its MD5 updated as SQS computes it.
func withBody(r events.SQSMessage, body string) events.SQSMessage {
	sum := md5.Sum([]byte(body))
	r.Body, r.Md5OfBody = body, hex.EncodeToString(sum[:])
	return r
}

// batch is an SQS event of records, as JSON.
func batch(t testing.TB, records ...events.SQSMessage) []byte {
	t.Helper()
	b, err := json.Marshal(events.SQSEvent{Records: records})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestEventFiles checks the sample event is what Lambda delivers from the synthesis queue: every
// key known to events.SQSEvent, the attributes Lambda always sends, a body that is a job, its MD5,
// and the job_key attribute the producer (sqsqueue) sets.
func TestEventFiles(t *testing.T) {
	_, ev := loadSample(t)
	seen := map[string]bool{}
	for i, r := range ev.Records {
		name := fmt.Sprintf("record %d (%s)", i, r.MessageId)
		if r.EventSource != "aws:sqs" {
			t.Errorf("%s: eventSource %q, want aws:sqs", name, r.EventSource)
		}
		if uuid.Validate(r.MessageId) != nil || seen[r.MessageId] {
			t.Errorf("%s: messageId must be a UUID, unique in the batch", name)
		}
		seen[r.MessageId] = true
		if r.ReceiptHandle == "" {
			t.Errorf("%s: no receiptHandle", name)
		}
		if n, err := strconv.Atoi(r.Attributes["ApproximateReceiveCount"]); err != nil || n < 1 {
			t.Errorf("%s: attributes.ApproximateReceiveCount %q, want a count ≥ 1", name, r.Attributes["ApproximateReceiveCount"])
		}
		for _, k := range []string{"SentTimestamp", "SenderId", "ApproximateFirstReceiveTimestamp"} {
			if r.Attributes[k] == "" {
				t.Errorf("%s: attributes.%s missing", name, k)
			}
		}
		arn := strings.Split(r.EventSourceARN, ":")
		if len(arn) != 6 || arn[0] != "arn" || arn[2] != "sqs" || arn[3] != r.AWSRegion || arn[3] == "" {
			t.Errorf("%s: eventSourceARN %q is not an SQS queue's ARN in awsRegion %q", name, r.EventSourceARN, r.AWSRegion)
		}
		if sum := md5.Sum([]byte(r.Body)); hex.EncodeToString(sum[:]) != r.Md5OfBody {
			t.Errorf("%s: md5OfBody %s does not match the body", name, r.Md5OfBody)
		}
		j, err := synthesis.ParseJob([]byte(r.Body))
		if err != nil {
			t.Errorf("%s: body is not a synthesis job: %v", name, err)
			continue
		}
		if a := r.MessageAttributes[sqsqueue.JobKeyAttribute]; a.DataType != "String" || a.StringValue == nil || *a.StringValue != sqsqueue.JobKey(j) {
			t.Errorf("%s: messageAttributes.%s = %+v, want the String %q", name, sqsqueue.JobKeyAttribute, a, sqsqueue.JobKey(j))
		}
	}
}

// TestSampleBatch invokes the function with the sample batch, unchanged and with its second
// record's body broken in each way a body can be: a bad record is the only one reported failed,
// and the good ones are learned from, each with one model call charged.
func TestSampleBatch(t *testing.T) {
	_, sample := loadSample(t)
	good := jobOf(t, sample.Records[1]) // the conversation the broken body was meant to name
	tests := []struct {
		name string
		body string // the second record's body; "" keeps it
	}{
		{name: "every record good"},
		{name: "not JSON", body: `{"conversation_id":"` + good.ConversationID + `","user_id":`},
		{name: "blank body", body: " "}, // SQS bodies have at least one character
		{name: "a JSON array", body: `[{"conversation_id":"` + good.ConversationID + `","user_id":"alice","through_seq":5}]`},
		{name: "unknown field", body: `{"conversation_id":"` + good.ConversationID + `","user_id":"alice","through_seq":5,"priority":"high"}`},
		{name: "conversation_id not a UUID", body: `{"conversation_id":"b3a91d07","user_id":"alice","through_seq":5}`},
		{name: "no user_id", body: `{"conversation_id":"` + good.ConversationID + `","through_seq":5}`},
		{name: "through_seq zero", body: `{"conversation_id":"` + good.ConversationID + `","user_id":"alice","through_seq":0}`},
		{name: "through_seq a string", body: `{"conversation_id":"` + good.ConversationID + `","user_id":"alice","through_seq":"5"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, nil)
			raw, ev := e.seedSample(t)
			payload := raw // the file itself, as the runtime would pass it
			var wantFailed []string
			if tt.body != "" {
				ev.Records[1] = withBody(ev.Records[1], tt.body)
				payload = batch(t, ev.Records...)
				wantFailed = []string{ev.Records[1].MessageId}
			}
			failed := e.deliver(t, payload)
			if !slices.Equal(failed, wantFailed) {
				t.Fatalf("batchItemFailures = %v, want %v", failed, wantFailed)
			}
			learnedFrom := 0
			for i, r := range sample.Records {
				j := jobOf(t, r)
				if i == 1 && tt.body != "" {
					e.wantUntouched(t, j.ConversationID)
					continue
				}
				e.wantLearned(t, j.UserID, j.ConversationID)
				learnedFrom++
			}
			e.wantCalls(t, learnedFrom, 0, 0)
			e.wantCharged(t, good.UserID, learnedFrom)
			for _, req := range e.gemini.Requests() {
				if !strings.Contains(req.Path, "/models/gemini-2.5-flash-lite:generateContent") {
					t.Errorf("model request to %s, want memory_synthesis's model, gemini-2.5-flash-lite", req.Path)
				}
				if !strings.Contains(string(req.Body), dialogue[2].content) {
					t.Errorf("model request does not carry the conversation's messages: %s", req.Body)
				}
			}
			if tt.body != "" {
				errs := e.failureErrors(t)[wantFailed[0]]
				if len(errs) != 1 || !strings.Contains(errs[0], "job") {
					t.Errorf("log of the bad record %s: %q, want one line saying the job is invalid", wantFailed[0], errs)
				}
			}
		})
	}
}

// TestRedeliveryWritesOnce: a job delivered again, in another invocation or in the same batch,
// finds its record and writes nothing, calls no model and charges nothing.
func TestRedeliveryWritesOnce(t *testing.T) {
	_, sample := loadSample(t)
	first := sample.Records[0]
	tests := []struct {
		name       string
		deliveries [][]events.SQSMessage // invocations, in order
		jobs       int                   // distinct jobs among them
	}{
		{name: "the same message in two invocations", jobs: 1, deliveries: [][]events.SQSMessage{
			{first}, {redelivered(first, "", 2)},
		}},
		{name: "two messages of the job in one batch", jobs: 1, deliveries: [][]events.SQSMessage{
			{first, redelivered(first, uuid.NewString(), 1)},
		}},
		{name: "the sample batch in two invocations", jobs: len(sample.Records), deliveries: [][]events.SQSMessage{
			sample.Records,
			{redelivered(sample.Records[0], "", 2), redelivered(sample.Records[1], "", 2), redelivered(sample.Records[2], "", 2)},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, nil)
			e.seedSample(t)
			user := jobOf(t, first).UserID
			if failed := e.deliver(t, batch(t, tt.deliveries[0]...)); len(failed) != 0 {
				t.Fatalf("first delivery: batchItemFailures = %v, want none", failed)
			}
			after := e.state(t, user)
			for n, recs := range tt.deliveries[1:] {
				if failed := e.deliver(t, batch(t, recs...)); len(failed) != 0 {
					t.Errorf("redelivery %d: batchItemFailures = %v, want none (a done job is acknowledged)", n+1, failed)
				}
			}
			wantSameState(t, "by the redelivery", e.state(t, user), after)
			for _, r := range sample.Records[:tt.jobs] {
				j := jobOf(t, r)
				e.wantLearned(t, j.UserID, j.ConversationID)
			}
			if n := e.count(t, `SELECT count(*) FROM conversation_insights`); n != tt.jobs*len(learned) {
				t.Errorf("%d insights, want %d (%d per job, once)", n, tt.jobs*len(learned), len(learned))
			}
			e.wantCalls(t, tt.jobs, 0, 0)
			e.wantCharged(t, user, tt.jobs)
		})
	}
}

// heldProviders holds every model call until gate closes: a run stays between its claim and its
// commit for as long as the test wants.
type heldProviders struct {
	execute.Providers
	gate <-chan struct{}
}

func (h heldProviders) Get(name string) (llm.Provider, bool) {
	p, ok := h.Providers.Get(name)
	if !ok {
		return nil, false
	}
	return heldProvider{Provider: p, gate: h.gate}, true
}

type heldProvider struct {
	llm.Provider
	gate <-chan struct{}
}

func (h heldProvider) Complete(ctx context.Context, req llm.Request) (llm.Response, error) {
	select {
	case <-h.gate:
	case <-ctx.Done():
		return llm.Response{}, ctx.Err()
	}
	return h.Provider.Complete(ctx, req)
}

// TestConcurrentDeliveries: ten deliveries of one job at once write its insights once and
// charge one model call. Process documents the outcome for a delivery that finds the job claimed
// by another run: an error (synthesis.ErrBusy), so the record is reported failed and SQS
// delivers it again; once the run is done, that redelivery is acknowledged and writes nothing.
// With the model call held until the nine others have answered, all nine must be busy; running
// free, any number may be (the rest find the job done, or nothing new), but only ever busy.
func TestConcurrentDeliveries(t *testing.T) {
	const deliveries = 10
	for _, held := range []bool{true, false} {
		name := "free-running"
		if held {
			name = "model call held until the others answered"
		}
		t.Run(name, func(t *testing.T) {
			gate := make(chan struct{})
			var once sync.Once
			release := func() { once.Do(func() { close(gate) }) }
			wrap := func(p execute.Providers) execute.Providers { return heldProviders{Providers: p, gate: gate} }
			if !held {
				release()
			}
			e := newEnv(t, wrap)
			_, sample := loadSample(t)
			job := jobOf(t, sample.Records[0])
			e.seed(t, job.UserID, job.ConversationID)

			recs := make([]events.SQSMessage, deliveries)
			for i := range recs {
				recs[i] = redelivered(sample.Records[0], uuid.NewString(), 1)
			}
			type result struct {
				id     string
				failed []string
				err    error
			}
			results := make(chan result, deliveries)
			start := make(chan struct{})
			var wg sync.WaitGroup
			defer wg.Wait()
			defer release() // a failed test must not leave a run held
			for _, r := range recs {
				payload := batch(t, r)
				wg.Add(1)
				go func() {
					defer wg.Done()
					<-start
					failed, err := e.invoke(context.Background(), payload)
					results <- result{r.MessageId, failed, err}
				}()
			}
			close(start)

			var got []result
			receive := func(n int) {
				for range n {
					select {
					case r := <-results:
						if r.err != nil {
							t.Fatal(r.err)
						}
						got = append(got, r)
					case <-time.After(60 * time.Second):
						t.Fatalf("only %d of %d deliveries answered while one model call was held: more than one run got past the claim", len(got), deliveries)
					}
				}
			}
			if held {
				receive(deliveries - 1)
				for _, r := range got {
					if !slices.Equal(r.failed, []string{r.id}) {
						t.Errorf("delivery %s while the job was claimed elsewhere: batchItemFailures = %v, want itself", r.id, r.failed)
					}
				}
				release()
				receive(1)
				if w := got[deliveries-1]; len(w.failed) != 0 {
					t.Errorf("the delivery that ran the job: batchItemFailures = %v, want none", w.failed)
				}
			} else {
				receive(deliveries)
			}

			var failed []events.SQSMessage
			byID := map[string]events.SQSMessage{}
			for _, r := range recs {
				byID[r.MessageId] = r
			}
			for _, r := range got {
				for _, id := range r.failed {
					if id != r.id {
						t.Errorf("delivery %s reported %s failed, a record it did not carry", r.id, id)
					}
					failed = append(failed, byID[id])
				}
			}
			if len(failed) == deliveries {
				t.Fatalf("every delivery failed: the job was never run")
			}
			errs := e.failureErrors(t)
			for _, r := range failed {
				if l := errs[r.MessageId]; len(l) != 1 || !strings.Contains(l[0], synthesis.ErrBusy.Error()) {
					t.Errorf("delivery %s failed with %q, want only %q", r.MessageId, l, synthesis.ErrBusy)
				}
			}
			t.Logf("%d of %d deliveries found the job claimed elsewhere", len(failed), deliveries)

			e.wantLearned(t, job.UserID, job.ConversationID)
			e.wantCalls(t, 1, 0, 0)
			e.wantCharged(t, job.UserID, 1)
			settled := e.state(t, job.UserID)

			// SQS delivers the failed ones again: acknowledged, nothing new.
			if len(failed) > 0 {
				again := make([]events.SQSMessage, len(failed))
				for i, r := range failed {
					again[i] = redelivered(r, "", 2)
				}
				if f := e.deliver(t, batch(t, again...)); len(f) != 0 {
					t.Errorf("redelivering the failed deliveries: batchItemFailures = %v, want none", f)
				}
			}
			// And once more, the job's first message.
			if f := e.deliver(t, batch(t, redelivered(recs[0], "", 3))); len(f) != 0 {
				t.Errorf("one more delivery: batchItemFailures = %v, want none", f)
			}
			wantSameState(t, "by redelivering after the deliveries settled", e.state(t, job.UserID), settled)
			e.wantCalls(t, 1, 0, 0)
		})
	}
}

// TestOverBudget: a user whose budget cannot cover the call gets no synthesis; the job is
// acknowledged (not failed, so SQS does not retry it until it dead-letters), recorded skipped
// as over_budget, and logged; no provider is called. Once the budget allows, the same job runs.
func TestOverBudget(t *testing.T) {
	e := newEnv(t, nil)
	_, sample := loadSample(t)
	rec := sample.Records[0]
	job := jobOf(t, rec)
	e.seed(t, job.UserID, job.ConversationID)
	tiny := money.Nano(1000) // a millionth of a dollar: far below the call's worst case
	if _, err := e.core.Ledger().SetLimits(t.Context(), job.UserID, budget.Limits{DailyLimit: tiny, Warning: tiny}, "test"); err != nil {
		t.Fatal(err)
	}

	for n := 1; n <= 2; n++ {
		if failed := e.deliver(t, batch(t, redelivered(rec, "", n))); len(failed) != 0 {
			t.Fatalf("delivery %d over budget: batchItemFailures = %v, want none (the job is recorded skipped, not retried)", n, failed)
		}
		jobs := e.texts(t, `SELECT concat_ws('|', status, reason, added, cost_nano) FROM synthesis_jobs WHERE conversation_id = $1`, job.ConversationID)
		if !slices.Equal(jobs, []string{"skipped|over_budget|0|0"}) {
			t.Errorf("delivery %d: synthesis_jobs = %q, want [skipped|over_budget|0|0]", n, jobs)
		}
		if i := e.count(t, `SELECT count(*) FROM conversation_insights`); i != 0 {
			t.Errorf("delivery %d: %d insights, want none", n, i)
		}
		c := e.texts(t, `SELECT concat_ws('|', synthesized_seq, summary, synthesis_until IS NULL) FROM conversations WHERE conversation_id = $1`, job.ConversationID)
		if !slices.Equal(c, []string{"0||t"}) {
			t.Errorf("delivery %d: conversation = %q, want [0||t] (nothing synthesized, lease ended)", n, c)
		}
		calls := e.texts(t, `SELECT concat_ws('|', operation_id, user_id, success, error_code, cost_nano) FROM ai_operation_log ORDER BY id`)
		want := slices.Repeat([]string{"memory_synthesis|" + job.UserID + "|f|budget_exceeded|0"}, n)
		if !slices.Equal(calls, want) {
			t.Errorf("delivery %d: ai_operation_log = %q, want %q", n, calls, want)
		}
		e.wantCalls(t, 0, 0, 0)
		if d := e.today(t, job.UserID); d.Spent != 0 || d.Reserved != 0 {
			t.Errorf("delivery %d: spent %s, reserved %s; want nothing", n, d.Spent, d.Reserved)
		}
	}
	if !e.logged("synthesis skipped", map[string]string{"conversation_id": job.ConversationID, "reason": "over_budget"}) {
		t.Errorf("the skip is not logged with its reason:\n%s", e.log.String())
	}
	if errs := e.failureErrors(t); len(errs) != 0 {
		t.Errorf("records logged failed: %v", errs)
	}

	// Not lost: with the budget raised, the job runs and its record turns done.
	if _, err := e.core.Ledger().SetLimits(t.Context(), job.UserID, budget.Limits{DailyLimit: money.MustUSD(5), Warning: money.MustUSD(4)}, "test"); err != nil {
		t.Fatal(err)
	}
	if failed := e.deliver(t, batch(t, redelivered(rec, "", 3))); len(failed) != 0 {
		t.Fatalf("delivery within budget: batchItemFailures = %v, want none", failed)
	}
	e.wantLearned(t, job.UserID, job.ConversationID)
	e.wantCalls(t, 1, 0, 0)
}

// TestProviderFailure: when every model of memory_synthesis's chain fails (Gemini, DeepSeek, then
// Claude, each answering 500 to every attempt), the record is reported failed so SQS delivers it
// again, and nothing is written: no insight, no job record, no charge, and the conversation's
// lease is given back so the redelivery is not turned away as busy. It then succeeds.
func TestProviderFailure(t *testing.T) {
	e := newEnv(t, nil)
	_, sample := loadSample(t)
	rec := sample.Records[0]
	job := jobOf(t, rec)
	e.seed(t, job.UserID, job.ConversationID)
	for _, s := range []*llmtest.Server{e.gemini, e.deepseek, e.claude} {
		s.SetDefault(llmtest.Error(500, "internal error"))
	}

	failed := e.deliver(t, batch(t, rec))
	if !slices.Equal(failed, []string{rec.MessageId}) {
		t.Fatalf("batchItemFailures = %v, want [%s] so SQS delivers it again", failed, rec.MessageId)
	}
	e.wantUntouched(t, job.ConversationID)
	if n := e.count(t, `SELECT count(*) FROM conversation_insights`); n != 0 {
		t.Errorf("%d insights after the providers failed, want none", n)
	}
	if n := e.count(t, `SELECT count(*) FROM synthesis_jobs`); n != 0 {
		t.Errorf("%d synthesis_jobs rows after the providers failed, want none", n)
	}
	for name, s := range map[string]*llmtest.Server{"gemini": e.gemini, "deepseek": e.deepseek, "claude": e.claude} {
		if s.Count() == 0 {
			t.Errorf("%s was not tried: the chain is primary, fallback, emergency", name)
		}
	}
	calls := e.texts(t, `SELECT concat_ws('|', operation_id, success, error_code, cost_nano) FROM ai_operation_log ORDER BY id`)
	if !slices.Equal(calls, []string{"memory_synthesis|f|providers_unavailable|0"}) {
		t.Errorf("ai_operation_log = %q, want one failed memory_synthesis call, charged nothing", calls)
	}
	if d := e.today(t, job.UserID); d.Spent != 0 || d.Reserved != 0 {
		t.Errorf("spent %s, reserved %s after the failure; want nothing", d.Spent, d.Reserved)
	}
	if errs := e.failureErrors(t)[rec.MessageId]; len(errs) != 1 || !strings.Contains(errs[0], "no model provider could serve") {
		t.Errorf("failure logged as %q, want the providers' failure", errs)
	}

	// SQS delivers it again once Gemini is back: learned, charged once.
	e.gemini.SetDefault(llmtest.OK(synthesisAnswer(t)).WithUsage(callUsage))
	before := e.gemini.Count()
	if failed := e.deliver(t, batch(t, redelivered(rec, "", 2))); len(failed) != 0 {
		t.Fatalf("redelivery after recovery: batchItemFailures = %v, want none", failed)
	}
	e.wantLearned(t, job.UserID, job.ConversationID)
	if n := e.gemini.Count() - before; n != 1 {
		t.Errorf("%d Gemini requests on redelivery, want 1", n)
	}
	if n := e.count(t, `SELECT count(*) FROM ai_operation_log WHERE success AND operation_id = 'memory_synthesis'`); n != 1 {
		t.Errorf("%d successful memory_synthesis calls logged, want 1", n)
	}
	if d := e.today(t, job.UserID); d.Spent != e.oneCallCost(t) || d.Reserved != 0 {
		t.Errorf("spent %s, reserved %s; want one call's %s", d.Spent, d.Reserved, e.oneCallCost(t))
	}
}

// sweepQueue is the queue the sweep sends to in TestLongStretchIsLearnedToTheEnd.
type sweepQueue struct{ jobs []synthesis.Job }

func (q *sweepQueue) Enqueue(_ context.Context, j synthesis.Job) error {
	q.jobs = append(q.jobs, j)
	return nil
}

// TestLongStretchIsLearnedToTheEnd: a run learns at most Policy.MaxMessages messages, and one
// delivery makes at most Policy.MaxParts runs; what is left is recorded partial and the sweep
// sends the job again. Either way nothing is lost: once the delivery and the sweep have run,
// every message up to the job's through_seq is learned from, each part charged once, and the
// sweep has nothing left to send.
func TestLongStretchIsLearnedToTheEnd(t *testing.T) {
	tests := []struct {
		name       string
		maxParts   int
		afterFirst string // synthesized_seq and the job's record after the first delivery
	}{
		{name: "both parts in one delivery", maxParts: 2, afterFirst: "5|done|"},
		{name: "one part per delivery, the sweep sends the rest", maxParts: 1, afterFirst: "3|skipped|partial"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, nil)
			e.proc.Policy.MaxMessages = 3 // the dialogue's 5 messages are learned in two parts
			e.proc.Policy.MaxParts = tt.maxParts
			e.proc.Policy.Stale = 0 // a job sent and not completed is due again at once
			_, sample := loadSample(t)
			rec := sample.Records[0]
			job := jobOf(t, rec)
			e.seed(t, job.UserID, job.ConversationID)
			// The first part (messages 1 to 3) gets the usual answer; the second (4 and 5) its own.
			second := `{"summary":"` + learnedSummary + ` They will take the train to Sintra.","actions":[` +
				`{"action":"add","layer":5,"text":"Likes day trips by train","confidence":0.6,"evidence":[5]}]}`
			e.gemini.Script(llmtest.OK(synthesisAnswer(t)).WithUsage(callUsage), llmtest.OK(second).WithUsage(callUsage))
			progress := func() string {
				got := e.texts(t, `SELECT concat_ws('|', c.synthesized_seq, j.status, j.reason)
					FROM conversations c LEFT JOIN synthesis_jobs j USING (conversation_id) WHERE c.conversation_id = $1`, job.ConversationID)
				return strings.Join(got, ",")
			}

			if failed := e.deliver(t, batch(t, rec)); len(failed) != 0 {
				t.Fatalf("batchItemFailures = %v, want none", failed)
			}
			if got := progress(); got != tt.afterFirst {
				t.Errorf("after the delivery: %q, want %q", got, tt.afterFirst)
			}
			for round := 1; round <= 3; round++ {
				q := &sweepQueue{}
				if _, err := e.proc.Sweep(t.Context(), q, 10); err != nil {
					t.Fatal(err)
				}
				if len(q.jobs) == 0 {
					break
				}
				for _, j := range q.jobs {
					if j != job {
						t.Errorf("sweep round %d sent %+v, want the job %+v again", round, j, job)
					}
					if failed := e.deliver(t, batch(t, withBody(redelivered(rec, uuid.NewString(), 1), string(j.Body())))); len(failed) != 0 {
						t.Fatalf("sweep round %d: batchItemFailures = %v, want none", round, failed)
					}
				}
			}
			if got := progress(); got != "5|done|" {
				t.Errorf("after the sweep: %q, want 5|done| (every message learned from, the job done)", got)
			}
			ev := e.texts(t, `SELECT concat_ws('|', i.text, v.seq) FROM insight_evidence v JOIN conversation_insights i USING (insight_id)
				WHERE v.conversation_id = $1 ORDER BY v.seq, i.text`, job.ConversationID)
			want := []string{"Plans a trip to Lisbon in May|1", "Plans a trip to Lisbon in May|3", "Travels with her sister Maria|3", "Likes day trips by train|5"}
			if !slices.Equal(ev, want) {
				t.Errorf("evidence = %q, want %q", ev, want)
			}
			e.wantCalls(t, 2, 0, 0)
			e.wantCharged(t, job.UserID, 2)
			q := &sweepQueue{}
			if _, err := e.proc.Sweep(t.Context(), q, 10); err != nil {
				t.Fatal(err)
			}
			if len(q.jobs) != 0 {
				t.Errorf("the sweep still sends %v for a conversation learned to its end", q.jobs)
			}
		})
	}
}

// FuzzRecordBody sends one record with any body through the function, on a database with no
// conversations: the invocation never fails, the record is reported failed exactly when its body
// is not a valid job, and nothing is written or called (a valid job names a conversation that
// does not exist, which is acknowledged).
func FuzzRecordBody(f *testing.F) {
	_, sample := loadSample(f)
	for _, r := range sample.Records {
		f.Add(r.Body)
	}
	for _, s := range []string{
		"", "null", "{}", "[]", `"job"`, "{\"conversation_id\":", `{"conversation_id":"7c0e3f52-9a41-4d8b-b7e2-3f1c5a9d2e64","user_id":"alice","through_seq":5,"x":1}`,
		`{"conversation_id":"7c0e3f52-9a41-4d8b-b7e2-3f1c5a9d2e64","user_id":"","through_seq":5}`,
		`{"conversation_id":"7c0e3f52-9a41-4d8b-b7e2-3f1c5a9d2e64","user_id":"alice","through_seq":-1}`,
		`{"conversation_id":"7c0e3f52-9a41-4d8b-b7e2-3f1c5a9d2e64","user_id":"alice","through_seq":1e3}`,
		`{"conversation_id":"7C0E3F52-9A41-4D8B-B7E2-3F1C5A9D2E64","user_id":"alice","through_seq":9223372036854775807}`,
		`{"conversation_id":"7c0e3f52-9a41-4d8b-b7e2-3f1c5a9d2e64","user_id":"al ice\u0000","through_seq":5}`,
		`{"conversation_id":"7c0e3f52-9a41-4d8b-b7e2-3f1c5a9d2e64","user_id":"alice","through_seq":5} {"more":1}`,
		"\xff\xfe",
	} {
		f.Add(s)
	}
	e := newEnv(f, nil)
	f.Fuzz(func(t *testing.T, body string) {
		payload := batch(t, withBody(sample.Records[0], body))
		failed, err := e.invoke(context.Background(), payload)
		if err != nil {
			t.Fatal(err)
		}
		// The body as the handler gets it (JSON carries invalid UTF-8 as U+FFFD).
		var ev events.SQSEvent
		if err := json.Unmarshal(payload, &ev); err != nil {
			t.Fatal(err)
		}
		rec := ev.Records[0]
		_, perr := synthesis.ParseJob([]byte(rec.Body))
		if wantFailed := perr != nil; len(failed) > 1 || (len(failed) == 1 && failed[0] == rec.MessageId) != wantFailed {
			t.Fatalf("body %q (parse error %v): batchItemFailures = %v", rec.Body, perr, failed)
		}
		var n int
		if err := e.core.Pool.QueryRow(context.Background(), `
			SELECT (SELECT count(*) FROM conversation_insights) + (SELECT count(*) FROM synthesis_jobs)
			     + (SELECT count(*) FROM ai_operation_log)`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != 0 || e.gemini.Count() != 0 {
			t.Fatalf("body %q: %d rows written and %d model calls for a job of no conversation, want none", rec.Body, n, e.gemini.Count())
		}
	})
}
