// Package grafana holds Helix's Grafana dashboards and provisioning (no Go code): its tests load
// every dashboard, check its structure, and run every panel's SQL, expanded as Grafana expands
// it, against a migrated database with a few days of seeded activity. A dashboard with a broken
// query fails them.
package grafana

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"
	"gopkg.in/yaml.v3"

	"github.com/helixhq/helix/shared/pgtest"
	"github.com/helixhq/helix/shared/postgres/auditstore"
)

var pg *pgtest.Server

func TestMain(m *testing.M) {
	os.Exit(pgtest.Main(m, func(s *pgtest.Server) { pg = s }))
}

// ---- the files ----

type dsRef struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

type target struct {
	RefID      string `json:"refId"`
	Datasource *dsRef `json:"datasource"`
	Format     string `json:"format"`
	RawQuery   bool   `json:"rawQuery"`
	EditorMode string `json:"editorMode"`
	RawSQL     string `json:"rawSql"`
}

type panel struct {
	ID          int    `json:"id"`
	Type        string `json:"type"`
	Title       string `json:"title"`
	Description string `json:"description"`
	Datasource  *dsRef `json:"datasource"`
	GridPos     struct {
		H, W, X, Y int
	} `json:"gridPos"`
	Targets []target `json:"targets"`
	Panels  []panel  `json:"panels"` // rows nest panels; none here
}

type variable struct {
	Type  string `json:"type"`
	Name  string `json:"name"`
	Query string `json:"query"`
}

type dashboard struct {
	file          string
	UID           string  `json:"uid"`
	Title         string  `json:"title"`
	SchemaVersion int     `json:"schemaVersion"`
	Timezone      string  `json:"timezone"`
	Panels        []panel `json:"panels"`
	Templating    struct {
		List []variable `json:"list"`
	} `json:"templating"`
}

// constants are the dashboard's constant variables, the only kind the expander can know.
func (d dashboard) constants() map[string]string {
	out := map[string]string{}
	for _, v := range d.Templating.List {
		if v.Type == "constant" {
			out[v.Name] = v.Query
		}
	}
	return out
}

func loadDashboards(t *testing.T) []dashboard {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("dashboards", "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no dashboards found: %v", err)
	}
	var out []dashboard
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var d dashboard
		if err := json.Unmarshal(raw, &d); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		d.file = filepath.Base(f)
		out = append(out, d)
	}
	return out
}

type provisionedDatasource struct {
	Name           string            `yaml:"name"`
	UID            string            `yaml:"uid"`
	Type           string            `yaml:"type"`
	URL            string            `yaml:"url"`
	User           string            `yaml:"user"`
	JSONData       map[string]any    `yaml:"jsonData"`
	SecureJSONData map[string]string `yaml:"secureJsonData"`
}

func loadDatasource(t *testing.T) provisionedDatasource {
	t.Helper()
	var f struct {
		APIVersion  int                     `yaml:"apiVersion"`
		Datasources []provisionedDatasource `yaml:"datasources"`
	}
	readYAML(t, filepath.Join("provisioning", "datasources", "helix.yaml"), &f)
	if f.APIVersion != 1 || len(f.Datasources) != 1 {
		t.Fatalf("datasources/helix.yaml: apiVersion %d, %d data sources; want 1 and 1", f.APIVersion, len(f.Datasources))
	}
	return f.Datasources[0]
}

