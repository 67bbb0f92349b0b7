package pgtest_test

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/helixhq/helix/shared/pgtest"
)

var pg *pgtest.Server

func TestMain(m *testing.M) {
	os.Exit(pgtest.Main(m, func(s *pgtest.Server) { pg = s }))
}

// viaPgBouncer: the run sends test connections through PgBouncer (make test-pgbouncer).
func viaPgBouncer() bool { return os.Getenv("HELIX_TEST_PGBOUNCER_URL") != "" }

// dbName is the database a postgres:// URL names.
func dbName(url string) string {
	base, _, _ := strings.Cut(url, "?")
	return base[strings.LastIndex(base, "/")+1:]
}

// connect opens a connection closed when the test ends.
func connect(t *testing.T, url string) *pgx.Conn {
	t.Helper()
	conn := dial(t, url)
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// dial opens a connection in exec mode (as through a transaction pooler) the caller closes.
func dial(t *testing.T, url string) *pgx.Conn {
	t.Helper()
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	cfg.DefaultQueryExecMode = pgx.QueryExecModeExec
	conn, err := pgx.ConnectConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return conn
}

// exists reports whether the server DirectURL leads to has the database.
func exists(t *testing.T, name string) bool {
	t.Helper()
	var n int
	conn := connect(t, pg.DirectURL(pg.NewDatabase(t)))
	if err := conn.QueryRow(context.Background(), `SELECT count(*) FROM pg_database WHERE datname = $1`, name).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n == 1
}

// TestNewPool: a test's pool runs in the functions' default exec mode (no named prepared
// statements, which transaction pooling loses) on its own migrated database.
func TestNewPool(t *testing.T) {
	t.Parallel()
	pool := pg.NewPool(t)
	if got := pool.Config().ConnConfig.DefaultQueryExecMode; got != pgx.QueryExecModeExec {
		t.Errorf("exec mode %v, want %v", got, pgx.QueryExecModeExec)
	}
	var db string
	var migrated bool
	if err := pool.QueryRow(context.Background(),
		`SELECT current_database(), to_regclass('goose_db_version') IS NOT NULL`).Scan(&db, &migrated); err != nil {
		t.Fatal(err)
	}
	if db != dbName(pool.Config().ConnString()) || !strings.HasPrefix(db, "helix_t_") || !migrated {
		t.Errorf("pool on %q (migrated %v), want a migrated helix_t_ database named by its URL", db, migrated)
	}
}

// TestDirectURL: DirectURL names the same database on Postgres itself, and a session there gets
// the notifications sent through the test's own URL (through PgBouncer, where LISTEN on that URL
// would not).
func TestDirectURL(t *testing.T) {
	t.Parallel()
	url := pg.NewDatabase(t)
	direct := pg.DirectURL(url)
	if dbName(direct) != dbName(url) {
		t.Fatalf("DirectURL(%q) = %q: another database", url, direct)
	}
	if viaPgBouncer() == (direct == url) {
		t.Errorf("via PgBouncer %v, yet DirectURL(%q) = %q", viaPgBouncer(), url, direct)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	listener := connect(t, direct)
	if _, err := listener.Exec(ctx, "LISTEN pgtest_probe"); err != nil {
		t.Fatal(err)
	}
	sender := connect(t, url)
	if _, err := sender.Exec(ctx, "SELECT pg_notify('pgtest_probe', current_database())"); err != nil {
		t.Fatal(err)
	}
	note, err := listener.WaitForNotification(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if note.Payload != dbName(url) {
		t.Errorf("notification %q, want %q", note.Payload, dbName(url))
	}
}

// TestThroughPgBouncer: with HELIX_TEST_PGBOUNCER_URL, a test's pool is served by PgBouncer in
// transaction pooling mode (its admin console lists the database's pool).
func TestThroughPgBouncer(t *testing.T) {
	if !viaPgBouncer() {
		t.Skip("HELIX_TEST_PGBOUNCER_URL is not set (make test-pgbouncer sets it)")
	}
	t.Parallel()
	pool := pg.NewPool(t)
	if _, err := pool.Exec(context.Background(), "SELECT 1"); err != nil {
		t.Fatal(err)
	}
	cfg, err := pgx.ParseConfig(os.Getenv("HELIX_TEST_PGBOUNCER_URL"))
	if err != nil {
		t.Fatal(err)
	}
	cfg.Database = "pgbouncer" // the admin console: simple protocol only
	cfg.DefaultQueryExecMode = pgx.QueryExecModeSimpleProtocol
	admin, err := pgx.ConnectConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(context.Background())
	rows, err := admin.Query(context.Background(), "SHOW POOLS")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	want, found := dbName(pool.Config().ConnString()), false
	for rows.Next() {
		m, err := pgx.RowToMap(rows)
		if err != nil {
			t.Fatal(err)
		}
		if m["database"] == want {
			found = true
			if m["pool_mode"] != "transaction" {
				t.Errorf("pool mode %v, want transaction", m["pool_mode"])
			}
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if !found {
		t.Errorf("PgBouncer has no pool for %s", want)
	}
}

// TestDropWithConnectionsOpen: a test's database is dropped when the test ends although
// connections to it are still open: one in a transaction the test never ended, and the server
// connections PgBouncer keeps after a pool closed.
func TestDropWithConnectionsOpen(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	var name string
	var open *pgx.Conn
	t.Run("test", func(t *testing.T) {
		pool := pg.NewPool(t)
		name = dbName(pool.Config().ConnString())
		// Several transactions at once, so several server connections stay behind.
		errs := make(chan error, 4)
		for range 4 {
			go func() {
				_, err := pool.Exec(ctx, "SELECT pg_sleep(0.1)")
				errs <- err
			}()
		}
		for range 4 {
			if err := <-errs; err != nil {
				t.Fatal(err)
			}
		}
		open = dial(t, pool.Config().ConnString())
		if _, err := open.Exec(ctx, "BEGIN; SELECT 1"); err != nil {
			t.Fatal(err)
		}
	})
	if open != nil {
		defer open.Close(ctx)
	}
	if exists(t, name) {
		t.Errorf("database %s outlived its test", name)
	}
}
