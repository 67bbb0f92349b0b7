package router_test

import (
	"testing"

	"github.com/helixhq/helix/shared/router"
)

// BenchmarkRouteDecide measures one routing decision for email-compose against the seeded
// catalog: the in-process hot path of POST /ai-router/route. Target: < 2 µs/op, 0 allocs/op.
func BenchmarkRouteDecide(b *testing.B) {
	s := seededSnapshot()
	req := router.Request{OperationID: "email-compose", InputTokens: 100}
	b.ReportAllocs()
	for b.Loop() {
		d, err := router.Decide(s, req)
		if err != nil || d.EstimatedCost != 175_000 {
			b.Fatalf("Decide = %d, %v", d.EstimatedCost, err)
		}
	}
}
