package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
)

func TestLoadChatConfig(t *testing.T) {
	c, err := loadConfig(env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if c.chatDuration != 12*time.Second || c.deliveryMessages != 200 || c.idleWindow != 20*time.Second {
		t.Errorf("chat defaults = %v, %d, %v", c.chatDuration, c.deliveryMessages, c.idleWindow)
	}
	for _, s := range []string{stepChat, stepDelivery, stepIdle, stepSynthesis} {
		if !c.wanted(s) {
			t.Errorf("step %s does not run by default", s)
		}
	}
	c, err = loadConfig(env(map[string]string{"BENCH_CHAT_DURATION": "3s", "BENCH_DELIVERY_MESSAGES": "20",
		"BENCH_IDLE_WINDOW": "5s", "BENCH_ONLY": "idle,synthesis"}))
	if err != nil {
		t.Fatal(err)
	}
	if c.chatDuration != 3*time.Second || c.deliveryMessages != 20 || c.idleWindow != 5*time.Second ||
		c.wanted(stepChat, stepDelivery) || !c.wanted(stepIdle) || !c.wanted(stepSynthesis) {
		t.Errorf("config = %+v", c)
	}
	tests := []struct {
		name string
		env  map[string]string
		want string
	}{
		{"delivery messages not a number", map[string]string{"BENCH_DELIVERY_MESSAGES": "many"}, "BENCH_DELIVERY_MESSAGES"},
		{"no delivery messages", map[string]string{"BENCH_DELIVERY_MESSAGES": "0"}, "BENCH_DELIVERY_MESSAGES"},
		{"a zero chat duration", map[string]string{"BENCH_CHAT_DURATION": "0s"}, "BENCH_CHAT_DURATION"},
		{"a zero idle window", map[string]string{"BENCH_IDLE_WINDOW": "0s"}, "BENCH_IDLE_WINDOW"},
		{"an idle window that is not a duration", map[string]string{"BENCH_IDLE_WINDOW": "20"}, "BENCH_IDLE_WINDOW"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := loadConfig(env(tt.env))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("loadConfig = %v, want an error naming %s", err, tt.want)
			}
		})
	}
}

// Each send gets a new client_message_id, so the server never takes one for a resend.
func TestChatBody(t *testing.T) {
	seen := map[string]bool{}
	for range 100 {
		var b struct {
			Content         string `json:"content"`
			ClientMessageID string `json:"client_message_id"`
		}
		if err := json.Unmarshal([]byte(chatBody(`say "hi"`)), &b); err != nil {
			t.Fatal(err)
		}
		if b.Content != `say "hi"` || uuid.Validate(b.ClientMessageID) != nil || seen[b.ClientMessageID] {
			t.Fatalf("body = %+v (a repeated or invalid client_message_id?)", b)
		}
		seen[b.ClientMessageID] = true
	}
}

func TestSummarizeLatencies(t *testing.T) {
	ms := func(v ...int) []time.Duration {
		out := make([]time.Duration, len(v))
		for i, x := range v {
			out[i] = time.Duration(x) * time.Millisecond
		}
		return out
	}
	in := ms(5, -2, 3, 1, 4, 2, 10, 6, 7, 8)
	l := summarizeLatencies(in)
	want := latencies{N: 10, Min: -2 * time.Millisecond, Mean: 4400 * time.Microsecond, P50: 4 * time.Millisecond,
		P90: 8 * time.Millisecond, P99: 10 * time.Millisecond, Max: 10 * time.Millisecond}
	if l != want {
		t.Errorf("summarizeLatencies = %+v, want %+v", l, want)
	}
	if in[0] != 5*time.Millisecond {
		t.Error("summarizeLatencies sorted its input")
	}
	if (summarizeLatencies(nil) != latencies{}) {
		t.Error("no durations should give zeros")
	}
	raw, err := json.Marshal(l)
	if err != nil || !bytes.Contains(raw, []byte(`"p99_ms":10`)) || !bytes.Contains(raw, []byte(`"min_ms":-2`)) {
		t.Errorf("JSON = %s, %v", raw, err)
	}
}

// The chat table says whether the round trips per message meet issue 7's target.
func TestChatTableVerdict(t *testing.T) {
	for _, tt := range []struct {
		perMsg float64
		want   string
	}{{4, "target met"}, {5.01, "target missed"}} {
		b := &bench{res: &results{Chat: &chatResult{CountedMessages: 100, RoundTripsPerMsg: tt.perMsg}}}
		var out bytes.Buffer
		b.chatTable(&out)
		if !strings.Contains(out.String(), tt.want) {
			t.Errorf("%.2f round trips per message: table lacks %q:\n%s", tt.perMsg, tt.want, out.String())
		}
	}
}
