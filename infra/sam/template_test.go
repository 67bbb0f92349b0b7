// Package sam checks template.yaml, the SAM template at the repository root; `make
// template-check` runs it. The template must match the AWS SAM project's JSON schema (a copy
// sits beside this file, see SCHEMA.md), and its HTTP API must allow the same CORS methods and
// headers as shared/httpapi. The package holds tests only.
package sam

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"os"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dlclark/regexp2"
	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/santhosh-tekuri/jsonschema/v6/kind"
)

const (
	templateFile = "../../template.yaml"
	schemaFile   = "sam.schema.json"
	schemaNotes  = "SCHEMA.md"
)

// samSchema compiles the schema once per test binary. The compiler's default loader reads
// local files only, so validation never reaches the network.
var samSchema = sync.OnceValues(func() (*jsonschema.Schema, error) {
	c := jsonschema.NewCompiler()
	c.UseRegexpEngine(compileECMAScript)
	return c.Compile(schemaFile)
})

// JSON Schema patterns are ECMAScript regular expressions, and the SAM schema uses lookaheads
// (a resource Type "^(?!AWS::Serverless::).+$"), which Go's regexp package rejects.
func compileECMAScript(expr string) (jsonschema.Regexp, error) {
	re, err := regexp2.Compile(expr, regexp2.ECMAScript)
	if err != nil {
		return nil, err
	}
	re.MatchTimeout = 10 * time.Second
	return ecmaRegexp{re}, nil
}

type ecmaRegexp struct{ re *regexp2.Regexp }

func (e ecmaRegexp) String() string { return e.re.String() }

func (e ecmaRegexp) MatchString(s string) bool {
	ok, err := e.re.MatchString(s)
	if err != nil { // only a timeout: neither a match nor a mismatch can be claimed
		panic(fmt.Sprintf("schema pattern %q on %q: %v", e.re.String(), s, err))
	}
	return ok
}

// loadTemplate reads template.yaml and converts it with templateJSON; each call returns a
// fresh copy the caller may change.
func loadTemplate(t *testing.T) map[string]any {
	t.Helper()
	src, err := os.ReadFile(templateFile)
	if err != nil {
		t.Fatal(err)
	}
	v, err := templateJSON(src)
	if err != nil {
		t.Fatalf("%s: %v", templateFile, err)
	}
	m, ok := v.(map[string]any)
	if !ok {
		t.Fatalf("%s: the top level is a %T, not a mapping", templateFile, v)
	}
	return m
}

func validate(t *testing.T, tmpl any) error {
	t.Helper()
	sch, err := samSchema()
	if err != nil {
		t.Fatalf("compiling %s: %v", schemaFile, err)
	}
	return sch.Validate(tmpl)
}

func TestTemplateMatchesSAMSchema(t *testing.T) {
	if err := validate(t, loadTemplate(t)); err != nil {
		t.Fatalf("%s does not match the SAM schema:\n%v", templateFile, err)
	}
}

// TestSchemaRejectsBrokenTemplate proves the check above can fail: each case breaks one thing
// in a copy of the real template, and the validator must reject it, for that reason.
func TestSchemaRejectsBrokenTemplate(t *testing.T) {
	cases := []struct {
		name string
		// breakIt changes tmpl and returns where (a JSON pointer into the template) the schema
		// must report which error.
		breakIt func(t *testing.T, tmpl map[string]any) (at string, want jsonschema.ErrorKind)
	}{
		{"unknown Function property", func(t *testing.T, tmpl map[string]any) (string, jsonschema.ErrorKind) {
			name, props := firstResource(t, tmpl, "AWS::Serverless::Function")
			props["CodeUrl"] = "." // a typo of CodeUri
			return pointer("Resources", name, "Properties"), &kind.AdditionalProperties{Properties: []string{"CodeUrl"}}
		}},
		{"wrong type in an HttpApi event", func(t *testing.T, tmpl map[string]any) (string, jsonschema.ErrorKind) {
			name, event, eprops := firstFunctionEvent(t, tmpl, "HttpApi")
			eprops["TimeoutInMillis"] = "30 seconds" // an integer (or an intrinsic)
			return pointer("Resources", name, "Properties", "Events", event, "Properties", "TimeoutInMillis"),
				&kind.Type{Got: "string"}
		}},
		{"unknown HttpApi property", func(t *testing.T, tmpl map[string]any) (string, jsonschema.ErrorKind) {
			name, props := firstResource(t, tmpl, "AWS::Serverless::HttpApi")
			props["CorsConfig"] = true // CorsConfiguration
			return pointer("Resources", name, "Properties"), &kind.AdditionalProperties{Properties: []string{"CorsConfig"}}
		}},
		{"unknown Globals.Function property", func(t *testing.T, tmpl map[string]any) (string, jsonschema.ErrorKind) {
			mapAt(t, tmpl, "Globals", "Function")["Runtim"] = "provided.al2023"
			return pointer("Globals", "Function"), &kind.AdditionalProperties{Properties: []string{"Runtim"}}
		}},
		{"no Resources", func(t *testing.T, tmpl map[string]any) (string, jsonschema.ErrorKind) {
			delete(tmpl, "Resources")
			return "", &kind.Required{Missing: []string{"Resources"}}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tmpl := loadTemplate(t)
			at, want := tc.breakIt(t, tmpl)
			err := validate(t, tmpl)
			if err == nil {
				t.Fatal("the broken template matches the SAM schema")
			}
			var ve *jsonschema.ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("not a validation error: %v", err)
			}
			if !reports(ve, at, want) {
				t.Errorf("rejected, but without %#v at %q:\n%v", want, at, err)
			}
		})
	}
}

