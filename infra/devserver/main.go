// Command devserver runs Helix on a laptop: every HTTP function's handlers in one process on
// 127.0.0.1:$PORT (default 3000), against DATABASE_URL, after applying the migrations.
// `make dev` starts it with a Postgres it finds or starts itself.
package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/helixhq/helix/infra/devenv"
	"github.com/helixhq/helix/shared/app"
	"github.com/helixhq/helix/shared/budgetapi"
	"github.com/helixhq/helix/shared/httpapi"
	"github.com/helixhq/helix/shared/routeapi"
	"github.com/helixhq/helix/shared/store"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "devserver:", err)
		os.Exit(1)
	}
}

func run() error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	getenv := devenv.Getenv(os.Getenv)
	if err := store.Migrate(ctx, getenv("DATABASE_URL"), nil); err != nil {
		return err
	}
	base, err := app.Boot(ctx, app.Options{Function: "dev", Getenv: getenv, LogOut: os.Stdout})
	if err != nil {
		return err
	}
	defer base.Pool.Close()

	srv := httpapi.NewServer(base.Auth, base.Log)
	cache, routes := base.Catalog()
	ledger := base.Ledger()
	routeapi.Register(srv, routeapi.Deps{Catalog: cache, Routes: routes, Budgets: ledger})
	budgetapi.Register(srv, ledger)
	srv.HandlePublic("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		if err := base.Pool.Ping(r.Context()); err != nil {
			httpapi.WriteJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "database unreachable"})
			return
		}
		httpapi.WriteJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})

	port := os.Getenv("PORT")
	if port == "" {
		port = "3000"
	}
	addr := "127.0.0.1:" + port
	hs := &http.Server{Addr: addr, Handler: srv, ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- hs.ListenAndServe() }()

	fmt.Printf(`
Helix is running at http://%s

  Get a token:   make token USER=alice            (add ROLE=admin for the admin endpoints)
  Try it:        curl -s http://%s/ai-router/budget -H "Authorization: Bearer $(make -s token USER=alice)"

`, addr, addr)

	select {
	case err := <-errc:
		if errors.Is(err, http.ErrServerClosed) {
			return nil
		}
		return err
	case <-ctx.Done():
		shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return hs.Shutdown(shutdown)
	}
}
