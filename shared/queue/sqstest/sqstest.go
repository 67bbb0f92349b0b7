// Package sqstest is an in-memory Amazon SQS for tests: an HTTP server in the test process that
// speaks the AWS JSON 1.0 protocol of aws-sdk-go-v2's SQS client, so queue adapters are tested
// through the real client (its serializers, MD5 checks and error decoding), never the internet.
//
// It serves SendMessage, ReceiveMessage (with visibility timeouts and long polling),
// DeleteMessage and GetQueueUrl on standard queues. The wire format follows the SDK's own model
// (service/sqs: schemas, request and response snapshots, cust_checksum_validation.go) and the SQS
// developer guide ("Interpreting Amazon SQS JSON API responses"): requests are signed POSTs to
// "/" with X-Amz-Target "AmazonSQS.<Operation>" and Content-Type application/x-amz-json-1.0;
// errors are HTTP 4xx with {"__type":"com.amazonaws.sqs#<Shape>","message":...} and the
// x-amzn-query-error header "<query code>;Sender" that query-compatible clients read.
//
// It is imported by _test files only: nothing in a deployed function depends on it.
package sqstest

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/google/uuid"
)

const (
	// Account is the AWS account that owns every queue; it is the first segment of a queue URL.
	Account = "123456789012"
	// Region is the region the server pretends to be in.
	Region = "us-east-1"

	// DefaultVisibilityTimeout is a queue's visibility timeout when a receive names none (the
	// SQS default).
	DefaultVisibilityTimeout = 30 * time.Second

	// maxMessageSize is SQS's limit on a message: body plus attribute names, types and values.
	maxMessageSize = 1 << 20
	maxRequestSize = 2 << 20
)

// Server is an in-memory SQS. Its URL is the endpoint to point a client at.
type Server struct {
	URL string

	mu       sync.Mutex
	queues   map[string]*queue // by name
	handles  map[string]handle // every receipt handle ever issued
	offset   time.Duration     // added to the wall clock by Advance
	requests []Request
}

// Request is one request the server received, as it arrived.
type Request struct {
	Target string          // the X-Amz-Target header, e.g. "AmazonSQS.SendMessage"
	Header http.Header     // all request headers
	Body   json.RawMessage // the JSON body
}

// Message is a message stored in a queue, as the server holds it.
type Message struct {
	ID               string
	Body             string
	Attributes       map[string]Attribute
	SenderID         string
	Sent             time.Time
	ReceiveCount     int
	FirstReceive     time.Time // zero until the first receive
	VisibleAt        time.Time // a message is received only at or after VisibleAt
	GroupID          string
	SystemAttributes map[string]Attribute
}

// Attribute is a message attribute, with the field names of the JSON protocol.
type Attribute struct {
	DataType    string  `json:"DataType"`
	StringValue *string `json:"StringValue,omitempty"`
	BinaryValue []byte  `json:"BinaryValue,omitempty"` // base64 on the wire, as the SDK writes blobs
}

type queue struct {
	name     string
	messages []*Message // in send order, so receives come out first-in, first-out here
	// wake is closed (and replaced) when the queue may have a message for a waiting receive.
	wake chan struct{}
}

type handle struct {
	queue     string
	messageID string
}

// NewServer starts a server with the named standard queues and stops it when the test ends.
func NewServer(t testing.TB, queueNames ...string) *Server {
	t.Helper()
	s := &Server{queues: map[string]*queue{}, handles: map[string]handle{}}
	for _, name := range queueNames {
		if name == "" || strings.HasSuffix(name, ".fifo") {
			t.Fatalf("sqstest: queue name %q: only non-empty standard queue names are served", name)
		}
		s.queues[name] = &queue{name: name, wake: make(chan struct{})}
	}
	srv := httptest.NewServer(http.HandlerFunc(s.serveHTTP))
	t.Cleanup(srv.Close)
	s.URL = srv.URL
	return s
}

// QueueURL is the URL of a queue, in the form SQS uses: the endpoint, the account, the name.
// It is a URL for any name, served or not, so tests can name a queue that does not exist.
func (s *Server) QueueURL(name string) string {
	return s.URL + "/" + Account + "/" + name
}

// Client is an SQS client of the SDK, built as a deployed function would build it but pointed at
// the server, with static credentials and no retries (a test wants the first answer).
func (s *Server) Client() *sqs.Client {
	return sqs.New(sqs.Options{
		Region:           Region,
		BaseEndpoint:     aws.String(s.URL),
		Credentials:      credentials.NewStaticCredentialsProvider("AKIDSQSTEST", "sqstest-secret", ""),
		RetryMaxAttempts: 1,
	})
}

