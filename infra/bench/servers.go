package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/helixhq/helix/infra/devenv"
	"github.com/helixhq/helix/shared/auth"
)

// serverMaxConns is the dev server's pool size in every run (HELIX_DB_MAX_CONNS): enough for the
// load at concurrency 64 not to queue on the pool more than on the two CPUs.
const serverMaxConns = 16

// postgres finds or starts the project's Postgres (infra/pg/ensure.sh, as make dev and make test
// do) and the bench database, which is kept between runs: each run's users are its own.
func (b *bench) postgres(ctx context.Context) error {
	server, err := ensurePG(ctx)
	if err != nil {
		return err
	}
	db, err := ensurePG(ctx, "--database", "helix_bench")
	if err != nil {
		return err
	}
	b.serverURL, b.dbURL = server, db
	b.res.Postgres = redact(db)
	b.printf("server   %s\n", redact(server))
	b.printf("database %s\n", redact(db))
	return nil
}

// ensurePG runs infra/pg/ensure.sh and returns the URL it prints; its progress goes to stderr.
func ensurePG(ctx context.Context, args ...string) (string, error) {
	var out bytes.Buffer
	cmd := exec.Command("bash", append([]string{"infra/pg/ensure.sh"}, args...)...)
	cmd.Stdout, cmd.Stderr = &out, os.Stderr
	if err := runProc(ctx, "infra/pg/ensure.sh", cmd); err != nil {
		return "", err
	}
	u := strings.TrimSpace(out.String())
	if !strings.HasPrefix(u, "postgres") {
		return "", fmt.Errorf("infra/pg/ensure.sh printed %q, not a Postgres URL", u)
	}
	return u, nil
}

// redact hides a URL's password and drops its query, for printing.
func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	u.RawQuery = ""
	return u.Redacted()
}

// build compiles the dev server and the mock upstream, so the runs measure them and not `go run`.
func (b *bench) build(ctx context.Context) error {
	b.devserver = filepath.Join(b.tmp, "devserver")
	b.mock = filepath.Join(b.tmp, "mockllm")
	for _, t := range []struct{ out, pkg string }{{b.devserver, "./infra/devserver"}, {b.mock, "./infra/mockllm"}} {
		cmd := exec.Command("go", "build", "-o", t.out, t.pkg)
		cmd.Stdout, cmd.Stderr = b.out, b.out
		if err := runProc(ctx, "go build "+t.pkg, cmd); err != nil {
			return err
		}
	}
	b.printf("ok\n")
	return nil
}

// minter signs the bearer tokens the dev server accepts: the settings of `make token` (the
// environment's, else the dev defaults), which the dev server reads the same way.
type minter struct {
	secret           []byte
	issuer, audience string
}

func newMinter(getenv func(string) string) (minter, error) {
	getenv = devenv.Getenv(getenv)
	m := minter{secret: []byte(getenv("HELIX_JWT_SECRET")), issuer: getenv("HELIX_JWT_ISSUER"), audience: getenv("HELIX_JWT_AUDIENCE")}
	if err := auth.CheckHS256Secret(m.secret); err != nil {
		return minter{}, fmt.Errorf("HELIX_JWT_SECRET: %w", err)
	}
	return m, nil
}

// token is a bearer token for user, valid long enough for the longest bench.
func (m minter) token(user string) (string, error) {
	return auth.SignHS256(auth.TokenSpec{Secret: m.secret, Subject: user, Issuer: m.issuer, Audience: m.audience, TTL: 6 * time.Hour})
}

// server is a started dev server or mock upstream.
type server struct {
	*proc
	url string // base URL
	log string // file with its stdout and stderr
}

// droppedEnv are variables of the caller's environment the dev server must not see: provider
// settings (no run may reach a real provider; HELIX_OFFLINE unset is the dev server's default,
// only providers without a key answer from the offline model), kill-switch overrides and chat
// settings (they would change what is measured), the pprof listener (only the profile step
// starts one: a listener of the caller's would clash between servers and cost what it profiles),
// and the variables each run sets itself.
func droppedEnv(name string) bool {
	switch name {
	case "HELIX_OFFLINE", "DEEPSEEK_API_KEY", "DEEPSEEK_BASE_URL", "GEMINI_API_KEY", "GEMINI_BASE_URL",
		"ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL", "HELIX_OPENAI_COMPAT_PROVIDERS", "ENABLE_MAINTENANCE_MODE",
		"PORT", "DATABASE_URL", "HELIX_LOG_LEVEL", "HELIX_DB_MAX_CONNS", "HELIX_DB_EXEC_MODE",
		"HELIX_SYNTHESIZE_EVERY", "HELIX_SYNTHESIS_IDLE", "HELIX_CHAT_HISTORY_TOKENS", "HELIX_CHAT_MEMORY_TOKENS",
		"HELIX_DEV_PPROF_ADDR":
		return true
	}
	return strings.HasPrefix(name, "DISABLE_")
}

