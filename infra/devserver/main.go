// Command devserver runs Helix on a laptop: every HTTP function's handlers in one process on
// 127.0.0.1:$PORT (default 3000), against DATABASE_URL, after applying the migrations.
// `make dev` starts it with a Postgres it finds or starts itself. With HELIX_DEV_PPROF_ADDR set
// (say 127.0.0.1:0) it also serves net/http/pprof on a listener of its own at that address.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/helixhq/helix/infra/devenv"
	"github.com/helixhq/helix/infra/migrations"
	"github.com/helixhq/helix/shared/app"
	"github.com/helixhq/helix/shared/app/auditapp"
	"github.com/helixhq/helix/shared/app/budgetapp"
	"github.com/helixhq/helix/shared/app/chatapp"
	"github.com/helixhq/helix/shared/app/httpapp"
	"github.com/helixhq/helix/shared/app/optimizeapp"
	"github.com/helixhq/helix/shared/app/routeapp"
	"github.com/helixhq/helix/shared/app/synthesisapp"
	"github.com/helixhq/helix/shared/auth"
	"github.com/helixhq/helix/shared/httpapi"
	"github.com/helixhq/helix/shared/httpapi/openapi"
	"github.com/helixhq/helix/shared/llm"
	"github.com/helixhq/helix/shared/llm/providers"
	"github.com/helixhq/helix/shared/queue/inproc"
	"github.com/helixhq/helix/shared/synthesis"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	app.TuneGC(os.Environ()) // Helix's GOGC default, as the functions have it
	if err := run(ctx, os.Environ(), os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "devserver:", err)
		os.Exit(1)
	}
}

// run serves until ctx ends; environ is the process environment, out where the JSON logs go and
// errOut the announcement.
func run(ctx context.Context, environ []string, out, errOut io.Writer) error {
	url := app.EnvValue(environ, "DATABASE_URL")
	if url == "" {
		return errors.New("DATABASE_URL is required (make dev sets it)")
	}
	if addr := app.EnvValue(environ, pprofEnv); addr != "" {
		stopPprof, err := startPprof(addr, errOut)
		if err != nil {
			return err
		}
		defer stopPprof()
	}
	if err := migrations.Up(ctx, url, nil); err != nil {
		return err
	}
	a, err := httpapp.Boot(ctx, app.Options{Function: "dev", Environ: environ, Defaults: devenv.Defaults(), LogOut: out})
	if err != nil {
		return err
	}
	defer a.Pool.Close()
	registry, err := providers.New(ctx, a.Config.Providers, providers.NewHTTPClient())
	if err != nil {
		return err
	}

	// Synthesis runs in process: the queue's worker runs the consumer code the SQS-triggered
	// function runs. The audit function's minute (sequencing the audit log, heartbeat, checkpoint,
	// Discord, the sweeps, probes) runs on a ticker, as the schedule runs it in AWS.
	processor := synthesisapp.NewProcessor(a.Core, a.Toggles, registry)
	queue := inproc.New(256, func(ctx context.Context, j synthesis.Job) error {
		_, err := processor.Process(ctx, j)
		return err
	}, a.Log)
	defer queue.Close()
	audit, err := devAudit(a.Core, queue, registry)
	if err != nil {
		return err
	}
	go everyMinute(ctx, audit, a.Log)
	// Between minutes, a burst of 1,000 events or more is sequenced within two seconds.
	go audit.WatchBacklog(ctx, 2*time.Second, 1000)

	srv, closeServer := newServer(a, registry, queue)
	defer closeServer()

	// Take the port before saying where Helix runs: a port in use is an error, not an announcement.
	addr := fmt.Sprintf("127.0.0.1:%d", a.Config.HTTP.Port)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen on %s (set PORT to use another port): %w", addr, err)
	}
	hs := &http.Server{Handler: srv, ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()

	// The announcement goes to stderr: stdout carries only the JSON log lines.
	fmt.Fprintf(errOut, `
Helix is running at http://%s  (models: %s)

  Get a token:   make token USER=alice            (add ROLE=admin for the admin endpoints)
  Try it:        curl -s http://%s/ai-router/budget -H "Authorization: Bearer $(make -s token USER=alice)"

`, addr, describe(registry), addr)

	select {
	case err := <-errc:
		if errors.Is(err, http.ErrServerClosed) {
			return nil
		}
		return err
	case <-ctx.Done():
		shutdown, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		return hs.Shutdown(shutdown)
	}
}

// newServer is the dev server's HTTP server: every HTTP function's routes on one server (their
// routes do not overlap), the health check, this API's OpenAPI document and the optimizer on
// demand. The caller calls the function it returns on shutdown.
func newServer(a *httpapp.App, registry *llm.Registry, queue synthesis.Queue) (*httpapi.Server, func()) {
	srv := a.NewServer(slices.Concat(routeapp.MaintenanceExempt, budgetapp.MaintenanceExempt, chatapp.MaintenanceExempt)...)
	routeapp.Mount(a, srv, registry)
	budgetapp.Mount(a, srv)
	notifier := chatapp.Mount(a, srv, registry, queue)
	a.MountHealth(srv)
	// The contract, without credentials and in maintenance mode too (public routes pass no gate).
	srv.HandlePublic("GET /openapi.json", openapi.Handler())
	// The optimize function's daily run, on demand (in AWS only its 06:00 UTC schedule runs it).
	optimizer := optimizeapp.New(a.Core)
	srv.HandleAdmin("POST /dev/optimize/run", func(w http.ResponseWriter, r *http.Request, _ auth.Principal) error {
		res, err := optimizer.Run(r.Context())
		if err != nil {
			return err
		}
		httpapi.WriteJSON(w, http.StatusOK, res)
		return nil
	})
	return srv, notifier.Close
}

// devAudit is the audit function's minute on the dev server. Without HELIX_AUDIT_SIGNING_KEY it
// signs checkpoints with the published development key (devenv), and verifies them with its
// public half unless HELIX_AUDIT_VERIFIER_KEY says otherwise.
func devAudit(c *app.Core, queue synthesis.Queue, registry *llm.Registry) (*auditapp.Audit, error) {
	if c.Config.Audit.SigningKey == "" {
		c.Config.Audit.SigningKey = devenv.AuditSigningKey
		if c.Config.Audit.VerifierKey == "" {
			c.Config.Audit.VerifierKey = devenv.AuditVerifierKey
		}
		c.Log.Info("audit checkpoints are signed with the development key (not for production)", "verifier_key", devenv.AuditVerifierKey)
	}
	return auditapp.New(c, queue, registry)
}

// everyMinute runs the audit minute every minute, until ctx ends.
func everyMinute(ctx context.Context, a *auditapp.Audit, log *slog.Logger) {
	t := time.NewTicker(time.Minute)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			run, cancel := context.WithTimeout(ctx, 50*time.Second)
			r := a.Run(run)
			cancel()
			log.Debug("audit minute", "steps", r.Steps, "integrated", r.Integrated, "log_size", r.Size)
		}
	}
}

// describe says which providers answer for real and which from the offline model.
func describe(r *llm.Registry) string {
	var parts []string
	for _, name := range []string{providers.DeepSeek, providers.Gemini, providers.Anthropic} {
		state := "offline model (no key)"
		switch {
		case r.ForcedOffline():
			state = "offline model (HELIX_OFFLINE)"
		case r.Configured(name):
			state = "live"
		}
		parts = append(parts, name+": "+state)
	}
	return strings.Join(parts, ", ")
}
