package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/helixhq/helix/infra/load"
)

// The chat send step (issue 7): POST /chat/sessions/{id}/messages at concurrency 32 against the
// mock upstream, each worker a user of its own in a session of its own (a session answers one
// message at a time: a second send while a reply is in flight is 409 reply_in_progress).
const (
	chatConcurrency = 32
	// chatCountedDuration is the load of the run through the round-trip counting proxy: long
	// enough for a thousand or so messages, short enough not to matter.
	chatCountedDuration = 3 * time.Second
	// chatSynthesizeEvery keeps synthesis jobs out of the send measurement (the synthesis step
	// measures them): no session of a bench run gets this many user messages.
	chatSynthesizeEvery = 1000
	// targetChatRoundTrips is issue 7's target: the pipeline's 2 plus at most 2.
	targetChatRoundTrips = 4.0
)

// chatResult is what the chat send step measured.
type chatResult struct {
	Users   string       `json:"users"` // the user ids of this run start with it
	Summary load.Summary `json:"summary"`
	// Messages is every message sent with a 2xx during the measured server's life (the sample,
	// the first probe and the warm-up included): what Postgres must hold.
	Messages      int     `json:"messages"`
	UpstreamCalls int64   `json:"upstream_calls"`
	Checks        []check `json:"checks"`
	// Postgres transactions on the bench database while the measured server ran (start-up
	// included), per message.
	PGTransactions           int64   `json:"postgres_transactions"`
	PGTransactionsPerMessage float64 `json:"postgres_transactions_per_message"`
	// The counted run, through the proxy: round trips (Syncs plus simple Queries on the wire)
	// from the first message to the last response, per message.
	Counted          load.Summary `json:"counted_summary"`
	CountedMessages  int          `json:"counted_messages"`
	RoundTrips       pgCounts     `json:"round_trips"`
	RoundTripsPerMsg float64      `json:"round_trips_per_message"`
	MessagesPerSess  float64      `json:"messages_per_session_at_end"`
	// Waits is what the bench database's active backends waited for during the measured load.
	Waits waitProfile `json:"postgres_waits"`
}

// chatBody is a send: a message and a fresh client_message_id.
func chatBody(content string) string {
	raw, _ := json.Marshal(map[string]string{"content": content, "client_message_id": uuid.NewString()})
	return string(raw)
}

// chatCurl is the command that sends one of the step's messages by hand.
func chatCurl(url string) string {
	return fmt.Sprintf(`curl -s -X POST %s -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' -d '{"content":"...","client_message_id":"'"$(uuidgen)"'"}'`, url)
}

// chatUsers are n users of this run, their tokens, and a session each on the server at base.
func (b *bench) chatUsers(ctx context.Context, base, prefix string, n int) (users, tokens, sessions []string, err error) {
	for i := range n {
		u := fmt.Sprintf("%s-u%03d", prefix, i+1)
		tok, err := b.tokens.token(u)
		if err != nil {
			return nil, nil, nil, err
		}
		users, tokens = append(users, u), append(tokens, tok)
	}
	sessions, err = createSessions(ctx, base, tokens)
	return users, tokens, sessions, err
}

// createSessions makes one session for each token's user.
func createSessions(ctx context.Context, base string, tokens []string) ([]string, error) {
	var ids []string
	for _, tok := range tokens {
		status, body, _, err := post(ctx, base+"/chat/sessions", tok, `{"title":"bench"}`)
		if err != nil {
			return nil, fmt.Errorf("create a session: %w", err)
		}
		var s struct {
			ID string `json:"id"`
		}
		if status != http.StatusCreated || json.Unmarshal([]byte(body), &s) != nil || s.ID == "" {
			return nil, fmt.Errorf("create a session: %d %s", status, clip(body, 300))
		}
		ids = append(ids, s.ID)
	}
	return ids, nil
}

// exchange is the answer to a send, the parts the bench reads.
type exchange struct {
	User struct {
		Seq int64 `json:"seq"`
	} `json:"user"`
	Assistant struct {
		Seq     int64  `json:"seq"`
		Model   string `json:"model"`
		Content string `json:"content"`
	} `json:"assistant"`
}