// Requests returns the requests received so far, in order.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.requests)
}

// Messages returns copies of the messages a queue holds (received or not), in send order.
func (s *Server) Messages(queueName string) []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	q, ok := s.queues[queueName]
	if !ok {
		return nil
	}
	out := make([]Message, len(q.messages))
	for i, m := range q.messages {
		out[i] = *m
		out[i].Attributes = maps.Clone(m.Attributes)
		out[i].SystemAttributes = maps.Clone(m.SystemAttributes)
	}
	return out
}

// Advance moves the server's clock forward, so a test can let visibility timeouts and delays
// run out without sleeping.
func (s *Server) Advance(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.offset += d
	for _, q := range s.queues {
		q.notify()
	}
}

func (s *Server) now() time.Time { return time.Now().Add(s.offset) }

func (q *queue) notify() {
	close(q.wake)
	q.wake = make(chan struct{})
}

// apiError is an error as SQS writes it.
type apiError struct {
	status    int
	shape     string // the error shape; a bare name is in the com.amazonaws.sqs namespace
	queryCode string // the x-amzn-query-error code, for clients in query-compatible mode
	message   string
}

func errQueueDoesNotExist() *apiError {
	return &apiError{http.StatusBadRequest, "QueueDoesNotExist", "AWS.SimpleQueueService.NonExistentQueue",
		"The specified queue does not exist."}
}

func errUnknownOperation(target string) *apiError {
	return &apiError{http.StatusBadRequest, "com.amazon.coral.service#UnknownOperationException", "",
		"sqstest does not serve X-Amz-Target " + strconv.Quote(target)}
}

func errInvalidParameter(format string, args ...any) *apiError {
	return &apiError{http.StatusBadRequest, "InvalidParameterValue", "InvalidParameterValue", fmt.Sprintf(format, args...)}
}

func errMissingParameter(name string) *apiError {
	return &apiError{http.StatusBadRequest, "MissingParameter", "MissingParameter",
		"The request must contain the parameter " + name + "."}
}

func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("x-amzn-RequestId", uuid.NewString())
	raw, err := io.ReadAll(io.LimitReader(r.Body, maxRequestSize+1))
	target := r.Header.Get("X-Amz-Target")
	s.mu.Lock()
	s.requests = append(s.requests, Request{Target: target, Header: r.Header.Clone(), Body: json.RawMessage(raw)})
	s.mu.Unlock()

	var out any
	var aerr *apiError
	switch {
	case err != nil || len(raw) > maxRequestSize:
		aerr = &apiError{http.StatusRequestEntityTooLarge, "com.amazon.coral.service#SerializationException", "", "request body too large or unreadable"}
	case r.Method != http.MethodPost || r.URL.Path != "/" || !strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-amz-json-1.0"):
		aerr = &apiError{http.StatusBadRequest, "com.amazon.coral.service#UnknownOperationException", "", "expected a POST to / of application/x-amz-json-1.0"}
	case senderID(r) == "":
		aerr = &apiError{http.StatusForbidden, "com.amazon.coral.service#MissingAuthenticationTokenException", "", "Request is missing Authentication Token"}
	default:
		if op, ok := strings.CutPrefix(target, "AmazonSQS."); ok {
			out, aerr = s.dispatch(r.Context(), op, raw, senderID(r))
		} else {
			aerr = errUnknownOperation(target)
		}
	}

	w.Header().Set("Content-Type", "application/x-amz-json-1.0")
	if aerr != nil {
		shape := aerr.shape
		if !strings.Contains(shape, "#") {
			shape = "com.amazonaws.sqs#" + shape
		}
		if aerr.queryCode != "" {
			w.Header().Set("x-amzn-query-error", aerr.queryCode+";Sender")
		}
		w.WriteHeader(aerr.status)
		_ = json.NewEncoder(w).Encode(map[string]string{"__type": shape, "message": aerr.message})
		return
	}
	_ = json.NewEncoder(w).Encode(out)
}

