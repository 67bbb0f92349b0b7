package httpapi

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"runtime/debug"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/helixhq/helix/shared/auth"
	"github.com/helixhq/helix/shared/fault"
)

// Authenticator is what the server needs from package auth.
type Authenticator interface {
	Verify(ctx context.Context, token string) (auth.Principal, error)
	FromGatewayClaims(claims map[string]string) (auth.Principal, error)
}

// Handler serves an authenticated request. A returned fault is sent with its code; any other
// error is logged and sent as a 500 without its text.
type Handler func(w http.ResponseWriter, r *http.Request, p auth.Principal) error

// Gate runs after authentication on every authenticated route; an error stops the request
// (maintenance mode, for one).
type Gate func(r *http.Request, p auth.Principal) error

// ErrorFormat writes a client error in a route's wire format.
type ErrorFormat func(w http.ResponseWriter, requestID string, p Problem)

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
	mux    *http.ServeMux
	routes []string
	auth   Authenticator
	log    *slog.Logger
	gates  []Gate
	cors   *CORS
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

// UseCORS answers browsers' preflight requests and labels responses for the origins c allows.
// Behind API Gateway its CORS configuration does this before a function is called; the dev
// server has no such gateway in front.
func (s *Server) UseCORS(c CORS) { s.cors = &c }

// Handle registers an authenticated route, e.g. "POST /ai-router/route".
func (s *Server) Handle(pattern string, h Handler, opts ...Option) {
	var rt route
	for _, o := range opts {
		o(&rt)
	}
	s.routes = append(s.routes, pattern)
	s.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		p, err := s.authenticate(w, r)
		if err == nil {
			if info, ok := r.Context().Value(infoKey{}).(*requestInfo); ok {
				info.user = p.UserID
			}
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
			return fault.New(fault.Forbidden, "this endpoint needs the admin role")
		}
		return h(w, r, p)
	}, opts...)
}

// HandlePublic registers a route that needs no credentials (health checks).
func (s *Server) HandlePublic(pattern string, h http.HandlerFunc) {
	s.routes = append(s.routes, pattern)
	s.mux.HandleFunc(pattern, h)
}

// Routes lists the patterns registered, in registration order (for tests and docs).
func (s *Server) Routes() []string { return slices.Clone(s.routes) }

// authenticate finds the caller: the claims API Gateway's authorizer verified, else the bearer
// token, verified here. A refusal says in plain words what is wrong with the credentials and
// carries RFC 6750's WWW-Authenticate header.
func (s *Server) authenticate(w http.ResponseWriter, r *http.Request) (auth.Principal, error) {
	if claims, ok := auth.GatewayClaims(r.Context()); ok {
		p, err := s.auth.FromGatewayClaims(claims)
		if err != nil {
			return p, s.unauthorized(w, err)
		}
		return p, nil
	}
	h := r.Header.Get("Authorization")
	const prefix = "bearer "
	if len(h) < len(prefix) || !equalFoldASCII(h[:len(prefix)], prefix) {
		// No credentials at all: RFC 6750 wants the challenge without an error code.
		w.Header().Set("WWW-Authenticate", `Bearer realm="helix"`)
		return auth.Principal{}, fault.New(fault.Unauthorized, "the request has no bearer token: send Authorization: Bearer <token>")
	}
	p, err := s.auth.Verify(r.Context(), h[len(prefix):])
	if err != nil {
		return p, s.unauthorized(w, err)
	}
	return p, nil
}

// unauthorized turns a verification failure into the 401 the client sees. auth's errors are
// written for people (expired, wrong audience, ...) and never hold the token; anything else
// (a JWKS outage) is not the client's to read.
func (s *Server) unauthorized(w http.ResponseWriter, err error) error {
	msg := "the token is not valid"
	if errors.Is(err, auth.ErrInvalidToken) || errors.Is(err, auth.ErrMissingToken) {
		msg = err.Error()
	}
	w.Header().Set("WWW-Authenticate", `Bearer realm="helix", error="invalid_token", error_description="`+headerSafe(msg)+`"`)
	return fault.Wrap(fault.Unauthorized, err, msg)
}

