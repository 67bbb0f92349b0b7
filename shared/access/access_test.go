package access_test

import (
	"errors"
	"testing"

	"github.com/helixhq/helix/shared/access"
)

func TestActFor(t *testing.T) {
	alice := access.Caller{UserID: "alice"}
	ops := access.Caller{UserID: "ops", Admin: true}
	tests := []struct {
		name    string
		caller  access.Caller
		target  string
		want    string
		refused bool
	}{
		{"user, nobody named", alice, "", "alice", false},
		{"user names themselves", alice, "alice", "alice", false},
		{"user names another", alice, "bob", "", true},
		{"admin, nobody named", ops, "", "ops", false},
		{"admin names another", ops, "bob", "bob", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.caller.ActFor(tt.target)
			if tt.refused != errors.Is(err, access.ErrOtherUser) || got != tt.want {
				t.Fatalf("ActFor(%q) = %q, %v; want %q, refused %v", tt.target, got, err, tt.want, tt.refused)
			}
		})
	}
}
