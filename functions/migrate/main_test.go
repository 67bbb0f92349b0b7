package main

// These tests invoke the migrate function as CloudFormation and the Lambda runtime do: each
// custom resource request in events/migrate goes through lambda.NewHandler(cfn.LambdaWrap(...))
// with its ResponseURL pointed at a local server standing in for the presigned S3 URL, and the
// answer CloudFormation would read is checked there, with the database it migrated.

import (
	"context"
	"encoding/json"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-lambda-go/cfn"
	"github.com/aws/aws-lambda-go/lambda"
	"github.com/jackc/pgx/v5"

	"github.com/helixhq/helix/infra/migrations"
	"github.com/helixhq/helix/shared/pgtest"
)

var pg *pgtest.Server

func TestMain(m *testing.M) {
	os.Exit(pgtest.Main(m, func(s *pgtest.Server) { pg = s }))
}

// emptyDatabase is a fresh database with nothing in it, as a first deploy finds it (pgtest's
// databases are copies of a migrated template).
func emptyDatabase(t *testing.T) string {
	t.Helper()
	url := pg.NewDatabase(t)
	execAll(t, url, "DROP SCHEMA public CASCADE", "CREATE SCHEMA public")
	return url
}

func execAll(t *testing.T, url string, stmts ...string) {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	for _, s := range stmts {
		if _, err := conn.Exec(t.Context(), s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
}

func scalar(t *testing.T, url, query string) int64 {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var n int64
	if err := conn.QueryRow(t.Context(), query).Scan(&n); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}

// cloudFormation stands in for the presigned response URL and keeps the answers it got.
type cloudFormation struct {
	srv     *httptest.Server
	answers chan cfn.Response
}

func newCloudFormation(t *testing.T) *cloudFormation {
	c := &cloudFormation{answers: make(chan cfn.Response, 4)}
	c.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var resp cfn.Response
		if r.Method != http.MethodPut || json.NewDecoder(r.Body).Decode(&resp) != nil {
			http.Error(w, "want a PUT of a JSON response", http.StatusBadRequest)
			return
		}
		c.answers <- resp
	}))
	t.Cleanup(c.srv.Close)
	return c
}

// invoke sends the sample event name, answered to c, to the function over url, and returns
// CloudFormation's answer.
func (c *cloudFormation) invoke(t *testing.T, url, name string) cfn.Response {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("../../events/migrate", name))
	if err != nil {
		t.Fatal(err)
	}
	var ev map[string]any
	if err := json.Unmarshal(raw, &ev); err != nil {
		t.Fatal(err)
	}
	ev["ResponseURL"] = c.srv.URL + "/response?X-Amz-Signature=test"
	payload, _ := json.Marshal(ev)
	h := lambda.NewHandler(cfn.LambdaWrap(newHandler(url, slog.New(slog.NewJSONHandler(io.Discard, nil)))))
	if _, err := h.Invoke(t.Context(), payload); err != nil {
		t.Fatalf("invoke %s: %v", name, err)
	}
	select {
	case resp := <-c.answers:
		return resp
	default:
		t.Fatalf("%s: the function did not answer CloudFormation", name)
		return cfn.Response{}
	}
}

func migrationCount(t *testing.T) int64 {
	files, err := fs.Glob(migrations.FS, "*.sql")
	if err != nil || len(files) == 0 {
		t.Fatalf("embedded migrations: %v %v", files, err)
	}
	return int64(len(files))
}

// Every sample event is a custom resource request the handler answers: create migrates an empty
// database, update (a new deploy, or a rollback) finds nothing to do, delete leaves the schema.
func TestEveryEventIsAnswered(t *testing.T) {
	names, err := filepath.Glob("../../events/migrate/*.json")
	if err != nil || len(names) != 3 {
		t.Fatalf("want create, update and delete events, found %v", names)
	}
	url, c, want := emptyDatabase(t), newCloudFormation(t), migrationCount(t)
	cases := []struct {
		event   string
		applied any // the Data CloudFormation gets; nil for delete
	}{
		{"create.json", float64(want)},
		{"update.json", float64(0)},
		{"delete.json", nil},
	}
	for _, tc := range cases {
		resp := c.invoke(t, url, tc.event)
		if resp.Status != cfn.StatusSuccess || resp.PhysicalResourceID != physicalID {
			t.Fatalf("%s: answer %+v, want SUCCESS for %s", tc.event, resp, physicalID)
		}
		if got := resp.Data["Applied"]; got != tc.applied {
			t.Errorf("%s: Applied = %v, want %v", tc.event, got, tc.applied)
		}
		if tc.applied != nil && resp.Data["Version"] != float64(want) {
			t.Errorf("%s: Version = %v, want %d", tc.event, resp.Data["Version"], want)
		}
	}
	if v := scalar(t, url, `SELECT max(version_id) FROM goose_db_version`); v != want {
		t.Errorf("database at version %d, want %d", v, want)
	}
	// Each applied migration is in the audit log once (#helix-file-changes), the update added none.
	if n := scalar(t, url, `SELECT count(*) FROM audit_pending WHERE kind = 'migration'`); n != want {
		t.Errorf("%d migrations recorded in the audit log, want %d", n, want)
	}
	// Delete dropped nothing.
	if n := scalar(t, url, `SELECT count(*) FROM ai_model_routes`); n == 0 {
		t.Error("the seeded routes are gone after delete")
	}
}

// A migration that fails answers FAILED with the reason, which CloudFormation shows in the
// stack's events and which fails (and rolls back) the deploy. The database keeps what applied.
func TestAFailedMigrationFailsTheDeploy(t *testing.T) {
	url, c := emptyDatabase(t), newCloudFormation(t)
	// A table in the way of the first migration, as a hand-made change would be.
	execAll(t, url, "CREATE TABLE ai_models (squatter int)")
	resp := c.invoke(t, url, "create.json")
	if resp.Status != cfn.StatusFailed {
		t.Fatalf("answer %+v, want FAILED", resp)
	}
	if !strings.Contains(resp.Reason, "00001_schema.sql") {
		t.Errorf("reason %q does not name the migration that failed", resp.Reason)
	}
	if resp.PhysicalResourceID != physicalID {
		t.Errorf("physical id %q, want %q", resp.PhysicalResourceID, physicalID)
	}
	if n := scalar(t, url, `SELECT count(*) FROM goose_db_version WHERE version_id > 0`); n != 0 {
		t.Errorf("%d migrations recorded as applied after the first one failed", n)
	}
}

// A database it cannot reach fails the deploy too, without the password in the reason.
func TestAnUnreachableDatabaseFailsTheDeploy(t *testing.T) {
	c := newCloudFormation(t)
	resp := c.invoke(t, "postgres://helix:s3cret-pw@127.0.0.1:1/helix?connect_timeout=2", "update.json")
	if resp.Status != cfn.StatusFailed || resp.Reason == "" {
		t.Fatalf("answer %+v, want FAILED with a reason", resp)
	}
	if strings.Contains(resp.Reason, "s3cret-pw") {
		t.Errorf("the reason shows the password: %q", resp.Reason)
	}
}
