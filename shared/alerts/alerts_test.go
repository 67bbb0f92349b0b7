package alerts

import (
	"errors"
	"net/netip"
	"testing"
	"time"
)

// A condition that lasts ten evaluations fires once and, once gone, clears once.
func TestStepFiresOnceAndClearsOnce(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	var s State
	var got []Transition
	for i, active := range []bool{false, true, true, true, true, true, true, true, true, true, true, false, false, false, false, false} {
		var tr Transition
		s, tr = Step(s, active, float64(i), now.Add(time.Duration(i)*time.Minute))
		if tr != None {
			got = append(got, tr)
		}
	}
	if len(got) != 2 || got[0] != Fired || got[1] != Cleared {
		t.Errorf("transitions %v, want one fire then one clear", got)
	}
	if s.Firing {
		t.Error("still firing after the condition ended")
	}
}

// A condition that comes and goes every minute is one incident: one fire, no clear while it
// flaps, one clear when it has been gone ClearAfter evaluations.
func TestStepDampsFlapping(t *testing.T) {
	now := time.Now()
	var s State
	fires, clears := 0, 0
	seq := []bool{true, false, true, false, false, true, false, true, false, false, true}
	for _, active := range append(seq, false, false, false) {
		var tr Transition
		s, tr = Step(s, active, 0, now)
		switch tr {
		case Fired:
			fires++
		case Cleared:
			clears++
		}
	}
	if fires != 1 || clears != 1 {
		t.Errorf("%d fires and %d clears for a flapping condition, want 1 and 1", fires, clears)
	}
}

func TestCheckWebhook(t *testing.T) {
	cases := []struct {
		url string
		ok  bool
	}{
		{"https://discord.com/api/webhooks/123/abc", true},
		{"https://discordapp.com/api/webhooks/123/abc", true},
		{"https://hooks.example.com/x", true}, // on the allow-list below
		{"http://discord.com/api/webhooks/123/abc", false},
		{"https://discord.com/channels/123", false},
		{"https://127.0.0.1/api/webhooks/1/a", false},
		{"https://169.254.169.254/latest/meta-data/", false},
		{"https://[::1]/api/webhooks/1/a", false},
		{"https://10.0.0.8/hook", false},
		{"https://user:pw@discord.com/api/webhooks/1/a", false},
		{"https://discord.com:8443/api/webhooks/1/a", false},
		{"https://evil.example.net/api/webhooks/1/a", false},
		{"https://localhost/api/webhooks/1/a", false},
		{"not a url", false},
		{"", false},
	}
	for _, c := range cases {
		err := CheckWebhook(c.url, []string{"hooks.example.com"})
		if (err == nil) != c.ok {
			t.Errorf("CheckWebhook(%q) = %v, want ok %v", c.url, err, c.ok)
		}
		if err != nil && !errors.Is(err, ErrInvalid) {
			t.Errorf("CheckWebhook(%q): %v is not ErrInvalid", c.url, err)
		}
	}
}

func TestPublicAddress(t *testing.T) {
	for addr, want := range map[string]bool{
		"162.159.135.232": true, "2606:4700::6810:1": true,
		"127.0.0.1": false, "::1": false, "169.254.169.254": false, "10.1.2.3": false, "192.168.0.1": false,
		"172.16.0.1": false, "100.64.0.1": false, "0.0.0.0": false, "fd00::1": false, "::ffff:127.0.0.1": false,
	} {
		if got := PublicAddress(netip.MustParseAddr(addr)); got != want {
			t.Errorf("PublicAddress(%s) = %v, want %v", addr, got, want)
		}
	}
}

func TestCheckThreshold(t *testing.T) {
	cases := []struct {
		typ string
		v   float64
		ok  bool
	}{
		{DailySpend, 100, true}, {DailySpend, 0, false}, {ErrorRate, 0.05, true}, {ErrorRate, 5, false},
		{Latency, 2000, true}, {Latency, 0, false}, {CostAnomaly, 2, true}, {CostAnomaly, 1, false},
		{BudgetExceeded, 0, true}, {"nope", 1, false},
	}
	for _, c := range cases {
		if err := CheckThreshold(c.typ, c.v); (err == nil) != c.ok {
			t.Errorf("CheckThreshold(%s, %g) = %v, want ok %v", c.typ, c.v, err, c.ok)
		}
	}
}

func TestSealer(t *testing.T) {
	s, err := NewSealer("MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=")
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := s.Seal("https://discord.com/api/webhooks/1/secret")
	if err != nil {
		t.Fatal(err)
	}
	if string(sealed) == "https://discord.com/api/webhooks/1/secret" || len(sealed) < 40 {
		t.Fatal("not sealed")
	}
	if got, err := s.Open(sealed); err != nil || got != "https://discord.com/api/webhooks/1/secret" {
		t.Errorf("Open = %q, %v", got, err)
	}
	other, _ := NewSealer("ZmVkY2JhOTg3NjU0MzIxMGZlZGNiYTk4NzY1NDMyMTA=")
	if _, err := other.Open(sealed); err == nil {
		t.Error("opened with another key")
	}
	if _, err := NewSealer("c2hvcnQ="); err == nil {
		t.Error("a short key was accepted")
	}
}
