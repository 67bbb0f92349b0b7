package auth

import (
	"testing"
	"time"
)

func TestVerifiedCache(t *testing.T) {
	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	p := Principal{UserID: "alice"}
	tests := []struct {
		name    string
		expires time.Time     // the token's exp (plus leeway)
		at      time.Duration // when it is looked up, after being put
		hit     bool
	}{
		{"within exp and ttl", now.Add(time.Hour), time.Minute, true},
		{"past the ttl", now.Add(time.Hour), 5 * time.Minute, false},
		{"past exp", now.Add(30 * time.Second), 30 * time.Second, false},
		{"just before exp", now.Add(30 * time.Second), 29 * time.Second, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newVerifiedCache(10, 5*time.Minute)
			c.put("tok", p, tt.expires, now)
			got, ok := c.get("tok", now.Add(tt.at))
			if ok != tt.hit || (ok && got != p) {
				t.Errorf("get = %+v, %t; want hit %t", got, ok, tt.hit)
			}
			if _, ok := c.get("tok2", now); ok {
				t.Error("a different token hit")
			}
		})
	}
	t.Run("bounded", func(t *testing.T) {
		c := newVerifiedCache(2, time.Minute)
		for _, tok := range []string{"a", "b", "c"} {
			c.put(tok, p, now.Add(time.Hour), now)
		}
		if len(c.entries) > 2 {
			t.Errorf("%d entries, max 2", len(c.entries))
		}
		if _, ok := c.get("c", now); !ok {
			t.Error("the newest token is missing")
		}
	})
}
