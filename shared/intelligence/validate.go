package intelligence

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
)

// Input limits: generous for real use, small enough that one request cannot reserve a fortune.
const (
	maxShort = 300    // subjects, names, titles
	maxText  = 4_000  // notes, context, instructions
	maxBody  = 20_000 // an email body
	maxItems = 100
)

// text trims s and checks its length; required fields must not be empty.
func text(field string, s *string, max int, required bool) error {
	*s = strings.TrimSpace(*s)
	if *s == "" {
		if required {
			return missing(field)
		}
		return nil
	}
	if n := utf8.RuneCountInString(*s); n > max {
		return invalid(field, "must be at most %d characters, got %d", max, n)
	}
	return nil
}

func texts(field string, list []string, maxLen, maxCount int) error {
	if len(list) > maxCount {
		return invalid(field, "must have at most %d items", maxCount)
	}
	for i := range list {
		if err := text(field, &list[i], maxLen, true); err != nil {
			return err
		}
	}
	return nil
}

func oneOf(field string, s *string, def string, allowed ...string) error {
	if *s == "" {
		*s = def
		return nil
	}
	for _, a := range allowed {
		if *s == a {
			return nil
		}
	}
	return invalid(field, "must be one of %s", strings.Join(allowed, ", "))
}

// count fills a defaulted integer field (0 means "not given") and checks its range.
func count(field string, n *int, def, min, max int) error {
	if *n == 0 {
		*n = def
	}
	if *n < min || *n > max {
		return invalid(field, "must be between %d and %d", min, max)
	}
	return nil
}

func timestamp(field string, s string, required bool) (time.Time, error) {
	if s == "" {
		if required {
			return time.Time{}, missing(field)
		}
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, invalid(field, "must be an RFC 3339 timestamp such as 2026-11-23T09:00:00Z")
	}
	return t, nil
}

// numbered renders items as a numbered list for a prompt.
func numbered(items []string) string {
	var b strings.Builder
	for i, it := range items {
		fmt.Fprintf(&b, "\n  %d. %s", i+1, it)
	}
	return b.String()
}

// jsonList renders strings as a JSON array (for enums in schemas).
func jsonList(items []string) string {
	b, _ := json.Marshal(items)
	return string(b)
}
