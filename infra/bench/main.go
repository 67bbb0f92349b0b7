// Command bench is `make bench`: Helix's performance numbers, for reporting (nothing here is a
// pass/fail target; the correctness of the bookkeeping under load is a test, in
// shared/app/routeapp).
//
//	go run ./infra/bench
//
// Steps (BENCH_ONLY picks some of them, by the name in brackets):
//
//  1. [route] POST /ai-router/route through the dev server, at concurrency 1 and 64 (package
//     infra/load, in process), once per query exec mode: HELIX_DB_EXEC_MODE=exec (the default,
//     safe behind PgBouncer / RDS Proxy) and HELIX_DB_EXEC_MODE=cache_describe.
//  2. [gateway] gateway overhead: POST /v1/chat/completions through Helix (auth, route, reserve,
//     provider call, settle + log) and through Portkey's open-source gateway (npm
//     @portkey-ai/gateway 1.15.2, installed on first use with `npm install --no-save --prefix
//     bench-results/.tools/portkey-1.15.2` and run with node on a free port; routed to the mock
//     by x-portkey-provider: openai and x-portkey-custom-host: <mock>/v1; without node or npm it
//     is reported as not measured) against the same request sent straight to a local mock
//     upstream (infra/mockllm), each checked first with one sample request that the mock counted.
//     At concurrency 1 and 64, BENCH_GW_ROUNDS interleaved rounds of direct, Portkey, Helix (at 64
//     Helix with 64 users, one per worker, then with one user, whose budget row every request
//     shares): each target's medians over the rounds (req/s, p50, p99), the p50 each gateway adds,
//     and Helix's req/s over Portkey's at 64 (targets: Helix adds <= 1 ms p50 at 1; at 64, >= 5x
//     Portkey's req/s and p99 < 100 ms). Then a look in Postgres that the load did what it claims
//     (every answered request reserved, settled and logged, one provider call each), and the
//     commits per Helix request: the bench database's xact_commit from just before the first Helix
//     run to 11 s after the last (backends report their counters within 10 s of going idle), over
//     the Helix runs' successful requests, and pg_stat_wal's wal_sync (the cluster's) likewise.
//  3. [chat] POST /chat/sessions/{id}/messages at concurrency 32 against the mock upstream, each
//     worker a user with a session of its own and a fresh client_message_id per message: req/s,
//     p50/p99; what the bench database's active backends waited for meanwhile (pg_stat_activity
//     and pg_locks, sampled every 100 ms); a look in Postgres that every message was stored,
//     answered and logged once; the Postgres transactions per message (pg_stat_database,
//     start-up included); then a short run on a second dev server whose Postgres connections go
//     through a proxy in this process that counts the round trips on the wire (pgproxy.go), per
//     message.
//  4. [delivery] two devices on one session: one long-polls GET .../messages?after=&wait=20, the
//     other sends (BENCH_DELIVERY_MESSAGES messages, one at a time); how soon the waiting device
//     has the user message (from just before the send) and the reply (from the send's response).
//  5. [idle] 100 devices long-polling sessions where nothing happens: the round trips to Postgres
//     per second while they wait (through the counting proxy), over BENCH_IDLE_WINDOW.
//  6. [router] the in-process routing decision (BenchmarkRoute* in shared/router).
//  7. [ledger] budget reserve+settle pairs on Postgres at concurrency 1, 16 and 64
//     (BenchmarkReserveSettle in shared/postgres).
//  8. [synthesis] the database time of one synthesis job of 10 messages for a user with 500
//     insights, the model call excluded (BenchmarkSynthesisJob in shared/postgres/memorystore).
//  9. [audit_integrate] the audit log's sequencing: on a database of its own (created with the
//     migrations applied, dropped at the end), BENCH_AUDIT_ENTRIES ai_operation_log rows over
//     the last day (generate_series; the helix_audit_operation trigger writes each one's event
//     into audit_pending), then auditstore's IntegrateAll in the audit function's batches of 5000:
//     entries/s. That log is built once for steps 9 to 12, whichever of them run.
//  10. [audit_verify] auditstore's Verify of that whole log from entry 0: entries/s and seconds.
//  11. [audit_proof] BENCH_AUDIT_PROOFS inclusion proofs of random entries in the whole tree and
//     as many consistency proofs between random sizes: p50/p99 (each proof checked with tlog).
//  12. [audit_run] the audit function's minute (app.Boot, auditapp.New, Run, as the Lambda does;
//     Discord webhooks on a local server answering 204, a signing key from note.GenerateKey)
//     over that log in a steady state: a thousand calls in the last minute, a few hundred of them
//     not yet sequenced, the rest of the log sequenced and delivered. Its wall time (target
//     under 1 s) and each step's outcome; then the next minute on the same core, and one through
//     the round-trip counting proxy.
//  13. [audit_v1] POST /v1/chat/completions at concurrency 64 with 64 users (step 2's load) on a
//     dev server over a database of its own, with the ai_operation_log audit trigger enabled and
//     disabled in alternate runs (ALTER TABLE ... ENABLE/DISABLE TRIGGER helix_audit_operation),
//     BENCH_AUDIT_V1_ROUNDS runs each: median req/s both ways and their ratio (target: auditing
//     costs at most 10%).
//  14. [lambda] each function's real bootstrap binary run as Lambda runs it (infra/lambdarun) on a
//     database of its own: its linux/arm64 size (`make build`'s flags), its cold start (exec to
//     the first GET /next, median of 10 fresh processes of a native build), its RSS after 1 and
//     after 1,000 invocations of a sample event (100 for audit and optimize), and the route
//     function's handler duration per POST /v1/chat/completions (offline model, 1,000 calls):
//     p50/p99 and its Lambda cost per million calls at 128 MB and the template's 256 MB, beside
//     the LLM cost of the same call at DeepSeek's prices.
//  15. [stream] streamed POST /v1/chat/completions (stream: true, include_usage) against a mock
//     upstream streaming 50 words at 20 ms each: the time to the first chunk with content through
//     Helix and straight to the mock, at concurrency 1 and 64, the two alternating over 6 rounds
//     (p50/p99 and what Helix adds), then a look in Postgres that every stream was logged and
//     settled; then, with a slow mock (one word a second), 100, 500 and 1000 streams held open at
//     once on a fresh dev server each (stopping at the first level with errors): the server's RSS
//     before and with them open (memory per stream), whether every stream kept receiving, and the
//     bench database's backends meanwhile (pg_stat_activity).
//  16. [sizes] each function's Lambda bootstrap size after `make build` (linux/arm64).
//  17. [profile] (`make bench-profile`) where each request's CPU goes: step 2's load at
//     concurrency 64 with 64 users on a dev server with its pprof listener
//     (HELIX_DEV_PPROF_ADDR); during the measured load a CPU profile of BENCH_PROFILE_SECONDS
//     (bench-results/<stamp>-devserver-cpu.pprof, shown by `go tool pprof -top` by flat and cum,
//     its flat CPU grouped by area in µs per request), each process's CPU per request
//     (/proc/<pid>/stat: dev server, all Postgres processes, mock, this process), and Postgres's
//     side: pg_stat_statements' top statements (when the server preloads it, as infra/pg/ensure.sh's
//     cluster does), commits and WAL records, bytes and fsyncs per request and per second.
//
// The dev server and the mock upstream are built into a temporary folder and started on free
// ports; each is stopped when its step ends, and on every way out (a failed step, Ctrl-C).
// Everything printed goes to stdout and to bench-results/<UTC timestamp>.txt; the results go to
// bench-results/<UTC timestamp>.json. Every step runs even when an earlier one failed; the exit
// status is 1 if any did (130 when interrupted). Tunables (environment):
//
//	BENCH_DURATION     load duration per run of step 1 (default 12s)
//	BENCH_GW_DURATION  load duration per run of step 2 (default 12s)
//	BENCH_GW_ROUNDS    interleaved rounds of step 2 (direct, Portkey, Helix) per concurrency (default 3)
//	BENCH_WARMUP       unmeasured load before each run (default 2s)
//	BENCH_TIME         -benchtime of the reserve+settle benchmark (default 3s)
//	BENCH_MOCK_DELAY   simulated provider latency of the mock upstream (default 0s)
//	BENCH_CHAT_DURATION      load duration of step 3's measured run (default 12s)
//	BENCH_DELIVERY_MESSAGES  messages step 4 times (default 200)
//	BENCH_IDLE_WINDOW        how long step 5 counts (default 20s, one whole long-poll)
//	BENCH_AUDIT_ENTRIES      operations in the audit log of steps 9-12 (default 1000000)
//	BENCH_AUDIT_PROOFS       proofs step 11 times, of each kind (default 300)
//	BENCH_AUDIT_V1_ROUNDS    runs of step 13 with auditing on, and as many off (default 3)
//	BENCH_PROFILE_SECONDS    length of step 17's CPU profile, inside its load (default 10)
//	BENCH_ONLY         run only these steps, comma-separated:
//	                   route,gateway,chat,delivery,idle,router,ledger,synthesis,
//	                   audit_integrate,audit_verify,audit_proof,audit_run,audit_v1,monitoring,lambda,stream,profile,sizes (default: all)
//
// BENCH_TIME is also the -benchtime of step 8; BENCH_GW_DURATION and BENCH_WARMUP are also
// step 13's, per run.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// resultsDir is where each run's text and JSON go, relative to the repository.
const resultsDir = "bench-results"

