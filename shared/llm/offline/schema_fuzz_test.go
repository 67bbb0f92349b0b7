package offline_test

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/helixhq/helix/shared/llm/offline"
)

// randomSchema builds a satisfiable schema from the keywords Example supports. Ranges are wide
// enough to hold a value (and a multiple, when multipleOf is set); uniqueItems is only asked of
// items that can differ.
func randomSchema(r *rand.Rand, depth int) map[string]any {
	kinds := []string{"string", "integer", "number", "boolean", "enum", "const", "nullable", "array", "object"}
	if depth >= 3 {
		kinds = kinds[:7]
	}
	switch kinds[r.IntN(len(kinds))] {
	case "string":
		s := map[string]any{"type": "string"}
		switch r.IntN(4) {
		case 0:
			s["format"] = []string{"date-time", "date", "time", "email", "uri", "uuid", "hostname", "ipv4", "ipv6", "duration"}[r.IntN(10)]
		case 1:
			lo := r.IntN(30)
			s["minLength"] = lo
			if r.IntN(2) == 0 {
				s["maxLength"] = lo + r.IntN(10)
			}
		case 2:
			s["maxLength"] = r.IntN(12)
		}
		return s
	case "integer":
		s := map[string]any{"type": "integer"}
		mult := 1
		if r.IntN(3) == 0 {
			mult = 1 + r.IntN(7)
			s["multipleOf"] = mult
		}
		lo := r.IntN(200) - 100
		width := mult*4 + r.IntN(50)
		switch r.IntN(5) {
		case 0:
			s["minimum"] = lo
		case 1:
			s["maximum"] = lo
		case 2:
			s["minimum"], s["maximum"] = lo, lo+width
		case 3:
			s["exclusiveMinimum"], s["exclusiveMaximum"] = lo, lo+width
		}
		return s
	case "number":
		s := map[string]any{"type": "number"}
		mult := 0.0
		if r.IntN(3) == 0 {
			mult = []float64{0.5, 0.25, 0.1, 0.01, 2}[r.IntN(5)]
			s["multipleOf"] = mult
		}
		lo := float64(r.IntN(2000)-1000) / 10
		width := mult*4 + float64(1+r.IntN(100))/7
		switch r.IntN(5) {
		case 0:
			s["exclusiveMinimum"] = lo
		case 1:
			s["exclusiveMaximum"] = lo
		case 2:
			s["minimum"], s["maximum"] = lo, lo+width
		case 3:
			s["exclusiveMinimum"], s["maximum"] = lo, lo+width
		}
		return s
	case "boolean":
		return map[string]any{"type": "boolean"}
	case "enum":
		n := 1 + r.IntN(4)
		vals := make([]any, n)
		for i := range vals {
			if r.IntN(2) == 0 {
				vals[i] = fmt.Sprintf("choice-%d", i)
			} else {
				vals[i] = i * 10
			}
		}
		return map[string]any{"enum": vals}
	case "const":
		return map[string]any{"const": map[string]any{"k": r.IntN(9)}}
	case "nullable":
		return map[string]any{"anyOf": []any{randomSchema(r, depth+1), map[string]any{"type": "null"}}}
	case "array":
		item := randomSchema(r, depth+1)
		s := map[string]any{"type": "array", "items": item}
		lo := r.IntN(4)
		s["minItems"] = lo
		if r.IntN(2) == 0 {
			s["maxItems"] = lo + r.IntN(3)
		}
		if t, _ := item["type"].(string); (t == "string" && item["maxLength"] == nil) || (t == "integer" && item["maximum"] == nil && item["exclusiveMaximum"] == nil) {
			s["uniqueItems"] = r.IntN(2) == 0
		}
		return s
	default:
		props := map[string]any{}
		var required []any
		n := r.IntN(5)
		for i := range n {
			name := fmt.Sprintf("field_%d", i)
			props[name] = randomSchema(r, depth+1)
			if r.IntN(2) == 0 {
				required = append(required, name)
			}
		}
		s := map[string]any{"type": "object", "properties": props}
		if len(required) > 0 {
			s["required"] = required
		}
		if r.IntN(2) == 0 {
			s["additionalProperties"] = false
		} else if r.IntN(2) == 0 {
			s["minProperties"] = n + 1
		}
		return s
	}
}

// TestRandomSchemas is a seeded, reproducible sweep over generated schemas.
func TestRandomSchemas(t *testing.T) {
	for seed := range uint64(400) {
		r := rand.New(rand.NewPCG(seed, 0x4e11c5))
		schema, err := json.Marshal(randomSchema(r, 0))
		if err != nil {
			t.Fatal(err)
		}
		doc, err := offline.Example(schema)
		if err != nil {
			t.Errorf("seed %d: Example(%s): %v", seed, schema, err)
			continue
		}
		validate(t, string(schema), string(doc))
	}
}

// FuzzExample explores more seeds with `go test -fuzz FuzzExample ./shared/llm/offline`.
func FuzzExample(f *testing.F) {
	for _, s := range []uint64{1, 7, 42, 1 << 40} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, seed uint64) {
		r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
		schema, err := json.Marshal(randomSchema(r, 0))
		if err != nil {
			t.Fatal(err)
		}
		doc, err := offline.Example(schema)
		if err != nil {
			t.Fatalf("Example(%s): %v", schema, err)
		}
		validate(t, string(schema), string(doc))
	})
}
