package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/helixhq/helix/infra/load"
)

// The long-poll steps (issue 7): how soon a second device waiting on a session sees a message
// sent from the first, and what 100 devices waiting on nothing cost Postgres.
const (
	// pollWait is ?wait= of every long-poll, the API's maximum.
	pollWait = 20 * time.Second
	// deliverySettle is the pause between the waiter's long-poll leaving and the send: the
	// server must have subscribed the waiter before the message exists, or the poll would find
	// the message by reading instead of being woken for it.
	deliverySettle = 50 * time.Millisecond
	// idleClients is how many devices wait in the idle step.
	idleClients = 100
	// idleSettle is how long the idle step waits, after the last long-poll left, before it counts.
	idleSettle = 2 * time.Second
	// idleHeldPart is the first part of the idle window, in which no long-poll can end (each was
	// sent at most idleSettle before the window and holds pollWait).
	idleHeldPart = 10 * time.Second
)

// deliveryResult is what the delivery step measured.
type deliveryResult struct {
	User     string `json:"user"`
	Session  string `json:"session"`
	Messages int    `json:"messages"`
	// UserMessage: from just before the sender's POST to the waiting device's GET returning the
	// user message (the server stores and announces it before it asks the model).
	UserMessage latencies `json:"user_message"`
	// Reply: from the sender's POST response (which carries the reply) to the waiting device
	// receiving the same reply; negative when the waiter had it first.
	Reply latencies `json:"reply"`
	// Send is the sender's POST itself.
	Send latencies `json:"send"`
	// WokenPolls counts the waiter's long-polls that returned a message, EmptyPolls those that
	// returned none (a wait that ran out, or a wake without a new message).
	WokenPolls int `json:"woken_polls"`
	EmptyPolls int `json:"empty_polls"`
}

// pollEvent is what the waiting device reports: a long-poll leaving (After set, Seq 0), or a
// message received (Seq set).
type pollEvent struct {
	After, Seq int64
	At         time.Time
	Err        error
}

// messageList is the answer to GET /chat/sessions/{id}/messages, the parts the bench reads.
type messageList struct {
	Messages []struct {
		Seq int64 `json:"seq"`
	} `json:"messages"`
	LastSeq int64 `json:"last_seq"`
}

// getMessages long-polls the session's messages after seq.
func getMessages(ctx context.Context, client *http.Client, base, session, token string, after int64, wait time.Duration) (messageList, int, error) {
	u := fmt.Sprintf("%s?after=%d&wait=%d", messagesURL(base, session), after, int(wait/time.Second))
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return messageList{}, 0, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := client.Do(req)
	if err != nil {
		return messageList{}, 0, err
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		return messageList{}, res.StatusCode, err
	}
	var l messageList
	if res.StatusCode != http.StatusOK {
		return l, res.StatusCode, fmt.Errorf("GET %s answered %d: %s", u, res.StatusCode, clip(string(raw), 300))
	}
	if err := json.Unmarshal(raw, &l); err != nil {
		return l, res.StatusCode, fmt.Errorf("GET %s: %w", u, err)
	}
	return l, res.StatusCode, nil
}

// newClient is an HTTP client of its own (a device: its own connections).
func newClient(conns int) *http.Client {
	return &http.Client{Timeout: pollWait + 10*time.Second, Transport: &http.Transport{Proxy: nil,
		MaxIdleConns: conns, MaxIdleConnsPerHost: conns, IdleConnTimeout: time.Minute}}
}

