package main

// The lambda step: each function's real bootstrap binary, run as Lambda runs it (infra/lambdarun
// plays the Runtime API) against a database of the step's own: the size of its linux/arm64
// build, its cold start, its memory after one and after many invocations, the /v1 handler's
// duration per call, and what the gateway's Lambda time costs beside the model call it fronts.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/helixhq/helix/infra/lambdarun"
	"github.com/helixhq/helix/infra/load"
	"github.com/helixhq/helix/infra/migrations"
)

const (
	stepLambda = "lambda"
	// lambdaColdStarts is how many fresh processes each function's init median is over.
	lambdaColdStarts = 10
	// lambdaV1Calls is how many /v1/chat/completions the handler duration is over.
	lambdaV1Calls = 1000
	lambdaV1Event = "events/route/post-v1-chat-completions.json"

	// Lambda's arm64 prices (us-east-1): per GB-second of billed duration (1 ms granularity) and
	// per request.
	lambdaGBSecondUSD = 0.0000133334
	lambdaRequestUSD  = 0.20 / 1e6
	// DeepSeek's prices per token, for the LLM cost of the /v1 call.
	deepseekInputUSD  = 0.28 / 1e6
	deepseekOutputUSD = 0.42 / 1e6
)

// lambdaFunctions is each function, the sample event its memory is measured with (a cheap GET
// for the HTTP functions), and how many invocations: the audit minute and the daily analysis do
// real work on every run, so they get 100.
var lambdaFunctions = []struct {
	fn, event   string
	invocations int
}{
	{"route", "events/route/get-v1-models.json", 1000},
	{"budget", "events/budget/get-budget.json", 1000},
	{"chat", "events/chat/get-chat-sessions.json", 1000},
	{"synthesis", "events/synthesis/sqs-batch.json", 1000},
	{"audit", "events/audit/scheduled.json", 100},
	{"optimize", "events/optimize/scheduled.json", 100},
	{"migrate", "events/migrate/update.json", 1000},
}

type lambdaResult struct {
	Functions []lambdaFunction `json:"functions"`
	V1        *lambdaV1        `json:"v1,omitempty"`
}

type lambdaFunction struct {
	Function     string    `json:"function"`
	ARM64Bytes   int64     `json:"arm64_bootstrap_bytes"`
	InitMS       []float64 `json:"init_ms"`
	InitMedianMS float64   `json:"init_median_ms"`
	Event        string    `json:"event"`
	Invocations  int       `json:"invocations"`
	RSSAfter1    int64     `json:"rss_after_1_bytes"`
	RSSAfterN    int64     `json:"rss_after_n_bytes"`
	PeakAfterN   int64     `json:"peak_rss_after_n_bytes"` // VmHWM: Lambda's "Max Memory Used"
	MedianMS     float64   `json:"invocation_median_ms"`
	Error        string    `json:"error,omitempty"`
}

type lambdaV1 struct {
	Calls        int          `json:"calls"`
	Duration     latencies    `json:"duration"`
	MeanBilledMS float64      `json:"mean_billed_ms"`
	InputTokens  int          `json:"input_tokens"`
	OutputTokens int          `json:"output_tokens"`
	Lambda       []lambdaCost `json:"lambda_cost_per_million_calls"`
	LLMUSD       float64      `json:"llm_cost_per_million_calls_usd"` // at DeepSeek's prices
}

type lambdaCost struct {
	MemoryMB    int     `json:"memory_mb"`
	ComputeUSD  float64 `json:"compute_usd"`
	RequestsUSD float64 `json:"requests_usd"`
	TotalUSD    float64 `json:"total_usd"`
}

