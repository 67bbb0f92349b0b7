// Command token prints a bearer token the local dev server accepts (`make token USER=alice
// ROLE=admin TTL=1h`). It signs with HELIX_JWT_SECRET, HELIX_JWT_ISSUER and HELIX_JWT_AUDIENCE, or
// the dev defaults, and puts ROLE in the admin claim (HELIX_ADMIN_CLAIM, default "role"). It
// refuses what the server would refuse: no user, or a secret too short to verify with.
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/helixhq/helix/infra/devenv"
	"github.com/helixhq/helix/shared/auth"
	"github.com/helixhq/helix/shared/ident"
)

func main() {
	os.Exit(run(os.Args[1:], os.Getenv, os.Stdout, os.Stderr))
}

func run(args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("token", flag.ContinueOnError)
	fs.SetOutput(stderr)
	user := fs.String("user", "", "user id (the sub claim), required")
	role := fs.String("role", "", "role to put in the admin claim, e.g. admin")
	ttl := fs.Duration("ttl", 12*time.Hour, "how long the token is valid, e.g. 30m or 24h")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *user == "" {
		fmt.Fprintln(stderr, "token: name the user: make token USER=alice [ROLE=admin] [TTL=1h]")
		return 2
	}
	if err := ident.Check(*user); err != nil {
		fmt.Fprintf(stderr, "token: the user id %v\n", err)
		return 2
	}
	if *ttl <= 0 {
		fmt.Fprintln(stderr, "token: TTL must be positive, e.g. 30m or 24h")
		return 2
	}
	getenv = devenv.Getenv(getenv)
	secret := []byte(getenv("HELIX_JWT_SECRET"))
	if err := auth.CheckHS256Secret(secret); err != nil {
		fmt.Fprintln(stderr, "token:", err, "- the server would refuse to start with it")
		return 1
	}
	claims := map[string]any{}
	if *role != "" {
		claim := getenv("HELIX_ADMIN_CLAIM")
		if claim == "" {
			claim = "role"
		}
		claims[claim] = *role
	}
	tok, err := auth.SignHS256(auth.TokenSpec{
		Secret:   secret,
		Subject:  *user,
		Issuer:   getenv("HELIX_JWT_ISSUER"),
		Audience: getenv("HELIX_JWT_AUDIENCE"),
		TTL:      *ttl,
		Claims:   claims,
	})
	if err != nil {
		fmt.Fprintln(stderr, "token:", err)
		return 1
	}
	fmt.Fprintln(stdout, tok)
	return 0
}