func readYAML(t *testing.T, path string, into any) {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(raw, into); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// ---- structure ----

// The panel types the dashboards may use, and the query format each needs: a time series panel
// draws only time_series frames, bar charts and tables take rows.
var panelFormats = map[string][]string{
	"timeseries": {"time_series"},
	"barchart":   {"table"},
	"table":      {"table"},
	"stat":       {"table", "time_series"},
	"gauge":      {"table", "time_series"},
}

// envRef is a whole value taken from the environment, as Grafana's provisioning interpolates it.
var envRef = regexp.MustCompile(`^\$\{[A-Z][A-Z0-9_]*\}$`)

func TestProvisioning(t *testing.T) {
	t.Parallel()
	ds := loadDatasource(t)
	if ds.UID == "" || ds.Type != "grafana-postgresql-datasource" {
		t.Errorf("data source uid %q type %q; want a uid and the Postgres plugin", ds.UID, ds.Type)
	}
	// Where the database is and the credentials come from the environment, never the file.
	for name, v := range map[string]string{"url": ds.URL, "user": ds.User, "password": ds.SecureJSONData["password"],
		"database": fmt.Sprint(ds.JSONData["database"])} {
		if !envRef.MatchString(v) {
			t.Errorf("data source %s = %q; want an environment variable reference ${NAME}", name, v)
		}
	}

	var dash struct {
		APIVersion int `yaml:"apiVersion"`
		Providers  []struct {
			Type    string `yaml:"type"`
			Options struct {
				Path string `yaml:"path"`
			} `yaml:"options"`
		} `yaml:"providers"`
	}
	readYAML(t, filepath.Join("provisioning", "dashboards", "helix.yaml"), &dash)
	if dash.APIVersion != 1 || len(dash.Providers) != 1 {
		t.Fatalf("dashboards/helix.yaml: apiVersion %d, %d providers; want 1 and 1", dash.APIVersion, len(dash.Providers))
	}
	p := dash.Providers[0]
	// The provider loads the directory this test checks.
	if p.Type != "file" || p.Options.Path != "${HELIX_GRAFANA_DIR}/dashboards" {
		t.Errorf("provider type %q path %q; want file and ${HELIX_GRAFANA_DIR}/dashboards", p.Type, p.Options.Path)
	}
}

func TestDashboardStructure(t *testing.T) {
	t.Parallel()
	ds := loadDatasource(t)
	want := dsRef{Type: ds.Type, UID: ds.UID}
	boards := loadDashboards(t)
	uids := map[string]string{}
	var titles []string
	for _, d := range boards {
		titles = append(titles, d.Title)
		if d.UID == "" {
			t.Errorf("%s: no uid", d.file)
		} else if other, dup := uids[d.UID]; dup {
			t.Errorf("%s: uid %q is %s's too", d.file, d.UID, other)
		}
		uids[d.UID] = d.file
		if d.SchemaVersion < 36 || d.SchemaVersion > 41 {
			t.Errorf("%s: schemaVersion %d; want about 39", d.file, d.SchemaVersion)
		}
		// Days are UTC in the data ($__timeGroupAlias(…, 1d) buckets UTC days): show them so.
		if d.Timezone != "utc" {
			t.Errorf("%s: timezone %q; want utc", d.file, d.Timezone)
		}
		for _, v := range d.Templating.List {
			if v.Type != "constant" || v.Name == "" || v.Query == "" {
				t.Errorf("%s: variable %q of type %q: only constant variables with a value can be checked", d.file, v.Name, v.Type)
			}
		}
		if len(d.Panels) == 0 {
			t.Errorf("%s: no panels", d.file)
		}
		ids := map[int]bool{}
		for _, p := range d.Panels {
			where := fmt.Sprintf("%s: panel %d %q", d.file, p.ID, p.Title)
			if p.ID <= 0 || ids[p.ID] {
				t.Errorf("%s: id missing or repeated", where)
			}
			ids[p.ID] = true
			if p.Title == "" {
				t.Errorf("%s: no title", where)
			}
			// Grafana interpolates titles and descriptions too: no unknown variable there either.
			for _, text := range []string{p.Title, p.Description} {
				if _, err := expandVariables(text, d.constants()); err != nil {
					t.Errorf("%s: %v", where, err)
				}
			}
			formats, ok := panelFormats[p.Type]
			if !ok {
				t.Errorf("%s: type %q is none of timeseries, barchart, table, stat, gauge", where, p.Type)
			}
			if len(p.Panels) != 0 {
				t.Errorf("%s: nested panels are not checked", where)
			}
			if p.Datasource == nil || *p.Datasource != want {
				t.Errorf("%s: datasource %+v; want %+v", where, p.Datasource, want)
			}
			g := p.GridPos
			if g.W <= 0 || g.H <= 0 || g.X < 0 || g.Y < 0 || g.X+g.W > 24 {
				t.Errorf("%s: gridPos %+v outside the 24-column grid", where, g)
			}
			if len(p.Targets) == 0 {
				t.Errorf("%s: no targets", where)
			}
			refs := map[string]bool{}
			for _, tg := range p.Targets {
				if tg.RefID == "" || refs[tg.RefID] {
					t.Errorf("%s: refId %q missing or repeated", where, tg.RefID)
				}
				refs[tg.RefID] = true
				if strings.TrimSpace(tg.RawSQL) == "" || !tg.RawQuery || tg.EditorMode != "code" {
					t.Errorf("%s/%s: want raw SQL in code mode (rawQuery %v, editorMode %q)", where, tg.RefID, tg.RawQuery, tg.EditorMode)
				}
				if tg.Datasource == nil || *tg.Datasource != want {
					t.Errorf("%s/%s: datasource %+v; want %+v", where, tg.RefID, tg.Datasource, want)
				}
				if !slices.Contains(formats, tg.Format) {
					t.Errorf("%s/%s: format %q; a %s panel needs one of %v", where, tg.RefID, tg.Format, p.Type, formats)
				}
			}
		}
	}
	slices.Sort(titles)
	if w := []string{"Helix / Cost", "Helix / Health", "Helix / Performance"}; !slices.Equal(titles, w) {
		t.Errorf("dashboards %v; want %v", titles, w)
	}
}

// ---- queries ----

func TestDashboardQueriesReturnRowsForSeededData(t *testing.T) {
	boards := loadDashboards(t)
	pool := pg.NewPool(t)
	tr := seed(t, pool)
	n := 0
	for _, d := range boards {
		vars := d.constants()
		for _, p := range d.Panels {
			for _, tg := range p.Targets {
				n++
				t.Run(fmt.Sprintf("%s/%s/%s", strings.TrimSuffix(d.file, ".json"), p.Title, tg.RefID), func(t *testing.T) {
					t.Parallel()
					if err := checkTarget(context.Background(), pool, tg.Format, tg.RawSQL, tr, vars); err != nil {
						t.Errorf("%v\nSQL:\n%s", err, tg.RawSQL)
					}
				})
			}
		}
	}
	if n < 20 {
		t.Errorf("%d panel queries; the three dashboards have more", n)
	}
}

// TestCheckTargetRejects shows that the check above fails a broken panel, whichever way it
// breaks, and that panels cannot write.
func TestCheckTargetRejects(t *testing.T) {
	pool := pg.NewPool(t)
	tr := seed(t, pool)
	cases := []struct {
		name, format, sql, wantErr string
	}{
		{"unknown column", "table", `SELECT nope FROM ai_operation_log WHERE $__timeFilter(created_at)`, `column "nope" does not exist`},
		{"syntax error", "table", `SELECT count(* FROM ai_operation_log`, "syntax error"},
		{"integer overflow", "table", `SELECT 50 * 1000000000 AS limit_nano`, "out of range"},
		{"no rows", "table", `SELECT user_id, cost_nano FROM ai_operation_log WHERE $__timeFilter(created_at) AND false`, "no rows"},
		{"only NULLs", "table", `SELECT sum(cost_nano) AS spend FROM ai_operation_log WHERE user_id = 'nobody'`, "NULL"},
		{"no numeric column", "table", `SELECT user_id FROM ai_operation_log LIMIT 1`, "numeric"},
		{"time series without a time column", "time_series",
			`SELECT created_at AS t, cost_nano FROM ai_operation_log ORDER BY 1`, `no column named "time"`},
		{"time series descending", "time_series",
			`SELECT $__timeGroupAlias(created_at, 1h), count(*) AS n FROM ai_operation_log GROUP BY 1 ORDER BY 1 DESC`, "ascending"},
		{"time series with a boolean value", "time_series",
			`SELECT $__timeGroupAlias(created_at, 1d), bool_and(success) AS ok, count(*) AS n FROM ai_operation_log GROUP BY 1 ORDER BY 1`, "bool"},
		{"time series with a text time", "time_series",
			`SELECT created_at::text AS time, cost_nano FROM ai_operation_log ORDER BY 1`, "time column"},
		{"writes", "table", `UPDATE ai_operation_log SET latency_ms = 0 WHERE id < 0 RETURNING id`, "read-only"},
		{"unknown macro", "table", `SELECT $__timeGroup(created_at, 1h), 1 FROM ai_operation_log`, "unknown macro"},
		{"unknown variable", "table", `SELECT count(*) FROM ai_operation_log WHERE user_id = '$user'`, "unknown variable"},
		{"bad format", "logs", `SELECT 1 AS n`, "format"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			err := checkTarget(context.Background(), pool, c.format, c.sql, tr, map[string]string{})
			if err == nil || !strings.Contains(err.Error(), c.wantErr) {
				t.Fatalf("checkTarget = %v; want an error containing %q", err, c.wantErr)
			}
		})
	}
	// And a sound query passes, so the cases above fail for their own reason.
	ok := `SELECT $__timeGroupAlias(created_at, 1h), operation_id AS metric, count(*) AS n
	         FROM ai_operation_log WHERE $__timeFilter(created_at) GROUP BY 1, 2 ORDER BY 1, 2`
	if err := checkTarget(context.Background(), pool, "time_series", ok, tr, nil); err != nil {
		t.Fatalf("sound query: %v", err)
	}
}

