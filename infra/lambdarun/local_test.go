package lambdarun

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
)

func startSQS(t testing.TB) *SQS {
	t.Helper()
	s, err := StartSQS()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// The SDK's own client sends to the endpoint and accepts its answers (it checks the body's MD5).
func TestSQSWithTheSDK(t *testing.T) {
	s := startSQS(t)
	client := sqs.New(sqs.Options{Region: Region, BaseEndpoint: aws.String(s.URL), RetryMaxAttempts: 1,
		Credentials: credentials.NewStaticCredentialsProvider("AKID", "secret", "")})
	ctx := context.Background()
	for _, body := range []string{`{"conversation_id":"c1","through_seq":5}`, "héllo ✓"} {
		out, err := client.SendMessage(ctx, &sqs.SendMessageInput{
			QueueUrl: aws.String(s.QueueURL(SynthesisQueue)), MessageBody: aws.String(body),
			MessageAttributes: map[string]types.MessageAttributeValue{
				"job_key": {DataType: aws.String("String"), StringValue: aws.String("c1:5")}},
		})
		if err != nil {
			t.Fatal(err)
		}
		if aws.ToString(out.MessageId) == "" {
			t.Error("no MessageId")
		}
	}
	got := s.Messages()
	if len(got) != 2 || got[0].Queue != SynthesisQueue || got[1].Body != "héllo ✓" || got[0].Attributes["job_key"] != "c1:5" {
		t.Errorf("messages = %+v", got)
	}
	// Anything but SendMessage is refused in the protocol's error shape, which the SDK decodes.
	_, err := client.DeleteMessage(ctx, &sqs.DeleteMessageInput{QueueUrl: aws.String(s.QueueURL("q")), ReceiptHandle: aws.String("h")})
	if err == nil || !strings.Contains(err.Error(), "InvalidAction") {
		t.Errorf("DeleteMessage: %v, want InvalidAction", err)
	}
}

func post(t testing.TB, url, target, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url+"/", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/x-amz-json-1.0")
	req.Header.Set("X-Amz-Target", target)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(raw)
}

func TestSQSRequests(t *testing.T) {
	s := startSQS(t)
	q := s.QueueURL("jobs")
	cases := []struct {
		name, target, body string
		status             int
		want               string
	}{
		{"send", "AmazonSQS.SendMessage", `{"QueueUrl":"` + q + `","MessageBody":"abc"}`, 200, `"MD5OfMessageBody":"900150983cd24fb0d6963f7d28e17f72"`},
		{"no body", "AmazonSQS.SendMessage", `{"QueueUrl":"` + q + `"}`, 400, "MessageBody"},
		{"no queue", "AmazonSQS.SendMessage", `{"MessageBody":"abc"}`, 400, "QueueUrl"},
		{"not json", "AmazonSQS.SendMessage", `{`, 400, "InvalidParameterValue"},
		{"other action", "AmazonSQS.ReceiveMessage", `{}`, 400, "InvalidAction"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			status, body := post(t, s.URL, tc.target, tc.body)
			if status != tc.status || !strings.Contains(body, tc.want) {
				t.Errorf("%d %s, want %d with %s", status, body, tc.status, tc.want)
			}
		})
	}
	if n := len(s.Messages()); n != 1 {
		t.Errorf("%d messages kept, want 1", n)
	}
}

// Whatever a request carries, the endpoint answers 200 with the body's MD5 or a 400, and keeps
// exactly the messages it accepted.
func FuzzSQSSend(f *testing.F) {
	f.Add(`{"QueueUrl":"http://x/1/q","MessageBody":"abc"}`)
	f.Add(`{"QueueUrl":"/","MessageBody":"abc","MessageAttributes":{"k":{"DataType":"String"}}}`)
	f.Add(`[]`)
	s := startSQS(f)
	f.Fuzz(func(t *testing.T, body string) {
		before := len(s.Messages())
		status, answer := post(t, s.URL, "AmazonSQS.SendMessage", body)
		after := s.Messages()
		switch status {
		case 200:
			var out struct{ MessageId, MD5OfMessageBody string }
			if err := json.Unmarshal([]byte(answer), &out); err != nil || len(after) != before+1 {
				t.Fatalf("200 %s with %d messages kept", answer, len(after)-before)
			}
			sum := md5.Sum([]byte(after[len(after)-1].Body))
			if out.MD5OfMessageBody != hex.EncodeToString(sum[:]) || out.MessageId != after[len(after)-1].ID {
				t.Fatalf("answer %s does not match the kept message %+v", answer, after[len(after)-1])
			}
		case 400:
			if len(after) != before {
				t.Fatalf("a refused request was kept")
			}
		default:
			t.Fatalf("status %d: %s", status, answer)
		}
	})
}

