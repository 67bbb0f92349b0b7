// Package ident checks identifiers that come from outside Helix (a path segment, a query
// parameter, a JSON field that names a user or an operation, a token's sub, an event's key)
// before they reach Postgres or a provider. Postgres refuses text with NUL bytes or invalid UTF-8
// with an error, and a btree index refuses keys of several kilobytes; both would surface as a 500.
// Each transport calls Check once, where the value enters, and answers a 4xx when it fails.
package ident

import (
	"errors"
	"fmt"
	"unicode"
	"unicode/utf8"

	"github.com/google/uuid"
)

// MaxLen is the longest identifier, in bytes: user ids are a JWT sub (Cognito and Auth0 use under
// 100 bytes), operation and model keys are short names.
const MaxLen = 256

// Check reports why s is not an acceptable identifier: empty, longer than MaxLen bytes, not valid
// UTF-8, or holding a control character (NUL included). The reason names no value, so it is safe
// to show and to log.
func Check(s string) error {
	switch {
	case s == "":
		return errors.New("must not be empty")
	case len(s) > MaxLen:
		return fmt.Errorf("must be at most %d bytes, got %d", MaxLen, len(s))
	case !utf8.ValidString(s):
		return errors.New("must be valid UTF-8")
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return errors.New("must not contain control characters")
		}
	}
	return nil
}

// IsUUID reports whether s is a UUID in its canonical 36-character form (8-4-4-4-12 hex digits).
// uuid.Validate alone also accepts forms Postgres's uuid type refuses (urn:uuid:…), which would
// turn an id from outside into a server error instead of a clean "no such thing".
func IsUUID(s string) bool {
	return len(s) == 36 && uuid.Validate(s) == nil
}
