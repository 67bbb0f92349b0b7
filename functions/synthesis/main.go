// Command synthesis is the memory synthesis Lambda: triggered by the synthesis SQS queue, it
// turns finished stretches of conversation into insights, reporting the messages it could not
// process (partial batch failures) so SQS delivers only those again. It serves no HTTP and needs
// no JWT settings.
package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambda"

	"github.com/helixhq/helix/shared/app"
	"github.com/helixhq/helix/shared/app/synthesisapp"
	"github.com/helixhq/helix/shared/emf"
	"github.com/helixhq/helix/shared/lambdaio/sqsbatch"
	"github.com/helixhq/helix/shared/llm/providers"
	"github.com/helixhq/helix/shared/synthesis"
)

func main() {
	app.TuneGC(os.Environ()) // Helix's GOGC and, on Lambda, GOMEMLIMIT defaults
	ctx := context.Background()
	core, err := app.Boot(ctx, app.Options{Function: "synthesis", Environ: os.Environ(), LogOut: os.Stdout})
	if err != nil {
		fmt.Fprintln(os.Stderr, "synthesis: cold start failed:", err)
		os.Exit(1)
	}
	// CloudWatch metrics (EMF) on the log stream, for what is built below to write to.
	core.Metrics = emf.New(os.Stdout, emf.Options{Namespace: core.Config.MetricsNamespace, Function: "synthesis"})
	registry, err := providers.New(ctx, core.Config.Providers, providers.NewHTTPClient())
	if err != nil {
		fmt.Fprintln(os.Stderr, "synthesis: providers:", err)
		os.Exit(1)
	}
	p := synthesisapp.NewProcessor(core, core.Toggles(), registry)
	lambda.StartWithOptions(newHandler(core, p), lambda.WithEnableSIGTERM(core.Pool.Close))
}

// jobReserve is about the longest a job takes (two model calls of at most 25 s, and a
// transaction): a job is not started with less than that left in the invocation.
const jobReserve = 60 * time.Second

// newHandler builds the SQS batch handler; tests invoke it with real SQS event JSON.
func newHandler(core *app.Core, p *synthesis.Processor) func(context.Context, events.SQSEvent) (events.SQSEventResponse, error) {
	return sqsbatch.Handler(func(ctx context.Context, _ string, body []byte) error {
		job, err := synthesis.ParseJob(body)
		if err != nil {
			return err // malformed: it fails alone, and SQS moves it to the dead-letter queue in the end
		}
		_, err = p.Process(ctx, job)
		return err
	}, core.Log, sqsbatch.Reserve(jobReserve))
}
