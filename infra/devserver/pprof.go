package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/pprof"
	"time"
)

// pprofEnv names the address of the dev server's opt-in profiling listener (`make bench-profile`
// sets it): net/http/pprof on a listener of its own, never on the API's routes. Only the dev
// server links net/http/pprof; no Lambda function does.
const pprofEnv = "HELIX_DEV_PPROF_ADDR"

// startPprof serves net/http/pprof on addr (host:port, the host a loopback address: a profile
// shows the process's internals) until the returned function is called, and says where on errOut.
// Port 0 takes a free port.
func startPprof(addr string, errOut io.Writer) (func(), error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("%s=%q: %w", pprofEnv, addr, err)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return nil, fmt.Errorf("%s=%q: the host must be a loopback address such as 127.0.0.1", pprofEnv, addr)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("%s: listen on %s: %w", pprofEnv, addr, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	// No write timeout: /debug/pprof/profile?seconds=N answers after N seconds.
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			fmt.Fprintf(errOut, "devserver: pprof listener: %v\n", err)
		}
	}()
	fmt.Fprintf(errOut, "pprof on http://%s/debug/pprof/ (%s)\n", ln.Addr(), pprofEnv)
	return func() { _ = hs.Close() }, nil
}
