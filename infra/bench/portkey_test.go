package main

import (
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/helixhq/helix/infra/load"
)

func TestPackageVersion(t *testing.T) {
	tests := []struct {
		name, raw, want string
		wantErr         bool
	}{
		{"the package", `{"name":"@portkey-ai/gateway","version":"1.15.2","bin":{"x":"y"}}`, "1.15.2", false},
		{"another version", `{"name":"@portkey-ai/gateway","version":"1.9.0"}`, "1.9.0", false},
		{"another package", `{"name":"gateway","version":"1.15.2"}`, "", true},
		{"no version", `{"name":"@portkey-ai/gateway"}`, "", true},
		{"not JSON", `{"name":`, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := packageVersion([]byte(tt.raw), portkeyPackage)
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Errorf("packageVersion = %q, %v; want %q, error %v", got, err, tt.want, tt.wantErr)
			}
		})
	}
}

// installedPortkey accepts a prefix folder only when it holds this version with its bin: a
// different version is installed anew.
func TestInstalledPortkey(t *testing.T) {
	install := func(t *testing.T, version string, withBin bool) string {
		prefix := t.TempDir()
		pkg := portkeyPackageDir(prefix)
		if err := os.MkdirAll(filepath.Join(pkg, "build"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(pkg, "package.json"), []byte(`{"name":"@portkey-ai/gateway","version":"`+version+`"}`), 0o644); err != nil {
			t.Fatal(err)
		}
		if withBin {
			if err := os.WriteFile(filepath.Join(pkg, filepath.FromSlash(portkeyBin)), []byte("// js\n"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		return prefix
	}
	tests := []struct {
		name    string
		prefix  func(t *testing.T) string
		wantErr string
	}{
		{"right version", func(t *testing.T) string { return install(t, portkeyVersion, true) }, ""},
		{"older version", func(t *testing.T) string { return install(t, "1.14.0", true) }, "holds @portkey-ai/gateway 1.14.0, not " + portkeyVersion},
		{"no bin", func(t *testing.T) string { return install(t, portkeyVersion, false) }, "start-server.js"},
		{"empty folder", func(t *testing.T) string { return t.TempDir() }, "package.json"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			prefix := tt.prefix(t)
			bin, err := installedPortkey(prefix)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				if want := filepath.Join(prefix, "node_modules", "@portkey-ai", "gateway", "build", "start-server.js"); bin != want {
					t.Errorf("bin = %s, want %s", bin, want)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("installedPortkey = %q, %v; want an error with %q", bin, err, tt.wantErr)
			}
		})
	}
	if dir := portkeyDir(); dir != filepath.Join("bench-results", ".tools", "portkey-1.15.2") {
		t.Errorf("portkeyDir = %s: not under the git-ignored bench-results/", dir)
	}
}

func TestNodeMajor(t *testing.T) {
	tests := []struct {
		out     string
		want    int
		wantErr bool
	}{
		{"v20.20.2\n", 20, false},
		{"v18.0.0", 18, false},
		{"22.1.0", 22, false},
		{"", 0, true},
		{"node: command not found", 0, true},
		{"v0.10.48", 0, true},
	}
	for _, tt := range tests {
		got, err := nodeMajor(tt.out)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("nodeMajor(%q) = %d, %v; want %d, error %v", tt.out, got, err, tt.want, tt.wantErr)
		}
	}
}

// Without node or npm the step measures no Portkey and says which is missing, as a notMeasured
// error (the step goes on with Helix against the mock).
func TestPortkeyTools(t *testing.T) {
	lookPath := func(have ...string) func(string) (string, error) {
		return func(name string) (string, error) {
			for _, h := range have {
				if h == name {
					return "/usr/bin/" + name, nil
				}
			}
			return "", &exec.Error{Name: name, Err: exec.ErrNotFound}
		}
	}
	tests := []struct {
		name    string
		have    []string
		missing string
	}{
		{"both", []string{"node", "npm"}, ""},
		{"no npm", []string{"node"}, "npm not found"},
		{"no node", []string{"npm"}, "node not found"},
		{"neither", nil, "node and npm not found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			node, npm, err := portkeyTools(lookPath(tt.have...))
			if tt.missing == "" {
				if err != nil || node != "/usr/bin/node" || npm != "/usr/bin/npm" {
					t.Errorf("portkeyTools = %q, %q, %v", node, npm, err)
				}
				return
			}
			var nm notMeasured
			if !errors.As(err, &nm) || !strings.Contains(err.Error(), tt.missing) {
				t.Errorf("portkeyTools error = %v, want a notMeasured error with %q", err, tt.missing)
			}
		})
	}
}

func TestPortkeyHeaders(t *testing.T) {
	for _, mock := range []string{"http://127.0.0.1:4000", "http://127.0.0.1:4000/"} {
		h := portkeyHeaders(mock)
		if got := h.Get("x-portkey-provider"); got != "openai" {
			t.Errorf("provider = %q", got)
		}
		if got := h.Get("x-portkey-custom-host"); got != "http://127.0.0.1:4000/v1" {
			t.Errorf("custom host for %s = %q, want the mock's /v1 (Portkey appends /chat/completions)", mock, got)
		}
		if got := h.Get("Authorization"); got != "Bearer bench" {
			t.Errorf("authorization = %q", got)
		}
		// The load generator takes them as they are, without a token.
		o := load.Options{URL: "http://x", Concurrency: 1, Duration: time.Second, Headers: h}
		if err := o.Check(); err != nil {
			t.Errorf("load options with the headers: %v", err)
		}
	}
	h := http.Header{"X-B": {"2"}, "X-A": {"1", "3"}}
	if got, want := headerLine(h), "-H 'X-A: 1,3' -H 'X-B: 2'"; got != want {
		t.Errorf("headerLine = %q, want %q", got, want)
	}
	if got := flatHeaders(h); len(got) != 2 || got["X-A"] != "1,3" || got["X-B"] != "2" {
		t.Errorf("flatHeaders = %v", got)
	}
}

func TestMockAnswer(t *testing.T) {
	const mock = `{"choices":[{"finish_reason":"stop","index":0,"message":{"content":"Hello from mockllm.","role":"assistant"}}],"id":"chatcmpl-mock-1","model":"deepseek-chat","object":"chat.completion"}`
	tests := []struct {
		name string
		body string
		ok   bool
	}{
		{"the mock's answer", mock, true},
		{"another model", strings.Replace(mock, "deepseek-chat", "gpt-4o", 1), false},
		{"another text", strings.Replace(mock, "Hello from mockllm.", "Hi", 1), false},
		{"an error", `{"error":{"message":"openai error"}}`, false},
		{"not JSON", `<html>`, false},
	}
	for _, tt := range tests {
		if err := mockAnswer(tt.body); (err == nil) != tt.ok {
			t.Errorf("%s: mockAnswer = %v, want ok %v", tt.name, err, tt.ok)
		}
	}
}

func TestMedian(t *testing.T) {
	tests := []struct {
		in   []float64
		want float64
	}{
		{nil, 0},
		{[]float64{5}, 5},
		{[]float64{9, 1, 5}, 5},
		{[]float64{4, 1, 3, 2}, 2.5},
	}
	for _, tt := range tests {
		in := append([]float64(nil), tt.in...)
		if got := median(tt.in); got != tt.want {
			t.Errorf("median(%v) = %v, want %v", tt.in, got, tt.want)
		}
		for i := range in {
			if in[i] != tt.in[i] {
				t.Errorf("median reordered its input: %v", tt.in)
			}
		}
	}
}

// medians groups the interleaved runs per target, concurrency and users, takes the medians over
// the rounds and the added p50 against the direct runs at the same concurrency.
func TestMedians(t *testing.T) {
	run := func(path string, c, users int, rps float64, p50, p99 int) gatewayRun {
		return gatewayRun{Path: path, Users: users, Summary: load.Summary{Concurrency: c, RPS: rps,
			P50: time.Duration(p50) * time.Millisecond, P99: time.Duration(p99) * time.Millisecond}}
	}
	var runs []gatewayRun
	for _, k := range []float64{1, 3, 2} { // three rounds, the middle one slow
		runs = append(runs,
			run(pathDirect, 1, 0, 1000/k, int(k), int(2*k)),
			run(pathPortkey, 1, 0, 500/k, int(2*k), int(4*k)),
			run(pathHelix, 1, 1, 800/k, int(k)+1, int(2*k)+2))
	}
	for _, k := range []float64{1, 2, 4, 3} { // four rounds: the medians are means of the middle two
		runs = append(runs,
			run(pathDirect, 64, 0, 10000/k, int(k), int(3*k)),
			run(pathPortkey, 64, 0, 1000/k, int(10*k), int(30*k)),
			run(pathHelix, 64, 64, 6000/k, int(2*k), int(6*k)),
			run(pathHelix, 64, 1, 3000/k, int(4*k), int(12*k)))
	}
	got := medians(runs)
	f := func(v float64) *float64 { return &v }
	want := []gatewayMedian{
		{Path: pathDirect, Concurrency: 1, Rounds: 3, RPS: 500, P50MS: 2, P99MS: 4},
		{Path: pathPortkey, Concurrency: 1, Rounds: 3, RPS: 250, P50MS: 4, P99MS: 8, AddedP50MS: f(2)},
		{Path: pathHelix, Users: 1, Concurrency: 1, Rounds: 3, RPS: 400, P50MS: 3, P99MS: 6, AddedP50MS: f(1)},
		{Path: pathDirect, Concurrency: 64, Rounds: 4, RPS: roundTo((10000.0/2+10000.0/3)/2, 1), P50MS: 2.5, P99MS: 7.5},
		{Path: pathPortkey, Concurrency: 64, Rounds: 4, RPS: roundTo((1000.0/2+1000.0/3)/2, 1), P50MS: 25, P99MS: 75, AddedP50MS: f(22.5)},
		{Path: pathHelix, Users: 64, Concurrency: 64, Rounds: 4, RPS: roundTo((6000.0/2+6000.0/3)/2, 1), P50MS: 5, P99MS: 15, AddedP50MS: f(2.5)},
		{Path: pathHelix, Users: 1, Concurrency: 64, Rounds: 4, RPS: roundTo((3000.0/2+3000.0/3)/2, 1), P50MS: 10, P99MS: 30, AddedP50MS: f(7.5)},
	}
	if len(got) != len(want) {
		t.Fatalf("medians = %+v, want %d groups", got, len(want))
	}
	for i := range want {
		g, w := got[i], want[i]
		if (g.AddedP50MS == nil) != (w.AddedP50MS == nil) || (g.AddedP50MS != nil && *g.AddedP50MS != *w.AddedP50MS) {
			t.Errorf("group %d added p50 = %v, want %v", i, g.AddedP50MS, w.AddedP50MS)
		}
		g.AddedP50MS, w.AddedP50MS = nil, nil
		if g != w {
			t.Errorf("group %d = %+v, want %+v", i, g, w)
		}
	}

	g := &gatewayResult{Medians: got}
	if m := g.median(pathHelix, 64, 64); m == nil || m.Users != 64 {
		t.Errorf("median(helix, 64, 64) = %+v", m)
	}
	if m := g.median(pathHelix, 64, 1); m == nil || m.Users != 1 {
		t.Errorf("median(helix, 64, 1) = %+v", m)
	}
	if m := g.median(pathPortkey, 16, 0); m != nil {
		t.Errorf("median at an unmeasured concurrency = %+v", m)
	}
	// Without Portkey's runs there is no added p50 for it and no ratio.
	var noPortkey []gatewayRun
	for _, r := range runs {
		if r.Path != pathPortkey {
			noPortkey = append(noPortkey, r)
		}
	}
	if m := (&gatewayResult{Medians: medians(noPortkey)}).median(pathPortkey, 64, 0); m != nil {
		t.Errorf("portkey median without its runs = %+v", m)
	}
}

// The verdicts compare with issue 3's targets: at -c 1 Helix adds at most 1 ms to the p50; at
// -c 64 it serves at least 5 times Portkey's req/s with a p99 under 100 ms.
func TestGatewayVerdicts(t *testing.T) {
	f := func(v float64) *float64 { return &v }
	meds := func(added1, p99 float64) []gatewayMedian {
		return []gatewayMedian{
			{Path: pathDirect, Concurrency: 1, Rounds: 3},
			{Path: pathHelix, Users: 1, Concurrency: 1, Rounds: 3, AddedP50MS: f(added1)},
			{Path: pathHelix, Users: 64, Concurrency: 64, Rounds: 3, P99MS: p99, AddedP50MS: f(1)},
		}
	}
	tests := []struct {
		name   string
		g      *gatewayResult
		want   []string
		reject []string
	}{
		{"all met", &gatewayResult{Medians: meds(0.8, 40), HelixOverPortkey: 6.2},
			[]string{"adds +0.800 ms to the p50 (target <= 1.0 ms): target met", "= 6.20x (target >= 5x): target met", "p99 40.000 ms (target < 100 ms): target met"},
			[]string{"missed"}},
		{"all missed", &gatewayResult{Medians: meds(1.5, 100), HelixOverPortkey: 4.9},
			[]string{"(target <= 1.0 ms): target missed", "(target >= 5x): target missed", "(target < 100 ms): target missed"},
			[]string{"target met"}},
		{"no portkey", &gatewayResult{Medians: meds(0.5, 10)},
			[]string{"Portkey not measured"}, []string{"x (target", "round by round"}},
		{"round ratios", &gatewayResult{Medians: meds(0.8, 40), HelixOverPortkey: 3.1, RoundRatios: []float64{3.05, 2.7, 3.2}},
			[]string{"= 3.10x (target >= 5x): target missed", "round by round (each Helix run over the Portkey run just before it): 3.05x 2.70x 3.20x"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := strings.Join(gatewayVerdicts(tt.g), "\n")
			for _, w := range tt.want {
				if !strings.Contains(got, w) {
					t.Errorf("verdicts %q lack %q", got, w)
				}
			}
			for _, r := range tt.reject {
				if strings.Contains(got, r) {
					t.Errorf("verdicts %q contain %q", got, r)
				}
			}
		})
	}
}

func TestGatewayRoundsConfig(t *testing.T) {
	c, err := loadConfig(env(nil))
	if err != nil || c.gwRounds != 3 {
		t.Fatalf("default BENCH_GW_ROUNDS = %d, %v; want 3", c.gwRounds, err)
	}
	c, err = loadConfig(env(map[string]string{"BENCH_GW_ROUNDS": "5"}))
	if err != nil || c.gwRounds != 5 {
		t.Errorf("BENCH_GW_ROUNDS=5 gave %d, %v", c.gwRounds, err)
	}
	for _, bad := range []string{"0", "-1", "three"} {
		if _, err := loadConfig(env(map[string]string{"BENCH_GW_ROUNDS": bad})); err == nil || !strings.Contains(err.Error(), "BENCH_GW_ROUNDS") {
			t.Errorf("BENCH_GW_ROUNDS=%s: error %v", bad, err)
		}
	}
}

// pgWindows counts the commits and WAL syncs from each concurrency's first Helix run to the next
// one's, the last to the end, per request of that concurrency.
func TestPGWindows(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	marks := []pgMark{
		{c: 1, stats: pgStats{Commits: 100, WALSyncs: 10}, at: t0, requests: 50},
		{c: 64, stats: pgStats{Commits: 200, WALSyncs: 110}, at: t0.Add(30 * time.Second), requests: 400},
	}
	end := pgStats{Commits: 500, WALSyncs: 210}
	got := pgWindows(marks, end, t0.Add(80*time.Second))
	want := []helixPGWindow{
		{Concurrency: 1, Requests: 50, Seconds: 30, Commits: 100, CommitsPerRequest: 2, WALSyncs: 100, WALSyncsPerRequest: 2},
		{Concurrency: 64, Requests: 400, Seconds: 50, Commits: 300, CommitsPerRequest: 0.75, WALSyncs: 100, WALSyncsPerRequest: 0.25},
	}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("pgWindows = %+v, want %+v", got, want)
	}
	// Without pg_stat_wal only the commits are counted; a window without requests divides by nothing.
	noWAL := []pgMark{{c: 1, stats: pgStats{Commits: 7, WALErr: errors.New("no pg_stat_wal")}, at: t0}}
	got = pgWindows(noWAL, pgStats{Commits: 9, WALErr: errors.New("no pg_stat_wal")}, t0.Add(time.Second))
	if len(got) != 1 || got[0] != (helixPGWindow{Concurrency: 1, Seconds: 1, Commits: 2}) {
		t.Errorf("pgWindows without WAL or requests = %+v", got)
	}
}

