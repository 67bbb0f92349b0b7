// Package sqsbatch adapts SQS-triggered Lambda invocations to a per-message function: each
// record of the batch is processed, and the ones that failed are reported as partial batch
// failures (ReportBatchItemFailures), so SQS delivers only those again.
package sqsbatch

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"time"

	"github.com/aws/aws-lambda-go/events"
)

// Handler returns the Lambda handler for an SQS trigger with ReportBatchItemFailures: it
// processes each record and answers with the records that failed, so SQS redelivers only those
// (after their visibility timeout) and deletes the rest. A record fails when process returns an
// error or panics. The invocation itself fails only when the handler cannot work at all (no
// process function) or cannot name a failed record (one without a message id): then the whole
// batch must come back, so SQS redelivers records that already succeeded, and process must be
// idempotent, which the reliability rules require of every consumer anyway.
//
// Records are processed one after another, in the order delivered. Concurrency comes from SQS
// running many invocations at once; inside one, a batch's records may name the same
// conversation, and a cold start opens a small Postgres pool, so parallel work would mostly
// contend. Sequential processing also keeps "what is left when the deadline comes" well defined:
// once ctx ends, the records not yet started are reported as failures rather than dropped.
//
// With a reserve (see [Reserve]) a record is not started when less than that is left before the
// invocation's deadline: a job cut off halfway wastes its work (a model call, here) and still
// comes back, so it is better left untouched.
//
// Failures are logged with the message id and receive count, never the body (it names users).
func Handler(process func(ctx context.Context, messageID string, body []byte) error, log *slog.Logger, opts ...Option) func(context.Context, events.SQSEvent) (events.SQSEventResponse, error) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	return func(ctx context.Context, ev events.SQSEvent) (events.SQSEventResponse, error) {
		// Lambda reads an absent or null list as "all succeeded" too, but [] is what its
		// documentation shows; never answer null.
		resp := events.SQSEventResponse{BatchItemFailures: []events.SQSBatchItemFailure{}}
		if process == nil {
			return resp, errors.New("lambdaio: SQSHandler has no process function")
		}
		fail := func(r events.SQSMessage) error {
			if r.MessageId == "" {
				return errors.New("lambdaio: an SQS record without a messageId failed; failing the batch so it is redelivered")
			}
			resp.BatchItemFailures = append(resp.BatchItemFailures, events.SQSBatchItemFailure{ItemIdentifier: r.MessageId})
			return nil
		}
		for i, r := range ev.Records {
			if err := o.tooLate(ctx); err != nil {
				rest := ev.Records[i:]
				log.Warn("sqs batch cut short; unprocessed records left for redelivery",
					"err", err, "unprocessed", len(rest), "records", len(ev.Records))
				for _, r := range rest {
					if err := fail(r); err != nil {
						return resp, err
					}
				}
				break
			}
			if err := processRecord(ctx, process, r); err != nil {
				log.Error("sqs record failed", "message_id", r.MessageId,
					"receive_count", r.Attributes["ApproximateReceiveCount"], "source", r.EventSourceARN, "err", err)
				if err := fail(r); err != nil {
					return resp, err
				}
			}
		}
		return resp, nil
	}
}

// processRecord runs process on one record and turns a panic into that record's error, so one
// poisoned message cannot fail (and redeliver) its whole batch.
func processRecord(ctx context.Context, process func(context.Context, string, []byte) error, r events.SQSMessage) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("panic: %v\n%s", p, debug.Stack())
		}
	}()
	return process(ctx, r.MessageId, []byte(r.Body))
}

// Option tunes a [Handler].
type Option func(*options)

type options struct {
	reserve time.Duration
}

// Reserve makes the handler leave a record for redelivery rather than start it with less than d
// left before the invocation's deadline: d is about the time one record needs.
func Reserve(d time.Duration) Option {
	return func(o *options) { o.reserve = d }
}

// errTooLittleTime is why records are left when the deadline is nearer than the reserve.
var errTooLittleTime = errors.New("less time left than a record needs")

// tooLate says why no further record should start: ctx is done, or its deadline is nearer than
// the reserve.
func (o options) tooLate(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if deadline, ok := ctx.Deadline(); ok && o.reserve > 0 && time.Until(deadline) < o.reserve {
		return errTooLittleTime
	}
	return nil
}
