package config_test

import (
	"log/slog"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/helixhq/helix/shared/config"
	"github.com/helixhq/helix/shared/money"
)

// env is the minimal valid environment of an HTTP function, with overrides.
func env(overrides map[string]string) map[string]string {
	m := map[string]string{
		"DATABASE_URL":       "postgres://helix@localhost/helix",
		"HELIX_JWT_SECRET":   "0123456789abcdef0123456789abcdef",
		"HELIX_JWT_ISSUER":   "https://issuer.test",
		"HELIX_JWT_AUDIENCE": "authenticated",
	}
	for k, v := range overrides {
		m[k] = v
	}
	return m
}

var withHTTP = config.Parts{HTTP: true}

func TestLoadDefaults(t *testing.T) {
	c, err := config.Load(env(nil), withHTTP)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"DatabaseURL", c.DatabaseURL, "postgres://helix@localhost/helix"},
		{"DB.MaxConns", c.DB.MaxConns, int32(4)},
		{"DB.ExecMode", c.DB.ExecMode, "exec"},
		{"HTTP.Auth.HS256Secret", c.HTTP.Auth.HS256Secret, "0123456789abcdef0123456789abcdef"},
		{"HTTP.Auth.JWKSURL", c.HTTP.Auth.JWKSURL, ""},
		{"HTTP.Auth.Algorithms", strings.Join(c.HTTP.Auth.Algorithms, ","), "RS256,ES256"},
		{"HTTP.Auth.Issuer", c.HTTP.Auth.Issuer, "https://issuer.test"},
		{"HTTP.Auth.Audience", c.HTTP.Auth.Audience, "authenticated"},
		{"HTTP.Auth.AdminClaim", c.HTTP.Auth.AdminClaim, "role"},
		{"HTTP.Auth.AdminValue", c.HTTP.Auth.AdminValue, "admin"},
		{"HTTP.Auth.AdminUserIDs", len(c.HTTP.Auth.AdminUserIDs), 0},
		{"HTTP.Auth.MonitoringRole", c.HTTP.Auth.MonitoringRole, ""}, // admins only
		{"Budget.DefaultDailyLimit", c.Budget.DefaultDailyLimit, 50 * money.PerUSD},
		{"Budget.DefaultWarning", c.Budget.DefaultWarning, 25 * money.PerUSD},
		{"Budget.ReservationTTL", c.Budget.ReservationTTL, 5 * time.Minute},
		{"CatalogTTL", c.CatalogTTL, 5 * time.Second},
		{"LogLevel", c.LogLevel, slog.LevelInfo},
	}
	for _, ch := range checks {
		if ch.got != ch.want {
			t.Errorf("%s = %v, want %v", ch.name, ch.got, ch.want)
		}
	}
}

