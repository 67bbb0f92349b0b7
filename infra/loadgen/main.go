// Command loadgen is Helix's HTTP load generator, the command line of package infra/load: c
// workers send the same request in a closed loop for a fixed duration, and the run is summarized
// as throughput and latency percentiles (see that package for what is counted and how).
//
//	go run ./infra/loadgen -url http://127.0.0.1:3000/ai-router/route -token "$TOKEN" \
//	    -body '{"operation_id":"email-compose","estimated_tokens":100}' -c 64 -d 15s
//
// -token-file spreads the load over several users: worker i sends the token on line
// i mod n of the file (so -c 64 with 64 tokens gives each worker a user of its own).
//
// It exits 2 on bad flags, and 1 when the run failed or any request did (the numbers are still
// printed).
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/helixhq/helix/infra/load"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run is the command: it parses args, runs the load and prints the summary to stdout.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	o, asJSON, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "loadgen:", err)
		return 2
	}
	s, err := load.Run(ctx, o)
	if err != nil {
		fmt.Fprintln(stderr, "loadgen:", err)
		return 1
	}
	if asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		err = enc.Encode(s)
	} else {
		err = s.WriteText(stdout)
	}
	if err != nil {
		fmt.Fprintln(stderr, "loadgen:", err)
		return 1
	}
	if s.Errors > 0 {
		// The numbers are printed, but a run with failed requests does not measure the path it
		// claims to measure.
		fmt.Fprintf(stderr, "loadgen: %d of %d requests failed\n", s.Errors, s.Requests)
		return 1
	}
	return 0
}

// parseFlags turns the command line into the run's options, and whether to print JSON.
func parseFlags(args []string, stderr io.Writer) (load.Options, bool, error) {
	var o load.Options
	fs := flag.NewFlagSet("loadgen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.URL, "url", "", "URL to load (required)")
	fs.StringVar(&o.Method, "method", "", "HTTP method (default POST with -body, else GET)")
	fs.StringVar(&o.Token, "token", "", "bearer token sent as Authorization: Bearer <token>")
	tokenFile := fs.String("token-file", "", "file of bearer tokens, one a line: worker i sends line i mod n (instead of -token)")
	fs.StringVar(&o.Body, "body", "", "request body, sent as application/json")
	fs.IntVar(&o.Concurrency, "c", 64, "concurrency: workers, each with one request in flight")
	fs.DurationVar(&o.Duration, "d", 15*time.Second, "measured duration")
	fs.DurationVar(&o.Warmup, "warmup", 2*time.Second, "unmeasured warm-up before the measured run (0 for none)")
	fs.DurationVar(&o.Timeout, "timeout", load.DefaultTimeout, "per-request timeout")
	asJSON := fs.Bool("json", false, "print the summary as JSON")
	if err := fs.Parse(args); err != nil {
		return o, false, err
	}
	if fs.NArg() > 0 {
		return o, false, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if o.Timeout <= 0 {
		return o, false, errors.New("-timeout must be positive")
	}
	if *tokenFile != "" {
		if o.Token != "" {
			return o, false, errors.New("-token and -token-file exclude each other")
		}
		tokens, err := load.ReadTokens(*tokenFile)
		if err != nil {
			return o, false, err
		}
		o.Tokens = tokens
	}
	return o, *asJSON, o.Check()
}