// checkTarget expands sql for tr, runs it read-only and checks what Grafana needs of the result
// for format: at least one row, a non-NULL number, and for time series a numeric or timestamp
// column named time, in ascending order, beside numeric values and text labels only (Grafana
// turns text columns into series labels and refuses unsorted long frames).
func checkTarget(ctx context.Context, pool *pgxpool.Pool, format, sql string, tr timeRange, vars map[string]string) error {
	if format != "table" && format != "time_series" {
		return fmt.Errorf("format %q is neither table nor time_series", format)
	}
	expanded, err := expand(sql, tr, vars)
	if err != nil {
		return fmt.Errorf("expand: %w", err)
	}
	cols, rows, err := query(ctx, pool, expanded)
	if err != nil {
		return fmt.Errorf("query: %w", err)
	}
	if len(rows) == 0 {
		return errors.New("no rows for the seeded data")
	}
	numeric, number := false, false
	for i, c := range cols {
		if numericOIDs[c.DataTypeOID] && (format != "time_series" || c.Name != "time") {
			numeric = true
			number = number || slices.ContainsFunc(rows, func(r []any) bool { return r[i] != nil })
		}
	}
	switch {
	case !numeric:
		return errors.New("no numeric column")
	case !number:
		return errors.New("every numeric value is NULL for the seeded data")
	}
	if format == "time_series" {
		return checkTimeSeries(cols, rows)
	}
	return nil
}

