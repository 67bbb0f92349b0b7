package httpapi_test

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/helixhq/helix/shared/fault"
	"github.com/helixhq/helix/shared/httpapi"
	"github.com/helixhq/helix/shared/money"
)

type payload struct {
	Name   string      `json:"name"`
	Count  int64       `json:"count"`
	Ratio  float64     `json:"ratio"`
	Tags   []string    `json:"tags"`
	Amount *money.Nano `json:"amount"`
	Nested struct {
		Flag bool `json:"flag"`
	} `json:"nested"`
}

// padded returns a valid JSON object of exactly n bytes.
func padded(n int) string {
	const head, tail = `{"name":"`, `"}`
	return head + strings.Repeat("a", n-len(head)-len(tail)) + tail
}

func TestDecodeJSON(t *testing.T) {
	tests := []struct {
		name          string
		body          string
		noLength      bool // send without Content-Length (chunked)
		wantStatus    int  // 0: success
		wantCode      fault.Code
		altCode       fault.Code // another acceptable code
		wantInMessage string
		check         func(*testing.T, payload)
	}{
		{name: "valid", body: `{"name":"x","count":3,"ratio":0.5,"tags":["a"],"amount":0.00027,"nested":{"flag":true}}`,
			check: func(t *testing.T, p payload) {
				if p.Name != "x" || p.Count != 3 || p.Ratio != 0.5 || len(p.Tags) != 1 || p.Amount == nil || *p.Amount != 270_000 || !p.Nested.Flag {
					t.Errorf("decoded %+v", p)
				}
			}},
		{name: "valid with surrounding whitespace", body: " \n\t{\"name\":\"x\"}\r\n ", check: func(t *testing.T, p payload) {
			if p.Name != "x" {
				t.Errorf("decoded %+v", p)
			}
		}},
		{name: "empty object", body: `{}`},
		{name: "valid without Content-Length", body: `{"count":1}`, noLength: true},
		{name: "exactly the limit", body: padded(httpapi.MaxBodyBytes)},
		{name: "exactly the limit, no Content-Length", body: padded(httpapi.MaxBodyBytes), noLength: true},

		{name: "empty body", body: ``, wantStatus: 400, wantCode: fault.EmptyBody},
		{name: "whitespace only", body: "  \n ", wantStatus: 400, wantCode: fault.EmptyBody},
		{name: "empty body, no Content-Length", body: ``, noLength: true, wantStatus: 400, wantCode: fault.EmptyBody},
		{name: "truncated object", body: `{"name":`, wantStatus: 400, wantCode: fault.MalformedJSON},
		{name: "unquoted key", body: `{name:"x"}`, wantStatus: 400, wantCode: fault.MalformedJSON},
		{name: "single quotes", body: `{'name':'x'}`, wantStatus: 400, wantCode: fault.MalformedJSON},
		{name: "trailing comma", body: `{"name":"x",}`, wantStatus: 400, wantCode: fault.MalformedJSON},
		{name: "not JSON at all", body: `name=x`, wantStatus: 400, wantCode: fault.MalformedJSON},
		{name: "unknown field", body: `{"nmae":"x"}`, wantStatus: 400, wantCode: fault.UnknownField, wantInMessage: `"nmae"`},
		{name: "unknown nested field", body: `{"nested":{"flag":true,"extra":1}}`, wantStatus: 400, wantCode: fault.UnknownField, wantInMessage: `"extra"`},
		{name: "wrong type string for integer", body: `{"count":"3"}`, wantStatus: 400, wantCode: fault.InvalidType, wantInMessage: `"count"`},
		{name: "integer field gets fraction", body: `{"count":1.5}`, wantStatus: 400, wantCode: fault.InvalidType, wantInMessage: `"count"`},
		{name: "integer overflow", body: `{"count":1e30}`, wantStatus: 400, wantCode: fault.InvalidType, wantInMessage: `"count"`},
		{name: "wrong type number for string", body: `{"name":5}`, wantStatus: 400, wantCode: fault.InvalidType, wantInMessage: `"name"`},
		{name: "wrong type object for array", body: `{"tags":{}}`, wantStatus: 400, wantCode: fault.InvalidType, wantInMessage: `"tags"`},
		{name: "wrong nested type", body: `{"nested":{"flag":"yes"}}`, wantStatus: 400, wantCode: fault.InvalidType, wantInMessage: "flag"},
		{name: "string for a money amount", body: `{"amount":"5"}`, wantStatus: 400, wantCode: fault.InvalidField, altCode: fault.InvalidType, wantInMessage: "amount"},
		{name: "null for a money amount", body: `{"amount":null}`, check: func(t *testing.T, p payload) {
			if p.Amount != nil {
				t.Errorf("null amount decoded to %v", *p.Amount)
			}
		}},
		{name: "negative amount", body: `{"amount":-1}`, wantStatus: 400, wantCode: fault.InvalidField},
		{name: "amount with ten decimals", body: `{"amount":0.0000000001}`, wantStatus: 400, wantCode: fault.InvalidField},
		{name: "invalid UTF-8 in a string", body: "{\"name\":\"a\xffb\"}", wantStatus: 400, wantCode: fault.MalformedJSON, wantInMessage: "UTF-8"},
		{name: "invalid UTF-8 outside strings", body: "{\"name\":\"x\"}\xfe", wantStatus: 400, wantCode: fault.MalformedJSON},
		{name: "trailing object", body: `{"name":"x"}{"name":"y"}`, wantStatus: 400, wantCode: fault.MalformedJSON},
		{name: "trailing garbage", body: `{"name":"x"} x`, wantStatus: 400, wantCode: fault.MalformedJSON},
		{name: "trailing bracket", body: `{"name":"x"}]`, wantStatus: 400, wantCode: fault.MalformedJSON},
		{name: "array instead of object", body: `[{"name":"x"}]`, wantStatus: 400, wantCode: fault.InvalidType, wantInMessage: "object"},
		{name: "string instead of object", body: `"x"`, wantStatus: 400, wantCode: fault.InvalidType},
		{name: "number instead of object", body: `42`, wantStatus: 400, wantCode: fault.InvalidType},
		{name: "one byte over the limit", body: padded(httpapi.MaxBodyBytes + 1), wantStatus: 413, wantCode: fault.BodyTooLarge},
		{name: "one byte over the limit, no Content-Length", body: padded(httpapi.MaxBodyBytes + 1), noLength: true, wantStatus: 413, wantCode: fault.BodyTooLarge},
		{name: "far over the limit, no Content-Length", body: padded(1 << 20), noLength: true, wantStatus: 413, wantCode: fault.BodyTooLarge},
		{name: "over the limit and malformed, no Content-Length", body: `{"name":"` + strings.Repeat("a", httpapi.MaxBodyBytes+10), noLength: true, wantStatus: 413, wantCode: fault.BodyTooLarge},
		{name: "over the limit and malformed", body: `{"name":"` + strings.Repeat("a", httpapi.MaxBodyBytes+10), wantStatus: 413, wantCode: fault.BodyTooLarge},
		{name: "valid object then trailing data over the limit", body: `{"name":"x"} ` + strings.Repeat("1", httpapi.MaxBodyBytes), noLength: true, wantStatus: 413, wantCode: fault.BodyTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodPost, "/x", strings.NewReader(tt.body))
			if tt.noLength {
				r.ContentLength = -1
				r.Body = io.NopCloser(onlyReader{strings.NewReader(tt.body)})
			}
			var p payload
			err := httpapi.DecodeJSON(r, &p)
			if tt.wantStatus == 0 {
				if err != nil {
					t.Fatalf("DecodeJSON = %v, want success", err)
				}
				if tt.check != nil {
					tt.check(t, p)
				}
				return
			}
			var he *fault.Error
			if !errors.As(err, &he) {
				t.Fatalf("DecodeJSON = %v (%T), want *fault.Error", err, err)
			}
			if httpapi.StatusOf(he.Code) != tt.wantStatus || (he.Code != tt.wantCode && (tt.altCode == "" || he.Code != tt.altCode)) {
				t.Fatalf("DecodeJSON = %d %s (%q), want %d %s", httpapi.StatusOf(he.Code), he.Code, he.Message, tt.wantStatus, tt.wantCode)
			}
			if !strings.Contains(he.Message, tt.wantInMessage) {
				t.Errorf("message %q does not mention %q", he.Message, tt.wantInMessage)
			}
			if he.Error() != string(he.Code)+": "+he.Message {
				t.Errorf("Error() = %q", he.Error())
			}
		})
	}
}