// delivery sends the step's messages one at a time from one device while a second device
// long-polls the same session, and times when the second sees each message.
func (b *bench) delivery(ctx context.Context) error {
	d := &deliveryResult{}
	b.res.Delivery = d
	mock, err := b.startMock(ctx)
	if err != nil {
		return err
	}
	defer mock.stop()
	srv, err := b.startDevServer(ctx, "delivery", "HELIX_DB_EXEC_MODE=exec", "DEEPSEEK_API_KEY=bench", "DEEPSEEK_BASE_URL="+mock.url,
		fmt.Sprintf("HELIX_SYNTHESIZE_EVERY=%d", chatSynthesizeEvery))
	if err != nil {
		return err
	}
	defer srv.stop()
	d.User = "bench-dl-" + strings.ToLower(b.stamp)
	if err := b.setBudgets(ctx, []string{d.User}); err != nil {
		return fmt.Errorf("set the bench user's budget: %w", err)
	}
	token, err := b.tokens.token(d.User)
	if err != nil {
		return err
	}
	sessions, err := createSessions(ctx, srv.url, []string{token})
	if err != nil {
		return err
	}
	d.Session = sessions[0]
	url := messagesURL(srv.url, d.Session)
	b.printf("user     %s, one session, two devices (HTTP clients of their own)\n", d.User)
	b.printf("waiter   $ curl -s '%s?after=$LAST&wait=%d' -H \"Authorization: Bearer $TOKEN\"   # again at once after each answer, with the new last_seq\n",
		url, int(pollWait/time.Second))
	b.printf("sender   $ %s\n", chatCurl(url))
	b.printf("         %d messages one after another, each sent %s after the waiter's long-poll left (so the server holds it)\n",
		b.cfg.deliveryMessages, deliverySettle)

	wctx, stopWaiter := context.WithCancel(ctx)
	events := make(chan pollEvent, 64)
	var waiterDone sync.WaitGroup
	defer func() {
		stopWaiter()
		waiterDone.Wait()
	}()
	waiterDone.Add(1)
	go func() {
		defer waiterDone.Done()
		waiter(wctx, newClient(1), srv.url, d.Session, token, events, d)
	}()

	// next reads the waiter's events until one satisfies ok.
	next := func(ok func(pollEvent) bool) (pollEvent, error) {
		timeout := time.NewTimer(pollWait + 5*time.Second)
		defer timeout.Stop()
		for {
			select {
			case e := <-events:
				if e.Err != nil {
					return e, e.Err
				}
				if ok(e) {
					return e, nil
				}
			case <-timeout.C:
				return pollEvent{}, errors.New("the waiting device saw nothing for longer than a long-poll")
			case <-ctx.Done():
				return pollEvent{}, ctx.Err()
			}
		}
	}
	sender := newClient(1)
	defer sender.CloseIdleConnections()
	var userLat, replyLat, sendLat []time.Duration
	var last int64
	for i := range b.cfg.deliveryMessages {
		if _, err := next(func(e pollEvent) bool { return e.Seq == 0 && e.After == last }); err != nil {
			return err
		}
		if err := sleep(ctx, deliverySettle); err != nil {
			return err
		}
		t0 := time.Now()
		status, body, err := postWith(ctx, sender, url, token, chatBody(fmt.Sprintf("Message %d from my phone.", i+1)))
		t1 := time.Now()
		if err != nil {
			return fmt.Errorf("send %d: %w", i+1, err)
		}
		var ex exchange
		if status != http.StatusCreated || json.Unmarshal([]byte(body), &ex) != nil || ex.Assistant.Seq == 0 {
			return fmt.Errorf("send %d answered %d: %s", i+1, status, clip(body, 300))
		}
		u, err := next(func(e pollEvent) bool { return e.Seq == ex.User.Seq })
		if err != nil {
			return err
		}
		a, err := next(func(e pollEvent) bool { return e.Seq == ex.Assistant.Seq })
		if err != nil {
			return err
		}
		userLat = append(userLat, u.At.Sub(t0))
		replyLat = append(replyLat, a.At.Sub(t1))
		sendLat = append(sendLat, t1.Sub(t0))
		last = ex.Assistant.Seq
	}
	stopWaiter()
	waiterDone.Wait()
	d.Messages = len(userLat)
	d.UserMessage, d.Reply, d.Send = summarizeLatencies(userLat), summarizeLatencies(replyLat), summarizeLatencies(sendLat)
	b.printf("  user message on the waiting device, from just before the send: p50 %.3f ms, p90 %.3f ms, p99 %.3f ms, max %.3f ms\n",
		load.Millis(d.UserMessage.P50), load.Millis(d.UserMessage.P90), load.Millis(d.UserMessage.P99), load.Millis(d.UserMessage.Max))
	b.printf("  reply on the waiting device, from the sender's response:      p50 %+.3f ms, p90 %+.3f ms, p99 %+.3f ms, max %+.3f ms (negative: the waiter had it first)\n",
		load.Millis(d.Reply.P50), load.Millis(d.Reply.P90), load.Millis(d.Reply.P99), load.Millis(d.Reply.Max))
	b.printf("  the send itself (POST to its response, the reply included):   p50 %.3f ms, p99 %.3f ms\n",
		load.Millis(d.Send.P50), load.Millis(d.Send.P99))
	b.printf("  waiter: %d long-polls woken with a message, %d returned none\n", d.WokenPolls, d.EmptyPolls)
	return srv.logErrors()
}

