package discord_test

import (
	"context"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/helixhq/helix/shared/discord"
	"github.com/helixhq/helix/shared/discord/discordtest"
	"github.com/helixhq/helix/shared/outbox"
)

func TestSend(t *testing.T) {
	msgs := []outbox.Message{{Title: "Heartbeat", Description: "all well @everyone", Color: 0x22c55e,
		Fields: []outbox.Field{{Name: "operations", Value: "12", Inline: true}}, Footer: "audit entry 7",
		Timestamp: time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)}}
	tests := []struct {
		name          string
		reply         discordtest.Reply
		wantStatus    int
		wantRetry     time.Duration
		wantExhausted bool
		wantReset     time.Duration
		wantStored    int
	}{
		{name: "accepted", reply: discordtest.Reply{}, wantStatus: http.StatusNoContent, wantStored: 1},
		{name: "accepted, bucket empty", reply: discordtest.Reply{Remaining: "0", ResetAfter: "1.25"}, wantStatus: http.StatusNoContent,
			wantExhausted: true, wantReset: 1250 * time.Millisecond, wantStored: 1},
		{name: "rate limited", reply: discordtest.Reply{Status: 429, RetryAfter: 0.375}, wantStatus: 429, wantRetry: 375 * time.Millisecond},
		{name: "webhook deleted", reply: discordtest.Reply{Status: 404}, wantStatus: 404},
		{name: "outage", reply: discordtest.Reply{Status: 503}, wantStatus: 503},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := discordtest.New(t)
			s.Script("ops", tt.reply)
			r := discord.New().Send(context.Background(), s.Webhook("ops"), msgs)
			if r.Status != tt.wantStatus || r.RetryAfter != tt.wantRetry || r.Exhausted != tt.wantExhausted || r.ResetAfter != tt.wantReset {
				t.Errorf("response %+v, want status %d retry %s exhausted %v reset %s", r, tt.wantStatus, tt.wantRetry, tt.wantExhausted, tt.wantReset)
			}
			if got := s.Received("ops"); len(got) != tt.wantStored {
				t.Fatalf("received %d embeds, want %d", len(got), tt.wantStored)
			}
			if tt.wantStored > 0 {
				e := s.Received("ops")[0]
				if e.Title != "Heartbeat" || e.Footer == nil || e.Footer.Text != "audit entry 7" || e.Timestamp != "2026-12-01T12:00:00Z" || len(e.Fields) != 1 {
					t.Errorf("embed as received: %+v", e)
				}
			}
			if p := s.Problems(); len(p) > 0 {
				t.Errorf("requests broke Discord's rules: %v", p)
			}
			if r.Err != nil && strings.Contains(r.Err.Error(), "SECRET") {
				t.Errorf("the error names the webhook: %v", r.Err)
			}
		})
	}
}

func TestSendNeverRevealsTheWebhook(t *testing.T) {
	s := discordtest.New(t)
	s.Script("slow", discordtest.Reply{Hang: time.Second})
	c := discord.New()
	c.HTTP.Timeout = 50 * time.Millisecond
	msgs := []outbox.Message{{Title: "x"}}
	for name, url := range map[string]string{
		"hangs":        s.Webhook("slow"),
		"refused":      "http://127.0.0.1:1/api/webhooks/1/token-SECRET",
		"not a URL":    "http://[::1:SECRET/api",
		"bad scheme":   "gopher://discord.example/api/webhooks/1/token-SECRET",
		"unknown host": "http://no-such-host.invalid/api/webhooks/1/token-SECRET",
	} {
		r := c.Send(context.Background(), url, msgs)
		if r.Err == nil || r.Status != 0 {
			t.Errorf("%s: response %+v, want a failure without status", name, r)
			continue
		}
		if strings.Contains(r.Err.Error(), "SECRET") || strings.Contains(r.Err.Error(), "api/webhooks") {
			t.Errorf("%s: the error names the webhook: %v", name, r.Err)
		}
	}
}

// A restricted client never connects to an address its rule refuses (loopback here), whatever
// the URL says.
func TestRestrictedClientRefusesAddresses(t *testing.T) {
	srv := discordtest.New(t)
	c := discord.NewRestricted(func(a netip.Addr) bool { return !a.IsLoopback() })
	r := c.Send(t.Context(), srv.Webhook("x"), []outbox.Message{{Title: "hi"}})
	if r.Status != 0 || r.Err == nil || srv.Requests("x") != 0 {
		t.Errorf("sent to loopback: status %d, err %v, %d requests", r.Status, r.Err, srv.Requests("x"))
	}
	open := discord.NewRestricted(func(netip.Addr) bool { return true })
	if r := open.Send(t.Context(), srv.Webhook("x"), []outbox.Message{{Title: "hi"}}); r.Status != 204 && r.Status != 200 {
		t.Errorf("an allowed address: status %d, %v", r.Status, r.Err)
	}
}
