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
	}
	if r.Chat != nil {
		b.chatTable(w)
		fmt.Fprintln(w)
	}
	if r.Delivery != nil && r.Delivery.Messages > 0 {
		deliveryTable(w, r.Delivery)
		fmt.Fprintln(w)
	}
	if r.Idle != nil && r.Idle.WindowRT.Conns+r.Idle.WindowRT.roundTrips()+r.Idle.Setup.roundTrips() > 0 {
		idleTable(w, r.Idle)
		fmt.Fprintln(w)
	}
	if len(r.Router) > 0 {
		benchmarkTable(w, "routing decision in process (shared/router)", r.Router)
		fmt.Fprintln(w)
	}
	if len(r.Ledger) > 0 {
		benchmarkTable(w, "reserve+settle pairs on Postgres (shared/postgres; each pair is two durable commits)", r.Ledger)
		fmt.Fprintln(w)
	}
	if len(r.Synthesis) > 0 {
		benchmarkTable(w, "synthesis: database time of one job of 10 messages, user with 500 insights, model call excluded (shared/postgres/memorystore)", r.Synthesis)
		fmt.Fprintf(w, "  target: under %.0f ms per job (ms/job: claim + candidates + commit, each metric per job)\n", targetSynthesisMS)
		fmt.Fprintln(w)
	}
	if r.Audit != nil {
		b.auditTable(w)
		fmt.Fprintln(w)
	}
	if r.Lambda != nil {
		lambdaTable(w, r.Lambda)
		fmt.Fprintln(w)
	}
	if r.Stream != nil {
		streamTable(w, r.Stream)
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
	fmt.Fprintln(w, "POST /ai-router/route, by HELIX_DB_EXEC_MODE (issue 12 target at -c 64: >= 10,000 req/s, p99 < 5 ms)")
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

// gatewayTable shows each target's medians over the interleaved rounds, what Helix and Portkey
// add to the direct p50, Helix's throughput over Portkey's, and Helix's commits per request.
func (b *bench) gatewayTable(w io.Writer) {
	g := b.res.Gateway
	fmt.Fprintf(w, "gateway: /v1/chat/completions through Helix and through Portkey %s vs the mock upstream directly (mock -delay %s)\n",
		portkeyVersion, g.MockDelay)
	fmt.Fprintf(w, "  medians over %d interleaved rounds (direct, portkey, helix) of %s each, per concurrency\n", g.Rounds, g.Duration)
	fmt.Fprintf(w, "  %4s  %-16s %6s %10s %10s %10s %12s\n", "-c", "target", "rounds", "req/s", "p50 ms", "p99 ms", "added p50")
	portkeyMissing := "not measured"
	if g.Portkey != nil && g.Portkey.Reason != "" {
		portkeyMissing = "not measured: " + clip(g.Portkey.Reason, 100)
	}
	for _, c := range concurrencies() {
		rows := []struct {
			path  string
			users int
			label string
		}{{pathDirect, 0, "direct"}, {pathPortkey, 0, "portkey " + portkeyVersion}}
		if c == gatewayUsers {
			rows = append(rows, struct {
				path  string
				users int
				label string
			}{pathHelix, gatewayUsers, fmt.Sprintf("helix, %d users", gatewayUsers)})
		}
		rows = append(rows, struct {
			path  string
			users int
			label string
		}{pathHelix, 1, "helix, 1 user"})
		for _, row := range rows {
			m := g.median(row.path, c, row.users)
			if m == nil {
				why := "(no result)"
				if row.path == pathPortkey {
					why = portkeyMissing
				}
				fmt.Fprintf(w, "  %4d  %-16s %s\n", c, row.label, why)
				continue
			}
			added := ""
			if m.AddedP50MS != nil {
				added = fmt.Sprintf("%+.3f", *m.AddedP50MS)
			}
			fmt.Fprintf(w, "  %4d  %-16s %6d %10.0f %10.3f %10.3f %12s\n", c, row.label, m.Rounds, m.RPS, m.P50MS, m.P99MS, added)
		}
	}
	fmt.Fprintf(w, "  added p50 = the target's median p50 minus the direct runs' median p50 at the same -c, in ms\n")
	for _, line := range gatewayVerdicts(g) {
		fmt.Fprintf(w, "  %s\n", line)
	}
	if p := g.PG; p != nil {
		fmt.Fprintf(w, "  Postgres: %.3f commits per Helix request (%d xact_commit on the bench database for %d successful requests of the Helix runs, probes and warm-ups included; %d rollbacks)\n",
			p.CommitsPerRequest, p.Commits, p.Requests, p.Rollbacks)
		fmt.Fprintf(w, "    counted from just before the first Helix run to %s after the last (%.0fs, the direct and Portkey runs in between included, when the dev server does only its background work: %d commits in the %.0fs before the first Helix run)\n",
			statsFlushWait, p.Seconds, p.Background, p.BackgroundSeconds)
		if p.WALError == "" {
			fmt.Fprintf(w, "  WAL fsyncs: %.3f per Helix request (pg_stat_wal.wal_sync %d over the same window; the whole cluster's, other databases' included)\n",
				p.WALSyncsPerRequest, p.WALSyncs)
		} else {
			fmt.Fprintf(w, "  WAL fsyncs: not read (%s)\n", p.WALError)
		}
		for _, c := range p.ByConcurrency {
			wal := ""
			if p.WALError == "" {
				wal = fmt.Sprintf(", %.3f WAL fsyncs", c.WALSyncsPerRequest)
			}
			fmt.Fprintf(w, "    -c %d: %.3f commits%s per request (%d commits, %d requests, %.0fs)\n",
				c.Concurrency, c.CommitsPerRequest, wal, c.Commits, c.Requests, c.Seconds)
		}
	}
}

// gatewayVerdicts are the lines on issue 3's targets: Helix adds at most 1 ms to the p50 at
// concurrency 1, and at 64 (64 users) serves 5 times Portkey's req/s with a p99 under 100 ms.
func gatewayVerdicts(g *gatewayResult) []string {
	verdict := func(ok bool) string {
		if ok {
			return "target met"
		}
		return "target missed"
	}
	var out []string
	if h := g.median(pathHelix, 1, 1); h != nil && h.AddedP50MS != nil {
		out = append(out, fmt.Sprintf("-c 1: Helix adds %+.3f ms to the p50 (target <= %.1f ms): %s", *h.AddedP50MS,
			load.Millis(targetAddedP50C1), verdict(*h.AddedP50MS <= load.Millis(targetAddedP50C1))))
	}
	if p := g.median(pathPortkey, 1, 0); p != nil && p.AddedP50MS != nil {
		out = append(out, fmt.Sprintf("-c 1: Portkey adds %+.3f ms to the p50", *p.AddedP50MS))
	}
	h := g.median(pathHelix, gatewayUsers, gatewayUsers)
	if h == nil {
		return out
	}
	if g.HelixOverPortkey > 0 {
		out = append(out, fmt.Sprintf("-c %d: Helix (%d users) req/s / Portkey req/s = %.2fx (target >= %.0fx): %s", gatewayUsers, gatewayUsers,
			g.HelixOverPortkey, targetOverPortkeyRP, verdict(g.HelixOverPortkey >= targetOverPortkeyRP)))
		if len(g.RoundRatios) > 0 {
			ratios := make([]string, len(g.RoundRatios))
			for i, r := range g.RoundRatios {
				ratios[i] = fmt.Sprintf("%.2fx", r)
			}
			out = append(out, fmt.Sprintf("-c %d: the same ratio round by round (each Helix run over the Portkey run just before it): %s",
				gatewayUsers, strings.Join(ratios, " ")))
		}
	} else {
		out = append(out, fmt.Sprintf("-c %d: Helix req/s / Portkey req/s: Portkey not measured", gatewayUsers))
	}
	out = append(out, fmt.Sprintf("-c %d: Helix (%d users) p99 %.3f ms (target < %.0f ms): %s", gatewayUsers, gatewayUsers,
		h.P99MS, load.Millis(targetP99C64), verdict(h.P99MS < load.Millis(targetP99C64))))
	return out
}

// targetSynthesisMS is issue 7's target for the database time of one synthesis job.
const targetSynthesisMS = 50.0

// chatTable shows the send's throughput, latency and round trips per message.
func (b *bench) chatTable(w io.Writer) {
	c := b.res.Chat
	fmt.Fprintf(w, "chat: POST /chat/sessions/{id}/messages, mock upstream -delay %s, a user and a session per worker\n", b.cfg.mockDelay)
	fmt.Fprintf(w, "  %4s %10s %10s %10s\n", "-c", "req/s", "p50 ms", "p99 ms")
	if s := c.Summary; s.Requests > 0 {
		fmt.Fprintf(w, "  %4d %10.0f %10.3f %10.3f\n", s.Concurrency, s.RPS, load.Millis(s.P50), load.Millis(s.P99))
	} else {
		fmt.Fprintf(w, "  %4d %10s\n", chatConcurrency, "(no result)")
	}
	if c.CountedMessages > 0 {
		verdict := "target missed"
		if c.RoundTripsPerMsg <= targetChatRoundTrips {
			verdict = "target met"
		}
		fmt.Fprintf(w, "  Postgres round trips per message: %.2f (%d Syncs + %d simple Queries on the wire for %d messages, during the load only; target: the pipeline's 2 plus at most 2 = %.0f: %s)\n",
			c.RoundTripsPerMsg, c.RoundTrips.Syncs, c.RoundTrips.Queries, c.CountedMessages, targetChatRoundTrips, verdict)
	}
	if c.PGTransactions > 0 {
		fmt.Fprintf(w, "  Postgres transactions per message: %.2f (pg_stat_database xact_commit + xact_rollback while the server ran, start-up included)\n",
			c.PGTransactionsPerMessage)
	}
	if c.Waits.Samples > 0 {
		fmt.Fprintf(w, "  Postgres backends during the load (%.1f active on average): %s\n", c.Waits.MeanActive, c.Waits.line())
	}
}

// deliveryTable shows how soon the waiting device had each message.
func deliveryTable(w io.Writer, d *deliveryResult) {
	fmt.Fprintf(w, "delivery to a waiting second device (%d messages, one at a time; issue 7: within 2 s)\n", d.Messages)
	fmt.Fprintf(w, "  %-46s %10s %10s %10s %10s\n", "", "p50 ms", "p90 ms", "p99 ms", "max ms")
	row := func(label string, l latencies) {
		fmt.Fprintf(w, "  %-46s %10.3f %10.3f %10.3f %10.3f\n", label, load.Millis(l.P50), load.Millis(l.P90), load.Millis(l.P99), load.Millis(l.Max))
	}
	row("user message, from just before the send", d.UserMessage)
	row("reply, from the sender's response (- = first)", d.Reply)
	row("the send itself (its response has the reply)", d.Send)
}

// idleTable shows the database load of the idle waiting clients.
func idleTable(w io.Writer, r *idleResult) {
	fmt.Fprintf(w, "Postgres load of %d idle waiting clients (long-polls with wait=%s), round trips counted on the wire\n", r.Clients, r.Wait)
	fmt.Fprintf(w, "  %-62s %8.2f /s  (%d in %s)\n", "every poll held (the first part of the window)", r.HeldPerSec, r.HeldRT.roundTrips(), r.HeldPart)
	fmt.Fprintf(w, "  %-62s %8.2f /s  (%d in %s, %d polls ended and were sent again)\n", "the whole window", r.WindowPerSec, r.WindowRT.roundTrips(), r.Window, r.PollsEnded)
	fmt.Fprintf(w, "  %-62s %8.2f\n", "round trips per long-poll sent (measured at the start)", r.SetupPerPoll)
	fmt.Fprintf(w, "  (polling every 250 ms instead would be %d queries/s)\n", r.Clients*4)
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
