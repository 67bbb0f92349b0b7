package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/helixhq/helix/shared/pgtest"
)

var pg *pgtest.Server

func TestMain(m *testing.M) {
	os.Exit(pgtest.Main(m, func(s *pgtest.Server) { pg = s }))
}

// lockedBuffer is the dev server's stdout, read while it runs.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func freePort(t *testing.T) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// A port in use is an error, and nothing claims that Helix is running.
func TestPortInUse(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	port := strconv.Itoa(taken.Addr().(*net.TCPAddr).Port)
	var out lockedBuffer
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	err = run(ctx, []string{"DATABASE_URL=" + pg.NewDatabase(t), "PORT=" + port}, &out, &out)
	if err == nil || !strings.Contains(err.Error(), port) {
		t.Fatalf("err = %v, want the port named", err)
	}
	if strings.Contains(out.String(), "running at") {
		t.Fatalf("announced a server it does not run:\n%s", out.String())
	}
}

// The dev server answers a browser's CORS preflight from HELIX_CORS_ALLOW_ORIGINS, as API
// Gateway does in AWS, and logs one access line per request at the default level.
func TestDevServer(t *testing.T) {
	port := strconv.Itoa(freePort(t))
	var out, announce lockedBuffer
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"DATABASE_URL=" + pg.NewDatabase(t), "PORT=" + port,
			"HELIX_CORS_ALLOW_ORIGINS=https://app.example.com", pprofEnv + "=127.0.0.1:0"}, &out, &announce)
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	}()
	base := "http://127.0.0.1:" + port
	for i := 0; !strings.Contains(announce.String(), "running at"); i++ {
		if i == 300 {
			t.Fatalf("no announcement after 30 s:\n%s", announce.String())
		}
		time.Sleep(100 * time.Millisecond)
	}

	req, _ := http.NewRequest(http.MethodOptions, base+"/intelligence/email/compose", nil)
	req.Header.Set("Origin", "https://app.example.com")
	req.Header.Set("Access-Control-Request-Method", "POST")
	req.Header.Set("Access-Control-Request-Headers", "authorization,content-type")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusNoContent || res.Header.Get("Access-Control-Allow-Origin") != "https://app.example.com" ||
		!strings.Contains(res.Header.Get("Access-Control-Allow-Headers"), "authorization") {
		t.Fatalf("preflight: %d %v", res.StatusCode, res.Header)
	}

	// The profiles are on their own listener, never on the API's port.
	if !strings.Contains(announce.String(), "pprof on http://127.0.0.1:") {
		t.Errorf("no pprof listener announced:\n%s", announce.String())
	}
	res, err = http.Get(base + "/debug/pprof/cmdline")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode == http.StatusOK {
		t.Errorf("the API port serves /debug/pprof/cmdline")
	}

	res, err = http.Get(base + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("healthz: %d", res.StatusCode)
	}
	for i := 0; !strings.Contains(out.String(), `"route":"GET /healthz"`); i++ {
		if i == 50 {
			t.Fatalf("no access line for GET /healthz at the default level:\n%s", out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	// stdout is JSON lines only, for log tooling.
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		if !json.Valid([]byte(line)) {
			t.Errorf("stdout line is not JSON: %q", line)
		}
	}
}
