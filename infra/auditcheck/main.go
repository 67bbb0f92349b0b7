// Command auditcheck is what an auditor who trusts nothing in Helix's database runs: given the
// audit log's verifier (public) key and checkpoints copied from #helix-hash-chain, it checks each
// checkpoint's signature, then asks Helix for consistency proofs between them and to today's
// tree, and says whether the log only ever grew: no entry that a signed checkpoint covered was
// changed, removed or reordered since.
//
//	go run ./infra/auditcheck -url https://<api> -key "$HELIX_AUDIT_VERIFIER_KEY" -checkpoints copied.txt
//
// The admin token is read from HELIX_TOKEN (not a flag: flags show in process listings).
package main

import (
	"bufio"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/helixhq/helix/shared/auditlog"
)

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Getenv, os.Stdin, os.Stdout, os.Stderr, http.DefaultClient))
}

func run(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer, client *http.Client) int {
	fs := flag.NewFlagSet("auditcheck", flag.ContinueOnError)
	fs.SetOutput(stderr)
	base := fs.String("url", "", "Helix's API base URL, e.g. https://abc.execute-api.us-east-1.amazonaws.com")
	key := fs.String("key", "", "the audit verifier key (HELIX_AUDIT_VERIFIER_KEY: name+hash+key), or several, comma-separated, across a rotation")
	file := fs.String("checkpoints", "-", "a file of checkpoints copied from #helix-hash-chain (- for stdin)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *base == "" || *key == "" {
		fmt.Fprintln(stderr, "auditcheck: -url and -key are required (and the admin token in HELIX_TOKEN)")
		return 2
	}
	verifier, err := auditlog.NewVerifiers(*key)
	if err != nil {
		fmt.Fprintln(stderr, "auditcheck:", err)
		return 2
	}
	in := stdin
	if *file != "-" {
		f, err := os.Open(*file)
		if err != nil {
			fmt.Fprintln(stderr, "auditcheck:", err)
			return 2
		}
		defer f.Close()
		in = f
	}
	notes, err := splitNotes(in)
	if err != nil {
		fmt.Fprintln(stderr, "auditcheck: reading the checkpoints:", err)
		return 2
	}
	if len(notes) == 0 {
		fmt.Fprintln(stderr, "auditcheck: no checkpoints found in the input (copy them from #helix-hash-chain or GET /admin/audit/checkpoints)")
		return 2
	}
	c := checker{base: strings.TrimRight(*base, "/"), token: getenv("HELIX_TOKEN"), client: client, out: stdout}
	if err := c.check(ctx, notes, verifier); err != nil {
		fmt.Fprintln(stdout, "FAIL:", err)
		return 1
	}
	return 0
}

// splitNotes reads signed checkpoints: each starts with its origin line ("helix audit log"); the
// code fences and blank lines Discord shows around them are ignored.
func splitNotes(r io.Reader) ([]string, error) {
	var notes []string
	var cur []string
	flush := func() {
		if len(cur) > 0 {
			notes = append(notes, strings.Join(cur, "\n")+"\n")
		}
		cur = nil
	}
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := strings.TrimRight(sc.Text(), "\r")
		switch {
		case strings.HasPrefix(strings.TrimSpace(line), "```"):
			continue
		case line == "helix audit log":
			flush()
			cur = []string{line}
		case len(cur) > 0:
			// A note is its text, one blank line, then signature lines ("— name sig"); anything
			// after the signatures is not part of it.
			if line == "" && len(cur) > 0 && cur[len(cur)-1] == "" {
				continue
			}
			if line != "" && !strings.HasPrefix(line, "— ") && slices.Contains(cur, "") {
				flush()
				continue
			}
			cur = append(cur, line)
		}
	}
	flush()
	for i, n := range notes {
		notes[i] = strings.TrimRight(n, "\n") + "\n"
	}
	return notes, sc.Err()
}

type checker struct {
	base, token string
	client      *http.Client
	out         io.Writer
}

// consistency is GET /admin/audit/consistency's answer.
type consistency struct {
	From     int64    `json:"from"`
	To       int64    `json:"to"`
	FromRoot string   `json:"from_root"`
	ToRoot   string   `json:"to_root"`
	Proof    []string `json:"proof"`
}

