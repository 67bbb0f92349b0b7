// Package devenv holds the settings the local dev server and `make token` share, so a token from
// one is accepted by the other. They are for a laptop only: a deployment sets its own.
package devenv

// Default returns the local-development value of an environment variable, or "".
func Default(key string) string {
	switch key {
	case "HELIX_JWT_SECRET":
		return "helix-local-dev-secret-do-not-use-in-production"
	case "HELIX_JWT_ISSUER":
		return "helix-local"
	case "HELIX_JWT_AUDIENCE":
		return "helix"
	case "HELIX_OFFLINE":
		// Providers without a key answer from the offline model, so everything works with none.
		return "fallback"
	}
	return ""
}

// Getenv returns a getenv that falls back to Default.
func Getenv(getenv func(string) string) func(string) string {
	return func(k string) string {
		if v := getenv(k); v != "" {
			return v
		}
		return Default(k)
	}
}
