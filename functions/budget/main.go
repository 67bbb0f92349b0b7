// Command budget is the budget Lambda: each user's budget for today and the administration of
// limits, behind API Gateway (HTTP API, payload v2).
package main

import (
	"context"
	"fmt"
	"net/http"
	"os"

	"github.com/aws/aws-lambda-go/lambda"

	"github.com/helixhq/helix/shared/app"
	"github.com/helixhq/helix/shared/app/budgetapp"
	"github.com/helixhq/helix/shared/lambdaio"
)

func main() {
	ctx := context.Background()
	base, err := app.Boot(ctx, app.Options{Function: "budget", Environ: os.Environ(), LogOut: os.Stdout})
	if err != nil {
		fmt.Fprintln(os.Stderr, "budget: cold start failed:", err)
		os.Exit(1)
	}
	lambda.StartWithOptions(lambdaio.HTTPHandler(newHandler(base), base.Log), lambda.WithEnableSIGTERM(base.Pool.Close))
}

// newHandler builds the function's HTTP handler; tests invoke it with real API Gateway events.
func newHandler(base *app.Base) http.Handler {
	srv := base.NewServer(base.Toggles())
	budgetapp.Mount(base, srv)
	return srv
}
