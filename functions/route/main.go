// Command route is the route Lambda: routing decisions, cost estimates and route administration
// behind API Gateway (HTTP API, payload v2).
package main

import (
	"context"
	"fmt"
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
	cache, routes := base.Catalog()
	srv := httpapi.NewServer(base.Auth, base.Log)
	routeapi.Register(srv, routeapi.Deps{Catalog: cache, Routes: routes, Budgets: base.Ledger()})

	lambda.StartWithOptions(lambdaio.HTTPHandler(srv, base.Log), lambda.WithEnableSIGTERM(base.Pool.Close))
}
