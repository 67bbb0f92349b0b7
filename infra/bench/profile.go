package main

// The profile step: where each POST /v1/chat/completions's CPU goes, in Go (a CPU profile of the
// dev server, grouped by area) and in Postgres (the processes' CPU, pg_stat_statements, WAL and
// commits), under the gateway step's 64-users load.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/helixhq/helix/infra/load"
)

const (
	stepProfile = "profile"
	// profileStatements is how many statements the pg_stat_statements table shows.
	profileStatements = 15
	// profileTop is how many functions the pprof views show.
	profileTop = 30
)

// profileResult is what the profile step measured. The per-request figures divide by Requests,
// the requests answered during the window (the mock upstream's calls: one per request).
type profileResult struct {
	Concurrency    int          `json:"concurrency"`
	Users          int          `json:"users"`
	ProfileSeconds int          `json:"profile_seconds"` // BENCH_PROFILE_SECONDS
	Load           load.Summary `json:"load"`            // the whole measured load, around the window
	WindowSeconds  float64      `json:"window_seconds"`
	Requests       int64        `json:"window_requests"`
	RPS            float64      `json:"window_requests_per_second"`

	PprofFile       string    `json:"pprof_file,omitempty"`
	GoCPUSeconds    float64   `json:"go_cpu_seconds"` // the profile's samples total
	GoMicrosPerReq  float64   `json:"go_cpu_us_per_request"`
	Areas           []cpuArea `json:"areas,omitempty"`
	TopFlat         []topLine `json:"top_flat,omitempty"`
	GoProfileReason string    `json:"go_profile_missing,omitempty"`

	Processes []processCPU `json:"processes,omitempty"`
	Postgres  *pgProfile   `json:"postgres,omitempty"`
}

// cpuArea is the flat CPU of the profile's functions of one area (a package or a family).
type cpuArea struct {
	Area           string  `json:"area"`
	Seconds        float64 `json:"seconds"`
	Percent        float64 `json:"percent"`
	MicrosPerReq   float64 `json:"us_per_request"`
	FunctionsCount int     `json:"functions"`
}

// topLine is one function of `go tool pprof -top`, times in milliseconds.
type topLine struct {
	Function string  `json:"function"`
	FlatMs   float64 `json:"flat_ms"`
	CumMs    float64 `json:"cum_ms"`
}

// processCPU is the CPU (user + system) of a process, or a group of them, over the window.
type processCPU struct {
	Name         string  `json:"name"`
	Processes    int     `json:"processes,omitempty"`
	CPUSeconds   float64 `json:"cpu_seconds"`
	Cores        float64 `json:"cores"` // CPU seconds per second of the window
	MicrosPerReq float64 `json:"us_per_request"`
}

// pgProfile is Postgres's side of the window.
type pgProfile struct {
	Reason     string        `json:"statements_missing,omitempty"` // why there are no statements
	Track      string        `json:"pg_stat_statements_track,omitempty"`
	Statements []pgStatement `json:"statements,omitempty"`
	// ExecMsPerReq is the top-level statements' execution time per request.
	ExecMsPerReq float64 `json:"exec_ms_per_request,omitempty"`

	CountersReason    string   `json:"counters_missing,omitempty"`
	Commits           int64    `json:"commits"` // the bench database's
	CommitsPerSecond  float64  `json:"commits_per_second"`
	CommitsPerRequest float64  `json:"commits_per_request"`
	WAL               walStats `json:"wal"` // the whole cluster's
	WALSyncsPerSecond float64  `json:"wal_syncs_per_second"`
	WALRecordsPerReq  float64  `json:"wal_records_per_request"`
	WALBytesPerReq    float64  `json:"wal_bytes_per_request"`
	WALFPIPerReq      float64  `json:"wal_fpi_per_request"`
}

// walStats is pg_stat_wal's counters (or their change over the window).
type walStats struct {
	Records int64 `json:"records"`
	FPI     int64 `json:"fpi"`
	Bytes   int64 `json:"bytes"`
	Writes  int64 `json:"writes"`
	Syncs   int64 `json:"syncs"`
}

type pgStatement struct {
	Query             string  `json:"query"`
	Toplevel          bool    `json:"toplevel"`
	Calls             int64   `json:"calls"`
	CallsPerRequest   float64 `json:"calls_per_request"`
	TotalMs           float64 `json:"total_exec_ms"`
	MeanMs            float64 `json:"mean_exec_ms"`
	RowsPerCall       float64 `json:"rows_per_call"`
	WALRecordsPerCall float64 `json:"wal_records_per_call"`
	SharedHitPerCall  float64 `json:"shared_blks_hit_per_call"`
}

