package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/helixhq/helix/shared/apitest"
	"github.com/helixhq/helix/shared/auditlog"
	"github.com/helixhq/helix/shared/httpapi"
	"github.com/helixhq/helix/shared/httpapi/auditapi"
	"github.com/helixhq/helix/shared/pgtest"
	"github.com/helixhq/helix/shared/postgres/auditstore"
)

var pg *pgtest.Server

func TestMain(m *testing.M) {
	os.Exit(pgtest.Main(m, func(s *pgtest.Server) { pg = s }))
}

var tokens = apitest.Tokens{Secret: "auditcheck-test-secret-0123456789abcdef", Issuer: "https://auth.test/auditcheck", Audience: "helix-auditcheck"}

type env struct {
	pool   *pgxpool.Pool
	log    *auditstore.Log
	url    string
	admin  string
	signer note.Signer
	vkey   string
}

func newEnv(t *testing.T) *env {
	t.Helper()
	pool := pg.NewPool(t)
	skey, vkey, err := note.GenerateKey(rand.Reader, "helix-audit-test")
	if err != nil {
		t.Fatal(err)
	}
	signer, _ := auditlog.NewSigner(skey)
	verifier, _ := auditlog.NewVerifier(vkey)
	log := auditstore.New(pool)
	srv := httpapi.NewServer(apitest.Authenticator(t, tokens), apitest.Log(t))
	auditapi.Register(srv, log, note.VerifierList(verifier))
	return &env{pool: pool, log: log, url: apitest.Serve(t, srv), admin: tokens.Token(t, "auditor", map[string]any{"role": "admin"}),
		signer: signer, vkey: vkey}
}

