// Package synthesis turns finished stretches of conversation into memory: a job names a
// conversation and the message it was asked up to; the processor runs the memory_synthesis
// operation over the messages not yet synthesized and the user's insights they could affect, and
// applies the consolidation the model returns (add, reinforce, update, invalidate) in one
// transaction, idempotently by (conversation, through seq).
package synthesis

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"unicode/utf8"

	"github.com/helixhq/helix/shared/ident"
)

// Job asks for the messages of a conversation up to ThroughSeq to be synthesized.
type Job struct {
	ConversationID string `json:"conversation_id"`
	UserID         string `json:"user_id"`
	ThroughSeq     int64  `json:"through_seq"`
}

// Queue sends jobs to the synthesis consumer: SQS in AWS, an in-process queue on the dev server.
type Queue interface {
	Enqueue(ctx context.Context, j Job) error
}

// ParseJob decodes and validates a job from a queue message body: it comes from outside the
// process, so every field is checked before it reaches Postgres.
func ParseJob(body []byte) (Job, error) {
	// encoding/json would turn invalid UTF-8 into U+FFFD: a different user id, not an error.
	if !utf8.Valid(body) {
		return Job{}, errors.New("job: body must be valid UTF-8")
	}
	var j Job
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&j); err != nil {
		return Job{}, fmt.Errorf("job is not a JSON object of conversation_id, user_id, through_seq: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return Job{}, errors.New("job: trailing data after the JSON object")
	}
	if err := j.Validate(); err != nil {
		return Job{}, err
	}
	return j, nil
}

// Validate checks a job's fields.
func (j Job) Validate() error {
	if !ident.IsUUID(j.ConversationID) {
		return errors.New("job: conversation_id must be a UUID")
	}
	if err := ident.Check(j.UserID); err != nil {
		return fmt.Errorf("job: user_id %w", err)
	}
	if j.ThroughSeq < 1 {
		return errors.New("job: through_seq must be positive")
	}
	return nil
}

// Body is the job as a queue message body.
func (j Job) Body() []byte {
	b, _ := json.Marshal(j)
	return b
}
