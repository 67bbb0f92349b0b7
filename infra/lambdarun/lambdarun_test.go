package lambdarun

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// fnBinary is testdata/fn, built once for the package's tests.
var fnBinary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "lambdarun-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fnBinary = filepath.Join(dir, "bootstrap")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	err = Build{Package: "./testdata/fn", Output: fnBinary}.Run(ctx)
	cancel()
	code := 1
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
	} else {
		code = m.Run()
	}
	os.RemoveAll(dir)
	os.Exit(code)
}

func start(t *testing.T, cfg Config) *Process {
	t.Helper()
	if cfg.Binary == "" {
		cfg.Binary = fnBinary
	}
	p, err := Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Kill)
	return p
}

type echo struct {
	RequestID   string            `json:"request_id"`
	FunctionARN string            `json:"function_arn"`
	Deadline    int64             `json:"deadline_ms"`
	TraceID     string            `json:"trace_id"`
	Env         map[string]string `json:"env"`
}

// The function gets the Lambda environment, the caller's variables on top, and each event with
// the headers the runtime reads.
func TestInvokeEcho(t *testing.T) {
	p := start(t, Config{Function: "helix-echo", MemoryMB: 512, Timeout: 30 * time.Second,
		Env: []string{"FN_EXTRA=1", "AWS_REGION=eu-west-1"}})
	if p.InitDuration() <= 0 {
		t.Errorf("InitDuration = %v, want > 0", p.InitDuration())
	}
	var ids []string
	for i := range 3 {
		before := time.Now()
		raw, fnErr, err := p.Invoke(context.Background(), []byte(`{"do":"echo"}`))
		if err != nil || fnErr != nil {
			t.Fatalf("invocation %d: %v %v", i, fnErr, err)
		}
		var got echo
		if err := json.Unmarshal(raw, &got); err != nil {
			t.Fatalf("answer %s: %v", raw, err)
		}
		ids = append(ids, got.RequestID)
		if got.FunctionARN != "arn:aws:lambda:us-east-1:123456789012:function:helix-echo" {
			t.Errorf("function ARN = %q", got.FunctionARN)
		}
		if d := time.UnixMilli(got.Deadline); d.Before(before.Add(29*time.Second)) || d.After(time.Now().Add(31*time.Second)) {
			t.Errorf("deadline %v is not 30 s after the invocation", d)
		}
		if !strings.HasPrefix(got.TraceID, "Root=1-") {
			t.Errorf("trace id = %q", got.TraceID)
		}
		want := map[string]string{
			"AWS_LAMBDA_FUNCTION_NAME": "helix-echo", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "512",
			"AWS_LAMBDA_FUNCTION_VERSION": "$LATEST", "AWS_REGION": "eu-west-1", "FN_EXTRA": "1",
			"LAMBDA_TASK_ROOT": filepath.Dir(fnBinary),
		}
		for k, v := range want {
			if got.Env[k] != v {
				t.Errorf("%s = %q, want %q", k, got.Env[k], v)
			}
		}
		for _, k := range []string{"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_LAMBDA_RUNTIME_API"} {
			if got.Env[k] == "" {
				t.Errorf("%s is not set", k)
			}
		}
		if p.LastDuration() <= 0 {
			t.Errorf("LastDuration = %v", p.LastDuration())
		}
	}
	if ids[0] == "" || ids[0] == ids[1] || ids[1] == ids[2] {
		t.Errorf("request ids %q are not distinct", ids)
	}
	// The log lines travel through a pipe the runner copies from, which may trail the answer
	// that came over HTTP: wait for them (a bound, not a timing assertion).
	logged := func() bool {
		return strings.Contains(p.Output(), `"msg":"cold start"`) && strings.Count(p.Output(), `"msg":"invoked"`) == 3
	}
	for deadline := time.Now().Add(10 * time.Second); !logged() && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	if !logged() {
		t.Errorf("output does not have the cold start and three invocations:\n%s", p.Output())
	}
}

