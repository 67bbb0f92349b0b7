package grafana

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// A panel's SQL reaches Postgres after two rewrites, which expand reproduces so the test runs the
// statement Grafana would run:
//
//  1. Grafana's front end replaces dashboard variables ($name, ${name}); a $__name( it does not
//     know as a variable is left alone for the data source.
//  2. The Postgres data source (pkg/tsdb/grafana-postgresql-datasource/macros.go) replaces
//     macros, $__name(args), for the query's time range.
//
// Only what the dashboards use is implemented. Anything else is an error, so a panel cannot start
// using a variable or macro whose expansion nobody checked: add it here, with a case in
// TestExpand, first.

// timeRange is the dashboard's selected range.
type timeRange struct{ From, To time.Time }

// variableRef finds the front end's variable references: ${name} (with an optional :format),
// [[name]] (the deprecated form), and $name.
var variableRef = regexp.MustCompile(`\$\{([^}]*)\}|\[\[([^\]]*)\]\]|\$(\w+)`)

// macroRef is the data source's own pattern: a name and everything up to the first ')'.
var macroRef = regexp.MustCompile(`\$([_a-zA-Z0-9]+)\(([^\)]*)\)`)

// leftover is any reference still unexpanded after both steps.
var leftover = regexp.MustCompile(`\$[A-Za-z_{]|\[\[`)

// expand returns sql as Grafana sends it to Postgres for tr, with vars the dashboard's constant
// variables.
func expand(sql string, tr timeRange, vars map[string]string) (string, error) {
	sql, err := expandVariables(sql, vars)
	if err != nil {
		return "", err
	}
	var macroErr error
	sql = macroRef.ReplaceAllStringFunc(sql, func(m string) string {
		g := macroRef.FindStringSubmatch(m)
		args := strings.Split(g[2], ",")
		for i := range args {
			args[i] = strings.TrimSpace(args[i])
		}
		out, err := expandMacro(g[1], args, tr)
		if err != nil && macroErr == nil {
			macroErr = fmt.Errorf("%s: %w", m, err)
		}
		return out
	})
	if macroErr != nil {
		return "", macroErr
	}
	if loc := leftover.FindStringIndex(sql); loc != nil {
		return "", fmt.Errorf("unexpanded reference at %q", excerpt(sql, loc[0]))
	}
	return sql, nil
}

func expandVariables(sql string, vars map[string]string) (string, error) {
	var b strings.Builder
	last := 0
	for _, m := range variableRef.FindAllStringSubmatchIndex(sql, -1) {
		b.WriteString(sql[last:m[0]])
		last = m[1]
		ref := sql[m[0]:m[1]]
		switch {
		case m[2] >= 0: // ${name} or ${name:format}
			name, format, hasFormat := strings.Cut(sql[m[2]:m[3]], ":")
			if hasFormat {
				return "", fmt.Errorf("%s: variable formats (%s) are not supported here", ref, format)
			}
			v, ok := vars[name]
			if !ok {
				return "", fmt.Errorf("%s: unknown variable", ref)
			}
			b.WriteString(v)
		case m[4] >= 0:
			return "", fmt.Errorf("%s: the [[name]] syntax is deprecated; use ${name}", ref)
		default: // $name
			name := sql[m[6]:m[7]]
			if strings.HasPrefix(name, "__") && m[1] < len(sql) && sql[m[1]] == '(' {
				b.WriteString(ref) // a macro: the data source's step
				continue
			}
			v, ok := vars[name]
			if !ok {
				return "", fmt.Errorf("%s: unknown variable", ref)
			}
			b.WriteString(v)
		}
	}
	b.WriteString(sql[last:])
	return b.String(), nil
}

// expandMacro expands one macro as the Postgres data source does (without TimescaleDB).
func expandMacro(name string, args []string, tr timeRange) (string, error) {
	switch name {
	case "__timeFilter":
		if len(args) != 1 || args[0] == "" {
			return "", errors.New("needs exactly one time column")
		}
		return fmt.Sprintf("%s BETWEEN '%s' AND '%s'", args[0],
			tr.From.UTC().Format(time.RFC3339Nano), tr.To.UTC().Format(time.RFC3339Nano)), nil
	case "__timeGroupAlias":
		if len(args) != 2 {
			// A third argument, the fill mode, makes Grafana insert rows after the query: the
			// rows this test checks would no longer be the panel's.
			return "", errors.New("needs a time column and an interval (fill modes are not supported here)")
		}
		seconds, err := intervalSeconds(strings.Trim(args[1], "'"))
		if err != nil {
			return "", err
		}
		return fmt.Sprintf(`floor(extract(epoch from %s)/%v)*%v AS "time"`, args[0], seconds, seconds), nil
	default:
		return "", errors.New("unknown macro")
	}
}

