// Package config reads Helix's configuration from the environment into typed values, once per
// cold start: every variable any function reads is read here, named beside its field, and every
// invalid value is reported at once. Values that are secrets may be references ("ssm:/path",
// "secretsmanager:id") that the cold start resolves with package secrets before Load sees them.
//
// The core settings are what every function needs (database, budgets, logging, providers, kill
// switches); the HTTP settings (token verification, CORS) are read only for functions that serve
// HTTP, so an event-driven function starts without any JWT setting.
package config

import (
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"golang.org/x/crypto/bcrypt"
	"golang.org/x/mod/sumdb/note"

	"github.com/helixhq/helix/shared/money"
)

// Config is everything a Helix function reads from its environment.
type Config struct {
	// DatabaseURL is DATABASE_URL (secret), or, when that is unset, the URL built from
	// HELIX_DB_HOST, HELIX_DB_PORT, HELIX_DB_NAME, HELIX_DB_USER (secret), HELIX_DB_PASSWORD
	// (secret) and HELIX_DB_SSLMODE: how template.yaml points the functions at RDS Proxy with the
	// user and password from the database's Secrets Manager secret.
	DatabaseURL string
	DB          DB
	Budget      Budget
	CatalogTTL  time.Duration // HELIX_CATALOG_TTL
	LogLevel    slog.Level    // HELIX_LOG_LEVEL
	Providers   Providers
	// KillSwitches are the toggles the environment pins, overriding the feature_toggles table:
	// ENABLE_MAINTENANCE_MODE and every DISABLE_* variable (DISABLE_DEEPSEEK, DISABLE_SYNTHESIS,
	// ...), "true" or "false". Unset, the table decides.
	KillSwitches map[string]bool
	Chat         Chat
	Synthesis    Synthesis
	Audit        Audit
	Alerts       Alerts
	// MetricsNamespace is the CloudWatch namespace of the functions' EMF metrics
	// (HELIX_METRICS_NAMESPACE; e.g. Helix/prod, so stages do not mix in one account).
	MetricsNamespace string
	// HTTP is read only when Load is asked for it (Parts.HTTP).
	HTTP HTTP
}

// Chat configures chat replies and the creator.
type Chat struct {
	CreatorUserID   string        // HELIX_CREATOR_USER_ID: the deployment's owner (trust 1.0)
	DefaultTrust    float64       // HELIX_DEFAULT_TRUST: everyone else's trust level (0 to 1)
	HistoryTokens   int           // HELIX_CHAT_HISTORY_TOKENS: history sent with a chat_message
	MemoryTokens    int           // HELIX_CHAT_MEMORY_TOKENS: learned insights in its system prompt
	StepUpPhrase    string        // HELIX_STEPUP_PHRASE: e.g. THANOS_MODE; empty disables the step-up
	StepUpKeyHash   string        // HELIX_STEPUP_KEY_HASH (secret): bcrypt hash of the step-up key
	StepUpFailures  int           // HELIX_STEPUP_MAX_FAILURES: failed attempts before a lockout
	StepUpWindow    time.Duration // HELIX_STEPUP_WINDOW: how far back failures count (and the lockout lasts)
	SynthesizeEvery int           // HELIX_SYNTHESIZE_EVERY: user messages per synthesis job
}

// Alerts configures operator alert rules' own webhooks.
type Alerts struct {
	// WebhookKey seals rules' webhook URLs at rest (HELIX_ALERT_WEBHOOK_KEY: 32 bytes, base64;
	// a secret). Empty: rules cannot have webhooks of their own, only #helix-alerts.
	WebhookKey string
	// WebhookHosts are hosts besides Discord's a rule's webhook may point at
	// (HELIX_ALERT_WEBHOOK_HOSTS, comma-separated).
	WebhookHosts []string
}

// Audit configures the audit log's checkpoints and its Discord channels.
type Audit struct {
	// SigningKey signs checkpoints (HELIX_AUDIT_SIGNING_KEY, secret: a note private key,
	// PRIVATE+KEY+name+hash+key, from `make audit-key`); only the audit function needs it.
	SigningKey string
	// VerifierKey is its public half (HELIX_AUDIT_VERIFIER_KEY), with which verification checks
	// stored checkpoints' signatures.
	VerifierKey string
	// Webhooks are the Discord channels' webhook URLs (secrets), by variable name
	// (DISCORD_WEBHOOK_COMMANDS, ...; see WebhookVars). A channel without one keeps its messages.
	Webhooks map[string]string
}