// profile runs step 17: the 64-users load of the gateway step on a dev server with its pprof
// listener, a CPU profile and the processes' and Postgres's counters over a window inside the
// measured load.
func (b *bench) profile(ctx context.Context) error {
	p := &profileResult{Concurrency: b.cfg.profileWorkers, Users: b.cfg.profileWorkers, ProfileSeconds: b.cfg.profileSeconds}
	b.res.Profile = p
	mock, err := b.startMock(ctx)
	if err != nil {
		return err
	}
	defer mock.stop()
	pprofPort, err := freePort()
	if err != nil {
		return err
	}
	pprofURL := fmt.Sprintf("http://127.0.0.1:%d/debug/pprof", pprofPort)
	// The dev server migrates a fresh bench database before it listens: budgets come after.
	srv, err := b.startDevServer(ctx, "profile", "HELIX_DB_EXEC_MODE=exec", "DEEPSEEK_API_KEY=bench",
		"DEEPSEEK_BASE_URL="+mock.url, fmt.Sprintf("HELIX_DEV_PPROF_ADDR=127.0.0.1:%d", pprofPort))
	if err != nil {
		return err
	}
	defer srv.stop()
	if !srv.waitLog(ctx, "deepseek: live", 2*time.Second) {
		return fmt.Errorf("the dev server does not call the mock for deepseek: %s", srv.logText())
	}
	if !srv.waitLog(ctx, "pprof on ", 2*time.Second) {
		return fmt.Errorf("the dev server announced no pprof listener: %s", srv.logText())
	}

	prefix := "bench-prof-" + strings.ToLower(b.stamp)
	users, tokens, err := b.usersWithTokens(prefix, p.Users)
	if err != nil {
		return err
	}
	if err := b.setBudgets(ctx, users); err != nil {
		return fmt.Errorf("set the bench users' budgets: %w", err)
	}
	helix := srv.url + "/v1/chat/completions"
	b.printf("helix    POST %s  %s  (%d users, one per worker)\n", helix, helixBody, len(users))
	b.printf("pprof    %s/profile?seconds=%d during the measured load\n", pprofURL, p.ProfileSeconds)
	if err := b.gatewaySample(ctx, helix, tokens[0]); err != nil {
		return err
	}

	conn, err := pgx.Connect(ctx, b.dbURL)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	pg := &pgProfile{}
	p.Postgres = pg
	if err := prepareStatements(ctx, conn); err != nil {
		pg.Reason = err.Error()
		b.printf("note     no statement statistics: %s\n", pg.Reason)
	} else {
		_ = conn.QueryRow(ctx, "SHOW pg_stat_statements.track").Scan(&pg.Track)
	}
	postmaster, pmErr := postmasterPID(ctx, conn)
	if pmErr != nil {
		b.printf("note     no Postgres process CPU: %v\n", pmErr)
	}
	tick := ticksPerSecond(ctx)

	// The load runs in the background; the window opens a second after its warm-up (the first
	// probe) and closes before the load does.
	window := time.Duration(p.ProfileSeconds) * time.Second
	var (
		wg      sync.WaitGroup
		loadErr error
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		p.Load, loadErr = b.load(ctx, load.Options{URL: helix, Body: helixBody, Tokens: tokens, Concurrency: p.Concurrency,
			Duration: window + 3*time.Second})
	}()
	defer wg.Wait()
	if err := sleep(ctx, b.cfg.warmup+time.Second); err != nil {
		return err
	}

	var errs []error
	if pg.Reason == "" {
		if _, err := conn.Exec(ctx, "SELECT pg_stat_statements_reset()"); err != nil {
			pg.Reason = "pg_stat_statements_reset(): " + err.Error()
		}
	}
	counters0, cErr := readPGCounters(ctx, conn)
	procs0 := b.sampleCPU(srv.cmd.Process.Pid, mock.cmd.Process.Pid, postmaster)
	stats0, err := mockStats(ctx, mock.url)
	if err != nil {
		return err
	}
	t0 := time.Now()
	profilePath := filepath.Join(resultsDir, b.stamp+"-devserver-cpu.pprof")
	profErr := fetchProfile(ctx, pprofURL+"/profile?seconds="+strconv.Itoa(p.ProfileSeconds), profilePath)
	stats1, err := mockStats(ctx, mock.url)
	if err != nil {
		return err
	}
	procs1 := b.sampleCPU(srv.cmd.Process.Pid, mock.cmd.Process.Pid, postmaster)
	elapsed := time.Since(t0)
	counters1, cErr1 := readPGCounters(ctx, conn)
	if pg.Reason == "" {
		if pg.Statements, err = readStatements(ctx, conn); err != nil {
			pg.Reason = err.Error()
		}
	}
	wg.Wait()
	errs = append(errs, loadErr)

	p.WindowSeconds = roundTo(elapsed.Seconds(), 2)
	p.Requests = stats1.Requests - stats0.Requests
	if p.Requests <= 0 {
		return errors.Join(append(errs, fmt.Errorf("no request was answered during the window"))...)
	}
	p.RPS = roundTo(float64(p.Requests)/elapsed.Seconds(), 0)
	perReq := func(seconds float64) float64 { return roundTo(seconds*1e6/float64(p.Requests), 1) }
	b.printf("\nwindow   %.2fs inside the measured load: %d requests answered (the mock's calls), %.0f req/s\n",
		p.WindowSeconds, p.Requests, p.RPS)

	// Processes.
	p.Processes = cpuTable(procs0, procs1, tick, elapsed, p.Requests)
	b.printf("\nCPU per request over the window (utime+stime from /proc/<pid>/stat, %d ticks/s; machine busy from /proc/stat):\n", tick)
	b.printf("  %-44s %6s %9s %7s %10s\n", "process", "procs", "CPU s", "cores", "µs/req")
	for _, c := range p.Processes {
		procs := ""
		if c.Processes > 0 {
			procs = strconv.Itoa(c.Processes)
		}
		b.printf("  %-44s %6s %9.2f %7.2f %10.1f\n", c.Name, procs, c.CPUSeconds, c.Cores, c.MicrosPerReq)
	}

	// Go.
	b.printf("\nGo: the dev server's CPU profile\n")
	if profErr != nil {
		p.GoProfileReason = profErr.Error()
		b.printf("  no profile: %v\n", profErr)
		errs = append(errs, profErr)
	} else {
		p.PprofFile = profilePath
		b.printf("  saved to %s (go tool pprof -http=: %s)\n", profilePath, profilePath)
		if err := b.pprofViews(ctx, p, profilePath, perReq); err != nil {
			errs = append(errs, err)
		}
	}

	// Postgres.
	b.printf("\nPostgres over the window\n")
	if cErr == nil {
		cErr = cErr1
	}
	if cErr != nil {
		pg.CountersReason = cErr.Error()
		b.printf("  no counters: %v\n", cErr)
	} else {
		pg.fillCounters(counters0, counters1, elapsed, p.Requests)
		b.printf("  commits on the bench database  %d: %.0f/s, %.2f per request\n", pg.Commits, pg.CommitsPerSecond, pg.CommitsPerRequest)
		b.printf("  WAL (whole cluster)            %d records (%.2f per request), %d full-page images (%.3f per request), %d bytes (%.0f per request)\n",
			pg.WAL.Records, pg.WALRecordsPerReq, pg.WAL.FPI, pg.WALFPIPerReq, pg.WAL.Bytes, pg.WALBytesPerReq)
		b.printf("  WAL writes / fsyncs            %d / %d: %.0f fsyncs/s, %.3f fsyncs per request\n",
			pg.WAL.Writes, pg.WAL.Syncs, pg.WALSyncsPerSecond, float64(pg.WAL.Syncs)/float64(p.Requests))
		b.printf("  (the cumulative statistics are flushed by each backend at most once a second: ±1 s at each end)\n")
	}
	if pg.Reason != "" {
		b.printf("  no statement statistics: %s\n", pg.Reason)
	} else {
		var execMs float64
		for i := range pg.Statements {
			s := &pg.Statements[i]
			s.CallsPerRequest = roundTo(float64(s.Calls)/float64(p.Requests), 3)
		}
		execMs, _ = topLevelExec(ctx, conn)
		pg.ExecMsPerReq = roundTo(execMs/float64(p.Requests), 3)
		b.printf("  pg_stat_statements (track = %s; nested statements of functions are counted in their caller's time too), top %d by total time;\n",
			pg.Track, profileStatements)
		b.printf("  top-level statements' execution time: %.3f ms per request\n", pg.ExecMsPerReq)
		b.printf("  %8s %7s %9s %9s %8s %8s %8s %3s  %s\n", "calls", "/req", "total ms", "mean ms", "rows/c", "wal/c", "hit/c", "top", "query")
		for _, s := range pg.Statements {
			top := "n"
			if s.Toplevel {
				top = "y"
			}
			b.printf("  %8d %7.2f %9.1f %9.3f %8.2f %8.2f %8.1f %3s  %s\n", s.Calls, s.CallsPerRequest, s.TotalMs, s.MeanMs,
				s.RowsPerCall, s.WALRecordsPerCall, s.SharedHitPerCall, top, clip(s.Query, 110))
		}
	}
	errs = append(errs, srv.logErrors())
	return errors.Join(errs...)
}

