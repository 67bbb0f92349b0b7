package main

import (
	"slices"
	"strings"
	"testing"
	"time"
)

func TestParseBenchmarks(t *testing.T) {
	out := `goos: linux
goarch: amd64
pkg: github.com/helixhq/helix/shared/postgres
BenchmarkRouteDecide-2   	 4651172	       255.3 ns/op	       0 B/op	       0 allocs/op
BenchmarkReserveSettle/conc=16/users=many-2         	    8001	    416780 ns/op	      2399 pairs/s
BenchmarkNoProcs 	 10	 5 ns/op
--- FAIL: BenchmarkBroken
PASS
ok  	github.com/helixhq/helix/shared/postgres	12.3s
`
	got := parseBenchmarks(out)
	if len(got) != 3 {
		t.Fatalf("parsed %d results, want 3: %+v", len(got), got)
	}
	if r := got[0]; r.Name != "BenchmarkRouteDecide" || r.Procs != 2 || r.Iterations != 4651172 ||
		r.Metrics["ns/op"] != 255.3 || r.Metrics["allocs/op"] != 0 || len(r.Metrics) != 3 {
		t.Errorf("router line = %+v", r)
	}
	if r := got[1]; r.Name != "BenchmarkReserveSettle/conc=16/users=many" || r.Metrics["pairs/s"] != 2399 || r.Metrics["ns/op"] != 416780 {
		t.Errorf("ledger line = %+v", r)
	}
	if r := got[2]; r.Name != "BenchmarkNoProcs" || r.Procs != 0 || r.Metrics["ns/op"] != 5 {
		t.Errorf("line without GOMAXPROCS = %+v", r)
	}
}

func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestLoadConfig(t *testing.T) {
	c, err := loadConfig(env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if c.duration != 12*time.Second || c.gwDuration != 12*time.Second || c.warmup != 2*time.Second ||
		c.benchTime != "3s" || c.mockDelay != 0 || !slices.Equal(c.only, allSteps()) {
		t.Errorf("defaults = %+v", c)
	}
	c, err = loadConfig(env(map[string]string{"BENCH_DURATION": "3s", "BENCH_WARMUP": "0s", "BENCH_TIME": "100x",
		"BENCH_MOCK_DELAY": "20ms", "BENCH_ONLY": "sizes, router,sizes"}))
	if err != nil {
		t.Fatal(err)
	}
	if c.duration != 3*time.Second || c.warmup != 0 || c.benchTime != "100x" || c.mockDelay != 20*time.Millisecond ||
		!slices.Equal(c.only, []string{"sizes", "router"}) || c.wanted(stepRoute) || !c.wanted(stepRoute, stepSizes) {
		t.Errorf("config = %+v", c)
	}
	_, err = loadConfig(env(map[string]string{"BENCH_DURATION": "12", "BENCH_WARMUP": "-1s", "BENCH_ONLY": "routes"}))
	if err == nil {
		t.Fatal("bad values accepted")
	}
	for _, want := range []string{"BENCH_DURATION", "BENCH_WARMUP", `"routes"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %s", err, want)
		}
	}
	if _, err := loadConfig(env(map[string]string{"BENCH_ONLY": ","})); err == nil {
		t.Error("BENCH_ONLY without a step accepted")
	}
}

// The dev server never sees the caller's provider settings or kill switches, and gets the run's
// own values instead of the caller's.
func TestServerEnv(t *testing.T) {
	got := serverEnv([]string{"HOME=/root", "DEEPSEEK_API_KEY=real", "GEMINI_BASE_URL=x", "DISABLE_DEEPSEEK=true",
		"ENABLE_MAINTENANCE_MODE=true", "PORT=3000", "HELIX_JWT_SECRET=s", "HELIX_OFFLINE=true"},
		"PORT=4000", "DEEPSEEK_API_KEY=bench")
	want := []string{"HOME=/root", "HELIX_JWT_SECRET=s", "PORT=4000", "DEEPSEEK_API_KEY=bench"}
	if !slices.Equal(got, want) {
		t.Errorf("serverEnv = %q, want %q", got, want)
	}
}

func TestRedact(t *testing.T) {
	if got := redact("postgres://helix:secret@127.0.0.1:54329/helix_bench?sslmode=disable"); got != "postgres://helix:xxxxx@127.0.0.1:54329/helix_bench" {
		t.Errorf("redact = %q", got)
	}
}