func main() {
	os.Exit(run())
}

func run() int {
	// The first Ctrl-C cancels ctx: whatever runs returns, and the deferred stops end the
	// servers. Signals stay caught until the end, so a second Ctrl-C cannot cut the clean-up short.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cfg, auditCfg, err := loadConfigs(os.Getenv)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 2
	}
	// Every path below (the packages, bin/, bench-results/) is relative to the repository.
	root, err := repoRoot(ctx)
	if err == nil {
		err = os.Chdir(root)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench: find the repository:", err)
		return 1
	}
	b, err := newBench(cfg, time.Now())
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 1
	}
	defer b.close()
	b.audit = auditCfg
	b.runSteps(ctx)
	return b.finish(ctx)
}

// repoRoot is the folder of the main module's go.mod.
func repoRoot(ctx context.Context) (string, error) {
	var out bytes.Buffer
	cmd := exec.Command("go", "env", "GOMOD")
	cmd.Stdout, cmd.Stderr = &out, os.Stderr
	if err := runProc(ctx, "go env GOMOD", cmd); err != nil {
		return "", err
	}
	mod := strings.TrimSpace(out.String())
	if mod == "" || mod == os.DevNull {
		return "", errors.New("not inside the Helix module; run it from the repository")
	}
	return filepath.Dir(mod), nil
}

