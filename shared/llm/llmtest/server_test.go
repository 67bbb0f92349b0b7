package llmtest

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestCloseReleasesHungRequests(t *testing.T) {
	s := StartOpenAI()
	s.Script(Hang())
	done := make(chan error, 1)
	go func() {
		// No deadline: only Close can end this request.
		resp, err := http.Post(s.URL+"/chat/completions", "application/json", strings.NewReader(`{"model":"m"}`))
		if err == nil {
			resp.Body.Close()
		}
		done <- err
	}()
	for len(s.Requests()) == 0 {
		// wait until the handler holds the request
		time.Sleep(time.Millisecond)
	}
	s.Close() // must not block on the hung handler
	<-done
}

func TestUnknownEndpointDoesNotUseTheScript(t *testing.T) {
	s := NewGemini(t)
	s.Script(RateLimited("1"))
	resp, err := http.Post(s.URL+"/v1beta/models/x:countTokens", "application/json", strings.NewReader(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("status = %d, want 404", resp.StatusCode)
	}
	resp, err = http.Post(s.URL+"/v1beta/models/x:generateContent", "application/json", strings.NewReader(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusTooManyRequests {
		t.Errorf("status = %d, want the scripted 429", resp.StatusCode)
	}
	if n := len(s.Requests()); n != 2 {
		t.Errorf("recorded %d requests, want 2", n)
	}
}

func TestRecordingOff(t *testing.T) {
	s := NewAnthropic(t)
	s.SetRecording(false)
	for range 3 {
		resp, err := http.Post(s.URL+"/v1/messages", "application/json", strings.NewReader(`{"model":"m"}`))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	if len(s.Requests()) != 0 || s.Count() != 3 {
		t.Errorf("recorded %d, counted %d; want 0 and 3", len(s.Requests()), s.Count())
	}
}
