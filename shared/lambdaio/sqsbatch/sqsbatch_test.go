package sqsbatch_test

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambda"

	"github.com/helixhq/helix/shared/lambdaio/sqsbatch"
	"github.com/helixhq/helix/shared/synthesis"
)

const sqsBatch = "../../../events/synthesis/sqs-batch.json"

// loadBatch reads the sample SQS event and checks it is what Lambda delivers: every key known
// to the event type, a body that is a synthesis job, an md5OfBody that matches it.
func loadBatch(t *testing.T) ([]byte, events.SQSEvent) {
	t.Helper()
	raw, err := os.ReadFile(sqsBatch)
	if err != nil {
		t.Fatal(err)
	}
	var ev events.SQSEvent
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&ev); err != nil {
		t.Fatalf("%s is not an SQS event: %v", sqsBatch, err)
	}
	if len(ev.Records) < 2 {
		t.Fatalf("%s has %d records; the tests need at least 2", sqsBatch, len(ev.Records))
	}
	for _, r := range ev.Records {
		if _, err := synthesis.ParseJob([]byte(r.Body)); err != nil {
			t.Errorf("record %s: body is not a synthesis job: %v", r.MessageId, err)
		}
		if sum := md5.Sum([]byte(r.Body)); hex.EncodeToString(sum[:]) != r.Md5OfBody {
			t.Errorf("record %s: md5OfBody %s does not match its body", r.MessageId, r.Md5OfBody)
		}
		if r.EventSource != "aws:sqs" || r.MessageId == "" || r.ReceiptHandle == "" || r.Attributes["ApproximateReceiveCount"] == "" {
			t.Errorf("record %s lacks what Lambda always sends: %+v", r.MessageId, r)
		}
	}
	return raw, ev
}

// withBody returns the event with one record's body replaced, as JSON.
func withBody(t *testing.T, ev events.SQSEvent, i int, body string) []byte {
	t.Helper()
	ev.Records = slices.Clone(ev.Records)
	ev.Records[i].Body = body
	raw, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// recorder is a process function that records what it was given and answers with fn.
type recorder struct {
	mu     sync.Mutex
	ids    []string
	bodies []string
	fn     func(ctx context.Context, id string, body []byte) error
}

func (r *recorder) process(ctx context.Context, id string, body []byte) error {
	r.mu.Lock()
	r.ids = append(r.ids, id)
	r.bodies = append(r.bodies, string(body))
	r.mu.Unlock()
	if r.fn == nil {
		return nil
	}
	return r.fn(ctx, id, body)
}

// invoke runs the handler as the Lambda runtime does and returns the raw JSON answer, the
// decoded failures, and the log.
func invoke(t *testing.T, ctx context.Context, process func(context.Context, string, []byte) error, payload []byte) ([]byte, []string, string) {
	t.Helper()
	var logBuf bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&logBuf, nil))
	out, err := lambda.NewHandler(sqsbatch.Handler(process, log)).Invoke(ctx, payload)
	if err != nil {
		t.Fatalf("Invoke: %v (a bad record must never fail the invocation)", err)
	}
	var resp events.SQSEventResponse
	dec := json.NewDecoder(bytes.NewReader(out))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&resp); err != nil {
		t.Fatalf("response %s is not an SQSEventResponse: %v", out, err)
	}
	var failed []string
	for _, f := range resp.BatchItemFailures {
		failed = append(failed, f.ItemIdentifier)
	}
	return out, failed, logBuf.String()
}

func ids(ev events.SQSEvent) []string {
	var out []string
	for _, r := range ev.Records {
		out = append(out, r.MessageId)
	}
	return out
}

func TestSQSHandlerAllSucceed(t *testing.T) {
	payload, ev := loadBatch(t)
	rec := &recorder{}
	out, failed, _ := invoke(t, t.Context(), rec.process, payload)
	if string(out) != `{"batchItemFailures":[]}` {
		t.Errorf("response = %s, want {\"batchItemFailures\":[]}", out)
	}
	if len(failed) != 0 {
		t.Errorf("failures = %v, want none", failed)
	}
	if !slices.Equal(rec.ids, ids(ev)) {
		t.Errorf("processed %v, want every record in order %v", rec.ids, ids(ev))
	}
	for i, r := range ev.Records {
		if rec.bodies[i] != r.Body {
			t.Errorf("record %s: process got body %q, want %q", r.MessageId, rec.bodies[i], r.Body)
		}
	}
}

func TestSQSHandlerEmptyBatch(t *testing.T) {
	rec := &recorder{}
	out, _, _ := invoke(t, t.Context(), rec.process, []byte(`{"Records":[]}`))
	if string(out) != `{"batchItemFailures":[]}` || len(rec.ids) != 0 {
		t.Errorf("response = %s after %d calls, want {\"batchItemFailures\":[]} and none", out, len(rec.ids))
	}
}

func TestSQSHandlerBadRecordFailsAlone(t *testing.T) {
	_, ev := loadBatch(t)
	const badBody = `{"conversation_id":"not-a-uuid","user_id":"secret-user-xyz","through_seq":5}`
	payload := withBody(t, ev, 1, badBody)
	rec := &recorder{fn: func(_ context.Context, _ string, body []byte) error {
		_, err := synthesis.ParseJob(body)
		return err
	}}
	_, failed, log := invoke(t, t.Context(), rec.process, payload)
	bad := ev.Records[1].MessageId
	if !slices.Equal(failed, []string{bad}) {
		t.Errorf("failures = %v, want only the bad record %s", failed, bad)
	}
	if !slices.Equal(rec.ids, ids(ev)) {
		t.Errorf("processed %v, want every record %v: a bad one must not stop the rest", rec.ids, ids(ev))
	}
	if !strings.Contains(log, bad) || !strings.Contains(log, "conversation_id must be a UUID") {
		t.Errorf("log does not name the failed record and its error:\n%s", log)
	}
	if strings.Contains(log, "secret-user-xyz") || strings.Contains(log, `"body"`) {
		t.Errorf("log carries the message body:\n%s", log)
	}
}

