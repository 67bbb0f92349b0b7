// Command stepuphash prints the bcrypt hash of a step-up key for HELIX_STEPUP_KEY_HASH (`make
// stepup-hash`). The key is read from standard input, never from the command line, so it stays
// out of shell history and process listings; the hash is what Helix stores and compares against.
package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/crypto/bcrypt"
	"golang.org/x/term"
)

// cost is bcrypt's work factor: about a quarter of a second per check on a Lambda, which makes
// guessing slow while the lockout bounds how often anyone may try.
const cost = 12

// minKey is the shortest key accepted: the key is the whole secret.
const minKey = 16

func main() {
	var in io.Reader = os.Stdin
	if fd := int(os.Stdin.Fd()); term.IsTerminal(fd) {
		// Typed at a terminal: ask, and do not echo the key.
		fmt.Fprint(os.Stderr, "step-up key (not shown): ")
		key, err := term.ReadPassword(fd)
		fmt.Fprintln(os.Stderr)
		if err != nil {
			fmt.Fprintln(os.Stderr, "stepuphash: read the key:", err)
			os.Exit(1)
		}
		in = strings.NewReader(string(key) + "\n")
	}
	os.Exit(run(in, os.Stdout, os.Stderr))
}

func run(stdin io.Reader, stdout, stderr io.Writer) int {
	line, err := bufio.NewReader(stdin).ReadString('\n')
	if err != nil && err != io.EOF {
		fmt.Fprintln(stderr, "stepuphash: read the key:", err)
		return 1
	}
	key := strings.TrimRight(line, "\r\n")
	switch {
	case len(key) < minKey:
		fmt.Fprintf(stderr, "stepuphash: the key must be at least %d bytes\n", minKey)
		return 2
	case len(key) > 72:
		fmt.Fprintln(stderr, "stepuphash: the key must be at most 72 bytes (bcrypt ignores the rest)")
		return 2
	case strings.TrimSpace(key) != key:
		fmt.Fprintln(stderr, "stepuphash: the key must not start or end with spaces (Helix trims them from the message)")
		return 2
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(key), cost)
	if err != nil {
		fmt.Fprintln(stderr, "stepuphash:", err)
		return 1
	}
	fmt.Fprintln(stdout, string(hash))
	return 0
}
