package migrations_test

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"testing/fstest"

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

// emptyDatabase is a fresh database with an empty schema (pgtest's are migrated copies).
func emptyDatabase(t *testing.T) string {
	t.Helper()
	url := pg.NewDatabase(t)
	conn, err := pgx.Connect(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	for _, stmt := range []string{"DROP SCHEMA public CASCADE", "CREATE SCHEMA public"} {
		if _, err := conn.Exec(t.Context(), stmt); err != nil {
			t.Fatal(err)
		}
	}
	return url
}

// Two deploys (or a deploy and a make migrate) that migrate at once: the lock row lets one
// apply each file and the other find nothing left, whichever wins; neither fails. Through
// PgBouncer in transaction mode (HELIX_TEST_PGBOUNCER_URL) too, where a session advisory lock
// would not hold.
func TestConcurrentRunsApplyEachFileOnce(t *testing.T) {
	files, _ := fs.Glob(migrations.FS, "*.sql")
	url := emptyDatabase(t)
	const runs = 4
	sums := make(chan migrations.Summary, runs)
	errs := make(chan error, runs)
	for range runs {
		go func() {
			sum, err := migrations.Apply(t.Context(), url, nil)
			sums <- sum
			errs <- err
		}()
	}
	applied := map[string]int{}
	for range runs {
		if err := <-errs; err != nil {
			t.Errorf("a concurrent run failed: %v", err)
		}
		sum := <-sums
		for _, f := range sum.Applied {
			applied[f]++
		}
		if sum.Version != int64(len(files)) {
			t.Errorf("a run ended at version %d, want %d", sum.Version, len(files))
		}
	}
	for _, f := range files {
		if applied[f] != 1 {
			t.Errorf("%s applied %d times, want once", f, applied[f])
		}
	}
}

// A rollback runs the previous release against a database the new release migrated: its
// (older) set of migrations finds nothing to apply and does not fail on the newer versions it
// does not know, so the custom resource's rollback update succeeds and nothing is undone.
func TestOlderCodeOnANewerDatabase(t *testing.T) {
	files, _ := fs.Glob(migrations.FS, "*.sql")
	url := emptyDatabase(t)
	if _, err := migrations.Apply(t.Context(), url, nil); err != nil {
		t.Fatal(err)
	}
	older := fstest.MapFS{}
	for _, f := range files[:len(files)-2] {
		b, err := fs.ReadFile(migrations.FS, f)
		if err != nil {
			t.Fatal(err)
		}
		older[f] = &fstest.MapFile{Data: b}
	}
	sum, err := migrations.ApplyFS(t.Context(), url, older, nil)
	if err != nil {
		t.Fatalf("the previous release's migrations on the newer database: %v", err)
	}
	if len(sum.Applied) != 0 || sum.Version != int64(len(files)) {
		t.Errorf("rollback run = %+v, want nothing applied and the database left at version %d", sum, len(files))
	}
}

// A file that fails is named, and the files before it stay applied and are reported.
func TestAFailedFileIsNamed(t *testing.T) {
	files, _ := fs.Glob(migrations.FS, "*.sql")
	url := emptyDatabase(t)
	set := fstest.MapFS{}
	for _, f := range files[:2] {
		b, _ := fs.ReadFile(migrations.FS, f)
		set[f] = &fstest.MapFile{Data: b}
	}
	set["00003_broken.sql"] = &fstest.MapFile{Data: []byte("-- +goose Up\nSELECT no_such_function();\n")}
	sum, err := migrations.ApplyFS(t.Context(), url, set, nil)
	if err == nil || !strings.Contains(err.Error(), "00003_broken.sql") {
		t.Fatalf("error %v, want one naming 00003_broken.sql", err)
	}
	if len(sum.Applied) != 2 || sum.Applied[1] != filepath.Base(files[1]) {
		t.Errorf("applied %v, want the two files before the broken one", sum.Applied)
	}
}
