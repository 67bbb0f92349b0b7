// Command invoke is `make invoke`: it runs one function's real Lambda binary on this machine with
// a sample event, as `sam local invoke` would, without Docker (package infra/lambdarun plays the
// Lambda service).
//
//	go run ./infra/invoke -fn route -event events/route/post-ai-router-route.json [-env KEY=VALUE ...]
//
// It builds functions/<fn> for this machine with the Makefile's tags, takes the database `make
// dev` uses (DATABASE_URL, else infra/pg/ensure.sh --database helix_dev) and applies the
// migrations to it (not for -fn migrate, which migrates by itself), then starts the binary with
// the Lambda environment, the development defaults (the dev JWT settings, HELIX_OFFLINE=fallback:
// no provider key needed, the development audit keys), the template's database settings and
// local stand-ins for what the function calls on AWS: an SQS endpoint for the synthesis queue
// (chat, audit), and for the migrate function's custom-resource events an endpoint in place of
// the ResponseURL, whose PUT it prints as CloudFormation would receive it. The caller's
// environment comes next (without its AWS_ variables), then each -env.
//
// A streaming Function URL's event (events/route/function-url/..., events/chat/function-url/...:
// payload 2.0 without a routeKey, from a <id>.lambda-url.<region>.on.aws domain) runs the function
// as its streaming twin does on AWS: with HELIX_LAMBDA_ENTRY=function_url and the twin's timeout.
// A Function URL has no authorizer, so the function verifies the bearer token: the event's
// "Bearer ${DEV_TOKEN}" becomes a fresh token for test-user, signed with the function's JWT
// settings (the dev ones unless the environment or -env says otherwise), as `make token` would.
//
// The function's answer goes to stdout as indented JSON (a streamed answer as its prelude, then
// the body as it came); its log lines, the messages it sent and a Lambda-style REPORT line go to
// stderr. The exit status is 1 when the function returned
// an error (or told CloudFormation FAILED), 2 for bad flags, 3 when it could not be run.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/helixhq/helix/infra/lambdarun"
	"github.com/helixhq/helix/infra/migrations"
	"github.com/helixhq/helix/shared/app"
	"github.com/helixhq/helix/shared/auth"
	"github.com/helixhq/helix/shared/config"
)

func main() {
	os.Exit(run(os.Args[1:], os.Environ(), os.Stdout, os.Stderr))
}

// envFlags collects repeated -env KEY=VALUE.
type envFlags []string

func (e *envFlags) String() string { return strings.Join(*e, " ") }

func (e *envFlags) Set(v string) error {
	k, _, ok := strings.Cut(v, "=")
	if !ok || k == "" {
		return fmt.Errorf("%q is not KEY=VALUE", v)
	}
	*e = append(*e, v)
	return nil
}