// bench is one run: its settings, where its output goes, and what it found so far.
type bench struct {
	cfg     config
	started time.Time
	stamp   string    // UTC start time, the name of the result files
	out     io.Writer // stdout and the text file
	txt     *os.File
	tmp     string // binaries and server logs, removed at the end
	res     *results
	audit   auditConfig // the audit steps' tunables

	// Set by the Postgres and build steps.
	serverURL, dbURL string // the Postgres server (database "postgres") and the bench database
	devserver, mock  string // built binaries
	tokens           minter
}

func newBench(cfg config, now time.Time) (*bench, error) {
	stamp := now.UTC().Format("20060102T150405Z")
	if err := os.MkdirAll(resultsDir, 0o755); err != nil {
		return nil, err
	}
	txt, err := os.Create(filepath.Join(resultsDir, stamp+".txt"))
	if err != nil {
		return nil, err
	}
	tmp, err := os.MkdirTemp("", "helix-bench-")
	if err != nil {
		txt.Close()
		return nil, err
	}
	tokens, err := newMinter(os.Getenv)
	if err != nil {
		txt.Close()
		os.RemoveAll(tmp)
		return nil, err
	}
	b := &bench{cfg: cfg, started: now, stamp: stamp, out: io.MultiWriter(os.Stdout, txt), txt: txt, tmp: tmp,
		tokens: tokens}
	b.res = &results{Stamp: stamp, Started: now.UTC(), Settings: settingsOf(cfg)}
	return b, nil
}

func (b *bench) close() {
	b.txt.Close()
	os.RemoveAll(b.tmp)
}

func (b *bench) printf(format string, args ...any) {
	fmt.Fprintf(b.out, format, args...)
}

// elapsed is the whole seconds since the start, for the step headers.
func (b *bench) elapsed() int { return int(time.Since(b.started).Seconds()) }

