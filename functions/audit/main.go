// Command audit is the audit Lambda, run every minute by an EventBridge schedule: it sequences the
// audit log, appends and posts the heartbeat, signs and posts the checkpoint, delivers the
// Discord outbox, sweeps expired budget reservations, queues synthesis for idle conversations
// and probes the providers (package auditapp). It serves no HTTP and needs no JWT settings.
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambda"

	"github.com/helixhq/helix/shared/app"
	"github.com/helixhq/helix/shared/app/auditapp"
	"github.com/helixhq/helix/shared/emf"
	"github.com/helixhq/helix/shared/llm/providers"
	"github.com/helixhq/helix/shared/queue/sqsqueue"
	"github.com/helixhq/helix/shared/synthesis"
)

func main() {
	app.TuneGC(os.Environ()) // Helix's GOGC and, on Lambda, GOMEMLIMIT defaults
	ctx := context.Background()
	core, err := app.Boot(ctx, app.Options{Function: "audit", Environ: os.Environ(), LogOut: os.Stdout})
	if err != nil {
		fmt.Fprintln(os.Stderr, "audit: cold start failed:", err)
		os.Exit(1)
	}
	// CloudWatch metrics (EMF) on the log stream, for what is built below to write to.
	core.Metrics = emf.New(os.Stdout, emf.Options{Namespace: core.Config.MetricsNamespace, Function: "audit"})
	registry, err := providers.New(ctx, core.Config.Providers, providers.NewHTTPClient())
	if err != nil {
		fmt.Fprintln(os.Stderr, "audit: providers:", err)
		os.Exit(1)
	}
	var queue synthesis.Queue
	if u := core.Config.Synthesis.QueueURL; u != "" {
		if queue, err = sqsqueue.FromAWS(ctx, u); err != nil {
			fmt.Fprintln(os.Stderr, "audit:", err)
			os.Exit(1)
		}
	}
	a, err := auditapp.New(core, queue, registry)
	if err != nil {
		fmt.Fprintln(os.Stderr, "audit:", err)
		os.Exit(1)
	}
	lambda.StartWithOptions(newHandler(a), lambda.WithEnableSIGTERM(core.Pool.Close))
}

// Answer is what an invocation returns (visible in the Lambda console and logs).
type Answer struct {
	Steps      map[string]string `json:"steps"`
	Integrated int               `json:"integrated"`
	LogSize    int64             `json:"log_size"`
}

// newHandler builds the schedule's handler; tests invoke it with the scheduled event's JSON.
func newHandler(a *auditapp.Audit) func(context.Context, events.EventBridgeEvent) (Answer, error) {
	return func(ctx context.Context, ev events.EventBridgeEvent) (Answer, error) {
		// Only the schedule runs the minute: anything else invoking the function is refused.
		if ev.Source != "aws.events" || ev.DetailType != "Scheduled Event" {
			return Answer{}, fmt.Errorf("audit: not a scheduled event (source %q, detail-type %q)", ev.Source, ev.DetailType)
		}
		r := a.Run(ctx)
		return Answer{Steps: r.Steps, Integrated: r.Integrated, LogSize: r.Size}, nil
	}
}