// reports tells whether e, or one of its causes at any depth, is an error like want at the
// instance location at. (The validator's flat "basic" output drops some causes: walk the tree.)
func reports(e *jsonschema.ValidationError, at string, want jsonschema.ErrorKind) bool {
	if pointer(e.InstanceLocation...) == at && sameKind(e.ErrorKind, want) {
		return true
	}
	for _, c := range e.Causes {
		if reports(c, at, want) {
			return true
		}
	}
	return false
}

// sameKind compares the parts of an error kind the cases above set.
func sameKind(got, want jsonschema.ErrorKind) bool {
	switch w := want.(type) {
	case *kind.AdditionalProperties:
		g, ok := got.(*kind.AdditionalProperties)
		return ok && containsAll(g.Properties, w.Properties)
	case *kind.Required:
		g, ok := got.(*kind.Required)
		return ok && containsAll(g.Missing, w.Missing)
	case *kind.Type:
		g, ok := got.(*kind.Type)
		return ok && g.Got == w.Got
	}
	panic(fmt.Sprintf("sameKind: %T is not handled", want))
}

func containsAll(list, want []string) bool {
	for _, w := range want {
		if !slices.Contains(list, w) {
			return false
		}
	}
	return true
}

// TestShortFormsExpand checks templateJSON's conversion of short-form intrinsics, which the
// schema test relies on.
func TestShortFormsExpand(t *testing.T) {
	cases := []struct{ yaml, json string }{
		{`a: !Ref Stage`, `{"a":{"Ref":"Stage"}}`},
		{`a: !Ref 5`, `{"a":{"Ref":"5"}}`},
		{`a: !Sub arn:${AWS::Partition}:x`, `{"a":{"Fn::Sub":"arn:${AWS::Partition}:x"}}`},
		{`a: !Sub ["${A}-x", {A: !Ref B}]`, `{"a":{"Fn::Sub":["${A}-x",{"A":{"Ref":"B"}}]}}`},
		{`a: !GetAtt Log.Arn`, `{"a":{"Fn::GetAtt":["Log","Arn"]}}`},
		{`a: !GetAtt Db.Endpoint.Address`, `{"a":{"Fn::GetAtt":["Db","Endpoint.Address"]}}`},
		{`a: !GetAtt [Log, Arn]`, `{"a":{"Fn::GetAtt":["Log","Arn"]}}`},
		{`a: !Not [!Equals [!Join [",", !Ref S], ""]]`,
			`{"a":{"Fn::Not":[{"Fn::Equals":[{"Fn::Join":[",",{"Ref":"S"}]},""]}]}}`},
		{"a: !If\n  - C\n  - {B: !Ref X}\n  - !Ref AWS::NoValue",
			`{"a":{"Fn::If":["C",{"B":{"Ref":"X"}},{"Ref":"AWS::NoValue"}]}}`},
		{`a: !Condition C`, `{"a":{"Condition":"C"}}`},
		{`a: !Transform {Name: M, Parameters: {p: !Ref P}}`,
			`{"a":{"Fn::Transform":{"Name":"M","Parameters":{"p":{"Ref":"P"}}}}}`},
		{"a: &x !Ref Stage\nb: *x", `{"a":{"Ref":"Stage"},"b":{"Ref":"Stage"}}`},
		{`a: [!Select [0, !GetAZs ""], !Base64 x]`, `{"a":[{"Fn::Select":["0",{"Fn::GetAZs":""}]},{"Fn::Base64":"x"}]}`},
		{"a: !!str 5\nb: 5\nc: \"5\"", `{"a":"5","b":5,"c":"5"}`},
	}
	for _, tc := range cases {
		got, err := templateJSON([]byte(tc.yaml))
		if err != nil {
			t.Errorf("%q: %v", tc.yaml, err)
			continue
		}
		want, err := jsonschema.UnmarshalJSON(strings.NewReader(tc.json))
		if err != nil {
			t.Fatal(err)
		}
		if g, w := fmt.Sprint(got), fmt.Sprint(want); g != w {
			t.Errorf("%q:\n got %s\nwant %s", tc.yaml, g, w)
		}
	}
}

