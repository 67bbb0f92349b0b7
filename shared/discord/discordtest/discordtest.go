// Package discordtest is a local server that speaks Discord's webhook API for tests: it checks
// every request against Discord's limits, records what each webhook received, and answers as
// scripted (an outage, a 429 with retry_after, a 404 for a deleted webhook, a hang).
package discordtest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"
)

// Embed is an embed as received.
type Embed struct {
	Title       string `json:"title"`
	Description string `json:"description"`
	Color       int    `json:"color"`
	Fields      []struct {
		Name   string `json:"name"`
		Value  string `json:"value"`
		Inline bool   `json:"inline"`
	} `json:"fields"`
	Footer *struct {
		Text string `json:"text"`
	} `json:"footer"`
	Timestamp string `json:"timestamp"`
}

// Reply is a scripted answer.
type Reply struct {
	Status     int
	RetryAfter float64       // a 429's retry_after, seconds
	Remaining  string        // X-RateLimit-Remaining, when set
	ResetAfter string        // X-RateLimit-Reset-After, when set
	Hang       time.Duration // answer only after this long (or when the client gives up)
}

// Server is the fake Discord.
type Server struct {
	URL string
	t   testing.TB

	mu       sync.Mutex
	received map[string][]Embed // by webhook path
	requests map[string]int
	script   map[string][]Reply
	fallback map[string]Reply
	problems []string
}

// New starts a server, closed when the test ends.
func New(t testing.TB) *Server {
	s := &Server{t: t, received: map[string][]Embed{}, requests: map[string]int{}, script: map[string][]Reply{}, fallback: map[string]Reply{}}
	srv := httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(srv.Close)
	s.URL = srv.URL
	return s
}

// Webhook is the URL of a webhook named name (its token is part of the path, as Discord's).
func (s *Server) Webhook(name string) string {
	return s.URL + "/api/webhooks/1234/" + name + "-token-SECRET"
}

func pathOf(name string) string { return "/api/webhooks/1234/" + name + "-token-SECRET" }

// Script queues answers for a webhook's next requests; after them it answers Default (204).
func (s *Server) Script(name string, replies ...Reply) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.script[pathOf(name)] = append(s.script[pathOf(name)], replies...)
}

// Default sets the answer once the script is used up.
func (s *Server) Default(name string, r Reply) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fallback[pathOf(name)] = r
}

// Received returns what the webhook accepted (2xx), in order.
func (s *Server) Received(name string) []Embed {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Embed(nil), s.received[pathOf(name)]...)
}

// Requests counts the requests a webhook got, answered or not.
func (s *Server) Requests(name string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests[pathOf(name)]
}

// Problems lists requests that broke Discord's rules (limits, shape).
func (s *Server) Problems() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.problems...)
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Embeds          []Embed `json:"embeds"`
		AllowedMentions *struct {
			Parse []string `json:"parse"`
		} `json:"allowed_mentions"`
	}
	if r.Method != http.MethodPost || !strings.HasPrefix(r.URL.Path, "/api/webhooks/") {
		http.Error(w, `{"message": "404: Not Found", "code": 0}`, http.StatusNotFound)
		return
	}
	err := json.NewDecoder(r.Body).Decode(&body)
	s.mu.Lock()
	s.requests[r.URL.Path]++
	var reply Reply
	if q := s.script[r.URL.Path]; len(q) > 0 {
		reply, s.script[r.URL.Path] = q[0], q[1:]
	} else if f, ok := s.fallback[r.URL.Path]; ok {
		reply = f
	}
	if err != nil {
		s.problems = append(s.problems, "body is not JSON: "+err.Error())
	}
	s.problems = append(s.problems, check(body.Embeds)...)
	if body.AllowedMentions == nil {
		s.problems = append(s.problems, "no allowed_mentions: a message could ping @everyone")
	}
	s.mu.Unlock()

	if reply.Hang > 0 {
		select {
		case <-time.After(reply.Hang):
		case <-r.Context().Done():
			return
		}
	}
	if reply.Remaining != "" {
		w.Header().Set("X-RateLimit-Remaining", reply.Remaining)
		w.Header().Set("X-RateLimit-Reset-After", reply.ResetAfter)
	}
	switch status := reply.Status; {
	case status == 0 || status/100 == 2:
		s.mu.Lock()
		s.received[r.URL.Path] = append(s.received[r.URL.Path], body.Embeds...)
		s.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	case status == http.StatusTooManyRequests:
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Retry-After", fmt.Sprint(int(reply.RetryAfter+0.999)))
		w.WriteHeader(status)
		fmt.Fprintf(w, `{"message": "You are being rate limited.", "retry_after": %g, "global": false}`, reply.RetryAfter)
	case status == http.StatusNotFound:
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		fmt.Fprint(w, `{"message": "Unknown Webhook", "code": 10015}`)
	default:
		w.WriteHeader(status)
		fmt.Fprint(w, `{"message": "upstream trouble"}`)
	}
}

// check applies Discord's embed limits to a request.
func check(embeds []Embed) []string {
	var out []string
	if len(embeds) == 0 || len(embeds) > 10 {
		out = append(out, fmt.Sprintf("%d embeds (1 to 10 allowed)", len(embeds)))
	}
	total := 0
	n := utf8.RuneCountInString
	for i, e := range embeds {
		size := n(e.Title) + n(e.Description)
		if n(e.Title) > 256 || n(e.Description) > 4096 || len(e.Fields) > 25 {
			out = append(out, fmt.Sprintf("embed %d over a limit (title %d, description %d, fields %d)", i, n(e.Title), n(e.Description), len(e.Fields)))
		}
		for _, f := range e.Fields {
			size += n(f.Name) + n(f.Value)
			if n(f.Name) > 256 || n(f.Value) > 1024 || f.Name == "" || f.Value == "" {
				out = append(out, fmt.Sprintf("embed %d has a field of name %d, value %d characters", i, n(f.Name), n(f.Value)))
			}
		}
		if e.Footer != nil {
			size += n(e.Footer.Text)
			if n(e.Footer.Text) > 2048 {
				out = append(out, fmt.Sprintf("embed %d footer of %d characters", i, n(e.Footer.Text)))
			}
		}
		if e.Timestamp != "" {
			if _, err := time.Parse(time.RFC3339, e.Timestamp); err != nil {
				out = append(out, "timestamp not ISO 8601: "+e.Timestamp)
			}
		}
		total += size
	}
	if total > 6000 {
		out = append(out, fmt.Sprintf("embeds total %d characters (6000 allowed)", total))
	}
	return out
}