func TestInvokeErrors(t *testing.T) {
	cases := []struct {
		do       string
		wantType string
		wantMsg  string
		exits    bool
		stack    bool
	}{
		{do: "fail", wantType: "errorString", wantMsg: "fn: asked to fail"},
		{do: "panic", wantType: "string", wantMsg: "fn: asked to panic", exits: true, stack: true},
		{do: "big", wantType: "Function.ResponseSizeTooLarge", wantMsg: "6291456 bytes", exits: true},
	}
	for _, tc := range cases {
		t.Run(tc.do, func(t *testing.T) {
			p := start(t, Config{})
			raw, fnErr, err := p.Invoke(context.Background(), []byte(`{"do":"`+tc.do+`"}`))
			if err != nil {
				t.Fatal(err)
			}
			if fnErr == nil {
				t.Fatalf("no function error; answer %.200s", raw)
			}
			if fnErr.Type != tc.wantType || !strings.Contains(fnErr.Message, tc.wantMsg) {
				t.Errorf("error = %+v, want type %q with %q", fnErr, tc.wantType, tc.wantMsg)
			}
			if !tc.exits {
				// The instance stays usable after a failed invocation.
				if _, fnErr, err := p.Invoke(context.Background(), []byte(`{}`)); err != nil || fnErr != nil {
					t.Errorf("next invocation: %v %v", fnErr, err)
				}
				return
			}
			if tc.stack && len(fnErr.StackTrace) == 0 {
				t.Errorf("a panic's error has no stack trace: %+v", fnErr)
			}
			<-p.Exited()
			if _, _, err := p.Invoke(context.Background(), []byte(`{}`)); !errors.Is(err, ErrExited) {
				t.Errorf("invocation after the process exited: %v, want ErrExited", err)
			}
		})
	}
}

func TestTimeout(t *testing.T) {
	p := start(t, Config{Timeout: 300 * time.Millisecond})
	_, _, err := p.Invoke(context.Background(), []byte(`{"do":"sleep"}`))
	if !errors.Is(err, ErrTimeout) {
		t.Fatalf("err = %v, want ErrTimeout", err)
	}
	<-p.Exited() // killed, as Lambda ends an instance that overran
}

// A caller that gives up does not break the instance: the late answer is accepted and the next
// event is served.
func TestCancelledInvoke(t *testing.T) {
	p := start(t, Config{Timeout: time.Minute})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, _, err := p.Invoke(ctx, []byte(`{}`)); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if _, fnErr, err := p.Invoke(context.Background(), []byte(`{}`)); err != nil || fnErr != nil {
		t.Fatalf("next invocation: %v %v", fnErr, err)
	}
}

