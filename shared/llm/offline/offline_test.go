package offline_test

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/helixhq/helix/shared/llm"
	"github.com/helixhq/helix/shared/llm/llmtest"
	"github.com/helixhq/helix/shared/llm/offline"
)

func request(content string) llm.Request {
	return llm.Request{
		Model:           "deepseek-chat",
		Messages:        []llm.Message{{Role: llm.RoleSystem, Content: "Be helpful."}, {Role: llm.RoleUser, Content: content}},
		MaxOutputTokens: 500,
	}
}

func TestDeterministicAndSaysOffline(t *testing.T) {
	p := offline.New()
	if p.Name() != "offline" {
		t.Errorf("Name = %q", p.Name())
	}
	a, err := p.Complete(context.Background(), request("What is on my calendar?"))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := p.Complete(context.Background(), request("What is on my calendar?"))
	c, _ := p.Complete(context.Background(), request("What is on my calendar today?"))
	if a != b {
		t.Errorf("same request, different answers:\n%+v\n%+v", a, b)
	}
	if a.ProviderRequestID == c.ProviderRequestID || a.Text == c.Text {
		t.Error("different requests got the same id or text")
	}
	if !strings.HasPrefix(a.Text, offline.Prefix) || !strings.Contains(a.Text, "offline model") {
		t.Errorf("text %q does not say it is the offline model", a.Text)
	}
	if !a.Offline {
		t.Error("Offline flag not set: the call must cost nothing")
	}
	if a.Usage.InputTokens <= 0 || a.Usage.OutputTokens <= 0 || a.Usage.CachedInputTokens != 0 || a.Usage.ReasoningTokens != 0 {
		t.Errorf("usage = %+v, want rough positive input/output counts", a.Usage)
	}
	if a.FinishReason != "stop" || a.Model != "deepseek-chat" {
		t.Errorf("finish %q model %q", a.FinishReason, a.Model)
	}
	if strings.Contains(a.Text, "calendar") {
		t.Error("the offline answer should not echo the prompt")
	}
}

func TestRespectsMaxOutputTokens(t *testing.T) {
	req := request("hello")
	req.MaxOutputTokens = 5
	resp, err := offline.New().Complete(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.FinishReason != "length" || len(resp.Text) > 20 || resp.Usage.OutputTokens > 5 {
		t.Errorf("got finish %q, %d bytes, %d tokens; want length, ≤20 bytes, ≤5 tokens", resp.FinishReason, len(resp.Text), resp.Usage.OutputTokens)
	}
}

func TestJSONWithoutSchema(t *testing.T) {
	req := request("classify")
	req.JSON = true
	resp, err := offline.New().Complete(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Offline bool   `json:"offline"`
		Message string `json:"message"`
	}
	if err := json.Unmarshal([]byte(resp.Text), &got); err != nil {
		t.Fatalf("not JSON: %q", resp.Text)
	}
	if !got.Offline || !strings.Contains(got.Message, "offline model") {
		t.Errorf("got %+v", got)
	}
}

func TestFailures(t *testing.T) {
	p := offline.New()
	cases := map[string]llm.Request{
		"no max tokens":   {Model: "m", Messages: []llm.Message{{Role: llm.RoleUser, Content: "x"}}},
		"unknown role":    {Model: "m", MaxOutputTokens: 5, Messages: []llm.Message{{Role: "tool", Content: "x"}}},
		"schema not JSON": {Model: "m", MaxOutputTokens: 5, JSON: true, Schema: json.RawMessage(`{"type":`)},
		"schema false":    {Model: "m", MaxOutputTokens: 5, JSON: true, Schema: json.RawMessage(`false`)},
		"schema a string": {Model: "m", MaxOutputTokens: 5, JSON: true, Schema: json.RawMessage(`"object"`)},
		"remote $ref":     {Model: "m", MaxOutputTokens: 5, JSON: true, Schema: json.RawMessage(`{"$ref":"https://example.com/s.json"}`)},
		"dangling $ref":   {Model: "m", MaxOutputTokens: 5, JSON: true, Schema: json.RawMessage(`{"$ref":"#/$defs/missing"}`)},
		"required cycle": {Model: "m", MaxOutputTokens: 5, JSON: true, Schema: json.RawMessage(
			`{"$defs":{"n":{"type":"object","required":["next"],"properties":{"next":{"$ref":"#/$defs/n"}}}},"$ref":"#/$defs/n"}`)},
	}
	for name, req := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := p.Complete(context.Background(), req)
			llmtest.RequireError(t, err, llm.KindInvalidRequest)
		})
	}
	t.Run("context done", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_, err := p.Complete(ctx, request("x"))
		llmtest.RequireError(t, err, llm.KindTimeout)
	})
}

// validate compiles schema (formats asserted) and checks doc against it.
func validate(t *testing.T, schema, doc string) {
	t.Helper()
	sdoc, err := jsonschema.UnmarshalJSON(strings.NewReader(schema))
	if err != nil {
		t.Fatalf("schema: %v", err)
	}
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	if err := c.AddResource("schema.json", sdoc); err != nil {
		t.Fatalf("add schema: %v", err)
	}
	sch, err := c.Compile("schema.json")
	if err != nil {
		t.Fatalf("compile %s: %v", schema, err)
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader([]byte(doc)))
	if err != nil {
		t.Fatalf("answer is not JSON: %q", doc)
	}
	if err := sch.Validate(inst); err != nil {
		t.Errorf("answer %s does not validate against %s:\n%v", doc, schema, err)
	}
}

