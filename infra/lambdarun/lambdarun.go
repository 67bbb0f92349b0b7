// Package lambdarun runs a Lambda function's real bootstrap binary on this machine, the way
// `sam local invoke` does but without Docker: the binary runs as a child process, and this
// package plays the Lambda service around it, an in-process Runtime API on 127.0.0.1 that hands
// out events and collects the answers (plus the Extensions API calls aws-lambda-go makes for
// lambda.WithEnableSIGTERM).
//
//	p, err := lambdarun.Start(ctx, lambdarun.Config{Binary: "bin/route", Function: "route"})
//	defer p.Stop()
//	answer, fnErr, err := p.Invoke(ctx, event)
//
// A Process is one execution environment: started once (the cold start, InitDuration), then
// invoked any number of times, one invocation at a time, as Lambda reuses a warm instance. Its
// memory is read from /proc (Linux). Build compiles a function with the Makefile's flags, for
// this machine or for Lambda.
package lambdarun

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/google/uuid"
)

// Defaults of Config.
const (
	DefaultMemoryMB    = 128 // Lambda's default MemorySize
	DefaultTimeout     = 3 * time.Second
	DefaultInitTimeout = 30 * time.Second
	DefaultStopGrace   = 2 * time.Second
)

// The fake account and region the functions run in.
const (
	Region  = "us-east-1"
	Account = "123456789012"
)

// Config describes one execution environment.
type Config struct {
	Binary   string // the bootstrap binary to run
	Function string // AWS_LAMBDA_FUNCTION_NAME; default: the binary's file name
	MemoryMB int    // AWS_LAMBDA_FUNCTION_MEMORY_SIZE; default DefaultMemoryMB (reported, not enforced)
	// Timeout is each invocation's deadline (Lambda-Runtime-Deadline-Ms): an invocation still
	// running then fails with ErrTimeout and the process is killed, as Lambda does.
	Timeout time.Duration
	// InitTimeout bounds the cold start: a process that has not asked for its first event by
	// then is killed and Start fails.
	InitTimeout time.Duration
	// StopGrace is how long Stop waits after SIGTERM before it kills the process.
	StopGrace time.Duration
	// Env is added to the Lambda environment (later entries win over earlier ones and over the
	// Lambda variables). The process does not inherit this process's environment.
	Env []string
	// Output, when set, receives the function's stdout and stderr (its log) as they come; they
	// are also kept for Output.
	Output interface{ Write([]byte) (int, error) }
}

// ErrorBody is the error a function reports to the Runtime API (/invocation/{id}/error or
// /init/error): aws-lambda-go's JSON shape.
type ErrorBody struct {
	Type       string       `json:"errorType"`
	Message    string       `json:"errorMessage"`
	StackTrace []StackFrame `json:"stackTrace,omitempty"`
}

// StackFrame is one frame of a panic's stack trace.
type StackFrame struct {
	Path  string `json:"path"`
	Line  int    `json:"line"`
	Label string `json:"label"`
}

func (e *ErrorBody) Error() string {
	if e.Type == "" {
		return e.Message
	}
	return e.Type + ": " + e.Message
}

// ErrTimeout is what Invoke returns for an invocation still running at its deadline.
var ErrTimeout = errors.New("lambdarun: task timed out")

// ErrExited is what Invoke returns once the process has exited (a crash, a panic's exit, Stop).
var ErrExited = errors.New("lambdarun: the function's process has exited")

// maxResponse is Lambda's limit on a synchronous invocation's response (6 MB).
const maxResponse = 6 << 20

// Process is a running function and the Runtime API it talks to.
type Process struct {
	cfg     Config
	cmd     *exec.Cmd
	ln      net.Listener
	srv     *http.Server
	out     *logBuffer
	started time.Time

	exited  chan struct{} // closed once the process has been waited for
	waitErr error         // what Wait returned; read after exited is closed
	done    chan struct{} // closed by Stop: blocked long polls return
	stopped sync.Once

	pending chan *invocation // an event waiting for the function's GET /next

	ready     chan struct{} // closed at the first GET /next
	readyOnce sync.Once
	initErrCh chan struct{} // closed at POST /init/error
	initOnce  sync.Once

	mu           sync.Mutex
	initDuration time.Duration
	initErr      *ErrorBody
	inflight     map[string]*invocation
	extensions   []string
	lastDuration time.Duration

	invokeMu sync.Mutex // one invocation at a time, as in one Lambda instance
}