func (s *Server) dispatch(ctx context.Context, op string, raw []byte, sender string) (any, *apiError) {
	decode := func(v any) *apiError {
		if err := json.Unmarshal(raw, v); err != nil {
			return &apiError{http.StatusBadRequest, "com.amazon.coral.service#SerializationException", "", "the request body is not valid for " + op}
		}
		return nil
	}
	switch op {
	case "SendMessage":
		var in sendMessageInput
		if err := decode(&in); err != nil {
			return nil, err
		}
		return s.sendMessage(in, sender)
	case "ReceiveMessage":
		var in receiveMessageInput
		if err := decode(&in); err != nil {
			return nil, err
		}
		return s.receiveMessage(ctx, in)
	case "DeleteMessage":
		var in deleteMessageInput
		if err := decode(&in); err != nil {
			return nil, err
		}
		return s.deleteMessage(in)
	case "GetQueueUrl":
		var in getQueueURLInput
		if err := decode(&in); err != nil {
			return nil, err
		}
		return s.getQueueURL(in)
	}
	return nil, errUnknownOperation("AmazonSQS." + op)
}

// senderID is the access key id of the request's SigV4 signature. Real SQS reports the IAM
// principal's id; the key id stands in for it. The signature itself is not checked.
func senderID(r *http.Request) string {
	_, cred, ok := strings.Cut(r.Header.Get("Authorization"), "Credential=")
	if !ok || !strings.HasPrefix(r.Header.Get("Authorization"), "AWS4-HMAC-SHA256 ") {
		return ""
	}
	scope := strings.Split(strings.SplitN(cred, ",", 2)[0], "/")
	if len(scope) != 5 || scope[3] != "sqs" {
		return ""
	}
	return scope[0]
}

// lookup finds the queue a queue URL names: the path must be /<Account>/<name> of a served
// queue. The host is not checked, since clients reach the server under many names.
func (s *Server) lookup(queueURL string) (*queue, *apiError) {
	if queueURL == "" {
		return nil, errMissingParameter("QueueUrl")
	}
	u, err := url.Parse(queueURL)
	if err != nil {
		return nil, &apiError{http.StatusBadRequest, "InvalidAddress", "InvalidAddress", "The address " + queueURL + " is not valid for this endpoint."}
	}
	account, name, ok := strings.Cut(strings.TrimPrefix(u.Path, "/"), "/")
	q, found := s.queues[name]
	if !ok || account != Account || !found {
		return nil, errQueueDoesNotExist()
	}
	return q, nil
}

type sendMessageInput struct {
	QueueURL                string               `json:"QueueUrl"`
	MessageBody             *string              `json:"MessageBody"`
	DelaySeconds            *int32               `json:"DelaySeconds"`
	MessageAttributes       map[string]Attribute `json:"MessageAttributes"`
	MessageSystemAttributes map[string]Attribute `json:"MessageSystemAttributes"`
	MessageDeduplicationID  *string              `json:"MessageDeduplicationId"`
	MessageGroupID          *string              `json:"MessageGroupId"`
}

type sendMessageOutput struct {
	MessageID              string `json:"MessageId"`
	MD5OfMessageBody       string `json:"MD5OfMessageBody"`
	MD5OfMessageAttributes string `json:"MD5OfMessageAttributes,omitempty"`
}

func (s *Server) sendMessage(in sendMessageInput, sender string) (any, *apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	q, aerr := s.lookup(in.QueueURL)
	if aerr != nil {
		return nil, aerr
	}
	if in.MessageBody == nil || *in.MessageBody == "" {
		return nil, errMissingParameter("MessageBody")
	}
	if !validBody(*in.MessageBody) {
		return nil, &apiError{http.StatusBadRequest, "InvalidMessageContents", "InvalidMessageContents",
			"Invalid binary character in the message body. Allowed: #x9 | #xA | #xD | #x20 to #xD7FF | #xE000 to #xFFFD | #x10000 to #x10FFFF"}
	}
	size, aerr := attributesSize(in.MessageAttributes)
	if aerr != nil {
		return nil, aerr
	}
	if size+len(*in.MessageBody) > maxMessageSize {
		return nil, errInvalidParameter("One or more parameters are invalid. Reason: Message must be shorter than %d bytes.", maxMessageSize)
	}
	if in.MessageDeduplicationID != nil {
		return nil, errInvalidParameter("The request include parameter that is not valid for this queue type")
	}
	var delay time.Duration
	if in.DelaySeconds != nil {
		if *in.DelaySeconds < 0 || *in.DelaySeconds > 900 {
			return nil, errInvalidParameter("Value %d for parameter DelaySeconds is invalid. Reason: must be between 0 and 900, if provided.", *in.DelaySeconds)
		}
		delay = time.Duration(*in.DelaySeconds) * time.Second
	}
	now := s.now()
	m := &Message{
		ID: uuid.NewString(), Body: *in.MessageBody, Attributes: in.MessageAttributes, SenderID: sender,
		Sent: now, VisibleAt: now.Add(delay), SystemAttributes: in.MessageSystemAttributes,
	}
	if in.MessageGroupID != nil {
		m.GroupID = *in.MessageGroupID
	}
	q.messages = append(q.messages, m)
	q.notify()
	return sendMessageOutput{MessageID: m.ID, MD5OfMessageBody: md5Hex([]byte(m.Body)), MD5OfMessageAttributes: MD5OfAttributes(m.Attributes)}, nil
}

