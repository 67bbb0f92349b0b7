package outbox

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// Response is what a webhook answered to one request.
type Response struct {
	Status int // 0: no answer (the request failed; Err says why)
	// RetryAfter is how long Discord asked to wait (a 429's retry_after, or Retry-After).
	RetryAfter time.Duration
	// Exhausted: the bucket has no requests left (X-RateLimit-Remaining: 0) until ResetAfter.
	Exhausted  bool
	ResetAfter time.Duration
	Err        error // never holds the webhook URL
}

// Sender posts messages to a webhook.
type Sender interface {
	Send(ctx context.Context, webhook string, msgs []Message) Response
}

// Store is what delivery needs from Postgres.
type Store interface {
	// Lock makes this deliverer the channel's only one until unlock (another run skips it).
	Lock(ctx context.Context, ch Channel) (unlock func(), ok bool, err error)
	// Due lists the channel's undelivered, living items, oldest first, up to limit; it stops
	// at the first one not due yet (order is kept: nothing overtakes a message waiting to retry).
	Due(ctx context.Context, ch Channel, now time.Time, limit int) ([]Item, error)
	Delivered(ctx context.Context, ids []int64, at time.Time) error
	// Failed counts an attempt of each item, to retry at retryAt, or marks it dead.
	Failed(ctx context.Context, ids []int64, reason string, retryAt time.Time, dead bool) error
	// Gone remembers that the channel's webhook (by fingerprint) answered 404; it reports
	// whether this is news. IsGone says whether that webhook is known gone.
	Gone(ctx context.Context, ch Channel, fingerprint, reason string, at time.Time) (bool, error)
	IsGone(ctx context.Context, ch Channel, fingerprint string) (bool, error)
	// Revived forgets a gone webhook once another one (fingerprint) delivered to the channel;
	// it reports whether the channel had one gone (news, once).
	Revived(ctx context.Context, ch Channel, fingerprint string) (bool, error)
}

// Alerter raises and clears alerts (audit events, which reach the alerts channel).
type Alerter interface {
	Alert(ctx context.Context, name, detail string) error
	Clear(ctx context.Context, name, detail string) error
}

// Policy tunes delivery.
type Policy struct {
	// MaxAttempts failed attempts make an item dead (kept, never sent again). With the backoff
	// capped at MaxBackoff, that is hours of outage: a Discord outage of an afternoon loses nothing.
	MaxAttempts int
	MaxBackoff  time.Duration
	// MaxWait is the longest a rate limit is waited out within a run; longer, the channel is
	// left for the next run.
	MaxWait time.Duration
}

// DefaultPolicy: 50 attempts, backoff doubling to 10 minutes (about 7 hours), rate limits up to
// 5 s waited out.
func DefaultPolicy() Policy {
	return Policy{MaxAttempts: 50, MaxBackoff: 10 * time.Minute, MaxWait: 5 * time.Second}
}

// Deliverer delivers the outbox.
type Deliverer struct {
	Store    Store
	Sender   Sender
	Webhooks Webhooks
	Alerter  Alerter
	Logger   *slog.Logger
	Policy   Policy
	Now      func() time.Time
	Sleep    func(context.Context, time.Duration) error
}

// ChannelResult is what a run did for one channel.
type ChannelResult struct {
	Delivered int
	Failed    int
	Note      string // why it stopped early ("" when it emptied the channel or had nothing)
}

// Deliver runs every channel until it is empty, fails, is rate limited beyond MaxWait, or ctx
// ends. Channels are independent and delivered side by side: one failing or hanging webhook
// holds up only its own channel. (Order matters within a channel only.)
func (d *Deliverer) Deliver(ctx context.Context) map[Channel]ChannelResult {
	chans := Channels()
	results := make([]ChannelResult, len(chans))
	var wg sync.WaitGroup
	for i, ch := range chans {
		wg.Go(func() { results[i] = d.channel(ctx, ch) })
	}
	wg.Wait()
	out := make(map[Channel]ChannelResult, len(chans))
	for i, ch := range chans {
		out[ch] = results[i]
	}
	return out
}

