package main

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"sync"
	"sync/atomic"
)

// pgProxy is a TCP proxy in front of Postgres that counts the round trips its clients make: it
// reads the frontend messages (the client to server half of the wire protocol, unencrypted) and
// counts each Sync (the end of an extended-protocol exchange, which pgx sends once per query and
// once per batch, then waits for ReadyForQuery) and each simple Query (pgx's BEGIN, COMMIT, LISTEN,
// and the pool's ping of a connection idle for over a second). Each of those is one round trip
// to the server. The server's answers are copied through untouched.
//
// It exists because the statistics Postgres keeps (pg_stat_database's transactions) count
// transactions, not round trips, and a backend reports them only when it goes idle for a while or
// exits; counting on the wire is exact and can be read at any moment.
type pgProxy struct {
	ln     net.Listener
	target string // host:port of the server

	syncs, queries, conns atomic.Int64

	mu     sync.Mutex
	open   map[net.Conn]struct{}
	closed bool
	wg     sync.WaitGroup
}

// pgCounts are the proxy's counters at one moment.
type pgCounts struct {
	Syncs, Queries, Conns int64
}

// MarshalJSON writes the counters and their sum.
func (c pgCounts) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		RoundTrips int64 `json:"round_trips"`
		Syncs      int64 `json:"syncs"`
		Queries    int64 `json:"simple_queries"`
		Conns      int64 `json:"new_connections"`
	}{c.roundTrips(), c.Syncs, c.Queries, c.Conns})
}

// String says what was counted.
func (c pgCounts) String() string {
	return fmt.Sprintf("%d round trips (%d Syncs + %d simple Queries; %d new connections)", c.roundTrips(), c.Syncs, c.Queries, c.Conns)
}

// roundTrips is syncs plus simple queries.
func (c pgCounts) roundTrips() int64 { return c.Syncs + c.Queries }

func (c pgCounts) minus(o pgCounts) pgCounts {
	return pgCounts{Syncs: c.Syncs - o.Syncs, Queries: c.Queries - o.Queries, Conns: c.Conns - o.Conns}
}

// startPGProxy listens on a free local port and forwards to the server of dbURL.
func startPGProxy(dbURL string) (*pgProxy, error) {
	u, err := url.Parse(dbURL)
	if err != nil || u.Host == "" {
		return nil, errors.New("the database URL has no host to proxy to")
	}
	target := u.Host
	if u.Port() == "" {
		target = net.JoinHostPort(u.Hostname(), "5432")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &pgProxy{ln: ln, target: target, open: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// url is dbURL with the proxy as its host.
func (p *pgProxy) url(dbURL string) (string, error) {
	u, err := url.Parse(dbURL)
	if err != nil {
		return "", errors.New("unparsable database URL")
	}
	u.Host = p.ln.Addr().String()
	return u.String(), nil
}

func (p *pgProxy) counts() pgCounts {
	return pgCounts{Syncs: p.syncs.Load(), Queries: p.queries.Load(), Conns: p.conns.Load()}
}

// close stops accepting, cuts every connection and waits for the copies to end.
func (p *pgProxy) close() {
	p.mu.Lock()
	p.closed = true
	for c := range p.open {
		c.Close()
	}
	p.mu.Unlock()
	p.ln.Close()
	p.wg.Wait()
}

// track records c as open, or closes it and reports false when the proxy is closing.
func (p *pgProxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		c.Close()
		return false
	}
	p.open[c] = struct{}{}
	return true
}

func (p *pgProxy) untrack(c net.Conn) {
	p.mu.Lock()
	delete(p.open, c)
	p.mu.Unlock()
	c.Close()
}

func (p *pgProxy) accept() {
	defer p.wg.Done()
	for {
		client, err := p.ln.Accept()
		if err != nil {
			return
		}
		if !p.track(client) {
			continue
		}
		p.conns.Add(1)
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			p.serve(client)
		}()
	}
}

// serve forwards one connection both ways until either side closes it.
func (p *pgProxy) serve(client net.Conn) {
	defer p.untrack(client)
	server, err := net.Dial("tcp", p.target)
	if err != nil {
		return
	}
	if !p.track(server) {
		return
	}
	defer p.untrack(server)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = io.Copy(client, server)
		client.Close() // the server hung up: so does the client's side
	}()
	_ = p.frontend(bufio.NewReaderSize(client, 32<<10), server)
	server.Close()
	<-done
}

// Startup-phase request codes (the untyped first messages of a connection).
const (
	sslRequestCode    = 80877103
	gssencRequestCode = 80877104
	cancelRequestCode = 80877102
)

// frontend copies the client's messages to w, counting them. The first message of a connection
// has no type byte (a startup packet); after an SSL or GSS encryption request whatever follows is
// copied uncounted (the bench's URLs say sslmode=disable, so pgx never asks).
//
// Messages are written through a buffer flushed whenever no more client bytes are waiting, so a
// query's Parse, Bind, Describe, Execute and Sync still reach the server as one write.
func (p *pgProxy) frontend(r *bufio.Reader, server io.Writer) error {
	w := bufio.NewWriterSize(server, 32<<10)
	var head [8]byte
	if _, err := io.ReadFull(r, head[:8]); err != nil {
		return err
	}
	n := int64(binary.BigEndian.Uint32(head[:4]))
	if n < 8 {
		return fmt.Errorf("bad startup packet length %d", n)
	}
	if _, err := w.Write(head[:8]); err != nil {
		return err
	}
	if _, err := io.CopyN(w, r, n-8); err != nil {
		return err
	}
	if err := w.Flush(); err != nil {
		return err
	}
	switch binary.BigEndian.Uint32(head[4:8]) {
	case sslRequestCode, gssencRequestCode:
		_, err := io.Copy(server, r)
		return err
	case cancelRequestCode:
		return nil
	}
	return p.messages(r, w)
}

// messages copies typed frontend messages (a type byte, then a length that includes itself).
func (p *pgProxy) messages(r *bufio.Reader, w *bufio.Writer) error {
	var head [5]byte
	for {
		if r.Buffered() == 0 {
			if err := w.Flush(); err != nil {
				return err
			}
		}
		if _, err := io.ReadFull(r, head[:]); err != nil {
			return err
		}
		n := int64(binary.BigEndian.Uint32(head[1:]))
		if n < 4 {
			return fmt.Errorf("bad message length %d", n)
		}
		switch head[0] {
		case 'S':
			p.syncs.Add(1)
		case 'Q':
			p.queries.Add(1)
		}
		if _, err := w.Write(head[:]); err != nil {
			return err
		}
		if _, err := io.CopyN(w, r, n-4); err != nil {
			return err
		}
	}
}