func TestLoadValues(t *testing.T) {
	tests := []struct {
		name  string
		env   map[string]string
		check func(t *testing.T, c config.Config)
	}{
		{"max conns", map[string]string{"HELIX_DB_MAX_CONNS": "16"}, func(t *testing.T, c config.Config) {
			if c.DB.MaxConns != 16 {
				t.Errorf("MaxConns = %d", c.DB.MaxConns)
			}
		}},
		{"max conns bounds", map[string]string{"HELIX_DB_MAX_CONNS": "1000"}, func(t *testing.T, c config.Config) {
			if c.DB.MaxConns != 1000 {
				t.Errorf("MaxConns = %d", c.DB.MaxConns)
			}
		}},
		{"exec mode", map[string]string{"HELIX_DB_EXEC_MODE": "simple_protocol"}, func(t *testing.T, c config.Config) {
			if c.DB.ExecMode != "simple_protocol" {
				t.Errorf("ExecMode = %q", c.DB.ExecMode)
			}
		}},
		{"budgets in USD", map[string]string{"HELIX_DEFAULT_DAILY_LIMIT_USD": "12.5", "HELIX_DEFAULT_WARNING_USD": "0.000000001"}, func(t *testing.T, c config.Config) {
			if c.Budget.DefaultDailyLimit != 12_500_000_000 || c.Budget.DefaultWarning != 1 {
				t.Errorf("limit %d, warning %d", c.Budget.DefaultDailyLimit, c.Budget.DefaultWarning)
			}
		}},
		{"warning equal to limit", map[string]string{"HELIX_DEFAULT_DAILY_LIMIT_USD": "10", "HELIX_DEFAULT_WARNING_USD": "10"}, func(t *testing.T, c config.Config) {
			if c.Budget.DefaultWarning != c.Budget.DefaultDailyLimit {
				t.Errorf("warning %d, limit %d", c.Budget.DefaultWarning, c.Budget.DefaultDailyLimit)
			}
		}},
		{"zero budget", map[string]string{"HELIX_DEFAULT_DAILY_LIMIT_USD": "0", "HELIX_DEFAULT_WARNING_USD": "0"}, func(t *testing.T, c config.Config) {
			if c.Budget.DefaultDailyLimit != 0 || c.Budget.DefaultWarning != 0 {
				t.Errorf("limit %d, warning %d", c.Budget.DefaultDailyLimit, c.Budget.DefaultWarning)
			}
		}},
		{"durations", map[string]string{"HELIX_RESERVATION_TTL": "90s", "HELIX_CATALOG_TTL": "250ms"}, func(t *testing.T, c config.Config) {
			if c.Budget.ReservationTTL != 90*time.Second || c.CatalogTTL != 250*time.Millisecond {
				t.Errorf("reservation TTL %v, catalog TTL %v", c.Budget.ReservationTTL, c.CatalogTTL)
			}
		}},
		{"log levels", map[string]string{"HELIX_LOG_LEVEL": "debug"}, func(t *testing.T, c config.Config) {
			if c.LogLevel != slog.LevelDebug {
				t.Errorf("LogLevel = %v", c.LogLevel)
			}
		}},
		{"log level uppercase", map[string]string{"HELIX_LOG_LEVEL": "WARN"}, func(t *testing.T, c config.Config) {
			if c.LogLevel != slog.LevelWarn {
				t.Errorf("LogLevel = %v", c.LogLevel)
			}
		}},
		{"algorithms split on commas and trimmed", map[string]string{"HELIX_JWT_ALGORITHMS": " ES256 , RS256,, PS256 "}, func(t *testing.T, c config.Config) {
			if want := []string{"ES256", "RS256", "PS256"}; !slices.Equal(c.HTTP.Auth.Algorithms, want) {
				t.Errorf("Algorithms = %q, want %q", c.HTTP.Auth.Algorithms, want)
			}
		}},
		{"admin user ids", map[string]string{"HELIX_ADMIN_USER_IDS": "u1,u2 , ,u3"}, func(t *testing.T, c config.Config) {
			if want := []string{"u1", "u2", "u3"}; !slices.Equal(c.HTTP.Auth.AdminUserIDs, want) {
				t.Errorf("AdminUserIDs = %q, want %q", c.HTTP.Auth.AdminUserIDs, want)
			}
		}},
		{"single admin user id", map[string]string{"HELIX_ADMIN_USER_IDS": "only"}, func(t *testing.T, c config.Config) {
			if want := []string{"only"}; !slices.Equal(c.HTTP.Auth.AdminUserIDs, want) {
				t.Errorf("AdminUserIDs = %q, want %q", c.HTTP.Auth.AdminUserIDs, want)
			}
		}},
		{"admin claim", map[string]string{"HELIX_ADMIN_CLAIM": "cognito:groups", "HELIX_ADMIN_CLAIM_VALUE": "ops"}, func(t *testing.T, c config.Config) {
			if c.HTTP.Auth.AdminClaim != "cognito:groups" || c.HTTP.Auth.AdminValue != "ops" {
				t.Errorf("admin claim %q = %q", c.HTTP.Auth.AdminClaim, c.HTTP.Auth.AdminValue)
			}
		}},
		{"monitoring role", map[string]string{"HELIX_MONITORING_ROLE": " monitoring "}, func(t *testing.T, c config.Config) {
			if c.HTTP.Auth.MonitoringRole != "monitoring" {
				t.Errorf("MonitoringRole = %q, want monitoring", c.HTTP.Auth.MonitoringRole)
			}
		}},
		{"JWKS instead of a secret", map[string]string{"HELIX_JWT_SECRET": "", "HELIX_JWT_JWKS_URL": "https://issuer.test/.well-known/jwks.json"}, func(t *testing.T, c config.Config) {
			if c.HTTP.Auth.JWKSURL == "" || c.HTTP.Auth.HS256Secret != "" {
				t.Errorf("Auth = %+v", c.HTTP.Auth)
			}
		}},
		{"whitespace is trimmed", map[string]string{"DATABASE_URL": "  postgres://x  ", "HELIX_JWT_ISSUER": "\thttps://i\n"}, func(t *testing.T, c config.Config) {
			if c.DatabaseURL != "postgres://x" || c.HTTP.Auth.Issuer != "https://i" {
				t.Errorf("DatabaseURL %q, Issuer %q", c.DatabaseURL, c.HTTP.Auth.Issuer)
			}
		}},
		{"blank means default", map[string]string{"HELIX_DB_MAX_CONNS": "   ", "HELIX_CATALOG_TTL": " "}, func(t *testing.T, c config.Config) {
			if c.DB.MaxConns != 4 || c.CatalogTTL != 5*time.Second {
				t.Errorf("MaxConns %d, CatalogTTL %v", c.DB.MaxConns, c.CatalogTTL)
			}
		}},
		{"secret references are kept for the resolver", map[string]string{"DATABASE_URL": "secretsmanager:helix/db#url", "HELIX_JWT_SECRET": "ssm:/helix/jwt"}, func(t *testing.T, c config.Config) {
			if c.DatabaseURL != "secretsmanager:helix/db#url" || c.HTTP.Auth.HS256Secret != "ssm:/helix/jwt" {
				t.Errorf("DatabaseURL %q, HS256Secret %q", c.DatabaseURL, c.HTTP.Auth.HS256Secret)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := config.Load(env(tt.env), withHTTP)
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			tt.check(t, c)
		})
	}
}

func TestLoadInvalid(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		want []string // substrings the error must contain
	}{
		{"max conns not a number", map[string]string{"HELIX_DB_MAX_CONNS": "four"}, []string{"HELIX_DB_MAX_CONNS", `"four"`}},
		{"max conns zero", map[string]string{"HELIX_DB_MAX_CONNS": "0"}, []string{"HELIX_DB_MAX_CONNS"}},
		{"max conns too many", map[string]string{"HELIX_DB_MAX_CONNS": "1001"}, []string{"HELIX_DB_MAX_CONNS"}},
		{"max conns negative", map[string]string{"HELIX_DB_MAX_CONNS": "-3"}, []string{"HELIX_DB_MAX_CONNS"}},
		{"max conns fraction", map[string]string{"HELIX_DB_MAX_CONNS": "2.5"}, []string{"HELIX_DB_MAX_CONNS"}},
		{"max conns overflow", map[string]string{"HELIX_DB_MAX_CONNS": "99999999999999999999"}, []string{"HELIX_DB_MAX_CONNS"}},
		{"duration without unit", map[string]string{"HELIX_RESERVATION_TTL": "300"}, []string{"HELIX_RESERVATION_TTL", `"300"`}},
		{"duration garbage", map[string]string{"HELIX_CATALOG_TTL": "soon"}, []string{"HELIX_CATALOG_TTL"}},
		{"duration zero", map[string]string{"HELIX_CATALOG_TTL": "0s"}, []string{"HELIX_CATALOG_TTL"}},
		{"duration negative", map[string]string{"HELIX_RESERVATION_TTL": "-5m"}, []string{"HELIX_RESERVATION_TTL"}},
		{"limit not a number", map[string]string{"HELIX_DEFAULT_DAILY_LIMIT_USD": "fifty"}, []string{"HELIX_DEFAULT_DAILY_LIMIT_USD"}},
		{"limit with a dollar sign", map[string]string{"HELIX_DEFAULT_DAILY_LIMIT_USD": "$50"}, []string{"HELIX_DEFAULT_DAILY_LIMIT_USD"}},
		{"limit negative", map[string]string{"HELIX_DEFAULT_DAILY_LIMIT_USD": "-1"}, []string{"HELIX_DEFAULT_DAILY_LIMIT_USD"}},
		{"warning too precise", map[string]string{"HELIX_DEFAULT_WARNING_USD": "0.0000000001"}, []string{"HELIX_DEFAULT_WARNING_USD"}},
		{"warning above limit", map[string]string{"HELIX_DEFAULT_DAILY_LIMIT_USD": "10", "HELIX_DEFAULT_WARNING_USD": "10.000000001"}, []string{"HELIX_DEFAULT_WARNING_USD must not exceed"}},
		{"default warning above a lowered limit", map[string]string{"HELIX_DEFAULT_DAILY_LIMIT_USD": "20"}, []string{"HELIX_DEFAULT_WARNING_USD must not exceed"}},
		{"log level", map[string]string{"HELIX_LOG_LEVEL": "verbose"}, []string{"HELIX_LOG_LEVEL", `"verbose"`}},
		{"missing database URL", map[string]string{"DATABASE_URL": ""}, []string{"DATABASE_URL is required"}},
		{"missing issuer", map[string]string{"HELIX_JWT_ISSUER": ""}, []string{"HELIX_JWT_ISSUER"}},
		{"missing audience", map[string]string{"HELIX_JWT_AUDIENCE": "  "}, []string{"HELIX_JWT_AUDIENCE"}},
		{"monitoring role equal to the admin role", map[string]string{"HELIX_MONITORING_ROLE": "admin"}, []string{"HELIX_MONITORING_ROLE", `"admin"`}},
		{"neither secret nor JWKS", map[string]string{"HELIX_JWT_SECRET": ""}, []string{"HELIX_JWT_SECRET", "HELIX_JWT_JWKS_URL"}},
		{"every problem at once", map[string]string{
			"DATABASE_URL": "", "HELIX_JWT_SECRET": "", "HELIX_JWT_ISSUER": "",
			"HELIX_DB_MAX_CONNS": "x", "HELIX_RESERVATION_TTL": "x", "HELIX_CATALOG_TTL": "x",
			"HELIX_DEFAULT_DAILY_LIMIT_USD": "x", "HELIX_DEFAULT_WARNING_USD": "y", "HELIX_LOG_LEVEL": "x",
		}, []string{
			"DATABASE_URL", "HELIX_JWT_SECRET", "HELIX_JWT_ISSUER", "HELIX_DB_MAX_CONNS", "HELIX_RESERVATION_TTL",
			"HELIX_CATALOG_TTL", "HELIX_DEFAULT_DAILY_LIMIT_USD", "HELIX_DEFAULT_WARNING_USD", "HELIX_LOG_LEVEL",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := config.Load(env(tt.env), withHTTP)
			if err == nil {
				t.Fatal("Load succeeded, want an error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not mention %q:\n%v", w, err)
				}
			}
		})
	}
}