// WebhookVars are the variables of the seven Discord channels' webhooks.
func WebhookVars() []string {
	return []string{"DISCORD_WEBHOOK_COMMANDS", "DISCORD_WEBHOOK_API", "DISCORD_WEBHOOK_HEARTBEAT",
		"DISCORD_WEBHOOK_FILE_CHANGES", "DISCORD_WEBHOOK_CONSCIOUSNESS", "DISCORD_WEBHOOK_ALERTS", "DISCORD_WEBHOOK_HASH_CHAIN"}
}

// Synthesis configures the memory synthesis jobs.
type Synthesis struct {
	// QueueURL is the SQS queue jobs go to (HELIX_SYNTHESIS_QUEUE_URL); empty on the dev server,
	// which runs the consumer in process.
	QueueURL string
	// Idle is how long a conversation with unsynthesized messages waits before the sweep sends
	// its job (HELIX_SYNTHESIS_IDLE).
	Idle time.Duration
}

// DB tunes the connection pool.
type DB struct {
	MaxConns int32  // HELIX_DB_MAX_CONNS
	ExecMode string // HELIX_DB_EXEC_MODE: exec, simple_protocol, describe_exec, cache_describe, cache_statement
	// ListenURL is where the chat function holds its one LISTEN connection (long-polls wait on
	// it): HELIX_DB_LISTEN_URL (secret), or HELIX_DB_LISTEN_HOST with the rest of the database
	// settings; empty means the pool's database. LISTEN needs a session: RDS Proxy pins that
	// connection and it works; PgBouncer in transaction mode would lose the notifications, so
	// behind it this names the database itself or a session-mode pool.
	ListenURL string
	// GroupCommit (HELIX_DB_GROUP_COMMIT, on or off; on by default) writes the reservations and
	// the settlements of concurrent requests in one process together, one statement and one
	// commit per batch (shared/groupcommit). A lone request is written at once either way.
	GroupCommit bool
}

// ExecModes are the accepted HELIX_DB_EXEC_MODE values (pgx's query execution modes). "exec" and
// "simple_protocol" create no named prepared statements, so they work behind RDS Proxy and
// PgBouncer transaction pooling.
var ExecModes = []string{"exec", "simple_protocol", "describe_exec", "cache_describe", "cache_statement"}

// Budget holds the defaults for users without their own limits.
type Budget struct {
	DefaultDailyLimit money.Nano    // HELIX_DEFAULT_DAILY_LIMIT_USD
	DefaultWarning    money.Nano    // HELIX_DEFAULT_WARNING_USD
	ReservationTTL    time.Duration // HELIX_RESERVATION_TTL
}

// Providers configures the model providers. Every value is optional: a provider without a key
// is unavailable (or, with Offline, answered by the offline model).
type Providers struct {
	DeepSeek  Provider // DEEPSEEK_API_KEY (secret), DEEPSEEK_BASE_URL
	Gemini    Provider // GEMINI_API_KEY (secret), GEMINI_BASE_URL
	Anthropic Provider // ANTHROPIC_API_KEY (secret), ANTHROPIC_BASE_URL
	// OpenAICompatible are extra providers named in HELIX_OPENAI_COMPAT_PROVIDERS ("ollama,vllm"),
	// each with <NAME>_BASE_URL (required) and <NAME>_API_KEY (secret, optional), <NAME> being
	// the name upper-cased with "-" as "_".
	OpenAICompatible []NamedProvider
	// Offline says when the offline model answers (HELIX_OFFLINE): OfflineNever (false, the
	// default), OfflineFallback (fallback: for providers without a key) or OfflineAlways (true).
	Offline Offline
}

// Provider is one provider's key and API root ("" for the provider's default).
type Provider struct {
	APIKey  string
	BaseURL string
}

// NamedProvider is an extra OpenAI-compatible provider.
type NamedProvider struct {
	Name string // as ai_models.provider spells it
	Provider
}

// Offline is when the offline model answers.
type Offline int

// Offline modes.
const (
	OfflineNever Offline = iota
	OfflineFallback
	OfflineAlways
)