func run(args, environ []string, stdout, stderr io.Writer) int {
	// The function's log and this command's lines share stderr, from different goroutines.
	stderr = &lockedWriter{w: stderr}
	fs := flag.NewFlagSet("invoke", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fn := fs.String("fn", "", "the function: a folder of functions/ (route, budget, chat, synthesis, audit, optimize, migrate)")
	event := fs.String("event", "", "the event's JSON file, e.g. events/route/post-ai-router-route.json")
	var extra envFlags
	fs.Var(&extra, "env", "KEY=VALUE added to the function's environment (repeatable)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *fn == "" || *event == "" || fs.NArg() > 0 {
		fmt.Fprintln(stderr, "usage: go run ./infra/invoke -fn <function> -event <file.json> [-env KEY=VALUE ...]")
		return 2
	}
	payload, err := os.ReadFile(*event)
	if err != nil {
		fmt.Fprintln(stderr, "invoke:", err)
		return 2
	}
	if !json.Valid(payload) {
		fmt.Fprintf(stderr, "invoke: %s is not JSON\n", *event)
		return 2
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	root, err := repoRoot(ctx)
	if err != nil {
		fmt.Fprintln(stderr, "invoke:", err)
		return 3
	}
	if st, err := os.Stat(filepath.Join(root, "functions", *fn)); err != nil || !st.IsDir() {
		fmt.Fprintf(stderr, "invoke: no function %q in functions/\n", *fn)
		return 2
	}
	dbURL, err := database(ctx, root, environ, stderr)
	if err != nil {
		fmt.Fprintln(stderr, "invoke: database:", err)
		return 3
	}
	if *fn != "migrate" {
		if err := migrations.Up(ctx, dbURL, slog.New(slog.NewTextHandler(io.Discard, nil))); err != nil {
			fmt.Fprintln(stderr, "invoke: migrations:", err)
			return 3
		}
	}
	tmp, err := os.MkdirTemp("", "helix-invoke-")
	if err != nil {
		fmt.Fprintln(stderr, "invoke:", err)
		return 3
	}
	defer os.RemoveAll(tmp)
	bin, err := build(ctx, root, *fn, tmp)
	if err != nil {
		fmt.Fprintln(stderr, "invoke:", err)
		return 3
	}
	local, err := lambdarun.StartLocal()
	if err != nil {
		fmt.Fprintln(stderr, "invoke:", err)
		return 3
	}
	defer local.Close()

	stream := isFunctionURL(payload)
	env := callerEnv(environ)
	if stream {
		env = append(env, "HELIX_LAMBDA_ENTRY="+config.LambdaEntryFunctionURL)
	}
	env = append(env, extra...)
	if stream {
		if payload, err = withDevToken(payload, append(local.Env(*fn, dbURL), env...)); err != nil {
			fmt.Fprintln(stderr, "invoke:", err)
			return 3
		}
	}
	p, err := start(ctx, bin, *fn, stream, dbURL, local, env, stderr)
	if err != nil {
		fmt.Fprintln(stderr, "invoke:", err)
		return 3
	}
	defer p.Stop()
	a, err := invoke(ctx, p, local, *fn, payload)
	if err != nil {
		fmt.Fprintln(stderr, "invoke:", err)
		return 3
	}
	a.print(stdout, stderr)
	if a.failed() {
		return 1
	}
	return 0
}

// lockedWriter serializes writes to w.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}

// repoRoot is the folder of the main module's go.mod.
func repoRoot(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", errors.New("not inside the Helix module; run it from the repository")
	}
	return filepath.Dir(mod), nil
}

// database is DATABASE_URL when set, else the project's own Postgres as `make dev` finds or
// starts it (infra/pg/ensure.sh --database helix_dev, its progress on stderr).
func database(ctx context.Context, root string, environ []string, stderr io.Writer) (string, error) {
	for _, kv := range environ {
		if v, ok := strings.CutPrefix(kv, "DATABASE_URL="); ok && v != "" {
			return v, nil
		}
	}
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, "bash", "infra/pg/ensure.sh", "--database", "helix_dev")
	cmd.Dir, cmd.Stdout, cmd.Stderr = root, &out, stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("infra/pg/ensure.sh: %w", err)
	}
	u := strings.TrimSpace(out.String())
	if !strings.HasPrefix(u, "postgres") {
		return "", fmt.Errorf("infra/pg/ensure.sh printed %q, not a Postgres URL", u)
	}
	return u, nil
}

// build compiles functions/fn for this machine into dir/<fn>/bootstrap.
func build(ctx context.Context, root, fn, dir string) (string, error) {
	bin := filepath.Join(dir, fn, "bootstrap")
	err := lambdarun.Build{Dir: root, Package: "./functions/" + fn, Output: bin}.Run(ctx)
	return bin, err
}

// callerEnv is the caller's environment without its AWS_ variables: the function runs with the
// fake credentials and the local endpoints, never the caller's account.
func callerEnv(environ []string) []string {
	return slices.DeleteFunc(slices.Clone(environ), func(kv string) bool { return strings.HasPrefix(kv, "AWS_") })
}

// start runs the function's binary with its template settings (its streaming twin's when stream
// is set) and local environment, then env; its log goes to logs.
func start(ctx context.Context, bin, fn string, stream bool, dbURL string, local *lambdarun.Local, env []string, logs io.Writer) (*lambdarun.Process, error) {
	s, name := lambdarun.FunctionSettings(fn), "helix-"+fn
	if twin, ok := lambdarun.StreamSettings(fn); ok && stream {
		s, name = twin, name+"-stream"
	}
	return lambdarun.Start(ctx, lambdarun.Config{
		Binary: bin, Function: name, MemoryMB: s.MemoryMB, Timeout: s.Timeout,
		Env: append(local.Env(fn, dbURL), env...), Output: logs,
	})
}

// isFunctionURL reports whether payload is what a Function URL sends: payload 2.0 without the
// routeKey API Gateway sets, from a Function URL's domain.
func isFunctionURL(payload []byte) bool {
	var ev struct {
		Version        string `json:"version"`
		RouteKey       string `json:"routeKey"`
		RequestContext struct {
			DomainName string `json:"domainName"`
		} `json:"requestContext"`
	}
	return json.Unmarshal(payload, &ev) == nil && ev.Version == "2.0" && ev.RouteKey == "" &&
		strings.Contains(ev.RequestContext.DomainName, ".lambda-url.")
}

