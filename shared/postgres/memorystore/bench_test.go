package memorystore_test

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/helixhq/helix/shared/memory"
	"github.com/helixhq/helix/shared/postgres"
	"github.com/helixhq/helix/shared/postgres/memorystore"
	"github.com/helixhq/helix/shared/synthesis"
)

// The synthesis benchmark's user: 500 active insights over the seven layers (issue 7's case), and
// jobs of 10 messages (5 from the user, 5 replies).
const (
	benchSynthUser     = "bench-synthesis-user"
	benchSynthInsights = 500
	benchSynthMessages = 10
)

// BenchmarkSynthesisJob measures the database side of one synthesis job as
// synthesis.Processor.Process runs it, the model call excluded: Claim (is the job done, take the
// conversation's lease, read the 10 new messages), Candidates (the user's 40 active insights
// ranked for the new messages' text, out of 500), and Commit of a typical answer (one add, two
// reinforces, one update, one invalidate, each with evidence, the summary, the job record) in one
// transaction. The kill-switch read Process starts with is left out (it is a cached snapshot).
// Jobs run one after another, each on a conversation of its own made before the timer starts;
// the answer leaves the number of active insights at 500 (add +1, update +1 -1, invalidate -1).
//
//	go test -run '^$' -bench BenchmarkSynthesisJob -benchtime 3s ./shared/postgres/memorystore/
//
// ns/op and ms/job are the whole job; claim_ms/job, candidates_ms/job and commit_ms/job its
// parts; round_trips/job counts the statements sent (this path sends no batch, so each is one
// round trip; BEGIN and COMMIT count).
func BenchmarkSynthesisJob(b *testing.B) {
	ctx := context.Background()
	var statements atomic.Int64
	pool := openCountedPool(b, pg.NewDatabase(b), &statements)
	seedBenchInsights(b, pool)
	mem := memorystore.NewMemory(pool, nil)
	policy := synthesis.DefaultPolicy()

	b.Run(fmt.Sprintf("insights=%d/messages=%d", benchSynthInsights, benchSynthMessages), func(b *testing.B) {
		convs := seedBenchConversations(b, pool, b.N)
		var claim, candidates, commit time.Duration
		s0 := statements.Load()
		b.ResetTimer()
		for n := range b.N {
			job := synthesis.Job{ConversationID: convs[n], UserID: benchSynthUser, ThroughSeq: benchSynthMessages}
			t0 := time.Now()
			w, err := mem.Claim(ctx, job, policy.Lease, policy.MaxMessages)
			t1 := time.Now()
			if err != nil || len(w.Messages) != benchSynthMessages {
				b.Fatalf("claim: %d messages, %v", len(w.Messages), err)
			}
			var text strings.Builder // what Processor.learn ranks the candidates for
			for _, m := range w.Messages {
				if m.Role == "user" {
					text.WriteString(m.Content)
					text.WriteByte(' ')
				}
			}
			list, err := mem.Candidates(ctx, benchSynthUser, text.String(), policy.Candidates)
			t2 := time.Now()
			if err != nil || len(list) != policy.Candidates {
				b.Fatalf("candidates: %d, %v", len(list), err)
			}
			counts, err := mem.Commit(ctx, job, w, benchAnswer(n, list))
			t3 := time.Now()
			if want := (synthesis.Counts{Added: 1, Reinforced: 2, Updated: 1, Invalidated: 1}); err != nil || counts != want {
				b.Fatalf("commit: %+v, %v; want %+v", counts, err, want)
			}
			claim, candidates, commit = claim+t1.Sub(t0), candidates+t2.Sub(t1), commit+t3.Sub(t2)
		}
		b.StopTimer()
		perJob := func(d time.Duration) float64 { return float64(d) / float64(b.N) / float64(time.Millisecond) }
		b.ReportMetric(perJob(claim+candidates+commit), "ms/job")
		b.ReportMetric(perJob(claim), "claim_ms/job")
		b.ReportMetric(perJob(candidates), "candidates_ms/job")
		b.ReportMetric(perJob(commit), "commit_ms/job")
		b.ReportMetric(float64(statements.Load()-s0)/float64(b.N), "round_trips/job")

		var active, done int
		if err := pool.QueryRow(ctx, `SELECT count(*) FROM conversation_insights WHERE user_id = $1 AND invalidated_at IS NULL`, benchSynthUser).Scan(&active); err != nil {
			b.Fatal(err)
		}
		if err := pool.QueryRow(ctx, `SELECT count(*) FROM synthesis_jobs WHERE conversation_id = ANY($1) AND status = 'done'`, convs).Scan(&done); err != nil {
			b.Fatal(err)
		}
		if active != benchSynthInsights || done != b.N {
			b.Fatalf("after %d jobs: %d active insights (want %d), %d jobs done", b.N, active, benchSynthInsights, done)
		}
	})
}

