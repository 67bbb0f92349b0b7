package lambdaio

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"

	"github.com/aws/aws-lambda-go/events"
	"github.com/awslabs/aws-lambda-go-api-proxy/core"

	"github.com/helixhq/helix/shared/fault"
	"github.com/helixhq/helix/shared/httpapi"
)

// StreamingHandler returns the handler of a Lambda Function URL whose InvokeMode is
// RESPONSE_STREAM: each event becomes a request for h, and h's answer reaches the client as h
// writes it (Server-Sent Events), through aws-lambda-go's streaming response. API Gateway's HTTP
// API buffers whole answers, so the streaming routes are served this way.
//
// A Function URL has no JWT authorizer in front of it: no claims come with the request, so h
// verifies the bearer token itself, as it does on the dev server.
//
// aws-lambda-go-api-proxy has no Function URL adapter; a Function URL event has the shape of an
// API Gateway v2 event, so the proxy's v2 request conversion (headers, cookies, query, base64
// bodies) is used for the request, and the streaming answer is written here.
func StreamingHandler(h http.Handler, log *slog.Logger) func(context.Context, events.LambdaFunctionURLRequest) (*events.LambdaFunctionURLStreamingResponse, error) {
	var accessor core.RequestAccessorV2
	return func(ctx context.Context, ev events.LambdaFunctionURLRequest) (*events.LambdaFunctionURLStreamingResponse, error) {
		req, err := accessor.EventToRequest(asV2(ev))
		if err != nil {
			log.Error("cannot adapt Function URL event", "err", err, "request_id", ev.RequestContext.RequestID)
			body, _ := json.Marshal(map[string]any{"error": map[string]any{
				"code": fault.MalformedEvent, "message": "the request could not be read",
			}})
			return &events.LambdaFunctionURLStreamingResponse{
				StatusCode: httpapi.StatusOf(fault.MalformedEvent),
				Headers:    map[string]string{"Content-Type": "application/json"},
				Body:       strings.NewReader(string(body)),
			}, nil
		}
		req = req.WithContext(httpapi.WithGatewayRequestID(ctx, ev.RequestContext.RequestID))
		pr, pw := io.Pipe()
		w := &streamWriter{header: http.Header{}, body: pw, started: make(chan struct{})}
		done := make(chan struct{})
		go func() {
			defer func() {
				w.start(http.StatusOK) // a handler that wrote nothing answers 200 with no body
				pw.Close()
				close(done)
			}()
			h.ServeHTTP(w, req)
		}()
		// The runtime reads the body until the handler ends; the invocation's context ends when
		// that is over, or when sending failed (the client went away) or the deadline passed.
		// Then the handler's next write fails, so it stops and settles instead of blocking.
		go func() {
			select {
			case <-ctx.Done():
				pr.CloseWithError(ctx.Err())
			case <-done:
			}
		}()
		<-w.started
		return w.response(pr), nil
	}
}

// asV2 is the Function URL event as the API Gateway v2 event it mirrors, without any
// authorizer: nothing vouches for the caller.
func asV2(ev events.LambdaFunctionURLRequest) events.APIGatewayV2HTTPRequest {
	rc := ev.RequestContext
	return events.APIGatewayV2HTTPRequest{
		Version: "2.0", RouteKey: "$default", RawPath: ev.RawPath, RawQueryString: ev.RawQueryString,
		Cookies: ev.Cookies, Headers: ev.Headers, QueryStringParameters: ev.QueryStringParameters,
		Body: ev.Body, IsBase64Encoded: ev.IsBase64Encoded,
		RequestContext: events.APIGatewayV2HTTPRequestContext{
			RouteKey: "$default", AccountID: rc.AccountID, Stage: "$default", RequestID: rc.RequestID,
			APIID: rc.APIID, DomainName: rc.DomainName, DomainPrefix: rc.DomainPrefix, Time: rc.Time, TimeEpoch: rc.TimeEpoch,
			HTTP: events.APIGatewayV2HTTPRequestContextHTTPDescription{
				Method: rc.HTTP.Method, Path: rc.HTTP.Path, Protocol: rc.HTTP.Protocol, SourceIP: rc.HTTP.SourceIP, UserAgent: rc.HTTP.UserAgent,
			},
		},
	}
}

// streamWriter is the http.ResponseWriter of a streamed answer: the status and headers are
// handed to the runtime when the handler first writes (or ends), the body flows through a pipe
// the runtime reads as it goes.
type streamWriter struct {
	header  http.Header
	body    *io.PipeWriter
	once    sync.Once
	started chan struct{}
	status  int
	headers http.Header // the header as it was when the answer started
}

func (w *streamWriter) Header() http.Header { return w.header }

func (w *streamWriter) WriteHeader(status int) { w.start(status) }

func (w *streamWriter) Write(b []byte) (int, error) {
	w.start(http.StatusOK)
	return w.body.Write(b)
}

// Flush is a no-op: every Write already goes to the runtime. It lets handlers that stream ask
// for an http.Flusher.
func (w *streamWriter) Flush() {}

func (w *streamWriter) start(status int) {
	w.once.Do(func() {
		w.status, w.headers = status, w.header.Clone()
		close(w.started)
	})
}

// response is the streaming response for the runtime: multi-valued headers comma-joined (as
// Function URLs deliver them), Set-Cookie as cookies.
func (w *streamWriter) response(body io.Reader) *events.LambdaFunctionURLStreamingResponse {
	headers := make(map[string]string, len(w.headers))
	var cookies []string
	for k, v := range w.headers {
		if http.CanonicalHeaderKey(k) == "Set-Cookie" {
			cookies = append(cookies, v...)
			continue
		}
		headers[k] = strings.Join(v, ",")
	}
	return &events.LambdaFunctionURLStreamingResponse{StatusCode: w.status, Headers: headers, Body: body, Cookies: cookies}
}