// postWith sends one JSON request on client and reads the whole answer.
func postWith(ctx context.Context, client *http.Client, url, token, body string) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := client.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	return res.StatusCode, string(raw), err
}

// waiter is the second device: it long-polls the session for what is after the last message it
// has, again as soon as each poll answers, reporting each poll leaving and each message arriving.
// It counts its polls in d (read once it has returned).
func waiter(ctx context.Context, client *http.Client, base, session, token string, events chan<- pollEvent, d *deliveryResult) {
	defer client.CloseIdleConnections()
	send := func(e pollEvent) bool {
		select {
		case events <- e:
			return true
		case <-ctx.Done():
			return false
		}
	}
	var after int64
	for ctx.Err() == nil {
		if !send(pollEvent{After: after, At: time.Now()}) {
			return
		}
		l, _, err := getMessages(ctx, client, base, session, token, after, pollWait)
		at := time.Now()
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			send(pollEvent{Err: fmt.Errorf("the waiting device: %w", err)})
			return
		}
		if len(l.Messages) == 0 {
			d.EmptyPolls++
		} else {
			d.WokenPolls++
		}
		for _, m := range l.Messages {
			if !send(pollEvent{Seq: m.Seq, At: at}) {
				return
			}
		}
		after = max(after, l.LastSeq)
	}
}

// idleResult is what the idle step measured.
type idleResult struct {
	Clients int    `json:"clients"`
	Wait    string `json:"wait"`
	Users   string `json:"users"`
	// Setup is the round trips from the first long-poll leaving to idleSettle after the last
	// (each poll's read of the session, the pool's pings of connections idle for over a second),
	// per poll in SetupPerPoll; the notifier's LISTEN connection was started before.
	Setup        pgCounts `json:"setup_round_trips"`
	SetupPerPoll float64  `json:"setup_round_trips_per_poll"`
	// The window: its length, the round trips in it, and the part of it in which every poll was
	// held (no poll can end there).
	Window       string   `json:"window"`
	WindowRT     pgCounts `json:"window_round_trips"`
	WindowPerSec float64  `json:"window_round_trips_per_second"`
	HeldPart     string   `json:"held_part"`
	HeldRT       pgCounts `json:"held_round_trips"`
	HeldPerSec   float64  `json:"held_round_trips_per_second"`
	PollsEnded   int64    `json:"polls_ended_in_window"`
	ShortestPoll float64  `json:"shortest_ended_poll_seconds"`
	PollsStarted int64    `json:"polls_started"`
}

