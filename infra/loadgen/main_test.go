package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
)

// The command passes its flags to the engine and prints the engine's summary; the engine itself
// is tested in infra/load.
func TestRunPrintsJSON(t *testing.T) {
	var authorized atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && r.Header.Get("Authorization") == "Bearer t1" {
			authorized.Add(1)
		}
		_, _ = io.WriteString(w, "{}")
	}))
	defer srv.Close()
	tokens := filepath.Join(t.TempDir(), "tokens")
	if err := os.WriteFile(tokens, []byte("t1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"-url", srv.URL, "-body", "{}", "-c", "2", "-d", "50ms", "-warmup", "0",
		"-token-file", tokens, "-json"}, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit %d; stderr %s", code, stderr.String())
	}
	var s struct {
		Concurrency int    `json:"concurrency"`
		Method      string `json:"method"`
		Sent        int64  `json:"sent"`
		Errors      int    `json:"errors"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &s); err != nil {
		t.Fatalf("stdout is not the JSON summary: %v\n%s", err, stdout.String())
	}
	if s.Concurrency != 2 || s.Method != http.MethodPost || s.Errors != 0 || s.Sent != authorized.Load() {
		t.Errorf("summary %+v; the server saw %d authorized POSTs", s, authorized.Load())
	}
}

func TestRunFailsOnFailedRequests(t *testing.T) {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if n.Add(1) > 1 { // the first request must succeed, or the run stops at once
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	defer srv.Close()
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"-url", srv.URL, "-c", "1", "-d", "20ms", "-warmup", "0"}, &stdout, &stderr); code != 1 {
		t.Errorf("exit %d, want 1; stderr %s", code, stderr.String())
	}
	if !strings.Contains(stdout.String(), "statuses") || !strings.Contains(stderr.String(), "requests failed") {
		t.Errorf("stdout %q, stderr %q: want the summary and the failure", stdout.String(), stderr.String())
	}
}

func TestBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{},
		{"-url", "http://x", "-c", "0"},
		{"-url", "http://x", "-timeout", "0"},
		{"-url", "http://x", "-token", "a", "-token-file", "/nonexistent"},
		{"-url", "http://x", "-token-file", "/nonexistent"},
		{"-url", "http://x", "extra"},
		{"-nope"},
	} {
		var stdout, stderr bytes.Buffer
		if code := run(context.Background(), args, &stdout, &stderr); code != 2 {
			t.Errorf("%q: exit %d, want 2", args, code)
		}
	}
}
