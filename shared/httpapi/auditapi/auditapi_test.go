package auditapi_test

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
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

var tokens = apitest.Tokens{Secret: "auditapi-test-secret-0123456789abcdefgh", Issuer: "https://auth.test/auditapi", Audience: "helix-auditapi"}

type env struct {
	pool         *pgxpool.Pool
	log          *auditstore.Log
	url          string
	admin, alice string
	signer       note.Signer
}

func newEnv(t testing.TB, entries int) *env {
	t.Helper()
	pool := pg.NewPool(t)
	skey, vkey, _ := note.GenerateKey(rand.Reader, "helix-audit-test")
	signer, _ := auditlog.NewSigner(skey)
	verifier, _ := auditlog.NewVerifier(vkey)
	log := auditstore.New(pool)
	srv := httpapi.NewServer(apitest.Authenticator(t, tokens), apitest.Log(t))
	auditapi.Register(srv, log, note.VerifierList(verifier))
	e := &env{pool: pool, log: log, url: apitest.Serve(t, srv), signer: signer,
		admin: tokens.Token(t, "ops", map[string]any{"role": "admin"}), alice: tokens.Token(t, "alice", nil)}
	ctx := context.Background()
	for i := range entries {
		// Payloads as Postgres writes them (jsonb text, with spaces): the API must hand them back
		// byte for byte, or no one could recompute the hashes.
		if _, err := pool.Exec(ctx, `INSERT INTO audit_pending (kind, actor, payload) VALUES ('admin_change', 'ops', jsonb_build_object('what', 'budget', 'id', $1::text)::text)`,
			fmt.Sprintf("user-%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := log.IntegrateAll(ctx, 1000); err != nil {
		t.Fatal(err)
	}
	return e
}

func (e *env) get(t *testing.T, path, token string) apitest.Response {
	t.Helper()
	return apitest.Do(t, http.MethodGet, e.url+path, token, "")
}

func TestEntriesHashesRecomputeFromTheAnswer(t *testing.T) {
	e := newEnv(t, 25)
	var page auditapi.EntryList
	r := e.get(t, "/admin/audit/entries?limit=10", e.admin)
	r.WantStatus(t, http.StatusOK)
	r.Decode(t, &page)
	if len(page.Entries) != 10 || page.Size != 25 || page.NextAfter == nil || *page.NextAfter != 9 {
		t.Fatalf("first page: %d entries, size %d, next %v", len(page.Entries), page.Size, page.NextAfter)
	}
	var all []auditapi.EntryView
	after := int64(-1)
	for {
		var p auditapi.EntryList
		e.get(t, fmt.Sprintf("/admin/audit/entries?after=%d&limit=10", after), e.admin).Decode(t, &p)
		all = append(all, p.Entries...)
		if p.NextAfter == nil {
			break
		}
		after = *p.NextAfter
	}
	if len(all) != 25 {
		t.Fatalf("paged %d entries, want 25", len(all))
	}
	prev := auditlog.Genesis()
	for i, v := range all {
		at, err := time.Parse(time.RFC3339Nano, v.Time)
		if err != nil {
			t.Fatal(err)
		}
		ph, _ := tlog.ParseHash(v.PrevHash)
		h, _ := tlog.ParseHash(v.Hash)
		en := auditlog.Entry{Seq: v.Seq, PrevHash: ph, At: at, Kind: auditlog.Kind(v.Kind), Actor: v.Actor, Payload: v.Payload}
		if v.Seq != int64(i) || ph != prev || en.ComputeHash() != h {
			t.Fatalf("entry %d does not recompute from the API's answer: %+v", i, v)
		}
		prev = h
	}
	if all[0].Payload != `{"id": "user-0", "what": "budget"}` {
		t.Errorf("payload %q: not the stored text byte for byte", all[0].Payload)
	}
}

func TestProofs(t *testing.T) {
	e := newEnv(t, 40)
	var p auditapi.Proof
	r := e.get(t, "/admin/audit/entries/17/proof?size=30", e.admin)
	r.WantStatus(t, http.StatusOK)
	r.Decode(t, &p)
	proof := make(tlog.RecordProof, len(p.Proof))
	for i, s := range p.Proof {
		proof[i], _ = tlog.ParseHash(s)
	}
	leaf, _ := tlog.ParseHash(p.LeafHash)
	root, _ := tlog.ParseHash(p.Root)
	if err := tlog.CheckRecord(proof, 30, root, 17, leaf); err != nil {
		t.Errorf("inclusion proof does not check: %v", err)
	}
	// Default size: today's.
	e.get(t, "/admin/audit/entries/39/proof", e.admin).Decode(t, &p)
	if p.Size != 40 {
		t.Errorf("default size %d, want 40", p.Size)
	}

	var c auditapi.Consistency
	r = e.get(t, "/admin/audit/consistency?from=13", e.admin)
	r.WantStatus(t, http.StatusOK)
	r.Decode(t, &c)
	tp := make(tlog.TreeProof, len(c.Proof))
	for i, s := range c.Proof {
		tp[i], _ = tlog.ParseHash(s)
	}
	from, _ := tlog.ParseHash(c.FromRoot)
	to, _ := tlog.ParseHash(c.ToRoot)
	if c.To != 40 {
		t.Errorf("default to %d, want 40", c.To)
	}
	if err := tlog.CheckTree(tp, 40, to, 13, from); err != nil {
		t.Errorf("consistency proof does not check: %v", err)
	}
}

func TestVerify(t *testing.T) {
	e := newEnv(t, 30)
	ctx := context.Background()
	head, _ := e.log.Head(ctx)
	root, _ := e.log.Root(ctx, head.Size)
	signed, _ := auditlog.Checkpoint{Size: head.Size, Root: root, At: time.Now().Truncate(time.Second)}.Sign(e.signer)
	if err := e.log.SaveCheckpoint(ctx, head.Size, root, signed); err != nil {
		t.Fatal(err)
	}
	var v auditapi.Verification
	r := e.get(t, "/admin/audit/verify", e.admin)
	r.WantStatus(t, http.StatusOK)
	r.Decode(t, &v)
	if !v.OK || v.Checked != 30 || v.Checkpoints != 1 || !v.SignaturesChecked || v.Root != root.String() {
		t.Errorf("verify = %+v", v)
	}
	e.get(t, "/admin/audit/verify?from=30", e.admin).Decode(t, &v)
	if !v.OK || v.Checked != 0 || v.From != 30 {
		t.Errorf("verify from the checkpoint = %+v", v)
	}
	var list struct {
		Checkpoints []auditapi.CheckpointView `json:"checkpoints"`
	}
	e.get(t, "/admin/audit/checkpoints", e.admin).Decode(t, &list)
	if len(list.Checkpoints) != 1 || list.Checkpoints[0].Signed != signed {
		t.Errorf("checkpoints = %+v", list)
	}
	if _, err := e.pool.Exec(ctx, `UPDATE audit_entries SET actor = 'mallory' WHERE seq = 11`); err != nil {
		t.Fatal(err)
	}
	var bad auditapi.Verification
	e.get(t, "/admin/audit/verify", e.admin).Decode(t, &bad)
	if bad.OK || bad.Broken == nil || bad.Broken.Seq != 11 || bad.Root != "" {
		t.Errorf("verify after tampering = %+v, want entry 11 broken", bad)
	}
}

func TestRefusals(t *testing.T) {
	e := newEnv(t, 5)
	tests := []struct {
		path   string
		token  string
		status int
		code   string
	}{
		{"/admin/audit/entries", "", 401, "unauthorized"},
		{"/admin/audit/entries", "alice", 403, "forbidden"},
		{"/admin/audit/verify", "alice", 403, "forbidden"},
		{"/admin/audit/entries?limit=0", "ops", 400, "invalid_field"},
		{"/admin/audit/entries?limit=1001", "ops", 400, "invalid_field"},
		{"/admin/audit/entries?after=x", "ops", 400, "invalid_field"},
		{"/admin/audit/entries/x/proof", "ops", 400, "invalid_field"},
		{"/admin/audit/entries/-1/proof", "ops", 400, "invalid_field"},
		{"/admin/audit/entries/5/proof", "ops", 404, "not_found"},
		{"/admin/audit/entries/2/proof?size=2", "ops", 404, "not_found"},
		{"/admin/audit/entries/2/proof?size=99", "ops", 404, "not_found"},
		{"/admin/audit/consistency", "ops", 400, "missing_field"},
		{"/admin/audit/consistency?from=9", "ops", 404, "not_found"},
		{"/admin/audit/consistency?from=3&to=2", "ops", 400, "invalid_field"},
		{"/admin/audit/consistency?from=3&to=9", "ops", 404, "not_found"},
		{"/admin/audit/verify?from=3", "ops", 400, "invalid_field"},
		{"/admin/audit/verify?from=-2", "ops", 400, "invalid_field"},
	}
	for _, tt := range tests {
		tok := map[string]string{"ops": e.admin, "alice": e.alice}[tt.token]
		r := e.get(t, tt.path, tok)
		body := r.WantErrorBody(t, tt.status)
		if body.Error.Code != tt.code {
			t.Errorf("%s as %q: code %s, want %s", tt.path, tt.token, body.Error.Code, tt.code)
		}
	}
}

// FuzzQueries: whatever the query, the audit endpoints answer 200 or a 4xx error with a code,
// never a server fault.
func FuzzQueries(f *testing.F) {
	for _, q := range []string{"after=3&limit=2", "size=1", "from=1&to=3", "from=0", "limit=99999999999999999999", "after=-1", "from=%00", "size=3e2"} {
		f.Add(q)
	}
	env := newEnv(f, 3)
	f.Fuzz(func(t *testing.T, q string) {
		if _, err := url.ParseQuery(q); err != nil {
			return
		}
		for _, path := range []string{"/admin/audit/entries", "/admin/audit/entries/1/proof", "/admin/audit/consistency", "/admin/audit/verify", "/admin/audit/checkpoints"} {
			r := apitest.Do(t, http.MethodGet, env.url+path+"?"+q, env.admin, "")
			if r.Status >= 500 {
				t.Fatalf("%s?%s answered %d: %s", path, q, r.Status, r.Body)
			}
			if r.Status != 200 {
				var body struct {
					Error struct{ Code string } `json:"error"`
				}
				if json.Unmarshal(r.Body, &body) != nil || body.Error.Code == "" {
					t.Fatalf("%s?%s answered %d without an error code: %s", path, q, r.Status, r.Body)
				}
			}
		}
	})
}
