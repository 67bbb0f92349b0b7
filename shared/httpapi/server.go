package httpapi

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/helixhq/helix/shared/auth"
)

// Authenticator is what the server needs from package auth.
type Authenticator interface {
	Verify(ctx context.Context, token string) (auth.Principal, error)
	FromGatewayClaims(claims map[string]string) (auth.Principal, error)
}

// Handler serves an authenticated request. A returned *Error is sent as is; any other error is
// logged and sent as a 500 without its text.
type Handler func(w http.ResponseWriter, r *http.Request, p auth.Principal) error

// Gate runs after authentication on every authenticated route; an error stops the request
// (maintenance mode, for one).
type Gate func(r *http.Request, p auth.Principal) error

// ErrorFormat writes a client error in a route's wire format.
type ErrorFormat func(w http.ResponseWriter, requestID string, e *Error)

// Option adjusts one route.
type Option func(*route)

type route struct {
	format ErrorFormat
}

// WithErrorFormat makes a route write its errors, including authentication and gate errors,
// in another wire format (the OpenAI-compatible API uses OpenAI's error object).
func WithErrorFormat(f ErrorFormat) Option { return func(r *route) { r.format = f } }

// Server routes requests to handlers. Build it, register routes and gates, then use it as an
// http.Handler.
type Server struct {
	mux   *http.ServeMux
	auth  Authenticator
	log   *slog.Logger
	gates []Gate
	// prefixFormats answer unknown paths under a prefix (404, 405) in that API's error format.
	prefixFormats []prefixFormat
}

type prefixFormat struct {
	prefix string
	format ErrorFormat
}

// UseErrorFormatFor makes 404 and 405 answers for paths under prefix use format, so that an API
// with its own error format (the OpenAI-compatible one under /v1/) answers in it throughout.
func (s *Server) UseErrorFormatFor(prefix string, format ErrorFormat) {
	s.prefixFormats = append(s.prefixFormats, prefixFormat{prefix: prefix, format: format})
}

// NewServer returns a server that authenticates with a.
func NewServer(a Authenticator, log *slog.Logger) *Server {
	return &Server{mux: http.NewServeMux(), auth: a, log: log}
}

// AddGate adds a check every authenticated request must pass; register gates before serving.
func (s *Server) AddGate(g Gate) { s.gates = append(s.gates, g) }

// Handle registers an authenticated route, e.g. "POST /ai-router/route".
func (s *Server) Handle(pattern string, h Handler, opts ...Option) {
	var rt route
	for _, o := range opts {
		o(&rt)
	}
	s.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		p, err := s.authenticate(r)
		if err == nil {
			for _, g := range s.gates {
				if err = g(r, p); err != nil {
					break
				}
			}
		}
		if err == nil {
			err = h(w, r, p)
		}
		if err != nil {
			s.fail(w, r, err, rt.format)
		}
	})
}

// HandleAdmin registers a route only admins may call.
func (s *Server) HandleAdmin(pattern string, h Handler, opts ...Option) {
	s.Handle(pattern, func(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
		if !p.Admin {
			return Errorf(http.StatusForbidden, CodeForbidden, "this endpoint needs the admin role")
		}
		return h(w, r, p)
	}, opts...)
}

// HandlePublic registers a route that needs no credentials (health checks).
func (s *Server) HandlePublic(pattern string, h http.HandlerFunc) { s.mux.HandleFunc(pattern, h) }

func (s *Server) authenticate(r *http.Request) (auth.Principal, error) {
	if claims, ok := auth.GatewayClaims(r.Context()); ok {
		p, err := s.auth.FromGatewayClaims(claims)
		if err != nil {
			return p, Errorf(http.StatusUnauthorized, CodeUnauthorized, "the authorizer's claims carry no user")
		}
		return p, nil
	}
	h := r.Header.Get("Authorization")
	const prefix = "bearer "
	if len(h) < len(prefix) || !equalFoldASCII(h[:len(prefix)], prefix) {
		return auth.Principal{}, Errorf(http.StatusUnauthorized, CodeUnauthorized, "send Authorization: Bearer <token>")
	}
	p, err := s.auth.Verify(r.Context(), h[len(prefix):])
	if err != nil {
		// The reason (expired, wrong audience, ...) helps the developer; it never holds the token.
		return p, Errorf(http.StatusUnauthorized, CodeUnauthorized, "%s", err)
	}
	return p, nil
}

