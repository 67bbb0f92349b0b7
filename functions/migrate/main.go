// Command migrate is the migrate Lambda: the handler of the DatabaseMigrations custom resource in
// template.yaml, which CloudFormation calls once per deploy (when the function's code, and with
// it the embedded migrations, changed) before any other function's new code goes live. It applies
// the pending migrations (infra/migrations: goose, serialized by a lock row so two deploys
// cannot migrate at once, even through RDS Proxy or PgBouncer), records them in the audit log,
// and answers CloudFormation; a failed migration answers FAILED with the error, which fails the
// deploy and rolls the stack back. It is the only function that links goose, and no function
// migrates on a cold start.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/aws/aws-lambda-go/cfn"
	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-lambda-go/lambdacontext"

	"github.com/helixhq/helix/infra/migrations"
	"github.com/helixhq/helix/shared/app"
)

func main() {
	app.TuneGC(os.Environ()) // Helix's GOGC and, on Lambda, GOMEMLIMIT defaults
	ctx := context.Background()
	cfg, err := app.Configure(ctx, app.Options{Function: "migrate", Environ: os.Environ()})
	if err != nil {
		fmt.Fprintln(os.Stderr, "migrate: cold start failed:", err)
		os.Exit(1)
	}
	log := slog.New(slog.NewJSONHandler(os.Stdout, &slog.HandlerOptions{Level: cfg.LogLevel})).With("function", "migrate")
	lambda.Start(cfn.LambdaWrap(newHandler(cfg.DatabaseURL, log)))
}

// physicalID names the one thing the custom resource stands for: the database's schema.
const physicalID = "helix-database-schema"

// answerMargin is kept from the Lambda's deadline to answer CloudFormation: a migration still
// running then is cancelled and reported as failed, rather than leaving the stack waiting an
// hour for an answer that never comes.
const answerMargin = 15 * time.Second

// newHandler builds the custom resource's handler over the database at url.
func newHandler(url string, log *slog.Logger) cfn.CustomResourceFunction {
	return func(ctx context.Context, ev cfn.Event) (string, map[string]any, error) {
		switch ev.RequestType {
		case cfn.RequestDelete:
			// Deleting the stack (or replacing the resource) never drops the schema: the data
			// outlives the deployment.
			log.Info("delete: the schema is left as it is", "stack", ev.StackID)
			return physicalID, nil, nil
		case cfn.RequestCreate, cfn.RequestUpdate:
		default:
			return physicalID, nil, fmt.Errorf("unknown request type %q", ev.RequestType)
		}
		if deadline, ok := ctx.Deadline(); ok {
			var cancel context.CancelFunc
			ctx, cancel = context.WithDeadline(ctx, deadline.Add(-answerMargin))
			defer cancel()
		}
		// An update is also what a rollback sends (the old properties): Apply is then a no-op,
		// because migrations only move forward (docs/admin/rollback.md).
		sum, err := migrations.Apply(ctx, url, log)
		for _, f := range sum.Applied {
			log.Info("applied", "migration", f)
		}
		// What applied is recorded even when a later file failed: it stays applied.
		if rerr := migrations.RecordApplied(ctx, url, sum); rerr != nil {
			if err == nil {
				err = rerr
			}
			log.Error("applied migrations not recorded in the audit log", "err", rerr)
		}
		if err != nil {
			if errors.Is(err, context.DeadlineExceeded) {
				err = fmt.Errorf("%w (the migrate function ran out of time: raise its Timeout)", err)
			}
			log.Error("migrations failed", "err", err, "request", requestID(ctx))
			return physicalID, nil, err
		}
		log.Info("the database is up to date", "version", sum.Version, "applied", len(sum.Applied))
		return physicalID, map[string]any{"Version": sum.Version, "Applied": len(sum.Applied)}, nil
	}
}

func requestID(ctx context.Context) string {
	if lc, ok := lambdacontext.FromContext(ctx); ok {
		return lc.AwsRequestID
	}
	return ""
}
