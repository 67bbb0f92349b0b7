package httpapi

import (
	"context"
	"net/http"

	"github.com/helixhq/helix/shared/auth"
	"github.com/helixhq/helix/shared/toggles"
)

// CodeMaintenance is the error code of requests refused in maintenance mode.
const CodeMaintenance = "maintenance"

// MaintenanceGate refuses operations and writes with 503 while ENABLE_MAINTENANCE_MODE is on.
// Reads (GET, HEAD) still work, and so do the routes in allowed ("METHOD /path" patterns as
// registered), such as the toggle endpoints an admin needs to switch maintenance off again.
func MaintenanceGate(current func(context.Context) (toggles.Set, error), allowed ...string) Gate {
	allow := make(map[string]bool, len(allowed))
	for _, a := range allowed {
		allow[a] = true
	}
	return func(r *http.Request, _ auth.Principal) error {
		if r.Method == http.MethodGet || r.Method == http.MethodHead || allow[r.Pattern] {
			return nil
		}
		set, err := current(r.Context())
		if err != nil {
			return err
		}
		if set.Enabled(toggles.Maintenance) {
			return Errorf(http.StatusServiceUnavailable, CodeMaintenance, "Helix is in maintenance mode: operations and writes are paused, reads still work")
		}
		return nil
	}
}
