package emf_test

// The writer's lines are checked against the EMF specification's required structure: a JSON
// Schema written from it (testdata/emf.schema.json) for the shapes, and checkTargets for what a
// schema cannot say (every dimension and metric a directive names is a member of the root node,
// of the right type). Both are shown to reject broken documents first, so a passing line means
// something.

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/helixhq/helix/shared/catalog"
	"github.com/helixhq/helix/shared/emf"
	"github.com/helixhq/helix/shared/money"
	"github.com/helixhq/helix/shared/oplog"
)

// at is the clock of every writer here: 2026-12-02T10:00:00.123Z.
var at = time.Date(2026, 12, 2, 10, 0, 0, 123_000_000, time.UTC)

func fixedNow() time.Time { return at }

func compileSchema(t *testing.T) *jsonschema.Schema {
	t.Helper()
	raw, err := os.ReadFile("testdata/emf.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	if err := c.AddResource("emf.schema.json", doc); err != nil {
		t.Fatal(err)
	}
	s, err := c.Compile("emf.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// validate checks one line against the schema and checkTargets.
func validate(s *jsonschema.Schema, line string) error {
	inst, err := jsonschema.UnmarshalJSON(strings.NewReader(line))
	if err != nil {
		return fmt.Errorf("not JSON: %w", err)
	}
	if err := s.Validate(inst); err != nil {
		return err
	}
	return checkTargets(line)
}

// checkTargets is the specification's rule on target members that JSON Schema cannot express:
// every name in a DimensionSet is a root member with a string value, and every MetricDefinition's
// Name a root member that is a number or an array of at most 100 numbers.
func checkTargets(line string) error {
	var root map[string]json.RawMessage
	if err := json.Unmarshal([]byte(line), &root); err != nil {
		return err
	}
	var meta struct {
		CloudWatchMetrics []struct {
			Dimensions [][]string
			Metrics    []struct{ Name string }
		}
	}
	if err := json.Unmarshal(root["_aws"], &meta); err != nil {
		return err
	}
	for _, d := range meta.CloudWatchMetrics {
		for _, set := range d.Dimensions {
			for _, name := range set {
				var v string
				raw, ok := root[name]
				if !ok {
					return fmt.Errorf("dimension %q is not a member of the root node", name)
				}
				if err := json.Unmarshal(raw, &v); err != nil {
					return fmt.Errorf("dimension %q is not a string: %s", name, raw)
				}
			}
		}
		for _, m := range d.Metrics {
			raw, ok := root[m.Name]
			if !ok {
				return fmt.Errorf("metric %q is not a member of the root node", m.Name)
			}
			var n float64
			if json.Unmarshal(raw, &n) == nil {
				continue
			}
			var ns []float64
			if err := json.Unmarshal(raw, &ns); err != nil {
				return fmt.Errorf("metric %q is neither a number nor an array of numbers: %s", m.Name, raw)
			}
			if len(ns) > 100 {
				return fmt.Errorf("metric %q has %d values, at most 100", m.Name, len(ns))
			}
		}
	}
	return nil
}

// A valid document from the specification's own example, and broken variants of it: the checks
// accept the first and reject every other, each for its reason.
func TestTheChecksRejectWhatTheSpecificationForbids(t *testing.T) {
	s := compileSchema(t)
	const valid = `{"_aws":{"Timestamp":1574109732004,"CloudWatchMetrics":[{"Namespace":"lambda-function-metrics",` +
		`"Dimensions":[["functionVersion"]],"Metrics":[{"Name":"time","Unit":"Milliseconds"}]}]},` +
		`"functionVersion":"$LATEST","time":100,"requestId":"989ffbf8-9ace-4817-a57c-e4dd734019ee"}`
	if err := validate(s, valid); err != nil {
		t.Fatalf("the specification's example: %v", err)
	}
	many := func(n int, f func(i int) string) string {
		parts := make([]string, n)
		for i := range parts {
			parts[i] = f(i)
		}
		return strings.Join(parts, ",")
	}
	tests := []struct {
		name, reason, doc string
	}{
		{"not an object", "want object", `[1]`},
		{"no _aws", "missing property '_aws'", `{"time":100}`},
		{"no Timestamp", "missing property 'Timestamp'", `{"_aws":{"CloudWatchMetrics":[{"Namespace":"n","Dimensions":[[]],"Metrics":[{"Name":"time"}]}]},"time":1}`},
		{"Timestamp in seconds as a fraction", "want integer", `{"_aws":{"Timestamp":1574109732.004,"CloudWatchMetrics":[{"Namespace":"n","Dimensions":[[]],"Metrics":[{"Name":"time"}]}]},"time":1}`},
		{"Timestamp as a string", "want integer", `{"_aws":{"Timestamp":"2026-12-02T10:00:00Z","CloudWatchMetrics":[{"Namespace":"n","Dimensions":[[]],"Metrics":[{"Name":"time"}]}]},"time":1}`},
		{"no CloudWatchMetrics", "missing property 'CloudWatchMetrics'", `{"_aws":{"Timestamp":1},"time":1}`},
		{"unknown member in _aws", "'Extra' not allowed", `{"_aws":{"Timestamp":1,"Extra":1,"CloudWatchMetrics":[{"Namespace":"n","Dimensions":[[]],"Metrics":[{"Name":"time"}]}]},"time":1}`},
		{"no Namespace", "missing property 'Namespace'", `{"_aws":{"Timestamp":1,"CloudWatchMetrics":[{"Dimensions":[[]],"Metrics":[{"Name":"time"}]}]},"time":1}`},
		{"empty Namespace", "minLength", `{"_aws":{"Timestamp":1,"CloudWatchMetrics":[{"Namespace":"","Dimensions":[[]],"Metrics":[{"Name":"time"}]}]},"time":1}`},
		{"no Dimensions", "missing property 'Dimensions'", `{"_aws":{"Timestamp":1,"CloudWatchMetrics":[{"Namespace":"n","Metrics":[{"Name":"time"}]}]},"time":1}`},
		{"Dimensions not a list of sets", "want array", `{"_aws":{"Timestamp":1,"CloudWatchMetrics":[{"Namespace":"n","Dimensions":["a"],"Metrics":[{"Name":"time"}]}]},"a":"x","time":1}`},
		{"no dimension set at all", "minItems: got 0", `{"_aws":{"Timestamp":1,"CloudWatchMetrics":[{"Namespace":"n","Dimensions":[],"Metrics":[{"Name":"time"}]}]},"time":1}`},
		{"31 dimensions in a set", "maxItems: got 31, want 30", `{"_aws":{"Timestamp":1,"CloudWatchMetrics":[{"Namespace":"n","Dimensions":[[` +
			many(31, func(i int) string { return fmt.Sprintf(`"d%d"`, i) }) + `]],"Metrics":[{"Name":"time"}]}]},` +
			many(31, func(i int) string { return fmt.Sprintf(`"d%d":"v"`, i) }) + `,"time":1}`},
		{"101 metrics", "maxItems: got 101, want 100", `{"_aws":{"Timestamp":1,"CloudWatchMetrics":[{"Namespace":"n","Dimensions":[[]],"Metrics":[` +
			many(101, func(i int) string { return fmt.Sprintf(`{"Name":"m%d"}`, i) }) + `]}]},` +
			many(101, func(i int) string { return fmt.Sprintf(`"m%d":1`, i) }) + `}`},
		{"no Metrics", "missing property 'Metrics'", `{"_aws":{"Timestamp":1,"CloudWatchMetrics":[{"Namespace":"n","Dimensions":[[]]}]}}`},
		{"metric without a Name", "missing property 'Name'", `{"_aws":{"Timestamp":1,"CloudWatchMetrics":[{"Namespace":"n","Dimensions":[[]],"Metrics":[{"Unit":"Count"}]}]}}`},
		{"unit not CloudWatch's", "/Unit", `{"_aws":{"Timestamp":1,"CloudWatchMetrics":[{"Namespace":"n","Dimensions":[[]],"Metrics":[{"Name":"time","Unit":"ms"}]}]},"time":1}`},
		{"storage resolution neither 1 nor 60", "/StorageResolution", `{"_aws":{"Timestamp":1,"CloudWatchMetrics":[{"Namespace":"n","Dimensions":[[]],"Metrics":[{"Name":"time","StorageResolution":30}]}]},"time":1}`},
		{"unknown member in a directive", "'Extra' not allowed", `{"_aws":{"Timestamp":1,"CloudWatchMetrics":[{"Namespace":"n","Dimensions":[[]],"Metrics":[{"Name":"time"}],"Extra":1}]},"time":1}`},
		// What only checkTargets catches.
		{"referenced dimension without a value", "dimension \"model\" is not a member", `{"_aws":{"Timestamp":1,"CloudWatchMetrics":[{"Namespace":"n","Dimensions":[["model"]],"Metrics":[{"Name":"time"}]}]},"time":1}`},
		{"dimension value not a string", "dimension \"model\" is not a string", `{"_aws":{"Timestamp":1,"CloudWatchMetrics":[{"Namespace":"n","Dimensions":[["model"]],"Metrics":[{"Name":"time"}]}]},"model":7,"time":1}`},
		{"referenced metric without a value", "metric \"time\" is not a member", `{"_aws":{"Timestamp":1,"CloudWatchMetrics":[{"Namespace":"n","Dimensions":[[]],"Metrics":[{"Name":"time"}]}]}}`},
		{"metric value a string", "neither a number", `{"_aws":{"Timestamp":1,"CloudWatchMetrics":[{"Namespace":"n","Dimensions":[[]],"Metrics":[{"Name":"time"}]}]},"time":"100"}`},
		{"metric nested, not a root member", "metric \"a.b\" is not a member", `{"_aws":{"Timestamp":1,"CloudWatchMetrics":[{"Namespace":"n","Dimensions":[[]],"Metrics":[{"Name":"a.b"}]}]},"a":{"b":1}}`},
		{"101 values of one metric", "has 101 values", `{"_aws":{"Timestamp":1,"CloudWatchMetrics":[{"Namespace":"n","Dimensions":[[]],"Metrics":[{"Name":"time"}]}]},"time":[` +
			many(101, func(int) string { return "1" }) + `]}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := validate(s, tt.doc)
			if err == nil {
				t.Fatalf("accepted:\n%s", tt.doc)
			}
			if !strings.Contains(err.Error(), tt.reason) {
				t.Errorf("rejected for another reason than %q: %v", tt.reason, err)
			}
		})
	}
}

// lines splits a writer's output into its lines, failing unless each is one JSON object.
func lines(t *testing.T, out string) []map[string]any {
	t.Helper()
	var docs []map[string]any
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		var d map[string]any
		if err := json.Unmarshal(sc.Bytes(), &d); err != nil {
			t.Fatalf("a line that is not one JSON object: %q: %v", sc.Text(), err)
		}
		docs = append(docs, d)
	}
	if !strings.HasSuffix(out, "\n") && out != "" {
		t.Errorf("output does not end its last line: %q", out)
	}
	return docs
}

func TestWrittenLinesFollowTheSpecification(t *testing.T) {
	s := compileSchema(t)
	tests := []struct {
		name    string
		opts    emf.Options
		dims    map[string]string
		sets    [][]string
		metrics []emf.Metric
	}{
		{name: "function only", opts: emf.Options{Function: "audit"},
			metrics: []emf.Metric{{Name: "OutboxBacklog", Unit: emf.Count, Value: 3}}},
		{name: "two sets and a namespace of its own", opts: emf.Options{Namespace: "Helix/staging", Function: "route"},
			dims: map[string]string{"operation": "email-compose", "model": "deepseek"},
			sets: [][]string{{"operation", "model"}, {}},
			metrics: []emf.Metric{{Name: "CostNano", Unit: emf.None, Value: 49000},
				{Name: "LatencyMs", Unit: emf.Milliseconds, Value: 812}}},
		{name: "no unit means None", opts: emf.Options{Function: "chat"},
			metrics: []emf.Metric{{Name: "Thing", Value: 0.5}}},
		{name: "a hundred metrics", opts: emf.Options{Function: "synthesis"}, metrics: func() []emf.Metric {
			ms := make([]emf.Metric, emf.MaxMetrics)
			for i := range ms {
				ms[i] = emf.Metric{Name: fmt.Sprintf("M%d", i), Unit: emf.Count, Value: float64(i)}
			}
			return ms
		}()},
		{name: "29 dimensions and the function", opts: emf.Options{Function: "route"}, dims: func() map[string]string {
			d := map[string]string{}
			for i := range emf.MaxDimensions - 1 {
				d[fmt.Sprintf("d%d", i)] = "v"
			}
			return d
		}(), sets: func() [][]string {
			var set []string
			for i := range emf.MaxDimensions - 1 {
				set = append(set, fmt.Sprintf("d%d", i))
			}
			return [][]string{set}
		}(), metrics: []emf.Metric{{Name: "X", Unit: emf.Count, Value: 1}}},
		{name: "dimension values made acceptable", opts: emf.Options{Function: "route"},
			dims: map[string]string{"operation": "résumé\tdraft", "model": "  "}, sets: [][]string{{"operation", "model"}},
			metrics: []emf.Metric{{Name: "X", Unit: emf.Count, Value: 1}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.opts.Now = fixedNow
			var buf bytes.Buffer
			if err := emf.New(&buf, tt.opts).Emit(tt.dims, tt.sets, tt.metrics...); err != nil {
				t.Fatalf("Emit: %v", err)
			}
			docs := lines(t, buf.String())
			if len(docs) != 1 {
				t.Fatalf("%d lines, want 1:\n%s", len(docs), buf.String())
			}
			if err := validate(s, strings.TrimSuffix(buf.String(), "\n")); err != nil {
				t.Fatalf("invalid EMF: %v\n%s", err, buf.String())
			}
			aws := docs[0]["_aws"].(map[string]any)
			if ts := aws["Timestamp"].(float64); ts != float64(at.UnixMilli()) {
				t.Errorf("Timestamp %v, want %d", ts, at.UnixMilli())
			}
			dir := aws["CloudWatchMetrics"].([]any)[0].(map[string]any)
			wantNS := tt.opts.Namespace
			if wantNS == "" {
				wantNS = emf.DefaultNamespace
			}
			if dir["Namespace"] != wantNS {
				t.Errorf("Namespace %v, want %s", dir["Namespace"], wantNS)
			}
			for _, set := range dir["Dimensions"].([]any) {
				if first := set.([]any)[0]; first != emf.DimFunction {
					t.Errorf("a set %v without the function first", set)
				}
			}
			if docs[0][emf.DimFunction] != tt.opts.Function {
				t.Errorf("function %v, want %s", docs[0][emf.DimFunction], tt.opts.Function)
			}
			for _, m := range tt.metrics {
				if docs[0][m.Name] != m.Value {
					t.Errorf("%s = %v, want %v", m.Name, docs[0][m.Name], m.Value)
				}
			}
		})
	}
}

// Documents the specification would refuse are not written: CloudWatch would drop the whole
// line (and count it in AWS/Logs' EMFValidationErrors), so the caller hears of it instead.
func TestEmitRefusesWhatCloudWatchWouldDrop(t *testing.T) {
	one := []emf.Metric{{Name: "X", Unit: emf.Count, Value: 1}}
	tooManyDims := map[string]string{}
	var bigSet []string
	for i := range emf.MaxDimensions {
		name := fmt.Sprintf("d%d", i)
		tooManyDims[name] = "v"
		bigSet = append(bigSet, name)
	}
	tests := []struct {
		name    string
		dims    map[string]string
		sets    [][]string
		metrics []emf.Metric
	}{
		{"no metric", nil, nil, nil},
		{"101 metrics", nil, nil, make([]emf.Metric, emf.MaxMetrics+1)},
		{"a set naming a dimension without a value", nil, [][]string{{"model"}}, one},
		{"30 dimensions and the function", tooManyDims, [][]string{bigSet}, one},
		{"function named again", nil, [][]string{{emf.DimFunction}}, one},
		{"function as a dimension value", map[string]string{emf.DimFunction: "other"}, nil, one},
		{"_aws as a dimension", map[string]string{"_aws": "x"}, nil, one},
		{"a metric named like a dimension", map[string]string{"model": "deepseek"}, [][]string{{"model"}},
			[]emf.Metric{{Name: "model", Value: 1}}},
		{"a metric named like the function", nil, nil, []emf.Metric{{Name: emf.DimFunction, Value: 1}}},
		{"a metric twice", nil, nil, []emf.Metric{{Name: "X", Value: 1}, {Name: "X", Value: 2}}},
		{"a metric without a name", nil, nil, []emf.Metric{{Value: 1}}},
		{"NaN", nil, nil, []emf.Metric{{Name: "X", Value: math.NaN()}}},
		{"infinity", nil, nil, []emf.Metric{{Name: "X", Value: math.Inf(1)}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			if err := emf.New(&buf, emf.Options{Function: "route"}).Emit(tt.dims, tt.sets, tt.metrics...); err == nil {
				t.Error("Emit accepted it")
			}
			if buf.Len() != 0 {
				t.Errorf("wrote %q", buf.String())
			}
		})
	}
}

func TestDimensionValue(t *testing.T) {
	tests := []struct{ in, want string }{
		{"email-compose", "email-compose"},
		{"gemini_flash", "gemini_flash"},
		{"", emf.NoModel},
		{"   ", emf.NoModel},
		{"zoë", "zo__"}, // two bytes of UTF-8, each replaced: CloudWatch takes ASCII only
		{"a\tb\x00c", "a_b_c"},
		{strings.Repeat("x", 2000), strings.Repeat("x", 1024)},
	}
	for _, tt := range tests {
		if got := emf.DimensionValue(tt.in); got != tt.want {
			t.Errorf("DimensionValue(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// An operation's line: the record's cost, latency, tokens and flags under [function, operation,
// model] and [function], and nothing of the user, the request or the provider's request id.
func TestOperationLine(t *testing.T) {
	s := compileSchema(t)
	base := oplog.Record{
		RequestID: "req-4f1c", OperationID: "email-compose", UserID: "user-private-77", Model: "deepseek",
		Provider: "deepseek", ProviderRequestID: "prov-req-9", PriceVersion: "2026-11",
		Usage: catalog.Usage{InputTokens: 100, CachedInputTokens: 20, OutputTokens: 50},
		Cost:  money.Nano(49_560), Latency: 812 * time.Millisecond, Success: true,
	}
	tests := []struct {
		name   string
		rec    func(r oplog.Record) oplog.Record
		model  string
		errors float64
		falls  float64
	}{
		{"success", func(r oplog.Record) oplog.Record { return r }, "deepseek", 0, 0},
		{"fallback answered", func(r oplog.Record) oplog.Record { r.Model, r.FallbackUsed = "gemini_flash", true; return r }, "gemini_flash", 0, 1},
		{"failed", func(r oplog.Record) oplog.Record { r.Success, r.ErrorCode = false, "providers_unavailable"; return r }, "deepseek", 1, 0},
		{"no model reached", func(r oplog.Record) oplog.Record {
			return oplog.Record{RequestID: r.RequestID, OperationID: r.OperationID, UserID: r.UserID, ErrorCode: "budget_exceeded"}
		}, emf.NoModel, 1, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			rec := tt.rec(base)
			emf.New(&buf, emf.Options{Function: "route", Now: fixedNow}).Operation(rec)
			out := buf.String()
			docs := lines(t, out)
			if len(docs) != 1 {
				t.Fatalf("%d lines, want 1:\n%s", len(docs), out)
			}
			if err := validate(s, strings.TrimSuffix(out, "\n")); err != nil {
				t.Fatalf("invalid EMF: %v\n%s", err, out)
			}
			for _, private := range []string{rec.UserID, rec.RequestID, "prov-req-9", "user_id", "request"} {
				if strings.Contains(out, private) {
					t.Errorf("the line carries %q:\n%s", private, out)
				}
			}
			d := docs[0]
			want := map[string]any{
				"function": "route", "operation": "email-compose", "model": tt.model,
				emf.MetricCost: float64(rec.Cost), emf.MetricLatency: float64(rec.Latency.Milliseconds()),
				emf.MetricInputTokens: float64(rec.Usage.InputTokens), emf.MetricCachedInputTokens: float64(rec.Usage.CachedInputTokens),
				emf.MetricOutputTokens: float64(rec.Usage.OutputTokens), emf.MetricErrors: tt.errors, emf.MetricFallbacks: tt.falls,
			}
			for k, v := range want {
				if d[k] != v {
					t.Errorf("%s = %v, want %v", k, d[k], v)
				}
			}
			if len(d) != len(want)+1 { // and _aws
				t.Errorf("members %v, want exactly %v and _aws", keys(d), keys(want))
			}
			dir := d["_aws"].(map[string]any)["CloudWatchMetrics"].([]any)[0].(map[string]any)
			sets, _ := json.Marshal(dir["Dimensions"])
			if string(sets) != `[["function","operation","model"],["function"]]` {
				t.Errorf("dimension sets %s", sets)
			}
			units := map[string]string{}
			for _, m := range dir["Metrics"].([]any) {
				units[m.(map[string]any)["Name"].(string)] = m.(map[string]any)["Unit"].(string)
			}
			wantUnits := map[string]string{emf.MetricCost: "None", emf.MetricLatency: "Milliseconds",
				emf.MetricInputTokens: "Count", emf.MetricCachedInputTokens: "Count", emf.MetricOutputTokens: "Count",
				emf.MetricErrors: "Count", emf.MetricFallbacks: "Count"}
			if fmt.Sprint(units) != fmt.Sprint(wantUnits) {
				t.Errorf("units %v, want %v", units, wantUnits)
			}
		})
	}
}

func keys(m map[string]any) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// Many goroutines write at once (a Lambda serving concurrent calls, the dev server): every line
// stays whole.
func TestConcurrentWritesKeepLinesWhole(t *testing.T) {
	var buf bytes.Buffer
	w := emf.New(&buf, emf.Options{Function: "chat"})
	const n = 64
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w.Operation(oplog.Record{OperationID: "chat_message", Model: "deepseek", Cost: money.Nano(i), Success: true})
		}()
	}
	wg.Wait()
	if got := len(lines(t, buf.String())); got != n {
		t.Errorf("%d whole lines, want %d", got, n)
	}
}

// A nil writer (no metrics configured) writes nothing and does not panic.
func TestNilWriter(t *testing.T) {
	var w *emf.Writer
	w.Operation(oplog.Record{OperationID: "x"})
	if err := w.Emit(nil, nil, emf.Metric{Name: "X", Value: 1}); err != nil {
		t.Errorf("nil writer: %v", err)
	}
}
