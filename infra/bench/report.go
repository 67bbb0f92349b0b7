package main

import (
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/helixhq/helix/infra/load"
)

// summary writes every table: what `make bench` is for.
func (b *bench) summary(w io.Writer) {
	r := b.res
	if b.cfg.wanted(stepRoute) {
		b.routeTable(w)
		fmt.Fprintln(w)
	}
	if g := r.Gateway; g != nil {
		b.gatewayTable(w)
		fmt.Fprintln(w)
		if g.PGTransactions > 0 {
			fmt.Fprintf(w, "Postgres transactions per /v1/chat/completions request (start-up included): %.2f (issue 3's target: 3 or fewer round trips)\n\n",
				g.PGTransactionsPerRequest)
		}
	}
	if len(r.Router) > 0 {
		benchmarkTable(w, "routing decision in process (shared/router)", r.Router)
		fmt.Fprintln(w)
	}
	if len(r.Ledger) > 0 {
		benchmarkTable(w, "reserve+settle pairs on Postgres (shared/postgres; each pair is two durable commits)", r.Ledger)
		fmt.Fprintln(w)
	}
	if len(r.Sizes) > 0 {
		fmt.Fprintln(w, "Lambda bootstrap sizes (linux/arm64, stripped; target <= 15 MB each)")
		for _, s := range r.Sizes {
			fmt.Fprintf(w, "  %s\n", s.line())
		}
		fmt.Fprintln(w)
	}
	stepsTable(w, r.Steps)
}

// routeTable shows the exec modes side by side.
func (b *bench) routeTable(w io.Writer) {
	fmt.Fprintln(w, "POST /ai-router/route, by HELIX_DB_EXEC_MODE (target at -c 64: >= 3000 req/s, p99 < 10 ms)")
	fmt.Fprintf(w, "  %-15s %4s %10s %10s %10s\n", "exec mode", "-c", "req/s", "p50 ms", "p99 ms")
	for _, mode := range routeExecModes() {
		for _, c := range concurrencies() {
			i := slices.IndexFunc(b.res.Route, func(r routeRun) bool { return r.Mode == mode && r.Summary.Concurrency == c })
			if i < 0 {
				fmt.Fprintf(w, "  %-15s %4d %10s\n", mode, c, "(no result)")
				continue
			}
			s := b.res.Route[i].Summary
			fmt.Fprintf(w, "  %-15s %4d %10.0f %10.3f %10.3f\n", mode, c, s.RPS, load.Millis(s.P50), load.Millis(s.P99))
		}
	}
}

// gatewayTable shows req/s, p50 and p99 both ways, and what Helix adds, per concurrency and users.
func (b *bench) gatewayTable(w io.Writer) {
	g := b.res.Gateway
	fmt.Fprintf(w, "gateway overhead: /v1/chat/completions through Helix vs the mock upstream directly (mock -delay %s)\n", g.MockDelay)
	fmt.Fprintf(w, "  %4s  %-16s %10s %10s %10s\n", "-c", "path", "req/s", "p50 ms", "p99 ms")
	gatewayRows(w, g, 1, "helix-c1", "helix, 1 user", true)
	gatewayRows(w, g, 64, "helix-c64", "helix, 1 user", true)
	gatewayRows(w, g, gatewayUsers, fmt.Sprintf("helix-c%d-users", gatewayUsers), fmt.Sprintf("helix, %d users", gatewayUsers), false)
	fmt.Fprintf(w, "  added = helix minus direct at the same -c; targets at -c 64: added p50 <= %.0f ms, p99 <= %.0f ms\n",
		load.Millis(targetAddedP50), load.Millis(targetAddedP99))
}

// gatewayRows writes the direct row (when showDirect), the Helix row and the difference against
// the direct run at the same concurrency.
func gatewayRows(w io.Writer, g *gatewayResult, c int, helixRun, label string, showDirect bool) {
	d, h := g.run(fmt.Sprintf("direct-c%d", c)), g.run(helixRun)
	if d == nil || h == nil {
		fmt.Fprintf(w, "  %4d  %-16s (no result)\n", c, label)
		return
	}
	row := func(label string, s load.Summary) {
		fmt.Fprintf(w, "  %4d  %-16s %10.0f %10.3f %10.3f\n", c, label, s.RPS, load.Millis(s.P50), load.Millis(s.P99))
	}
	if showDirect {
		row("direct", d.Summary)
	}
	row(label, h.Summary)
	added50, added99 := h.Summary.P50-d.Summary.P50, h.Summary.P99-d.Summary.P99
	verdict := ""
	if c == 64 {
		verdict = "   target missed"
		if added50 <= targetAddedP50 && added99 <= targetAddedP99 {
			verdict = "   target met"
		}
	}
	fmt.Fprintf(w, "  %4d  %-16s %10s %+10.3f %+10.3f%s\n", c, "  added", "", load.Millis(added50), load.Millis(added99), verdict)
}

// benchmarkTable lists Go benchmark results, ns/op first, then the other units alphabetically.
func benchmarkTable(w io.Writer, title string, results []goBenchmark) {
	fmt.Fprintln(w, title)
	width := 0
	for _, r := range results {
		width = max(width, len(r.Name))
	}
	for _, r := range results {
		units := make([]string, 0, len(r.Metrics))
		for u := range r.Metrics {
			units = append(units, u)
		}
		slices.SortFunc(units, func(a, b string) int {
			switch {
			case a == b:
				return 0
			case a == "ns/op":
				return -1
			case b == "ns/op":
				return 1
			}
			return strings.Compare(a, b)
		})
		var parts []string
		for _, u := range units {
			parts = append(parts, fmt.Sprintf("%10s %s", formatMetric(r.Metrics[u]), u))
		}
		fmt.Fprintf(w, "  %-*s %s\n", width, r.Name, strings.Join(parts, "  "))
	}
}

// formatMetric prints whole and large numbers without decimals, the others to four digits.
func formatMetric(v float64) string {
	switch {
	case v == float64(int64(v)) || v >= 1000:
		return fmt.Sprintf("%.0f", v)
	default:
		return fmt.Sprintf("%.4g", v)
	}
}

// stepsTable says which steps succeeded and how long each took.
func stepsTable(w io.Writer, steps []stepResult) {
	fmt.Fprintln(w, "steps")
	for _, s := range steps {
		verdict := "ok"
		switch {
		case s.Skipped:
			verdict = "skipped"
		case !s.OK:
			verdict = "FAILED"
		}
		line := fmt.Sprintf("  %-22s %-8s %6.1fs", s.Name, verdict, s.Seconds)
		if s.Error != "" {
			first, _, _ := strings.Cut(s.Error, "\n")
			line += "  " + clip(first, 160)
		}
		fmt.Fprintln(w, line)
	}
}
