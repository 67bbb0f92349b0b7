package synthesisapp_test

// The memory scenario of issue 7, end to end on one fresh Postgres database: the chat function's
// HTTP API (chatapp.Mount on an httpapp server, as functions/chat builds it) over a synthesis
// queue that records jobs, which the test hands to the real synthesis processor
// (synthesisapp.NewProcessor) one by one, so every step is deterministic. The real provider
// adapters talk to local servers that speak the providers' wire formats: DeepSeek answers
// chat_message (its primary model), Gemini answers memory_synthesis (its primary model) with
// the structured JSON the processor asks for, and Claude, the emergency fallback, must never be
// called. What the tests assert on is what those servers received: the chat system prompts and
// the synthesis prompts.

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/helixhq/helix/shared/apitest"
	"github.com/helixhq/helix/shared/app/chatapp"
	"github.com/helixhq/helix/shared/app/synthesisapp"
	"github.com/helixhq/helix/shared/httpapi/chatapi"
	"github.com/helixhq/helix/shared/llm"
	"github.com/helixhq/helix/shared/llm/anthropic"
	"github.com/helixhq/helix/shared/llm/gemini"
	"github.com/helixhq/helix/shared/llm/llmtest"
	"github.com/helixhq/helix/shared/llm/openaicompat"
	"github.com/helixhq/helix/shared/memory"
	"github.com/helixhq/helix/shared/postgres/memorystore"
	"github.com/helixhq/helix/shared/synthesis"

	"github.com/jackc/pgx/v5/pgxpool"
)

// The API keys the wire servers insist on, so the adapters are seen sending them.
const deepSeekKey, geminiKey, anthropicKey = "ds-key", "gm-key", "an-key"

// The heading chat.SystemPrompt puts above the learned insights.
const memoryHeading = "What you know about the user from earlier conversations:"

var tokens = apitest.Tokens{
	Secret:   "synthesisapp-memory-e2e-test-secret-0123456789",
	Issuer:   "https://auth.helix.test/memory",
	Audience: "helix-memory-test",
}

var uuidPattern = regexp.MustCompile(`(?i)[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}`)

// recordingQueue is the synthesis queue of these tests: it keeps the jobs the chat function
// enqueues until the test hands them to the processor.
type recordingQueue struct {
	mu   sync.Mutex
	jobs []synthesis.Job
}

var _ synthesis.Queue = (*recordingQueue)(nil)

func (q *recordingQueue) Enqueue(_ context.Context, j synthesis.Job) error {
	if err := j.Validate(); err != nil {
		return err
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	q.jobs = append(q.jobs, j)
	return nil
}

// take returns the jobs queued so far and empties the queue.
func (q *recordingQueue) take() []synthesis.Job {
	q.mu.Lock()
	defer q.mu.Unlock()
	jobs := q.jobs
	q.jobs = nil
	return jobs
}

func (q *recordingQueue) len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.jobs)
}

// env is the chat function served over HTTP and the synthesis processor, on one database.
type env struct {
	pool                     *pgxpool.Pool
	url                      string
	queue                    *recordingQueue
	proc                     *synthesis.Processor
	deepSeek, gemini, claude *llmtest.Server
}

func newEnv(t *testing.T) *env {
	t.Helper()
	pool := pg.NewPool(t)
	e := &env{pool: pool, queue: &recordingQueue{},
		deepSeek: llmtest.NewOpenAI(t), gemini: llmtest.NewGemini(t), claude: llmtest.NewAnthropic(t)}
	e.deepSeek.RequireAPIKey(deepSeekKey)
	e.gemini.RequireAPIKey(geminiKey)
	e.claude.RequireAPIKey(anthropicKey)
	e.deepSeek.SetDefault(llmtest.OK("Noted, thank you for telling me."))
	// A synthesis request the test did not script gets an answer that fails validation (and its
	// repair too), so it cannot pass unnoticed.
	e.gemini.SetDefault(llmtest.OK("not scripted"))
	gp, err := gemini.New(context.Background(), gemini.Config{BaseURL: e.gemini.URL, APIKey: geminiKey})
	if err != nil {
		t.Fatal(err)
	}
	providers := llm.NewRegistry(
		openaicompat.New(openaicompat.Config{Name: "deepseek", BaseURL: e.deepSeek.URL, APIKey: deepSeekKey}),
		gp,
		anthropic.New(anthropic.Config{BaseURL: e.claude.URL, APIKey: anthropicKey}),
	)

	// As functions/chat's newHandler builds it.
	a := apitest.NewApp(t, tokens, pool, apitest.Log(t))
	srv := a.NewServer(chatapp.MaintenanceExempt...)
	notifier := chatapp.Mount(a, srv, providers, e.queue)
	t.Cleanup(notifier.Close)
	e.url = apitest.Serve(t, srv) // closed before the notifier, the pool and the wire servers

	e.proc = synthesisapp.NewProcessor(a.Core, a.Toggles, providers)
	t.Cleanup(func() {
		if n := e.claude.Count(); n != 0 {
			t.Errorf("the emergency model got %d requests: a primary call failed", n)
		}
	})
	return e
}

