// Command route is the route Lambda: routing decisions and cost estimates, the intelligence
// operations, the OpenAI-compatible API, and route, model, approval and toggle administration,
// behind API Gateway (HTTP API, payload v2). The same binary is also RouteStreamFunction, behind
// a Function URL in RESPONSE_STREAM mode (HELIX_LAMBDA_ENTRY=function_url), where it serves
// streamRoutes only: API Gateway's HTTP API cannot stream.
package main

import (
	"context"
	"fmt"
	"net/http"
	"os"

	"github.com/aws/aws-lambda-go/lambda"

	"github.com/helixhq/helix/shared/app"
	"github.com/helixhq/helix/shared/app/httpapp"
	"github.com/helixhq/helix/shared/app/routeapp"
	"github.com/helixhq/helix/shared/config"
	"github.com/helixhq/helix/shared/emf"
	"github.com/helixhq/helix/shared/execute"
	"github.com/helixhq/helix/shared/httpapi"
	"github.com/helixhq/helix/shared/lambdaio"
	"github.com/helixhq/helix/shared/llm/providers"
)

func main() {
	app.TuneGC(os.Environ()) // Helix's GOGC and, on Lambda, GOMEMLIMIT defaults
	ctx := context.Background()
	a, err := httpapp.Boot(ctx, app.Options{Function: "route", Environ: os.Environ(), LogOut: os.Stdout})
	if err != nil {
		fmt.Fprintln(os.Stderr, "route: cold start failed:", err)
		os.Exit(1)
	}
	// CloudWatch metrics (EMF) on the log stream, for what is built below to write to.
	a.Metrics = emf.New(os.Stdout, emf.Options{Namespace: a.Config.MetricsNamespace, Function: "route"})
	registry, err := providers.New(ctx, a.Config.Providers, providers.NewHTTPClient())
	if err != nil {
		fmt.Fprintln(os.Stderr, "route: providers:", err)
		os.Exit(1)
	}
	lambda.StartWithOptions(entry(a, newHandler(a, registry)), lambda.WithEnableSIGTERM(a.Pool.Close))
}

// streamRoutes are what the streaming Function URL serves: the routes whose answers stream.
var streamRoutes = []string{"POST /v1/chat/completions"}

// entry is the Lambda handler for h by what invokes the function (HELIX_LAMBDA_ENTRY): API
// Gateway's HTTP API events, or a streaming Function URL's, which reach streamRoutes only (no
// authorizer there: h verifies the bearer token itself).
func entry(a *httpapp.App, h http.Handler) any {
	if a.Config.HTTP.LambdaEntry == config.LambdaEntryFunctionURL {
		return lambdaio.StreamingHandler(httpapi.OnlyRoutes(h, "the HTTP API (the stack's ApiUrl output)", streamRoutes...), a.Log)
	}
	return lambdaio.HTTPHandler(h, a.Log)
}

// newHandler builds the function's HTTP handler; tests invoke it with real API Gateway events.
func newHandler(a *httpapp.App, providers execute.Providers) http.Handler {
	srv := a.NewServer(routeapp.MaintenanceExempt...)
	routeapp.Mount(a, srv, providers)
	return srv
}
