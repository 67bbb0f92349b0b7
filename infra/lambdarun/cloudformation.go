package lambdarun

import (
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"sync"
	"time"
)

// CloudFormation is a local stand-in for the pre-signed S3 URL a custom resource's event
// carries (ResponseURL), where the function PUTs its answer to CloudFormation. Rewrite points an
// event at it; Responses returns what CloudFormation would have received.
type CloudFormation struct {
	URL string

	srv  *http.Server
	mu   sync.Mutex
	resp []CFNResponse
}

// CFNResponse is one PUT the endpoint received.
type CFNResponse struct {
	Path   string          `json:"path"`
	Status string          `json:"Status"` // SUCCESS or FAILED
	Reason string          `json:"Reason,omitempty"`
	Body   json.RawMessage `json:"body"` // the whole JSON document
}

// StartCloudFormation starts the endpoint on 127.0.0.1, on a free port.
func StartCloudFormation() (*CloudFormation, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	c := &CloudFormation{URL: "http://" + ln.Addr().String()}
	c.srv = &http.Server{Handler: http.HandlerFunc(c.serveHTTP), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = c.srv.Serve(ln) }()
	return c, nil
}

// Close stops the endpoint.
func (c *CloudFormation) Close() { _ = c.srv.Close() }

// Responses returns the PUTs received so far, in order.
func (c *CloudFormation) Responses() []CFNResponse {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]CFNResponse(nil), c.resp...)
}

func (c *CloudFormation) serveHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPut {
		http.Error(w, "CloudFormation's response URL takes a PUT", http.StatusMethodNotAllowed)
		return
	}
	raw, err := io.ReadAll(io.LimitReader(r.Body, 4096+1))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	// CloudFormation refuses a response over 4096 bytes.
	if len(raw) > 4096 {
		http.Error(w, "a custom resource response is at most 4096 bytes", http.StatusBadRequest)
		return
	}
	var doc struct {
		Status, Reason string
	}
	if err := json.Unmarshal(raw, &doc); err != nil || (doc.Status != "SUCCESS" && doc.Status != "FAILED") {
		http.Error(w, "not a custom resource response (JSON with Status SUCCESS or FAILED)", http.StatusBadRequest)
		return
	}
	c.mu.Lock()
	c.resp = append(c.resp, CFNResponse{Path: r.URL.Path, Status: doc.Status, Reason: doc.Reason, Body: raw})
	c.mu.Unlock()
	w.WriteHeader(http.StatusOK)
}

// Rewrite returns the custom resource event payload with its ResponseURL on this endpoint
// (path /<RequestId>); a payload without a ResponseURL is an error.
func (c *CloudFormation) Rewrite(payload []byte) ([]byte, error) {
	var ev map[string]json.RawMessage
	if err := json.Unmarshal(payload, &ev); err != nil {
		return nil, err
	}
	if _, ok := ev["ResponseURL"]; !ok {
		return nil, errors.New("lambdarun: the event has no ResponseURL (not a custom resource event)")
	}
	var id string
	_ = json.Unmarshal(ev["RequestId"], &id)
	u, _ := json.Marshal(c.URL + "/" + url.PathEscape(id))
	ev["ResponseURL"] = u
	return json.Marshal(ev)
}