func checkTimeSeries(cols []pgconn.FieldDescription, rows [][]any) error {
	at := slices.IndexFunc(cols, func(c pgconn.FieldDescription) bool { return c.Name == "time" })
	if at < 0 {
		return errors.New(`no column named "time"`)
	}
	for i, c := range cols {
		switch {
		case i == at:
			if !timeOIDs[c.DataTypeOID] && !numericOIDs[c.DataTypeOID] {
				return fmt.Errorf("time column of type %s; want a timestamp or epoch seconds", typeName(c.DataTypeOID))
			}
		case c.Name == "time":
			return errors.New(`two columns named "time"`)
		case numericOIDs[c.DataTypeOID] || textOIDs[c.DataTypeOID]:
		default:
			return fmt.Errorf("column %q of type %s: a time series takes numbers and text labels only", c.Name, typeName(c.DataTypeOID))
		}
	}
	prev := math.Inf(-1)
	for n, r := range rows {
		s, err := seconds(r[at])
		if err != nil {
			return fmt.Errorf("row %d: %w", n, err)
		}
		if s < prev {
			return fmt.Errorf("row %d: time %v before the previous row's: rows must be in ascending time", n, r[at])
		}
		prev = s
	}
	return nil
}

func seconds(v any) (float64, error) {
	switch x := v.(type) {
	case time.Time:
		return float64(x.UnixNano()) / 1e9, nil
	case float64:
		return x, nil
	case int64:
		return float64(x), nil
	case int32:
		return float64(x), nil
	case pgtype.Numeric:
		f, err := x.Float64Value()
		if err != nil || !f.Valid {
			return 0, fmt.Errorf("time %v is not a number", v)
		}
		return f.Float64, nil
	case nil:
		return 0, errors.New("time is NULL")
	default:
		return 0, fmt.Errorf("time of Go type %T", v)
	}
}