// grow records and sequences n admin changes.
func (e *env) grow(t *testing.T, n int) {
	t.Helper()
	ctx := context.Background()
	for i := range n {
		if err := e.log.Record(ctx, auditlog.Event{Kind: auditlog.AdminChange, Actor: "ops",
			Payload: auditlog.Change{What: "budget", ID: fmt.Sprintf("user-%d", i)}}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := e.log.IntegrateAll(ctx, 1000); err != nil {
		t.Fatal(err)
	}
}

// sign signs the tree as it is, as the audit function posts it to #helix-hash-chain.
func (e *env) sign(t *testing.T) string {
	t.Helper()
	ctx := context.Background()
	head, _ := e.log.Head(ctx)
	root, err := e.log.Root(ctx, head.Size)
	if err != nil {
		t.Fatal(err)
	}
	signed, err := auditlog.Checkpoint{Size: head.Size, Root: root, At: time.Now().Truncate(time.Second)}.Sign(e.signer)
	if err != nil {
		t.Fatal(err)
	}
	return signed
}

func (e *env) check(t *testing.T, input, key string) (int, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	getenv := func(k string) string {
		if k == "HELIX_TOKEN" {
			return e.admin
		}
		return ""
	}
	code := run(context.Background(), []string{"-url", e.url, "-key", key}, getenv, strings.NewReader(input), &out, &errOut, http.DefaultClient)
	return code, out.String() + errOut.String()
}

// discordCopy is checkpoints as copied from Discord: each in a code fence, with text around.
func discordCopy(notes ...string) string {
	var b strings.Builder
	for i, n := range notes {
		fmt.Fprintf(&b, "Checkpoint: entries\n```\n%s```\nverify with the audit public key\n\n", n)
		if i == 0 {
			b.WriteString("Helix APP — today at 12:01\n")
		}
	}
	return b.String()
}

func TestTheLogOnlyGrew(t *testing.T) {
	e := newEnv(t)
	e.grow(t, 10)
	first := e.sign(t)
	e.grow(t, 25)
	second := e.sign(t)
	e.grow(t, 7)
	code, out := e.check(t, discordCopy(second, first), e.vkey) // any order
	if code != 0 || !strings.Contains(out, "only grew") || !strings.Contains(out, "ok  10 -> 35") || !strings.Contains(out, "ok  35 -> 42") {
		t.Fatalf("exit %d:\n%s", code, out)
	}
}

func TestARewrittenLogIsCaught(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.grow(t, 20)
	signed := e.sign(t)
	e.grow(t, 5)
	// Someone with database access rewrites entry 12 and everything after it, consistently.
	entries, _ := e.log.Entries(ctx, -1, 100)
	exec := func(sql string, args ...any) {
		if _, err := e.pool.Exec(ctx, sql, args...); err != nil {
			t.Fatal(err)
		}
	}
	exec(`DELETE FROM audit_entries WHERE seq >= 12`)
	exec(`DELETE FROM audit_tree_hashes WHERE idx >= $1`, tlog.StoredHashIndex(0, 12))
	frontier := make([]tlog.Hash, 0)
	for _, x := range auditlog.FrontierIndexes(12) {
		var h []byte
		if err := e.pool.QueryRow(ctx, `SELECT hash FROM audit_tree_hashes WHERE idx = $1`, x).Scan(&h); err != nil {
			t.Fatal(err)
		}
		frontier = append(frontier, tlog.Hash(h))
	}
	tree, _ := auditlog.NewAppender(12, frontier)
	var forged []auditlog.Pending
	for _, en := range entries[12:] {
		forged = append(forged, auditlog.Pending{At: en.At, Kind: en.Kind, Actor: "ops", Payload: `{"what":"nothing to see"}`})
	}
	for _, en := range auditlog.Link(auditlog.Head{Size: 12, LastHash: entries[11].Hash}, forged) {
		exec(`INSERT INTO audit_entries (seq, prev_hash, hash, created_at, kind, actor, payload) VALUES ($1, $2, $3, $4, $5, $6, $7)`,
			en.Seq, en.PrevHash[:], en.Hash[:], en.At, string(en.Kind), en.Actor, en.Payload)
		stored, _ := tree.Append(en.LeafHash())
		for _, h := range stored {
			exec(`INSERT INTO audit_tree_hashes (idx, hash) VALUES ($1, $2)`, h.Index, h.Hash[:])
		}
	}
	code, out := e.check(t, discordCopy(signed), e.vkey)
	if code != 1 || !strings.Contains(out, "rewritten") {
		t.Errorf("exit %d, want 1 naming the rewrite:\n%s", code, out)
	}
}

func TestEntriesRemovedAreCaught(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.grow(t, 8)
	signed := e.sign(t)
	if _, err := e.pool.Exec(ctx, `DELETE FROM audit_entries WHERE seq >= 5; DELETE FROM audit_tree_hashes WHERE idx >= 8`); err != nil {
		t.Fatal(err)
	}
	if code, out := e.check(t, discordCopy(signed), e.vkey); code != 1 || !strings.Contains(out, "removed") {
		t.Errorf("exit %d, want 1 saying entries were removed:\n%s", code, out)
	}
}

func TestCheckpointsOfAnotherKeyAreRefused(t *testing.T) {
	e := newEnv(t)
	e.grow(t, 3)
	signed := e.sign(t)
	_, otherV, _ := note.GenerateKey(rand.Reader, "helix-audit-test")
	if code, out := e.check(t, discordCopy(signed), otherV); code != 1 || !strings.Contains(out, "not signed by the given key(s)") {
		t.Errorf("exit %d:\n%s", code, out)
	}
	// A forged checkpoint: the signed text changed.
	forged := strings.Replace(signed, "\n3\n", "\n2\n", 1)
	if code, out := e.check(t, discordCopy(forged), e.vkey); code != 1 {
		t.Errorf("a forged checkpoint passed: exit %d:\n%s", code, out)
	}
	if code, _ := e.check(t, "nothing here", e.vkey); code != 2 {
		t.Errorf("input without checkpoints: exit %d, want 2", code)
	}
}

func TestSplitNotes(t *testing.T) {
	a := "helix audit log\n3\nAAAA\n2026-12-01T12:00:00Z\n\n— helix-audit-test sigA\n"
	b := "helix audit log\n9\nBBBB\n2026-12-01T12:01:00Z\n\n— helix-audit-test sigB\n"
	notes, err := splitNotes(strings.NewReader("```\n" + a + "```\nsome chat\n\n```\n" + b + "```\n"))
	if err != nil || len(notes) != 2 || notes[0] != a || notes[1] != b {
		t.Errorf("split = %q, %v", notes, err)
	}
}

// Across a rotation the auditor lists both verifier keys: checkpoints of either are checked, and
// with only one key listed those of the other are refused.
func TestCheckpointsAcrossAKeyRotation(t *testing.T) {
	e := newEnv(t)
	e.grow(t, 3)
	old := e.sign(t)
	oldKey := e.vkey
	skey, vkey, err := note.GenerateKey(rand.Reader, "helix-audit-test-2")
	if err != nil {
		t.Fatal(err)
	}
	if e.signer, err = note.NewSigner(skey); err != nil {
		t.Fatal(err)
	}
	e.grow(t, 4)
	rotated := e.sign(t)
	input := discordCopy(old, rotated)
	if code, out := e.check(t, input, oldKey+","+vkey); code != 0 || !strings.Contains(out, "helix-audit-test, helix-audit-test-2") {
		t.Errorf("both keys: exit %d:\n%s", code, out)
	}
	if code, out := e.check(t, input, vkey); code != 1 || !strings.Contains(out, "checkpoint 1 of the input is not signed") {
		t.Errorf("the new key only: exit %d:\n%s", code, out)
	}
}
