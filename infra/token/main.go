// Command token prints a bearer token the local dev server accepts (`make token USER=alice
// ROLE=admin`). It signs with HELIX_JWT_SECRET, HELIX_JWT_ISSUER and HELIX_JWT_AUDIENCE, or the
// dev defaults, and puts ROLE in the admin claim (HELIX_ADMIN_CLAIM, default "role").
package main

import (
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/helixhq/helix/infra/devenv"
	"github.com/helixhq/helix/shared/auth"
)

func main() {
	user := flag.String("user", "", "user id (the sub claim)")
	role := flag.String("role", "", "role to put in the admin claim, e.g. admin")
	ttl := flag.Duration("ttl", 12*time.Hour, "how long the token is valid")
	flag.Parse()
	if *user == "" {
		fmt.Fprintln(os.Stderr, "usage: token -user <id> [-role admin] [-ttl 12h]")
		os.Exit(2)
	}
	getenv := devenv.Getenv(os.Getenv)
	claims := map[string]any{}
	if *role != "" {
		claim := getenv("HELIX_ADMIN_CLAIM")
		if claim == "" {
			claim = "role"
		}
		claims[claim] = *role
	}
	tok, err := auth.SignHS256(auth.TokenSpec{
		Secret:   []byte(getenv("HELIX_JWT_SECRET")),
		Subject:  *user,
		Issuer:   getenv("HELIX_JWT_ISSUER"),
		Audience: getenv("HELIX_JWT_AUDIENCE"),
		TTL:      *ttl,
		Claims:   claims,
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "token:", err)
		os.Exit(1)
	}
	fmt.Println(tok)
}
