package main

import (
	"bytes"
	"crypto/rand"
	"strings"
	"testing"

	"github.com/helixhq/helix/shared/auditlog"
)

func TestKeysSignAndVerify(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run([]string{"-name", "helix-audit-test"}, rand.Reader, &out, &errOut); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	var skey, vkey string
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		k, v, _ := strings.Cut(line, "=")
		switch k {
		case "HELIX_AUDIT_SIGNING_KEY":
			skey = v
		case "HELIX_AUDIT_VERIFIER_KEY":
			vkey = v
		}
	}
	s, err := auditlog.NewSigner(skey)
	if err != nil {
		t.Fatalf("signing key %q: %v", skey, err)
	}
	v, err := auditlog.NewVerifier(vkey)
	if err != nil || !strings.HasPrefix(vkey, "helix-audit-test+") {
		t.Fatalf("verifier key %q: %v", vkey, err)
	}
	signed, err := auditlog.Checkpoint{Size: 1}.Sign(s)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := auditlog.OpenCheckpoint(signed, v); err != nil {
		t.Errorf("a checkpoint signed with the new key does not verify with its verifier: %v", err)
	}
	if strings.Contains(errOut.String(), "PRIVATE") {
		t.Error("the signing key went to stderr too")
	}
}