func equalFoldASCII(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i]|0x20, b[i]|0x20
		if x != y {
			return false
		}
	}
	return true
}

// ServeHTTP assigns the request id, recovers panics, answers unknown routes with JSON 404/405,
// and makes sure every response has a status.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	// Always server-made: request ids key budget reservations, so a client must not pick them.
	id := uuid.NewString()
	w.Header().Set("X-Request-Id", id)
	r = r.WithContext(context.WithValue(r.Context(), requestIDKey{}, id))
	rec := &recorder{ResponseWriter: w}
	defer func() {
		if v := recover(); v != nil {
			s.log.Error("panic", "request_id", id, "panic", v, "stack", string(debug.Stack()))
			if !rec.wrote {
				writeError(rec, id, Errorf(http.StatusInternalServerError, CodeInternal, "internal error"))
			}
		}
		if !rec.wrote {
			rec.WriteHeader(http.StatusNoContent)
		}
		level := slog.LevelDebug
		if rec.status >= 500 {
			level = slog.LevelError
		}
		s.log.Log(r.Context(), level, "request", "request_id", id,
			"gateway_request_id", gatewayRequestID(r.Context()), "method", r.Method,
			"path", r.URL.Path, "status", rec.status, "ms", time.Since(start).Milliseconds())
	}()

	if h, pattern := s.mux.Handler(r); pattern == "" {
		// ServeMux would answer in text/plain: find out whether it is a 404 or a 405 and say
		// so in JSON.
		format := ErrorFormat(writeError)
		for _, pf := range s.prefixFormats {
			if strings.HasPrefix(r.URL.Path, pf.prefix) {
				format = pf.format
			}
		}
		probe := &statusProbe{header: http.Header{}}
		h.ServeHTTP(probe, r)
		if probe.status == http.StatusMethodNotAllowed {
			rec.Header().Set("Allow", probe.header.Get("Allow"))
			format(rec, id, Errorf(http.StatusMethodNotAllowed, CodeMethodNotAllowed, "%s is not allowed on %s", r.Method, r.URL.Path))
			return
		}
		format(rec, id, Errorf(http.StatusNotFound, CodeNotFound, "no route for %s %s", r.Method, r.URL.Path))
		return
	}
	s.mux.ServeHTTP(rec, r)
}

func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error, format ErrorFormat) {
	id := RequestID(r.Context())
	if format == nil {
		format = writeError
	}
	var he *Error
	if errors.As(err, &he) {
		format(w, id, he)
		return
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		s.log.Warn("request timed out", "request_id", id, "err", err)
		format(w, id, Errorf(http.StatusServiceUnavailable, "timeout", "the request ran out of time; retry"))
		return
	}
	s.log.Error("request failed", "request_id", id, "method", r.Method, "path", r.URL.Path, "err", err)
	format(w, id, Errorf(http.StatusInternalServerError, CodeInternal, "internal error; quote request id %s when reporting it", id))
}

type requestIDKey struct{}

type gatewayRequestIDKey struct{}

// WithGatewayRequestID records API Gateway's own request id, so Helix's log lines can be joined
// with the API's access log.
func WithGatewayRequestID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, gatewayRequestIDKey{}, id)
}

func gatewayRequestID(ctx context.Context) string {
	id, _ := ctx.Value(gatewayRequestIDKey{}).(string)
	return id
}

// RequestID returns the id of the request being served.
func RequestID(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey{}).(string)
	return id
}

type recorder struct {
	http.ResponseWriter
	status int
	wrote  bool
}

func (r *recorder) WriteHeader(status int) {
	if r.wrote {
		return
	}
	r.status, r.wrote = status, true
	r.ResponseWriter.WriteHeader(status)
}

func (r *recorder) Write(b []byte) (int, error) {
	if !r.wrote {
		r.WriteHeader(http.StatusOK)
	}
	return r.ResponseWriter.Write(b)
}

// statusProbe captures what ServeMux's own 404/405 handler would write.
type statusProbe struct {
	header http.Header
	status int
}

func (p *statusProbe) Header() http.Header         { return p.header }
func (p *statusProbe) Write(b []byte) (int, error) { return len(b), nil }
func (p *statusProbe) WriteHeader(status int)      { p.status = status }