// runSteps runs every wanted step, each whatever happened to the ones before it.
func (b *bench) runSteps(ctx context.Context) {
	b.header(ctx)
	// The preparation steps run only for the steps that need them; when one fails, those steps
	// fail at once with the reason instead of piling up confusing errors.
	var notReady error
	if b.cfg.wanted(stepRoute, stepGateway, stepChat, stepDelivery, stepIdle, stepLedger, stepSynthesis,
		stepAuditIntegrate, stepAuditVerify, stepAuditProof, stepAuditRun, stepAuditV1, stepMonitoring, stepLambda, stepStream, stepProfile) &&
		!b.step(ctx, "postgres", "Postgres", b.postgres) {
		notReady = errors.New("not run: Postgres is not available")
	}
	if b.cfg.wanted(stepRoute, stepGateway, stepChat, stepDelivery, stepIdle, stepAuditV1, stepStream, stepProfile) &&
		!b.step(ctx, "build", "build the dev server and the mock upstream", b.build) && notReady == nil {
		notReady = errors.New("not run: the build failed")
	}
	needs := func(fn func(context.Context) error) func(context.Context) error {
		return func(ctx context.Context) error {
			if notReady != nil {
				return notReady
			}
			return fn(ctx)
		}
	}

	if b.cfg.wanted(stepRoute) {
		for _, mode := range routeExecModes() {
			b.step(ctx, "route "+mode,
				fmt.Sprintf("POST /ai-router/route through the dev server (HELIX_DB_EXEC_MODE=%s, HELIX_DB_MAX_CONNS=%d)", mode, serverMaxConns),
				needs(func(ctx context.Context) error { return b.routeLoad(ctx, mode) }))
		}
		b.printf("\n")
		b.routeTable(b.out)
	}
	if b.cfg.wanted(stepGateway) {
		b.step(ctx, stepGateway, "gateway overhead: POST /v1/chat/completions through Helix and through Portkey vs straight to the mock upstream",
			needs(b.gateway))
	}
	if b.cfg.wanted(stepChat) {
		b.step(ctx, stepChat, fmt.Sprintf("chat: POST /chat/sessions/{id}/messages at concurrency %d, one user and session per worker, mock upstream -delay %s",
			chatConcurrency, b.cfg.mockDelay), needs(b.chatSend))
	}
	if b.cfg.wanted(stepDelivery) {
		b.step(ctx, stepDelivery, "delivery to a waiting second device: GET .../messages?after=<last>&wait=20 while another device sends",
			needs(b.delivery))
	}
	if b.cfg.wanted(stepIdle) {
		b.step(ctx, stepIdle, fmt.Sprintf("Postgres load of %d idle waiting clients (long-polls with wait=20, nothing sent)", idleClients),
			needs(b.idle))
	}
	if b.cfg.wanted(stepRouter) {
		b.step(ctx, stepRouter, "routing decision in process: go test -run '^$' -bench BenchmarkRoute -benchmem ./shared/router/", b.routerBench)
	}
	if b.cfg.wanted(stepLedger) {
		b.step(ctx, stepLedger, fmt.Sprintf("reserve+settle on Postgres: go test -run '^$' -bench BenchmarkReserveSettle -benchtime %s ./shared/postgres/", b.cfg.benchTime),
			func(ctx context.Context) error {
				if b.serverURL == "" {
					return errors.New("not run: Postgres is not available")
				}
				return b.ledgerBench(ctx)
			})
	}
	if b.cfg.wanted(stepSynthesis) {
		b.step(ctx, stepSynthesis, fmt.Sprintf("synthesis database time: go test -run '^$' -bench BenchmarkSynthesisJob -benchtime %s ./shared/postgres/memorystore/", b.cfg.benchTime),
			func(ctx context.Context) error {
				if b.serverURL == "" {
					return errors.New("not run: Postgres is not available")
				}
				return b.synthesisBench(ctx)
			})
	}
	if b.cfg.wanted(auditDataSteps()...) {
		// One log for the four steps, built before the first of them, dropped after the last
		// (or on the way out of a panic).
		a := b.newAuditData()
		defer a.close()
		b.step(ctx, "audit data", fmt.Sprintf("audit log: a database of its own with %d ai_operation_log rows over the last day, the trigger writing their events",
			b.audit.entries), needs(a.prepare))
		if b.cfg.wanted(stepAuditIntegrate) {
			b.step(ctx, stepAuditIntegrate, fmt.Sprintf("audit log sequencing: IntegrateAll over %d pending events, batches of %d", b.audit.entries, auditBatch),
				a.needs(a.integrate))
		}
		if b.cfg.wanted(stepAuditVerify) {
			b.step(ctx, stepAuditVerify, "audit log verification: Verify from entry 0 over the whole log", a.needsIntegrated(a.verify))
		}
		if b.cfg.wanted(stepAuditProof) {
			b.step(ctx, stepAuditProof, fmt.Sprintf("audit log proofs: %d inclusion and %d consistency proofs at the whole log's size", b.audit.proofs, b.audit.proofs),
				a.needsIntegrated(a.proofs))
		}
		if b.cfg.wanted(stepAuditRun) {
			b.step(ctx, stepAuditRun, "the audit function's minute (auditapp.Audit.Run) over the whole log in a steady state", a.needsIntegrated(a.run))
		}
		a.close()
	}
	if b.cfg.wanted(stepAuditV1) {
		b.step(ctx, stepAuditV1, fmt.Sprintf("audit trigger cost: POST /v1/chat/completions at concurrency %d, %d users, auditing on and off in alternate runs",
			gatewayUsers, gatewayUsers), needs(b.auditV1))
	}
	if b.cfg.wanted(stepMonitoring) {
		b.step(ctx, stepMonitoring, fmt.Sprintf("monitoring reads: GET /admin/spend per group_by and the realtime feed over %d ai_operation_log rows, in process",
			monitoringRows), needs(b.monitoring))
	}
	if b.cfg.wanted(stepLambda) {
		b.step(ctx, stepLambda, fmt.Sprintf("Lambda functions' real binaries (infra/lambdarun): arm64 sizes, cold starts (median of %d), RSS after 1 and n invocations, /v1 handler duration over %d calls and its cost",
			lambdaColdStarts, lambdaV1Calls), needs(b.lambda))
	}
	if b.cfg.wanted(stepStream) {
		b.step(ctx, stepStream, fmt.Sprintf("streaming: time to first content through Helix vs the mock directly (%d words at %s), then open streams one dev server holds (one word a %s)",
			streamTokens, streamTokenDelay, streamSlowDelay), needs(b.stream))
	}
	if b.cfg.wanted(stepProfile) {
		b.step(ctx, stepProfile, fmt.Sprintf("profile: where each POST /v1/chat/completions's CPU goes (Go pprof, processes, Postgres) at concurrency %d, %d users",
			b.cfg.profileWorkers, b.cfg.profileWorkers), needs(b.profile))
	}
	if b.cfg.wanted(stepSizes) {
		b.step(ctx, stepSizes, "Lambda bootstrap sizes: make build (linux/arm64, target <= 15 MB each)", b.sizes)
	}
}

