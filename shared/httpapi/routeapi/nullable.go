package routeapi

import (
	"encoding/json"
	"errors"
)

// NullableString tells an omitted field (Set false) from an explicit null (Set, Value "") and a
// string, which *string cannot: omitting fallback_model keeps it, null removes it.
type NullableString struct {
	Set   bool
	Value string
}

// UnmarshalJSON is only called when the field is present.
func (n *NullableString) UnmarshalJSON(b []byte) error {
	n.Set = true
	if string(b) == "null" {
		n.Value = ""
		return nil
	}
	if err := json.Unmarshal(b, &n.Value); err != nil {
		return errors.New("fallback_model must be a model key or null")
	}
	if n.Value == "" {
		return errors.New("fallback_model must be a model key or null, not an empty string")
	}
	return nil
}
