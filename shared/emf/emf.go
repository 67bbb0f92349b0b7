// Package emf writes CloudWatch metrics as Embedded Metric Format documents: one JSON object per
// line on the function's standard output, which Lambda ships to CloudWatch Logs, where the
// metrics are extracted from the log event (no PutMetricData call, no network, no credentials).
//
// Specification: https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html
//
// Written with the standard library: EMF is a small JSON document, and no maintained Go EMF
// library is available from the module proxy this project builds from (AWS publishes none for
// Go; github.com/prozz/aws-embedded-metrics-golang is not served). A line is written with one
// Write call, never inside the slog handler's JSON, so it stays a standalone object that
// CloudWatch can parse even when it falls between two log lines.
package emf

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"strings"
	"sync"
	"time"

	"github.com/helixhq/helix/shared/oplog"
)

// Unit is a CloudWatch metric unit (the MetricDatum API's list).
type Unit string

// The units Helix uses.
const (
	Count        Unit = "Count"
	Milliseconds Unit = "Milliseconds"
	Seconds      Unit = "Seconds"
	None         Unit = "None"
)

// Metric is one value of a document.
type Metric struct {
	Name  string
	Unit  Unit
	Value float64
}

// Limits of the specification a document must stay within.
const (
	// MaxMetrics is how many MetricDefinitions one directive may hold.
	MaxMetrics = 100
	// MaxDimensions is how many dimension keys one DimensionSet may hold.
	MaxDimensions = 30
	// maxDimensionValue is CloudWatch's limit on a dimension's value, in bytes (ASCII).
	maxDimensionValue = 1024
)

// DefaultNamespace is the CloudWatch namespace when Options leaves it empty.
const DefaultNamespace = "Helix"

// Dimension names. Every document carries Function; operations add Operation and Model. No
// user id and no request id is ever a dimension: each distinct value makes a new CloudWatch
// metric (billed per month), and a user id in metrics is personal data outside the database.
const (
	DimFunction  = "function"
	DimOperation = "operation"
	DimModel     = "model"
)

// NoModel is the model dimension of a call that reached no model (refused for its budget, no
// provider available): CloudWatch refuses an empty dimension value.
const NoModel = "none"

// Options configure a Writer.
type Options struct {
	// Namespace is the CloudWatch namespace; DefaultNamespace when empty.
	Namespace string
	// Function is the function dimension of every document: the Helix function's name
	// ("route", "chat", ...), stable across deployments (unlike the Lambda's generated name).
	Function string
	// Now stamps documents; time.Now when nil.
	Now func() time.Time
}

// Writer writes EMF documents to one stream. It is safe for concurrent use; a nil *Writer
// writes nothing.
type Writer struct {
	mu        sync.Mutex
	out       io.Writer
	namespace string
	function  string
	now       func() time.Time
}

// New returns a Writer to out (os.Stdout in a Lambda: the log stream CloudWatch parses).
func New(out io.Writer, o Options) *Writer {
	ns := o.Namespace
	if ns == "" {
		ns = DefaultNamespace
	}
	now := o.Now
	if now == nil {
		now = time.Now
	}
	return &Writer{out: out, namespace: ns, function: DimensionValue(o.Function), now: now}
}

