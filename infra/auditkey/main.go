// Command auditkey makes a key pair for signing the audit log's checkpoints (`make audit-key`):
// the signing key goes to a secret store (HELIX_AUDIT_SIGNING_KEY, never the database), the
// verifier key to whoever checks the log (HELIX_AUDIT_VERIFIER_KEY, and auditors).
package main

import (
	"crypto/rand"
	"flag"
	"fmt"
	"io"
	"os"

	"golang.org/x/mod/sumdb/note"
)

func main() {
	os.Exit(run(os.Args[1:], rand.Reader, os.Stdout, os.Stderr))
}

func run(args []string, random io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("auditkey", flag.ContinueOnError)
	fs.SetOutput(stderr)
	name := fs.String("name", "helix-audit", "the key's name, part of every signature (e.g. helix-audit-prod)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	skey, vkey, err := note.GenerateKey(random, *name)
	if err != nil {
		fmt.Fprintln(stderr, "auditkey:", err)
		return 2
	}
	fmt.Fprintf(stdout, "HELIX_AUDIT_SIGNING_KEY=%s\nHELIX_AUDIT_VERIFIER_KEY=%s\n", skey, vkey)
	fmt.Fprintln(stderr, "Store the signing key as a secret (e.g. aws ssm put-parameter --type SecureString --name /helix/prod/audit-signing-key),")
	fmt.Fprintln(stderr, "pass its reference as AuditSigningKey, and publish the verifier key (AuditVerifierKey, and to your auditors).")
	return 0
}