// onlyReader hides everything but Read, so nothing can learn the body's length.
type onlyReader struct{ r io.Reader }

func (o onlyReader) Read(b []byte) (int, error) { return o.r.Read(b) }

// A body over the limit is rejected without reading it when Content-Length announces it.
func TestDecodeJSONRejectsByContentLengthWithoutReading(t *testing.T) {
	r := httptest.NewRequest(http.MethodPost, "/x", nil)
	r.ContentLength = httpapi.MaxBodyBytes + 1
	r.Body = io.NopCloser(readFunc(func([]byte) (int, error) {
		t.Fatal("body was read although Content-Length exceeds the limit")
		return 0, io.EOF
	}))
	var p payload
	err := httpapi.DecodeJSON(r, &p)
	var he *fault.Error
	if !errors.As(err, &he) || httpapi.StatusOf(he.Code) != http.StatusRequestEntityTooLarge {
		t.Fatalf("DecodeJSON = %v, want 413", err)
	}
}

type readFunc func([]byte) (int, error)

func (f readFunc) Read(b []byte) (int, error) { return f(b) }

// The body limit holds however the bytes are arranged: a small object followed by more than
// 64 KiB of whitespace is a body over the limit, even though the exhausted LimitedReader's EOF
// looks like the end of a well-formed body.
func TestDecodeJSONWhitespacePaddingOverLimit(t *testing.T) {
	body := `{"name":"x"}` + strings.Repeat(" ", 100<<10)
	var p payload
	err := httpapi.DecodeJSONBytes(onlyReader{strings.NewReader(body)}, &p)
	var he *fault.Error
	if !errors.As(err, &he) || httpapi.StatusOf(he.Code) != http.StatusRequestEntityTooLarge {
		t.Fatalf("DecodeJSONBytes(%d-byte body) = %v, want 413 body_too_large", len(body), err)
	}
}