// One error line per problem, so an operator sees them all at once.
func TestLoadReportsEachProblemOnce(t *testing.T) {
	_, err := config.Load(env(map[string]string{"HELIX_DB_MAX_CONNS": "x", "HELIX_LOG_LEVEL": "x", "DATABASE_URL": ""}), withHTTP)
	if err == nil {
		t.Fatal("no error")
	}
	if n := len(strings.Split(err.Error(), "\n")); n != 3 {
		t.Fatalf("%d error lines, want 3:\n%v", n, err)
	}
}

func TestLoadDoesNotEchoSecrets(t *testing.T) {
	secret := "postgres://helix:hunter2-very-secret@db/helix"
	_, err := config.Load(env(map[string]string{"DATABASE_URL": secret, "HELIX_JWT_ISSUER": ""}), withHTTP)
	if err == nil {
		t.Fatal("no error")
	}
	if strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("error echoes a secret: %v", err)
	}
}

// Load reports every invalid value at once, an unknown HELIX_DB_EXEC_MODE included (not only
// later, when the pool is built).
func TestLoadRejectsUnknownExecMode(t *testing.T) {
	if _, err := config.Load(env(map[string]string{"HELIX_DB_EXEC_MODE": "turbo"}), withHTTP); err == nil {
		t.Fatal("Load accepted HELIX_DB_EXEC_MODE=turbo")
	}
}

