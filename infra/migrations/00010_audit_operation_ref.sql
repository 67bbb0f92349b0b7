-- +goose Up
-- An executed operation's audit event names its ai_operation_log row instead of carrying a
-- copy of it: the hot path's insert shrinks to a few columns (no JSON built in Postgres, a
-- smaller row and less WAL), and the integrator builds the payload from the row when it
-- sequences the event, in the audit function. The log row is immutable, so the entry says what
-- the call committed; a row deleted before it was sequenced is recorded as missing. Other
-- events keep their payload.
ALTER TABLE audit_pending ADD COLUMN op_id BIGINT, ALTER COLUMN payload DROP NOT NULL;
ALTER TABLE audit_pending ADD CONSTRAINT audit_pending_payload_or_op CHECK (payload IS NOT NULL OR op_id IS NOT NULL);

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION helix_audit_operation() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO audit_pending (created_at, kind, actor, op_id)
    VALUES (NEW.created_at, 'operation', NEW.user_id, NEW.id);
    RETURN NULL;
END
$$;
-- +goose StatementEnd

-- +goose Down
-- Events still waiting get their payload back, as the previous integrator expects it.
UPDATE audit_pending p SET payload = jsonb_build_object(
        'request_id', l.request_id, 'operation_id', l.operation_id, 'model', l.model_used,
        'provider', l.provider, 'input_tokens', l.input_tokens, 'output_tokens', l.output_tokens,
        'cached_input_tokens', l.cached_input_tokens, 'reasoning_tokens', l.reasoning_tokens,
        'cache_write_tokens', l.cache_write_tokens, 'cache_write_1h_tokens', l.cache_write_1h_tokens,
        'cost_nano', l.cost_nano, 'latency_ms', l.latency_ms, 'success', l.success,
        'error_code', l.error_code, 'fallback_used', l.fallback_used)::text
  FROM ai_operation_log l WHERE p.op_id = l.id AND p.payload IS NULL;
DELETE FROM audit_pending WHERE payload IS NULL;
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION helix_audit_operation() RETURNS trigger
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
ALTER TABLE audit_pending DROP CONSTRAINT audit_pending_payload_or_op;
ALTER TABLE audit_pending DROP COLUMN op_id, ALTER COLUMN payload SET NOT NULL;