var (
	numericOIDs = map[uint32]bool{pgtype.Int2OID: true, pgtype.Int4OID: true, pgtype.Int8OID: true,
		pgtype.Float4OID: true, pgtype.Float8OID: true, pgtype.NumericOID: true}
	timeOIDs = map[uint32]bool{pgtype.TimestamptzOID: true, pgtype.TimestampOID: true, pgtype.DateOID: true}
	textOIDs = map[uint32]bool{pgtype.TextOID: true, pgtype.VarcharOID: true, pgtype.BPCharOID: true, pgtype.NameOID: true}
)

func typeName(oid uint32) string {
	if t, ok := pgtype.NewMap().TypeForOID(oid); ok {
		return t.Name
	}
	return fmt.Sprintf("oid %d", oid)
}

// query runs sql in a read-only transaction, as a read-only Grafana role would, and returns the
// columns and every row.
func query(ctx context.Context, pool *pgxpool.Pool, sql string) ([]pgconn.FieldDescription, [][]any, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	tx, err := pool.BeginTx(ctx, pgx.TxOptions{AccessMode: pgx.ReadOnly})
	if err != nil {
		return nil, nil, err
	}
	defer func() { _ = tx.Rollback(context.Background()) }()
	rows, err := tx.Query(ctx, sql)
	if err != nil {
		return nil, nil, err
	}
	defer rows.Close()
	var out [][]any
	for rows.Next() {
		v, err := rows.Values()
		if err != nil {
			return nil, nil, err
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, nil, err
	}
	return slices.Clone(rows.FieldDescriptions()), out, nil
}

// ---- seed ----

// seed writes three days of activity ending now (by the database's clock, which the panels'
// now() reads) and returns the dashboards' time range around it: operations every 20 minutes
// over four operations, twelve users and three models (with failures and fallbacks), their audit
// entries sequenced plus a few still pending, alerts fired and cleared, ledger rows for every
// user from three days ago to tomorrow (so "today" has rows even if the test crosses midnight),
// outbox entries waiting, delivered and dead, synthesis work waiting, and provider breakers.
func seed(t *testing.T, pool *pgxpool.Pool) timeRange {
	t.Helper()
	ctx := context.Background()
	var now time.Time
	if err := pool.QueryRow(ctx, `SELECT now()`).Scan(&now); err != nil {
		t.Fatal(err)
	}
	exec := func(sql string, args ...any) {
		t.Helper()
		if _, err := pool.Exec(ctx, sql, args...); err != nil {
			t.Fatalf("seed: %v\n%s", err, sql)
		}
	}
	const operations = `
		INSERT INTO ai_operation_log (request_id, operation_id, user_id, model_used, provider,
		        input_tokens, output_tokens, cached_input_tokens, cost_nano, latency_ms, success,
		        error_code, fallback_used, created_at)
		SELECT $2 || g,
		       (ARRAY['chat_message', 'email-compose', 'memory_synthesis', 'calendar-prep'])[1 + g % 4],
		       'user-' || lpad((g % 12)::text, 2, '0'),
		       CASE WHEN g % 10 = 9 THEN NULL WHEN g % 10 = 8 THEN 'claude'
		            WHEN g % 10 IN (6, 7) THEN 'gemini_flash' ELSE 'deepseek' END,
		       CASE WHEN g % 10 = 9 THEN NULL WHEN g % 10 = 8 THEN 'anthropic'
		            WHEN g % 10 IN (6, 7) THEN 'gemini' ELSE 'deepseek' END,
		       400 + (g * 37) % 1600, 50 + (g * 13) % 400, (g * 11) % 300,
		       CASE WHEN g % 10 = 9 THEN 0 ELSE 20000 + (g * 7919) % 900000 END,
		       150 + (g * 53) % 2600, g % 10 <> 9,
		       CASE WHEN g % 10 = 9 THEN 'provider_error' END,
		       g % 10 = 8,
		       $1::timestamptz - interval '30 seconds' - g * interval '20 minutes'
		  FROM generate_series($3::int, $4::int) g`
	exec(operations, now, "seed-", 0, 215)

	// Alerts as the audit function records them, then the integrator sequences everything.
	ob := auditstore.NewOutbox(pool)
	for _, a := range []struct {
		fire         bool
		name, detail string
	}{
		{true, "high_error_rate", "7.5% of 120 operations failed"},
		{false, "high_error_rate", "1.2% of 130 operations failed"},
		{true, "discord_backlog", "2 entries older than 10 minutes"},
	} {
		record := ob.Clear
		if a.fire {
			record = ob.Alert
		}
		if err := record(ctx, a.name, a.detail); err != nil {
			t.Fatal(err)
		}
	}
	got, err := auditstore.New(pool).IntegrateAll(ctx, 500)
	if err != nil || got.Entries < 216+3 {
		t.Fatalf("integrate: %+v, %v; want at least 219 entries", got, err)
	}
	// Operations after the integrator's run: their audit events wait in audit_pending.
	exec(operations, now.Add(30*time.Second), "late-", 0, 1)

	exec(`INSERT INTO discord_outbox (channel, kind, payload, created_at, attempts, delivered_at, dead_at, last_error)
	      VALUES ('alerts', 'alert', '{}', $1::timestamptz - interval '15 minutes', 3, NULL, NULL, 'status 502'),
	             ('api', 'api_digest', '{}', $1::timestamptz - interval '2 minutes', 0, NULL, NULL, ''),
	             ('api', 'api_digest', '{}', $1::timestamptz - interval '30 minutes', 1, $1::timestamptz - interval '29 minutes', NULL, ''),
	             ('heartbeat', 'heartbeat', '{}', $1::timestamptz - interval '2 hours', 8, NULL, $1::timestamptz - interval '1 hour', 'status 404')`, now)

	// Ledger rows: user-00 has its own $1 limit and reached it, user-01 a $100 limit, the others
	// the default.
	exec(`INSERT INTO user_budgets (user_id, daily_limit_nano, warning_threshold_nano, updated_by)
	      VALUES ('user-00', 1000000000, 500000000, 'seed'), ('user-01', 100000000000, 80000000000, 'seed')`)
	exec(`INSERT INTO budget_days (user_id, day, limit_nano, spent_nano, reserved_nano)
	      SELECT 'user-' || lpad(u::text, 2, '0'), (($1::timestamptz AT TIME ZONE 'UTC')::date + d),
	             CASE u WHEN 0 THEN 1000000000 WHEN 1 THEN 100000000000 ELSE 50000000000 END,
	             CASE u WHEN 0 THEN 1000000000 ELSE (u + 1) * 123000000 END,
	             CASE WHEN u = 2 THEN 40000000 ELSE 0 END
	        FROM generate_series(0, 11) u, generate_series(-3, 1) d`, now)

	// Synthesis: one job sent and waiting, one conversation with unlearned messages not sent yet,
	// one learned from.
	exec(`INSERT INTO conversations (conversation_id, user_id, last_seq, synthesized_seq, enqueued_seq, enqueued_at, last_activity_at)
	      VALUES ('00000000-0000-4000-8000-000000000001', 'user-03', 6, 2, 6, $1::timestamptz - interval '3 minutes', $1),
	             ('00000000-0000-4000-8000-000000000002', 'user-04', 4, 0, 0, NULL, $1),
	             ('00000000-0000-4000-8000-000000000003', 'user-05', 8, 8, 8, $1::timestamptz - interval '1 day', $1)`, now)

	exec(`INSERT INTO provider_breakers (provider, window_started_at, failures, open_until, last_error)
	      VALUES ('deepseek', $1::timestamptz - interval '1 minute', 5, $1::timestamptz + interval '1 minute', 'timeout'),
	             ('gemini', $1::timestamptz - interval '1 hour', 0, NULL, '')`, now)

	return timeRange{From: now.Add(-4 * 24 * time.Hour), To: now.Add(time.Minute)}
}
