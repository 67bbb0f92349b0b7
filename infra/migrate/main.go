// Command migrate applies Helix's pending migrations to DATABASE_URL (`make migrate`). Secret
// references (ssm:, secretsmanager:) are resolved, so it can run against a deployed database.
package main

import (
	"context"
	"fmt"
	"log/slog"
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
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if err := migrations.Up(ctx, url, log); err != nil {
		fmt.Fprintln(os.Stderr, "migrate:", err)
		os.Exit(1)
	}
}
