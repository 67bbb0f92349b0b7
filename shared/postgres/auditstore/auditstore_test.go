package auditstore_test

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/helixhq/helix/shared/auditlog"
	"github.com/helixhq/helix/shared/outbox"
	"github.com/helixhq/helix/shared/pgtest"
	"github.com/helixhq/helix/shared/postgres/auditstore"
)

var pg *pgtest.Server

func TestMain(m *testing.M) {
	os.Exit(pgtest.Main(m, func(s *pgtest.Server) { pg = s }))
}

type env struct {
	pool *pgxpool.Pool
	log  *auditstore.Log
	box  *auditstore.Outbox
}

func newEnv(t *testing.T) *env {
	t.Helper()
	pool := pg.NewPool(t)
	return &env{pool: pool, log: auditstore.New(pool), box: auditstore.NewOutbox(pool)}
}

func (e *env) exec(t *testing.T, sql string, args ...any) {
	t.Helper()
	if _, err := e.pool.Exec(context.Background(), sql, args...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

func (e *env) count(t *testing.T, sql string, args ...any) int64 {
	t.Helper()
	var n int64
	if err := e.pool.QueryRow(context.Background(), sql, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return n
}

// logOperation writes an ai_operation_log row as the pipeline's settlement does; the trigger
// records its audit event in the same statement.
func (e *env) logOperation(t testing.TB, requestID string, success, fallback bool, errorCode string) {
	t.Helper()
	_, err := e.pool.Exec(context.Background(), `
		INSERT INTO ai_operation_log (request_id, operation_id, user_id, model_used, provider, input_tokens, output_tokens,
		                              cost_nano, latency_ms, success, error_code, fallback_used)
		VALUES ($1, 'email-compose', 'alice', 'deepseek', 'deepseek', 100, 50, 1234, 80, $2, NULLIF($3, ''), $4)`,
		requestID, success, errorCode, fallback)
	if err != nil {
		t.Fatal(err)
	}
}

func (e *env) record(t testing.TB, ev auditlog.Event) {
	t.Helper()
	if err := auditstore.Record(context.Background(), e.pool, ev); err != nil {
		t.Fatal(err)
	}
}

func (e *env) integrateAll(t testing.TB) auditstore.Integrated {
	t.Helper()
	r, err := e.log.IntegrateAll(context.Background(), 1000)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestIntegrate(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.logOperation(t, "r-ok", true, false, "")
	e.logOperation(t, "r-failed", false, false, "providers_unavailable")
	e.logOperation(t, "r-fallback", true, true, "")
	e.record(t, auditlog.Event{Kind: auditlog.AdminChange, Actor: "ops", Payload: auditlog.Change{What: "model", ID: "deepseek", Reprice: true}})
	e.record(t, auditlog.Event{Kind: auditlog.Heartbeat, Actor: "audit", Payload: auditlog.HeartbeatFacts{Operations: 3}})

	r := e.integrateAll(t)
	if r.Entries != 5 || r.Size != 5 {
		t.Fatalf("integrated %+v, want 5 entries", r)
	}
	if n := e.count(t, `SELECT count(*) FROM audit_pending`); n != 0 {
		t.Errorf("%d events left pending", n)
	}
	entries, err := e.log.Entries(ctx, -1, 100)
	if err != nil || len(entries) != 5 {
		t.Fatalf("entries = %d, %v", len(entries), err)
	}
	// The chain links from genesis; the stored tree is tlog's over the entries' encodings.
	prev := auditlog.Genesis()
	full := map[int64]tlog.Hash{}
	reader := tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) {
		out := make([]tlog.Hash, len(idx))
		for i, x := range idx {
			out[i] = full[x]
		}
		return out, nil
	})
	for i, en := range entries {
		if en.Seq != int64(i) || en.PrevHash != prev || en.Hash != en.ComputeHash() {
			t.Fatalf("entry %d does not chain: %+v", i, en)
		}
		prev = en.Hash
		hashes, err := tlog.StoredHashes(en.Seq, en.Encode(), reader)
		if err != nil {
			t.Fatal(err)
		}
		for j, h := range hashes {
			full[tlog.StoredHashIndex(0, en.Seq)+int64(j)] = h
		}
	}
	want, _ := tlog.TreeHash(5, reader)
	if root, err := e.log.Root(ctx, 5); err != nil || root != want {
		t.Errorf("root = %s, %v; want tlog's %s", root, err, want)
	}
	var op auditlog.OperationFacts
	if err := json.Unmarshal([]byte(entries[0].Payload), &op); err != nil || op.RequestID != "r-ok" || op.CostNano != 1234 || !op.Success || entries[0].Actor != "alice" {
		t.Errorf("operation entry %+v (%v)", op, err)
	}
	// Discord: the failure and the fallback to api, the price change to commands and
	// file-changes, the heartbeat to its channel; the successful call only in the digest.
	got := map[string]int64{}
	rows, _ := e.pool.Query(ctx, `SELECT channel, count(*) FROM discord_outbox GROUP BY channel`)
	for rows.Next() {
		var ch string
		var n int64
		_ = rows.Scan(&ch, &n)
		got[ch] = n
	}
	rows.Close()
	wantOutbox := map[string]int64{"api": 2, "commands": 1, "file_changes": 1, "heartbeat": 1}
	if fmt.Sprint(got) != fmt.Sprint(wantOutbox) {
		t.Errorf("outbox by channel %v, want %v", got, wantOutbox)
	}
	// Nothing pending: another run does nothing, and a later batch continues the chain.
	if r := e.integrateAll(t); r.Entries != 0 || r.Size != 5 {
		t.Errorf("empty run: %+v", r)
	}
	e.record(t, auditlog.Event{Kind: auditlog.Alert, Payload: auditlog.AlertEvent{Name: "x", State: "fired"}})
	e.integrateAll(t)
	if en, err := e.log.Entry(ctx, 5); err != nil || en.PrevHash != entries[4].Hash {
		t.Errorf("entry 5 = %+v, %v; want it linked to entry 4", en, err)
	}
}

// Fifty writers record operations and admin changes while integrators run: one chain, without a
// gap or a duplicate, every event in it exactly once.
func TestConcurrentWritersAndIntegrators(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	const writers, each = 50, 20
	var wg sync.WaitGroup
	done := make(chan struct{})
	var integrated sync.WaitGroup
	for range 2 { // two integrators race for the lock
		integrated.Add(1)
		go func() {
			defer integrated.Done()
			for {
				select {
				case <-done:
					return
				default:
				}
				if _, err := e.log.Integrate(ctx, 37); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				if w%2 == 0 {
					e.logOperation(t, fmt.Sprintf("w%d-%d", w, i), true, false, "")
				} else {
					e.record(t, auditlog.Event{Kind: auditlog.AdminChange, Actor: "ops", Payload: auditlog.Change{What: "toggle", ID: fmt.Sprintf("w%d-%d", w, i)}})
				}
			}
		}()
	}
	wg.Wait()
	close(done)
	integrated.Wait()
	e.integrateAll(t)

	const total = writers * each
	if n := e.count(t, `SELECT count(*) FROM audit_entries`); n != total {
		t.Fatalf("%d entries, want %d", n, total)
	}
	if n := e.count(t, `SELECT max(seq) + 1 FROM audit_entries`); n != total {
		t.Errorf("seqs reach %d for %d entries: a gap", n, total)
	}
	// Every event exactly once: its id (request id or change id) appears once.
	if n := e.count(t, `SELECT count(DISTINCT coalesce(payload::jsonb->>'request_id', payload::jsonb->>'id')) FROM audit_entries`); n != total {
		t.Errorf("%d distinct events in the chain, want %d", n, total)
	}
	if n := e.count(t, `SELECT count(*) FROM audit_pending`); n != 0 {
		t.Errorf("%d left pending", n)
	}
	rep, err := e.log.Verify(ctx, 0, nil)
	if err != nil || rep.Broken != nil || rep.Checked != total {
		t.Errorf("verify = %+v, %v", rep, err)
	}
	if n := e.count(t, `SELECT count(*) FROM audit_tree_hashes`); n != tlog.StoredHashCount(total) {
		t.Errorf("%d tree hashes, want %d", n, tlog.StoredHashCount(total))
	}
}

func (e *env) fill(t *testing.T, n int) {
	t.Helper()
	for i := range n {
		e.record(t, auditlog.Event{Kind: auditlog.AdminChange, Actor: fmt.Sprintf("admin-%d", i%3),
			Payload: auditlog.Change{What: "budget", ID: fmt.Sprintf("user-%d", i), After: map[string]int{"limit": i}}})
	}
	e.integrateAll(t)
}

func keys(t *testing.T) (note.Signer, note.Verifier) {
	t.Helper()
	skey, vkey, err := note.GenerateKey(rand.Reader, "helix-audit-test")
	if err != nil {
		t.Fatal(err)
	}
	s, _ := auditlog.NewSigner(skey)
	v, _ := auditlog.NewVerifier(vkey)
	return s, v
}

// checkpoint signs and stores the tree as it is now.
func (e *env) checkpoint(t *testing.T, s note.Signer) auditlog.Checkpoint {
	t.Helper()
	ctx := context.Background()
	head, _ := e.log.Head(ctx)
	root, err := e.log.Root(ctx, head.Size)
	if err != nil {
		t.Fatal(err)
	}
	c := auditlog.Checkpoint{Size: head.Size, Root: root, At: time.Now().Truncate(time.Second)}
	signed, err := c.Sign(s)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.log.SaveCheckpoint(ctx, c.Size, c.Root, signed); err != nil {
		t.Fatal(err)
	}
	return c
}

func TestVerifyNamesTheFirstBrokenEntry(t *testing.T) {
	tests := []struct {
		name   string
		tamper string // SQL run on the stored log
		want   int64  // -1: intact
	}{
		{"intact", ``, -1},
		{"payload changed", `UPDATE audit_entries SET payload = replace(payload, 'user-17', 'user-71') WHERE seq = 17`, 17},
		{"actor changed", `UPDATE audit_entries SET actor = 'mallory' WHERE seq = 40`, 40},
		{"kind changed", `UPDATE audit_entries SET kind = 'heartbeat' WHERE seq = 3`, 3},
		{"time changed", `UPDATE audit_entries SET created_at = created_at + interval '1 second' WHERE seq = 0`, 0},
		{"prev_hash changed", `UPDATE audit_entries SET prev_hash = hash WHERE seq = 25`, 25},
		{"entry deleted", `DELETE FROM audit_entries WHERE seq = 31`, 31},
		{"two entries reordered", `UPDATE audit_entries SET seq = 1000 WHERE seq = 12; UPDATE audit_entries SET seq = 12 WHERE seq = 13;
			UPDATE audit_entries SET seq = 13 WHERE seq = 1000`, 12},
		{"a tree hash changed", `UPDATE audit_tree_hashes SET hash = sha256(hash) WHERE idx = (SELECT max(idx) FROM audit_tree_hashes WHERE idx < 90)`, -2},
		{"a tree hash deleted", `DELETE FROM audit_tree_hashes WHERE idx = 70`, -2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			e.fill(t, 50)
			if tt.tamper != "" {
				e.exec(t, tt.tamper)
			}
			rep, err := e.log.Verify(context.Background(), 0, nil)
			if err != nil {
				t.Fatal(err)
			}
			switch {
			case tt.want == -1 && rep.Broken != nil:
				t.Errorf("an intact log broke: %v", rep.Broken)
			case tt.want == -1 && rep.Checked != 50:
				t.Errorf("checked %d of 50", rep.Checked)
			case tt.want >= 0 && (rep.Broken == nil || rep.Broken.Seq != tt.want):
				t.Errorf("broken = %+v, want entry %d", rep.Broken, tt.want)
			case tt.want == -2 && rep.Broken == nil:
				t.Error("a changed tree went unnoticed")
			}
		})
	}
}

// Someone with write access rewrites the log from entry 20 on, chain and tree consistently (no
// walk over the rows alone can tell). A consistency proof against the checkpoint signed before
// gives it away, and so does verification against the stored signed checkpoints.
func TestARewrittenTreeIsCaughtByAnEarlierCheckpoint(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	s, v := keys(t)
	e.fill(t, 30)
	old := e.checkpoint(t, s)
	e.fill(t, 10)

	// The rewrite: entries from 20 relinked with other contents, the tree recomputed for them.
	entries, _ := e.log.Entries(ctx, -1, 100)
	e.exec(t, `DELETE FROM audit_entries WHERE seq >= 20`)
	e.exec(t, `DELETE FROM audit_tree_hashes WHERE idx >= $1`, tlog.StoredHashIndex(0, 20))
	var rewritten []auditlog.Pending
	for _, en := range entries[20:] {
		rewritten = append(rewritten, auditlog.Pending{At: en.At, Kind: en.Kind, Actor: "nobody", Payload: `{"what":"nothing"}`})
	}
	forged := auditlog.Link(auditlog.Head{Size: 20, LastHash: entries[19].Hash}, rewritten)
	frontier := make([]tlog.Hash, 0)
	full := map[int64]tlog.Hash{}
	rows, _ := e.pool.Query(ctx, `SELECT idx, hash FROM audit_tree_hashes`)
	for rows.Next() {
		var idx int64
		var h []byte
		_ = rows.Scan(&idx, &h)
		full[idx] = tlog.Hash(h)
	}
	rows.Close()
	for _, x := range auditlog.FrontierIndexes(20) {
		frontier = append(frontier, full[x])
	}
	tree, err := auditlog.NewAppender(20, frontier)
	if err != nil {
		t.Fatal(err)
	}
	for _, en := range forged {
		e.exec(t, `INSERT INTO audit_entries (seq, prev_hash, hash, created_at, kind, actor, payload) VALUES ($1, $2, $3, $4, $5, $6, $7)`,
			en.Seq, en.PrevHash[:], en.Hash[:], en.At, string(en.Kind), en.Actor, en.Payload)
		stored, _ := tree.Append(en.LeafHash())
		for _, h := range stored {
			e.exec(t, `INSERT INTO audit_tree_hashes (idx, hash) VALUES ($1, $2)`, h.Index, h.Hash[:])
		}
	}
	// The rows alone look fine, apart from the stored checkpoint ...
	// ... which verification checks: the tree of 30 no longer has the signed root.
	rep, err := e.log.Verify(ctx, 0, note.VerifierList(v))
	if err != nil {
		t.Fatal(err)
	}
	if rep.Broken == nil || rep.Broken.Seq != 29 {
		t.Errorf("verify = %+v, want the tree of 30 caught at its checkpoint", rep.Broken)
	}
	// And the auditor's check: a consistency proof from the signed checkpoint to today's tree
	// does not verify against the old signed root.
	head, _ := e.log.Head(ctx)
	proof, _, newRoot, err := e.log.ConsistencyProof(ctx, old.Size, head.Size)
	if err != nil {
		t.Fatal(err)
	}
	if err := tlog.CheckTree(proof, head.Size, newRoot, old.Size, old.Root); err == nil {
		t.Error("the rewritten tree proved consistent with the checkpoint signed before it")
	}
}

func TestProofs(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.fill(t, 77)
	for _, tt := range []struct{ seq, size int64 }{{0, 1}, {0, 77}, {40, 41}, {40, 77}, {76, 77}} {
		proof, leaf, root, err := e.log.InclusionProof(ctx, tt.seq, tt.size)
		if err != nil {
			t.Fatalf("proof of %d in %d: %v", tt.seq, tt.size, err)
		}
		en, _ := e.log.Entry(ctx, tt.seq)
		if leaf != en.LeafHash() {
			t.Errorf("leaf of %d is not its entry's", tt.seq)
		}
		if err := tlog.CheckRecord(proof, tt.size, root, tt.seq, leaf); err != nil {
			t.Errorf("inclusion of %d in %d: %v", tt.seq, tt.size, err)
		}
	}
	for _, tt := range []struct{ from, to int64 }{{1, 77}, {30, 31}, {64, 77}, {77, 77}} {
		proof, fromRoot, toRoot, err := e.log.ConsistencyProof(ctx, tt.from, tt.to)
		if err != nil {
			t.Fatal(err)
		}
		if err := tlog.CheckTree(proof, tt.to, toRoot, tt.from, fromRoot); err != nil {
			t.Errorf("consistency %d -> %d: %v", tt.from, tt.to, err)
		}
	}
	for _, bad := range []struct{ seq, size int64 }{{77, 77}, {5, 78}, {-1, 3}, {3, 3}} {
		if _, _, _, err := e.log.InclusionProof(ctx, bad.seq, bad.size); err == nil {
			t.Errorf("inclusion of %d in %d: no error", bad.seq, bad.size)
		}
	}
	if _, _, _, err := e.log.ConsistencyProof(ctx, 10, 78); err == nil {
		t.Error("consistency to a size the tree has not reached: no error")
	}
}

func TestVerifyFromACheckpoint(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	s, v := keys(t)
	e.fill(t, 25)
	c := e.checkpoint(t, s)
	e.fill(t, 15)
	rep, err := e.log.Verify(ctx, c.Size, note.VerifierList(v))
	if err != nil || rep.Broken != nil || rep.Checked != 15 || rep.Size != 40 {
		t.Fatalf("verify from %d = %+v, %v", c.Size, rep, err)
	}
	full, _ := e.log.Verify(ctx, 0, note.VerifierList(v))
	if full.Root != rep.Root || full.Checkpoints != 1 {
		t.Errorf("from the start: root %s (%d checkpoints), from the checkpoint %s", full.Root, full.Checkpoints, rep.Root)
	}
	if _, err := e.log.Verify(ctx, 7, note.VerifierList(v)); err == nil {
		t.Error("verify from a size without a checkpoint: no error")
	}
	// After a rotation both keys are listed: checkpoints of either verify.
	s2, v2 := keys(t)
	e.fill(t, 5)
	e.checkpoint(t, s2)
	if rep, err := e.log.Verify(ctx, 0, note.VerifierList(v, v2)); err != nil || rep.Broken != nil || rep.Checkpoints != 2 {
		t.Errorf("verify with both keys = %+v, %v; want both checkpoints checked", rep, err)
	}
	// Only the new key listed: the old checkpoint is a finding (named), not a server error.
	rep, err = e.log.Verify(ctx, 0, note.VerifierList(v2))
	if err != nil || rep.Broken == nil || rep.Broken.Seq != 24 || !strings.Contains(rep.Broken.Reason, "size 25 is not signed by a listed verifier key") {
		t.Errorf("verify with only the new key = %+v, %v; want the checkpoint of size 25 named", rep, err)
	}
	// A checkpoint row written without the key is named the same way.
	e.exec(t, `UPDATE audit_checkpoints SET signed = replace(signed, '25', '26') WHERE size = 25`)
	if rep, err := e.log.Verify(ctx, 0, note.VerifierList(v, v2)); err != nil || rep.Broken == nil || rep.Broken.Seq != 24 {
		t.Errorf("a checkpoint with a broken signature: %+v, %v; want it named", rep, err)
	}
}

func TestOutboxStore(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	for i := range 4 {
		e.exec(t, `INSERT INTO discord_outbox (channel, kind, payload) VALUES ('alerts', 'alert', $1)`, fmt.Sprintf(`{"n":%d}`, i))
	}
	e.exec(t, `INSERT INTO discord_outbox (channel, kind, payload) VALUES ('api', 'operation', '{}')`)
	now := time.Now()
	items, err := e.box.Due(ctx, outbox.Alerts, now, 10)
	if err != nil || len(items) != 4 || items[0].ID > items[1].ID {
		t.Fatalf("due = %v, %v", items, err)
	}
	// The second waits to retry: only the first is due, nothing overtakes the waiting one.
	if err := e.box.Failed(ctx, []int64{items[1].ID}, "HTTP 503", now.Add(time.Minute), false); err != nil {
		t.Fatal(err)
	}
	if due, _ := e.box.Due(ctx, outbox.Alerts, now, 10); len(due) != 1 || due[0].ID != items[0].ID {
		t.Errorf("due with the second retrying later = %v, want the first only", due)
	}
	if err := e.box.Delivered(ctx, []int64{items[0].ID}, now); err != nil {
		t.Fatal(err)
	}
	if due, _ := e.box.Due(ctx, outbox.Alerts, now.Add(2*time.Minute), 10); len(due) != 3 || due[0].Attempts != 1 {
		t.Errorf("due later = %v", due)
	}
	if err := e.box.Failed(ctx, []int64{items[1].ID}, "HTTP 400", now, true); err != nil {
		t.Fatal(err)
	}
	if n := e.count(t, `SELECT count(*) FROM discord_outbox WHERE dead_at IS NOT NULL`); n != 1 {
		t.Errorf("%d dead, want 1 (kept)", n)
	}

	// One deliverer per channel.
	unlock, ok, err := e.box.Lock(ctx, outbox.Alerts)
	if err != nil || !ok {
		t.Fatalf("lock = %v, %v", ok, err)
	}
	if _, ok, _ := e.box.Lock(ctx, outbox.Alerts); ok {
		t.Error("a second deliverer got the channel")
	}
	if u, ok, _ := e.box.Lock(ctx, outbox.API); !ok {
		t.Error("another channel was locked too")
	} else {
		u()
	}
	unlock()
	if u, ok, _ := e.box.Lock(ctx, outbox.Alerts); !ok {
		t.Error("unlock did not free the channel")
	} else {
		u()
	}
	// A run that died keeps its lease until it expires; then the channel is free again.
	if _, ok, err := e.box.Lock(ctx, outbox.Heartbeat); err != nil || !ok {
		t.Fatalf("lock heartbeat = %v, %v", ok, err)
	}
	if _, ok, _ := e.box.Lock(ctx, outbox.Heartbeat); ok {
		t.Error("a dead run's lease was taken before it expired")
	}
	e.exec(t, `UPDATE discord_leases SET until = clock_timestamp() - interval '1 second' WHERE channel = 'heartbeat'`)
	if u, ok, _ := e.box.Lock(ctx, outbox.Heartbeat); !ok {
		t.Error("an expired lease was not taken over")
	} else {
		u()
	}
	// Many deliverers at once: exactly one gets the channel.
	var wg sync.WaitGroup
	var mu sync.Mutex
	winners := 0
	for range 10 {
		wg.Go(func() {
			if _, ok, err := e.box.Lock(ctx, outbox.Consciousness); err == nil && ok {
				mu.Lock()
				winners++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if winners != 1 {
		t.Errorf("%d of 10 concurrent deliverers got the channel, want 1", winners)
	}

	// A gone webhook, by fingerprint: news once; a new webhook is not gone.
	first, err := e.box.Gone(ctx, outbox.Commands, "fp1", "404", now)
	if err != nil || !first {
		t.Fatalf("gone = %v, %v", first, err)
	}
	if again, _ := e.box.Gone(ctx, outbox.Commands, "fp1", "404", now); again {
		t.Error("the same gone webhook was news twice")
	}
	if g, _ := e.box.IsGone(ctx, outbox.Commands, "fp1"); !g {
		t.Error("gone webhook not remembered")
	}
	if g, _ := e.box.IsGone(ctx, outbox.Commands, "fp2"); g {
		t.Error("a new webhook counted as gone")
	}
	if again, _ := e.box.Gone(ctx, outbox.Commands, "fp2", "404", now); !again {
		t.Error("a second webhook going was not news")
	}
}

func TestDigest(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	from := time.Now().Add(-time.Minute)
	e.logOperation(t, "a", true, false, "")
	e.logOperation(t, "b", true, false, "")
	e.logOperation(t, "c", false, false, "timeout") // posted on its own, not in the digest
	to := time.Now()
	n, err := e.box.Digest(ctx, from, to)
	if err != nil || n != 2 {
		t.Fatalf("digest = %d, %v; want 2 calls", n, err)
	}
	last, err := e.box.LastDigest(ctx)
	if err != nil || !last.Equal(to.Truncate(time.Microsecond)) && last.Sub(to).Abs() > time.Millisecond {
		t.Errorf("last digest ends %s, want %s (%v)", last, to, err)
	}
	if n, _ := e.box.Digest(ctx, to, time.Now()); n != 0 {
		t.Errorf("an empty window made a digest of %d", n)
	}
	if n := e.count(t, `SELECT count(*) FROM discord_outbox WHERE kind = 'api_digest'`); n != 1 {
		t.Errorf("%d digests, want 1 (none for an empty minute)", n)
	}
}

func TestRecordDeploymentOncePerVersion(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	for range 3 {
		if err := auditstore.RecordDeployment(ctx, e.pool, "route", "v1"); err != nil {
			t.Fatal(err)
		}
	}
	if err := auditstore.RecordDeployment(ctx, e.pool, "route", "v2"); err != nil {
		t.Fatal(err)
	}
	if err := auditstore.RecordDeployment(ctx, e.pool, "chat", "v1"); err != nil {
		t.Fatal(err)
	}
	if n := e.count(t, `SELECT count(*) FROM audit_pending WHERE kind = 'deployment'`); n != 3 {
		t.Errorf("%d deployments recorded, want 3 (route v1, route v2, chat v1)", n)
	}
}

func TestActivity(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	from := time.Now().Add(-time.Second)
	for i := range 20 {
		e.logOperation(t, fmt.Sprint("r", i), i%5 != 0, false, "")
	}
	a, err := e.log.Activity(ctx, from, time.Now())
	if err != nil || a.Operations != 20 || a.Errors != 4 || a.P95LatencyMS != 80 {
		t.Errorf("activity = %+v, %v; want 20 operations, 4 errors, p95 80 ms", a, err)
	}
}

// An operation's event names its log row; the integrator writes the row's summary (never more)
// as the entry's payload, and a row deleted before it was sequenced is recorded as missing.
func TestOperationPayloadComesFromItsLogRow(t *testing.T) {
	e := newEnv(t)
	e.logOperation(t, "r-kept", false, true, "timeout")
	e.logOperation(t, "r-deleted", true, false, "")
	e.exec(t, `DELETE FROM ai_operation_log WHERE request_id = 'r-deleted'`)
	if n := e.count(t, `SELECT count(*) FROM audit_pending WHERE payload IS NULL AND op_id IS NOT NULL`); n != 2 {
		t.Fatalf("%d pending operation events name their row, want 2", n)
	}
	e.integrateAll(t)
	entries, err := e.log.Entries(context.Background(), -1, 10)
	if err != nil || len(entries) != 2 {
		t.Fatalf("entries %v, %v; want 2", entries, err)
	}
	want := auditlog.OperationFacts{RequestID: "r-kept", OperationID: "email-compose", Model: "deepseek", Provider: "deepseek",
		InputTokens: 100, OutputTokens: 50, CostNano: 1234, LatencyMS: 80, ErrorCode: "timeout", FallbackUsed: true}
	var got auditlog.OperationFacts
	if err := json.Unmarshal([]byte(entries[0].Payload), &got); err != nil || got != want || entries[0].Actor != "alice" {
		t.Errorf("the kept operation's entry: %s by %q, want %+v by alice", entries[0].Payload, entries[0].Actor, want)
	}
	if p := entries[1].Payload; !strings.Contains(p, `"missing"`) || !strings.Contains(p, `"op_log_id"`) {
		t.Errorf("the deleted operation's entry: %s, want it recorded as missing", p)
	}
}