// headerSafe keeps a message inside a quoted header parameter.
func headerSafe(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '"' || r == '\\' || r < 0x20 || r > 0x7e {
			return '\''
		}
		return r
	}, s)
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

// requestInfo collects what the access log line reports that only a handler learns.
type requestInfo struct {
	user string
	code fault.Code
}

type infoKey struct{}

// ServeHTTP assigns the request id, answers CORS preflights, recovers panics, answers unknown
// routes with JSON 404/405, makes sure every response has a status, and logs one access line.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	// Always server-made: request ids key budget reservations, so a client must not pick them.
	id := uuid.NewString()
	w.Header().Set("X-Request-Id", id)
	info := &requestInfo{}
	r = r.WithContext(context.WithValue(context.WithValue(r.Context(), requestIDKey{}, id), infoKey{}, info))
	rec := &recorder{ResponseWriter: w}
	defer func() {
		if v := recover(); v != nil {
			s.log.Error("panic", "request_id", id, "panic", v, "stack", string(debug.Stack()))
			if !rec.wrote {
				writeError(rec, id, Problem{Status: http.StatusInternalServerError, Code: fault.Internal, Message: "internal error"})
			}
			info.code = fault.Internal
		}
		if !rec.wrote {
			rec.WriteHeader(http.StatusNoContent)
		}
		// One line per request at info; only Helix's own faults are errors (a maintenance 503 or
		// a budget 402 is the system working as designed).
		level := slog.LevelInfo
		if info.code == fault.Internal {
			level = slog.LevelError
		}
		// Typed attributes (LogAttrs): this line is written for every request, and boxing
		// each value into an `any` cost an allocation apiece.
		var buf [9]slog.Attr
		attrs := append(buf[:0], slog.String("request_id", id), slog.String("method", r.Method),
			slog.String("route", r.Pattern), slog.String("path", r.URL.Path),
			slog.Int("status", rec.status), slog.Int64("ms", time.Since(start).Milliseconds()))
		if info.user != "" {
			attrs = append(attrs, slog.String("user", info.user))
		}
		if info.code != "" {
			attrs = append(attrs, slog.String("code", string(info.code)))
		}
		if gw := gatewayRequestID(r.Context()); gw != "" {
			attrs = append(attrs, slog.String("gateway_request_id", gw))
		}
		s.log.LogAttrs(r.Context(), level, "request", attrs...)
	}()

	if s.cors != nil && s.cors.handle(rec, r) {
		return
	}
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
			info.code = fault.MethodNotAllowed
			format(rec, id, Problem{Status: http.StatusMethodNotAllowed, Code: fault.MethodNotAllowed,
				Message: r.Method + " is not allowed on " + r.URL.Path})
			return
		}
		info.code = fault.NotFound
		format(rec, id, Problem{Status: http.StatusNotFound, Code: fault.NotFound, Message: "no route for " + r.Method + " " + r.URL.Path})
		return
	}
	s.mux.ServeHTTP(rec, r)
}

func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error, format ErrorFormat) {
	id := RequestID(r.Context())
	if format == nil {
		format = writeError
	}
	p, internal := ProblemOf(err)
	if info, ok := r.Context().Value(infoKey{}).(*requestInfo); ok {
		info.code = p.Code
	}
	switch {
	case internal:
		s.log.Error("request failed", "request_id", id, "method", r.Method, "route", r.Pattern, "err", err)
		p.Message = "internal error; quote request id " + id + " when reporting it"
	case p.Code == fault.Timeout && r.Context().Err() != nil:
		// Nobody is waiting for the answer: the client went away (or API Gateway gave up).
		s.log.Info("client went away", "request_id", id, "err", err)
	case p.Code == fault.Timeout:
		s.log.Warn("request timed out", "request_id", id, "err", err)
	}
	format(w, id, p)
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

// Unwrap lets http.ResponseController reach the connection (flushing a stream, deadlines).
func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// statusProbe captures what ServeMux's own 404/405 handler would write.
type statusProbe struct {
	header http.Header
	status int
}

func (p *statusProbe) Header() http.Header         { return p.header }
func (p *statusProbe) Write(b []byte) (int, error) { return len(b), nil }
func (p *statusProbe) WriteHeader(status int)      { p.status = status }
