// Package postgres is Helix's Postgres adapter: the pgx pool and the repositories
// that implement the domain packages' ports.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// PoolConfig tunes the pool for Lambda: one pool per cold start, a handful of connections (one
// Lambda instance serves one request at a time), and health checks so a connection the database
// or a proxy closed while the instance was frozen is replaced rather than failing a request.
type PoolConfig struct {
	URL      string
	MaxConns int32
	// ExecMode is the pgx query execution mode: "exec" (default), "simple_protocol",
	// "describe_exec", "cache_describe" or "cache_statement". "exec" and "simple_protocol" create
	// no named prepared statements, so they work behind RDS Proxy and PgBouncer transaction pooling.
	ExecMode          string
	MaxConnIdleTime   time.Duration
	MaxConnLifetime   time.Duration
	HealthCheckPeriod time.Duration
	ApplicationName   string
}

// ParseExecMode maps a configuration value to a pgx query execution mode.
func ParseExecMode(s string) (pgx.QueryExecMode, error) {
	switch s {
	case "", "exec":
		return pgx.QueryExecModeExec, nil
	case "simple_protocol":
		return pgx.QueryExecModeSimpleProtocol, nil
	case "describe_exec":
		return pgx.QueryExecModeDescribeExec, nil
	case "cache_describe":
		return pgx.QueryExecModeCacheDescribe, nil
	case "cache_statement":
		return pgx.QueryExecModeCacheStatement, nil
	}
	return 0, fmt.Errorf("unknown query exec mode %q (want exec, simple_protocol, describe_exec, cache_describe or cache_statement)", s)
}

// Open creates the pool and checks that the database answers.
func Open(ctx context.Context, c PoolConfig) (*pgxpool.Pool, error) {
	pc, err := pgxpool.ParseConfig(c.URL)
	if err != nil {
		// pgx's message can echo the URL, password included; keep it out of logs.
		return nil, errors.New("parse database URL: invalid connection string")
	}
	mode, err := ParseExecMode(c.ExecMode)
	if err != nil {
		return nil, err
	}
	pc.ConnConfig.DefaultQueryExecMode = mode
	if c.MaxConns > 0 {
		pc.MaxConns = c.MaxConns
	}
	pc.MinConns = 0
	if c.MaxConnIdleTime > 0 {
		pc.MaxConnIdleTime = c.MaxConnIdleTime
	}
	if c.MaxConnLifetime > 0 {
		pc.MaxConnLifetime = c.MaxConnLifetime
	}
	if c.HealthCheckPeriod > 0 {
		pc.HealthCheckPeriod = c.HealthCheckPeriod
	}
	if c.ApplicationName != "" {
		pc.ConnConfig.RuntimeParams["application_name"] = c.ApplicationName
	}
	// pgxpool pings a connection that sat idle for over a second before handing it out, which
	// catches connections that died while a Lambda instance was frozen; bound that ping so a
	// black-holed connection cannot eat the request's deadline.
	pc.PingTimeout = 2 * time.Second
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, fmt.Errorf("create pool: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("database unreachable: %w", err)
	}
	return pool, nil
}