// An event-driven function needs no JWT settings: the core loads without them, and asking for
// the HTTP part is what makes them required.
func TestCoreNeedsNoHTTPSettings(t *testing.T) {
	core := map[string]string{"DATABASE_URL": "postgres://helix@localhost/helix"}
	c, err := config.Load(core, config.Parts{})
	if err != nil {
		t.Fatalf("core without JWT settings: %v", err)
	}
	if c.HTTP.Auth.Issuer != "" || c.HTTP.CORSAllowOrigins != nil {
		t.Errorf("HTTP settings read without being asked for: %+v", c.HTTP)
	}
	_, err = config.Load(core, withHTTP)
	if err == nil || !strings.Contains(err.Error(), "HELIX_JWT_ISSUER") || !strings.Contains(err.Error(), "HELIX_JWT_SECRET") {
		t.Fatalf("HTTP part without JWT settings: err = %v, want both missing settings named", err)
	}
}

func TestHTTPSettings(t *testing.T) {
	c, err := config.Load(env(map[string]string{"HELIX_CORS_ALLOW_ORIGINS": "https://app.example.com, http://localhost:5173", "PORT": "8080"}), withHTTP)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"https://app.example.com", "http://localhost:5173"}; !slices.Equal(c.HTTP.CORSAllowOrigins, want) || c.HTTP.Port != 8080 {
		t.Errorf("origins %q port %d", c.HTTP.CORSAllowOrigins, c.HTTP.Port)
	}
	c, _ = config.Load(env(nil), withHTTP)
	if !slices.Equal(c.HTTP.CORSAllowOrigins, []string{"*"}) || c.HTTP.Port != 3000 {
		t.Errorf("defaults: origins %q port %d", c.HTTP.CORSAllowOrigins, c.HTTP.Port)
	}
	for _, bad := range []map[string]string{{"HELIX_CORS_ALLOW_ORIGINS": "app.example.com"}, {"PORT": "70000"}, {"PORT": "http"}} {
		if _, err := config.Load(env(bad), withHTTP); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
}