// Emit writes one document: metrics under each of sets (lists of dimension names), with dims
// the values of the dimensions the sets name besides function, which every set gets first. A
// document the specification would reject (a set naming a dimension without a value, a name
// used twice, too many metrics or dimensions, a value that is not a finite number) is not
// written, and the error says why.
func (w *Writer) Emit(dims map[string]string, sets [][]string, metrics ...Metric) error {
	if w == nil {
		return nil
	}
	line, err := w.document(dims, sets, metrics)
	if err != nil {
		return err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	_, err = w.out.Write(line)
	return err
}

// document builds one EMF line (newline included).
func (w *Writer) document(dims map[string]string, sets [][]string, metrics []Metric) ([]byte, error) {
	if len(metrics) == 0 || len(metrics) > MaxMetrics {
		return nil, fmt.Errorf("emf: %d metrics, want 1 to %d", len(metrics), MaxMetrics)
	}
	root := map[string]any{DimFunction: w.function}
	for name, v := range dims {
		if name == DimFunction || name == "_aws" || name == "" {
			return nil, fmt.Errorf("emf: dimension name %q is reserved or empty", name)
		}
		root[name] = DimensionValue(v)
	}
	dimSets := make([][]string, 0, len(sets))
	for _, set := range sets {
		full := append([]string{DimFunction}, set...)
		if len(full) > MaxDimensions {
			return nil, fmt.Errorf("emf: a dimension set of %d names, at most %d", len(full), MaxDimensions)
		}
		for _, name := range set {
			if name == DimFunction {
				return nil, fmt.Errorf("emf: %q is in every set already", DimFunction)
			}
			if _, ok := dims[name]; !ok {
				return nil, fmt.Errorf("emf: dimension %q has no value", name)
			}
		}
		dimSets = append(dimSets, full)
	}
	if len(dimSets) == 0 {
		dimSets = append(dimSets, []string{DimFunction})
	}
	defs := make([]map[string]string, 0, len(metrics))
	for _, m := range metrics {
		if m.Name == "" {
			return nil, fmt.Errorf("emf: a metric without a name")
		}
		if _, taken := root[m.Name]; taken {
			return nil, fmt.Errorf("emf: metric %q clashes with another member", m.Name)
		}
		if math.IsNaN(m.Value) || math.IsInf(m.Value, 0) {
			return nil, fmt.Errorf("emf: metric %q is not a finite number", m.Name)
		}
		unit := m.Unit
		if unit == "" {
			unit = None
		}
		root[m.Name] = m.Value
		defs = append(defs, map[string]string{"Name": m.Name, "Unit": string(unit)})
	}
	root["_aws"] = map[string]any{
		"Timestamp": w.now().UnixMilli(),
		"CloudWatchMetrics": []any{map[string]any{
			"Namespace":  w.namespace,
			"Dimensions": dimSets,
			"Metrics":    defs,
		}},
	}
	line, err := json.Marshal(root)
	if err != nil {
		return nil, fmt.Errorf("emf: %w", err)
	}
	return append(line, '\n'), nil
}

// DimensionValue makes s an acceptable CloudWatch dimension value: printable ASCII only (other
// bytes become '_'), at most 1,024 bytes, and not empty or blank (NoModel's "none" then).
// Operation ids and model keys are operators' names and normally pass unchanged.
func DimensionValue(s string) string {
	if len(s) > maxDimensionValue {
		s = s[:maxDimensionValue]
	}
	b := []byte(s)
	for i, c := range b {
		if c < 0x20 || c > 0x7e {
			b[i] = '_'
		}
	}
	if strings.TrimSpace(string(b)) == "" {
		return NoModel
	}
	return string(b)
}

// Operation metric names: what one executed call cost and took.
const (
	MetricCost              = "CostNano"
	MetricLatency           = "LatencyMs"
	MetricInputTokens       = "InputTokens"
	MetricCachedInputTokens = "CachedInputTokens"
	MetricOutputTokens      = "OutputTokens"
	MetricErrors            = "Errors"
	MetricFallbacks         = "Fallbacks"
)

// operationSets are the dimension sets of an operation's document (function is added to each):
// per operation and model, and the function as a whole (the set alarms use).
var operationSets = [][]string{{DimOperation, DimModel}, {}}

// Operation writes the metrics of one finished call (execute.Metrics): its cost in nano-USD,
// its latency, its tokens, whether it failed (Errors 0 or 1, so the Average statistic is the
// error rate) and whether a fallback model answered. Only the operation id and the model key
// leave the record: never its user, request or provider request id. A write that fails is
// dropped: metrics must not fail a call that is already settled.
func (w *Writer) Operation(rec oplog.Record) {
	if w == nil {
		return
	}
	model := rec.Model
	if model == "" {
		model = NoModel
	}
	_ = w.Emit(map[string]string{DimOperation: rec.OperationID, DimModel: model}, operationSets,
		Metric{Name: MetricCost, Unit: None, Value: float64(rec.Cost)},
		Metric{Name: MetricLatency, Unit: Milliseconds, Value: float64(rec.Latency.Milliseconds())},
		Metric{Name: MetricInputTokens, Unit: Count, Value: float64(rec.Usage.InputTokens)},
		Metric{Name: MetricCachedInputTokens, Unit: Count, Value: float64(rec.Usage.CachedInputTokens)},
		Metric{Name: MetricOutputTokens, Unit: Count, Value: float64(rec.Usage.OutputTokens)},
		Metric{Name: MetricErrors, Unit: Count, Value: flag(!rec.Success)},
		Metric{Name: MetricFallbacks, Unit: Count, Value: flag(rec.FallbackUsed)},
	)
}

func flag(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
