// Command route is the route Lambda: routing decisions and cost estimates, the intelligence
// operations, the OpenAI-compatible API, and route, approval and toggle administration, behind
// API Gateway (HTTP API, payload v2).
package main

import (
	"context"
	"fmt"
	"net/http"
	"os"

	"github.com/aws/aws-lambda-go/lambda"

	"github.com/helixhq/helix/shared/app"
	"github.com/helixhq/helix/shared/app/routeapp"
	"github.com/helixhq/helix/shared/execute"
	"github.com/helixhq/helix/shared/lambdaio"
	"github.com/helixhq/helix/shared/llm/providers"
)

func main() {
	ctx := context.Background()
	base, err := app.Boot(ctx, app.Options{Function: "route", Environ: os.Environ(), LogOut: os.Stdout})
	if err != nil {
		fmt.Fprintln(os.Stderr, "route: cold start failed:", err)
		os.Exit(1)
	}
	registry, err := providers.FromEnv(ctx, base.Getenv, providers.NewHTTPClient())
	if err != nil {
		fmt.Fprintln(os.Stderr, "route: providers:", err)
		os.Exit(1)
	}
	lambda.StartWithOptions(lambdaio.HTTPHandler(newHandler(base, registry), base.Log), lambda.WithEnableSIGTERM(base.Pool.Close))
}

// newHandler builds the function's HTTP handler; tests invoke it with real API Gateway events.
func newHandler(base *app.Base, providers execute.Providers) http.Handler {
	tg := base.Toggles()
	srv := base.NewServer(tg)
	routeapp.Mount(base, srv, tg, providers)
	return srv
}