func messagesURL(base, session string) string {
	return base + "/chat/sessions/" + session + "/messages"
}

// chatSend measures the send: a run on a dev server connected straight to Postgres (latency,
// throughput, and the transactions Postgres counted, start-up included), the books checked, then
// a short run on a second dev server connected through the counting proxy (round trips on the
// wire during the load only).
func (b *bench) chatSend(ctx context.Context) error {
	r := &chatResult{}
	b.res.Chat = r
	mock, err := b.startMock(ctx)
	if err != nil {
		return err
	}
	defer mock.stop()
	prefix := "bench-chat-" + strings.ToLower(b.stamp)
	r.Users = prefix + "-"
	extra := []string{"HELIX_DB_EXEC_MODE=exec", "DEEPSEEK_API_KEY=bench", "DEEPSEEK_BASE_URL=" + mock.url,
		fmt.Sprintf("HELIX_SYNTHESIZE_EVERY=%d", chatSynthesizeEvery)}

	xact0, err := b.transactions(ctx)
	if err != nil {
		return err
	}
	srv, err := b.startDevServer(ctx, "chat", extra...)
	if err != nil {
		return err
	}
	defer srv.stop()
	if !srv.waitLog(ctx, "deepseek: live", 2*time.Second) {
		return fmt.Errorf("the dev server does not call the mock for deepseek: %s", srv.logText())
	}
	users, tokens, sessions, err := b.chatUsers(ctx, srv.url, prefix, chatConcurrency)
	if err != nil {
		return err
	}
	if err := b.setBudgets(ctx, users); err != nil {
		return fmt.Errorf("set the bench users' budgets: %w", err)
	}
	b.printf("users    %s-u001..u%03d, a session each (daily limit and warning threshold $1,000,000 each; no insights)\n", prefix, len(users))
	b.printf("         HELIX_SYNTHESIZE_EVERY=%d: no synthesis job during the step\n", chatSynthesizeEvery)
	if err := b.chatSample(ctx, messagesURL(srv.url, sessions[0]), tokens[0]); err != nil {
		return err
	}
	r.Messages = 1

	urls := make([]string, len(sessions))
	for i, s := range sessions {
		urls[i] = messagesURL(srv.url, s)
	}
	var sent atomic.Int64
	body := func(w int) string {
		return chatBody(fmt.Sprintf("I went running by the river again this morning, the %dth time this month. (worker %d)", sent.Add(1)%30+1, w))
	}
	o := load.Options{URLs: urls, Tokens: tokens, BodyFunc: body, Concurrency: chatConcurrency, Duration: b.cfg.chatDuration,
		Warmup: b.cfg.warmup}
	shown := chatCurl(srv.url+"/chat/sessions/$SESSION/messages") + fmt.Sprintf(
		"\n  # in process (infra/load with URLs, Tokens, BodyFunc): %d workers in a closed loop for %s after a %s warm-up, worker i as user u<i> in its own session, a fresh client_message_id each request",
		o.Concurrency, o.Duration, o.Warmup)
	before, err := mockStats(ctx, mock.url)
	if err != nil {
		return err
	}
	waits := b.sampleWaits(ctx, 100*time.Millisecond)
	s, loadErr := b.runLoad(ctx, o, shown)
	r.Waits = waits()
	if err := ctx.Err(); err != nil {
		return err
	}
	if r.Waits.Samples > 0 {
		b.printf("  Postgres meanwhile (%d samples, every %s, of the bench database's active backends: %.1f on average): %s\n",
			r.Waits.Samples, r.Waits.SampleEvery, r.Waits.MeanActive, r.Waits.line())
	}
	after, err := mockStats(ctx, mock.url)
	if err != nil {
		return errors.Join(loadErr, err)
	}
	r.Summary = s
	r.Messages += s.Succeeded
	r.UpstreamCalls = after.Requests - before.Requests + 1 // the sample's call came before
	errs := []error{loadErr}

	b.printf("\nin Postgres for the users %s*:\n", r.Users)
	errs = append(errs, b.chatBooks(ctx, r))
	errs = append(errs, srv.logErrors())
	srv.stop()
	if err := sleep(ctx, 500*time.Millisecond); err != nil {
		return err
	}
	xact1, err := b.transactions(ctx)
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	r.PGTransactions = xact1 - xact0
	r.PGTransactionsPerMessage = roundTo(float64(r.PGTransactions)/float64(r.Messages), 2)
	b.printf("  info    Postgres transactions (pg_stat_database xact_commit + xact_rollback) on the bench database while the server ran: %d for %d messages = %.2f per message (start-up and session creation included)\n",
		r.PGTransactions, r.Messages, r.PGTransactionsPerMessage)

	b.printf("\ncounted run: a second dev server whose Postgres connections go through a proxy in this process that counts round trips\n")
	errs = append(errs, b.chatCounted(ctx, r, extra, mock.url, prefix))
	return errors.Join(errs...)
}