func (b *bench) lambda(ctx context.Context) error {
	if b.serverURL == "" {
		return fmt.Errorf("not run: Postgres is not available")
	}
	db, drop, err := b.createDatabase(ctx, "helix_bench_lambda_"+strings.ToLower(b.stamp))
	if err != nil {
		return err
	}
	defer drop()
	if err := migrations.Up(ctx, db, nil); err != nil {
		return err
	}
	local, err := lambdarun.StartLocal()
	if err != nil {
		return err
	}
	defer local.Close()
	res := &lambdaResult{}
	b.res.Lambda = res
	b.printf("native builds run on this machine (%s); the arm64 sizes are `make build`'s flags; function logs discarded\n", machineArch())
	var failed []string
	for _, f := range lambdaFunctions {
		r, native := b.lambdaBuild(ctx, f.fn)
		if r.Error == "" {
			b.lambdaMeasure(ctx, &r, native, db, local, f.event, f.invocations)
		}
		if r.Error != "" {
			failed = append(failed, f.fn)
			b.printf("  %-9s FAILED: %s\n", f.fn, r.Error)
		} else {
			b.printf("  %-9s %6.2f MB arm64, init median %6.1f ms, RSS %5.1f MiB after 1, %5.1f MiB after %d (peak %5.1f MiB)\n",
				f.fn, float64(r.ARM64Bytes)/1e6, r.InitMedianMS, mebi(r.RSSAfter1), mebi(r.RSSAfterN), r.Invocations, mebi(r.PeakAfterN))
		}
		res.Functions = append(res.Functions, r)
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	v1, err := b.lambdaV1(ctx, db, local)
	if err != nil {
		failed = append(failed, "/v1 duration: "+err.Error())
	} else {
		res.V1 = v1
	}
	b.printf("\n")
	lambdaTable(b.out, res)
	if len(failed) > 0 {
		return fmt.Errorf("failed: %s", strings.Join(failed, "; "))
	}
	return nil
}

func machineArch() string { return runtime.GOOS + "/" + runtime.GOARCH }

func mebi(n int64) float64 { return float64(n) / (1 << 20) }

func (b *bench) binary(kind, fn string) string {
	return filepath.Join(b.tmp, "lambda-"+kind, fn, "bootstrap")
}

// lambdaBuild builds fn for Lambda (its size) and for this machine (what runs here).
func (b *bench) lambdaBuild(ctx context.Context, fn string) (lambdaFunction, string) {
	r := lambdaFunction{Function: fn}
	build := lambdarun.Build{Package: "./functions/" + fn, Version: "bench"}
	arm := build.ForLambda()
	arm.Output = b.binary("arm64", fn)
	if err := arm.Run(ctx); err != nil {
		r.Error = err.Error()
		return r, ""
	}
	st, err := os.Stat(arm.Output)
	if err != nil {
		r.Error = err.Error()
		return r, ""
	}
	r.ARM64Bytes = st.Size()
	build.Output = b.binary("native", fn)
	if err := build.Run(ctx); err != nil {
		r.Error = err.Error()
		return r, ""
	}
	return r, build.Output
}

// lambdaStart starts a fresh instance of fn.
func lambdaStart(ctx context.Context, bin, fn, db string, local *lambdarun.Local) (*lambdarun.Process, error) {
	s := lambdarun.FunctionSettings(fn)
	return lambdarun.Start(ctx, lambdarun.Config{Binary: bin, Function: "helix-" + fn, MemoryMB: s.MemoryMB,
		Timeout: s.Timeout, Env: local.Env(fn, db)})
}

// lambdaMeasure takes the cold starts and the memory of fn.
func (b *bench) lambdaMeasure(ctx context.Context, r *lambdaFunction, bin, db string, local *lambdarun.Local, event string, n int) {
	fail := func(err error) { r.Error = err.Error() }
	var inits []time.Duration
	for range lambdaColdStarts {
		p, err := lambdaStart(ctx, bin, r.Function, db, local)
		if err != nil {
			fail(err)
			return
		}
		inits = append(inits, p.InitDuration())
		p.Kill() // as Lambda ends an idle instance; a SIGTERM would wait out its grace
		r.InitMS = append(r.InitMS, roundTo(load.Millis(p.InitDuration()), 2))
	}
	r.InitMedianMS = roundTo(load.Millis(summarizeLatencies(inits).P50), 2)

	raw, err := os.ReadFile(event)
	if err != nil {
		fail(err)
		return
	}
	payload, err := local.Event(r.Function, raw)
	if err != nil {
		fail(err)
		return
	}
	r.Event, r.Invocations = event, n
	p, err := lambdaStart(ctx, bin, r.Function, db, local)
	if err != nil {
		fail(err)
		return
	}
	defer p.Stop()
	var durations []time.Duration
	for i := range n {
		if err := lambdaInvoke(ctx, p, payload); err != nil {
			fail(fmt.Errorf("invocation %d of %s: %w", i+1, event, err))
			return
		}
		durations = append(durations, p.LastDuration())
		if i == 0 || i == n-1 {
			m, err := p.RSS()
			if err != nil {
				fail(err)
				return
			}
			if i == 0 {
				r.RSSAfter1 = m.RSS
			}
			r.RSSAfterN, r.PeakAfterN = m.RSS, m.HWM
		}
	}
	r.MedianMS = roundTo(load.Millis(summarizeLatencies(durations).P50), 3)
}

// lambdaInvoke sends one event and checks the answer is a success: no function error, and for an
// HTTP event a status below 500.
func lambdaInvoke(ctx context.Context, p *lambdarun.Process, payload []byte) error {
	resp, fnErr, err := p.Invoke(ctx, payload)
	if err != nil {
		return err
	}
	if fnErr != nil {
		return fnErr
	}
	var http events.APIGatewayV2HTTPResponse
	if json.Unmarshal(resp, &http) == nil && http.StatusCode >= 500 {
		return fmt.Errorf("status %d: %s", http.StatusCode, http.Body)
	}
	return nil
}

// lambdaV1 is the route function's handler duration per POST /v1/chat/completions (offline
// model) over lambdaV1Calls calls on one warm instance, and what those calls cost.
func (b *bench) lambdaV1(ctx context.Context, db string, local *lambdarun.Local) (*lambdaV1, error) {
	payload, err := os.ReadFile(lambdaV1Event)
	if err != nil {
		return nil, err
	}
	p, err := lambdaStart(ctx, b.binary("native", "route"), "route", db, local)
	if err != nil {
		return nil, err
	}
	defer p.Stop()
	v := &lambdaV1{Calls: lambdaV1Calls}
	var durations []time.Duration
	var billed float64
	for i := range lambdaV1Calls {
		resp, fnErr, err := p.Invoke(ctx, payload)
		if err == nil && fnErr != nil {
			err = fnErr
		}
		if err != nil {
			return nil, fmt.Errorf("call %d: %w", i+1, err)
		}
		d := p.LastDuration()
		durations = append(durations, d)
		billed += math.Ceil(float64(d.Nanoseconds()) / 1e6)
		if i == 0 {
			if v.InputTokens, v.OutputTokens, err = v1Usage(resp); err != nil {
				return nil, err
			}
		}
	}
	v.Duration = summarizeLatencies(durations)
	v.MeanBilledMS = roundTo(billed/float64(lambdaV1Calls), 3)
	for _, mb := range []int{128, lambdarun.FunctionSettings("route").MemoryMB} {
		compute := 1e6 * v.MeanBilledMS / 1000 * float64(mb) / 1024 * lambdaGBSecondUSD
		requests := 1e6 * lambdaRequestUSD
		v.Lambda = append(v.Lambda, lambdaCost{MemoryMB: mb, ComputeUSD: roundTo(compute, 4), RequestsUSD: roundTo(requests, 4),
			TotalUSD: roundTo(compute+requests, 4)})
	}
	v.LLMUSD = roundTo(1e6*(float64(v.InputTokens)*deepseekInputUSD+float64(v.OutputTokens)*deepseekOutputUSD), 4)
	return v, nil
}

// v1Usage reads the token counts of a /v1/chat/completions answer (an API Gateway v2 response).
func v1Usage(resp []byte) (in, out int, err error) {
	var http events.APIGatewayV2HTTPResponse
	if err := json.Unmarshal(resp, &http); err != nil {
		return 0, 0, err
	}
	var body struct {
		Usage struct {
			PromptTokens     int `json:"prompt_tokens"`
			CompletionTokens int `json:"completion_tokens"`
		} `json:"usage"`
	}
	if http.StatusCode != 200 || json.Unmarshal([]byte(http.Body), &body) != nil || body.Usage.CompletionTokens == 0 {
		return 0, 0, fmt.Errorf("not a chat completion with usage: %d %.300s", http.StatusCode, http.Body)
	}
	return body.Usage.PromptTokens, body.Usage.CompletionTokens, nil
}

// lambdaTable prints the step's results.
func lambdaTable(w io.Writer, r *lambdaResult) {
	fmt.Fprintf(w, "Lambda functions' real binaries under a local Runtime API (cold start: exec to the first GET /next, median of %d fresh processes)\n", lambdaColdStarts)
	fmt.Fprintf(w, "  %-9s %9s %9s %-38s %6s %10s %10s %10s %9s\n", "function", "arm64 MB", "init ms", "event", "n", "RSS@1 MiB", "RSS@n MiB", "peak MiB", "p50 ms")
	for _, f := range r.Functions {
		if f.Error != "" {
			fmt.Fprintf(w, "  %-9s FAILED: %.120s\n", f.Function, f.Error)
			continue
		}
		fmt.Fprintf(w, "  %-9s %9.2f %9.1f %-38s %6d %10.1f %10.1f %10.1f %9.2f\n", f.Function, float64(f.ARM64Bytes)/1e6, f.InitMedianMS,
			strings.TrimPrefix(f.Event, "events/"), f.Invocations, mebi(f.RSSAfter1), mebi(f.RSSAfterN), mebi(f.PeakAfterN), f.MedianMS)
	}
	fmt.Fprintln(w, "  (audit and optimize: 100 invocations, each a full run of the minute / the daily analysis)")
	v := r.V1
	if v == nil {
		return
	}
	fmt.Fprintf(w, "\nPOST /v1/chat/completions in the route function (offline model), %d calls on one warm instance: handler duration p50 %.2f ms, p99 %.2f ms, mean billed %.2f ms\n",
		v.Calls, load.Millis(v.Duration.P50), load.Millis(v.Duration.P99), v.MeanBilledMS)
	fmt.Fprintf(w, "  cost per 1M calls, Lambda arm64 ($%.10f per GB-s, billed per 1 ms, $0.20 per 1M requests), at the mean billed duration:\n", lambdaGBSecondUSD)
	for _, c := range v.Lambda {
		fmt.Fprintf(w, "    %4d MB: compute $%.4f + requests $%.2f = $%.4f\n", c.MemoryMB, c.ComputeUSD, c.RequestsUSD, c.TotalUSD)
	}
	fmt.Fprintf(w, "  the LLM cost of the same call at DeepSeek's prices (0.28 / 0.42 $ per 1M input / output tokens; %d in, %d out as the answer reports): $%.4f per 1M calls (the offline model's: $0)\n",
		v.InputTokens, v.OutputTokens, v.LLMUSD)
	if v.LLMUSD > 0 && len(v.Lambda) > 0 {
		parts := make([]string, 0, len(v.Lambda))
		for _, c := range v.Lambda {
			parts = append(parts, fmt.Sprintf("%.1f%% at %d MB", 100*c.TotalUSD/v.LLMUSD, c.MemoryMB))
		}
		fmt.Fprintf(w, "  the gateway's Lambda cost is %s of the model cost (durations measured here, not on Lambda's CPU share)\n", strings.Join(parts, ", "))
	}
}