func TestUnknownShortFormRejected(t *testing.T) {
	// yaml.v3 alone would drop an unknown tag and keep "Stage" as a plain string, which the
	// schema could accept.
	for _, src := range []string{"a: !Reff Stage", "a: [!Sub x, !GetAttr A.B]", "a: {b: !If [C, !Sub x, !Refs X]}"} {
		if v, err := templateJSON([]byte(src)); err == nil {
			t.Errorf("%q: accepted as %v", src, v)
		}
	}
}

// TestSchemaChecksumRecorded keeps SCHEMA.md's SHA-256 in step with the copy of the schema.
func TestSchemaChecksumRecorded(t *testing.T) {
	schema, err := os.ReadFile(schemaFile)
	if err != nil {
		t.Fatal(err)
	}
	notes, err := os.ReadFile(schemaNotes)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(schema)
	recorded := regexp.MustCompile(`\b[0-9a-f]{64}\b`).FindAllString(string(notes), -1)
	if got := hex.EncodeToString(sum[:]); !slices.Equal(recorded, []string{got}) {
		t.Errorf("%s records SHA-256 %v; %s has %s (update both together, see %s)",
			schemaNotes, recorded, schemaFile, got, schemaNotes)
	}
}

// firstResource returns the first resource of the given Type, by logical id, and its Properties.
func firstResource(t *testing.T, tmpl map[string]any, typ string) (string, map[string]any) {
	t.Helper()
	names := resourcesOfType(t, tmpl, typ)
	if len(names) == 0 {
		t.Fatalf("%s has no %s", templateFile, typ)
	}
	return names[0], mapAt(t, tmpl, "Resources", names[0], "Properties")
}

func resourcesOfType(t *testing.T, tmpl map[string]any, typ string) []string {
	t.Helper()
	resources := mapAt(t, tmpl, "Resources")
	var names []string
	for _, name := range slices.Sorted(maps.Keys(resources)) {
		if r, ok := resources[name].(map[string]any); ok && r["Type"] == typ {
			names = append(names, name)
		}
	}
	return names
}

// firstFunctionEvent returns the first function, by logical id, with an event of the given
// Type (not every function has one: the audit function has a schedule only), that event's name
// and its Properties.
func firstFunctionEvent(t *testing.T, tmpl map[string]any, typ string) (fn, event string, props map[string]any) {
	t.Helper()
	for _, name := range resourcesOfType(t, tmpl, "AWS::Serverless::Function") {
		events, _ := mapAt(t, tmpl, "Resources", name, "Properties")["Events"].(map[string]any)
		for _, ev := range slices.Sorted(maps.Keys(events)) {
			if e, ok := events[ev].(map[string]any); ok && e["Type"] == typ {
				return name, ev, mapAt(t, e, "Properties")
			}
		}
	}
	t.Fatalf("%s has no function with a %s event", templateFile, typ)
	return "", "", nil
}

// mapAt follows keys from v down to a mapping.
func mapAt(t *testing.T, v map[string]any, keys ...string) map[string]any {
	t.Helper()
	for i, k := range keys {
		next, ok := v[k].(map[string]any)
		if !ok {
			t.Fatalf("%s: %s is a %T, not a mapping", templateFile, strings.Join(keys[:i+1], "."), v[k])
		}
		v = next
	}
	return v
}

// pointer is the JSON pointer (RFC 6901) of a location in the template.
func pointer(tokens ...string) string {
	esc := strings.NewReplacer("~", "~0", "/", "~1")
	var b strings.Builder
	for _, tok := range tokens {
		b.WriteString("/" + esc.Replace(tok))
	}
	return b.String()
}