// pprofViews prints `go tool pprof -top` by flat and by cum, and the flat CPU grouped by area.
func (b *bench) pprofViews(ctx context.Context, p *profileResult, path string, perReq func(float64) float64) error {
	for _, view := range [][]string{
		{"-top", "-nodecount=" + strconv.Itoa(profileTop)},
		{"-top", "-cum", "-nodecount=" + strconv.Itoa(profileTop)},
	} {
		args := append(append([]string{"tool", "pprof"}, view...), path)
		b.printf("\n$ go %s\n", strings.Join(args, " "))
		out, err := output(ctx, "go", args...)
		if err != nil {
			return fmt.Errorf("go tool pprof: %w", err)
		}
		b.printf("%s", indent(out, "  "))
	}
	out, err := output(ctx, "go", "tool", "pprof", "-top", "-nodefraction=0", "-nodecount=1000000", "-unit=ms", path)
	if err != nil {
		return fmt.Errorf("go tool pprof: %w", err)
	}
	total, lines, err := parsePprofTop(out)
	if err != nil {
		return err
	}
	p.GoCPUSeconds = roundTo(total/1000, 3)
	p.GoMicrosPerReq = perReq(total / 1000)
	p.TopFlat = lines[:min(profileTop, len(lines))]
	p.Areas = groupAreas(lines, total, p.Requests)
	b.printf("\nflat CPU by area: %.2f s of samples = %.1f µs of the dev server's CPU per request\n", p.GoCPUSeconds, p.GoMicrosPerReq)
	b.printf("  %-54s %8s %7s %9s %6s\n", "area", "CPU s", "%", "µs/req", "funcs")
	for _, a := range p.Areas {
		b.printf("  %-54s %8.3f %6.1f%% %9.1f %6d\n", a.Area, a.Seconds, a.Percent, a.MicrosPerReq, a.FunctionsCount)
	}
	return nil
}