// HTTP configures the functions that serve HTTP.
type HTTP struct {
	Auth Auth
	// CORSAllowOrigins are the origins browsers may call the API from (HELIX_CORS_ALLOW_ORIGINS,
	// comma-separated; "*" for any). The dev server answers CORS with them; behind API Gateway
	// template.yaml gives the same list (the CorsAllowOrigins parameter) to its CORS setting.
	CORSAllowOrigins []string
	// Port is the dev server's port (PORT).
	Port int
	// LambdaEntry is what invokes the Lambda function (HELIX_LAMBDA_ENTRY): LambdaEntryHTTPAPI
	// (the default), API Gateway's HTTP API, whose answers are sent whole; or
	// LambdaEntryFunctionURL, a Function URL in RESPONSE_STREAM mode, whose answers stream.
	// template.yaml's *StreamFunction resources set the second; the dev server ignores it.
	LambdaEntry string
}

// The HELIX_LAMBDA_ENTRY values.
const (
	LambdaEntryHTTPAPI     = "http_api"
	LambdaEntryFunctionURL = "function_url"
)

// LambdaEntries are the accepted HELIX_LAMBDA_ENTRY values.
var LambdaEntries = []string{LambdaEntryHTTPAPI, LambdaEntryFunctionURL}

// Auth configures token verification and the admin rule.
type Auth struct {
	HS256Secret  string   // HELIX_JWT_SECRET (secret)
	JWKSURL      string   // HELIX_JWT_JWKS_URL
	Algorithms   []string // HELIX_JWT_ALGORITHMS
	Issuer       string   // HELIX_JWT_ISSUER
	Audience     string   // HELIX_JWT_AUDIENCE
	AdminClaim   string   // HELIX_ADMIN_CLAIM
	AdminValue   string   // HELIX_ADMIN_CLAIM_VALUE
	AdminUserIDs []string // HELIX_ADMIN_USER_IDS
	// MonitoringRole is a value of AdminClaim that lets its holders read the live operation
	// feed (HELIX_MONITORING_ROLE, e.g. "monitoring"); empty: admins only.
	MonitoringRole string
}

// Parts say which settings beyond the core a function needs.
type Parts struct {
	HTTP bool // token verification and CORS, for functions behind the HTTP API
}

