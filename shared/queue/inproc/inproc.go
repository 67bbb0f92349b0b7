// Package inproc is the synthesis queue of the dev server: jobs go to a buffered channel that a
// worker in the same process drains with the same consumer code the SQS-triggered function runs.
// A job whose run fails is dropped and logged: as with SQS after its retries, the sweep sends it
// again once it is stale, so nothing is lost for good.
package inproc

import (
	"context"
	"errors"
	"log/slog"
	"sync"

	"github.com/helixhq/helix/shared/synthesis"
)

// Queue is an in-process synthesis.Queue.
type Queue struct {
	jobs    chan synthesis.Job
	process func(context.Context, synthesis.Job) error
	log     *slog.Logger
	wg      sync.WaitGroup
	ctx     context.Context
	stop    context.CancelFunc
}

var _ synthesis.Queue = (*Queue)(nil)

// ErrFull: the buffer is full; the sweep will send the job again.
var ErrFull = errors.New("the in-process synthesis queue is full")

// New starts a queue with one worker running process for each job.
func New(size int, process func(context.Context, synthesis.Job) error, log *slog.Logger) *Queue {
	ctx, stop := context.WithCancel(context.Background())
	q := &Queue{jobs: make(chan synthesis.Job, size), process: process, log: log, ctx: ctx, stop: stop}
	q.wg.Add(1)
	go q.work()
	return q
}

// Enqueue implements synthesis.Queue; it never blocks.
func (q *Queue) Enqueue(_ context.Context, j synthesis.Job) error {
	if err := j.Validate(); err != nil {
		return err
	}
	select {
	case q.jobs <- j:
		return nil
	default:
		return ErrFull
	}
}

func (q *Queue) work() {
	defer q.wg.Done()
	for {
		select {
		case <-q.ctx.Done():
			return
		case j := <-q.jobs:
			if err := q.process(q.ctx, j); err != nil {
				q.log.Warn("synthesis job failed; the sweep will send it again", "conversation_id", j.ConversationID, "through_seq", j.ThroughSeq, "err", err)
			}
		}
	}
}

// Close stops the worker after the job it is running.
func (q *Queue) Close() {
	q.stop()
	q.wg.Wait()
}