func indent(s, prefix string) string {
	var out strings.Builder
	for _, line := range strings.SplitAfter(s, "\n") {
		if line != "" {
			out.WriteString(prefix + line)
		}
	}
	return out.String()
}

// fetchProfile saves the CPU profile at url (which answers after the profile's seconds) to path.
func fetchProfile(ctx context.Context, url, path string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	client := &http.Client{Transport: &http.Transport{Proxy: nil}}
	defer client.CloseIdleConnections()
	res, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("fetch the CPU profile: %w", err)
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		return fmt.Errorf("fetch the CPU profile: %w", err)
	}
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("fetch the CPU profile: %d %s", res.StatusCode, clip(string(raw), 200))
	}
	return os.WriteFile(path, raw, 0o644)
}

// ---- /proc ----

// procStat is what profile reads of /proc/<pid>/stat; times in clock ticks.
type procStat struct {
	PID, PPID                    int
	Comm                         string
	UTime, STime, CUTime, CSTime uint64
}

// parseProcStat parses a /proc/<pid>/stat line. The command name, in parentheses, may hold
// spaces and parentheses itself: the fields after it follow the last ')'.
func parseProcStat(line string) (procStat, error) {
	open, close := strings.IndexByte(line, '('), strings.LastIndexByte(line, ')')
	if open < 1 || close < open {
		return procStat{}, fmt.Errorf("not a /proc/<pid>/stat line: %q", clip(line, 80))
	}
	pid, err := strconv.Atoi(strings.TrimSpace(line[:open]))
	if err != nil {
		return procStat{}, fmt.Errorf("/proc/<pid>/stat: pid %q", line[:open])
	}
	// After the name: state (field 3), ppid (4), ..., utime (14), stime (15), cutime (16), cstime (17).
	f := strings.Fields(line[close+1:])
	if len(f) < 15 {
		return procStat{}, fmt.Errorf("/proc/%d/stat has %d fields after the name, want at least 15", pid, len(f))
	}
	s := procStat{PID: pid, Comm: line[open+1 : close]}
	if s.PPID, err = strconv.Atoi(f[1]); err != nil {
		return procStat{}, fmt.Errorf("/proc/%d/stat: ppid %q", pid, f[1])
	}
	for i, dst := range []*uint64{&s.UTime, &s.STime, &s.CUTime, &s.CSTime} {
		// cutime and cstime are signed in the kernel's format; a negative one counts as 0.
		v, err := strconv.ParseInt(f[11+i], 10, 64)
		if err != nil {
			return procStat{}, fmt.Errorf("/proc/%d/stat: field %d %q", pid, 14+i, f[11+i])
		}
		*dst = uint64(max(v, 0))
	}
	return s, nil
}

func readProcStat(pid int) (procStat, error) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return procStat{}, err
	}
	return parseProcStat(string(raw))
}

