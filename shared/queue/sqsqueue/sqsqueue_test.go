package sqsqueue_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/helixhq/helix/shared/queue/sqsqueue"
	"github.com/helixhq/helix/shared/queue/sqstest"
	"github.com/helixhq/helix/shared/synthesis"
)

const queueName = "helix-synthesis"

var job = synthesis.Job{ConversationID: "7c0e3f52-9a41-4d8b-b7e2-3f1c5a9d2e64", UserID: "alice", ThroughSeq: 5}

// TestEnqueueReceiveDelete sends a job through the adapter and consumes it with the SDK client
// as a consumer would: the body is exactly Job.Body(), the job key travels as an attribute, and
// the message is gone once deleted.
func TestEnqueueReceiveDelete(t *testing.T) {
	srv := sqstest.NewServer(t, queueName)
	client := srv.Client() // sqs.New with BaseEndpoint = srv.URL, static credentials, us-east-1
	q := sqsqueue.New(client, srv.QueueURL(queueName))

	if err := q.Enqueue(t.Context(), job); err != nil {
		t.Fatalf("Enqueue: %v", err)
	}

	// Receiving through the SDK also checks MD5OfBody: a body altered in transit would fail here.
	out, err := client.ReceiveMessage(t.Context(), &sqs.ReceiveMessageInput{
		QueueUrl: aws.String(srv.QueueURL(queueName)), MaxNumberOfMessages: 10, VisibilityTimeout: 60,
		MessageAttributeNames:       []string{"All"},
		MessageSystemAttributeNames: []types.MessageSystemAttributeName{types.MessageSystemAttributeNameApproximateReceiveCount},
	})
	if err != nil {
		t.Fatalf("ReceiveMessage: %v", err)
	}
	if len(out.Messages) != 1 {
		t.Fatalf("received %d messages, want 1", len(out.Messages))
	}
	m := out.Messages[0]
	if got := aws.ToString(m.Body); got != string(job.Body()) {
		t.Errorf("body = %s, want exactly Job.Body() = %s", got, job.Body())
	}
	if got, err := synthesis.ParseJob([]byte(aws.ToString(m.Body))); err != nil || got != job {
		t.Errorf("ParseJob(body) = %+v, %v; want %+v", got, err, job)
	}
	key := m.MessageAttributes[sqsqueue.JobKeyAttribute]
	if aws.ToString(key.DataType) != "String" || aws.ToString(key.StringValue) != job.ConversationID+":5" {
		t.Errorf("job_key attribute = %s/%s, want String/%s:5", aws.ToString(key.DataType), aws.ToString(key.StringValue), job.ConversationID)
	}
	if aws.ToString(m.MD5OfMessageAttributes) == "" {
		t.Error("MD5OfMessageAttributes missing")
	}
	if m.Attributes[string(types.MessageSystemAttributeNameApproximateReceiveCount)] != "1" {
		t.Errorf("attributes = %v, want ApproximateReceiveCount 1", m.Attributes)
	}

	if _, err := client.DeleteMessage(t.Context(), &sqs.DeleteMessageInput{
		QueueUrl: aws.String(srv.QueueURL(queueName)), ReceiptHandle: m.ReceiptHandle,
	}); err != nil {
		t.Fatalf("DeleteMessage: %v", err)
	}
	if left := srv.Messages(queueName); len(left) != 0 {
		t.Errorf("%d messages left after delete, want 0", len(left))
	}
}

// TestEnqueueRequest checks what the adapter puts on the wire: one SendMessage whose
// MessageBody is Job.Body() byte for byte and whose job_key attribute is a String.
func TestEnqueueRequest(t *testing.T) {
	srv := sqstest.NewServer(t, queueName)
	if err := sqsqueue.New(srv.Client(), srv.QueueURL(queueName)).Enqueue(t.Context(), job); err != nil {
		t.Fatal(err)
	}
	reqs := srv.Requests()
	if len(reqs) != 1 || reqs[0].Target != "AmazonSQS.SendMessage" {
		t.Fatalf("requests = %+v, want one AmazonSQS.SendMessage", reqs)
	}
	var body struct {
		QueueURL          string `json:"QueueUrl"`
		MessageBody       string
		MessageAttributes map[string]map[string]string
	}
	if err := json.Unmarshal(reqs[0].Body, &body); err != nil {
		t.Fatalf("request body %s: %v", reqs[0].Body, err)
	}
	if body.QueueURL != srv.QueueURL(queueName) || body.MessageBody != string(job.Body()) {
		t.Errorf("request = %s, want QueueUrl %s and MessageBody %s", reqs[0].Body, srv.QueueURL(queueName), job.Body())
	}
	want := map[string]string{"DataType": "String", "StringValue": job.ConversationID + ":5"}
	if got := body.MessageAttributes["job_key"]; len(got) != 2 || got["DataType"] != want["DataType"] || got["StringValue"] != want["StringValue"] {
		t.Errorf("MessageAttributes = %v, want job_key %v", body.MessageAttributes, want)
	}
}

