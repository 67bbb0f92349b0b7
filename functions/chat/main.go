// Command chat is the chat Lambda: chat sessions and messages across devices, and the user's
// memory (list, export, erase), behind API Gateway (HTTP API, payload v2). Replies run through
// the execution pipeline; synthesis jobs go to the SQS queue. The same binary is also
// ChatStreamFunction, behind a Function URL in RESPONSE_STREAM mode
// (HELIX_LAMBDA_ENTRY=function_url), where it serves streamRoutes only: API Gateway's HTTP API
// cannot stream.
package main

import (
	"context"
	"fmt"
	"net/http"
	"os"

	"github.com/aws/aws-lambda-go/lambda"

	"github.com/helixhq/helix/shared/app"
	"github.com/helixhq/helix/shared/app/chatapp"
	"github.com/helixhq/helix/shared/app/httpapp"
	"github.com/helixhq/helix/shared/config"
	"github.com/helixhq/helix/shared/emf"
	"github.com/helixhq/helix/shared/execute"
	"github.com/helixhq/helix/shared/httpapi"
	"github.com/helixhq/helix/shared/lambdaio"
	"github.com/helixhq/helix/shared/llm/providers"
	"github.com/helixhq/helix/shared/postgres/chatstore"
	"github.com/helixhq/helix/shared/queue/sqsqueue"
	"github.com/helixhq/helix/shared/synthesis"
)

func main() {
	app.TuneGC(os.Environ()) // Helix's GOGC and, on Lambda, GOMEMLIMIT defaults
	ctx := context.Background()
	a, err := httpapp.Boot(ctx, app.Options{Function: "chat", Environ: os.Environ(), LogOut: os.Stdout})
	if err != nil {
		fmt.Fprintln(os.Stderr, "chat: cold start failed:", err)
		os.Exit(1)
	}
	// CloudWatch metrics (EMF) on the log stream, for what is built below to write to.
	a.Metrics = emf.New(os.Stdout, emf.Options{Namespace: a.Config.MetricsNamespace, Function: "chat"})
	registry, err := providers.New(ctx, a.Config.Providers, providers.NewHTTPClient())
	if err != nil {
		fmt.Fprintln(os.Stderr, "chat: providers:", err)
		os.Exit(1)
	}
	if a.Config.Synthesis.QueueURL == "" {
		fmt.Fprintln(os.Stderr, "chat: HELIX_SYNTHESIS_QUEUE_URL is required: synthesis jobs go there")
		os.Exit(1)
	}
	queue, err := sqsqueue.FromAWS(ctx, a.Config.Synthesis.QueueURL)
	if err != nil {
		fmt.Fprintln(os.Stderr, "chat:", err)
		os.Exit(1)
	}
	handler, notifier := newHandler(a, registry, queue)
	// On shutdown the LISTEN connection (outside the pool) goes first, then the pool.
	lambda.StartWithOptions(entry(a, handler), lambda.WithEnableSIGTERM(notifier.Close, a.Pool.Close))
}

// streamRoutes are what the streaming Function URL serves: the routes whose answers stream (a
// message sent with Accept: text/event-stream).
var streamRoutes = []string{"POST /chat/sessions/{id}/messages"}

// entry is the Lambda handler for h by what invokes the function (HELIX_LAMBDA_ENTRY): API
// Gateway's HTTP API events, or a streaming Function URL's, which reach streamRoutes only (no
// authorizer there: h verifies the bearer token itself).
func entry(a *httpapp.App, h http.Handler) any {
	if a.Config.HTTP.LambdaEntry == config.LambdaEntryFunctionURL {
		return lambdaio.StreamingHandler(httpapi.OnlyRoutes(h, "the HTTP API (the stack's ApiUrl output)", streamRoutes...), a.Log)
	}
	return lambdaio.HTTPHandler(h, a.Log)
}

// newHandler builds the function's HTTP handler and the notifier it long-polls with (to close on
// shutdown); tests invoke the handler with real API Gateway events.
func newHandler(a *httpapp.App, providers execute.Providers, queue synthesis.Queue) (http.Handler, *chatstore.Notifier) {
	srv := a.NewServer(chatapp.MaintenanceExempt...)
	notifier := chatapp.Mount(a, srv, providers, queue)
	return srv, notifier
}
