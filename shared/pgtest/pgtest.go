// Package pgtest gives tests throwaway Postgres databases with every migration applied.
//
// Each test binary creates one migrated template database (Start, from TestMain); each test
// then gets its own copy (NewDatabase), which CREATE DATABASE … TEMPLATE makes in milliseconds,
// so tests never share rows. Every database is dropped when its test or the binary ends.
//
// The server is HELIX_TEST_PG_URL, or the project's own cluster that infra/pg/ensure.sh finds or
// starts, so `go test ./...` works without `make`.
//
// With HELIX_TEST_PGBOUNCER_URL set (a PgBouncer in transaction pooling mode in front of that
// server, as infra/pg/pgbouncer.sh prints), the URLs and pools tests get connect through it, as
// the functions do in production behind a transaction pooler; the template, its migrations and
// every CREATE and DROP DATABASE still go straight to Postgres. What needs a session of its own
// (LISTEN) takes DirectURL.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/helixhq/helix/infra/migrations"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/helixhq/helix/shared/postgres"
)

// Server is a Postgres server on which tests create databases.
type Server struct {
	adminURL  string // Postgres itself: template, migrations, CREATE and DROP DATABASE
	clientURL string // where tests connect: PgBouncer when set, else adminURL
	template  string
}

// Start finds the server and creates this binary's migrated template database.
func Start() (*Server, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	admin, err := serverURL(ctx)
	if err != nil {
		return nil, err
	}
	s := &Server{adminURL: admin, clientURL: admin, template: "helix_tmpl_" + randomSuffix()}
	if err := s.exec(ctx, "CREATE DATABASE "+pgx.Identifier{s.template}.Sanitize()); err != nil {
		return nil, fmt.Errorf("create template database: %w", err)
	}
	if err := migrations.Up(ctx, withDatabase(admin, s.template), nil); err != nil {
		s.Close()
		return nil, err
	}
	if u := os.Getenv("HELIX_TEST_PGBOUNCER_URL"); u != "" {
		if err := sameServer(ctx, u, s.template); err != nil {
			s.Close()
			return nil, fmt.Errorf("HELIX_TEST_PGBOUNCER_URL: %w", err)
		}
		// The tests' own connections (pgx.Connect on a NewDatabase URL) then run as the
		// functions' pools do: no named prepared statements, which transaction pooling breaks.
		s.clientURL = u + map[bool]string{true: "&", false: "?"}[strings.Contains(u, "?")] + "default_query_exec_mode=exec"
	}
	return s, nil
}

// sameServer checks that the pooler at url forwards to the server that has the database
// template (just created under a random name), without connecting to the template itself: a
// connection a pooler kept open to it would make every CREATE DATABASE … TEMPLATE fail.
func sameServer(ctx context.Context, url, template string) error {
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		return errors.New("invalid connection string")
	}
	cfg.DefaultQueryExecMode = pgx.QueryExecModeExec // no named statements through a pooler
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	var n int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM pg_database WHERE datname = $1`, template).Scan(&n); err != nil {
		return err
	}
	if n != 1 {
		return errors.New("it does not lead to the server HELIX_TEST_PG_URL names")
	}
	return nil
}

// Main is the body of a package's TestMain: it starts a Server, hands it to use, runs the tests
// and drops the template.
func Main(m *testing.M, use func(*Server)) int {
	s, err := Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, "pgtest:", err)
		return 1
	}
	defer s.Close()
	use(s)
	return m.Run()
}

// Close drops the template database.
func (s *Server) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_ = s.exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{s.template}.Sanitize()+" WITH (FORCE)")
}

// NewDatabase creates a migrated database for one test and returns its URL (through PgBouncer
// when HELIX_TEST_PGBOUNCER_URL is set); the database is dropped when the test ends, with FORCE,
// so connections a test or PgBouncer still holds to it do not stop the drop.
func (s *Server) NewDatabase(t testing.TB) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	name := "helix_t_" + randomSuffix()
	if err := s.exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()+" TEMPLATE "+pgx.Identifier{s.template}.Sanitize()); err != nil {
		t.Fatalf("pgtest: create database: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := s.exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
			t.Errorf("pgtest: drop database %s: %v", name, err)
		}
	})
	return withDatabase(s.clientURL, name)
}

// DirectURL returns the URL of the same database as url (one NewDatabase returned, or a
// pgtest pool's Config().ConnString()) on Postgres itself, bypassing PgBouncer: for what needs a
// session of its own, such as LISTEN. Without HELIX_TEST_PGBOUNCER_URL it returns url's
// database on the same server.
func (s *Server) DirectURL(url string) string {
	base, _, _ := strings.Cut(url, "?")
	return withDatabase(s.adminURL, base[strings.LastIndex(base, "/")+1:])
}

// ListenConfig is where a session-level LISTEN on pool's database connects: Postgres itself
// (DirectURL), as HELIX_DB_LISTEN_URL points the chat function past a transaction pooler.
func (s *Server) ListenConfig(t testing.TB, pool *pgxpool.Pool) *pgx.ConnConfig {
	t.Helper()
	cfg, err := pgx.ParseConfig(s.DirectURL(pool.Config().ConnString()))
	if err != nil {
		t.Fatalf("pgtest: listen config: %v", err)
	}
	return cfg
}

// NewPool creates a database for one test and a pool on it (in "exec" mode, the functions' default),
// closed when the test ends.
func (s *Server) NewPool(t testing.TB) *pgxpool.Pool {
	t.Helper()
	url := s.NewDatabase(t)
	pool, err := postgres.Open(context.Background(), postgres.PoolConfig{URL: url, MaxConns: 32})
	if err != nil {
		t.Fatalf("pgtest: open pool: %v", err)
	}
	t.Cleanup(pool.Close)
	return pool
}

func (s *Server) exec(ctx context.Context, sql string) error {
	conn, err := pgx.Connect(ctx, s.adminURL)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	_, err = conn.Exec(ctx, sql)
	return err
}

func serverURL(ctx context.Context) (string, error) {
	if u := os.Getenv("HELIX_TEST_PG_URL"); u != "" {
		return u, nil
	}
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return "", fmt.Errorf("cannot locate the repository; set HELIX_TEST_PG_URL")
	}
	script := filepath.Join(filepath.Dir(file), "..", "..", "infra", "pg", "ensure.sh")
	cmd := exec.CommandContext(ctx, "bash", script)
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("%s: %w (set HELIX_TEST_PG_URL to use another server)", script, err)
	}
	return strings.TrimSpace(string(out)), nil
}

// withDatabase swaps the database name in a postgres:// URL.
func withDatabase(serverURL, db string) string {
	base, query, _ := strings.Cut(serverURL, "?")
	if i := strings.LastIndex(base, "/"); i > len("postgres://") {
		base = base[:i]
	}
	u := base + "/" + db
	if query != "" {
		u += "?" + query
	}
	return u
}

func randomSuffix() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
