package inproc_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/helixhq/helix/shared/queue/inproc"
	"github.com/helixhq/helix/shared/synthesis"
)

// failsafe bounds a wait that only a broken queue makes long; it is not a timing assertion.
const failsafe = 10 * time.Second

func jobN(n int64) synthesis.Job {
	return synthesis.Job{ConversationID: fmt.Sprintf("00000000-0000-4000-8000-%012d", n), UserID: "u", ThroughSeq: n}
}

func receive[T any](t *testing.T, c <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-c:
		return v
	case <-time.After(failsafe):
		t.Fatalf("gave up waiting for %s", what)
		panic("unreachable")
	}
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func discard() *slog.Logger { return slog.New(slog.NewTextHandler(&lockedBuffer{}, nil)) }

func TestEnqueueRunsTheJobsInOrder(t *testing.T) {
	got := make(chan synthesis.Job, 3)
	q := inproc.New(8, func(_ context.Context, j synthesis.Job) error { got <- j; return nil }, discard())
	defer q.Close()
	var _ synthesis.Queue = q
	for n := int64(1); n <= 3; n++ {
		if err := q.Enqueue(context.Background(), jobN(n)); err != nil {
			t.Fatal(err)
		}
	}
	for n := int64(1); n <= 3; n++ {
		if j := receive(t, got, "a job to run"); j != jobN(n) {
			t.Fatalf("run %d was %+v, want %+v", n, j, jobN(n))
		}
	}
}

func TestEnqueueRefusesAnInvalidJob(t *testing.T) {
	var ran atomic.Int32
	q := inproc.New(8, func(context.Context, synthesis.Job) error { ran.Add(1); return nil }, discard())
	bad := jobN(1)
	bad.ThroughSeq = 0
	if err := q.Enqueue(context.Background(), bad); err == nil {
		t.Fatal("an invalid job was queued")
	}
	q.Close()
	if ran.Load() != 0 {
		t.Fatal("an invalid job ran")
	}
}

func TestAFullQueueRefusesWithoutBlocking(t *testing.T) {
	started, release := make(chan synthesis.Job, 4), make(chan struct{})
	q := inproc.New(1, func(_ context.Context, j synthesis.Job) error {
		started <- j
		<-release
		return nil
	}, discard())
	defer q.Close()
	defer close(release) // runs before Close: the worker may finish

	if err := q.Enqueue(context.Background(), jobN(1)); err != nil {
		t.Fatal(err)
	}
	receive(t, started, "the first job to start") // the worker is busy, the buffer empty
	if err := q.Enqueue(context.Background(), jobN(2)); err != nil {
		t.Fatalf("the buffer of 1 refused its first job: %v", err)
	}
	// The buffer is full and the worker blocked: Enqueue must answer at once, with ErrFull.
	done := make(chan error, 1)
	go func() { done <- q.Enqueue(context.Background(), jobN(3)) }()
	if err := receive(t, done, "Enqueue on a full queue to return"); !errors.Is(err, inproc.ErrFull) {
		t.Fatalf("Enqueue on a full queue = %v, want ErrFull", err)
	}
}

func TestCloseWaitsForTheJobInFlight(t *testing.T) {
	started, cancelled, release := make(chan struct{}), make(chan struct{}), make(chan struct{})
	var finished atomic.Bool
	q := inproc.New(4, func(ctx context.Context, _ synthesis.Job) error {
		close(started)
		<-ctx.Done() // Close cancels the job's context ...
		close(cancelled)
		<-release // ... and still waits for it to return
		finished.Store(true)
		return ctx.Err()
	}, discard())
	if err := q.Enqueue(context.Background(), jobN(1)); err != nil {
		t.Fatal(err)
	}
	receive(t, started, "the job to start")

	closed := make(chan struct{})
	go func() { q.Close(); close(closed) }()
	receive(t, cancelled, "Close to cancel the job's context")
	select {
	case <-closed:
		t.Fatal("Close returned while the job was still running")
	default:
	}
	close(release)
	receive(t, closed, "Close to return")
	if !finished.Load() {
		t.Fatal("Close returned before the job did")
	}
}

func TestAFailedJobIsLogged(t *testing.T) {
	var logs lockedBuffer
	ran := make(chan synthesis.Job, 2)
	q := inproc.New(4, func(_ context.Context, j synthesis.Job) error {
		ran <- j
		if j.ThroughSeq == 1 {
			return errors.New("providers unavailable")
		}
		return nil
	}, slog.New(slog.NewJSONHandler(&logs, nil)))
	defer q.Close()
	for n := int64(1); n <= 2; n++ {
		if err := q.Enqueue(context.Background(), jobN(n)); err != nil {
			t.Fatal(err)
		}
	}
	receive(t, ran, "the failing job")
	// One worker: once the second job runs, the first one's failure has been handled.
	receive(t, ran, "the job after it")

	var line struct {
		Level, Msg     string
		ConversationID string `json:"conversation_id"`
		ThroughSeq     int64  `json:"through_seq"`
		Err            string
	}
	if err := json.Unmarshal([]byte(logs.String()), &line); err != nil {
		t.Fatalf("want exactly one log line, got %q: %v", logs.String(), err)
	}
	if line.Level != "WARN" || line.ConversationID != jobN(1).ConversationID || line.ThroughSeq != 1 || line.Err != "providers unavailable" {
		t.Errorf("log line = %+v", line)
	}
}
