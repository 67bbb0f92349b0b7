package main

import (
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
)

// The pprof listener serves the profiles on an address of its own, and only on loopback.
func TestPprofListener(t *testing.T) {
	for _, tc := range []struct {
		addr, wantErr string
	}{
		{"127.0.0.1:0", ""},
		{"localhost:0", ""},
		{"0.0.0.0:0", "loopback"},
		{":0", "loopback"},
		{"192.0.2.1:6060", "loopback"},
		{"127.0.0.1", "missing port"},
	} {
		t.Run(tc.addr, func(t *testing.T) {
			var out lockedBuffer
			stop, err := startPprof(tc.addr, &out)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one saying %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer stop()
			m := regexp.MustCompile(`pprof on (http://\S+/debug/pprof/)`).FindStringSubmatch(out.String())
			if m == nil {
				t.Fatalf("no address announced: %q", out.String())
			}
			for _, path := range []string{"", "cmdline", "goroutine?debug=1"} {
				res, err := http.Get(m[1] + path)
				if err != nil {
					t.Fatal(err)
				}
				body, _ := io.ReadAll(res.Body)
				res.Body.Close()
				if res.StatusCode != http.StatusOK || len(body) == 0 {
					t.Errorf("GET %s: %d, %d bytes", path, res.StatusCode, len(body))
				}
			}
		})
	}
}
