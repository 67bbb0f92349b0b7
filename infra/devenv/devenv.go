// Package devenv holds the settings the local dev server and `make token` share, so a token from
// one is accepted by the other. They are for a laptop only: a deployment sets its own.
package devenv

// Defaults are the local-development values of the variables the environment does not set.
func Defaults() map[string]string {
	return map[string]string{
		"HELIX_JWT_SECRET":   "helix-local-dev-secret-do-not-use-in-production",
		"HELIX_JWT_ISSUER":   "helix-local",
		"HELIX_JWT_AUDIENCE": "helix",
		// Providers without a key answer from the offline model, so everything works with none.
		"HELIX_OFFLINE": "fallback",
		// Seals alert rules' own webhooks locally (published, so it protects nothing: a laptop's).
		"HELIX_ALERT_WEBHOOK_KEY": "aGVsaXgtbG9jYWwtZGV2LWFsZXJ0LWtleS0zMmJ5dGU=",
	}
}

// Getenv returns a getenv that falls back to Defaults.
func Getenv(getenv func(string) string) func(string) string {
	defaults := Defaults()
	return func(k string) string {
		if v := getenv(k); v != "" {
			return v
		}
		return defaults[k]
	}
}

// The dev server's audit checkpoint key pair, used when HELIX_AUDIT_SIGNING_KEY is unset: fixed,
// so a dev database's checkpoints still verify after a restart. Published here, so it proves
// nothing: never use it outside a laptop (a deployment's key lives in a secret store).
const (
	AuditSigningKey  = "PRIVATE+KEY+helix-audit-dev-only+372cbc73+AYITE0Jps7Cgr1KZ7Ei+sqE6TWcGHjVn1liWQIUDrwrm"
	AuditVerifierKey = "helix-audit-dev-only+372cbc73+ATTYkQgOvj+QUMcFQ93zTZNDDwEyxva7cadgX6aErfCF"
)
