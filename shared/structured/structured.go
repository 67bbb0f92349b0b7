// Package structured checks a model's structured answer: a JSON Schema compiled once, an answer
// stripped of the Markdown fence some models wrap JSON in, validated against the schema and
// decoded, with errors short and plain enough to show the model in a repair attempt. The
// intelligence operations and memory synthesis both use it.
package structured

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// Schema is a compiled JSON Schema.
type Schema struct {
	text   string
	schema *jsonschema.Schema
}

// Compile compiles a JSON Schema document (format assertions on).
func Compile(text string) (*Schema, error) {
	doc, err := jsonschema.UnmarshalJSON(strings.NewReader(text))
	if err != nil {
		return nil, err
	}
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	if err := c.AddResource("mem://schema.json", doc); err != nil {
		return nil, err
	}
	s, err := c.Compile("mem://schema.json")
	if err != nil {
		return nil, err
	}
	return &Schema{text: text, schema: s}, nil
}

// Text is the schema as written, for the prompt and the provider's structured-output option.
func (s *Schema) Text() string { return s.text }

// Decode checks a model's answer against the schema and decodes it into out. The error says what
// is wrong in a sentence or two.
func (s *Schema) Decode(answer string, out any) error {
	raw := []byte(StripFences(answer))
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		return errors.New("the answer is not JSON")
	}
	if err := s.schema.Validate(doc); err != nil {
		return errors.New(shortValidationError(err))
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return fmt.Errorf("the answer does not fit the result type: %v", err)
	}
	return nil
}

// StripFences removes a Markdown code fence around a JSON answer.
func StripFences(s string) string {
	t := strings.TrimSpace(s)
	if !strings.HasPrefix(t, "```") {
		return t
	}
	t = strings.TrimPrefix(t, "```")
	if nl := strings.IndexByte(t, '\n'); nl >= 0 && !strings.HasPrefix(strings.TrimSpace(t[:nl]), "{") {
		t = t[nl+1:] // a language tag such as "json"
	}
	return strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(t), "```"))
}

func shortValidationError(err error) string {
	var ve *jsonschema.ValidationError
	if errors.As(err, &ve) {
		// The basic output lists each failing keyword with its location; keep it brief.
		var parts []string
		for _, u := range ve.BasicOutput().Errors {
			if u.Error != nil {
				parts = append(parts, fmt.Sprintf("at %q: %s", u.InstanceLocation, u.Error.String()))
			}
			if len(parts) == 5 {
				break
			}
		}
		if len(parts) > 0 {
			return strings.Join(parts, "; ")
		}
	}
	return err.Error()
}
