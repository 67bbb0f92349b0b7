package httpapi

import (
	"net/http"
	"strings"

	"github.com/helixhq/helix/shared/fault"
)

// OnlyRoutes passes to h the requests that match one of patterns (ServeMux patterns, as h
// registered them, e.g. "POST /v1/chat/completions") and CORS preflights, and answers every
// other request with a JSON 404 (not_found) that sends the client to elsewhere: the streaming
// Function URLs serve only their streaming routes, the HTTP API serves the rest.
func OnlyRoutes(h http.Handler, elsewhere string, patterns ...string) http.Handler {
	mux := http.NewServeMux()
	for _, p := range patterns {
		mux.Handle(p, h)
	}
	served := strings.Join(patterns, ", ")
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, pattern := mux.Handler(r); pattern != "" || r.Method == http.MethodOptions {
			h.ServeHTTP(w, r)
			return
		}
		writeError(w, "", Problem{Status: http.StatusNotFound, Code: fault.NotFound,
			Message: "this URL serves only " + served + "; send " + r.Method + " " + r.URL.Path + " to " + elsewhere})
	})
}