// idle holds idleClients long-polls open on sessions where nothing happens (each client a user
// and a session of its own, polling again as soon as a poll ends, as a device would), and counts
// the round trips the dev server makes to Postgres meanwhile, through the counting proxy.
func (b *bench) idle(ctx context.Context) error {
	r := &idleResult{Clients: idleClients, Wait: pollWait.String(), Window: b.cfg.idleWindow.String()}
	b.res.Idle = r
	proxy, err := startPGProxy(b.dbURL)
	if err != nil {
		return err
	}
	defer proxy.close()
	viaProxy, err := proxy.url(b.dbURL)
	if err != nil {
		return err
	}
	srv, err := b.startDevServerOn(ctx, "idle", viaProxy, "HELIX_DB_EXEC_MODE=exec")
	if err != nil {
		return err
	}
	defer srv.stop()
	prefix := "bench-idle-" + strings.ToLower(b.stamp)
	r.Users = prefix + "-"
	_, tokens, sessions, err := b.chatUsers(ctx, srv.url, prefix, idleClients)
	if err != nil {
		return err
	}
	b.printf("clients  %d, each user %s-u<n> with a session of its own in which nothing is sent\n", idleClients, prefix)
	b.printf("each     $ curl -s '%s?after=0&wait=%d' -H \"Authorization: Bearer $TOKEN\"   # again as soon as it answers\n",
		messagesURL(srv.url, "$SESSION"), int(pollWait/time.Second))
	b.printf("counted  round trips on the dev server's Postgres connections (pool and LISTEN), through a proxy in this process\n")

	pctx, stopPolls := context.WithCancel(ctx)
	defer stopPolls()
	var started, ended atomic.Int64
	var shortest atomic.Int64 // nanoseconds of the shortest poll that ended, 0 for none
	var mu sync.Mutex
	var pollErrs []error
	var wg sync.WaitGroup
	client := newClient(idleClients)
	defer client.CloseIdleConnections()
	// A first poll starts the notifier's LISTEN connection, which wakes every waiter once when it
	// is up (whatever was announced before it listened): a start-up cost, not the clients'.
	if _, _, err := getMessages(ctx, client, srv.url, sessions[0], tokens[0], 0, time.Second); err != nil {
		return err
	}
	c0 := proxy.counts()
	for i := range idleClients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for pctx.Err() == nil {
				started.Add(1)
				t0 := time.Now()
				l, _, err := getMessages(pctx, client, srv.url, sessions[i], tokens[i], 0, pollWait)
				if pctx.Err() != nil {
					return
				}
				if err == nil && len(l.Messages) > 0 {
					err = fmt.Errorf("an idle session has %d messages", len(l.Messages))
				}
				if err != nil {
					mu.Lock()
					pollErrs = append(pollErrs, err)
					mu.Unlock()
					return
				}
				took := int64(time.Since(t0))
				ended.Add(1)
				for {
					old := shortest.Load()
					if (old != 0 && old <= took) || shortest.CompareAndSwap(old, took) {
						break
					}
				}
			}
		}()
	}
	stopped := func() error {
		stopPolls()
		wg.Wait()
		mu.Lock()
		defer mu.Unlock()
		return errors.Join(pollErrs...)
	}
	for started.Load() < idleClients {
		if err := sleep(ctx, 10*time.Millisecond); err != nil {
			return errors.Join(err, stopped())
		}
	}
	if err := sleep(ctx, idleSettle); err != nil {
		return errors.Join(err, stopped())
	}
	c1 := proxy.counts()
	r.Setup = c1.minus(c0)
	r.SetupPerPoll = roundTo(float64(r.Setup.roundTrips())/float64(idleClients), 2)
	ended0 := ended.Load()

	held := min(idleHeldPart, b.cfg.idleWindow)
	r.HeldPart = held.String()
	t0 := time.Now()
	if err := sleep(ctx, held); err != nil {
		return errors.Join(err, stopped())
	}
	c2 := proxy.counts()
	if rest := b.cfg.idleWindow - time.Since(t0); rest > 0 {
		if err := sleep(ctx, rest); err != nil {
			return errors.Join(err, stopped())
		}
	}
	c3 := proxy.counts()
	window := time.Since(t0)
	r.PollsEnded, r.PollsStarted = ended.Load()-ended0, started.Load()
	r.ShortestPoll = roundTo(time.Duration(shortest.Load()).Seconds(), 2)
	if err := stopped(); err != nil {
		return err
	}
	r.HeldRT, r.WindowRT = c2.minus(c1), c3.minus(c1)
	r.HeldPerSec = roundTo(float64(r.HeldRT.roundTrips())/held.Seconds(), 2)
	r.WindowPerSec = roundTo(float64(r.WindowRT.roundTrips())/window.Seconds(), 2)

	b.printf("  setup   %s from the first long-poll to %s after the last: %.2f per poll\n", r.Setup, idleSettle, r.SetupPerPoll)
	b.printf("  held    %s in the first %s of the window, every poll held: %.2f per second\n", r.HeldRT, held, r.HeldPerSec)
	b.printf("  window  %s in %.1fs: %.2f per second, while %d polls ended (shortest %.2fs) and were sent again\n",
		r.WindowRT, window.Seconds(), r.WindowPerSec, r.PollsEnded, r.ShortestPoll)
	b.printf("  compare polling every 250 ms: %d clients x 4 queries/s = %d per second\n", idleClients, idleClients*4)
	if r.PollsEnded > 0 && r.ShortestPoll < pollWait.Seconds()-1 {
		return fmt.Errorf("a long-poll ended after %.2fs, before its %s wait: the clients were not idle", r.ShortestPoll, pollWait)
	}
	return srv.logErrors()
}