// HELIX_LAMBDA_ENTRY picks how a function is invoked: API Gateway by default, a streaming
// Function URL when set so; anything else is refused at cold start.
func TestLambdaEntry(t *testing.T) {
	cases := []struct {
		value string
		want  string // "" when refused
	}{
		{"", config.LambdaEntryHTTPAPI},
		{"http_api", config.LambdaEntryHTTPAPI},
		{"function_url", config.LambdaEntryFunctionURL},
		{" function_url ", config.LambdaEntryFunctionURL},
		{"FUNCTION_URL", ""},
		{"function-url", ""},
		{"stream", ""},
	}
	for _, tc := range cases {
		c, err := config.Load(env(map[string]string{"HELIX_LAMBDA_ENTRY": tc.value}), withHTTP)
		switch {
		case tc.want == "" && err == nil:
			t.Errorf("%q accepted as %q", tc.value, c.HTTP.LambdaEntry)
		case tc.want == "" && !strings.Contains(err.Error(), "HELIX_LAMBDA_ENTRY"):
			t.Errorf("%q refused without naming the variable: %v", tc.value, err)
		case tc.want != "" && (err != nil || c.HTTP.LambdaEntry != tc.want):
			t.Errorf("%q: entry %q, %v; want %q", tc.value, c.HTTP.LambdaEntry, err, tc.want)
		}
	}
	// An event-driven function does not read it.
	if _, err := config.Load(env(map[string]string{"HELIX_LAMBDA_ENTRY": "stream"}), config.Parts{}); err != nil {
		t.Errorf("without the HTTP part: %v", err)
	}
}

func TestProviderSettings(t *testing.T) {
	c, err := config.Load(env(map[string]string{
		"DEEPSEEK_API_KEY": "sk-1", "DEEPSEEK_BASE_URL": "https://ds.example/v1",
		"HELIX_OPENAI_COMPAT_PROVIDERS": "ollama, open-router", "OLLAMA_BASE_URL": "http://127.0.0.1:11434/v1",
		"OPEN_ROUTER_BASE_URL": "https://openrouter.ai/api/v1", "OPEN_ROUTER_API_KEY": "or",
		"HELIX_OFFLINE": "fallback",
	}), config.Parts{})
	if err != nil {
		t.Fatal(err)
	}
	p := c.Providers
	if p.DeepSeek != (config.Provider{APIKey: "sk-1", BaseURL: "https://ds.example/v1"}) || p.Gemini != (config.Provider{}) || p.Offline != config.OfflineFallback {
		t.Errorf("providers = %+v", p)
	}
	want := []config.NamedProvider{
		{Name: "ollama", Provider: config.Provider{BaseURL: "http://127.0.0.1:11434/v1"}},
		{Name: "open-router", Provider: config.Provider{APIKey: "or", BaseURL: "https://openrouter.ai/api/v1"}},
	}
	if !slices.Equal(p.OpenAICompatible, want) {
		t.Errorf("OpenAI-compatible = %+v, want %+v", p.OpenAICompatible, want)
	}
	for mode, want := range map[string]config.Offline{"": config.OfflineNever, "false": config.OfflineNever, "fallback": config.OfflineFallback, "true": config.OfflineAlways, "1": config.OfflineAlways} {
		c, err := config.Load(env(map[string]string{"HELIX_OFFLINE": mode}), config.Parts{})
		if err != nil || c.Providers.Offline != want {
			t.Errorf("HELIX_OFFLINE=%q: %v, %v; want %v", mode, c.Providers.Offline, err, want)
		}
	}
}

