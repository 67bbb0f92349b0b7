// Package access holds the one rule about whose data a request may touch: a user acts only for
// themselves; an admin may act for anyone. Every use case that takes a target user applies it
// here, so the rule exists once.
package access

import "github.com/helixhq/helix/shared/fault"

// Caller is the authenticated user making a request.
type Caller struct {
	UserID string
	Admin  bool
}

// ErrOtherUser refuses a non-admin naming another user.
var ErrOtherUser = fault.New(fault.Forbidden, "only admins may act for another user")

// ActFor returns the user a request acts for: the caller when userID is "" or the caller's own,
// else userID if the caller is an admin.
func (c Caller) ActFor(userID string) (string, error) {
	if userID == "" || userID == c.UserID {
		return c.UserID, nil
	}
	if !c.Admin {
		return "", ErrOtherUser
	}
	return userID, nil
}
