package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// frontendMessage is a typed frontend message: type byte, length (itself included), body.
func frontendMessage(typ byte, body []byte) []byte {
	m := []byte{typ, 0, 0, 0, 0}
	binary.BigEndian.PutUint32(m[1:], uint32(4+len(body)))
	return append(m, body...)
}

// startupPacket is an untyped startup message with the protocol version 3.0.
func startupPacket() []byte {
	body := []byte("user\x00bench\x00\x00")
	m := make([]byte, 8, 8+len(body))
	binary.BigEndian.PutUint32(m[:4], uint32(8+len(body)))
	binary.BigEndian.PutUint32(m[4:8], 196608)
	return append(m, body...)
}

// The proxy passes both directions through byte for byte and counts the client's Syncs and
// simple Queries, however the client splits its writes.
func TestPGProxyForwardsAndCounts(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got := make(chan []byte, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			got <- nil
			return
		}
		defer c.Close()
		_, _ = c.Write([]byte("server says hi"))
		raw, _ := io.ReadAll(c)
		got <- raw
	}()
	p, err := startPGProxy("postgres://u@" + ln.Addr().String() + "/db?sslmode=disable")
	if err != nil {
		t.Fatal(err)
	}
	defer p.close()

	var sent bytes.Buffer
	sent.Write(startupPacket())
	for _, m := range [][]byte{
		frontendMessage('P', []byte("\x00SELECT 1\x00\x00\x00")),
		frontendMessage('B', make([]byte, 10)),
		frontendMessage('E', []byte("\x00\x00\x00\x00\x00")),
		frontendMessage('S', nil),
		frontendMessage('Q', []byte("BEGIN\x00")),
		frontendMessage('S', nil),
		frontendMessage('Q', []byte(strings.Repeat("x", 70_000)+"\x00")), // longer than the proxy's buffers
		frontendMessage('X', nil),
	} {
		sent.Write(m)
	}
	c, err := net.Dial("tcp", p.ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	// Odd-sized writes: a message header may arrive in pieces.
	for b := sent.Bytes(); len(b) > 0; {
		n := min(len(b), 7)
		if _, err := c.Write(b[:n]); err != nil {
			t.Fatal(err)
		}
		b = b[n:]
	}
	hello := make([]byte, len("server says hi"))
	if _, err := io.ReadFull(c, hello); err != nil || string(hello) != "server says hi" {
		t.Fatalf("the client read %q, %v from the server", hello, err)
	}
	c.Close()
	select {
	case raw := <-got:
		if !bytes.Equal(raw, sent.Bytes()) {
			t.Errorf("the server got %d bytes, the client sent %d: not the same", len(raw), sent.Len())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the server never got the client's bytes")
	}
	if want := (pgCounts{Syncs: 2, Queries: 2, Conns: 1}); p.counts() != want {
		t.Errorf("counts = %+v, want %+v", p.counts(), want)
	}
}

// testServerURL is the Postgres server the tests use: HELIX_TEST_PG_URL, else the project's own
// (infra/pg/ensure.sh), as shared/pgtest finds it.
func testServerURL(t *testing.T) string {
	t.Helper()
	if u := os.Getenv("HELIX_TEST_PG_URL"); u != "" {
		return u
	}
	out, err := exec.Command("bash", "../../infra/pg/ensure.sh").Output()
	if err != nil {
		t.Fatalf("infra/pg/ensure.sh: %v (set HELIX_TEST_PG_URL)", err)
	}
	return strings.TrimSpace(string(out))
}

// Against real Postgres, through pgx in the functions' exec mode: one round trip per query, per
// batch, and per BEGIN, COMMIT and ping; the answers come back intact.
func TestPGProxyCountsPgxRoundTrips(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	server := testServerURL(t)
	p, err := startPGProxy(server)
	if err != nil {
		t.Fatal(err)
	}
	defer p.close()
	u, err := p.url(server)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := pgx.ParseConfig(u)
	if err != nil {
		t.Fatal(err)
	}
	cfg.DefaultQueryExecMode = pgx.QueryExecModeExec
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())

	steps := []struct {
		name string
		do   func() error
		want pgCounts
	}{
		{"a query with an argument", func() error {
			var n int
			if err := conn.QueryRow(ctx, `SELECT $1::int + 1`, 41).Scan(&n); err != nil || n != 42 {
				t.Errorf("SELECT 41 + 1 = %d, %v", n, err)
			}
			return nil
		}, pgCounts{Syncs: 1}},
		{"a batch of three", func() error {
			b := &pgx.Batch{}
			for i := range 3 {
				b.Queue(`SELECT $1::int`, i)
			}
			return conn.SendBatch(ctx, b).Close()
		}, pgCounts{Syncs: 1}},
		{"a transaction with one statement", func() error {
			return pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
				_, err := tx.Exec(ctx, `SELECT $1::text`, "x")
				return err
			})
		}, pgCounts{Syncs: 1, Queries: 2}},
		{"a ping", func() error { return conn.Ping(ctx) }, pgCounts{Queries: 1}},
	}
	for _, s := range steps {
		before := p.counts()
		if err := s.do(); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if got := p.counts().minus(before); got != s.want {
			t.Errorf("%s: counted %+v, want %+v", s.name, got, s.want)
		}
	}
}