// environ turns "KEY=value" entries into the map Load reads, as the cold start does.
func environ(entries []string) map[string]string {
	m := env(nil)
	for _, kv := range entries {
		if k, v, ok := strings.Cut(kv, "="); ok {
			m[k] = v
		}
	}
	return m
}

func TestKillSwitches(t *testing.T) {
	tests := []struct {
		name    string
		environ []string
		want    map[string]bool
		wantErr []string // substrings the error must contain; nil means no error
	}{
		{name: "empty", environ: nil, want: map[string]bool{}},
		{
			name:    "true and false spellings",
			environ: []string{"DISABLE_DEEPSEEK=true", "DISABLE_GEMINI=false", "DISABLE_ANTHROPIC=1", "DISABLE_SYNTHESIS=0", "ENABLE_MAINTENANCE_MODE=TRUE"},
			want:    map[string]bool{"DISABLE_DEEPSEEK": true, "DISABLE_GEMINI": false, "DISABLE_ANTHROPIC": true, "DISABLE_SYNTHESIS": false, "ENABLE_MAINTENANCE_MODE": true},
		},
		{
			name:    "surrounding spaces are trimmed",
			environ: []string{"DISABLE_DEEPSEEK= true "},
			want:    map[string]bool{"DISABLE_DEEPSEEK": true},
		},
		{
			name:    "unrelated variables are ignored",
			environ: []string{"PATH=/usr/bin", "HOME=/root", "ENABLE_SOMETHING_ELSE=maybe", "MY_DISABLE_DEEPSEEK=yes", "LANG=C.UTF-8=x"},
			want:    map[string]bool{},
		},
		{
			name:    "an empty value is no override",
			environ: []string{"DISABLE_DEEPSEEK=", "ENABLE_MAINTENANCE_MODE= "},
			want:    map[string]bool{},
		},
		{
			name:    "invalid values are errors, valid ones still read",
			environ: []string{"DISABLE_DEEPSEEK=ture", "ENABLE_MAINTENANCE_MODE=yes", "DISABLE_GEMINI=true"},
			wantErr: []string{"DISABLE_DEEPSEEK", `"ture"`, "ENABLE_MAINTENANCE_MODE", `"yes"`},
		},
		{
			name:    "the value may contain '='",
			environ: []string{"DISABLE_DEEPSEEK=true=1"},
			wantErr: []string{"DISABLE_DEEPSEEK"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := config.Load(environ(tt.environ), config.Parts{})
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				if !maps.Equal(c.KillSwitches, tt.want) {
					t.Errorf("kill switches = %v, want %v", c.KillSwitches, tt.want)
				}
				return
			}
			if err == nil {
				t.Fatalf("want an error mentioning %q, got none", tt.wantErr)
			}
			for _, s := range tt.wantErr {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not mention %s", err, s)
				}
			}
		})
	}
}

func TestAuditSettings(t *testing.T) {
	c, err := config.Load(env(map[string]string{
		"DISCORD_WEBHOOK_ALERTS":    "https://discord.com/api/webhooks/1/abc",
		"DISCORD_WEBHOOK_HEARTBEAT": "http://127.0.0.1:9999/api/webhooks/2/def",
		"HELIX_AUDIT_VERIFIER_KEY":  "helix-audit+813e92ba+AeOsWqQv6at3fpY8Lfxzvks8dd0w6Oso33HSvKoiCDmI",
	}), config.Parts{})
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Audit.Webhooks) != 2 || c.Audit.Webhooks["DISCORD_WEBHOOK_ALERTS"] != "https://discord.com/api/webhooks/1/abc" || c.Audit.VerifierKey == "" {
		t.Errorf("audit settings %+v", c.Audit)
	}
	for _, bad := range []string{"http://discord.com/api/webhooks/1/SECRET", "discord.com/api/webhooks/SECRET", "ftp://x/SECRET"} {
		_, err := config.Load(env(map[string]string{"DISCORD_WEBHOOK_API": bad}), config.Parts{})
		if err == nil || !strings.Contains(err.Error(), "DISCORD_WEBHOOK_API") || strings.Contains(err.Error(), "SECRET") {
			t.Errorf("webhook %q: error %v (want refused, naming the variable, not the URL)", bad, err)
		}
	}
	if len(config.WebhookVars()) != 7 {
		t.Errorf("%d webhook variables, want the seven channels'", len(config.WebhookVars()))
	}
}

