// Package sqsqueue is the Amazon SQS adapter of synthesis.Queue: a job becomes one message on a
// standard queue, its body Job.Body(), so the synthesis function's SQS trigger hands the consumer
// exactly what synthesis.ParseJob reads.
package sqsqueue

import (
	"context"
	"fmt"
	"net/url"
	"path"
	"strconv"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/helixhq/helix/shared/synthesis"
)

// JobKeyAttribute is the message attribute that names the job a message carries,
// "<conversation_id>:<through_seq>". A standard queue delivers at least once, and the audit
// sweep may enqueue the same stretch twice, so consumers deduplicate by this key without
// parsing the body.
const JobKeyAttribute = "job_key"

// API is the part of the SQS client the adapter uses; *sqs.Client satisfies it.
type API interface {
	SendMessage(ctx context.Context, in *sqs.SendMessageInput, optFns ...func(*sqs.Options)) (*sqs.SendMessageOutput, error)
}

// Queue sends synthesis jobs to one SQS queue.
type Queue struct {
	client API
	url    string
	name   string // for errors and logs: the URL's last segment
}

var _ synthesis.Queue = (*Queue)(nil)

// New returns the queue at queueURL (https://sqs.<region>.amazonaws.com/<account>/<name>).
func New(client API, queueURL string) *Queue {
	name := queueURL
	if u, err := url.Parse(queueURL); err == nil && path.Base(u.Path) != "/" && path.Base(u.Path) != "." {
		name = path.Base(u.Path)
	}
	return &Queue{client: client, url: queueURL, name: name}
}

// JobKey is the deduplication key of a job.
func JobKey(j synthesis.Job) string {
	return j.ConversationID + ":" + strconv.FormatInt(j.ThroughSeq, 10)
}

// Enqueue sends the job. It validates the job first: an invalid message would only fail on
// every delivery until SQS gave up on it. Errors name the queue and the job key, never the body.
func (q *Queue) Enqueue(ctx context.Context, j synthesis.Job) error {
	if err := j.Validate(); err != nil {
		return fmt.Errorf("sqsqueue: not enqueueing to %s: %w", q.name, err)
	}
	_, err := q.client.SendMessage(ctx, &sqs.SendMessageInput{
		QueueUrl:    aws.String(q.url),
		MessageBody: aws.String(string(j.Body())),
		MessageAttributes: map[string]types.MessageAttributeValue{
			JobKeyAttribute: {DataType: aws.String("String"), StringValue: aws.String(JobKey(j))},
		},
	})
	if err != nil {
		return fmt.Errorf("sqsqueue: enqueue job %s to %s: %w", JobKey(j), q.name, err)
	}
	return nil
}

// FromAWS returns the queue at queueURL with a client from the default AWS configuration (the
// Lambda's role), for the composition roots.
func FromAWS(ctx context.Context, queueURL string) (*Queue, error) {
	cfg, err := awsconfig.LoadDefaultConfig(ctx)
	if err != nil {
		return nil, fmt.Errorf("sqsqueue: aws config: %w", err)
	}
	return New(sqs.NewFromConfig(cfg), queueURL), nil
}