// tokenPlaceholder is the bearer token of the Function URL sample events (as in
// shared/lambdatest.TokenPlaceholder).
const tokenPlaceholder = "${DEV_TOKEN}"

// devUser is whom the token put in the placeholder's place names (the sample events' user).
const devUser = "test-user"

// withDevToken puts a fresh token for devUser, signed with the JWT settings of env (the last
// value of each variable wins, as in the process), in place of the event's token placeholder.
func withDevToken(payload []byte, env []string) ([]byte, error) {
	if !bytes.Contains(payload, []byte(tokenPlaceholder)) {
		return payload, nil
	}
	get := func(key string) string { return app.EnvValue(env, key) }
	tok, err := auth.SignHS256(auth.TokenSpec{Secret: []byte(get("HELIX_JWT_SECRET")), Subject: devUser,
		Issuer: get("HELIX_JWT_ISSUER"), Audience: get("HELIX_JWT_AUDIENCE"), TTL: time.Hour})
	if err != nil {
		return nil, fmt.Errorf("signing the event's token: %w", err)
	}
	return bytes.ReplaceAll(payload, []byte(tokenPlaceholder), []byte(tok)), nil
}

// answer is one invocation's outcome and what the local services saw meanwhile.
type answer struct {
	fn       string
	response []byte
	fnErr    *lambdarun.ErrorBody
	cfn      []lambdarun.CFNResponse // the PUTs to the local CloudFormation endpoint
	sent     []lambdarun.SQSMessage  // the messages sent to the local SQS
	report   string                  // the Lambda-style REPORT line
}

// invoke sends one event (a custom resource event gets its ResponseURL on the local endpoint).
func invoke(ctx context.Context, p *lambdarun.Process, local *lambdarun.Local, fn string, payload []byte) (answer, error) {
	ev, err := local.Event(fn, payload)
	if err != nil {
		return answer{}, err
	}
	cfnBefore, sqsBefore := len(local.CloudFormation.Responses()), len(local.SQS.Messages())
	resp, fnErr, err := p.Invoke(ctx, ev)
	if err != nil {
		return answer{}, err
	}
	mem, _ := p.RSS()
	return answer{fn: fn, response: resp, fnErr: fnErr, report: report(p, mem),
		cfn: local.CloudFormation.Responses()[cfnBefore:], sent: local.SQS.Messages()[sqsBefore:]}, nil
}

// failed reports whether the function returned an error, or answered CloudFormation FAILED.
func (a answer) failed() bool {
	if a.fnErr != nil {
		return true
	}
	for _, r := range a.cfn {
		if r.Status != "SUCCESS" {
			return true
		}
	}
	return false
}

// report is a line like Lambda's REPORT line in CloudWatch.
func report(p *lambdarun.Process, m lambdarun.Memory) string {
	d := p.LastDuration()
	ms := float64(d.Microseconds()) / 1000
	return fmt.Sprintf("REPORT Duration: %.2f ms\tBilled Duration: %.0f ms\tMax Memory Used: %d MB\tInit Duration: %.2f ms",
		ms, math.Ceil(ms), m.HWM>>20, float64(p.InitDuration().Microseconds())/1000)
}

// print writes the answer on stdout and what went with it on stderr.
func (a answer) print(stdout, stderr io.Writer) {
	for _, m := range a.sent {
		fmt.Fprintf(stderr, "invoke: SQS message to %s: %s\n", m.Queue, m.Body)
	}
	for _, r := range a.cfn {
		fmt.Fprintf(stderr, "invoke: CloudFormation received (PUT %s):\n%s\n", r.Path, indent(r.Body))
	}
	fmt.Fprintln(stderr, a.report)
	if a.fnErr != nil {
		raw, _ := json.MarshalIndent(a.fnErr, "", "  ")
		fmt.Fprintf(stdout, "%s\n", raw)
		fmt.Fprintf(stderr, "invoke: the function returned an error: %v\n", a.fnErr)
		return
	}
	if prelude, body, ok := bytes.Cut(a.response, make([]byte, 8)); ok && json.Valid(prelude) {
		// A streamed answer: the prelude (status, headers), 8 zero bytes, then the body.
		fmt.Fprintf(stdout, "%s\n%s", indent(prelude), body)
		if len(body) > 0 && body[len(body)-1] != '\n' {
			fmt.Fprintln(stdout)
		}
		return
	}
	fmt.Fprintf(stdout, "%s\n", indent(a.response))
}

// indent is raw as indented JSON, or as it is when it is not JSON.
func indent(raw []byte) []byte {
	var b bytes.Buffer
	if err := json.Indent(&b, raw, "", "  "); err != nil {
		return raw
	}
	return b.Bytes()
}