func TestAuditKeysAreChecked(t *testing.T) {
	for k, v := range map[string]string{"HELIX_AUDIT_SIGNING_KEY": "PRIVATE+KEY+nonsense-SECRET", "HELIX_AUDIT_VERIFIER_KEY": "not a key"} {
		_, err := config.Load(env(map[string]string{k: v}), config.Parts{})
		if err == nil || !strings.Contains(err.Error(), k) || strings.Contains(err.Error(), "SECRET") {
			t.Errorf("%s=%q: error %v (want refused, without echoing the key)", k, v, err)
		}
	}
}

// The template reaches Postgres through RDS Proxy by parts: the proxy's host and the user and
// password from the database's Secrets Manager secret (resolved before Load). Every part is
// escaped, so a generated password with URL syntax in it survives.
func TestDatabaseFromParts(t *testing.T) {
	parts := func(extra map[string]string) map[string]string {
		m := env(map[string]string{"HELIX_DB_HOST": "helix.proxy-abc.eu-west-1.rds.amazonaws.com",
			"HELIX_DB_USER": "helix_app", "HELIX_DB_PASSWORD": "p@ss:w/rd?#%"})
		delete(m, "DATABASE_URL")
		maps.Copy(m, extra)
		return m
	}
	cases := []struct {
		name       string
		env        map[string]string
		url        string
		listen     string
		wantFailed string // part of the error, when Load must fail
	}{
		{"url as given", env(nil), "postgres://helix@localhost/helix", "", ""},
		{"url and a listen url", env(map[string]string{"HELIX_DB_LISTEN_URL": "postgres://direct/helix"}),
			"postgres://helix@localhost/helix", "postgres://direct/helix", ""},
		{"parts with defaults", parts(nil),
			"postgres://helix_app:p%40ss%3Aw%2Frd%3F%23%25@helix.proxy-abc.eu-west-1.rds.amazonaws.com:5432/helix?sslmode=require", "", ""},
		{"parts with port, name, sslmode and a listen host",
			parts(map[string]string{"HELIX_DB_PORT": "6432", "HELIX_DB_NAME": "helix_prod", "HELIX_DB_SSLMODE": "verify-full",
				"HELIX_DB_LISTEN_HOST": "helix.cluster-abc.eu-west-1.rds.amazonaws.com"}),
			"postgres://helix_app:p%40ss%3Aw%2Frd%3F%23%25@helix.proxy-abc.eu-west-1.rds.amazonaws.com:6432/helix_prod?sslmode=verify-full",
			"postgres://helix_app:p%40ss%3Aw%2Frd%3F%23%25@helix.cluster-abc.eu-west-1.rds.amazonaws.com:6432/helix_prod?sslmode=verify-full", ""},
		{"neither", func() map[string]string { m := env(nil); delete(m, "DATABASE_URL"); return m }(), "", "", "DATABASE_URL is required"},
		{"both", parts(map[string]string{"DATABASE_URL": "postgres://x/y"}), "", "", "not both"},
		{"host without user", parts(map[string]string{"HELIX_DB_USER": ""}), "", "", "HELIX_DB_USER is required"},
		{"bad port", parts(map[string]string{"HELIX_DB_PORT": "70000"}), "", "", "HELIX_DB_PORT"},
		{"bad sslmode", parts(map[string]string{"HELIX_DB_SSLMODE": "maybe"}), "", "", "HELIX_DB_SSLMODE"},
		{"listen url and host", parts(map[string]string{"HELIX_DB_LISTEN_URL": "postgres://a/b", "HELIX_DB_LISTEN_HOST": "b"}), "", "", "not both"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := config.Load(tc.env, withHTTP)
			if tc.wantFailed != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantFailed) {
					t.Fatalf("Load error %v, want one saying %q", err, tc.wantFailed)
				}
				if strings.Contains(err.Error(), "p@ss") {
					t.Errorf("the error echoes the password: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			if c.DatabaseURL != tc.url || c.DB.ListenURL != tc.listen {
				t.Errorf("DatabaseURL %q, ListenURL %q; want %q, %q", c.DatabaseURL, c.DB.ListenURL, tc.url, tc.listen)
			}
		})
	}
}
