package sqstest_test

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/aws/smithy-go"

	"github.com/helixhq/helix/shared/queue/sqstest"
)

const q = "jobs"

func send(t *testing.T, srv *sqstest.Server, c *sqs.Client, body string, attrs map[string]types.MessageAttributeValue) *sqs.SendMessageOutput {
	t.Helper()
	out, err := c.SendMessage(t.Context(), &sqs.SendMessageInput{
		QueueUrl: aws.String(srv.QueueURL(q)), MessageBody: aws.String(body), MessageAttributes: attrs,
	})
	if err != nil {
		t.Fatalf("SendMessage: %v", err)
	}
	return out
}

func receive(t *testing.T, srv *sqstest.Server, c *sqs.Client, in sqs.ReceiveMessageInput) []types.Message {
	t.Helper()
	in.QueueUrl = aws.String(srv.QueueURL(q))
	out, err := c.ReceiveMessage(t.Context(), &in)
	if err != nil {
		t.Fatalf("ReceiveMessage: %v", err)
	}
	return out.Messages
}

// Vectors of SQS's documented MD5OfMessageAttributes algorithm, as computed by AWS SDKs.
func TestMD5OfAttributes(t *testing.T) {
	str := func(s string) *string { return &s }
	tests := []struct {
		name  string
		attrs map[string]sqstest.Attribute
		want  string
	}{
		{"string", map[string]sqstest.Attribute{"attribName1": {DataType: "String", StringValue: str("attribValue 1")}},
			"19e27d4e946b072f3f58da80d94fd778"},
		{"custom number type", map[string]sqstest.Attribute{"customNumberTypeAttrib": {DataType: "Number.float", StringValue: str("4563442423554324324264524243.32543234")}},
			"9fe1b90bbd9965bdf77bac517c7d2495"},
		{"binary", map[string]sqstest.Attribute{"binaryAttribute": {DataType: "Binary", BinaryValue: []byte("Hello binary world!")}},
			"31a92b15d92f8db860eda32aceb656c3"},
		{"several, sorted by name", map[string]sqstest.Attribute{
			"attribName1":            {DataType: "String", StringValue: str("attribValue 1")},
			"customNumberTypeAttrib": {DataType: "Number.float", StringValue: str("4563442423554324324264524243.32543234")},
			"binaryAttribute":        {DataType: "Binary", BinaryValue: []byte("Hello binary world!")},
		}, "c932db14a896c663f83c260297d594ff"},
		{"none", nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := sqstest.MD5OfAttributes(tt.attrs); got != tt.want {
				t.Errorf("MD5OfAttributes = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestSendReceiveDelete(t *testing.T) {
	srv := sqstest.NewServer(t, q)
	c := srv.Client()
	attrs := map[string]types.MessageAttributeValue{
		"job_key": {DataType: aws.String("String"), StringValue: aws.String("c1:5")},
		"blob":    {DataType: aws.String("Binary"), BinaryValue: []byte{0, 1, 2, 0xff}},
	}
	// The SDK checks MD5OfMessageBody on send and MD5OfBody on receive; a wrong digest fails the call.
	sent := send(t, srv, c, `{"a":"ünïcode ✓"}`, attrs)
	if aws.ToString(sent.MessageId) == "" || aws.ToString(sent.MD5OfMessageAttributes) == "" {
		t.Fatalf("SendMessage output %+v lacks MessageId or MD5OfMessageAttributes", sent)
	}

	msgs := receive(t, srv, c, sqs.ReceiveMessageInput{MessageAttributeNames: []string{"All"},
		MessageSystemAttributeNames: []types.MessageSystemAttributeName{types.MessageSystemAttributeNameAll}})
	if len(msgs) != 1 {
		t.Fatalf("received %d messages, want 1", len(msgs))
	}
	m := msgs[0]
	if aws.ToString(m.MessageId) != aws.ToString(sent.MessageId) || aws.ToString(m.Body) != `{"a":"ünïcode ✓"}` {
		t.Errorf("received %s %q, want %s and the body sent", aws.ToString(m.MessageId), aws.ToString(m.Body), aws.ToString(sent.MessageId))
	}
	if aws.ToString(m.MD5OfMessageAttributes) != aws.ToString(sent.MD5OfMessageAttributes) {
		t.Errorf("MD5OfMessageAttributes on receive %s, on send %s", aws.ToString(m.MD5OfMessageAttributes), aws.ToString(sent.MD5OfMessageAttributes))
	}
	if got := m.MessageAttributes["blob"].BinaryValue; string(got) != "\x00\x01\x02\xff" {
		t.Errorf("binary attribute = %v", got)
	}
	for _, name := range []string{"SenderId", "SentTimestamp", "ApproximateReceiveCount", "ApproximateFirstReceiveTimestamp"} {
		if m.Attributes[name] == "" {
			t.Errorf("system attribute %s missing from %v", name, m.Attributes)
		}
	}
	if m.Attributes["SenderId"] != "AKIDSQSTEST" || m.Attributes["ApproximateReceiveCount"] != "1" {
		t.Errorf("attributes = %v", m.Attributes)
	}

	if _, err := c.DeleteMessage(t.Context(), &sqs.DeleteMessageInput{QueueUrl: aws.String(srv.QueueURL(q)), ReceiptHandle: m.ReceiptHandle}); err != nil {
		t.Fatalf("DeleteMessage: %v", err)
	}
	// Deleting again succeeds, as on SQS: consumers may retry a delete.
	if _, err := c.DeleteMessage(t.Context(), &sqs.DeleteMessageInput{QueueUrl: aws.String(srv.QueueURL(q)), ReceiptHandle: m.ReceiptHandle}); err != nil {
		t.Fatalf("second DeleteMessage: %v", err)
	}
	srv.Advance(time.Hour)
	if msgs := receive(t, srv, c, sqs.ReceiveMessageInput{}); len(msgs) != 0 {
		t.Errorf("received %d messages after delete, want 0", len(msgs))
	}
}

func TestAttributesOnlyWhenAsked(t *testing.T) {
	srv := sqstest.NewServer(t, q)
	c := srv.Client()
	send(t, srv, c, "x", map[string]types.MessageAttributeValue{
		"job.key": {DataType: aws.String("String"), StringValue: aws.String("k")},
		"other":   {DataType: aws.String("Number"), StringValue: aws.String("1")},
	})
	m := receive(t, srv, c, sqs.ReceiveMessageInput{VisibilityTimeout: 1})[0]
	if m.MessageAttributes != nil || m.MD5OfMessageAttributes != nil || m.Attributes != nil {
		t.Errorf("unrequested attributes returned: %v %v %v", m.MessageAttributes, m.MD5OfMessageAttributes, m.Attributes)
	}
	srv.Advance(2 * time.Second)
	m = receive(t, srv, c, sqs.ReceiveMessageInput{MessageAttributeNames: []string{"job.*"}})[0]
	if len(m.MessageAttributes) != 1 || aws.ToString(m.MessageAttributes["job.key"].StringValue) != "k" {
		t.Errorf(`"job.*" returned %v, want only job.key`, m.MessageAttributes)
	}
}

func TestVisibilityTimeout(t *testing.T) {
	srv := sqstest.NewServer(t, q)
	c := srv.Client()
	send(t, srv, c, "once", nil)
	first := receive(t, srv, c, sqs.ReceiveMessageInput{VisibilityTimeout: 30})
	if len(first) != 1 {
		t.Fatalf("received %d, want 1", len(first))
	}
	if again := receive(t, srv, c, sqs.ReceiveMessageInput{}); len(again) != 0 {
		t.Fatalf("a message in flight was received again")
	}
	srv.Advance(31 * time.Second)
	second := receive(t, srv, c, sqs.ReceiveMessageInput{MessageSystemAttributeNames: []types.MessageSystemAttributeName{types.MessageSystemAttributeNameApproximateReceiveCount}})
	if len(second) != 1 || aws.ToString(second[0].MessageId) != aws.ToString(first[0].MessageId) {
		t.Fatalf("after the timeout received %v, want the same message again", second)
	}
	if aws.ToString(second[0].ReceiptHandle) == aws.ToString(first[0].ReceiptHandle) || second[0].Attributes["ApproximateReceiveCount"] != "2" {
		t.Errorf("redelivery has handle reused or receive count %q, want a new handle and 2", second[0].Attributes["ApproximateReceiveCount"])
	}
}

func TestMaxNumberOfMessages(t *testing.T) {
	srv := sqstest.NewServer(t, q)
	c := srv.Client()
	for _, b := range []string{"1", "2", "3"} {
		send(t, srv, c, b, nil)
	}
	if got := receive(t, srv, c, sqs.ReceiveMessageInput{}); len(got) != 1 {
		t.Errorf("default receive got %d messages, want 1", len(got))
	}
	if got := receive(t, srv, c, sqs.ReceiveMessageInput{MaxNumberOfMessages: 10}); len(got) != 2 {
		t.Errorf("receive of 10 got %d messages, want the 2 left", len(got))
	}
}

func TestLongPoll(t *testing.T) {
	srv := sqstest.NewServer(t, q)
	c := srv.Client()
	got := make(chan []types.Message, 1)
	go func() {
		out, err := c.ReceiveMessage(t.Context(), &sqs.ReceiveMessageInput{QueueUrl: aws.String(srv.QueueURL(q)), WaitTimeSeconds: 20})
		if err != nil {
			t.Errorf("ReceiveMessage: %v", err)
			got <- nil
			return
		}
		got <- out.Messages
	}()
	// Send once the receive is waiting, so the wait itself is what delivers the message.
	for len(srv.Requests()) == 0 {
		time.Sleep(time.Millisecond)
	}
	send(t, srv, c, "late", nil)
	if msgs := <-got; len(msgs) != 1 || aws.ToString(msgs[0].Body) != "late" {
		t.Errorf("long poll returned %v, want the message sent while it waited", msgs)
	}
}

func TestErrors(t *testing.T) {
	srv := sqstest.NewServer(t, q)
	c := srv.Client()
	missing := aws.String(srv.QueueURL("missing"))

	_, err := c.SendMessage(t.Context(), &sqs.SendMessageInput{QueueUrl: missing, MessageBody: aws.String("x")})
	assertQueueDoesNotExist(t, "SendMessage", err)
	_, err = c.ReceiveMessage(t.Context(), &sqs.ReceiveMessageInput{QueueUrl: missing})
	assertQueueDoesNotExist(t, "ReceiveMessage", err)
	_, err = c.DeleteMessage(t.Context(), &sqs.DeleteMessageInput{QueueUrl: missing, ReceiptHandle: aws.String("h")})
	assertQueueDoesNotExist(t, "DeleteMessage", err)
	_, err = c.GetQueueUrl(t.Context(), &sqs.GetQueueUrlInput{QueueName: aws.String("missing")})
	assertQueueDoesNotExist(t, "GetQueueUrl", err)

	_, err = c.DeleteMessage(t.Context(), &sqs.DeleteMessageInput{QueueUrl: aws.String(srv.QueueURL(q)), ReceiptHandle: aws.String("bogus")})
	var badHandle *types.ReceiptHandleIsInvalid
	if !errors.As(err, &badHandle) {
		t.Errorf("DeleteMessage with a bogus handle = %v, want *types.ReceiptHandleIsInvalid", err)
	}

	for name, in := range map[string]*sqs.ReceiveMessageInput{
		"MaxNumberOfMessages 11": {MaxNumberOfMessages: 11},
		"WaitTimeSeconds 21":     {WaitTimeSeconds: 21},
	} {
		in.QueueUrl = aws.String(srv.QueueURL(q))
		_, err := c.ReceiveMessage(t.Context(), in)
		var api smithy.APIError
		if !errors.As(err, &api) || api.ErrorCode() != "InvalidParameterValue" {
			t.Errorf("ReceiveMessage with %s = %v, want InvalidParameterValue", name, err)
		}
	}

	_, err = c.SendMessage(t.Context(), &sqs.SendMessageInput{QueueUrl: aws.String(srv.QueueURL(q)), MessageBody: aws.String("bad \x01 char")})
	var contents *types.InvalidMessageContents
	if !errors.As(err, &contents) {
		t.Errorf("SendMessage with a control character = %v, want *types.InvalidMessageContents", err)
	}
	_, err = c.SendMessage(t.Context(), &sqs.SendMessageInput{QueueUrl: aws.String(srv.QueueURL(q)), MessageBody: aws.String("x"),
		MessageAttributes: map[string]types.MessageAttributeValue{"AWS.reserved": {DataType: aws.String("String"), StringValue: aws.String("v")}}})
	if api := smithy.APIError(nil); !errors.As(err, &api) || api.ErrorCode() != "InvalidParameterValue" {
		t.Errorf("SendMessage with a reserved attribute name = %v, want InvalidParameterValue", err)
	}
	if n := len(srv.Messages(q)); n != 0 {
		t.Errorf("%d messages stored by failed sends", n)
	}
}

func assertQueueDoesNotExist(t *testing.T, op string, err error) {
	t.Helper()
	var missing *types.QueueDoesNotExist
	if !errors.As(err, &missing) {
		t.Errorf("%s on a missing queue = %v, want *types.QueueDoesNotExist", op, err)
		return
	}
	// The SDK runs SQS in query-compatible mode: the code comes from x-amzn-query-error.
	if missing.ErrorCode() != "AWS.SimpleQueueService.NonExistentQueue" || !strings.Contains(missing.ErrorMessage(), "does not exist") {
		t.Errorf("%s error code %q message %q", op, missing.ErrorCode(), missing.ErrorMessage())
	}
}

// TestErrorWireFormat reads an error as bytes: the shape the SQS developer guide documents.
func TestErrorWireFormat(t *testing.T) {
	srv := sqstest.NewServer(t, q)
	if _, err := srv.Client().GetQueueUrl(t.Context(), &sqs.GetQueueUrlInput{QueueName: aws.String("missing")}); err == nil {
		t.Fatal("GetQueueUrl of a missing queue succeeded")
	}
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, srv.URL+"/", strings.NewReader(`{"QueueName":"missing"}`))
	if err != nil {
		t.Fatal(err)
	}
	// Replay the SDK's signed headers: the server needs a SigV4 Authorization header.
	req.Header = srv.Requests()[0].Header.Clone()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body map[string]string
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusBadRequest || resp.Header.Get("Content-Type") != "application/x-amz-json-1.0" ||
		resp.Header.Get("x-amzn-query-error") != "AWS.SimpleQueueService.NonExistentQueue;Sender" || resp.Header.Get("x-amzn-RequestId") == "" {
		t.Errorf("status %d headers %v", resp.StatusCode, resp.Header)
	}
	if len(body) != 2 || body["__type"] != "com.amazonaws.sqs#QueueDoesNotExist" || body["message"] != "The specified queue does not exist." {
		t.Errorf("error body = %v", body)
	}

	unsigned, err := http.Post(srv.URL+"/", "application/x-amz-json-1.0", strings.NewReader(`{"QueueName":"jobs"}`))
	if err != nil {
		t.Fatal(err)
	}
	unsigned.Body.Close()
	if unsigned.StatusCode != http.StatusForbidden {
		t.Errorf("unsigned request: status %d, want 403", unsigned.StatusCode)
	}
}

func TestGetQueueURL(t *testing.T) {
	srv := sqstest.NewServer(t, q)
	out, err := srv.Client().GetQueueUrl(t.Context(), &sqs.GetQueueUrlInput{QueueName: aws.String(q)})
	if err != nil || aws.ToString(out.QueueUrl) != srv.QueueURL(q) {
		t.Fatalf("GetQueueUrl = %v, %v; want %s", out, err, srv.QueueURL(q))
	}
	if !strings.HasSuffix(srv.QueueURL(q), "/"+sqstest.Account+"/"+q) {
		t.Errorf("queue URL %s is not <endpoint>/<account>/<name>", srv.QueueURL(q))
	}
}
