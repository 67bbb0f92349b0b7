// Command migrate applies Helix's pending migrations to DATABASE_URL (`make migrate`). Secret
// references (ssm:, secretsmanager:) are resolved, so it can run against a deployed database.
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/helixhq/helix/infra/migrations"

	"github.com/helixhq/helix/shared/secrets"
)

func main() {
	ctx := context.Background()
	url := os.Getenv("DATABASE_URL")
	if url == "" {
		fmt.Fprintln(os.Stderr, "migrate: DATABASE_URL is required")
		os.Exit(2)
	}
	if err := secrets.ResolveAll(ctx, secrets.NewAWSResolver, &url); err != nil {
		fmt.Fprintln(os.Stderr, "migrate:", err)
		os.Exit(1)
	}
	sum, err := migrations.Apply(ctx, url, nil)
	for _, f := range sum.Applied {
		fmt.Println("migrate: applied", f)
	}
	// What applied is recorded even when a later file failed: it stays applied.
	if rerr := migrations.RecordApplied(ctx, url, sum); rerr != nil {
		fmt.Fprintln(os.Stderr, "migrate: applied, but not recorded in the audit log:", rerr)
		if err == nil {
			os.Exit(1)
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "migrate:", err)
		os.Exit(1)
	}
	if len(sum.Applied) == 0 {
		fmt.Printf("migrate: the database is up to date (version %d)\n", sum.Version)
		return
	}
	fmt.Printf("migrate: the database is at version %d\n", sum.Version)
}