// benchAnswer is a typical consolidation of a job's 10 messages (seqs 1 to 10): one new insight,
// two reinforced, one updated, one invalidated, from the top candidates.
func benchAnswer(n int, c []memory.Insight) synthesis.Result {
	return synthesis.Result{
		Summary: fmt.Sprintf("The user talked about running, their sister and work (job %d).", n),
		Actions: []memory.Action{
			{Kind: memory.Add, Layer: memory.IntegrationRhythms, Text: fmt.Sprintf("Runs by the river before work on weekdays (%d)", n), Confidence: 0.7, Evidence: []int64{1, 3}},
			{Kind: memory.Reinforce, InsightID: c[0].ID, Evidence: []int64{1}},
			{Kind: memory.Reinforce, InsightID: c[1].ID, Evidence: []int64{3}},
			{Kind: memory.Update, InsightID: c[2].ID, Text: c[2].Text + ", more than before", Confidence: 0.8, Evidence: []int64{5}},
			{Kind: memory.Invalidate, InsightID: c[3].ID, Evidence: []int64{7}},
		},
		RequestID: "synthesis-bench-" + uuid.NewString(),
		Cost:      1000,
	}
}

// countingTracer counts the statements a pool's connections send.
type countingTracer struct{ n *atomic.Int64 }

func (t countingTracer) TraceQueryStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryStartData) context.Context {
	t.n.Add(1)
	return ctx
}

func (countingTracer) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

// openCountedPool is a pool as postgres.Open makes it for the functions (the default exec mode)
// whose connections count their statements in n.
func openCountedPool(b *testing.B, url string, n *atomic.Int64) *pgxpool.Pool {
	b.Helper()
	pc, err := pgxpool.ParseConfig(url)
	if err != nil {
		b.Fatal(err)
	}
	mode, err := postgres.ParseExecMode("")
	if err != nil {
		b.Fatal(err)
	}
	pc.ConnConfig.DefaultQueryExecMode = mode
	pc.ConnConfig.Tracer = countingTracer{n: n}
	pc.MaxConns = 4
	pool, err := pgxpool.NewWithConfig(context.Background(), pc)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(pool.Close)
	return pool
}

// Words the seeded insights and messages are made of, so that full-text ranking has matches to
// find among the insights, as it would for a real user.
var (
	benchSubjects = []string{"running by the river", "their sister Ana", "the new job at the studio", "learning Portuguese",
		"the flat in Porto", "cooking on Sundays", "the night shifts", "their father's health", "playing the cello",
		"saving for a house", "the book club", "climbing on weekends", "their dog Miso", "the move from Lisbon"}
	benchVerbs = []string{"cares a lot about", "worries about", "is proud of", "wants more time for", "often mentions",
		"feels calm when talking about", "is unsure about", "plans around"}
	benchUserLines = []string{"I ran by the river again this morning before work.", "My sister Ana is visiting from Porto next week.",
		"Work at the studio was stressful, the night shifts are hard.", "I want to start saving for a house this year.",
		"Played the cello for an hour, it calmed me down."}
)

