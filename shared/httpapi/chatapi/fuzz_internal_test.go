package chatapi

import (
	"encoding/base64"
	"errors"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/helixhq/helix/shared/chat"
	"github.com/helixhq/helix/shared/fault"
)

// wantInvalidField checks err is the 400 a bad parameter gets.
func wantInvalidField(t *testing.T, input string, err error) {
	t.Helper()
	var f *fault.Error
	if !errors.As(err, &f) || f.Code != fault.InvalidField || f.Message == "" {
		t.Fatalf("input %q: error %v (%T), want an invalid_field fault with a message", input, err, err)
	}
}

// FuzzDecodeCursor: any cursor text decodes to an invalid_field fault, or to a position whose id
// is a UUID and which encodes to a cursor that decodes to the same position.
func FuzzDecodeCursor(f *testing.F) {
	at := time.Date(2026, 5, 1, 10, 0, 0, 123456000, time.UTC)
	id := "3f8a2b1c-5d6e-4f70-8a9b-0c1d2e3f4a5b"
	for _, s := range []string{
		encodeCursor(chat.Cursor{LastActivityAt: at, ID: id}),
		encodeCursor(chat.Cursor{LastActivityAt: time.Time{}, ID: id}),
		base64.RawURLEncoding.EncodeToString([]byte("2026-05-01T12:00:00+02:00|" + id)),
		base64.RawURLEncoding.EncodeToString([]byte("2026-05-01T10:00:00Z|" + strings.ToUpper(id))),
		base64.RawURLEncoding.EncodeToString([]byte("2026-05-01T10:00:00Z|{" + id + "}")),
		base64.RawURLEncoding.EncodeToString([]byte("2026-05-01T10:00:00Z|urn:uuid:" + id)),
		base64.RawURLEncoding.EncodeToString([]byte("2026-05-01T10:00:00Z|" + id + "|extra")),
		base64.RawURLEncoding.EncodeToString([]byte("2026-05-01T10:00:00Z")),
		base64.RawURLEncoding.EncodeToString([]byte("|")),
		base64.StdEncoding.EncodeToString([]byte("2026-05-01T10:00:00Z|" + id)),
		"", "!!!", "AAAA", "\x00", "\xff",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := decodeCursor(s)
		if err != nil {
			wantInvalidField(t, s, err)
			return
		}
		if uuid.Validate(c.ID) != nil {
			t.Fatalf("cursor %q decoded to id %q", s, c.ID)
		}
		back, err := decodeCursor(encodeCursor(c))
		if err != nil || !back.LastActivityAt.Equal(c.LastActivityAt) || back.ID != c.ID {
			t.Fatalf("cursor %q: %+v encodes to one that decodes to %+v, %v", s, c, back, err)
		}
	})
}

// FuzzCheckTitle: any title is refused as invalid_field, or accepted trimmed, NUL-free and at
// most 200 characters; a valid title's trimmed form is accepted unchanged.
func FuzzCheckTitle(f *testing.F) {
	for _, s := range []string{"Trip planning", "  padded\t\n", "", " ", "a\x00b", strings.Repeat("é", 200),
		strings.Repeat("é", 201), " " + strings.Repeat("x", 200) + " ", "\xff", "\u2028line\u00a0"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		out, err := checkTitle(in)
		if err != nil {
			wantInvalidField(t, in, err)
			return
		}
		if out != strings.TrimSpace(in) || strings.ContainsRune(out, 0) || utf8.RuneCountInString(out) > maxTitle {
			t.Fatalf("title %q accepted as %q", in, out)
		}
		if again, err := checkTitle(out); err != nil || again != out {
			t.Fatalf("accepted title %q checks again as %q, %v", out, again, err)
		}
	})
}

// FuzzQueryParams: any value of an integer or boolean query parameter is refused as
// invalid_field, or read as a value in range (the default when absent or empty).
func FuzzQueryParams(f *testing.F) {
	for _, s := range []string{"", "0", "1", "20", "100", "101", "-1", "+5", "05", "1e2", "0x10", "1.0", " 1", "true",
		"false", "T", "f", "yes", "9223372036854775807", "9223372036854775808", "%00", "\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		r := httptest.NewRequest("GET", "/chat/sessions", nil)
		r.URL.RawQuery = "limit=" + url.QueryEscape(v) + "&include_archived=" + url.QueryEscape(v)
		n, err := intParam(r, "limit", defaultPage, 1, maxPage)
		switch {
		case err != nil:
			wantInvalidField(t, v, err)
		case v == "" && n != defaultPage:
			t.Fatalf("absent limit read as %d, want %d", n, defaultPage)
		case n < 1 || n > maxPage:
			t.Fatalf("limit %q read as %d", v, n)
		}
		b, err := boolParam(r, "include_archived")
		switch {
		case err != nil:
			wantInvalidField(t, v, err)
		case v == "" && b:
			t.Fatal("absent include_archived read as true")
		}
	})
}
