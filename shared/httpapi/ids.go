package httpapi

import (
	"net/http"

	"github.com/helixhq/helix/shared/fault"
	"github.com/helixhq/helix/shared/ident"
)

// CheckID validates an identifier that arrived in a request (a body field, a header) before it
// goes anywhere: a 400 invalid_field naming field otherwise.
func CheckID(field, value string) error {
	if err := ident.Check(value); err != nil {
		return fault.Errorf(fault.InvalidField, "%s %v", field, err)
	}
	return nil
}

// PathID returns the path parameter name ("/admin/budgets/{user_id}"), validated by CheckID.
func PathID(r *http.Request, name string) (string, error) {
	v := r.PathValue(name)
	return v, CheckID(name, v)
}

// QueryID returns the query parameter name, validated by CheckID when set; "" when absent or
// empty (?user_id= means "not given").
func QueryID(r *http.Request, name string) (string, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return "", nil
	}
	return v, CheckID(name, v)
}
