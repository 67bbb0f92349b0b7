package main

import (
	"context"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"testing"
	"time"
)

func TestParseProcStat(t *testing.T) {
	for _, tc := range []struct {
		name, line string
		want       procStat
		wantErr    bool
	}{
		{name: "postgres backend",
			line: "4242 (postgres) S 4100 4100 4100 0 -1 4194560 1500 0 0 0 731 212 5 7 20 0 1 0 123456 230000000 5000 18446744073709551615 1 1 0 0 0 0 0 4096 0 0 0 0 17 1 0 0 0 0 0\n",
			want: procStat{PID: 4242, PPID: 4100, Comm: "postgres", UTime: 731, STime: 212, CUTime: 5, CSTime: 7}},
		{name: "name with spaces and parentheses",
			line: "17 (a b) (c)) R 1 17 17 0 -1 0 0 0 0 0 10 20 30 40 20 0 1 0 1 1 1",
			want: procStat{PID: 17, PPID: 1, Comm: "a b) (c)", UTime: 10, STime: 20, CUTime: 30, CSTime: 40}},
		{name: "negative child times count as 0",
			line: "5 (x) S 1 5 5 0 -1 0 0 0 0 0 3 4 -1 -2 20 0 1 0 1 1 1",
			want: procStat{PID: 5, PPID: 1, Comm: "x", UTime: 3, STime: 4}},
		{name: "no name", line: "5 x S 1 2 3", wantErr: true},
		{name: "too few fields", line: "5 (x) S 1 5 5 0 -1 0 0 0", wantErr: true},
		{name: "bad utime", line: "5 (x) S 1 5 5 0 -1 0 0 0 0 0 u 4 0 0 20 0 1 0 1 1 1", wantErr: true},
		{name: "bad pid", line: "p (x) S 1 5 5 0 -1 0 0 0 0 0 3 4 0 0 20 0 1 0 1 1 1", wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseProcStat(tc.line)
			if tc.wantErr {
				if err == nil {
					t.Fatalf("parsed %+v, want an error", got)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("got %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
}

// This process's own /proc/<pid>/stat parses, and its CPU time only grows.
func TestReadProcStatSelf(t *testing.T) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("no /proc")
	}
	a, err := readProcStat(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if a.PID != os.Getpid() || a.PPID != os.Getppid() {
		t.Fatalf("pid %d ppid %d, want %d %d", a.PID, a.PPID, os.Getpid(), os.Getppid())
	}
	for x, deadline := 0, time.Now().Add(50*time.Millisecond); time.Now().Before(deadline); x++ {
		_ = x * x
	}
	b, err := readProcStat(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if b.UTime+b.STime < a.UTime+a.STime {
		t.Fatalf("CPU time went back: %+v then %+v", a, b)
	}
}

func TestParseMachineStat(t *testing.T) {
	busy, total, err := parseMachineStat("cpu  100 5 50 1000 20 3 2 1 0 0\ncpu0 50 2 25 500 10 1 1 0 0 0\nintr 1\n")
	if err != nil || busy != 100+5+50+3+2+1 || total != 100+5+50+1000+20+3+2+1 {
		t.Fatalf("busy %d total %d err %v", busy, total, err)
	}
	if _, _, err := parseMachineStat("intr 1\n"); err == nil {
		t.Fatal("no error without a cpu line")
	}
	if _, _, err := parseMachineStat("cpu 1 x 3 4 5\n"); err == nil {
		t.Fatal("no error for a bad number")
	}
}

const sampleTop = `File: devserver
Build ID: 8fd40c8b5ee997633267d8b45bed0d71177e1b0e
Type: cpu
Time: 2026-12-02 12:56:15 UTC
Duration: 8s, Total samples = 4300ms (53.75%)
Showing nodes accounting for 4300ms, 100% of 4300ms total
      flat  flat%   sum%        cum   cum%
     610ms 14.19% 14.19%      610ms 14.19%  internal/runtime/syscall/linux.Syscall6
     150ms  3.49% 17.67%      150ms  3.49%  runtime.memmove
      60ms  1.40% 23.02%       60ms  1.40%  internal/sync.(*Mutex).Lock (inline)
      50ms  1.16% 26.98%      500ms 11.63%  encoding/json.(*decodeState).object
      50ms  1.16% 28.14%      570ms 13.26%  runtime.mallocgc
      30ms   0.7% 36.51%       30ms   0.7%  aeshashbody
      20ms  0.47% 36.98%      530ms 12.33%  github.com/jackc/pgx/v5.(*Conn).Query
      10ms  0.23% 37.21%       20ms  0.47%  github.com/helixhq/helix/shared/execute.(*Pipeline).Execute
      10ms  0.23% 37.44%      920ms 21.40%  github.com/cenkalti/backoff/v5.Retry[go.shape.struct { Text string; Usage github.com/helixhq/helix/shared/llm.Usage }]
         0     0% 37.44%     2920ms 67.91%  net/http.(*conn).serve
`

func TestParsePprofTop(t *testing.T) {
	total, lines, err := parsePprofTop(sampleTop)
	if err != nil {
		t.Fatal(err)
	}
	if total != 4300 || len(lines) != 10 {
		t.Fatalf("total %v, %d lines", total, len(lines))
	}
	if l := lines[0]; l != (topLine{Function: "internal/runtime/syscall/linux.Syscall6", FlatMs: 610, CumMs: 610}) {
		t.Errorf("first line %+v", l)
	}
	if l := lines[2]; l.Function != "internal/sync.(*Mutex).Lock" {
		t.Errorf("(inline) not dropped: %q", l.Function)
	}
	if l := lines[8]; !strings.HasPrefix(l.Function, "github.com/cenkalti/backoff/v5.Retry[go.shape.struct { Text string;") || l.CumMs != 920 {
		t.Errorf("name with spaces: %+v", l)
	}
	if l := lines[9]; l.FlatMs != 0 || l.CumMs != 2920 {
		t.Errorf("zero flat: %+v", l)
	}
	for _, bad := range []string{"no totals here", "Duration: 8s, Total samples = 10ms\nno table"} {
		if _, _, err := parsePprofTop(bad); err == nil {
			t.Errorf("no error for %q", bad)
		}
	}
}

func TestParseMillis(t *testing.T) {
	for in, want := range map[string]float64{"0": 0, "12ms": 12, "1.50s": 1500, "3us": 0.003, "2mins": 120000, "1e+03ms": 1000, "7": 7} {
		if got, err := parseMillis(in); err != nil || math.Abs(got-want) > 1e-9 {
			t.Errorf("parseMillis(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "ms", "x1s", "1.2.3ms"} {
		if _, err := parseMillis(bad); err == nil {
			t.Errorf("parseMillis(%q): no error", bad)
		}
	}
}

func TestAreaOf(t *testing.T) {
	for fn, want := range map[string]string{
		"internal/runtime/syscall/linux.Syscall6":                     "system calls (socket reads and writes, in the kernel)",
		"syscall.RawSyscall6":                                         "system calls (socket reads and writes, in the kernel)",
		"runtime.memmove":                                             "runtime: memmove (copies)",
		"runtime.mallocgc":                                            "runtime: allocation",
		"runtime.memclrNoHeapPointers":                                "runtime: allocation",
		"runtime.scanObject":                                          "runtime: GC",
		"runtime.gcBgMarkWorker":                                      "runtime: GC",
		"internal/runtime/gc/scan.scanSpanPackedAVX512":               "runtime: GC",
		"runtime.findRunnable":                                        "runtime: scheduler, channels, timers",
		"runtime.chanrecv":                                            "runtime: scheduler, channels, timers",
		"internal/runtime/maps.(*Map).getWithoutKeySmallFastStr":      "runtime: maps, hashing",
		"gcWriteBarrier2":                                             "runtime: GC",
		"aeshashbody":                                                 "runtime: maps, hashing",
		"memeqbody":                                                   "strings, bytes, fmt, strconv, bufio, io",
		"runtime.getitab":                                             "runtime: other",
		"net/http.(*conn).serve":                                      "net/http (server, client, headers)",
		"net/textproto.CanonicalMIMEHeaderKey":                        "net/http (server, client, headers)",
		"net.(*conn).Write":                                           "net, internal/poll (sockets)",
		"internal/poll.(*FD).Read":                                    "net, internal/poll (sockets)",
		"encoding/json.(*decodeState).object":                         "encoding/json",
		"crypto/internal/fips140/sha256.blockAVX2":                    "crypto (JWT signatures)",
		"crypto/hmac.(*HMAC).Sum":                                     "crypto (JWT signatures)",
		"github.com/golang-jwt/jwt/v5.(*Parser).ParseWithClaims":      "crypto (JWT signatures)",
		"github.com/jackc/pgx/v5/pgproto3.(*Frontend).Receive":        "pgx (Postgres driver, pool)",
		"github.com/jackc/puddle/v2.(*Pool[go.shape.*uint8]).Acquire": "pgx (Postgres driver, pool)",
		"log/slog.(*JSONHandler).Handle":                              "log/slog",
		"internal/sync.(*Mutex).Lock":                                 "sync",
		"sync.(*Pool).Get":                                            "sync",
		"strconv.AppendInt":                                           "strings, bytes, fmt, strconv, bufio, io",
		"github.com/helixhq/helix/shared/execute.(*Pipeline).Execute": "helix shared/execute",
		"github.com/helixhq/helix/shared/httpapi/openaiapi.(*handlers).chat": "helix shared/httpapi/openaiapi",
		"github.com/sashabaranov/go-openai.(*Client).sendRequest":            "github.com/sashabaranov/go-openai",
		"slices.SortFunc[go.shape.[]string,go.shape.string]":                 "strings, bytes, fmt, strconv, bufio, io",
		"time.Now": "time",
	} {
		if got := areaOf(fn); got != want {
			t.Errorf("areaOf(%q) = %q, want %q", fn, got, want)
		}
	}
}

func TestFuncPackage(t *testing.T) {
	for fn, want := range map[string]string{
		"runtime.mallocgc": "runtime",
		"github.com/jackc/pgx/v5/pgproto3.(*Frontend).Receive":              "github.com/jackc/pgx/v5/pgproto3",
		"github.com/cenkalti/backoff/v5.Retry[go.shape.struct { A a/b.C }]": "github.com/cenkalti/backoff/v5",
		"aeshashbody": "aeshashbody",
		"github.com/helixhq/helix/shared/router.Route.func1": "github.com/helixhq/helix/shared/router",
	} {
		if got := funcPackage(fn); got != want {
			t.Errorf("funcPackage(%q) = %q, want %q", fn, got, want)
		}
	}
}

func TestGroupAreas(t *testing.T) {
	_, lines, err := parsePprofTop(sampleTop)
	if err != nil {
		t.Fatal(err)
	}
	got := groupAreas(lines, 1000, 2000)
	// 610 syscalls, 150 memmove, 60 sync, 50 json, 50 malloc, 30 hashing, 20 pgx, 10 execute, 10 backoff; zero-flat lines left out.
	if len(got) != 9 {
		t.Fatalf("%d areas: %+v", len(got), got)
	}
	if a := got[0]; a.Area != "system calls (socket reads and writes, in the kernel)" || a.Seconds != 0.61 || a.Percent != 61 ||
		a.MicrosPerReq != 305 || a.FunctionsCount != 1 {
		t.Errorf("first area %+v", a)
	}
	// Ties are ordered by name; the order is by CPU otherwise.
	for i := 1; i < len(got); i++ {
		if got[i].Seconds > got[i-1].Seconds || got[i].Seconds == got[i-1].Seconds && got[i].Area < got[i-1].Area {
			t.Errorf("not sorted at %d: %+v", i, got)
		}
	}
	if a := got[3]; a.Area != "encoding/json" || a.MicrosPerReq != 25 {
		t.Errorf("fourth area %+v", a)
	}
	if none := groupAreas(lines, 0, 0); none[0].Percent != 0 || none[0].MicrosPerReq != 0 {
		t.Errorf("no total, no requests: %+v", none[0])
	}
}

func TestCPUTable(t *testing.T) {
	a := profileSample{devserver: 100, mock: 10, bench: 50, postgres: 1000, postgresProcs: 20, machineBusy: 5000}
	b := profileSample{devserver: 300, mock: 30, bench: 100, postgres: 1400, postgresProcs: 21, machineBusy: 5800}
	rows := cpuTable(a, b, 100, 4*time.Second, 1000)
	want := []processCPU{
		{Name: "dev server (Go: Helix)", CPUSeconds: 2, Cores: 0.5, MicrosPerReq: 2000},
		{Name: "postgres (postmaster and its children)", Processes: 21, CPUSeconds: 4, Cores: 1, MicrosPerReq: 4000},
		{Name: "mock upstream (Go)", CPUSeconds: 0.2, Cores: 0.05, MicrosPerReq: 200},
		{Name: "bench process (load generator)", CPUSeconds: 0.5, Cores: 0.13, MicrosPerReq: 500},
		{Name: "everything else on the machine", CPUSeconds: 1.3, Cores: 0.33, MicrosPerReq: 1300},
		{Name: "machine busy (all CPUs)", CPUSeconds: 8, Cores: 2, MicrosPerReq: 8000},
	}
	if len(rows) != len(want) {
		t.Fatalf("rows %+v", rows)
	}
	for i := range want {
		if rows[i] != want[i] {
			t.Errorf("row %d = %+v, want %+v", i, rows[i], want[i])
		}
	}
	// A process that could not be read is left out, and the machine's rest is never negative.
	a.postgres, b.machineBusy = -1, 5100
	rows = cpuTable(a, b, 100, 4*time.Second, 1000)
	if len(rows) != 5 || rows[1].Name != "mock upstream (Go)" || rows[3].CPUSeconds != 0 {
		t.Errorf("rows %+v", rows)
	}
}

func TestFillCounters(t *testing.T) {
	var pg pgProfile
	pg.fillCounters(pgCounters{commits: 100, wal: walStats{Records: 1000, FPI: 1, Bytes: 10000, Writes: 5, Syncs: 5}},
		pgCounters{commits: 1900, wal: walStats{Records: 25000, FPI: 4, Bytes: 3010000, Writes: 805, Syncs: 805}}, 2*time.Second, 1000)
	if pg.Commits != 1800 || pg.CommitsPerSecond != 900 || pg.CommitsPerRequest != 1.8 || pg.WAL.Syncs != 800 ||
		pg.WALSyncsPerSecond != 400 || pg.WALRecordsPerReq != 24 || pg.WALBytesPerReq != 3000 || pg.WALFPIPerReq != 0.003 {
		t.Errorf("%+v", pg)
	}
}

// A real CPU profile, read by the real `go tool pprof` as the step reads it: the functions' flat
// CPU adds up to the samples total, and the grouping keeps all of it.
func TestPprofOfARealProfile(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go tool pprof")
	}
	path := filepath.Join(t.TempDir(), "cpu.pprof")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		t.Fatal(err)
	}
	var sink []string
	for deadline := time.Now().Add(300 * time.Millisecond); time.Now().Before(deadline); {
		sink = append(sink[:0], strings.Repeat("x", 64), time.Now().String())
	}
	pprof.StopCPUProfile()
	f.Close()
	_ = sink
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "go", "tool", "pprof", "-top", "-nodefraction=0", "-nodecount=1000000", "-unit=ms", path).Output()
	if err != nil {
		t.Fatal(err)
	}
	total, lines, err := parsePprofTop(string(out))
	if err != nil {
		t.Fatal(err)
	}
	if total <= 0 || len(lines) == 0 {
		t.Fatalf("total %v, %d lines:\n%s", total, len(lines), out)
	}
	var flat, grouped float64
	for _, l := range lines {
		flat += l.FlatMs
	}
	for _, a := range groupAreas(lines, total, 1) {
		grouped += a.Seconds * 1000
	}
	if math.Abs(flat-total) > 0.5 || math.Abs(grouped-total) > 0.5 {
		t.Fatalf("flat %v, grouped %v, total %v:\n%s", flat, grouped, total, out)
	}
}

// BENCH_PROFILE_CONCURRENCY picks the profile step's concurrency (64 by default, one user per
// worker); a value that is not a concurrency from 1 to 1024 is named in the error.
func TestLoadProfileConcurrency(t *testing.T) {
	tests := []struct {
		value   string
		want    int
		wantErr bool
	}{
		{"", gatewayUsers, false},
		{"1", 1, false},
		{"1024", 1024, false},
		{"0", 0, true},
		{"1025", 0, true},
		{"many", 0, true},
	}
	for _, tt := range tests {
		t.Run("value="+tt.value, func(t *testing.T) {
			vars := map[string]string{}
			if tt.value != "" {
				vars["BENCH_PROFILE_CONCURRENCY"] = tt.value
			}
			c, err := loadConfig(env(vars))
			switch {
			case tt.wantErr && (err == nil || !strings.Contains(err.Error(), "BENCH_PROFILE_CONCURRENCY")):
				t.Errorf("loadConfig = %v, want an error naming BENCH_PROFILE_CONCURRENCY", err)
			case !tt.wantErr && (err != nil || c.profileWorkers != tt.want):
				t.Errorf("profile concurrency = %d, %v; want %d", c.profileWorkers, err, tt.want)
			}
		})
	}
}
