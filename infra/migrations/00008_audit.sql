-- +goose Up
-- The audit log: events waiting to be sequenced, the hash-chained entries, the stored hashes of
-- the RFC 6962 Merkle tree over them, signed checkpoints; the Discord outbox; the deployments
-- seen. Only new tables, a new index and a trigger that inserts into a new table: the previous
-- release keeps working.

-- Events committed with the change that caused them, not yet in the chain. The hot path only
-- inserts here; one integrator at a time (an advisory lock) moves them into audit_entries in
-- batches, oldest id first.
CREATE TABLE audit_pending (
    id         BIGSERIAL PRIMARY KEY,
    created_at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(),
    kind       TEXT NOT NULL,
    actor      TEXT NOT NULL DEFAULT '',
    -- JSON text, hashed byte for byte as stored (never re-encoded)
    payload    TEXT NOT NULL
);

-- The chain: entry seq links to entry seq-1 by prev_hash (entry 0 to the genesis value), and
-- hash = SHA-256 of the entry's canonical encoding (see shared/auditlog).
CREATE TABLE audit_entries (
    seq          BIGINT PRIMARY KEY CHECK (seq >= 0),
    prev_hash    BYTEA NOT NULL CHECK (octet_length(prev_hash) = 32),
    hash         BYTEA NOT NULL CHECK (octet_length(hash) = 32),
    created_at   TIMESTAMPTZ NOT NULL,
    kind         TEXT NOT NULL,
    actor        TEXT NOT NULL,
    payload      TEXT NOT NULL,
    sequenced_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- The Merkle tree: every hash golang.org/x/mod/sumdb/tlog stores, by its storage index.
CREATE TABLE audit_tree_hashes (
    idx  BIGINT PRIMARY KEY,
    hash BYTEA NOT NULL CHECK (octet_length(hash) = 32)
);

-- Checkpoints (tree size, root, time) as signed notes, the text posted to #helix-hash-chain.
CREATE TABLE audit_checkpoints (
    id         BIGSERIAL PRIMARY KEY,
    size       BIGINT NOT NULL,
    root       BYTEA NOT NULL CHECK (octet_length(root) = 32),
    signed     TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX audit_checkpoints_size ON audit_checkpoints (size);

-- Discord messages to deliver, in id order per channel. Never deleted: delivered ones keep
-- delivered_at, ones that failed too often dead_at.
CREATE TABLE discord_outbox (
    id              BIGSERIAL PRIMARY KEY,
    channel         TEXT NOT NULL,
    kind            TEXT NOT NULL,
    payload         JSONB NOT NULL,
    audit_seq       BIGINT,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_error      TEXT NOT NULL DEFAULT '',
    delivered_at    TIMESTAMPTZ,
    dead_at         TIMESTAMPTZ
);
CREATE INDEX discord_outbox_undelivered ON discord_outbox (channel, id) WHERE delivered_at IS NULL AND dead_at IS NULL;
-- The last digest's window.
CREATE INDEX discord_outbox_kind ON discord_outbox (kind, id);

-- A channel whose webhook answered 404 is gone: nothing is sent to it until an operator sets
-- a new webhook (a deployment with another URL clears it).
CREATE TABLE discord_channels (
    channel      TEXT PRIMARY KEY,
    webhook_hash TEXT NOT NULL,
    gone_at      TIMESTAMPTZ,
    gone_reason  TEXT NOT NULL DEFAULT ''
);

-- The first cold start of a function's version is a deployment.
CREATE TABLE deployments_seen (
    function      TEXT NOT NULL,
    version       TEXT NOT NULL,
    first_seen_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (function, version)
);

-- The heartbeat and the digest count the last minute's calls.
CREATE INDEX idx_ai_ops_created ON ai_operation_log (created_at);

-- +goose StatementBegin
-- Every executed operation is an audit event, in the transaction that logs it: a summary, never
-- prompt or reply text.
CREATE FUNCTION helix_audit_operation() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO audit_pending (created_at, kind, actor, payload)
    VALUES (NEW.created_at, 'operation', NEW.user_id, jsonb_build_object(
        'request_id', NEW.request_id, 'operation_id', NEW.operation_id, 'model', NEW.model_used,
        'provider', NEW.provider, 'input_tokens', NEW.input_tokens, 'output_tokens', NEW.output_tokens,
        'cached_input_tokens', NEW.cached_input_tokens, 'reasoning_tokens', NEW.reasoning_tokens,
        'cache_write_tokens', NEW.cache_write_tokens, 'cache_write_1h_tokens', NEW.cache_write_1h_tokens,
        'cost_nano', NEW.cost_nano, 'latency_ms', NEW.latency_ms, 'success', NEW.success,
        'error_code', NEW.error_code, 'fallback_used', NEW.fallback_used)::text);
    RETURN NULL;
END
$$;
-- +goose StatementEnd
CREATE TRIGGER helix_audit_operation AFTER INSERT ON ai_operation_log
    FOR EACH ROW EXECUTE FUNCTION helix_audit_operation();

-- +goose Down
DROP TRIGGER helix_audit_operation ON ai_operation_log;
DROP FUNCTION helix_audit_operation();
DROP INDEX idx_ai_ops_created;
DROP TABLE deployments_seen;
DROP TABLE discord_channels;
DROP TABLE discord_outbox;
DROP TABLE audit_checkpoints;
DROP TABLE audit_tree_hashes;
DROP TABLE audit_entries;
DROP TABLE audit_pending;