// intervalSeconds parses an interval as Grafana's gtime.ParseInterval does for the units a
// dashboard here uses: Go durations, and whole days and weeks.
func intervalSeconds(s string) (float64, error) {
	for suffix, unit := range map[string]time.Duration{"d": 24 * time.Hour, "w": 7 * 24 * time.Hour} {
		if n, ok := strings.CutSuffix(s, suffix); ok {
			k, err := strconv.Atoi(n)
			if err != nil || k <= 0 {
				return 0, fmt.Errorf("bad interval %q", s)
			}
			return (time.Duration(k) * unit).Seconds(), nil
		}
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("bad interval %q", s)
	}
	return d.Seconds(), nil
}

func excerpt(s string, at int) string {
	end := min(len(s), at+30)
	return s[at:end]
}

func TestExpand(t *testing.T) {
	t.Parallel()
	tr := timeRange{
		From: time.Date(2026, 11, 28, 23, 59, 30, 0, time.FixedZone("CET", 3600)),
		To:   time.Date(2026, 12, 2, 0, 0, 0, 500_000_000, time.UTC),
	}
	vars := map[string]string{"default_limit_usd": "50"}
	cases := []struct {
		name, in, want, wantErr string
	}{
		{name: "time filter in UTC with Grafana's RFC 3339 format",
			in:   "WHERE $__timeFilter(created_at)",
			want: "WHERE created_at BETWEEN '2026-11-28T22:59:30Z' AND '2026-12-02T00:00:00.5Z'"},
		{name: "qualified column",
			in:   "WHERE $__timeFilter( l.created_at )",
			want: "WHERE l.created_at BETWEEN '2026-11-28T22:59:30Z' AND '2026-12-02T00:00:00.5Z'"},
		{name: "hour buckets",
			in:   "SELECT $__timeGroupAlias(created_at, 1h), 1",
			want: `SELECT floor(extract(epoch from created_at)/3600)*3600 AS "time", 1`},
		{name: "quoted five minutes",
			in:   "SELECT $__timeGroupAlias(created_at,'5m')",
			want: `SELECT floor(extract(epoch from created_at)/300)*300 AS "time"`},
		{name: "days",
			in:   "SELECT $__timeGroupAlias(l.created_at, 1d)",
			want: `SELECT floor(extract(epoch from l.created_at)/86400)*86400 AS "time"`},
		{name: "constant variable, both forms",
			in:   "${default_limit_usd}::numeric + $default_limit_usd",
			want: "50::numeric + 50"},
		{name: "SQL without references is unchanged",
			in:   "SELECT 'a' || 'b' AS \"x\" WHERE now() > now() - interval '1 hour'",
			want: "SELECT 'a' || 'b' AS \"x\" WHERE now() > now() - interval '1 hour'"},
		{name: "macro not implemented", in: "SELECT $__timeGroup(created_at, 1h)", wantErr: "unknown macro"},
		{name: "unknown macro", in: "SELECT $__nope(x)", wantErr: "unknown macro"},
		{name: "global variable not implemented", in: "SELECT $__interval", wantErr: "unknown variable"},
		{name: "unknown variable", in: "WHERE user_id = '$user'", wantErr: "unknown variable"},
		{name: "unknown braced variable", in: "WHERE user_id = '${user}'", wantErr: "unknown variable"},
		{name: "variable format", in: "SELECT ${default_limit_usd:csv}", wantErr: "formats"},
		{name: "deprecated syntax", in: "SELECT [[default_limit_usd]]", wantErr: "deprecated"},
		{name: "time filter without a column", in: "WHERE $__timeFilter()", wantErr: "time column"},
		{name: "group without interval", in: "SELECT $__timeGroupAlias(created_at)", wantErr: "interval"},
		{name: "group with fill mode", in: "SELECT $__timeGroupAlias(created_at, 1h, 0)", wantErr: "fill"},
		{name: "bad interval", in: "SELECT $__timeGroupAlias(created_at, soon)", wantErr: "bad interval"},
		{name: "macro name without parentheses", in: "SELECT $__timeFilter", wantErr: "unknown variable"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := expand(c.in, tr, vars)
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("expand(%q) = %q, %v; want an error containing %q", c.in, got, err, c.wantErr)
				}
				return
			}
			if err != nil || got != c.want {
				t.Fatalf("expand(%q) = %q, %v; want %q", c.in, got, err, c.want)
			}
		})
	}
}
