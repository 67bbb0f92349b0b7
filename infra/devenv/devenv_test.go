package devenv

import (
	"testing"

	"golang.org/x/mod/sumdb/note"
)

// The published development key pair is one pair: what the dev server signs, its public half
// verifies (and a restart signs with the same key).
func TestAuditKeysArePair(t *testing.T) {
	s, err := note.NewSigner(AuditSigningKey)
	if err != nil {
		t.Fatal(err)
	}
	v, err := note.NewVerifier(AuditVerifierKey)
	if err != nil {
		t.Fatal(err)
	}
	msg, err := note.Sign(&note.Note{Text: "helix audit log\n1\n\n"}, s)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := note.Open(msg, note.VerifierList(v)); err != nil {
		t.Errorf("the development verifier key does not verify the development signing key's note: %v", err)
	}
}
