-- +goose Up
-- Only new tables: the previous release keeps working.

-- Each audit minute's outcome, step by step. The heartbeat is appended partway through a minute,
-- so the steps after it (sequencing it, the checkpoint, the digest, delivery) are reported by the
-- next minute's heartbeat, read from here: durable across cold starts. Kept 7 days.
CREATE TABLE audit_runs (
    id          BIGSERIAL PRIMARY KEY,
    started_at  TIMESTAMPTZ NOT NULL,
    finished_at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(),
    steps       JSONB NOT NULL
);

-- Who delivers a Discord channel now: a lease rather than a session advisory lock, so the seven
-- channels are delivered side by side (one hanging webhook holds up only its own channel)
-- without a connection held per channel. A run that dies loses its leases when they expire.
CREATE TABLE discord_leases (
    channel TEXT PRIMARY KEY,
    holder  TEXT NOT NULL,
    until   TIMESTAMPTZ NOT NULL
);

-- +goose Down
DROP TABLE discord_leases;
DROP TABLE audit_runs;