type invocation struct {
	id       string
	payload  []byte
	deadline time.Time
	given    time.Time   // when GET /next handed it out (set by the handler, read after result)
	result   chan result // buffered: the handler never blocks on it
}

type result struct {
	body  []byte
	fnErr *ErrorBody
	at    time.Time
}

// Start starts the Runtime API and the function, and returns once the function asks for its
// first event (the end of its cold start). A function that exits, reports an init error or
// does not get there within InitTimeout is stopped, and Start returns an error with its output.
func Start(ctx context.Context, cfg Config) (*Process, error) {
	if cfg.Binary == "" {
		return nil, errors.New("lambdarun: no binary")
	}
	bin, err := filepath.Abs(cfg.Binary)
	if err != nil {
		return nil, err
	}
	if cfg.Function == "" {
		cfg.Function = filepath.Base(bin)
	}
	if cfg.MemoryMB <= 0 {
		cfg.MemoryMB = DefaultMemoryMB
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.InitTimeout <= 0 {
		cfg.InitTimeout = DefaultInitTimeout
	}
	if cfg.StopGrace <= 0 {
		cfg.StopGrace = DefaultStopGrace
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("lambdarun: runtime API: %w", err)
	}
	p := &Process{
		cfg: cfg, ln: ln, out: &logBuffer{tee: cfg.Output},
		exited: make(chan struct{}), done: make(chan struct{}), pending: make(chan *invocation),
		ready: make(chan struct{}), initErrCh: make(chan struct{}), inflight: map[string]*invocation{},
	}
	p.srv = &http.Server{Handler: p.routes(), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = p.srv.Serve(ln) }()

	cmd := exec.Command(bin)
	cmd.Dir = filepath.Dir(bin) // Lambda's working directory is the task root
	cmd.Env = append(lambdaEnv(cfg, ln.Addr().String(), filepath.Dir(bin)), cfg.Env...)
	cmd.Stdout, cmd.Stderr = p.out, p.out // one writer: exec shares one pipe, writes are serialized
	// A group of its own: a Ctrl-C in the terminal reaches the caller, which stops the function.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.WaitDelay = time.Second
	p.cmd = cmd
	// Under mu: the handlers read it, and the race detector cannot see that the child's first
	// request comes after this.
	p.mu.Lock()
	p.started = time.Now()
	p.mu.Unlock()
	if err := cmd.Start(); err != nil {
		p.closeServer()
		return nil, fmt.Errorf("lambdarun: start %s: %w", cfg.Function, err)
	}
	go func() {
		p.waitErr = cmd.Wait()
		close(p.exited)
	}()

	timer := time.NewTimer(cfg.InitTimeout)
	defer timer.Stop()
	select {
	case <-p.ready:
		return p, nil
	case <-p.initErrCh:
		p.kill()
		p.mu.Lock()
		ie := p.initErr
		p.mu.Unlock()
		return nil, fmt.Errorf("lambdarun: %s: init error %v%s", cfg.Function, ie, p.tail())
	case <-p.exited:
		p.closeServer()
		return nil, fmt.Errorf("lambdarun: %s exited during init (%v)%s", cfg.Function, p.waitErr, p.tail())
	case <-timer.C:
		p.kill()
		return nil, fmt.Errorf("lambdarun: %s did not finish its init within %s%s", cfg.Function, cfg.InitTimeout, p.tail())
	case <-ctx.Done():
		p.kill()
		return nil, fmt.Errorf("lambdarun: %s init: %w", cfg.Function, ctx.Err())
	}
}

// lambdaEnv is the environment Lambda gives a provided.al2023 function, with fake credentials.
func lambdaEnv(cfg Config, api, root string) []string {
	day := time.Now().UTC().Format("2006/01/02")
	return []string{
		"PATH=/usr/local/bin:/usr/bin:/bin",
		"LANG=en_US.UTF-8",
		"TZ=:UTC",
		"LAMBDA_TASK_ROOT=" + root,
		"_HANDLER=bootstrap",
		"AWS_LAMBDA_RUNTIME_API=" + api,
		"AWS_LAMBDA_FUNCTION_NAME=" + cfg.Function,
		"AWS_LAMBDA_FUNCTION_MEMORY_SIZE=" + strconv.Itoa(cfg.MemoryMB),
		"AWS_LAMBDA_FUNCTION_VERSION=$LATEST",
		"AWS_LAMBDA_INITIALIZATION_TYPE=on-demand",
		"AWS_LAMBDA_LOG_GROUP_NAME=/aws/lambda/" + cfg.Function,
		"AWS_LAMBDA_LOG_STREAM_NAME=" + day + "/[$LATEST]" + strings.ReplaceAll(uuid.NewString(), "-", ""),
		"AWS_REGION=" + Region,
		"AWS_DEFAULT_REGION=" + Region,
		// Fake credentials: the SDKs sign with them and never look further (no IMDS, no profile).
		"AWS_ACCESS_KEY_ID=AKIALAMBDARUNLOCAL00",
		"AWS_SECRET_ACCESS_KEY=lambdarun-local-secret-not-a-real-key",
		"AWS_SESSION_TOKEN=lambdarun-local-session",
	}
}

// Invoke hands payload to the function as its next event and waits for the answer: the
// response, or the error the function reported (fnErr), or err when there is no answer (the
// process exited, ErrTimeout, ctx ended). Calls are serialized.
func (p *Process) Invoke(ctx context.Context, payload []byte) (response []byte, fnErr *ErrorBody, err error) {
	p.invokeMu.Lock()
	defer p.invokeMu.Unlock()
	inv := &invocation{
		id:       uuid.NewString(),
		payload:  payload,
		deadline: time.Now().Add(p.cfg.Timeout),
		result:   make(chan result, 1),
	}
	p.mu.Lock()
	p.inflight[inv.id] = inv
	p.mu.Unlock()
	// An event handed out stays in flight until the function answers it, even when the caller
	// gave up: the Runtime API must still accept that answer, or aws-lambda-go exits.
	forget := func() {
		p.mu.Lock()
		delete(p.inflight, inv.id)
		p.mu.Unlock()
	}
	timer := time.NewTimer(time.Until(inv.deadline))
	defer timer.Stop()
	select {
	case p.pending <- inv:
	case <-p.exited:
		forget()
		return nil, nil, p.exitError()
	case <-p.done:
		forget()
		return nil, nil, ErrExited
	case <-timer.C:
		forget()
		return nil, nil, fmt.Errorf("%w: the function did not ask for the event within %s", ErrTimeout, p.cfg.Timeout)
	case <-ctx.Done():
		forget()
		return nil, nil, ctx.Err()
	}
	select {
	case r := <-inv.result:
		p.mu.Lock()
		p.lastDuration = r.at.Sub(inv.given)
		p.mu.Unlock()
		return r.body, r.fnErr, nil
	case <-p.exited:
		return nil, nil, p.exitError()
	case <-timer.C:
		// Lambda ends the execution environment of a function that overruns.
		p.kill()
		return nil, nil, fmt.Errorf("%w after %s (the process was killed)", ErrTimeout, p.cfg.Timeout)
	case <-ctx.Done():
		return nil, nil, ctx.Err()
	}
}

func (p *Process) exitError() error {
	return fmt.Errorf("%w (%v)%s", ErrExited, p.waitErr, p.tail())
}

// InitDuration is the cold start: from exec to the function's first GET /next, which is
// everything main does before lambda.Start polls for an event.
func (p *Process) InitDuration() time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.initDuration
}

