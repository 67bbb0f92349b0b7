package migrations_test

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/helixhq/helix/infra/migrations"
	"github.com/helixhq/helix/shared/pgtest"
)

var pg *pgtest.Server

func TestMain(m *testing.M) {
	os.Exit(pgtest.Main(m, func(s *pgtest.Server) { pg = s }))
}

// Apply says what it did (make migrate prints it): every file on an empty database, nothing the
// second time, and the version either way.
func TestApplySaysWhatItDid(t *testing.T) {
	files, err := fs.Glob(migrations.FS, "*.sql")
	if err != nil || len(files) == 0 {
		t.Fatalf("embedded migrations: %v %v", files, err)
	}
	url := pg.NewDatabase(t)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	// The test database is a copy of the migrated template; start from an empty one.
	for _, stmt := range []string{"DROP SCHEMA public CASCADE", "CREATE SCHEMA public"} {
		if _, err := conn.Exec(ctx, stmt); err != nil {
			t.Fatal(err)
		}
	}
	conn.Close(ctx)

	sum, err := migrations.Apply(ctx, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(sum.Applied) != len(files) || sum.Applied[0] != filepath.Base(files[0]) || sum.Version != int64(len(files)) ||
		len(sum.Versions) != len(files) || sum.Versions[len(files)-1] != int64(len(files)) {
		t.Fatalf("first run = %+v, want all %d files and version %d", sum, len(files), len(files))
	}
	// make migrate puts what it applied in the audit log, one event per file.
	if err := migrations.RecordApplied(ctx, url, sum); err != nil {
		t.Fatal(err)
	}
	conn, err = pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var n int
	var last string
	if err := conn.QueryRow(ctx, `SELECT count(*), max(payload) FILTER (WHERE payload::jsonb->>'version' = $1) FROM audit_pending WHERE kind = 'migration'`,
		strconv.Itoa(len(files))).Scan(&n, &last); err != nil {
		t.Fatal(err)
	}
	if n != len(files) || !strings.Contains(last, filepath.Base(files[len(files)-1])) {
		t.Errorf("%d migrations recorded (last %s), want %d", n, last, len(files))
	}
	sum, err = migrations.Apply(ctx, url, nil)
	if err != nil || len(sum.Applied) != 0 || sum.Version != int64(len(files)) {
		t.Fatalf("second run = %+v, %v; want nothing applied, version %d", sum, err, len(files))
	}
}
