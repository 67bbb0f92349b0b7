// Package migrations holds Helix's versioned SQL migrations, embedded so that `make migrate`
// (infra/migrate) and the tests apply exactly the files in the binary. Lambdas never run them.
package migrations

import "embed"

// FS holds the goose migrations, applied in file-name order.
//
//go:embed *.sql
var FS embed.FS