// serverEnv is the caller's environment minus droppedEnv, plus extra (NAME=value).
func serverEnv(environ []string, extra ...string) []string {
	var env []string
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		if !droppedEnv(name) {
			env = append(env, kv)
		}
	}
	return append(env, extra...)
}

// startDevServer starts the dev server on a free port against the bench database, with extra
// environment (NAME=value), and waits until /healthz answers. The caller stops it.
func (b *bench) startDevServer(ctx context.Context, name string, extra ...string) (*server, error) {
	return b.startDevServerOn(ctx, name, b.dbURL, extra...)
}

// startDevServerOn is startDevServer against the database at dbURL (the bench database through
// the round-trip counting proxy, say).
func (b *bench) startDevServerOn(ctx context.Context, name, dbURL string, extra ...string) (*server, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	env := append([]string{"PORT=" + strconv.Itoa(port), "DATABASE_URL=" + dbURL, "HELIX_LOG_LEVEL=warn",
		"HELIX_DB_MAX_CONNS=" + strconv.Itoa(serverMaxConns)}, extra...)
	s, err := b.startServer(name, exec.Command(b.devserver), serverEnv(os.Environ(), env...))
	if err != nil {
		return nil, err
	}
	s.url = "http://127.0.0.1:" + strconv.Itoa(port)
	if err := s.waitHealthy(ctx); err != nil {
		s.stop()
		return nil, err
	}
	b.printf("dev server on %s (pid %d; %s)\n", s.url, s.cmd.Process.Pid, strings.Join(extra, " "))
	return s, nil
}

// startMock starts the mock upstream on a port of its choosing and reads its URL, the first line
// it prints. The caller stops it.
func (b *bench) startMock(ctx context.Context) (*server, error) {
	s, err := b.startMockWith(ctx, "mockllm", "-delay", b.cfg.mockDelay.String())
	if err != nil {
		return nil, err
	}
	b.printf("mock upstream on %s (pid %d, -delay %s)\n", s.url, s.cmd.Process.Pid, b.cfg.mockDelay)
	return s, nil
}

// startMockWith starts the mock upstream as name with the flags args, on a port of its
// choosing, and waits for its URL.
func (b *bench) startMockWith(ctx context.Context, name string, args ...string) (*server, error) {
	s, err := b.startServer(name, exec.Command(b.mock, append([]string{"-addr", "127.0.0.1:0"}, args...)...), os.Environ())
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(10 * time.Second)
	for s.url == "" {
		first, _, _ := strings.Cut(s.logText(), "\n")
		switch {
		case strings.HasPrefix(first, "http://"):
			s.url = strings.TrimSpace(first)
		case !s.running():
			return nil, fmt.Errorf("the mock upstream exited: %s", s.logText())
		case time.Now().After(deadline):
			s.stop()
			return nil, errors.New("the mock upstream printed no URL in 10s")
		default:
			if err := sleep(ctx, 100*time.Millisecond); err != nil {
				s.stop()
				return nil, err
			}
		}
	}
	return s, nil
}

// startServer starts cmd with env, its output in <tmp>/<name>.log.
func (b *bench) startServer(name string, cmd *exec.Cmd, env []string) (*server, error) {
	logPath := filepath.Join(b.tmp, name+".log")
	f, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer f.Close() // the child has its own copy of the descriptor
	cmd.Env, cmd.Stdout, cmd.Stderr = env, f, f
	p, err := startProc(name, cmd)
	if err != nil {
		return nil, err
	}
	return &server{proc: p, log: logPath}, nil
}

// waitHealthy polls /healthz for up to 30s (migrations run first on a fresh database).
func (s *server) waitHealthy(ctx context.Context) error {
	client := &http.Client{Timeout: time.Second, Transport: &http.Transport{Proxy: nil}}
	defer client.CloseIdleConnections()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if !s.running() {
			return fmt.Errorf("the dev server exited: %s", s.logText())
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.url+"/healthz", nil)
		if err != nil {
			return err
		}
		if res, err := client.Do(req); err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the dev server did not answer %s/healthz in 30s: %s", s.url, s.logText())
		}
		if err := sleep(ctx, 200*time.Millisecond); err != nil {
			return err
		}
	}
}

// waitLog waits up to d for the log to contain text.
func (s *server) waitLog(ctx context.Context, text string, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for !strings.Contains(s.logText(), text) {
		if time.Now().After(deadline) || sleep(ctx, 100*time.Millisecond) != nil {
			return false
		}
	}
	return true
}

func (s *server) logText() string {
	raw, err := os.ReadFile(s.log)
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	return string(raw)
}

// logErrors fails when the dev server logged errors, quoting the first five.
func (s *server) logErrors() error {
	var errs []string
	for _, line := range strings.Split(s.logText(), "\n") {
		if strings.Contains(line, `"level":"ERROR"`) {
			errs = append(errs, line)
		}
	}
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("the dev server logged %d errors; the first: %s", len(errs), strings.Join(errs[:min(5, len(errs))], "\n"))
}

// freePort asks the kernel for a free port. Another process could take it before the server
// does; the server then fails to start and says so.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}
