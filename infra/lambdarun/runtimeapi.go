package lambdarun

// The Runtime API (2018-06-01) and the part of the Extensions API (2020-01-01) that
// aws-lambda-go v1.55 calls: lambda/runtime_api_client.go and lambda/extensions_api_client.go
// in its module, and the AWS Lambda developer guide's "Runtime API" and "Extensions API" pages.

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/google/uuid"
)

// The headers of GET /next and of the error calls.
const (
	headerRequestID   = "Lambda-Runtime-Aws-Request-Id"
	headerDeadline    = "Lambda-Runtime-Deadline-Ms"
	headerFunctionARN = "Lambda-Runtime-Invoked-Function-Arn"
	headerTraceID     = "Lambda-Runtime-Trace-Id"
	headerErrorType   = "Lambda-Runtime-Function-Error-Type" // a header on /error, a trailer on a broken /response
	headerExtName     = "Lambda-Extension-Name"
	headerExtID       = "Lambda-Extension-Identifier"
)

func (p *Process) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /2018-06-01/runtime/invocation/next", p.next)
	mux.HandleFunc("POST /2018-06-01/runtime/invocation/{id}/response", p.response)
	mux.HandleFunc("POST /2018-06-01/runtime/invocation/{id}/error", p.invocationError)
	mux.HandleFunc("POST /2018-06-01/runtime/init/error", p.initError)
	mux.HandleFunc("POST /2020-01-01/extension/register", p.registerExtension)
	mux.HandleFunc("GET /2020-01-01/extension/event/next", p.extensionNext)
	return mux
}

// apiError answers as the Runtime API does: a JSON error with a type.
func apiError(w http.ResponseWriter, status int, typ, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"errorType": typ, "errorMessage": msg})
}

// next blocks until there is an event, then hands it out with the invocation's headers.
func (p *Process) next(w http.ResponseWriter, r *http.Request) {
	p.readyOnce.Do(func() {
		p.mu.Lock()
		p.initDuration = time.Since(p.started)
		p.mu.Unlock()
		close(p.ready)
	})
	var inv *invocation
	select {
	case inv = <-p.pending:
	case <-p.done:
		return
	case <-r.Context().Done():
		return
	}
	p.mu.Lock()
	inv.given = time.Now()
	p.mu.Unlock()
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set(headerRequestID, inv.id)
	h.Set(headerDeadline, strconv.FormatInt(inv.deadline.UnixMilli(), 10))
	h.Set(headerFunctionARN, fmt.Sprintf("arn:aws:lambda:%s:%s:function:%s", Region, Account, p.cfg.Function))
	h.Set(headerTraceID, traceID(inv.given))
	_, _ = w.Write(inv.payload)
}

// traceID is an X-Ray trace header as Lambda passes it (not sampled).
func traceID(t time.Time) string {
	id := uuid.New()
	parent := uuid.New()
	return fmt.Sprintf("Root=1-%08x-%x;Parent=%x;Sampled=0", t.Unix(), id[:12], parent[:8])
}

// take removes the in-flight invocation id, or answers 400 as Lambda does for an unknown id.
func (p *Process) take(w http.ResponseWriter, id string) *invocation {
	p.mu.Lock()
	inv := p.inflight[id]
	delete(p.inflight, id)
	p.mu.Unlock()
	if inv == nil {
		apiError(w, http.StatusBadRequest, "InvalidRequestID", "no invocation in flight with id "+id)
	}
	return inv
}

func (p *Process) response(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxResponse+1))
	now := time.Now()
	inv := p.take(w, r.PathValue("id"))
	if inv == nil {
		return
	}
	var res result
	switch {
	case err != nil:
		res.fnErr = &ErrorBody{Type: "Runtime.ResponseReadError", Message: err.Error()}
	case len(body) > maxResponse:
		res.fnErr = &ErrorBody{Type: "Function.ResponseSizeTooLarge",
			Message: fmt.Sprintf("the response is more than the %d bytes a synchronous invocation may answer", maxResponse)}
	case r.Trailer.Get(headerErrorType) != "":
		// The handler's response stream failed midway: aws-lambda-go says so in trailers.
		res.fnErr = &ErrorBody{Type: r.Trailer.Get(headerErrorType), Message: "the response stream failed"}
	default:
		res.body = body
	}
	res.at = now
	inv.result <- res
	if len(body) > maxResponse {
		// As Lambda: the runtime is told, and aws-lambda-go exits on it (a fresh instance next).
		_, _ = io.Copy(io.Discard, io.LimitReader(r.Body, 64<<20))
		apiError(w, http.StatusRequestEntityTooLarge, "Function.ResponseSizeTooLarge", res.fnErr.Message)
		return
	}
	w.WriteHeader(http.StatusAccepted)
}

func (p *Process) invocationError(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(r.Body, maxResponse))
	now := time.Now()
	inv := p.take(w, r.PathValue("id"))
	if inv == nil {
		return
	}
	inv.result <- result{fnErr: decodeError(body, r.Header.Get(headerErrorType)), at: now}
	w.WriteHeader(http.StatusAccepted)
}

func (p *Process) initError(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(r.Body, maxResponse))
	e := decodeError(body, r.Header.Get(headerErrorType))
	p.initOnce.Do(func() {
		p.mu.Lock()
		p.initErr = e
		p.mu.Unlock()
		close(p.initErrCh)
	})
	w.WriteHeader(http.StatusAccepted)
}

func (p *Process) registerExtension(w http.ResponseWriter, r *http.Request) {
	name := r.Header.Get(headerExtName)
	if name == "" {
		apiError(w, http.StatusBadRequest, "InvalidRequest", "missing header "+headerExtName)
		return
	}
	_, _ = io.Copy(io.Discard, r.Body)
	p.mu.Lock()
	p.extensions = append(p.extensions, name)
	p.mu.Unlock()
	w.Header().Set(headerExtID, uuid.NewString())
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]string{
		"functionName": p.cfg.Function, "functionVersion": "$LATEST", "handler": "bootstrap"})
}

// extensionNext blocks: the internal extension of lambda.WithEnableSIGTERM registers for no
// event, so its poll only ends with the environment.
func (p *Process) extensionNext(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get(headerExtID) == "" {
		apiError(w, http.StatusForbidden, "Extension.InvalidExtensionIdentifier", "missing header "+headerExtID)
		return
	}
	select {
	case <-p.done:
	case <-r.Context().Done():
	}
}
