// Package migrations holds Helix's versioned SQL migrations and applies them with goose. The SQL
// is embedded so that `make migrate` (infra/migrate), the dev server and the tests apply exactly
// the files in the binary. Lambdas never run them, and never link goose.
package migrations

import "embed"

// FS holds the goose migrations, applied in file-name order.
//
//go:embed *.sql
var FS embed.FS
