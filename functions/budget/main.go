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
	"github.com/helixhq/helix/shared/app/httpapp"
	"github.com/helixhq/helix/shared/lambdaio"
)

func main() {
	app.TuneGC(os.Environ()) // Helix's GOGC and, on Lambda, GOMEMLIMIT defaults
	a, err := httpapp.Boot(context.Background(), app.Options{Function: "budget", Environ: os.Environ(), LogOut: os.Stdout})
	if err != nil {
		fmt.Fprintln(os.Stderr, "budget: cold start failed:", err)
		os.Exit(1)
	}
	lambda.StartWithOptions(lambdaio.HTTPHandler(newHandler(a), a.Log), lambda.WithEnableSIGTERM(a.Pool.Close))
}

// newHandler builds the function's HTTP handler; tests invoke it with real API Gateway events.
func newHandler(a *httpapp.App) http.Handler {
	srv := a.NewServer(budgetapp.MaintenanceExempt...)
	budgetapp.Mount(a, srv)
	return srv
}