// validBody reports whether a body holds only the characters SQS accepts (XML's).
func validBody(body string) bool {
	if !utf8.ValidString(body) {
		return false
	}
	for _, r := range body {
		switch {
		case r == 0x9, r == 0xA, r == 0xD, r >= 0x20 && r <= 0xD7FF, r >= 0xE000 && r <= 0xFFFD, r >= 0x10000 && r <= 0x10FFFF:
		default:
			return false
		}
	}
	return true
}

// attributesSize validates message attributes as SQS does and returns the bytes they count
// toward the message size limit.
func attributesSize(attrs map[string]Attribute) (int, *apiError) {
	if len(attrs) > 10 {
		return 0, errInvalidParameter("Number of message attributes [%d] exceeds the allowed maximum [10].", len(attrs))
	}
	size := 0
	for name, a := range attrs {
		if !validAttributeName(name) {
			return 0, errInvalidParameter("Message (user) attribute name '%s' is invalid.", name)
		}
		if a.DataType == "" || len(a.DataType) > 256 {
			return 0, errInvalidParameter("The message attribute '%s' must contain non-empty message attribute type.", name)
		}
		switch transportType(a.DataType) {
		case 1:
			if a.StringValue == nil || *a.StringValue == "" {
				return 0, errInvalidParameter("The message attribute '%s' must contain non-empty message attribute value for message attribute type '%s'.", name, a.DataType)
			}
			size += len(*a.StringValue)
		case 2:
			if len(a.BinaryValue) == 0 {
				return 0, errInvalidParameter("The message attribute '%s' must contain non-empty message attribute value for message attribute type '%s'.", name, a.DataType)
			}
			size += len(a.BinaryValue)
		default:
			return 0, errInvalidParameter("The type of message (user) attribute '%s' is invalid. You must use only the following supported type prefixes: Binary, Number, String.", name)
		}
		size += len(name) + len(a.DataType)
	}
	return size, nil
}

func validAttributeName(name string) bool {
	lower := strings.ToLower(name)
	if name == "" || len(name) > 256 || strings.HasPrefix(lower, "aws.") || strings.HasPrefix(lower, "amazon.") ||
		strings.HasPrefix(name, ".") || strings.HasSuffix(name, ".") || strings.Contains(name, "..") {
		return false
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-' || r == '.') {
			return false
		}
	}
	return true
}

// transportType is how an attribute's value travels, by its data type's base (the part before
// a "." custom suffix): 1 for String and Number, 2 for Binary, 0 for anything else.
func transportType(dataType string) byte {
	base, _, _ := strings.Cut(dataType, ".")
	switch base {
	case "String", "Number":
		return 1
	case "Binary":
		return 2
	}
	return 0
}

// MD5OfAttributes is SQS's MD5OfMessageAttributes: the MD5 of the attributes sorted by name,
// each encoded as length-prefixed (4-byte big-endian) name and data type, one transport-type
// byte, and the length-prefixed value. It is "" for no attributes, when SQS sends none.
func MD5OfAttributes(attrs map[string]Attribute) string {
	if len(attrs) == 0 {
		return ""
	}
	var buf bytes.Buffer
	field := func(b []byte) {
		_ = binary.Write(&buf, binary.BigEndian, uint32(len(b)))
		buf.Write(b)
	}
	names := make([]string, 0, len(attrs))
	for name := range attrs {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		a := attrs[name]
		field([]byte(name))
		field([]byte(a.DataType))
		tt := transportType(a.DataType)
		buf.WriteByte(tt)
		if tt == 2 {
			field(a.BinaryValue)
		} else if a.StringValue != nil {
			field([]byte(*a.StringValue))
		}
	}
	return md5Hex(buf.Bytes())
}

