package structured_test

import (
	"strings"
	"testing"

	"github.com/helixhq/helix/shared/structured"
)

const schema = `{"type":"object","required":["n"],"properties":{"n":{"type":"integer","minimum":1}},"additionalProperties":false}`

func TestDecode(t *testing.T) {
	s, err := structured.Compile(schema)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, answer string
		want         int
		errHas       string
	}{
		{"plain", `{"n":3}`, 3, ""},
		{"fenced with a tag", "```json\n{\"n\":4}\n```", 4, ""},
		{"fenced without a tag", "```\n{\"n\":5}\n```", 5, ""},
		{"not JSON", `three`, 0, "not JSON"},
		{"schema violation", `{"n":0}`, 0, "minimum"},
		{"extra field", `{"n":1,"x":2}`, 0, "additional"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out struct{ N int }
			err := s.Decode(tt.answer, &out)
			if tt.errHas != "" {
				if err == nil || !strings.Contains(err.Error(), tt.errHas) {
					t.Fatalf("err = %v, want one mentioning %q", err, tt.errHas)
				}
				return
			}
			if err != nil || out.N != tt.want {
				t.Fatalf("Decode = %+v, %v", out, err)
			}
		})
	}
	if _, err := structured.Compile(`{"type":`); err == nil {
		t.Error("a broken schema compiled")
	}
}
