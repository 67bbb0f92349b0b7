// Command route is the route Lambda: routing decisions, cost estimates and route administration
// behind API Gateway (HTTP API, payload v2).
package main

import (
	"context"
	"fmt"
	"net/http"
	"os"

	"github.com/aws/aws-lambda-go/lambda"

	"github.com/helixhq/helix/shared/app"
	"github.com/helixhq/helix/shared/httpapi"
	"github.com/helixhq/helix/shared/lambdaio"
	"github.com/helixhq/helix/shared/routeapi"
)

func main() {
	ctx := context.Background()
	base, err := app.Boot(ctx, app.Options{Function: "route", Getenv: os.Getenv, LogOut: os.Stdout})
	if err != nil {
		fmt.Fprintln(os.Stderr, "route: cold start failed:", err)
		os.Exit(1)
	}
	lambda.StartWithOptions(lambdaio.HTTPHandler(newHandler(base), base.Log), lambda.WithEnableSIGTERM(base.Pool.Close))
}

// newHandler builds the function's HTTP handler; tests invoke it with real API Gateway events.
func newHandler(base *app.Base) http.Handler {
	cache, routes := base.Catalog()
	srv := httpapi.NewServer(base.Auth, base.Log)
	routeapi.Register(srv, routeapi.Deps{Catalog: cache, Routes: routes, Budgets: base.Ledger()})
	return srv
}
