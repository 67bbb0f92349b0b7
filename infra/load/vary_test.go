package load

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// With a URL list each worker sends to its own URL (worker i: URLs[i mod n]), and with a body
// function every request carries the body it made for that request, the first probe and the
// warm-up included.
func TestRunVariesURLAndBody(t *testing.T) {
	var mu sync.Mutex
	bodies := map[string]int{}   // body -> times the server saw it
	byPath := map[string]int{}   // path -> requests
	workerOf := map[string]int{} // path -> the worker named in its bodies (-1: more than one)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw, _ := io.ReadAll(r.Body)
		mu.Lock()
		defer mu.Unlock()
		if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json" {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		body := string(raw)
		bodies[body]++
		byPath[r.URL.Path]++
		var worker, n int
		if _, err := fmt.Sscanf(body, `{"worker":%d,"n":%d}`, &worker, &n); err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		if got, ok := workerOf[r.URL.Path]; !ok {
			workerOf[r.URL.Path] = worker
		} else if got != worker {
			workerOf[r.URL.Path] = -1
		}
		_, _ = io.WriteString(w, "{}")
	}))
	defer srv.Close()

	var counter atomic.Int64
	o := Options{
		URLs:        []string{srv.URL + "/s0", srv.URL + "/s1", srv.URL + "/s2"},
		BodyFunc:    func(w int) string { return fmt.Sprintf(`{"worker":%d,"n":%d}`, w, counter.Add(1)) },
		Concurrency: 3, Duration: 60 * time.Millisecond, Warmup: 20 * time.Millisecond, Timeout: 5 * time.Second,
	}
	if err := o.Check(); err != nil {
		t.Fatal(err)
	}
	if got, want := o.urls(), o.URLs; !slices.Equal(got, want) {
		t.Errorf("urls = %q, want %q", got, want)
	}
	s, err := Run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if s.Errors != 0 || s.Method != http.MethodPost {
		t.Fatalf("errors %d (statuses %v), method %q: want none and POST", s.Errors, s.Statuses, s.Method)
	}
	if int64(s.Sent) != counter.Load() || len(bodies) != s.Sent {
		t.Errorf("sent %d, body function called %d times, %d different bodies seen: want all equal", s.Sent, counter.Load(), len(bodies))
	}
	for b, n := range bodies {
		if n != 1 {
			t.Errorf("body %s seen %d times, want once", b, n)
		}
	}
	for i := range 3 {
		path := fmt.Sprintf("/s%d", i)
		if byPath[path] == 0 || workerOf[path] != i {
			t.Errorf("%s: %d requests, bodies from worker %d; want some, all from worker %d", path, byPath[path], workerOf[path], i)
		}
	}
	if s.URL != o.URLs[0] || s.URLs != 3 {
		t.Errorf("summary URL %q, URLs %d; want %q and 3", s.URL, s.URLs, o.URLs[0])
	}
	var text strings.Builder
	if err := s.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(text.String(), "(and 2 more URLs)") {
		t.Errorf("text output does not say there were more URLs:\n%s", text.String())
	}
}

// More workers than URLs: the URLs are dealt round, as tokens are.
func TestURLsWrapAround(t *testing.T) {
	o := Options{URLs: []string{"http://a", "http://b"}, Concurrency: 5}
	if got, want := o.urls(), []string{"http://a", "http://b", "http://a", "http://b", "http://a"}; !slices.Equal(got, want) {
		t.Errorf("urls = %q, want %q", got, want)
	}
	single := Options{URL: "http://x", Concurrency: 2}
	if got := single.urls(); !slices.Equal(got, []string{"http://x", "http://x"}) {
		t.Errorf("urls with one URL = %q", got)
	}
}

func TestVaryOptionsCheck(t *testing.T) {
	ok := Options{URLs: []string{"http://x"}, BodyFunc: func(int) string { return "{}" }, Concurrency: 1, Duration: time.Second}
	if err := ok.Check(); err != nil {
		t.Errorf("Check(URLs and BodyFunc) = %v", err)
	}
	if ok.method() != http.MethodPost {
		t.Errorf("method with a body function = %q, want POST", ok.method())
	}
	for name, change := range map[string]func(*Options){
		"a URL and a URL list":       func(o *Options) { o.URL = "http://y" },
		"an empty URL in the list":   func(o *Options) { o.URLs = []string{"http://x", ""} },
		"a body and a body function": func(o *Options) { o.Body = "{}" },
	} {
		o := ok
		change(&o)
		if err := o.Check(); err == nil {
			t.Errorf("Check accepted options with %s", name)
		}
	}
}