// LastDuration is the last answered invocation's duration as Lambda bills it: from the event
// handed out to the answer received.
func (p *Process) LastDuration() time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.lastDuration
}

// Extensions names the extensions the function registered (GoLangEnableSIGTERM for
// lambda.WithEnableSIGTERM).
func (p *Process) Extensions() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.extensions...)
}

// Pid is the function's process id.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Output is what the function wrote to stdout and stderr so far (the last MiB of it).
func (p *Process) Output() string { return p.out.String() }

// tail is the end of the output, for error messages.
func (p *Process) tail() string {
	s := strings.TrimSpace(p.out.String())
	if s == "" {
		return "; it wrote nothing"
	}
	const n = 4000
	if len(s) > n {
		s = "..." + s[len(s)-n:]
	}
	return "; its output:\n" + s
}

// Memory is a process's resident memory, in bytes.
type Memory struct {
	RSS int64 // VmRSS: resident now
	HWM int64 // VmHWM: the peak resident size so far (what Lambda reports as Max Memory Used)
}

// RSS reads the process's memory from /proc/<pid>/status (Linux only).
func (p *Process) RSS() (Memory, error) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.Pid()))
	if err != nil {
		return Memory{}, fmt.Errorf("lambdarun: memory: %w", err)
	}
	return parseStatus(raw)
}