func TestSQSHandlerPanicFailsAlone(t *testing.T) {
	payload, ev := loadBatch(t)
	poisoned := ev.Records[0].MessageId
	rec := &recorder{fn: func(_ context.Context, id string, _ []byte) error {
		if id == poisoned {
			panic("cannot handle record " + id)
		}
		return nil
	}}
	_, failed, log := invoke(t, t.Context(), rec.process, payload)
	if !slices.Equal(failed, []string{poisoned}) {
		t.Errorf("failures = %v, want only the panicking record %s", failed, poisoned)
	}
	if !slices.Equal(rec.ids, ids(ev)) {
		t.Errorf("processed %v, want every record %v after the panic", rec.ids, ids(ev))
	}
	if !strings.Contains(log, "panic") || !strings.Contains(log, poisoned) {
		t.Errorf("log does not report the panic and its record:\n%s", log)
	}
}

func TestSQSHandlerContextEnds(t *testing.T) {
	payload, ev := loadBatch(t)
	all := ids(ev)
	tests := []struct {
		name          string
		cancelBefore  bool                                                            // the invocation starts with ctx already done
		fn            func(cancel func()) func(context.Context, string, []byte) error // nil: process succeeds
		wantProcessed []string
		wantFailed    []string
	}{
		{
			name: "cancelled before the batch", cancelBefore: true,
			wantProcessed: nil, wantFailed: all,
		},
		{
			name: "deadline passes during the first record, which finishes",
			fn: func(cancel func()) func(context.Context, string, []byte) error {
				return func(context.Context, string, []byte) error { cancel(); return nil }
			},
			wantProcessed: all[:1], wantFailed: all[1:],
		},
		{
			name: "the record in flight gives up with the context",
			fn: func(cancel func()) func(context.Context, string, []byte) error {
				return func(ctx context.Context, id string, _ []byte) error {
					if id == all[1] {
						cancel()
						return ctx.Err()
					}
					return nil
				}
			},
			wantProcessed: all[:2], wantFailed: all[1:],
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			if tt.cancelBefore {
				cancel()
			}
			rec := &recorder{}
			if tt.fn != nil {
				rec.fn = tt.fn(cancel)
			}
			_, failed, log := invoke(t, ctx, rec.process, payload)
			if !slices.Equal(rec.ids, tt.wantProcessed) {
				t.Errorf("processed %v, want %v", rec.ids, tt.wantProcessed)
			}
			if !slices.Equal(failed, tt.wantFailed) {
				t.Errorf("failures = %v, want %v: records left when the context ends must come back", failed, tt.wantFailed)
			}
			if !strings.Contains(log, "unprocessed") && len(tt.wantFailed) > len(tt.wantProcessed) {
				t.Errorf("log does not say the batch was cut short:\n%s", log)
			}
		})
	}
}

func TestSQSHandlerFailureWithoutMessageIDFailsInvocation(t *testing.T) {
	payload := []byte(`{"Records":[{"messageId":"","body":"x","eventSource":"aws:sqs"}]}`)
	handler := sqsbatch.Handler(func(context.Context, string, []byte) error { return errors.New("bad") },
		slog.New(slog.DiscardHandler))
	if _, err := lambda.NewHandler(handler).Invoke(t.Context(), payload); err == nil {
		t.Fatal("Invoke succeeded; a failure that cannot be named must fail the batch so SQS redelivers it")
	}
}

func TestSQSHandlerNilProcess(t *testing.T) {
	payload, _ := loadBatch(t)
	handler := sqsbatch.Handler(nil, slog.New(slog.DiscardHandler))
	if _, err := lambda.NewHandler(handler).Invoke(t.Context(), payload); err == nil {
		t.Fatal("Invoke succeeded with no process function; the batch would be deleted unprocessed")
	}
}

func TestSQSHandlerReserve(t *testing.T) {
	_, ev := loadBatch(t)
	all := ids(ev)
	tests := []struct {
		name          string
		left          time.Duration // time before the invocation's deadline
		reserve       time.Duration
		wantProcessed []string
	}{
		{name: "enough time for every record", left: time.Hour, reserve: time.Minute, wantProcessed: all},
		{name: "less than the reserve: nothing starts", left: 30 * time.Second, reserve: time.Minute, wantProcessed: nil},
		{name: "no reserve: every record starts", left: 30 * time.Second, wantProcessed: all},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), tt.left)
			defer cancel()
			rec := &recorder{}
			var logBuf bytes.Buffer
			h := sqsbatch.Handler(rec.process, slog.New(slog.NewJSONHandler(&logBuf, nil)), sqsbatch.Reserve(tt.reserve))
			resp, err := h(ctx, ev)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(rec.ids, tt.wantProcessed) {
				t.Errorf("processed %v, want %v", rec.ids, tt.wantProcessed)
			}
			var failed []string
			for _, f := range resp.BatchItemFailures {
				failed = append(failed, f.ItemIdentifier)
			}
			if want := all[len(tt.wantProcessed):]; !slices.Equal(failed, want) {
				t.Errorf("failures = %v, want %v: records not started must come back", failed, want)
			}
			if len(tt.wantProcessed) < len(all) && !strings.Contains(logBuf.String(), "less time left") {
				t.Errorf("log does not say why records were left:\n%s", logBuf.String())
			}
		})
	}

}