func token(t *testing.T, user string) string { return tokens.Token(t, user, nil) }

func (e *env) do(t *testing.T, method, path, tok, body string) apitest.Response {
	t.Helper()
	return apitest.SendJSON(t, apitest.NewRequest(t, method, e.url+path, tok, apitest.Body(body)))
}

func (e *env) createSession(t *testing.T, tok, title string) string {
	t.Helper()
	res := e.do(t, http.MethodPost, "/chat/sessions", tok, fmt.Sprintf(`{"title":%q}`, title))
	res.WantStatus(t, http.StatusCreated)
	var s chatapi.SessionView
	res.Decode(t, &s)
	return s.ID
}

// send posts a user message and returns the exchange and the system prompt the chat model was
// sent for its reply.
func (e *env) send(t *testing.T, tok, session, content string) (chatapi.ExchangeView, string) {
	t.Helper()
	before := e.deepSeek.Count()
	body, _ := json.Marshal(chatapi.MessageSend{Content: content, ClientMessageID: uuid.NewString()})
	res := e.do(t, http.MethodPost, "/chat/sessions/"+session+"/messages", tok, string(body))
	res.WantStatus(t, http.StatusCreated)
	var ex chatapi.ExchangeView
	res.Decode(t, &ex)
	if ex.Assistant.Model != "deepseek" || ex.Assistant.ReplyToSeq != ex.User.Seq {
		t.Fatalf("reply by %q to seq %d; want chat_message's primary model, deepseek, answering seq %d", ex.Assistant.Model, ex.Assistant.ReplyToSeq, ex.User.Seq)
	}
	reqs := e.deepSeek.Requests()
	if len(reqs) != before+1 {
		t.Fatalf("the chat model got %d requests for one message, want 1", len(reqs)-before)
	}
	return ex, chatSystemPrompt(t, reqs[len(reqs)-1])
}

// chatSystemPrompt is the system message of an OpenAI-style chat completion request: its first.
func chatSystemPrompt(t *testing.T, r llmtest.Request) string {
	t.Helper()
	var body struct {
		Messages []struct {
			Role    string `json:"role"`
			Content string `json:"content"`
		} `json:"messages"`
	}
	if err := json.Unmarshal(r.Body, &body); err != nil {
		t.Fatalf("chat request body %s: %v", r.Body, err)
	}
	if len(body.Messages) == 0 || body.Messages[0].Role != "system" {
		t.Fatalf("chat request without a leading system message: %s", r.Body)
	}
	return body.Messages[0].Content
}

// synthesisRequest is what the synthesis model received, from a Gemini generateContent body.
type synthesisRequest struct {
	raw    string
	system string // the instructions and the answer's schema
	prompt string // the known insights, the summary, the new messages
	schema string // generationConfig.responseJsonSchema
}

func parseSynthesisRequest(t *testing.T, r llmtest.Request) synthesisRequest {
	t.Helper()
	var body struct {
		SystemInstruction struct {
			Parts []struct{ Text string } `json:"parts"`
		} `json:"systemInstruction"`
		Contents []struct {
			Role  string                  `json:"role"`
			Parts []struct{ Text string } `json:"parts"`
		} `json:"contents"`
		GenerationConfig struct {
			ResponseJSONSchema json.RawMessage `json:"responseJsonSchema"`
		} `json:"generationConfig"`
	}
	if err := json.Unmarshal(r.Body, &body); err != nil {
		t.Fatalf("synthesis request body %s: %v", r.Body, err)
	}
	out := synthesisRequest{raw: string(r.Body), schema: string(body.GenerationConfig.ResponseJSONSchema)}
	for _, p := range body.SystemInstruction.Parts {
		out.system += p.Text
	}
	if len(body.Contents) != 1 || body.Contents[0].Role != "user" {
		t.Fatalf("synthesis request has %d turns, want the one user turn: %s", len(body.Contents), r.Body)
	}
	for _, p := range body.Contents[0].Parts {
		out.prompt += p.Text
	}
	return out
}

