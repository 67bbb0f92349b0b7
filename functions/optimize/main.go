// Command optimize is the optimize Lambda, run daily at 06:00 UTC by an EventBridge schedule: it
// analyses the last seven days of the operation log (the most costly and the slow operations,
// today's spend anomalies), writes model-switch recommendations to helix_recommendations, counts
// the routines' memory decay, and records a summary in the audit log, which the audit function
// posts to #helix-alerts (package optimizeapp). It serves no HTTP and calls no model.
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambda"

	"github.com/helixhq/helix/shared/app"
	"github.com/helixhq/helix/shared/app/optimizeapp"
)

func main() {
	app.TuneGC(os.Environ()) // Helix's GOGC and, on Lambda, GOMEMLIMIT defaults
	ctx := context.Background()
	core, err := app.Boot(ctx, app.Options{Function: "optimize", Environ: os.Environ(), LogOut: os.Stdout})
	if err != nil {
		fmt.Fprintln(os.Stderr, "optimize: cold start failed:", err)
		os.Exit(1)
	}
	lambda.StartWithOptions(newHandler(optimizeapp.New(core)), lambda.WithEnableSIGTERM(core.Pool.Close))
}

// newHandler builds the schedule's handler; tests invoke it with the scheduled event's JSON.
func newHandler(o *optimizeapp.Optimizer) func(context.Context, events.EventBridgeEvent) (optimizeapp.Result, error) {
	return func(ctx context.Context, ev events.EventBridgeEvent) (optimizeapp.Result, error) {
		// Only the schedule runs the analysis: anything else invoking the function is refused.
		if ev.Source != "aws.events" || ev.DetailType != "Scheduled Event" {
			return optimizeapp.Result{}, fmt.Errorf("optimize: not a scheduled event (source %q, detail-type %q)", ev.Source, ev.DetailType)
		}
		return o.Run(ctx)
	}
}