// Load reads the configuration from env (the environment, secret references resolved) and
// reports every invalid value at once.
func Load(env map[string]string, parts Parts) (Config, error) {
	r := reader{env: env}
	c := Config{
		DB: DB{
			MaxConns:    int32(r.int("HELIX_DB_MAX_CONNS", 4, 1, 1000)),
			ExecMode:    r.oneOf("HELIX_DB_EXEC_MODE", "exec", ExecModes),
			GroupCommit: r.oneOf("HELIX_DB_GROUP_COMMIT", "on", []string{"on", "off"}) == "on",
		},
		Budget: Budget{
			DefaultDailyLimit: r.usd("HELIX_DEFAULT_DAILY_LIMIT_USD", money.MustUSD(50)),
			DefaultWarning:    r.usd("HELIX_DEFAULT_WARNING_USD", money.MustUSD(25)),
			ReservationTTL:    r.duration("HELIX_RESERVATION_TTL", 5*time.Minute),
		},
		CatalogTTL:   r.duration("HELIX_CATALOG_TTL", 5*time.Second),
		LogLevel:     r.level("HELIX_LOG_LEVEL", slog.LevelInfo),
		Providers:    r.providers(),
		KillSwitches: r.killSwitches(),
		Chat: Chat{
			CreatorUserID:   r.str("HELIX_CREATOR_USER_ID", ""),
			DefaultTrust:    r.float("HELIX_DEFAULT_TRUST", 0.5, 0, 1),
			HistoryTokens:   r.int("HELIX_CHAT_HISTORY_TOKENS", 12_000, 500, 1_000_000),
			MemoryTokens:    r.int("HELIX_CHAT_MEMORY_TOKENS", 1_500, 0, 100_000),
			StepUpPhrase:    r.str("HELIX_STEPUP_PHRASE", ""),
			StepUpKeyHash:   r.str("HELIX_STEPUP_KEY_HASH", ""),
			StepUpFailures:  r.int("HELIX_STEPUP_MAX_FAILURES", 5, 1, 100),
			StepUpWindow:    r.duration("HELIX_STEPUP_WINDOW", 15*time.Minute),
			SynthesizeEvery: r.int("HELIX_SYNTHESIZE_EVERY", 5, 1, 1000),
		},
		Synthesis: Synthesis{
			QueueURL: r.str("HELIX_SYNTHESIS_QUEUE_URL", ""),
			Idle:     r.duration("HELIX_SYNTHESIS_IDLE", 10*time.Minute),
		},
		Audit: Audit{
			SigningKey:  r.str("HELIX_AUDIT_SIGNING_KEY", ""),
			VerifierKey: r.str("HELIX_AUDIT_VERIFIER_KEY", ""),
			Webhooks:    r.webhooks(),
		},
		MetricsNamespace: r.str("HELIX_METRICS_NAMESPACE", "Helix"),
		Alerts: Alerts{
			WebhookKey:   r.str("HELIX_ALERT_WEBHOOK_KEY", ""),
			WebhookHosts: r.list("HELIX_ALERT_WEBHOOK_HOSTS", nil),
		},
	}
	if k := c.Alerts.WebhookKey; k != "" {
		if b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(k)); err != nil || len(b) != 32 {
			r.fail("HELIX_ALERT_WEBHOOK_KEY must be 32 random bytes in base64 (openssl rand -base64 32)")
		}
	}
	if c.Chat.StepUpPhrase != "" {
		if _, err := bcrypt.Cost([]byte(c.Chat.StepUpKeyHash)); err != nil || c.Chat.CreatorUserID == "" {
			r.fail("HELIX_STEPUP_PHRASE needs HELIX_CREATOR_USER_ID and HELIX_STEPUP_KEY_HASH, a bcrypt hash of the key (make stepup-hash prints one)")
		}
	}
	if k := c.Audit.SigningKey; k != "" {
		if _, err := note.NewSigner(strings.TrimSpace(k)); err != nil {
			r.fail("HELIX_AUDIT_SIGNING_KEY must be a note signing key (PRIVATE+KEY+name+hash+key; make audit-key makes one)")
		}
	}
	if k := c.Audit.VerifierKey; k != "" {
		for _, one := range strings.Split(k, ",") {
			if _, err := note.NewVerifier(strings.TrimSpace(one)); err != nil {
				r.fail("HELIX_AUDIT_VERIFIER_KEY must be a note verifier key (name+hash+key; make audit-key prints it), or several, comma-separated")
				break
			}
		}
	}
	if u := c.Synthesis.QueueURL; u != "" && !strings.HasPrefix(u, "https://") && !strings.HasPrefix(u, "http://") {
		r.fail("HELIX_SYNTHESIS_QUEUE_URL must be the queue's URL (https://sqs.<region>.amazonaws.com/<account>/<name>)")
	}
	c.DatabaseURL, c.DB.ListenURL = r.database()
	if c.Budget.DefaultWarning > c.Budget.DefaultDailyLimit {
		r.fail("HELIX_DEFAULT_WARNING_USD must not exceed HELIX_DEFAULT_DAILY_LIMIT_USD")
	}
	if parts.HTTP {
		c.HTTP = r.http()
	}
	return c, errors.Join(r.errs...)
}

// database reads where Postgres is: DATABASE_URL, or the parts template.yaml sets (the proxy's
// host and the secret's user and password), and where the LISTEN connection goes.
func (r *reader) database() (dsn, listen string) {
	dsn, listen = r.str("DATABASE_URL", ""), r.str("HELIX_DB_LISTEN_URL", "")
	host, listenHost := r.str("HELIX_DB_HOST", ""), r.str("HELIX_DB_LISTEN_HOST", "")
	if dsn != "" && host != "" {
		r.fail("set DATABASE_URL or HELIX_DB_HOST, not both")
	}
	if listen != "" && listenHost != "" {
		r.fail("set HELIX_DB_LISTEN_URL or HELIX_DB_LISTEN_HOST, not both")
	}
	if dsn == "" && host == "" {
		r.fail("DATABASE_URL is required (or HELIX_DB_HOST with HELIX_DB_USER and HELIX_DB_PASSWORD)")
		return "", ""
	}
	if host == "" && listenHost == "" {
		return dsn, listen
	}
	parts := dbParts{
		port:     r.int("HELIX_DB_PORT", 5432, 1, 65535),
		name:     r.str("HELIX_DB_NAME", "helix"),
		user:     r.str("HELIX_DB_USER", ""),
		password: r.str("HELIX_DB_PASSWORD", ""),
		sslmode:  r.oneOf("HELIX_DB_SSLMODE", "require", []string{"disable", "allow", "prefer", "require", "verify-ca", "verify-full"}),
	}
	if parts.user == "" {
		r.fail("HELIX_DB_USER is required with HELIX_DB_HOST or HELIX_DB_LISTEN_HOST")
	}
	if host != "" {
		dsn = parts.url(host)
	}
	if listenHost != "" {
		listen = parts.url(listenHost)
	}
	return dsn, listen
}

