package main

import (
	"bytes"
	"context"
	"math"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"time"

	"github.com/helixhq/helix/infra/load"
)

// results is what bench-results/<stamp>.json holds.
type results struct {
	Stamp        string          `json:"stamp"`
	Started      time.Time       `json:"started"`
	Machine      machine         `json:"machine"`
	Settings     settings        `json:"settings"`
	Postgres     string          `json:"postgres,omitempty"` // the bench database, password hidden
	Route        []routeRun      `json:"route,omitempty"`
	Gateway      *gatewayResult  `json:"gateway,omitempty"`
	Chat         *chatResult     `json:"chat,omitempty"`
	Delivery     *deliveryResult `json:"delivery,omitempty"`
	Idle         *idleResult     `json:"idle,omitempty"`
	Router       []goBenchmark   `json:"router,omitempty"`
	Ledger       []goBenchmark   `json:"ledger,omitempty"`
	Synthesis    []goBenchmark   `json:"synthesis,omitempty"`
	Sizes        []bootstrapSize `json:"sizes,omitempty"`
	Audit        *auditResult    `json:"audit,omitempty"`
	Lambda       *lambdaResult   `json:"lambda,omitempty"`
	Stream       *streamResult   `json:"stream,omitempty"`
	Profile      *profileResult  `json:"profile,omitempty"`
	Steps        []stepResult    `json:"steps"`
	OK           bool            `json:"ok"`
	Interrupted  bool            `json:"interrupted,omitempty"`
	TotalSeconds float64         `json:"total_seconds"`
}

// failedSteps names the steps that did not succeed.
func (r *results) failedSteps() []string {
	var out []string
	for _, s := range r.Steps {
		if !s.OK {
			out = append(out, s.Name)
		}
	}
	return out
}

type stepResult struct {
	Name    string  `json:"name"`
	OK      bool    `json:"ok"`
	Skipped bool    `json:"skipped,omitempty"`
	Error   string  `json:"error,omitempty"`
	Seconds float64 `json:"seconds"`
}

type machine struct {
	Commit     string `json:"commit"`
	Dirty      bool   `json:"working_tree_changed"`
	GoVersion  string `json:"go_version"`
	GOOS       string `json:"goos"`
	GOARCH     string `json:"goarch"`
	CPUs       int    `json:"cpus"`
	CPUModel   string `json:"cpu_model"`
	LoadAvg    string `json:"load_average"` // 1/5/15 minutes, at the start
	GOMAXPROCS int    `json:"gomaxprocs"`
}

type settings struct {
	Duration   string   `json:"duration"`
	GWDuration string   `json:"gateway_duration"`
	GWRounds   int      `json:"gateway_rounds"`
	Warmup     string   `json:"warmup"`
	BenchTime  string   `json:"benchtime"`
	MockDelay  string   `json:"mock_delay"`
	Only       []string `json:"only"`

	ChatDuration     string `json:"chat_duration"`
	DeliveryMessages int    `json:"delivery_messages"`
	IdleWindow       string `json:"idle_window"`
}

func settingsOf(c config) settings {
	return settings{Duration: c.duration.String(), GWDuration: c.gwDuration.String(), GWRounds: c.gwRounds, Warmup: c.warmup.String(),
		BenchTime: c.benchTime, MockDelay: c.mockDelay.String(), Only: c.only,
		ChatDuration: c.chatDuration.String(), DeliveryMessages: c.deliveryMessages, IdleWindow: c.idleWindow.String()}
}

// routeRun is one /ai-router/route load.
type routeRun struct {
	Mode    string       `json:"exec_mode"`
	Summary load.Summary `json:"summary"`
}

// header records and prints what the numbers were measured on.
func (b *bench) header(ctx context.Context) {
	m := machine{
		Commit:     "unknown",
		GoVersion:  runtime.Version(),
		GOOS:       runtime.GOOS,
		GOARCH:     runtime.GOARCH,
		CPUs:       runtime.NumCPU(),
		CPUModel:   cpuModel(),
		LoadAvg:    loadAverage(),
		GOMAXPROCS: runtime.GOMAXPROCS(0),
	}
	if out, err := output(ctx, "git", "rev-parse", "--short", "HEAD"); err == nil {
		m.Commit = strings.TrimSpace(out)
		// git diff --quiet exits 1 when the working tree differs from HEAD.
		m.Dirty = runProc(ctx, "git diff", exec.Command("git", "diff", "--quiet", "HEAD")) != nil
	}
	b.res.Machine = m
	changed := ""
	if m.Dirty {
		changed = " (working tree has changes)"
	}
	b.printf("Helix bench  %s\n", b.stamp)
	b.printf("commit   %s%s\n", m.Commit, changed)
	b.printf("go       %s %s/%s\n", m.GoVersion, m.GOOS, m.GOARCH)
	b.printf("cpu      %d x %s\n", m.CPUs, m.CPUModel)
	b.printf("load     %s (1/5/15 min; anything else running skews every number below)\n", m.LoadAvg)
	b.printf("note     the load generator (in this process), the dev server, the mock upstream and Postgres all share these CPUs\n")
	b.printf("settings BENCH_DURATION=%s BENCH_GW_DURATION=%s BENCH_GW_ROUNDS=%d BENCH_WARMUP=%s BENCH_TIME=%s BENCH_MOCK_DELAY=%s\n",
		b.cfg.duration, b.cfg.gwDuration, b.cfg.gwRounds, b.cfg.warmup, b.cfg.benchTime, b.cfg.mockDelay)
	b.printf("         BENCH_CHAT_DURATION=%s BENCH_DELIVERY_MESSAGES=%d BENCH_IDLE_WINDOW=%s BENCH_ONLY=%s\n",
		b.cfg.chatDuration, b.cfg.deliveryMessages, b.cfg.idleWindow, strings.Join(b.cfg.only, ","))
}

// output runs a short command and returns its stdout.
func output(ctx context.Context, name string, args ...string) (string, error) {
	var out bytes.Buffer
	cmd := exec.Command(name, args...)
	cmd.Stdout = &out
	err := runProc(ctx, name, cmd)
	return out.String(), err
}

// cpuModel is the first "model name" of /proc/cpuinfo (Linux), or "unknown".
func cpuModel() string {
	raw, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "unknown"
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown"
}

// loadAverage is the 1, 5 and 15 minute load averages of /proc/loadavg (Linux), or "unknown".
func loadAverage() string {
	raw, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(raw))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

// roundTo rounds v to n decimals, so the JSON does not carry float noise.
func roundTo(v float64, n int) float64 {
	p := math.Pow(10, float64(n))
	return math.Round(v*p) / p
}