// step runs fn under a header and records its outcome. It reports whether fn succeeded.
func (b *bench) step(ctx context.Context, name, title string, fn func(context.Context) error) bool {
	b.printf("\n=== [%ds] %s\n", b.elapsed(), title)
	t0 := time.Now()
	r := stepResult{Name: name}
	var err error
	if ctx.Err() != nil {
		r.Skipped = true
		err = errors.New("not run: interrupted")
	} else {
		err = fn(ctx)
	}
	r.Seconds = roundTo(time.Since(t0).Seconds(), 1)
	switch {
	case r.Skipped:
		r.Error = err.Error()
		b.printf("skipped: %s: %v\n", name, err)
	case err != nil:
		r.Error = err.Error()
		b.printf("FAILED: %s: %v\n", name, err)
	default:
		r.OK = true
	}
	b.res.Steps = append(b.res.Steps, r)
	return err == nil
}

// finish prints the summary, writes the JSON and returns the exit status.
func (b *bench) finish(ctx context.Context) int {
	b.res.Interrupted = ctx.Err() != nil
	b.res.OK = !b.res.Interrupted
	for _, s := range b.res.Steps {
		b.res.OK = b.res.OK && s.OK
	}
	b.res.TotalSeconds = roundTo(time.Since(b.started).Seconds(), 1)

	b.printf("\n=== [%ds] summary\n", b.elapsed())
	b.summary(b.out)
	jsonPath := filepath.Join(resultsDir, b.stamp+".json")
	b.printf("\ntotal time %ds; written to %s and %s\n", b.elapsed(), b.txt.Name(), jsonPath)
	b.printf("numbers from a shared machine are noisy: compare runs, not single values\n")
	code := 0
	switch {
	case b.res.Interrupted:
		b.printf("interrupted\n")
		code = 130
	case !b.res.OK:
		b.printf("failed steps: %s\n", strings.Join(b.res.failedSteps(), ", "))
		code = 1
	default:
		b.printf("all steps ran\n")
	}
	if err := writeJSON(jsonPath, b.res); err != nil {
		fmt.Fprintln(os.Stderr, "bench: write the results:", err)
		return max(code, 1)
	}
	return code
}

func writeJSON(path string, v any) error {
	raw, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(raw, '\n'), 0o644)
}