func (c checker) check(ctx context.Context, notes []string, v note.Verifiers) error {
	var cps []auditlog.Checkpoint
	signers := map[string]bool{}
	for i, n := range notes {
		cp, err := auditlog.OpenCheckpointWith(n, v)
		if err != nil {
			return fmt.Errorf("checkpoint %d of the input is not signed by the given key(s): %w", i+1, err)
		}
		cps = append(cps, cp)
		if opened, err := note.Open([]byte(n), v); err == nil {
			for _, s := range opened.Sigs {
				signers[s.Name] = true
			}
		}
	}
	slices.SortFunc(cps, func(a, b auditlog.Checkpoint) int { return cmp.Compare(a.Size, b.Size) })
	fmt.Fprintf(c.out, "%d checkpoint(s) signed by %s, sizes %d to %d\n", len(cps),
		strings.Join(slices.Sorted(maps.Keys(signers)), ", "), cps[0].Size, cps[len(cps)-1].Size)
	for i := 1; i < len(cps); i++ {
		a, b := cps[i-1], cps[i]
		if a.Size == b.Size {
			if a.Root != b.Root {
				return fmt.Errorf("two checkpoints of size %d sign different roots: the log forked", a.Size)
			}
			continue
		}
		if a.Size == 0 {
			continue // nothing to be consistent with
		}
		p, err := c.fetch(ctx, a.Size, b.Size)
		if err != nil {
			return err
		}
		if err := verify(p, a, b.Size, b.Root); err != nil {
			return err
		}
		fmt.Fprintf(c.out, "ok  %d -> %d (signed %s and %s)\n", a.Size, b.Size, a.At.Format(time.RFC3339), b.At.Format(time.RFC3339))
	}
	last := cps[len(cps)-1]
	if last.Size == 0 {
		fmt.Fprintln(c.out, "the newest checkpoint is of an empty log: nothing more to check")
		return nil
	}
	p, err := c.fetch(ctx, last.Size, 0)
	if err != nil {
		return err
	}
	today, err := tlog.ParseHash(p.ToRoot)
	if err != nil {
		return fmt.Errorf("helix answered a root that is not a hash: %q", p.ToRoot)
	}
	if err := verify(p, last, p.To, today); err != nil {
		return err
	}
	fmt.Fprintf(c.out, "ok  %d -> %d (today's tree, root %s)\n", last.Size, p.To, today)
	fmt.Fprintln(c.out, "the log only grew: every signed checkpoint is a prefix of today's tree")
	return nil
}

// verify checks a consistency proof from checkpoint a to the tree of size toSize with root
// toRoot, with a's signed root, never the one the server claims for it.
func verify(p consistency, a auditlog.Checkpoint, toSize int64, toRoot tlog.Hash) error {
	if p.From != a.Size || p.To != toSize {
		return fmt.Errorf("helix answered a proof from %d to %d when asked for %d to %d", p.From, p.To, a.Size, toSize)
	}
	if p.FromRoot != a.Root.String() {
		return fmt.Errorf("the tree of %d entries has root %s today, but the checkpoint signed %s says %s: the log was rewritten",
			a.Size, p.FromRoot, a.At.Format(time.RFC3339), a.Root)
	}
	proof := make(tlog.TreeProof, len(p.Proof))
	for i, s := range p.Proof {
		h, err := tlog.ParseHash(s)
		if err != nil {
			return fmt.Errorf("helix answered a proof hash that is not one: %q", s)
		}
		proof[i] = h
	}
	if err := tlog.CheckTree(proof, toSize, toRoot, a.Size, a.Root); err != nil {
		return fmt.Errorf("the tree of %d entries is not an extension of the checkpoint of %d signed %s: %w",
			toSize, a.Size, a.At.Format(time.RFC3339), err)
	}
	return nil
}

// fetch asks for the consistency proof from size from to size to (0: today's size).
func (c checker) fetch(ctx context.Context, from, to int64) (consistency, error) {
	q := url.Values{"from": {fmt.Sprint(from)}}
	if to > 0 {
		q.Set("to", fmt.Sprint(to))
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+"/admin/audit/consistency?"+q.Encode(), nil)
	if err != nil {
		return consistency{}, err
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.client.Do(req)
	if err != nil {
		return consistency{}, fmt.Errorf("ask helix for a consistency proof: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode == http.StatusNotFound {
		return consistency{}, fmt.Errorf("helix says its log has not reached %d entries, which a signed checkpoint covers: entries were removed", max(from, to))
	}
	if resp.StatusCode != http.StatusOK {
		return consistency{}, fmt.Errorf("helix answered %d: %s", resp.StatusCode, strings.TrimSpace(string(body)))
	}
	var p consistency
	if err := json.Unmarshal(body, &p); err != nil {
		return consistency{}, errors.New("helix's answer is not a consistency proof")
	}
	return p, nil
}