func TestDecodeJSONBytesIntoNonStruct(t *testing.T) {
	var m map[string]int
	if err := httpapi.DecodeJSONBytes(bytes.NewReader([]byte(`{"a":1}`)), &m); err != nil || m["a"] != 1 {
		t.Fatalf("map decode = %v, %v", m, err)
	}
	var n int
	err := httpapi.DecodeJSONBytes(bytes.NewReader([]byte(`{"a":1}`)), &n)
	var he *fault.Error
	if !errors.As(err, &he) || httpapi.StatusOf(he.Code) != 400 || he.Code != fault.InvalidType {
		t.Fatalf("object into int = %v, want 400 invalid_type", err)
	}
}

// A money amount of the wrong JSON type must be described as a number (12.5 is a valid
// amount), not as an integer.
func TestDecodeJSONMoneyTypeErrorSaysNumber(t *testing.T) {
	for _, body := range []string{`{"amount":"5"}`, `{"amount":true}`, `{"amount":[1]}`, `{"amount":{}}`} {
		var p payload
		err := httpapi.DecodeJSONBytes(strings.NewReader(body), &p)
		var he *fault.Error
		if !errors.As(err, &he) || httpapi.StatusOf(he.Code) != 400 {
			t.Fatalf("%s: %v, want a 400", body, err)
		}
		if !strings.Contains(he.Message, "number") || strings.Contains(he.Message, "integer") {
			t.Errorf("%s: message %q should ask for a number, not an integer", body, he.Message)
		}
	}
}
