package ident_test

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/helixhq/helix/shared/ident"
)

func TestCheck(t *testing.T) {
	tests := []struct {
		name string
		in   string
		ok   bool
	}{
		{"plain", "alice", true},
		{"uuid", "6f1c2f0e-8d1c-4c1e-9a3b-0d7c1c9f2a11", true},
		{"cognito sub with colon and pipe", "auth0|64f0c0ffee:x", true},
		{"unicode", "zoë-用户", true},
		{"longest", strings.Repeat("a", ident.MaxLen), true},
		{"empty", "", false},
		{"one byte too long", strings.Repeat("a", ident.MaxLen+1), false},
		{"long in bytes, short in runes", strings.Repeat("用", ident.MaxLen/3+1), false},
		{"NUL", "ali\x00ce", false},
		{"invalid UTF-8", "ali\xffce", false},
		{"truncated UTF-8", "ali\xe7\x94", false},
		{"newline", "alice\n", false},
		{"tab", "a\tb", false},
		{"DEL", "a\x7fb", false},
		{"C1 control", "a\u0085b", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ident.Check(tt.in)
			if (err == nil) != tt.ok {
				t.Fatalf("Check(%q) = %v, want ok=%v", tt.in, err, tt.ok)
			}
			if err != nil && strings.Contains(err.Error(), tt.in) && tt.in != "" {
				t.Errorf("the reason %q repeats the value", err)
			}
		})
	}
}

func FuzzCheck(f *testing.F) {
	for _, s := range []string{"alice", "", "\x00", "\xff", strings.Repeat("a", 300)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if ident.Check(s) != nil {
			return
		}
		// Whatever passes is storable in a Postgres text column and fits an index.
		if len(s) == 0 || len(s) > ident.MaxLen || strings.ContainsRune(s, 0) || !utf8.ValidString(s) {
			t.Fatalf("Check accepted %q", s)
		}
	})
}