func md5Hex(b []byte) string {
	sum := md5.Sum(b)
	return hex.EncodeToString(sum[:])
}

type receiveMessageInput struct {
	QueueURL                    string   `json:"QueueUrl"`
	AttributeNames              []string `json:"AttributeNames"`
	MessageSystemAttributeNames []string `json:"MessageSystemAttributeNames"`
	MessageAttributeNames       []string `json:"MessageAttributeNames"`
	MaxNumberOfMessages         *int32   `json:"MaxNumberOfMessages"`
	VisibilityTimeout           *int32   `json:"VisibilityTimeout"`
	WaitTimeSeconds             *int32   `json:"WaitTimeSeconds"`
	ReceiveRequestAttemptID     *string  `json:"ReceiveRequestAttemptId"`
}

type receiveMessageOutput struct {
	Messages []messageOutput `json:"Messages,omitempty"`
}

type messageOutput struct {
	MessageID              string               `json:"MessageId"`
	ReceiptHandle          string               `json:"ReceiptHandle"`
	MD5OfBody              string               `json:"MD5OfBody"`
	Body                   string               `json:"Body"`
	Attributes             map[string]string    `json:"Attributes,omitempty"`
	MD5OfMessageAttributes string               `json:"MD5OfMessageAttributes,omitempty"`
	MessageAttributes      map[string]Attribute `json:"MessageAttributes,omitempty"`
}

func (s *Server) receiveMessage(ctx context.Context, in receiveMessageInput) (any, *apiError) {
	limit, visibility, wait := int32(1), DefaultVisibilityTimeout, time.Duration(0)
	if in.MaxNumberOfMessages != nil {
		if limit = *in.MaxNumberOfMessages; limit < 1 || limit > 10 {
			return nil, errInvalidParameter("Value %d for parameter MaxNumberOfMessages is invalid. Reason: Must be between 1 and 10, if provided.", limit)
		}
	}
	if in.VisibilityTimeout != nil {
		if v := *in.VisibilityTimeout; v < 0 || v > 43200 {
			return nil, errInvalidParameter("Value %d for parameter VisibilityTimeout is invalid. Reason: Must be between 0 and 43200, if provided.", v)
		}
		visibility = time.Duration(*in.VisibilityTimeout) * time.Second
	}
	if in.WaitTimeSeconds != nil {
		if v := *in.WaitTimeSeconds; v < 0 || v > 20 {
			return nil, errInvalidParameter("Value %d for parameter WaitTimeSeconds is invalid. Reason: Must be >= 0 and <= 20, if provided.", v)
		}
		wait = time.Duration(*in.WaitTimeSeconds) * time.Second
	}
	deadline := time.Now().Add(wait)
	for {
		s.mu.Lock()
		q, aerr := s.lookup(in.QueueURL)
		if aerr != nil {
			s.mu.Unlock()
			return nil, aerr
		}
		out := s.take(q, int(limit), visibility, in)
		wake, next := q.wake, q.nextVisible(s.now())
		s.mu.Unlock()

		// Long polling: wait for a send, a message becoming visible again, or the wait to end.
		remaining := time.Until(deadline)
		if len(out.Messages) > 0 || remaining <= 0 {
			return out, nil
		}
		if next > 0 && next < remaining {
			remaining = next
		}
		timer := time.NewTimer(remaining)
		select {
		case <-wake:
		case <-timer.C:
		case <-ctx.Done():
			timer.Stop()
			return receiveMessageOutput{}, nil
		}
		timer.Stop()
	}
}

// take receives up to limit visible messages: each gets a new receipt handle and is hidden for
// the visibility timeout. s.mu is held.
func (s *Server) take(q *queue, limit int, visibility time.Duration, in receiveMessageInput) receiveMessageOutput {
	now := s.now()
	var out receiveMessageOutput
	for _, m := range q.messages {
		if len(out.Messages) == limit {
			break
		}
		if now.Before(m.VisibleAt) {
			continue
		}
		m.ReceiveCount++
		if m.FirstReceive.IsZero() {
			m.FirstReceive = now
		}
		m.VisibleAt = now.Add(visibility)
		receipt := newReceiptHandle()
		s.handles[receipt] = handle{queue: q.name, messageID: m.ID}

		attrs := selectAttributes(m.Attributes, in.MessageAttributeNames)
		out.Messages = append(out.Messages, messageOutput{
			MessageID: m.ID, ReceiptHandle: receipt, MD5OfBody: md5Hex([]byte(m.Body)), Body: m.Body,
			Attributes:             systemAttributes(m, append(slices.Clone(in.AttributeNames), in.MessageSystemAttributeNames...)),
			MD5OfMessageAttributes: MD5OfAttributes(attrs), MessageAttributes: attrs,
		})
	}
	return out
}

