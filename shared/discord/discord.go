// Package discord posts messages to Discord webhooks: the outbox's Sender.
//
// It is a small client of its own rather than a library's (disgo's webhook client, say): the
// outbox must decide itself what a 429, a 404 or an outage means for each message (wait, stop the
// channel, retry later, mark dead), read Discord's rate-limit headers per request, and never let
// a webhook URL into an error. Library clients retry and rate-limit internally and report errors
// that carry the URL; this one makes exactly one request per call and reports what came back.
package discord

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"syscall"
	"time"

	"github.com/helixhq/helix/shared/outbox"
)

// Client posts to webhooks.
type Client struct {
	HTTP *http.Client
}

// New returns a client with a 10 s bound per request.
func New() *Client {
	return &Client{HTTP: &http.Client{Timeout: 10 * time.Second}}
}

// NewRestricted returns a client that connects only to addresses allow accepts, checked on
// the address actually dialled (after DNS, on every redirect): for webhooks operators typed in,
// which must never reach loopback, private or metadata addresses. Redirects are not followed.
func NewRestricted(allow func(netip.Addr) bool) *Client {
	dialer := &net.Dialer{Timeout: 5 * time.Second, Control: func(_, address string, _ syscall.RawConn) error {
		ap, err := netip.ParseAddrPort(address)
		if err != nil || !allow(ap.Addr()) {
			return fmt.Errorf("discord: refusing to connect to a non-public address")
		}
		return nil
	}}
	transport := &http.Transport{DialContext: dialer.DialContext, TLSHandshakeTimeout: 5 * time.Second, ForceAttemptHTTP2: true}
	return &Client{HTTP: &http.Client{Timeout: 10 * time.Second, Transport: transport,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

var _ outbox.Sender = (*Client)(nil)

type embed struct {
	Title       string       `json:"title,omitempty"`
	Description string       `json:"description,omitempty"`
	Color       int          `json:"color,omitempty"`
	Fields      []embedField `json:"fields,omitempty"`
	Footer      *embedFooter `json:"footer,omitempty"`
	Timestamp   string       `json:"timestamp,omitempty"`
}

type embedField struct {
	Name   string `json:"name"`
	Value  string `json:"value"`
	Inline bool   `json:"inline,omitempty"`
}

type embedFooter struct {
	Text string `json:"text"`
}

// Body is a webhook request's JSON body (exported for the test server).
type Body struct {
	Embeds          []embed `json:"embeds"`
	AllowedMentions struct {
		Parse []string `json:"parse"`
	} `json:"allowed_mentions"`
}

// Encode is the request body for msgs: embeds, and no mentions parsed (a message quoting
// "@everyone" must not ping anyone).
func Encode(msgs []outbox.Message) ([]byte, error) {
	b := Body{Embeds: make([]embed, len(msgs))}
	b.AllowedMentions.Parse = []string{}
	for i, m := range msgs {
		e := embed{Title: m.Title, Description: m.Description, Color: m.Color}
		for _, f := range m.Fields {
			e.Fields = append(e.Fields, embedField{Name: f.Name, Value: f.Value, Inline: f.Inline})
		}
		if m.Footer != "" {
			e.Footer = &embedFooter{Text: m.Footer}
		}
		if !m.Timestamp.IsZero() {
			e.Timestamp = m.Timestamp.UTC().Format(time.RFC3339)
		}
		b.Embeds[i] = e
	}
	return json.Marshal(b)
}

// Send posts msgs in one request and reports what Discord answered.
func (c *Client) Send(ctx context.Context, webhook string, msgs []outbox.Message) outbox.Response {
	body, err := Encode(msgs)
	if err != nil {
		return outbox.Response{Err: err}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, webhook, bytes.NewReader(body))
	if err != nil {
		return outbox.Response{Err: errors.New("discord: the webhook URL is not a valid URL")}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "Helix (https://github.com/helixhq/helix, 1)")
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return outbox.Response{Err: scrub(err)}
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	r := outbox.Response{Status: resp.StatusCode}
	if resp.Header.Get("X-RateLimit-Remaining") == "0" {
		r.Exhausted = true
		r.ResetAfter = seconds(resp.Header.Get("X-RateLimit-Reset-After"))
	}
	if resp.StatusCode == http.StatusTooManyRequests {
		var rl struct {
			RetryAfter float64 `json:"retry_after"`
		}
		if json.Unmarshal(raw, &rl) == nil && rl.RetryAfter > 0 {
			r.RetryAfter = time.Duration(rl.RetryAfter * float64(time.Second))
		} else {
			r.RetryAfter = seconds(resp.Header.Get("Retry-After"))
		}
	}
	if resp.StatusCode >= 300 {
		r.Err = fmt.Errorf("discord: HTTP %d", resp.StatusCode)
	}
	return r
}

// scrub removes the URL from a transport error: a webhook URL is a secret (anyone holding it can
// post to the channel), and *url.Error prints it.
func scrub(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		if errors.Is(ue.Err, context.DeadlineExceeded) || ue.Timeout() {
			return errors.New("discord: the webhook did not answer in time")
		}
		return fmt.Errorf("discord: request failed: %w", ue.Err)
	}
	return fmt.Errorf("discord: request failed: %w", err)
}

// seconds reads a header of (fractional) seconds.
func seconds(v string) time.Duration {
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || f < 0 {
		return 0
	}
	return time.Duration(f * float64(time.Second))
}