// seedBenchInsights gives the user benchSynthInsights active insights, spread over the layers,
// confidences and the last three months, each resting on a message of an older conversation
// (as a stored insight does).
func seedBenchInsights(b *testing.B, pool *pgxpool.Pool) {
	b.Helper()
	ctx := context.Background()
	now := time.Now()
	history := uuid.NewString()
	const historyMessages = 40
	if _, err := pool.Exec(ctx, `
		INSERT INTO conversations (conversation_id, user_id, last_seq, synthesized_seq, enqueued_seq, created_at, updated_at, last_activity_at)
		VALUES ($1, $2, $3, $3, $3, $4, $4, $4)`, history, benchSynthUser, historyMessages, now.Add(-90*24*time.Hour)); err != nil {
		b.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `
		INSERT INTO session_messages (conversation_id, seq, role, content)
		SELECT $1, s, CASE WHEN s % 2 = 1 THEN 'user' ELSE 'assistant' END, ($2::text[])[(s % 5) + 1]
		  FROM generate_series(1, $3::int) AS s`, history, benchUserLines, historyMessages); err != nil {
		b.Fatal(err)
	}
	ids := make([]string, benchSynthInsights)
	layers := make([]int16, benchSynthInsights)
	names := make([]string, benchSynthInsights)
	texts := make([]string, benchSynthInsights)
	conf := make([]float32, benchSynthInsights)
	reinforced := make([]int32, benchSynthInsights)
	at := make([]time.Time, benchSynthInsights)
	seqs := make([]int64, benchSynthInsights)
	for i := range ids {
		l := memory.Layer(i%7 + 1)
		ids[i], layers[i], names[i] = uuid.NewString(), int16(l), l.Name()
		texts[i] = fmt.Sprintf("The user %s %s (%d)", benchVerbs[i%len(benchVerbs)], benchSubjects[(i/len(benchVerbs))%len(benchSubjects)], i)
		conf[i] = 0.3 + float32(i%7)/10
		reinforced[i] = int32(i % 12)
		at[i] = now.Add(-time.Duration(i%90) * 24 * time.Hour)
		seqs[i] = int64(i%historyMessages) + 1
	}
	if _, err := pool.Exec(ctx, `
		INSERT INTO conversation_insights (insight_id, user_id, layer, layer_name, text, confidence, reinforcement_count,
		                                   valid_from, last_reinforced_at, created_at, updated_at)
		SELECT id, $1, layer, name, text, conf, n, at, at, at, at
		  FROM unnest($2::uuid[], $3::smallint[], $4::text[], $5::text[], $6::real[], $7::int[], $8::timestamptz[])
		       AS u(id, layer, name, text, conf, n, at)`,
		benchSynthUser, ids, layers, names, texts, conf, reinforced, at); err != nil {
		b.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `
		INSERT INTO insight_evidence (insight_id, conversation_id, seq, kind)
		SELECT id, $1, seq, 'add' FROM unnest($2::uuid[], $3::bigint[]) AS u(id, seq)`, history, ids, seqs); err != nil {
		b.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `ANALYZE conversation_insights, insight_evidence, session_messages, conversations`); err != nil {
		b.Fatal(err)
	}
}

// seedBenchConversations makes n conversations of the user, each with benchSynthMessages messages
// none of which is synthesized yet, and its job recorded as sent.
func seedBenchConversations(b *testing.B, pool *pgxpool.Pool, n int) []string {
	b.Helper()
	ctx := context.Background()
	ids := make([]string, n)
	for i := range ids {
		ids[i] = uuid.NewString()
	}
	now := time.Now()
	if _, err := pool.Exec(ctx, `
		INSERT INTO conversations (conversation_id, user_id, last_seq, enqueued_seq, enqueued_at, created_at, updated_at, last_activity_at)
		SELECT id, $2, $3, $3, $4, $4, $4, $4 FROM unnest($1::uuid[]) AS id`, ids, benchSynthUser, benchSynthMessages, now); err != nil {
		b.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `
		INSERT INTO session_messages (conversation_id, seq, role, content, created_at)
		SELECT id, s, CASE WHEN s % 2 = 1 THEN 'user' ELSE 'assistant' END,
		       CASE WHEN s % 2 = 1 THEN ($2::text[])[((s / 2) % 5) + 1] ELSE 'That sounds like a good week. Tell me more.' END, $4
		  FROM unnest($1::uuid[]) AS id, generate_series(1, $3::int) AS s`, ids, benchUserLines, benchSynthMessages, now); err != nil {
		b.Fatal(err)
	}
	return ids
}
