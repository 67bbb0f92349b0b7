package main

import (
	"encoding/json"
	"math"
	"slices"
	"time"

	"github.com/helixhq/helix/infra/load"
)

// latencies summarizes a set of durations that are not a load run's (the delivery step's): the
// same nearest-rank percentiles as infra/load. A duration may be negative (the waiting device
// had the reply before the sender did).
type latencies struct {
	N                             int
	Min, Mean, P50, P90, P99, Max time.Duration
}

func summarizeLatencies(d []time.Duration) latencies {
	if len(d) == 0 {
		return latencies{}
	}
	s := slices.Clone(d)
	slices.Sort(s)
	var sum time.Duration
	for _, v := range s {
		sum += v
	}
	rank := func(p float64) time.Duration {
		r := int(math.Ceil(p / 100 * float64(len(s))))
		return s[max(1, min(r, len(s)))-1]
	}
	return latencies{N: len(s), Min: s[0], Mean: sum / time.Duration(len(s)), P50: rank(50), P90: rank(90), P99: rank(99), Max: s[len(s)-1]}
}

// MarshalJSON writes the durations as milliseconds, as load.Summary does.
func (l latencies) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		N      int     `json:"n"`
		MinMS  float64 `json:"min_ms"`
		MeanMS float64 `json:"mean_ms"`
		P50MS  float64 `json:"p50_ms"`
		P90MS  float64 `json:"p90_ms"`
		P99MS  float64 `json:"p99_ms"`
		MaxMS  float64 `json:"max_ms"`
	}{l.N, load.Millis(l.Min), load.Millis(l.Mean), load.Millis(l.P50), load.Millis(l.P90), load.Millis(l.P99), load.Millis(l.Max)})
}