// dbParts are the connection settings a database URL is built from.
type dbParts struct {
	port                 int
	name, user, password string
	sslmode              string
}

// url is the postgres:// URL for host, every part escaped (a generated password may hold any
// character).
func (p dbParts) url(host string) string {
	u := url.URL{Scheme: "postgres", User: url.UserPassword(p.user, p.password),
		Host: net.JoinHostPort(host, strconv.Itoa(p.port)), Path: "/" + p.name,
		RawQuery: url.Values{"sslmode": {p.sslmode}}.Encode()}
	return u.String()
}

func (r *reader) http() HTTP {
	h := HTTP{
		Auth: Auth{
			HS256Secret:    r.str("HELIX_JWT_SECRET", ""),
			JWKSURL:        r.str("HELIX_JWT_JWKS_URL", ""),
			Algorithms:     r.list("HELIX_JWT_ALGORITHMS", []string{"RS256", "ES256"}),
			Issuer:         r.str("HELIX_JWT_ISSUER", ""),
			Audience:       r.str("HELIX_JWT_AUDIENCE", ""),
			AdminClaim:     r.str("HELIX_ADMIN_CLAIM", "role"),
			AdminValue:     r.str("HELIX_ADMIN_CLAIM_VALUE", "admin"),
			AdminUserIDs:   r.list("HELIX_ADMIN_USER_IDS", nil),
			MonitoringRole: r.str("HELIX_MONITORING_ROLE", ""),
		},
		CORSAllowOrigins: r.list("HELIX_CORS_ALLOW_ORIGINS", []string{"*"}),
		Port:             r.int("PORT", 3000, 1, 65535),
		LambdaEntry:      r.oneOf("HELIX_LAMBDA_ENTRY", LambdaEntryHTTPAPI, LambdaEntries),
	}
	if h.Auth.HS256Secret == "" && h.Auth.JWKSURL == "" {
		r.fail("set HELIX_JWT_SECRET (HS256) or HELIX_JWT_JWKS_URL (RS256/ES256), or both")
	}
	if h.Auth.Issuer == "" || h.Auth.Audience == "" {
		r.fail("HELIX_JWT_ISSUER and HELIX_JWT_AUDIENCE are required")
	}
	if m := h.Auth.MonitoringRole; m != "" && m == h.Auth.AdminValue {
		r.fail("HELIX_MONITORING_ROLE must differ from HELIX_ADMIN_CLAIM_VALUE (%q is already the admin role)", m)
	}
	for _, o := range h.CORSAllowOrigins {
		if o != "*" && !strings.HasPrefix(o, "https://") && !strings.HasPrefix(o, "http://") {
			r.fail("HELIX_CORS_ALLOW_ORIGINS: %q is not an origin (https://app.example.com) or *", o)
		}
	}
	return h
}

func (r *reader) providers() Providers {
	p := Providers{
		DeepSeek:  Provider{APIKey: r.str("DEEPSEEK_API_KEY", ""), BaseURL: r.str("DEEPSEEK_BASE_URL", "")},
		Gemini:    Provider{APIKey: r.str("GEMINI_API_KEY", ""), BaseURL: r.str("GEMINI_BASE_URL", "")},
		Anthropic: Provider{APIKey: r.str("ANTHROPIC_API_KEY", ""), BaseURL: r.str("ANTHROPIC_BASE_URL", "")},
	}
	switch v := strings.ToLower(r.str("HELIX_OFFLINE", "")); v {
	case "", "0", "false", "no", "off":
	case "fallback":
		p.Offline = OfflineFallback
	case "1", "true", "yes", "on":
		p.Offline = OfflineAlways
	default:
		r.fail("HELIX_OFFLINE must be false, fallback or true, got %q", v)
	}
	seen := map[string]bool{"deepseek": true, "gemini": true, "anthropic": true, "offline": true}
	for _, name := range r.list("HELIX_OPENAI_COMPAT_PROVIDERS", nil) {
		if !validProviderName(name) {
			r.fail("HELIX_OPENAI_COMPAT_PROVIDERS: %q is not a provider name (lower-case letters, digits, '-', '_')", name)
			continue
		}
		if seen[name] {
			r.fail("HELIX_OPENAI_COMPAT_PROVIDERS: %q is already a provider", name)
			continue
		}
		seen[name] = true
		prefix := ProviderEnvPrefix(name)
		np := NamedProvider{Name: name, Provider: Provider{
			APIKey: r.str(prefix+"_API_KEY", ""), BaseURL: r.str(prefix+"_BASE_URL", ""),
		}}
		if np.BaseURL == "" {
			r.fail("%s_BASE_URL is required for OpenAI-compatible provider %q", prefix, name)
		}
		p.OpenAICompatible = append(p.OpenAICompatible, np)
	}
	return p
}