// parseStatus reads VmRSS and VmHWM (in kB) from a /proc/<pid>/status.
func parseStatus(raw []byte) (Memory, error) {
	var m Memory
	var found int
	for _, line := range strings.Split(string(raw), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok || (k != "VmRSS" && k != "VmHWM") {
			continue
		}
		f := strings.Fields(v)
		if len(f) != 2 || f[1] != "kB" {
			return Memory{}, fmt.Errorf("lambdarun: memory: unexpected %s line %q", k, line)
		}
		n, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return Memory{}, fmt.Errorf("lambdarun: memory: %s: %w", k, err)
		}
		if k == "VmRSS" {
			m.RSS = n << 10
		} else {
			m.HWM = n << 10
		}
		found++
	}
	if found != 2 {
		return Memory{}, errors.New("lambdarun: memory: no VmRSS and VmHWM (has the process exited?)")
	}
	return m, nil
}

// Stop shuts the function down as Lambda does: SIGTERM (a function with
// lambda.WithEnableSIGTERM runs its handlers, closing its pools), then SIGKILL if it is still
// there after StopGrace. It returns once the process is gone, and may be called again.
func (p *Process) Stop() {
	select {
	case <-p.exited:
	default:
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		t := time.NewTimer(p.cfg.StopGrace)
		select {
		case <-p.exited:
		case <-t.C:
			_ = p.cmd.Process.Kill()
			<-p.exited
		}
		t.Stop()
	}
	p.closeServer()
}

// Kill ends the process at once (no SIGTERM), as Lambda does with an instance that overran.
func (p *Process) Kill() { p.kill() }

func (p *Process) kill() {
	select {
	case <-p.exited:
	default:
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
	p.closeServer()
}

// Exited is closed once the process has exited.
func (p *Process) Exited() <-chan struct{} { return p.exited }

func (p *Process) closeServer() {
	p.stopped.Do(func() {
		close(p.done)
		_ = p.srv.Close()
	})
}

// logBuffer keeps the last MiB of the function's output and copies it to tee.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
	tee interface{ Write([]byte) (int, error) }
}

const logKeep = 1 << 20

func (l *logBuffer) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.tee != nil {
		_, _ = l.tee.Write(b)
	}
	l.buf.Write(b)
	if l.buf.Len() > 2*logKeep {
		keep := append([]byte(nil), l.buf.Bytes()[l.buf.Len()-logKeep:]...)
		l.buf.Reset()
		l.buf.Write(keep)
	}
	return len(b), nil
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.buf.Bytes()
	if len(b) > logKeep {
		b = b[len(b)-logKeep:]
	}
	return string(b)
}

// decodeError reads an error body; one that is not aws-lambda-go's JSON is kept as the message.
func decodeError(raw []byte, typeHeader string) *ErrorBody {
	var e ErrorBody
	if err := json.Unmarshal(raw, &e); err != nil || (e.Type == "" && e.Message == "") {
		e = ErrorBody{Message: strings.TrimSpace(string(raw))}
	}
	if e.Type == "" {
		e.Type = typeHeader
	}
	return &e
}
