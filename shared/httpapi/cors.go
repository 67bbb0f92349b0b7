package httpapi

import (
	"net/http"
	"slices"
	"strconv"
	"strings"
)

// CORS is the browser access policy. Origins come from configuration (HELIX_CORS_ALLOW_ORIGINS,
// and the CorsAllowOrigins parameter that template.yaml hands to API Gateway); the methods and
// headers are the API's own, and template.yaml's CorsConfiguration lists the same ones (a test
// compares them).
type CORS struct {
	// AllowOrigins are exact origins ("https://app.example.com"), or "*" for any.
	AllowOrigins []string
}

// The methods, request headers and response headers a browser app may use.
var (
	CORSAllowMethods  = []string{"GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}
	CORSAllowHeaders  = []string{"authorization", "content-type", "x-helix-approval-id"}
	CORSExposeHeaders = []string{"retry-after", "www-authenticate", "x-helix-cost-usd", "x-helix-model", "x-helix-operation-id", "x-request-id"}
)

// CORSMaxAge is how long a browser may cache a preflight answer, in seconds.
const CORSMaxAge = 600

func (c *CORS) allowed(origin string) (string, bool) {
	if slices.Contains(c.AllowOrigins, "*") {
		return "*", true
	}
	if slices.Contains(c.AllowOrigins, origin) {
		return origin, true
	}
	return "", false
}

// handle labels a cross-origin response and answers a preflight itself (it reports true then).
// A preflight needs no credentials: browsers never send them on one.
func (c *CORS) handle(w http.ResponseWriter, r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return false
	}
	h := w.Header()
	h.Add("Vary", "Origin")
	allow, ok := c.allowed(origin)
	preflight := r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != ""
	if !ok {
		if preflight {
			// Without the allow headers the browser refuses the real request.
			w.WriteHeader(http.StatusNoContent)
		}
		return preflight
	}
	h.Set("Access-Control-Allow-Origin", allow)
	if !preflight {
		h.Set("Access-Control-Expose-Headers", strings.Join(CORSExposeHeaders, ", "))
		return false
	}
	h.Set("Access-Control-Allow-Methods", strings.Join(CORSAllowMethods, ", "))
	h.Set("Access-Control-Allow-Headers", strings.Join(CORSAllowHeaders, ", "))
	h.Set("Access-Control-Max-Age", strconv.Itoa(CORSMaxAge))
	w.WriteHeader(http.StatusNoContent)
	return true
}