// synthesize takes the queued jobs, which must be want, and runs each through the processor with
// the synthesis model answering reply (one scripted answer per job). It returns what the
// synthesis model received for each.
func (e *env) synthesize(t *testing.T, want []synthesis.Job, replies ...string) []synthesisRequest {
	t.Helper()
	jobs := e.queue.take()
	if !slices.Equal(jobs, want) {
		t.Fatalf("queued synthesis jobs %v, want %v", jobs, want)
	}
	var out []synthesisRequest
	for n, j := range jobs {
		before := e.gemini.Count()
		e.gemini.Script(llmtest.OK(replies[n]))
		outcome, err := e.proc.Process(t.Context(), j)
		if err != nil || outcome != synthesis.Done {
			t.Fatalf("process %v: %q, %v; want done", j, outcome, err)
		}
		reqs := e.gemini.Requests()
		if len(reqs) != before+1 {
			t.Fatalf("the synthesis model got %d requests for job %v, want 1 (no repair)", len(reqs)-before, j)
		}
		out = append(out, parseSynthesisRequest(t, reqs[len(reqs)-1]))
	}
	return out
}

// answer is a synthesis answer as the processor's schema describes it.
func answer(t *testing.T, summary string, actions ...map[string]any) string {
	t.Helper()
	b, err := json.Marshal(map[string]any{"summary": summary, "actions": actions})
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func add(layer memory.Layer, text string, confidence float64, evidence ...int64) map[string]any {
	return map[string]any{"action": "add", "layer": int(layer), "text": text, "confidence": confidence, "evidence": evidence}
}

func update(handle, text string, confidence float64, evidence ...int64) map[string]any {
	return map[string]any{"action": "update", "insight": handle, "text": text, "confidence": confidence, "evidence": evidence}
}

func reinforce(handle string, evidence ...int64) map[string]any {
	return map[string]any{"action": "reinforce", "insight": handle, "evidence": evidence}
}

func invalidate(handle string, evidence ...int64) map[string]any {
	return map[string]any{"action": "invalidate", "insight": handle, "evidence": evidence}
}

func (e *env) insights(t *testing.T, tok, query string) []chatapi.InsightView {
	t.Helper()
	res := e.do(t, http.MethodGet, "/me/insights"+query, tok, "")
	res.WantStatus(t, http.StatusOK)
	var body struct {
		Insights []chatapi.InsightView `json:"insights"`
	}
	res.Decode(t, &body)
	return body.Insights
}

func (e *env) export(t *testing.T, tok string) chatapi.Export {
	t.Helper()
	res := e.do(t, http.MethodGet, "/me/memory/export", tok, "")
	res.WantStatus(t, http.StatusOK)
	var x chatapi.Export
	res.Decode(t, &x)
	return x
}

func (e *env) count(t *testing.T, query string, args ...any) int {
	t.Helper()
	var n int
	if err := e.pool.QueryRow(t.Context(), query, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}

// byText indexes insights by their text; a text listed twice is a test error.
func byText(t *testing.T, list []chatapi.InsightView) map[string]chatapi.InsightView {
	t.Helper()
	m := make(map[string]chatapi.InsightView, len(list))
	for _, i := range list {
		if _, dup := m[i.Text]; dup {
			t.Errorf("insight %q listed twice", i.Text)
		}
		m[i.Text] = i
	}
	return m
}

func texts(list []chatapi.InsightView) []string {
	var out []string
	for _, i := range list {
		out = append(out, i.Text)
	}
	slices.Sort(out)
	return out
}

func sorted(s ...string) []string { slices.Sort(s); return s }

// evidenceOf renders an insight's evidence as "session:seq" (plus ":kind" when the view has it).
func evidenceOf(i chatapi.InsightView, sessions map[string]string) []string {
	var out []string
	for _, e := range i.Evidence {
		s := fmt.Sprintf("%s:%d", sessions[e.SessionID], e.Seq)
		if e.Kind != "" {
			s += ":" + e.Kind
		}
		out = append(out, s)
	}
	slices.Sort(out)
	return out
}

func near(a, b float64) bool { return a-b < 1e-6 && b-a < 1e-6 }

// What Alice says in her first session (user messages are seqs 1, 3, 5, 7, 9) and what the
// synthesis model learns from it.
var aliceFirst = []string{
	"Hi Helix, I'm Alice and I live in Lisbon.",
	"I work as a nurse, mostly night shifts.",
	"My sister Marta visits me every Sunday.",
	"I'm training for a marathon in May.",
	"Anyway, thanks for listening.",
}

const (
	lisbon   = "Alice lives in Lisbon"
	marta    = "Alice's sister Marta visits her every Sunday"
	marathon = "Alice is training for a marathon in May"
	porto    = "Alice lives in Porto"
	knee     = "Alice is recovering from a knee injury"
)

// learnFirst has Alice tell her first session five messages, checks that exactly the fifth
// queues one job, and runs it with the synthesis model adding three insights. It returns the
// session and what the synthesis model received.
func (e *env) learnFirst(t *testing.T, alice string) (string, synthesisRequest) {
	t.Helper()
	s1 := e.createSession(t, alice, "First chat")
	for n, content := range aliceFirst {
		if got := e.queue.len(); got != 0 {
			t.Fatalf("%d synthesis jobs queued after %d messages, want none before the fifth", got, n)
		}
		ex, _ := e.send(t, alice, s1, content)
		if ex.User.Seq != int64(2*n+1) || ex.Assistant.Seq != int64(2*n+2) {
			t.Fatalf("message %d stored as seqs %d/%d, want %d/%d", n+1, ex.User.Seq, ex.Assistant.Seq, 2*n+1, 2*n+2)
		}
	}
	reqs := e.synthesize(t, []synthesis.Job{{ConversationID: s1, UserID: "alice", ThroughSeq: 10}},
		answer(t, "Alice introduced herself: she lives in Lisbon, works night shifts as a nurse, sees her sister Marta on Sundays and trains for a marathon.",
			add(memory.NarrativeCore, lisbon, 0.9, 1),
			add(memory.RelationalMemory, marta, 0.8, 5),
			add(memory.ProspectiveSelf, marathon, 0.7, 7),
		))
	return s1, reqs[0]
}

// TestMemoryScenario is issue 7's scenario: five messages make a job; the processor learns
// insights; a new session's system prompt carries them; a later session contradicts them and
// the memory is updated, not added to; forgetting empties the prompt and the export.
func TestMemoryScenario(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	alice := token(t, "alice")

	// 1. Five messages, one job, insights learned.
	s1, first := e.learnFirst(t, alice)
	sessions := map[string]string{s1: "s1"}

	// The synthesis prompt: no insights yet, no summary yet, every new message numbered with
	// its role; the schema enumerates no handles and bounds the evidence to seqs 1 to 10.
	if !strings.Contains(first.prompt, "Known insights:\n(none yet)\n") {
		t.Errorf("first synthesis prompt does not say no insights are known:\n%s", first.prompt)
	}
	if !strings.Contains(first.prompt, "Summary of the conversation so far:\n(none yet)\n") {
		t.Errorf("first synthesis prompt does not say there is no summary yet:\n%s", first.prompt)
	}
	for n, content := range aliceFirst {
		for _, line := range []string{
			fmt.Sprintf("%d user: %s\n", 2*n+1, content),
			fmt.Sprintf("%d assistant: Noted, thank you for telling me.\n", 2*n+2),
		} {
			if !strings.Contains(first.prompt, line) {
				t.Errorf("first synthesis prompt lacks %q:\n%s", line, first.prompt)
			}
		}
	}
	for _, s := range []string{first.system, first.schema} {
		if strings.Contains(s, `"insight"`) || !strings.Contains(s, `"minimum":1`) || !strings.Contains(s, `"maximum":10`) {
			t.Errorf("first synthesis schema should name no insight handles and allow evidence 1 to 10: %s", s)
		}
	}
	if ids := uuidPattern.FindAllString(first.raw, -1); len(ids) != 0 {
		t.Errorf("first synthesis request carries ids %v", ids)
	}

	// What was written: the job record, the summary, the log row of the memory_synthesis call.
	var status string
	var added, messages int
	var requestID string
	if err := e.pool.QueryRow(t.Context(), `SELECT status, added, messages, request_id FROM synthesis_jobs WHERE conversation_id = $1 AND through_seq = 10`, s1).
		Scan(&status, &added, &messages, &requestID); err != nil {
		t.Fatalf("synthesis job record: %v", err)
	}
	if status != "done" || added != 3 || messages != 10 {
		t.Errorf("job record: %s, %d added, %d messages; want done, 3, 10", status, added, messages)
	}
	if n := e.count(t, `SELECT count(*) FROM ai_operation_log WHERE request_id = $1 AND operation_id = 'memory_synthesis'
		AND user_id = 'alice' AND model_used = 'gemini_flash' AND success`, requestID); n != 1 {
		t.Errorf("no successful memory_synthesis call by gemini_flash logged for alice under %s", requestID)
	}
	if n := e.count(t, `SELECT count(*) FROM conversations WHERE conversation_id = $1 AND synthesized_seq = 10 AND summary LIKE 'Alice introduced herself%'`, s1); n != 1 {
		t.Errorf("session 1 is not marked synthesized through 10 with the model's summary")
	}

	learned := byText(t, e.insights(t, alice, ""))
	want := []struct {
		text       string
		layer      memory.Layer
		confidence float64
		evidence   []string
	}{
		{lisbon, memory.NarrativeCore, 0.9, []string{"s1:1"}},
		{marta, memory.RelationalMemory, 0.8, []string{"s1:5"}},
		{marathon, memory.ProspectiveSelf, 0.7, []string{"s1:7"}},
	}
	if len(learned) != len(want) {
		t.Fatalf("GET /me/insights lists %v, want the 3 learned", slices.Sorted(maps.Keys(learned)))
	}
	for _, w := range want {
		i, ok := learned[w.text]
		if !ok {
			t.Errorf("insight %q not listed", w.text)
			continue
		}
		if i.Layer != int(w.layer) || i.LayerName != w.layer.Name() || !near(i.Confidence, w.confidence) || i.InvalidatedAt != nil {
			t.Errorf("insight %q: layer %d %q, confidence %v, invalidated %v; want layer %d %q, %v, active",
				w.text, i.Layer, i.LayerName, i.Confidence, i.InvalidatedAt, w.layer, w.layer.Name(), w.confidence)
		}
		if got := evidenceOf(i, sessions); !slices.Equal(got, w.evidence) {
			t.Errorf("insight %q evidence %v, want %v", w.text, got, w.evidence)
		}
		if uuid.Validate(i.ID) != nil {
			t.Errorf("insight %q has id %q, not a UUID", w.text, i.ID)
		}
	}

	// 2. A new session: the reply's system prompt carries what was learned, never the ids.
	s2 := e.createSession(t, alice, "Second chat")
	sessions[s2] = "s2"
	_, prompt := e.send(t, alice, s2, "What should I cook for dinner tonight?")
	if !strings.Contains(prompt, memoryHeading) {
		t.Errorf("new session's system prompt has no learned insights:\n%s", prompt)
	}
	for _, line := range []string{"- [Narrative Core] " + lisbon, "- [Relational Memory] " + marta, "- [Prospective Self] " + marathon} {
		if !strings.Contains(prompt, line) {
			t.Errorf("new session's system prompt lacks %q:\n%s", line, prompt)
		}
	}
	if ids := uuidPattern.FindAllString(prompt, -1); len(ids) != 0 {
		t.Errorf("system prompt carries ids %v", ids)
	}
	if got := e.queue.len(); got != 0 {
		t.Fatalf("%d jobs queued after one message of a new session", got)
	}

	// 3. The second session contradicts two facts and confirms one.
	contradiction := []string{
		"Big news: I moved from Lisbon to Porto last month.",
		"I had to give up the marathon, my knee is injured.",
		"Marta still comes by on Sundays, even in Porto.",
		"That's all for now.",
	}
	for _, content := range contradiction {
		e.send(t, alice, s2, content)
	}
	// The handles the model will see are the candidates' ranks; read them as the processor will,
	// from the user messages it is about to learn from. The prompt check below confirms them.
	var said strings.Builder
	for _, content := range append([]string{"What should I cook for dinner tonight?"}, contradiction...) {
		said.WriteString(content + " ")
	}
	candidates, err := memorystore.NewMemory(e.pool, nil).Candidates(t.Context(), "alice", said.String(), synthesis.DefaultPolicy().Candidates)
	if err != nil {
		t.Fatal(err)
	}
	handle := map[string]string{} // text -> handle
	var handles []string
	for n, c := range candidates {
		h := fmt.Sprintf("i%d", n+1)
		handle[c.Text] = h
		handles = append(handles, h)
	}
	if len(candidates) != 3 {
		t.Fatalf("%d candidate insights, want the 3 learned", len(candidates))
	}
	second := e.synthesize(t, []synthesis.Job{{ConversationID: s2, UserID: "alice", ThroughSeq: 10}},
		answer(t, "Alice moved from Lisbon to Porto, gave up the marathon because of a knee injury; Marta still visits.",
			update(handle[lisbon], porto, 0.9, 3),
			invalidate(handle[marathon], 5),
			add(memory.Transformation, knee, 0.7, 5),
			reinforce(handle[marta], 7),
		))[0]

	// The synthesis prompt shows each candidate by handle, layer and confidence, never by id,
	// and the new messages of the second session; the schema enumerates exactly those handles.
	for _, line := range []string{
		handle[lisbon] + " [layer 1 Narrative Core, confidence 0.90] " + lisbon + "\n",
		handle[marta] + " [layer 3 Relational Memory, confidence 0.80] " + marta + "\n",
		handle[marathon] + " [layer 4 Prospective Self, confidence 0.70] " + marathon + "\n",
		"1 user: What should I cook for dinner tonight?\n",
		"3 user: " + contradiction[0] + "\n",
		"5 user: " + contradiction[1] + "\n",
		"10 assistant: Noted, thank you for telling me.\n",
	} {
		if !strings.Contains(second.prompt, line) {
			t.Errorf("second synthesis prompt lacks %q:\n%s", line, second.prompt)
		}
	}
	for _, c := range candidates {
		if strings.Contains(second.raw, c.ID) {
			t.Errorf("second synthesis request carries insight id %s (%q)", c.ID, c.Text)
		}
	}
	if ids := uuidPattern.FindAllString(second.raw, -1); len(ids) != 0 {
		t.Errorf("second synthesis request carries ids %v", ids)
	}
	enum, _ := json.Marshal(map[string]any{"enum": handles})
	for _, s := range []string{second.system, second.schema} {
		if !strings.Contains(s, `"insight":`+string(enum)) {
			t.Errorf("synthesis schema does not enumerate the handles %v: %s", handles, s)
		}
	}

	// The rows: the old fact superseded by the new, the abandoned goal invalidated with nothing
	// replacing it, the confirmed one reinforced, the new one added.
	all := byText(t, e.insights(t, alice, "?include_invalidated=true"))
	if len(all) != 5 {
		t.Fatalf("with invalidated ones, %d insights, want 5: %v", len(all), all)
	}
	checks := []struct {
		text         string
		layer        memory.Layer
		active       bool
		supersededBy string
		evidence     []string
	}{
		{lisbon, memory.NarrativeCore, false, all[porto].ID, []string{"s1:1"}},
		{porto, memory.NarrativeCore, true, "", []string{"s2:3"}},
		{marathon, memory.ProspectiveSelf, false, "", []string{"s1:7", "s2:5"}},
		{marta, memory.RelationalMemory, true, "", []string{"s1:5", "s2:7"}},
		{knee, memory.Transformation, true, "", []string{"s2:5"}},
	}
	for _, c := range checks {
		i := all[c.text]
		if i.Layer != int(c.layer) || (i.InvalidatedAt == nil) != c.active || i.SupersededBy != c.supersededBy {
			t.Errorf("insight %q: layer %d, invalidated at %v, superseded by %q; want layer %d, active %v, superseded by %q",
				c.text, i.Layer, i.InvalidatedAt, i.SupersededBy, c.layer, c.active, c.supersededBy)
		}
		if got := evidenceOf(i, sessions); !slices.Equal(got, c.evidence) {
			t.Errorf("insight %q evidence %v, want %v", c.text, got, c.evidence)
		}
	}
	if m := all[marta]; m.ReinforcementCount != 1 || !near(m.Confidence, 0.84) {
		t.Errorf("reinforced insight: count %d, confidence %v; want 1, 0.84", m.ReinforcementCount, m.Confidence)
	}
	var oldValidFrom, oldInvalidated, newValidFrom time.Time
	var supersededBy string
	if err := e.pool.QueryRow(t.Context(), `
		SELECT o.valid_from, o.invalidated_at, o.superseded_by::text, n.valid_from
		  FROM conversation_insights o JOIN conversation_insights n ON n.insight_id = o.superseded_by
		 WHERE o.insight_id = $1 AND n.text = $2 AND n.invalidated_at IS NULL`, all[lisbon].ID, porto).
		Scan(&oldValidFrom, &oldInvalidated, &supersededBy, &newValidFrom); err != nil {
		t.Fatalf("the superseded row and its replacement: %v", err)
	}
	if !newValidFrom.After(oldValidFrom) || !oldInvalidated.Equal(newValidFrom) {
		t.Errorf("old valid from %v, invalidated %v; new valid from %v: the new version should start when the old one ended",
			oldValidFrom, oldInvalidated, newValidFrom)
	}
	if n := e.count(t, `SELECT count(*) FROM synthesis_jobs WHERE conversation_id = $1 AND through_seq = 10 AND status = 'done'
		AND added = 1 AND reinforced = 1 AND updated = 1 AND invalidated = 1`, s2); n != 1 {
		t.Errorf("second job not recorded done with one action of each kind")
	}
	if got, want := texts(e.insights(t, alice, "")), sorted(porto, marta, knee); !slices.Equal(got, want) {
		t.Errorf("active insights %v, want %v", got, want)
	}
	// The export has all five, each piece of evidence with what it did and the message it is.
	x := e.export(t, alice)
	exported := byText(t, x.Insights)
	if x.UserID != "alice" || len(exported) != 5 {
		t.Errorf("export: user %q, %d insights; want alice's 5", x.UserID, len(exported))
	}
	for text, want := range map[string][]string{
		lisbon:   {"s1:1:add"},
		porto:    {"s2:3:update"},
		marathon: {"s1:7:add", "s2:5:invalidate"},
		marta:    {"s1:5:add", "s2:7:reinforce"},
		knee:     {"s2:5:add"},
	} {
		if got := evidenceOf(exported[text], sessions); !slices.Equal(got, want) {
			t.Errorf("exported %q evidence %v, want %v", text, got, want)
		}
	}
	if ev := exported[porto].Evidence; len(ev) != 1 || ev[0].Message != contradiction[0] {
		t.Errorf("exported evidence of %q: %+v, want the message %q", porto, ev, contradiction[0])
	}

	// The next reply (a third session) carries the new facts and none of the old ones.
	s3 := e.createSession(t, alice, "Third chat")
	sessions[s3] = "s3"
	_, prompt = e.send(t, alice, s3, "Any ideas for a rainy weekend?")
	for _, line := range []string{"- [Narrative Core] " + porto, "- [Transformation] " + knee, "- [Relational Memory] " + marta} {
		if !strings.Contains(prompt, line) {
			t.Errorf("system prompt after the update lacks %q:\n%s", line, prompt)
		}
	}
	for _, old := range []string{lisbon, marathon} {
		if strings.Contains(prompt, old) {
			t.Errorf("system prompt after the update still carries %q:\n%s", old, prompt)
		}
	}

	// 4. Forget. A job queued before it (the third session's fifth message) writes nothing after.
	for _, content := range []string{"Maybe a museum.", "Or a long lunch.", "Or reading at home.", "I'll decide tomorrow."} {
		e.send(t, alice, s3, content)
	}
	pending := e.queue.take()
	if want := []synthesis.Job{{ConversationID: s3, UserID: "alice", ThroughSeq: 10}}; !slices.Equal(pending, want) {
		t.Fatalf("queued jobs %v, want %v", pending, want)
	}
	res := e.do(t, http.MethodDelete, "/me/memory", alice, "")
	res.WantStatus(t, http.StatusOK)
	var forgot struct {
		DeletedInsights int `json:"deleted_insights"`
	}
	res.Decode(t, &forgot)
	if forgot.DeletedInsights != 5 {
		t.Errorf("deleted_insights = %d, want all 5 (invalidated ones too)", forgot.DeletedInsights)
	}
	before := e.gemini.Count()
	if outcome, err := e.proc.Process(t.Context(), pending[0]); err != nil || outcome != synthesis.Skipped {
		t.Errorf("the job queued before the forget: %q, %v; want skipped", outcome, err)
	}
	if n := e.gemini.Count() - before; n != 0 {
		t.Errorf("the synthesis model got %d requests for a job the forget cancelled", n)
	}
	if n := e.count(t, `SELECT count(*) FROM synthesis_jobs WHERE conversation_id = $1 AND status = 'skipped' AND reason = 'nothing_new'`, s3); n != 1 {
		t.Errorf("the cancelled job is not recorded as skipped (nothing_new)")
	}

	_, prompt = e.send(t, alice, s3, "What do you know about me?")
	if strings.Contains(prompt, memoryHeading) {
		t.Errorf("system prompt after the forget still has learned insights:\n%s", prompt)
	}
	for _, text := range []string{lisbon, porto, marta, marathon, knee} {
		if strings.Contains(prompt, text) {
			t.Errorf("system prompt after the forget carries %q", text)
		}
	}
	if l := e.insights(t, alice, "?include_invalidated=true"); len(l) != 0 {
		t.Errorf("insights after the forget: %v", texts(l))
	}
	if x := e.export(t, alice); x.UserID != "alice" || len(x.Insights) != 0 {
		t.Errorf("export after the forget: user %q, %d insights; want alice's, none", x.UserID, len(x.Insights))
	}
	if n := e.count(t, `SELECT count(*) FROM conversation_insights WHERE user_id = 'alice'`); n != 0 {
		t.Errorf("%d insight rows left after the forget", n)
	}
	if n := e.count(t, `SELECT count(*) FROM insight_evidence e JOIN conversations c USING (conversation_id) WHERE c.user_id = 'alice'`); n != 0 {
		t.Errorf("%d evidence rows left after the forget", n)
	}
	if n := e.count(t, `SELECT count(*) FROM conversations WHERE user_id = 'alice'`); n != 3 {
		t.Errorf("%d sessions after the forget, want the 3 kept", n)
	}
}

// TestAnotherUserNeverSeesTheMemory: while Alice has insights, Bob's listing and export are
// empty, his replies' prompts and his synthesis prompt carry none of hers, and neither deleting
// one of her insights by id nor forgetting his own memory touches hers.
func TestAnotherUserNeverSeesTheMemory(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	alice, bob := token(t, "alice"), token(t, "bob")
	e.learnFirst(t, alice)
	aliceInsights := e.insights(t, alice, "")
	if len(aliceInsights) != 3 {
		t.Fatalf("alice has %d insights, want 3", len(aliceInsights))
	}

	if l := e.insights(t, bob, "?include_invalidated=true"); len(l) != 0 {
		t.Errorf("bob lists alice's insights: %v", texts(l))
	}
	if x := e.export(t, bob); x.UserID != "bob" || len(x.Insights) != 0 {
		t.Errorf("bob's export: user %q, insights %v; want bob's, none", x.UserID, texts(x.Insights))
	}

	// Bob says things that match Alice's insights word for word: relevance ranking must not
	// reach across users.
	sb := e.createSession(t, bob, "Bob's chat")
	bobSays := []string{
		"I live in Lisbon too.",
		"My sister Marta visits every Sunday.",
		"I'm training for a marathon in May.",
		"I work night shifts.",
		"That's me.",
	}
	for _, content := range bobSays {
		_, prompt := e.send(t, bob, sb, content)
		if strings.Contains(prompt, memoryHeading) {
			t.Errorf("bob's system prompt has learned insights:\n%s", prompt)
		}
		for _, i := range aliceInsights {
			if strings.Contains(prompt, i.Text) || strings.Contains(prompt, i.ID) {
				t.Errorf("bob's system prompt carries alice's insight %q", i.Text)
			}
		}
	}
	const bobLisbon = "Bob lives in Lisbon"
	req := e.synthesize(t, []synthesis.Job{{ConversationID: sb, UserID: "bob", ThroughSeq: 10}},
		answer(t, "Bob lives in Lisbon.", add(memory.NarrativeCore, bobLisbon, 0.8, 1)))[0]
	if !strings.Contains(req.prompt, "Known insights:\n(none yet)\n") {
		t.Errorf("bob's synthesis prompt shows known insights:\n%s", req.prompt)
	}
	if strings.Contains(req.schema, `"insight"`) {
		t.Errorf("bob's synthesis schema names insight handles: %s", req.schema)
	}
	for _, i := range aliceInsights {
		if strings.Contains(req.raw, i.Text) || strings.Contains(req.raw, i.ID) {
			t.Errorf("bob's synthesis request carries alice's insight %q", i.Text)
		}
	}
	if got := texts(e.insights(t, bob, "")); !slices.Equal(got, []string{bobLisbon}) {
		t.Errorf("bob's insights %v, want only his own", got)
	}
	if got, want := texts(e.insights(t, alice, "")), texts(aliceInsights); !slices.Equal(got, want) {
		t.Errorf("alice's insights %v after bob's synthesis, want %v", got, want)
	}

	// Alice's next reply carries her memory, not Bob's.
	s := e.createSession(t, alice, "Alice again")
	_, prompt := e.send(t, alice, s, "I live in Lisbon, remember?")
	if !strings.Contains(prompt, lisbon) || strings.Contains(prompt, bobLisbon) {
		t.Errorf("alice's system prompt should carry her insights and none of bob's:\n%s", prompt)
	}

	// Bob cannot delete one of Alice's insights by its id: not found, as an id that does not exist.
	res := e.do(t, http.MethodDelete, "/me/insights/"+aliceInsights[0].ID, bob, "")
	if code := res.WantErrorBody(t, http.StatusNotFound).Error.Code; code != "not_found" {
		t.Errorf("error.code = %q, want not_found", code)
	}
	// Forgetting Bob's memory erases his insight only.
	res = e.do(t, http.MethodDelete, "/me/memory", bob, "")
	res.WantStatus(t, http.StatusOK)
	var forgot struct {
		DeletedInsights int `json:"deleted_insights"`
	}
	res.Decode(t, &forgot)
	if forgot.DeletedInsights != 1 {
		t.Errorf("bob's forget deleted %d insights, want his 1", forgot.DeletedInsights)
	}
	if got, want := texts(e.insights(t, alice, "")), texts(aliceInsights); !slices.Equal(got, want) {
		t.Errorf("alice's insights %v after bob's deletes, want %v", got, want)
	}
}