func (d *Deliverer) channel(ctx context.Context, ch Channel) (res ChannelResult) {
	url := d.Webhooks[ch]
	if url == "" {
		res.Note = "no webhook configured (" + ch.EnvVar() + "): messages kept undelivered"
		return res
	}
	fp := Fingerprint(url)
	if gone, err := d.Store.IsGone(ctx, ch, fp); err != nil || gone {
		res.Note = "webhook gone (404): messages kept undelivered until a new webhook is set"
		if err != nil {
			res.Note = "store: " + err.Error()
		}
		return res
	}
	unlock, ok, err := d.Store.Lock(ctx, ch)
	if err != nil {
		res.Note = "store: " + err.Error()
		return res
	}
	if !ok {
		res.Note = "another run is delivering it"
		return res
	}
	defer unlock()
	revivalChecked := false
	for ctx.Err() == nil {
		items, err := d.Store.Due(ctx, ch, d.now(), MaxEmbeds)
		if err != nil {
			res.Note = "store: " + err.Error()
			return res
		}
		if len(items) == 0 {
			return res
		}
		// An item that failed before goes alone: if it is the one Discord refuses, it must not
		// take others down with it.
		if items[0].Attempts > 0 {
			items = items[:1]
		}
		msgs := make([]Message, len(items))
		for i, it := range items {
			msgs[i] = Render(it)
		}
		n := Batch(msgs)
		items, msgs = items[:n], msgs[:n]
		ids := make([]int64, n)
		for i, it := range items {
			ids[i] = it.ID
		}
		r := d.Sender.Send(ctx, url, msgs)
		switch {
		case r.Status >= 200 && r.Status < 300:
			if err := d.Store.Delivered(context.WithoutCancel(ctx), ids, d.now()); err != nil {
				res.Note = "store: " + err.Error()
				return res
			}
			res.Delivered += n
			if !revivalChecked {
				revivalChecked = true
				d.clearGone(ctx, ch, fp)
			}
			if r.Exhausted && r.ResetAfter > 0 {
				if note := d.wait(ctx, r.ResetAfter); note != "" {
					res.Note = note
					return res
				}
			}
		case r.Status == 429:
			// Not a failure of the messages: wait, or leave the channel for the next run.
			if note := d.wait(ctx, r.RetryAfter); note != "" {
				res.Note = note
				return res
			}
		case r.Status == 404:
			reason := "the webhook answered 404: it was deleted"
			first, err := d.Store.Gone(context.WithoutCancel(ctx), ch, fp, reason, d.now())
			if err == nil && first && d.Alerter != nil {
				err = d.Alerter.Alert(context.WithoutCancel(ctx), "discord_webhook_gone",
					fmt.Sprintf("The %s webhook (%s) answered 404; its messages are kept undelivered until a new webhook is set.", ch.Name(), ch.EnvVar()))
			}
			if err != nil {
				d.Logger.Error("discord: record a gone webhook", "channel", string(ch), "err", err)
			}
			res.Note = reason
			return res
		default:
			reason := fmt.Sprintf("HTTP %d", r.Status)
			if r.Status == 0 && r.Err != nil {
				reason = r.Err.Error()
			}
			dead := items[0].Attempts+1 >= d.Policy.MaxAttempts
			retry := d.now().Add(d.backoff(items[0].Attempts + 1))
			if err := d.Store.Failed(context.WithoutCancel(ctx), ids, reason, retry, dead); err != nil {
				res.Note = "store: " + err.Error()
				return res
			}
			res.Failed += n
			if dead {
				d.Logger.Error("discord: message dead after too many attempts", "channel", string(ch), "ids", ids, "reason", reason)
				continue // the next message may go now
			}
			d.Logger.Warn("discord: delivery failed; retrying later", "channel", string(ch), "reason", reason, "attempt", items[0].Attempts+1)
			res.Note = reason
			return res
		}
	}
	res.Note = "no time left"
	return res
}

// clearGone clears the gone-webhook alert of a channel whose new webhook just delivered.
func (d *Deliverer) clearGone(ctx context.Context, ch Channel, fp string) {
	back, err := d.Store.Revived(context.WithoutCancel(ctx), ch, fp)
	if err == nil && back && d.Alerter != nil {
		err = d.Alerter.Clear(context.WithoutCancel(ctx), "discord_webhook_gone",
			fmt.Sprintf("The %s channel delivers again, to the new webhook set in %s.", ch.Name(), ch.EnvVar()))
	}
	if err != nil {
		d.Logger.Error("discord: record a revived webhook", "channel", string(ch), "err", err)
	}
}

// wait sleeps d when it fits the policy and ctx; otherwise it says why the channel stops.
func (d *Deliverer) wait(ctx context.Context, wait time.Duration) string {
	if wait <= 0 {
		wait = time.Second
	}
	if wait > d.Policy.MaxWait {
		return fmt.Sprintf("rate limited for %s: left for the next run", wait.Round(time.Millisecond))
	}
	if deadline, ok := ctx.Deadline(); ok && time.Until(deadline) < wait {
		return "rate limited past this run's time"
	}
	sleep := d.Sleep
	if sleep == nil {
		sleep = sleepCtx
	}
	if err := sleep(ctx, wait); err != nil {
		return "no time left"
	}
	return ""
}

func (d *Deliverer) backoff(attempt int) time.Duration {
	b := time.Second << min(attempt, 20)
	return min(b, d.Policy.MaxBackoff)
}

func (d *Deliverer) now() time.Time {
	if d.Now != nil {
		return d.Now()
	}
	return time.Now()
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