// schemaCases are shaped like Helix's operation results, plus the keywords the generator claims.
var schemaCases = []struct {
	name, schema string
	saysOffline  bool
}{
	{"email compose", `{"type":"object","additionalProperties":false,"required":["suggestions"],"properties":{
		"suggestions":{"type":"array","minItems":3,"maxItems":5,"items":{"type":"object","additionalProperties":false,
			"required":["subject","body","tone"],"properties":{"subject":{"type":"string","minLength":1,"maxLength":120},
			"body":{"type":"string","minLength":20},"tone":{"type":"string","enum":["formal","friendly","brief"]}}}}}}`, true},
	{"email classify", `{"type":"object","required":["category","priority","confidence"],"properties":{
		"category":{"enum":["work","personal","newsletter","spam"]},"priority":{"type":"integer","minimum":1,"maximum":5},
		"confidence":{"type":"number","minimum":0,"maximum":1},"reason":{"type":"string"}}}`, true},
	{"calendar time", `{"type":"object","required":["slots"],"properties":{"slots":{"type":"array","minItems":2,"uniqueItems":true,
		"items":{"type":"object","required":["start","end"],"properties":{"start":{"type":"string","format":"date-time"},
		"end":{"type":"string","format":"date-time"},"score":{"type":"number","exclusiveMinimum":0,"exclusiveMaximum":1}}}}}}`, false},
	{"task breakdown with $defs", `{"$defs":{"step":{"type":"object","required":["title","minutes"],"properties":{
		"title":{"type":"string"},"minutes":{"type":"integer","minimum":5,"multipleOf":5},"subtasks":{"type":"array","items":{"$ref":"#/$defs/step"}}}}},
		"type":"object","required":["steps"],"properties":{"steps":{"type":"array","minItems":1,"items":{"$ref":"#/$defs/step"}}}}`, true},
	{"analytics anomaly", `{"type":"object","required":["anomalies","summary"],"properties":{"summary":{"type":"string","maxLength":40},
		"anomalies":{"type":"array","items":{"type":"object","required":["metric","zscore","date","id"],"properties":{
		"metric":{"type":"string"},"zscore":{"type":"number","minimum":-10,"maximum":-2},"date":{"type":"string","format":"date"},
		"id":{"type":"string","format":"uuid"},"severity":{"type":["string","null"],"enum":["low","high",null]}}}}}}`, true},
	{"allOf and nullable anyOf", `{"allOf":[{"type":"object","required":["a"],"properties":{"a":{"type":"string"}}},
		{"required":["b"],"properties":{"b":{"anyOf":[{"type":"integer","maximum":-3},{"type":"null"}]}}}]}`, true},
	{"const, booleans, tuple", `{"type":"object","required":["v","flags","pair"],"properties":{"v":{"const":2},
		"flags":{"type":"array","items":{"type":"boolean"},"minItems":2,"maxItems":2,"uniqueItems":true},
		"pair":{"type":"array","prefixItems":[{"type":"string","format":"email"},{"type":"integer","exclusiveMinimum":10}],"items":false}}}`, false},
	{"draft-04 exclusive booleans", `{"$schema":"http://json-schema.org/draft-04/schema#","type":"object","required":["n","i"],"properties":{
		"n":{"type":"number","minimum":0,"exclusiveMinimum":true,"maximum":0.5,"exclusiveMaximum":true},
		"i":{"type":"integer","minimum":3,"exclusiveMinimum":true,"maximum":4}}}`, false},
	{"min and max properties", `{"type":"object","minProperties":3,"properties":{"x":{"type":"string"}},"additionalProperties":{"type":"integer","minimum":7}}`, true},
	{"top-level array of strings", `{"type":"array","items":{"type":"string","minLength":3,"maxLength":5},"minItems":4,"uniqueItems":true}`, false},
	{"formats", `{"type":"object","required":["u","h","v4","v6","t","d","dur"],"properties":{"u":{"type":"string","format":"uri"},
		"h":{"type":"string","format":"hostname"},"v4":{"type":"string","format":"ipv4"},"v6":{"type":"string","format":"ipv6"},
		"t":{"type":"string","format":"time"},"d":{"type":"string","format":"date-time"},"dur":{"type":"string","format":"duration"}}}`, false},
	{"number multipleOf", `{"type":"object","required":["a","b"],"properties":{"a":{"type":"number","multipleOf":0.01,"minimum":0.1,"maximum":0.3},
		"b":{"type":"number","multipleOf":0.5,"exclusiveMinimum":1,"exclusiveMaximum":2}}}`, false},
	{"negative integer range", `{"type":"array","minItems":3,"uniqueItems":true,"items":{"type":"integer","maximum":-10,"multipleOf":3}}`, false},
	{"schema true", `true`, true},
	{"empty schema", `{}`, true},
}

func TestSchemaValidOutput(t *testing.T) {
	p := offline.New()
	for _, tt := range schemaCases {
		t.Run(tt.name, func(t *testing.T) {
			req := request("do the operation")
			req.JSON, req.Schema = true, json.RawMessage(tt.schema)
			resp, err := p.Complete(context.Background(), req)
			if err != nil {
				t.Fatalf("Complete: %v", err)
			}
			validate(t, tt.schema, resp.Text)
			if tt.saysOffline && !strings.Contains(resp.Text, "offline") {
				t.Errorf("answer %s has free text but never says offline", resp.Text)
			}
			again, _ := p.Complete(context.Background(), req)
			if again.Text != resp.Text {
				t.Errorf("not deterministic: %s vs %s", resp.Text, again.Text)
			}
			if !resp.Offline {
				t.Error("Offline flag not set")
			}
		})
	}
}
