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

func TestIsUUID(t *testing.T) {
	tests := []struct {
		in   string
		want bool
	}{
		{"3f8a2b1c-5d6e-4f70-8a9b-0c1d2e3f4a5b", true},
		{"3F8A2B1C-5D6E-4F70-8A9B-0C1D2E3F4A5B", true},
		{"urn:uuid:3f8a2b1c-5d6e-4f70-8a9b-0c1d2e3f4a5b", false}, // Postgres's uuid refuses it
		{"{3f8a2b1c-5d6e-4f70-8a9b-0c1d2e3f4a5b}", false},
		{"3f8a2b1c5d6e4f708a9b0c1d2e3f4a5b", false},
		{"3f8a2b1c-5d6e-4f70-8a9b-0c1d2e3f4a5", false},
		{"3f8a2b1c-5d6e-4f70-8a9b-0c1d2e3f4a5g", false},
		{"", false},
	}
	for _, tt := range tests {
		if got := ident.IsUUID(tt.in); got != tt.want {
			t.Errorf("IsUUID(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}