// ProviderEnvPrefix turns a provider name into its variables' prefix: "open-router" → "OPEN_ROUTER".
func ProviderEnvPrefix(name string) string {
	return strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}

// validProviderName accepts lower-case names of letters, digits, '-' and '_', starting with a
// letter or digit: they become variable prefixes and ai_models.provider values.
func validProviderName(name string) bool {
	for i, c := range name {
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case (c == '-' || c == '_') && i > 0:
		default:
			return false
		}
	}
	return name != ""
}

// killSwitches reads ENABLE_MAINTENANCE_MODE and every DISABLE_* variable as a boolean; anything
// else is an error, so a misspelt "ture" does not silently leave a switch off.
// webhooks reads the Discord webhook URLs: https, or http to the local machine (tests, a local
// relay). The error never repeats a URL: it is a secret.
func (r *reader) webhooks() map[string]string {
	out := map[string]string{}
	for _, k := range WebhookVars() {
		v := r.str(k, "")
		if v == "" {
			continue
		}
		u, err := url.Parse(v)
		local := err == nil && u.Scheme == "http" && (u.Hostname() == "127.0.0.1" || u.Hostname() == "localhost" || u.Hostname() == "::1")
		if err != nil || u.Host == "" || (u.Scheme != "https" && !local) {
			r.fail("%s must be a webhook URL (https://discord.com/api/webhooks/...)", k)
			continue
		}
		out[k] = v
	}
	return out
}

func (r *reader) killSwitches() map[string]bool {
	out := map[string]bool{}
	keys := make([]string, 0)
	for k := range r.env {
		if k == "ENABLE_MAINTENANCE_MODE" || strings.HasPrefix(k, "DISABLE_") {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys) // errors in a stable order
	for _, k := range keys {
		v := r.str(k, "")
		if v == "" {
			continue
		}
		b, err := strconv.ParseBool(v)
		if err != nil {
			r.fail("%s must be true or false, got %q", k, v)
			continue
		}
		out[k] = b
	}
	return out
}

type reader struct {
	env  map[string]string
	errs []error
}

func (r *reader) fail(format string, args ...any) {
	r.errs = append(r.errs, fmt.Errorf(format, args...))
}

func (r *reader) str(key, def string) string {
	if v := strings.TrimSpace(r.env[key]); v != "" {
		return v
	}
	return def
}

func (r *reader) oneOf(key, def string, allowed []string) string {
	v := r.str(key, def)
	for _, a := range allowed {
		if v == a {
			return v
		}
	}
	r.fail("%s must be one of %s, got %q", key, strings.Join(allowed, ", "), v)
	return def
}

func (r *reader) list(key string, def []string) []string {
	v := r.str(key, "")
	if v == "" {
		return def
	}
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

func (r *reader) int(key string, def, min, max int) int {
	v := r.str(key, "")
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < min || n > max {
		r.fail("%s must be an integer from %d to %d, got %q", key, min, max, v)
		return def
	}
	return n
}

func (r *reader) float(key string, def, min, max float64) float64 {
	v := r.str(key, "")
	if v == "" {
		return def
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || f < min || f > max {
		r.fail("%s must be a number from %g to %g, got %q", key, min, max, v)
		return def
	}
	return f
}

func (r *reader) duration(key string, def time.Duration) time.Duration {
	v := r.str(key, "")
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		r.fail("%s must be a positive duration such as 30s or 5m, got %q", key, v)
		return def
	}
	return d
}

func (r *reader) usd(key string, def money.Nano) money.Nano {
	v := r.str(key, "")
	if v == "" {
		return def
	}
	n, err := money.ParseUSD(v)
	if err != nil {
		r.fail("%s must be a USD amount such as 50 or 12.5, got %q", key, v)
		return def
	}
	return n
}

func (r *reader) level(key string, def slog.Level) slog.Level {
	v := r.str(key, "")
	if v == "" {
		return def
	}
	var l slog.Level
	if err := l.UnmarshalText([]byte(v)); err != nil {
		r.fail("%s must be debug, info, warn or error, got %q", key, v)
		return def
	}
	return l
}
