package httpapi

import (
	"context"
	"net/http"

	"github.com/helixhq/helix/shared/auth"
	"github.com/helixhq/helix/shared/fault"
)

// MaintenanceGate refuses operations and writes with 503 maintenance while on says maintenance
// mode is on (ENABLE_MAINTENANCE_MODE). Reads (GET, HEAD) still work, and so do the routes in
// allowed ("METHOD /path" patterns as registered), such as the toggle endpoint an admin needs to
// switch maintenance off again.
func MaintenanceGate(on func(context.Context) (bool, error), allowed ...string) Gate {
	allow := make(map[string]bool, len(allowed))
	for _, a := range allowed {
		allow[a] = true
	}
	return func(r *http.Request, _ auth.Principal) error {
		if r.Method == http.MethodGet || r.Method == http.MethodHead || allow[r.Pattern] {
			return nil
		}
		active, err := on(r.Context())
		if err != nil {
			return err
		}
		if active {
			return fault.New(fault.Maintenance, "Helix is in maintenance mode: operations and writes are paused, reads still work")
		}
		return nil
	}
}