// nextVisible is how long until the next hidden message becomes visible, 0 if none is hidden.
func (q *queue) nextVisible(now time.Time) time.Duration {
	var next time.Duration
	for _, m := range q.messages {
		if d := m.VisibleAt.Sub(now); d > 0 && (next == 0 || d < next) {
			next = d
		}
	}
	return next
}

// newReceiptHandle is an opaque handle like SQS's: long random base64.
func newReceiptHandle() string {
	b := make([]byte, 96)
	_, _ = rand.Read(b)
	return base64.StdEncoding.EncodeToString(b)
}

// selectAttributes returns the message attributes a receive asked for: SQS returns none unless
// named, "All" or ".*" for every one, "prefix.*" for those under a prefix.
func selectAttributes(attrs map[string]Attribute, names []string) map[string]Attribute {
	out := map[string]Attribute{}
	for name, a := range attrs {
		for _, want := range names {
			prefix, isPrefix := strings.CutSuffix(want, ".*")
			if want == "All" || want == ".*" || want == name || isPrefix && strings.HasPrefix(name, prefix+".") {
				out[name] = a
				break
			}
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// systemAttributes returns the system attributes a receive asked for, as strings.
func systemAttributes(m *Message, names []string) map[string]string {
	all := map[string]string{
		"SenderId":                         m.SenderID,
		"SentTimestamp":                    strconv.FormatInt(m.Sent.UnixMilli(), 10),
		"ApproximateReceiveCount":          strconv.Itoa(m.ReceiveCount),
		"ApproximateFirstReceiveTimestamp": strconv.FormatInt(m.FirstReceive.UnixMilli(), 10),
	}
	if m.GroupID != "" {
		all["MessageGroupId"] = m.GroupID
	}
	if tr, ok := m.SystemAttributes["AWSTraceHeader"]; ok && tr.StringValue != nil {
		all["AWSTraceHeader"] = *tr.StringValue
	}
	out := map[string]string{}
	for _, want := range names {
		if want == "All" {
			return all
		}
		if v, ok := all[want]; ok {
			out[want] = v
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

type deleteMessageInput struct {
	QueueURL      string `json:"QueueUrl"`
	ReceiptHandle string `json:"ReceiptHandle"`
}

// deleteMessage deletes the message a receipt handle was issued for. As on a standard queue, any
// handle the message was ever received with deletes it, and deleting it again succeeds.
func (s *Server) deleteMessage(in deleteMessageInput) (any, *apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	q, aerr := s.lookup(in.QueueURL)
	if aerr != nil {
		return nil, aerr
	}
	if in.ReceiptHandle == "" {
		return nil, errMissingParameter("ReceiptHandle")
	}
	h, ok := s.handles[in.ReceiptHandle]
	if !ok || h.queue != q.name {
		return nil, &apiError{http.StatusNotFound, "ReceiptHandleIsInvalid", "ReceiptHandleIsInvalid",
			fmt.Sprintf("The input receipt handle %q is not a valid receipt handle.", in.ReceiptHandle)}
	}
	q.messages = slices.DeleteFunc(q.messages, func(m *Message) bool { return m.ID == h.messageID })
	return struct{}{}, nil
}

type getQueueURLInput struct {
	QueueName              string  `json:"QueueName"`
	QueueOwnerAWSAccountID *string `json:"QueueOwnerAWSAccountId"`
}

type getQueueURLOutput struct {
	QueueURL string `json:"QueueUrl"`
}

func (s *Server) getQueueURL(in getQueueURLInput) (any, *apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if in.QueueName == "" {
		return nil, errMissingParameter("QueueName")
	}
	if _, ok := s.queues[in.QueueName]; !ok || in.QueueOwnerAWSAccountID != nil && *in.QueueOwnerAWSAccountID != Account {
		return nil, errQueueDoesNotExist()
	}
	return getQueueURLOutput{QueueURL: s.QueueURL(in.QueueName)}, nil
}