// chatSample sends one message, shows the answer, and makes sure the mock answered it.
func (b *bench) chatSample(ctx context.Context, url, token string) error {
	b.printf("send     POST %s  %s  (Authorization: Bearer $TOKEN)\n", url, chatBody("Hello, Helix!"))
	status, body, _, err := post(ctx, url, token, chatBody("Hello, Helix!"))
	if err != nil {
		return fmt.Errorf("the sample message failed: %w", err)
	}
	if status != http.StatusCreated {
		return fmt.Errorf("the sample message answered %d: %s", status, clip(body, 400))
	}
	b.printf("sample   %s\n", clip(body, 400))
	var ex exchange
	if err := json.Unmarshal([]byte(body), &ex); err != nil || ex.Assistant.Model != "deepseek" || ex.Assistant.Seq != ex.User.Seq+1 {
		return fmt.Errorf("the sample was not answered by the deepseek model (the mock): %s", clip(body, 400))
	}
	return nil
}

// chatBooks checks that every message answered during the run was stored with its reply, logged
// once in ai_operation_log, answered by the mock, and left no reply lease or synthesis job.
func (b *bench) chatBooks(ctx context.Context, r *chatResult) error {
	var userMsgs, replies, mockReplies, logged, failedLog, leases, jobs, sessions int64
	err := b.withConn(ctx, func(conn *pgx.Conn) error {
		if err := conn.QueryRow(ctx, `
			SELECT count(*) FILTER (WHERE m.role = 'user'), count(*) FILTER (WHERE m.role = 'assistant'),
			       count(*) FILTER (WHERE m.role = 'assistant' AND m.model_used = 'deepseek')
			  FROM session_messages m JOIN conversations c USING (conversation_id)
			 WHERE starts_with(c.user_id, $1)`, r.Users).Scan(&userMsgs, &replies, &mockReplies); err != nil {
			return fmt.Errorf("read session_messages: %w", err)
		}
		if err := conn.QueryRow(ctx, `
			SELECT count(*), count(*) FILTER (WHERE reply_seq IS NOT NULL) FROM conversations WHERE starts_with(user_id, $1)`,
			r.Users).Scan(&sessions, &leases); err != nil {
			return fmt.Errorf("read conversations: %w", err)
		}
		if err := conn.QueryRow(ctx, `
			SELECT count(*) FILTER (WHERE success), count(*) FILTER (WHERE NOT success)
			  FROM ai_operation_log WHERE starts_with(user_id, $1) AND operation_id = 'chat_message'`, r.Users).Scan(&logged, &failedLog); err != nil {
			return fmt.Errorf("read ai_operation_log: %w", err)
		}
		return conn.QueryRow(ctx, `SELECT count(*) FROM synthesis_jobs WHERE starts_with(user_id, $1)`, r.Users).Scan(&jobs)
	})
	if err != nil {
		return err
	}
	if sessions > 0 {
		r.MessagesPerSess = roundTo(float64(userMsgs+replies)/float64(sessions), 1)
	}
	want := int64(r.Messages)
	r.Checks = []check{
		{fmt.Sprintf("session_messages: %d user messages and %d replies for %d answered sends", userMsgs, replies, want), userMsgs == want && replies == want},
		{fmt.Sprintf("session_messages: %d replies by the deepseek model (the mock)", mockReplies), mockReplies == want},
		{fmt.Sprintf("ai_operation_log: %d successful chat_message rows, %d failed", logged, failedLog), logged == want && failedLog == 0},
		{fmt.Sprintf("conversations: %d sessions, %d still holding a reply lease", sessions, leases), leases == 0},
		{fmt.Sprintf("synthesis_jobs: %d (none expected with HELIX_SYNTHESIZE_EVERY=%d)", jobs, chatSynthesizeEvery), jobs == 0},
		{fmt.Sprintf("mock upstream: %d calls for %d sends (one provider call each)", r.UpstreamCalls, want), r.UpstreamCalls == want},
	}
	b.printf("  info    %.1f messages per session at the end (the history each reply reads grows with them, up to HELIX_CHAT_HISTORY_TOKENS)\n", r.MessagesPerSess)
	return b.printChecks("chat books", r.Checks)
}

