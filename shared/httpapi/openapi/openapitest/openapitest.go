// Package openapitest checks requests and responses against Helix's OpenAPI document
// (package openapi), for tests: the dev server's, the sample events', the README's.
//
// It uses github.com/pb33f/libopenapi and libopenapi-validator because they are built for
// OpenAPI 3.1: ValidateDocument checks the document against the specification's own 3.1 schema
// (embedded in the library), and schemas are compiled as JSON Schema draft 2020-12, the dialect
// of 3.1 (type arrays such as [string, "null"], const, unevaluatedProperties, if/then), with
// format assertions on. kin-openapi v0.153.0 also reads 3.1 and validates with 2020-12 semantics
// when asked, but checks a document with its own Go rules rather than the 3.1 schema; the
// validators here answer both halves of the question (is the document 3.1, do these requests
// and responses fit it) with one library.
//
// It is imported by _test files only: nothing in a deployed function depends on it.
package openapitest

import (
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/pb33f/libopenapi"
	validator "github.com/pb33f/libopenapi-validator"
	"github.com/pb33f/libopenapi-validator/config"
	verrors "github.com/pb33f/libopenapi-validator/errors"

	"github.com/helixhq/helix/shared/httpapi/openapi"
)

// Operation is one path and method of the document.
type Operation struct {
	Method string // GET, POST, ...
	Path   string // the path template, /chat/sessions/{id}
	Public bool   // security: [] (no credentials)
	// Admin is x-helix-role: admin.
	Admin bool
}

// Pattern is the operation as a ServeMux pattern ("GET /chat/sessions/{id}").
func (o Operation) Pattern() string { return o.Method + " " + o.Path }

// Spec is the parsed document and its validator.
type Spec struct {
	Doc libopenapi.Document
	mu  sync.Mutex
	req validator.Validator // strict
	res validator.Validator
	ops []Operation
}

// Load parses the document and builds its validator; it fails t when either fails.
func Load(t testing.TB) *Spec {
	t.Helper()
	doc, err := libopenapi.NewDocument(openapi.YAML())
	if err != nil {
		t.Fatalf("openapi.yaml does not parse: %v", err)
	}
	// Requests are checked in strict mode, which also refuses query parameters and headers the
	// document does not declare. Strict mode treats every object as closed, also where a schema
	// leaves it open (additionalProperties with a schema, or any JSON), so responses are checked
	// without it: their schemas close what is closed with additionalProperties: false.
	reqV, errs := validator.NewValidator(doc, config.WithFormatAssertions(), config.WithStrictMode())
	if len(errs) > 0 {
		t.Fatalf("openapi.yaml does not build a validator: %v", errs)
	}
	resV, errs := validator.NewValidator(doc, config.WithFormatAssertions())
	if len(errs) > 0 {
		t.Fatalf("openapi.yaml does not build a validator: %v", errs)
	}
	model, err := doc.BuildV3Model()
	if err != nil {
		t.Fatalf("openapi.yaml does not build a model: %v", err)
	}
	s := &Spec{Doc: doc, req: reqV, res: resV}
	for path, item := range model.Model.Paths.PathItems.FromOldest() {
		for method, op := range item.GetOperations().FromOldest() {
			o := Operation{Method: strings.ToUpper(method), Path: path}
			o.Public = op.Security != nil && len(op.Security) == 0
			if ext := op.Extensions; ext != nil {
				if n, ok := ext.Get("x-helix-role"); ok && n.Value == "admin" {
					o.Admin = true
				}
			}
			s.ops = append(s.ops, o)
		}
	}
	sort.Slice(s.ops, func(i, j int) bool { return s.ops[i].Pattern() < s.ops[j].Pattern() })
	return s
}

// Operations lists the document's operations, sorted by pattern.
func (s *Spec) Operations() []Operation { return slices.Clone(s.ops) }

// DocumentErrors checks the document against the OpenAPI specification's own schema.
func (s *Spec) DocumentErrors() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, errs := s.res.ValidateDocument()
	return describe(errs)
}

// RequestErrors checks a request (path, query, headers, body) against the document. The
// request's body is read and replaced, so it can still be sent.
func (s *Spec) RequestErrors(r *http.Request) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, errs := s.req.ValidateHttpRequestSync(r)
	return describe(errs)
}

// ResponseErrors checks a response (status, headers, body) to r against the document. The
// response's body is read and replaced.
func (s *Spec) ResponseErrors(r *http.Request, res *http.Response) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, errs := s.res.ValidateHttpResponse(r, res)
	return describe(errs)
}

func describe(errs []*verrors.ValidationError) []string {
	var out []string
	for _, e := range errs {
		msg := e.Message
		if e.Reason != "" {
			msg += ": " + e.Reason
		}
		for _, f := range e.SchemaValidationErrors {
			msg += fmt.Sprintf("\n    at %s (%s): %s", f.FieldPath, f.KeywordLocation, f.Reason)
		}
		out = append(out, msg)
	}
	return out
}
