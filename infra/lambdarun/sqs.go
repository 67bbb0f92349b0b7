package lambdarun

import (
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
)

// SQS is a local stand-in for Amazon SQS that takes SendMessage only (what a function sends
// synthesis jobs with) and keeps the messages, in the AWS JSON 1.0 protocol of aws-sdk-go-v2's
// client: a POST to / with X-Amz-Target "AmazonSQS.SendMessage", answered with the MessageId and
// MD5OfMessageBody (the hex MD5 of the body, which the SDK checks). Point a function at it with
// SQSEnv. shared/queue/sqstest is the full in-memory SQS, for tests.
type SQS struct {
	URL string // the endpoint

	srv *http.Server
	mu  sync.Mutex
	msg []SQSMessage
}

// SQSMessage is a message the endpoint took.
type SQSMessage struct {
	ID         string            `json:"id"`
	Queue      string            `json:"queue"` // the queue URL's last segment
	Body       string            `json:"body"`
	Attributes map[string]string `json:"attributes,omitempty"` // string values by name
}

// StartSQS starts the endpoint on 127.0.0.1, on a free port.
func StartSQS() (*SQS, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &SQS{URL: "http://" + ln.Addr().String()}
	s.srv = &http.Server{Handler: http.HandlerFunc(s.serveHTTP), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = s.srv.Serve(ln) }()
	return s, nil
}

// Close stops the endpoint.
func (s *SQS) Close() { _ = s.srv.Close() }

// QueueURL is the URL of the queue name on the endpoint, in SQS's form (endpoint/account/name).
func (s *SQS) QueueURL(name string) string { return s.URL + "/" + Account + "/" + name }

// Env points an SDK client at the endpoint (AWS_ENDPOINT_URL_SQS).
func (s *SQS) Env() []string { return []string{"AWS_ENDPOINT_URL_SQS=" + s.URL} }

// Messages returns the messages taken so far, in order.
func (s *SQS) Messages() []SQSMessage {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]SQSMessage(nil), s.msg...)
}

type sqsSendInput struct {
	QueueURL          string `json:"QueueUrl"`
	MessageBody       string `json:"MessageBody"`
	MessageAttributes map[string]struct {
		DataType    string  `json:"DataType"`
		StringValue *string `json:"StringValue"`
	} `json:"MessageAttributes"`
}

// sqsFail answers an error the way SQS's JSON protocol does, with the query-compatible code.
func sqsFail(w http.ResponseWriter, status int, shape, code, msg string) {
	w.Header().Set("Content-Type", "application/x-amz-json-1.0")
	w.Header().Set("x-amzn-query-error", code+";Sender")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"__type": shape, "message": msg})
}

func (s *SQS) serveHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.URL.Path != "/" || !strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-amz-json-1.0") {
		sqsFail(w, http.StatusBadRequest, "com.amazon.coral.service#UnknownOperationException", "UnknownOperation",
			"expected a POST to / of application/x-amz-json-1.0")
		return
	}
	if t := r.Header.Get("X-Amz-Target"); t != "AmazonSQS.SendMessage" {
		sqsFail(w, http.StatusBadRequest, "com.amazonaws.sqs#InvalidAction", "InvalidAction",
			"this local SQS takes AmazonSQS.SendMessage only, not "+t)
		return
	}
	raw, err := io.ReadAll(io.LimitReader(r.Body, 2<<20))
	if err != nil {
		sqsFail(w, http.StatusBadRequest, "com.amazonaws.sqs#InvalidParameterValue", "InvalidParameterValue", err.Error())
		return
	}
	m, err := parseSend(raw)
	if err != nil {
		sqsFail(w, http.StatusBadRequest, "com.amazonaws.sqs#InvalidParameterValue", "InvalidParameterValue", err.Error())
		return
	}
	s.mu.Lock()
	s.msg = append(s.msg, m)
	s.mu.Unlock()
	sum := md5.Sum([]byte(m.Body))
	w.Header().Set("Content-Type", "application/x-amz-json-1.0")
	_ = json.NewEncoder(w).Encode(map[string]string{"MessageId": m.ID, "MD5OfMessageBody": hex.EncodeToString(sum[:])})
}

// parseSend decodes a SendMessage request.
func parseSend(raw []byte) (SQSMessage, error) {
	var in sqsSendInput
	if err := json.Unmarshal(raw, &in); err != nil {
		return SQSMessage{}, errors.New("the request is not SendMessage JSON: " + err.Error())
	}
	u, err := url.Parse(in.QueueURL)
	if in.QueueURL == "" || err != nil || path.Base(u.Path) == "/" || path.Base(u.Path) == "." {
		return SQSMessage{}, errors.New("QueueUrl is not a queue's URL")
	}
	if in.MessageBody == "" {
		return SQSMessage{}, errors.New("MessageBody must not be empty")
	}
	m := SQSMessage{ID: uuid.NewString(), Queue: path.Base(u.Path), Body: in.MessageBody}
	for name, a := range in.MessageAttributes {
		if a.StringValue == nil {
			continue
		}
		if m.Attributes == nil {
			m.Attributes = map[string]string{}
		}
		m.Attributes[name] = *a.StringValue
	}
	return m, nil
}