// printChecks prints each check and fails naming the wrong ones.
func (b *bench) printChecks(what string, checks []check) error {
	var wrong []string
	for _, c := range checks {
		verdict := "ok     "
		if !c.OK {
			verdict = "WRONG  "
			wrong = append(wrong, c.What)
		}
		b.printf("  %s %s\n", verdict, c.What)
	}
	if len(wrong) > 0 {
		return fmt.Errorf("%s: %s", what, strings.Join(wrong, "; "))
	}
	return nil
}

// chatCounted runs a short send load on a dev server connected through the counting proxy, and
// divides the round trips seen from the first message to the last response by the messages.
func (b *bench) chatCounted(ctx context.Context, r *chatResult, extra []string, mockURL, prefix string) error {
	proxy, err := startPGProxy(b.dbURL)
	if err != nil {
		return err
	}
	defer proxy.close()
	viaProxy, err := proxy.url(b.dbURL)
	if err != nil {
		return err
	}
	srv, err := b.startDevServerOn(ctx, "chat-counted", viaProxy, extra...)
	if err != nil {
		return err
	}
	defer srv.stop()
	// The same users (their budgets are set), in new sessions.
	tokens := make([]string, chatConcurrency)
	for i := range tokens {
		if tokens[i], err = b.tokens.token(fmt.Sprintf("%s-u%03d", prefix, i+1)); err != nil {
			return err
		}
	}
	sessions, err := createSessions(ctx, srv.url, tokens)
	if err != nil {
		return err
	}
	urls := make([]string, len(sessions))
	for i, s := range sessions {
		urls[i] = messagesURL(srv.url, s)
	}
	body := func(w int) string { return chatBody(fmt.Sprintf("Counting round trips, worker %d.", w)) }
	o := load.Options{URLs: urls, Tokens: tokens, BodyFunc: body, Concurrency: chatConcurrency, Duration: chatCountedDuration}
	c0 := proxy.counts()
	s, err := b.runLoad(ctx, o, chatCurl(srv.url+"/chat/sessions/$SESSION/messages")+
		fmt.Sprintf("\n  # in process: %d workers for %s, no warm-up, through the proxy", o.Concurrency, o.Duration))
	c1 := proxy.counts()
	if s.Sent == 0 {
		return err
	}
	r.Counted, r.CountedMessages = s, s.Sent
	r.RoundTrips = c1.minus(c0)
	r.RoundTripsPerMsg = roundTo(float64(r.RoundTrips.roundTrips())/float64(s.Sent), 2)
	b.printf("  info    round trips to Postgres from the first message to the last response: %d (%d Syncs + %d simple Queries) for %d messages = %.2f per message; %d new connections\n",
		r.RoundTrips.roundTrips(), r.RoundTrips.Syncs, r.RoundTrips.Queries, s.Sent, r.RoundTripsPerMsg, r.RoundTrips.Conns)
	b.printf("          (a Sync ends each extended-protocol query or batch, a simple Query is BEGIN/COMMIT/a pool ping; the chat store's Begin is one batch)\n")
	return errors.Join(err, srv.logErrors())
}