func TestRoundRatios(t *testing.T) {
	run := func(path string, round, users, c int, rps float64) gatewayRun {
		return gatewayRun{Path: path, Round: round, Users: users, Summary: load.Summary{Concurrency: c, RPS: rps}}
	}
	for _, tt := range []struct {
		name string
		runs []gatewayRun
		want []float64
	}{
		{"each round's Helix run over its own Portkey run, in round order", []gatewayRun{
			run(pathDirect, 1, 0, 64, 20000), run(pathPortkey, 1, 0, 64, 1000), run(pathHelix, 1, 64, 64, 3000), run(pathHelix, 1, 1, 64, 2500),
			run(pathDirect, 2, 0, 64, 20000), run(pathPortkey, 2, 0, 64, 800), run(pathHelix, 2, 64, 64, 2000), run(pathHelix, 2, 1, 64, 1900),
		}, []float64{3, 2.5}},
		{"the one-user run and other concurrencies are not the target's", []gatewayRun{
			run(pathPortkey, 1, 0, 1, 600), run(pathHelix, 1, 1, 1, 500),
			run(pathPortkey, 1, 0, 64, 1000), run(pathHelix, 1, 1, 64, 9000),
		}, nil},
		{"a round without a Portkey result has no ratio", []gatewayRun{
			run(pathPortkey, 1, 0, 64, 0), run(pathHelix, 1, 64, 64, 3000),
			run(pathPortkey, 2, 0, 64, 1000), run(pathHelix, 2, 64, 64, 2800),
		}, []float64{2.8}},
		{"Portkey not measured", []gatewayRun{run(pathHelix, 1, 64, 64, 3000)}, nil},
		{"a round's runs at another concurrency neither replace its ratio nor add one", []gatewayRun{
			run(pathPortkey, 1, 0, 64, 1000), run(pathHelix, 1, 64, 64, 3000),
			run(pathPortkey, 1, 0, 1, 600), run(pathHelix, 1, 64, 1, 500),
		}, []float64{3}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := roundRatios(tt.runs, 64); !slices.Equal(got, tt.want) {
				t.Errorf("roundRatios = %v, want %v", got, tt.want)
			}
		})
	}
}