func TestInitFailures(t *testing.T) {
	cases := []struct {
		init string
		want []string
	}{
		{init: "exit", want: []string{"exited during init", "exit status 3", "fn: cold start failed: FN_INIT=exit"}},
		{init: "initerror", want: []string{"init error", "Init.Config: fn: bad configuration"}},
	}
	for _, tc := range cases {
		t.Run(tc.init, func(t *testing.T) {
			p, err := Start(context.Background(), Config{Binary: fnBinary, Env: []string{"FN_INIT=" + tc.init}})
			if err == nil {
				p.Kill()
				t.Fatal("Start succeeded")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
	if _, err := Start(context.Background(), Config{Binary: filepath.Join(t.TempDir(), "missing")}); err == nil {
		t.Error("Start of a missing binary succeeded")
	}
}

// Stop sends SIGTERM first: the function's WithEnableSIGTERM handlers run (it registered the
// extension that enables them), then the process is gone.
func TestStop(t *testing.T) {
	p := start(t, Config{StopGrace: 5 * time.Second})
	if got := p.Extensions(); len(got) != 1 || got[0] != "GoLangEnableSIGTERM" {
		t.Errorf("extensions = %q, want [GoLangEnableSIGTERM]", got)
	}
	p.Stop()
	select {
	case <-p.Exited():
	default:
		t.Fatal("the process is still running after Stop")
	}
	if !strings.Contains(p.Output(), "sigterm: pool closed") {
		t.Errorf("the SIGTERM handler did not run; output:\n%s", p.Output())
	}
	p.Stop() // again: no effect
}

func TestConcurrentInvokes(t *testing.T) {
	var out bytes.Buffer
	var mu sync.Mutex
	p := start(t, Config{Output: writerFunc(func(b []byte) (int, error) { mu.Lock(); defer mu.Unlock(); return out.Write(b) })})
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Go(func() {
			if _, fnErr, err := p.Invoke(context.Background(), []byte(`{}`)); err != nil || fnErr != nil {
				errs <- fmt.Errorf("%v %v", fnErr, err)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	// The log travels through a pipe that may trail the answers: once the process has ended
	// (Stop waits for it and for the pipe to drain), every line is in.
	p.Stop()
	mu.Lock()
	defer mu.Unlock()
	if n := strings.Count(out.String(), `"msg":"invoked"`); n != 8 {
		t.Errorf("Output got %d invocations, want 8:\n%s", n, out.String())
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(b []byte) (int, error) { return f(b) }

func TestRSS(t *testing.T) {
	if _, err := os.Stat("/proc/self/status"); err != nil {
		t.Skip("no /proc: not Linux")
	}
	p := start(t, Config{})
	m, err := p.RSS()
	if err != nil {
		t.Fatal(err)
	}
	if m.RSS <= 0 || m.HWM < m.RSS {
		t.Errorf("memory = %+v", m)
	}
}

func TestParseStatus(t *testing.T) {
	cases := []struct {
		in      string
		want    Memory
		wantErr bool
	}{
		{in: "Name:\tbootstrap\nVmHWM:\t   20480 kB\nVmRSS:\t   10240 kB\n", want: Memory{RSS: 10240 << 10, HWM: 20480 << 10}},
		{in: "Name:\tbootstrap\nState:\tZ (zombie)\n", wantErr: true},
		{in: "VmHWM:\t1 MB\nVmRSS:\t1 kB\n", wantErr: true},
		{in: "VmHWM:\tx kB\nVmRSS:\t1 kB\n", wantErr: true},
	}
	for i, tc := range cases {
		got, err := parseStatus([]byte(tc.in))
		if (err != nil) != tc.wantErr || got != tc.want {
			t.Errorf("case %d: parseStatus = %+v, %v; want %+v, error %v", i, got, err, tc.want, tc.wantErr)
		}
	}
}

func TestDecodeError(t *testing.T) {
	cases := []struct {
		raw, header string
		want        ErrorBody
	}{
		{raw: `{"errorType":"T","errorMessage":"m"}`, want: ErrorBody{Type: "T", Message: "m"}},
		{raw: `not json`, header: "Runtime.Unknown", want: ErrorBody{Type: "Runtime.Unknown", Message: "not json"}},
		{raw: `{}`, header: "H", want: ErrorBody{Type: "H", Message: "{}"}},
	}
	for _, tc := range cases {
		if got := decodeError([]byte(tc.raw), tc.header); got.Type != tc.want.Type || got.Message != tc.want.Message {
			t.Errorf("decodeError(%q, %q) = %+v, want %+v", tc.raw, tc.header, got, tc.want)
		}
	}
}

func TestLogBufferKeepsTheEnd(t *testing.T) {
	var l logBuffer
	line := strings.Repeat("x", 1023) + "\n"
	for i := range 3000 {
		_, _ = l.Write([]byte(strconv.Itoa(i%10) + line[1:]))
	}
	s := l.String()
	if len(s) != logKeep || !strings.HasSuffix(s, "9"+line[1:]) {
		t.Errorf("kept %d bytes ending %q", len(s), s[len(s)-10:])
	}
}