// waitShare is one thing the bench database's active backends were doing during a load: a wait
// event, or running (no wait event), and its share of all the samples' active backends.
type waitShare struct {
	What  string  `json:"what"`
	Share float64 `json:"share"`
}

// waitProfile is what the active backends of the bench database did during a load, sampled.
type waitProfile struct {
	Samples       int         `json:"samples"`
	MeanActive    float64     `json:"mean_active_backends"`
	Shares        []waitShare `json:"shares"`
	SampleEvery   string      `json:"sample_every"`
	SampledFromDB string      `json:"sampled_from"`
}

// notifyLock is what the sampler calls a backend waiting for the lock Postgres takes to commit a
// transaction that ran NOTIFY (pg_locks: an object lock on pg_database, object 0): such commits
// take it one at a time, across the whole server, and hold it through their WAL flush.
const notifyLock = "Lock: NOTIFY commit lock"

// waitSampleSQL groups the bench database's active backends by what they wait for.
const waitSampleSQL = `
SELECT CASE WHEN EXISTS (SELECT 1 FROM pg_locks l
                          WHERE l.pid = a.pid AND NOT l.granted AND l.locktype = 'object'
                            AND l.classid = 'pg_database'::regclass AND l.objid = 0)
            THEN '` + notifyLock + `'
            ELSE COALESCE(a.wait_event_type || ': ' || a.wait_event, 'running (no wait event)') END,
       count(*)
  FROM pg_stat_activity a
 WHERE a.datname = $1 AND a.state = 'active' AND a.pid <> pg_backend_pid()
 GROUP BY 1`

// sampleWaits samples, every interval until the returned function is called, what the bench
// database's active backends wait for. It connects to the server's "postgres" database, so its
// queries are not counted in the bench database's transactions.
func (b *bench) sampleWaits(ctx context.Context, every time.Duration) func() waitProfile {
	sctx, stop := context.WithCancel(ctx)
	done := make(chan waitProfile, 1)
	go func() {
		p := waitProfile{SampleEvery: every.String(), SampledFromDB: "postgres (pg_stat_activity, pg_locks)"}
		counts := map[string]int64{}
		var total int64
		defer func() {
			if p.Samples > 0 {
				p.MeanActive = roundTo(float64(total)/float64(p.Samples), 1)
			}
			for what, n := range counts {
				p.Shares = append(p.Shares, waitShare{What: what, Share: roundTo(float64(n)/float64(max(total, 1)), 3)})
			}
			slices.SortFunc(p.Shares, func(a, b waitShare) int { return cmp.Compare(b.Share, a.Share) })
			done <- p
		}()
		conn, err := pgx.Connect(sctx, b.serverURL)
		if err != nil {
			return
		}
		defer conn.Close(context.WithoutCancel(sctx))
		db := ""
		if u, err := url.Parse(b.dbURL); err == nil {
			db = strings.TrimPrefix(u.Path, "/")
		}
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-sctx.Done():
				return
			case <-t.C:
			}
			rows, _ := conn.Query(sctx, waitSampleSQL, db)
			var what string
			var n int64
			_, err := pgx.ForEachRow(rows, []any{&what, &n}, func() error {
				counts[what] += n
				total += n
				return nil
			})
			if err != nil {
				return
			}
			p.Samples++
		}
	}()
	return func() waitProfile {
		stop()
		return <-done
	}
}

// line is the profile in one line: the five biggest shares.
func (p waitProfile) line() string {
	var parts []string
	for _, s := range p.Shares[:min(5, len(p.Shares))] {
		parts = append(parts, fmt.Sprintf("%s %.0f%%", s.What, 100*s.Share))
	}
	return strings.Join(parts, ", ")
}