func TestEnqueueUnknownQueue(t *testing.T) {
	srv := sqstest.NewServer(t, queueName)
	err := sqsqueue.New(srv.Client(), srv.QueueURL("helix-synthesis-typo")).Enqueue(t.Context(), job)
	if err == nil {
		t.Fatal("Enqueue to a queue that does not exist succeeded")
	}
	var missing *types.QueueDoesNotExist
	if !errors.As(err, &missing) {
		t.Errorf("error %v does not wrap *types.QueueDoesNotExist", err)
	}
	if msg := err.Error(); !strings.Contains(msg, "helix-synthesis-typo") || !strings.Contains(msg, "does not exist") {
		t.Errorf("error %q does not name the queue and say it does not exist", msg)
	}
	assertNoBody(t, err)
}

func TestEnqueueInvalidJobSendsNothing(t *testing.T) {
	srv := sqstest.NewServer(t, queueName)
	q := sqsqueue.New(srv.Client(), srv.QueueURL(queueName))
	for _, j := range []synthesis.Job{
		{ConversationID: "not-a-uuid", UserID: "alice", ThroughSeq: 5},
		{ConversationID: job.ConversationID, UserID: "", ThroughSeq: 5},
		{ConversationID: job.ConversationID, UserID: "alice", ThroughSeq: 0},
	} {
		if err := q.Enqueue(t.Context(), j); err == nil {
			t.Errorf("Enqueue(%+v) succeeded, want a validation error", j)
		}
	}
	if n := len(srv.Requests()); n != 0 {
		t.Errorf("%d requests sent for invalid jobs, want 0", n)
	}
}

func TestEnqueueCancelledContext(t *testing.T) {
	srv := sqstest.NewServer(t, queueName)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	err := sqsqueue.New(srv.Client(), srv.QueueURL(queueName)).Enqueue(ctx, job)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Enqueue with a cancelled context = %v, want context.Canceled", err)
	}
	assertNoBody(t, err)
}

// failingAPI answers every SendMessage with err, to see how the adapter wraps what it gets.
type failingAPI struct{ err error }

func (f failingAPI) SendMessage(context.Context, *sqs.SendMessageInput, ...func(*sqs.Options)) (*sqs.SendMessageOutput, error) {
	return nil, f.err
}

func TestEnqueueWrapsClientError(t *testing.T) {
	sdkErr := errors.New("operation error SQS: SendMessage, https response error StatusCode: 500")
	err := sqsqueue.New(failingAPI{sdkErr}, "https://sqs.eu-west-1.amazonaws.com/123456789012/helix-synthesis").Enqueue(t.Context(), job)
	if !errors.Is(err, sdkErr) {
		t.Fatalf("error %v does not wrap the client's error", err)
	}
	if !strings.Contains(err.Error(), "helix-synthesis") || strings.Contains(err.Error(), "sqs.eu-west-1") {
		t.Errorf("error %q should name the queue, not its whole URL", err)
	}
	assertNoBody(t, err)
}

func TestJobKey(t *testing.T) {
	if got := sqsqueue.JobKey(synthesis.Job{ConversationID: job.ConversationID, UserID: "bob", ThroughSeq: 1234}); got != job.ConversationID+":1234" {
		t.Errorf("JobKey = %q", got)
	}
}

func assertNoBody(t *testing.T, err error) {
	t.Helper()
	if msg := err.Error(); strings.Contains(msg, string(job.Body())) || strings.Contains(msg, "alice") {
		t.Errorf("error %q carries the message body", msg)
	}
}
