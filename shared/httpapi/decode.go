package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"unicode/utf8"

	"github.com/helixhq/helix/shared/fault"
)

// MaxBodyBytes is the largest request body Helix reads; larger bodies get 413.
const MaxBodyBytes = 64 << 10

// DecodeJSON reads exactly one JSON value from the request body into dst, rejecting unknown
// fields (a typo must not silently change meaning), wrong types, trailing data and bodies over
// MaxBodyBytes. Every failure is a *fault.Error with a 4xx code.
func DecodeJSON(r *http.Request, dst any) error {
	if r.ContentLength > MaxBodyBytes {
		return tooLarge()
	}
	return DecodeJSONBytes(r.Body, dst)
}

// DecodeJSONBytes is DecodeJSON over any reader (used by fuzz tests and non-HTTP transports).
// The body must be UTF-8, as JSON is (RFC 8259): encoding/json would silently turn invalid bytes
// into U+FFFD, so "ab\xffcd" would name another user than the client meant.
func DecodeJSONBytes(body io.Reader, dst any) error {
	raw, err := io.ReadAll(io.LimitReader(body, MaxBodyBytes+1))
	if err != nil {
		return fault.Wrap(fault.MalformedJSON, err, "the request body could not be read")
	}
	if len(raw) > MaxBodyBytes {
		return tooLarge()
	}
	if !utf8.Valid(raw) {
		return fault.New(fault.MalformedJSON, "request body is not valid UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return decodeError(err)
	}
	// Exactly one value: anything but whitespace after it is a malformed body.
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return fault.Errorf(fault.MalformedJSON, "request body must hold a single JSON object")
	}
	return nil
}

func tooLarge() *fault.Error {
	return fault.Errorf(fault.BodyTooLarge, "request body exceeds %d bytes", MaxBodyBytes)
}

func decodeError(err error) *fault.Error {
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	var fe *fault.Error
	switch {
	case errors.As(err, &fe):
		return fe
	case errors.Is(err, io.EOF):
		return fault.Errorf(fault.EmptyBody, "request body is empty; send a JSON object")
	case errors.Is(err, io.ErrUnexpectedEOF), errors.As(err, &syntax):
		return fault.Errorf(fault.MalformedJSON, "request body is not valid JSON")
	case errors.As(err, &typ):
		if typ.Field == "" {
			return fault.Errorf(fault.InvalidType, "request body must be a JSON object")
		}
		return fault.Errorf(fault.InvalidType, "field %q must be of type %s", typ.Field, jsonKind(typ.Type.Kind().String()))
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return fault.Errorf(fault.UnknownField, "unknown field %s", strings.TrimPrefix(err.Error(), "json: unknown field "))
	}
	// A field's own UnmarshalJSON rejected its value.
	return fault.Errorf(fault.InvalidField, "%s", strings.TrimPrefix(err.Error(), "json: "))
}

func jsonKind(goKind string) string {
	switch goKind {
	case "int", "int8", "int16", "int32", "int64", "uint", "uint8", "uint16", "uint32", "uint64":
		return "integer"
	case "float32", "float64":
		return "number"
	case "bool":
		return "boolean"
	case "slice", "array":
		return "array"
	case "map", "struct":
		return "object"
	}
	return goKind
}