// parseMachineStat is the busy and total clock ticks of /proc/stat's "cpu" line (busy: all but
// idle and iowait; guest time is already in user).
func parseMachineStat(raw string) (busy, total uint64, err error) {
	for _, line := range strings.Split(raw, "\n") {
		f := strings.Fields(line)
		if len(f) < 5 || f[0] != "cpu" {
			continue
		}
		for i, v := range f[1:min(len(f), 9)] { // user nice system idle iowait irq softirq steal
			n, err := strconv.ParseUint(v, 10, 64)
			if err != nil {
				return 0, 0, fmt.Errorf("/proc/stat: %q", v)
			}
			total += n
			if i != 3 && i != 4 {
				busy += n
			}
		}
		return busy, total, nil
	}
	return 0, 0, errors.New("/proc/stat has no cpu line")
}

// profileSample is the CPU ticks of the step's processes at one moment (-1: could not be read).
type profileSample struct {
	devserver, mock, bench int64
	postgres               int64
	postgresProcs          int
	machineBusy            int64
}

// sampleCPU reads the dev server's, the mock's, this process's and Postgres's CPU so far. For
// Postgres: the postmaster's own time and that of the children it has reaped (cutime, cstime:
// a backend that exits inside the window keeps counting), plus each live child's.
func (b *bench) sampleCPU(devserver, mock, postmaster int) profileSample {
	self := func(pid int) int64 {
		s, err := readProcStat(pid)
		if err != nil {
			return -1
		}
		return int64(s.UTime + s.STime)
	}
	c := profileSample{devserver: self(devserver), mock: self(mock), bench: self(os.Getpid()), postgres: -1, machineBusy: -1}
	if raw, err := os.ReadFile("/proc/stat"); err == nil {
		if busy, _, err := parseMachineStat(string(raw)); err == nil {
			c.machineBusy = int64(busy)
		}
	}
	if postmaster > 0 {
		if pm, err := readProcStat(postmaster); err == nil {
			c.postgres = int64(pm.UTime + pm.STime + pm.CUTime + pm.CSTime)
			c.postgresProcs = 1
			entries, _ := os.ReadDir("/proc")
			for _, e := range entries {
				pid, err := strconv.Atoi(e.Name())
				if err != nil {
					continue
				}
				if s, err := readProcStat(pid); err == nil && s.PPID == postmaster {
					c.postgres += int64(s.UTime + s.STime)
					c.postgresProcs++
				}
			}
		}
	}
	return c
}

// cpuTable turns two samples into CPU seconds, cores and µs per request, with the rest of the
// machine's busy time as "everything else".
func cpuTable(a, b profileSample, tick int, window time.Duration, requests int64) []processCPU {
	var rows []processCPU
	var ours int64
	row := func(name string, procs int, before, after int64) {
		if before < 0 || after < 0 {
			return
		}
		ticks := after - before
		ours += ticks
		rows = append(rows, cpuRow(name, procs, ticks, tick, window, requests))
	}
	row("dev server (Go: Helix)", 0, a.devserver, b.devserver)
	row("postgres (postmaster and its children)", b.postgresProcs, a.postgres, b.postgres)
	row("mock upstream (Go)", 0, a.mock, b.mock)
	row("bench process (load generator)", 0, a.bench, b.bench)
	if a.machineBusy >= 0 && b.machineBusy >= 0 {
		busy := b.machineBusy - a.machineBusy
		rows = append(rows, cpuRow("everything else on the machine", 0, max(busy-ours, 0), tick, window, requests))
		rows = append(rows, cpuRow("machine busy (all CPUs)", 0, busy, tick, window, requests))
	}
	return rows
}

func cpuRow(name string, procs int, ticks int64, tick int, window time.Duration, requests int64) processCPU {
	sec := float64(ticks) / float64(tick)
	r := processCPU{Name: name, Processes: procs, CPUSeconds: roundTo(sec, 2)}
	if window > 0 {
		r.Cores = roundTo(sec/window.Seconds(), 2)
	}
	if requests > 0 {
		r.MicrosPerReq = roundTo(sec*1e6/float64(requests), 1)
	}
	return r
}

// ticksPerSecond is USER_HZ, the unit of /proc's times (getconf CLK_TCK; clockTicks when
// getconf fails).
func ticksPerSecond(ctx context.Context) int {
	out, err := output(ctx, "getconf", "CLK_TCK")
	if n, perr := strconv.Atoi(strings.TrimSpace(out)); err == nil && perr == nil && n > 0 {
		return n
	}
	return clockTicks
}

// ---- pprof ----

var totalSamples = regexp.MustCompile(`Total samples = (\S+)`)