func TestCloudFormation(t *testing.T) {
	c, err := StartCloudFormation()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ev, err := c.Rewrite([]byte(`{"RequestType":"Create","RequestId":"r/1","ResponseURL":"https://s3.example/x?sig=1","StackId":"s"}`))
	if err != nil {
		t.Fatal(err)
	}
	var got struct{ ResponseURL, RequestType string }
	if err := json.Unmarshal(ev, &got); err != nil {
		t.Fatal(err)
	}
	if got.ResponseURL != c.URL+"/r%2F1" || got.RequestType != "Create" {
		t.Fatalf("rewritten event = %s", ev)
	}
	if _, err := c.Rewrite([]byte(`{"RequestType":"Create"}`)); err == nil {
		t.Error("an event without ResponseURL was rewritten")
	}
	put := func(body string) int {
		req, _ := http.NewRequest(http.MethodPut, got.ResponseURL, strings.NewReader(body))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	cases := []struct {
		body   string
		status int
	}{
		{`{"Status":"SUCCESS","PhysicalResourceId":"p","Data":{"Version":13}}`, 200},
		{`{"Status":"FAILED","Reason":"boom"}`, 200},
		{`{"Status":"MAYBE"}`, 400},
		{`{"Status":"SUCCESS","Reason":"` + string(bytes.Repeat([]byte("x"), 5000)) + `"}`, 400},
	}
	for _, tc := range cases {
		if s := put(tc.body); s != tc.status {
			t.Errorf("PUT %.40s: %d, want %d", tc.body, s, tc.status)
		}
	}
	rs := c.Responses()
	if len(rs) != 2 || rs[0].Status != "SUCCESS" || rs[1].Status != "FAILED" || rs[1].Reason != "boom" || rs[0].Path != "/r/1" {
		t.Errorf("responses = %+v", rs)
	}
}

func TestLocalEnv(t *testing.T) {
	l, err := StartLocal()
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	has := func(env []string, prefix string) bool {
		return slices.ContainsFunc(env, func(kv string) bool { return strings.HasPrefix(kv, prefix) })
	}
	for _, fn := range Functions() {
		env := l.Env(fn, "postgres://x/y")
		if !slices.Contains(env, "DATABASE_URL=postgres://x/y") || !slices.Contains(env, "HELIX_OFFLINE=fallback") || !has(env, "HELIX_JWT_SECRET=") {
			t.Errorf("%s: no database or dev defaults in %q", fn, env)
		}
		if q := has(env, "HELIX_SYNTHESIS_QUEUE_URL="+l.SQS.URL) && has(env, "AWS_ENDPOINT_URL_SQS="+l.SQS.URL); q != (fn == "chat" || fn == "audit") {
			t.Errorf("%s: local queue set = %v", fn, q)
		}
		if k := has(env, "HELIX_AUDIT_SIGNING_KEY="); k != (fn == "audit") {
			t.Errorf("%s: signing key set = %v", fn, k)
		}
	}
	ev := []byte(`{"RequestType":"Delete","RequestId":"r","ResponseURL":"https://s3/x"}`)
	if got, err := l.Event("migrate", ev); err != nil || !strings.Contains(string(got), l.CloudFormation.URL) {
		t.Errorf("migrate event = %s, %v", got, err)
	}
	if got, err := l.Event("route", ev); err != nil || !bytes.Equal(got, ev) {
		t.Errorf("route event changed: %s, %v", got, err)
	}
}
