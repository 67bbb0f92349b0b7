package intelligence

import (
	"fmt"
	"math"
	"strings"
)

// Metric is one measured value.
type Metric struct {
	Name     string   `json:"name"`
	Value    *float64 `json:"value"`
	Unit     string   `json:"unit,omitempty"`
	Previous *float64 `json:"previous,omitempty"`
}

// AnalyticsSummaryInput is the body of POST /intelligence/analytics/summary.
type AnalyticsSummaryInput struct {
	Envelope
	Metrics  []Metric `json:"metrics"`
	Period   string   `json:"period,omitempty"`
	Audience string   `json:"audience,omitempty"`
}

// Validate implements Input.
func (in *AnalyticsSummaryInput) Validate() error {
	if len(in.Metrics) == 0 {
		return missing("metrics")
	}
	if len(in.Metrics) > 200 {
		return invalid("metrics", "must have at most 200 metrics")
	}
	for i := range in.Metrics {
		m := &in.Metrics[i]
		if err := text("metrics.name", &m.Name, maxShort, true); err != nil {
			return err
		}
		if m.Value == nil {
			return missing("metrics.value")
		}
		if err := text("metrics.unit", &m.Unit, 32, false); err != nil {
			return err
		}
	}
	if err := text("period", &in.Period, 100, false); err != nil {
		return err
	}
	return text("audience", &in.Audience, maxShort, false)
}

// AnalyticsSummaryResult is the result of analytics-summary.
type AnalyticsSummaryResult struct {
	Summary    string   `json:"summary"`
	Highlights []string `json:"highlights"`
	Concerns   []string `json:"concerns"`
}

func analyticsSummary() Operation {
	return &spec[*AnalyticsSummaryInput, AnalyticsSummaryResult]{
		operationID: "analytics-summary",
		path:        "/analytics/summary",
		newInput:    func() *AnalyticsSummaryInput { return &AnalyticsSummaryInput{} },
		system:      "You summarize business metrics plainly. Use only the numbers given; do not invent any.",
		prompt: func(in *AnalyticsSummaryInput) string {
			var b strings.Builder
			b.WriteString("Summarize these metrics")
			if in.Period != "" {
				b.WriteString(" for " + in.Period)
			}
			if in.Audience != "" {
				b.WriteString(", for " + in.Audience)
			}
			b.WriteString(":")
			for _, m := range in.Metrics {
				fmt.Fprintf(&b, "\n- %s: %g %s", m.Name, *m.Value, m.Unit)
				if m.Previous != nil {
					fmt.Fprintf(&b, " (previously %g)", *m.Previous)
				}
			}
			return b.String()
		},
		schema: func(*AnalyticsSummaryInput) string {
			return `{
  "type": "object", "additionalProperties": false, "required": ["summary", "highlights", "concerns"],
  "properties": {
    "summary": {"type": "string", "minLength": 1},
    "highlights": {"type": "array", "maxItems": 8, "items": {"type": "string"}},
    "concerns": {"type": "array", "maxItems": 8, "items": {"type": "string"}}}}`
		},
	}
}

// Point is one sample of a time series.
type Point struct {
	Timestamp string   `json:"timestamp"`
	Value     *float64 `json:"value"`
}

// AnalyticsAnomalyInput is the body of POST /intelligence/analytics/anomaly.
type AnalyticsAnomalyInput struct {
	Envelope
	Metric      string  `json:"metric,omitempty"`
	Series      []Point `json:"series"`
	Sensitivity string  `json:"sensitivity,omitempty"` // low, medium, high
}

// Validate implements Input.
func (in *AnalyticsAnomalyInput) Validate() error {
	if len(in.Series) == 0 {
		return missing("series")
	}
	if len(in.Series) < 3 || len(in.Series) > 1000 {
		return invalid("series", "must have between 3 and 1000 points")
	}
	for _, p := range in.Series {
		if _, err := timestamp("series.timestamp", p.Timestamp, true); err != nil {
			return err
		}
		if p.Value == nil {
			return missing("series.value")
		}
		if math.IsInf(*p.Value, 0) || math.IsNaN(*p.Value) {
			return invalid("series.value", "must be a finite number")
		}
	}
	if err := text("metric", &in.Metric, maxShort, false); err != nil {
		return err
	}
	return oneOf("sensitivity", &in.Sensitivity, "medium", "low", "medium", "high")
}

// Anomaly is one unusual point.
type Anomaly struct {
	Timestamp   string   `json:"timestamp"`
	Value       float64  `json:"value"`
	Expected    *float64 `json:"expected,omitempty"`
	Severity    string   `json:"severity"`
	Explanation string   `json:"explanation"`
}

// AnalyticsAnomalyResult is the result of analytics-anomaly.
type AnalyticsAnomalyResult struct {
	Anomalies []Anomaly `json:"anomalies"`
	Summary   string    `json:"summary"`
}

func analyticsAnomaly() Operation {
	return &spec[*AnalyticsAnomalyInput, AnalyticsAnomalyResult]{
		operationID: "analytics-anomaly",
		path:        "/analytics/anomaly",
		newInput:    func() *AnalyticsAnomalyInput { return &AnalyticsAnomalyInput{} },
		system:      "You find anomalies in a time series: spikes, drops and breaks in trend. Report only points that are in the series.",
		prompt: func(in *AnalyticsAnomalyInput) string {
			var b strings.Builder
			fmt.Fprintf(&b, "Find anomalies (sensitivity %s) in the series", in.Sensitivity)
			if in.Metric != "" {
				b.WriteString(" of " + in.Metric)
			}
			b.WriteString(":")
			for _, p := range in.Series {
				fmt.Fprintf(&b, "\n%s %g", p.Timestamp, *p.Value)
			}
			return b.String()
		},
		schema: func(in *AnalyticsAnomalyInput) string {
			ts := make([]string, len(in.Series))
			for i, p := range in.Series {
				ts[i] = p.Timestamp
			}
			return `{
  "type": "object", "additionalProperties": false, "required": ["anomalies", "summary"],
  "properties": {
    "anomalies": {"type": "array", "maxItems": 50, "items": {
      "type": "object", "additionalProperties": false, "required": ["timestamp", "value", "severity", "explanation"],
      "properties": {"timestamp": {"enum": ` + jsonList(ts) + `}, "value": {"type": "number"}, "expected": {"type": "number"},
                     "severity": {"enum": ["low", "medium", "high"]}, "explanation": {"type": "string"}}}},
    "summary": {"type": "string"}}}`
		},
	}
}