// parsePprofTop reads `go tool pprof -top` output: the samples total and each function's flat
// and cum, in milliseconds, in the order printed (by flat).
func parsePprofTop(out string) (totalMs float64, lines []topLine, err error) {
	m := totalSamples.FindStringSubmatch(out)
	if m == nil {
		return 0, nil, errors.New("go tool pprof: no \"Total samples\" in its output")
	}
	if totalMs, err = parseMillis(m[1]); err != nil {
		return 0, nil, err
	}
	inTable := false
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if !inTable {
			inTable = len(f) >= 5 && f[0] == "flat" && f[1] == "flat%"
			continue
		}
		if len(f) < 6 {
			continue
		}
		flat, err1 := parseMillis(f[0])
		cum, err2 := parseMillis(f[3])
		if err1 != nil || err2 != nil {
			continue
		}
		fn := strings.TrimSuffix(strings.Join(f[5:], " "), " (inline)")
		lines = append(lines, topLine{Function: fn, FlatMs: flat, CumMs: cum})
	}
	if !inTable {
		return 0, nil, errors.New("go tool pprof: no table in its output")
	}
	return totalMs, lines, nil
}

// parseMillis reads a pprof value ("0", "12ms", "1.50s", "3us", "2mins") as milliseconds.
func parseMillis(v string) (float64, error) {
	units := []struct {
		suffix string
		ms     float64
	}{{"mins", 60000}, {"hrs", 3600000}, {"ms", 1}, {"us", 0.001}, {"µs", 0.001}, {"ns", 0.000001}, {"s", 1000}}
	for _, u := range units {
		if n, ok := strings.CutSuffix(v, u.suffix); ok {
			f, err := strconv.ParseFloat(n, 64)
			if err != nil {
				return 0, fmt.Errorf("pprof value %q", v)
			}
			return f * u.ms, nil
		}
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil {
		return 0, fmt.Errorf("pprof value %q", v)
	}
	return f, nil
}

// funcPackage is the import path of a pprof function name: up to the first '.' after the last
// '/' of the part before any '(' or '[' (methods, generics' type arguments).
func funcPackage(fn string) string {
	head := fn
	if i := strings.IndexAny(head, "(["); i >= 0 {
		head = head[:i]
	}
	slash := strings.LastIndexByte(head, '/')
	if dot := strings.IndexByte(fn[slash+1:], '.'); dot >= 0 {
		return fn[:slash+1+dot]
	}
	return fn
}

const helixModule = "github.com/helixhq/helix/"

// areaOf names the area a function's CPU is shown under: a family (runtime's GC, allocation,
// scheduler; system calls; crypto; pgx; ...), a Helix package, else its package.
func areaOf(fn string) string {
	pkg := funcPackage(fn)
	name := strings.TrimPrefix(fn, pkg+".")
	lower := strings.ToLower(name)
	has := func(words ...string) bool {
		for _, w := range words {
			if strings.Contains(lower, strings.ToLower(w)) {
				return true
			}
		}
		return false
	}
	switch {
	case pkg == "syscall" || strings.HasPrefix(pkg, "internal/runtime/syscall") || strings.HasPrefix(pkg, "golang.org/x/sys/"):
		return "system calls (socket reads and writes, in the kernel)"
	case strings.HasPrefix(pkg, "internal/runtime/gc") || strings.HasPrefix(fn, "gcWriteBarrier"):
		return "runtime: GC"
	case pkg == "internal/runtime/maps" || strings.Contains(fn, "hashbody") || strings.HasPrefix(fn, "runtime.memhash") ||
		strings.HasPrefix(fn, "runtime.strhash") || strings.HasPrefix(fn, "runtime.map"):
		return "runtime: maps, hashing"
	case fn == "runtime.memmove":
		return "runtime: memmove (copies)"
	case !strings.Contains(fn, ".") && strings.HasSuffix(fn, "body"): // assembly: memeqbody, indexbytebody, ...
		return "strings, bytes, fmt, strconv, bufio, io"
	case pkg == "runtime" || strings.HasPrefix(pkg, "internal/runtime/"):
		switch {
		case has("gcBgMarkWorker", "gcDrain", "scanobject", "scanblock", "scanstack", "scanframe", "greyobject", "markBits",
			"findObject", "wbBuf", "Barrier", "sweep", "gcMark", "gcStart", "spanOf", "heapBitsForAddr", "typePointers",
			"gcWork", "markroot", "tryDeferToSpanScan", "scanSpan", "gcAssist", "bgscavenge", "scavenge"):
			return "runtime: GC"
		case has("malloc", "mcache", "mcentral", "mheap", "nextFree", "memclr", "newobject", "makeslice", "growslice",
			"newarray", "makemap", "rawstring", "rawbyteslice", "(*mspan)", "refill", "allocSpan", "heapSetType", "slicebytetostring", "concatstring"):
			return "runtime: allocation"
		case has("schedule", "findRunnable", "futex", "park", "ready", "netpoll", "usleep", "notesleep", "notewakeup",
			"runqsteal", "runqgrab", "stealWork", "stopm", "startm", "wakep", "casgstatus", "nanotime", "osyield", "procyield",
			"mcall", "goexit", "execute", "lock2", "unlock2", "semacquire", "semrelease", "epoll", "checkTimers", "resetspinning",
			"handoff", "gosched", "selectgo", "chansend", "chanrecv", "timer", "mstart", "sysmon", "retake", "signal", "sigtramp"):
			return "runtime: scheduler, channels, timers"
		}
		return "runtime: other"
	case pkg == "net" || pkg == "internal/poll":
		return "net, internal/poll (sockets)"
	case pkg == "net/http" || strings.HasPrefix(pkg, "net/http/") || pkg == "net/textproto" || pkg == "net/url" ||
		pkg == "mime" || strings.HasPrefix(pkg, "vendor/golang.org/x/net/"):
		return "net/http (server, client, headers)"
	case pkg == "encoding/json" || strings.HasPrefix(pkg, "encoding/json/"):
		return "encoding/json"
	case strings.HasPrefix(pkg, "crypto/") || strings.HasPrefix(pkg, "vendor/golang.org/x/crypto/") ||
		strings.HasPrefix(pkg, "github.com/golang-jwt/"):
		return "crypto (JWT signatures)"
	case strings.HasPrefix(pkg, "github.com/jackc/"):
		return "pgx (Postgres driver, pool)"
	case pkg == "log/slog" || pkg == "log":
		return "log/slog"
	case pkg == "sync" || pkg == "sync/atomic" || strings.HasPrefix(pkg, "internal/sync"):
		return "sync"
	case pkg == "strconv" || pkg == "strings" || pkg == "bytes" || pkg == "unicode/utf8" || pkg == "unicode" || pkg == "fmt" ||
		pkg == "bufio" || pkg == "io" || pkg == "internal/bytealg" || pkg == "sort" || pkg == "slices" || pkg == "maps":
		return "strings, bytes, fmt, strconv, bufio, io"
	case strings.HasPrefix(pkg, helixModule):
		return "helix " + strings.TrimPrefix(pkg, helixModule)
	}
	return pkg
}

// groupAreas sums the functions' flat CPU by area, largest first; requests makes the µs/req.
func groupAreas(lines []topLine, totalMs float64, requests int64) []cpuArea {
	sums := map[string]*cpuArea{}
	for _, l := range lines {
		if l.FlatMs == 0 {
			continue
		}
		name := areaOf(l.Function)
		a := sums[name]
		if a == nil {
			a = &cpuArea{Area: name}
			sums[name] = a
		}
		a.Seconds += l.FlatMs / 1000
		a.FunctionsCount++
	}
	var out []cpuArea
	for _, a := range sums {
		if totalMs > 0 {
			a.Percent = roundTo(a.Seconds*1000*100/totalMs, 1)
		}
		if requests > 0 {
			a.MicrosPerReq = roundTo(a.Seconds*1e6/float64(requests), 1)
		}
		a.Seconds = roundTo(a.Seconds, 3)
		out = append(out, *a)
	}
	slices.SortFunc(out, func(x, y cpuArea) int {
		if x.Seconds != y.Seconds {
			if x.Seconds > y.Seconds {
				return -1
			}
			return 1
		}
		return strings.Compare(x.Area, y.Area)
	})
	return out
}

// ---- Postgres ----

// prepareStatements makes pg_stat_statements readable in the bench database, or says why not.
func prepareStatements(ctx context.Context, conn *pgx.Conn) error {
	var libs string
	if err := conn.QueryRow(ctx, "SHOW shared_preload_libraries").Scan(&libs); err != nil {
		return err
	}
	if !strings.Contains(libs, "pg_stat_statements") {
		return fmt.Errorf("pg_stat_statements is not loaded (shared_preload_libraries = %q); infra/pg/ensure.sh adds it to its own cluster and restarts it, for another server set it in postgresql.conf and restart", libs)
	}
	if _, err := conn.Exec(ctx, "CREATE EXTENSION IF NOT EXISTS pg_stat_statements"); err != nil {
		return fmt.Errorf("CREATE EXTENSION pg_stat_statements: %w", err)
	}
	return nil
}

// readStatements is the bench database's top statements by total execution time, this step's
// own reads left out.
func readStatements(ctx context.Context, conn *pgx.Conn) ([]pgStatement, error) {
	rows, err := conn.Query(ctx, `
		SELECT regexp_replace(s.query, '\s+', ' ', 'g'), s.toplevel, s.calls, s.total_exec_time, s.mean_exec_time,
		       s.rows::float8 / greatest(s.calls, 1), s.wal_records::float8 / greatest(s.calls, 1),
		       s.shared_blks_hit::float8 / greatest(s.calls, 1)
		  FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid
		 WHERE d.datname = current_database() AND s.query NOT LIKE '%pg_stat_%'
		 ORDER BY s.total_exec_time DESC LIMIT $1`, profileStatements)
	if err != nil {
		return nil, fmt.Errorf("read pg_stat_statements: %w", err)
	}
	var out []pgStatement
	for rows.Next() {
		var s pgStatement
		if err := rows.Scan(&s.Query, &s.Toplevel, &s.Calls, &s.TotalMs, &s.MeanMs, &s.RowsPerCall, &s.WALRecordsPerCall, &s.SharedHitPerCall); err != nil {
			rows.Close()
			return nil, err
		}
		s.TotalMs, s.MeanMs = roundTo(s.TotalMs, 1), roundTo(s.MeanMs, 4)
		s.RowsPerCall, s.WALRecordsPerCall, s.SharedHitPerCall = roundTo(s.RowsPerCall, 2), roundTo(s.WALRecordsPerCall, 2), roundTo(s.SharedHitPerCall, 1)
		out = append(out, s)
	}
	return out, rows.Err()
}

// topLevelExec is the bench database's top-level statements' total execution time (ms).
func topLevelExec(ctx context.Context, conn *pgx.Conn) (float64, error) {
	var ms float64
	err := conn.QueryRow(ctx, `
		SELECT COALESCE(sum(s.total_exec_time), 0) FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid
		 WHERE d.datname = current_database() AND s.toplevel AND s.query NOT LIKE '%pg_stat_%'`).Scan(&ms)
	return ms, err
}

// pgCounters is pg_stat_database's commits of the bench database and pg_stat_wal's counters.
type pgCounters struct {
	commits int64
	wal     walStats
}

func readPGCounters(ctx context.Context, conn *pgx.Conn) (pgCounters, error) {
	var c pgCounters
	err := conn.QueryRow(ctx, `
		SELECT (SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()),
		       wal_records, wal_fpi, wal_bytes::bigint, wal_write, wal_sync FROM pg_stat_wal`).
		Scan(&c.commits, &c.wal.Records, &c.wal.FPI, &c.wal.Bytes, &c.wal.Writes, &c.wal.Syncs)
	if err != nil {
		return c, fmt.Errorf("read pg_stat_database and pg_stat_wal: %w", err)
	}
	return c, nil
}

// fillCounters sets the window's deltas and rates.
func (pg *pgProfile) fillCounters(a, b pgCounters, window time.Duration, requests int64) {
	pg.Commits = b.commits - a.commits
	pg.WAL = walStats{Records: b.wal.Records - a.wal.Records, FPI: b.wal.FPI - a.wal.FPI, Bytes: b.wal.Bytes - a.wal.Bytes,
		Writes: b.wal.Writes - a.wal.Writes, Syncs: b.wal.Syncs - a.wal.Syncs}
	sec := window.Seconds()
	if sec > 0 {
		pg.CommitsPerSecond = roundTo(float64(pg.Commits)/sec, 0)
		pg.WALSyncsPerSecond = roundTo(float64(pg.WAL.Syncs)/sec, 0)
	}
	if requests > 0 {
		r := float64(requests)
		pg.CommitsPerRequest = roundTo(float64(pg.Commits)/r, 2)
		pg.WALRecordsPerReq = roundTo(float64(pg.WAL.Records)/r, 2)
		pg.WALBytesPerReq = roundTo(float64(pg.WAL.Bytes)/r, 0)
		pg.WALFPIPerReq = roundTo(float64(pg.WAL.FPI)/r, 3)
	}
}

// postmasterPID is the pid of the Postgres server's postmaster on this machine: the parent of
// this connection's backend. An error when the server runs elsewhere.
func postmasterPID(ctx context.Context, conn *pgx.Conn) (int, error) {
	var backend int
	if err := conn.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&backend); err != nil {
		return 0, err
	}
	s, err := readProcStat(backend)
	if err != nil || s.Comm != "postgres" {
		return 0, fmt.Errorf("backend pid %d is not a postgres process on this machine", backend)
	}
	if !isPostgres(s.PPID) {
		return 0, fmt.Errorf("the parent of backend %d (pid %d) is not postgres", backend, s.PPID)
	}
	return s.PPID, nil
}

// isPostgres reports whether pid runs the postgres binary (its title changes, its comm does not).
func isPostgres(pid int) bool {
	s, err := readProcStat(pid)
	return err == nil && s.Comm == "postgres"
}
