-- +goose Up
-- Chat sessions and messages, the memory learned from them (seven layers, with evidence), the
-- synthesis jobs that learn it, and the creator step-up attempts. Only new tables and functions:
-- the previous release keeps working.

CREATE TABLE conversations (
    conversation_id     UUID PRIMARY KEY,
    user_id             TEXT NOT NULL,
    title               TEXT NOT NULL DEFAULT '',
    archived            BOOLEAN NOT NULL DEFAULT false,
    created_at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_activity_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- the seq of the newest message (messages are numbered 1, 2, ... per conversation)
    last_seq            BIGINT NOT NULL DEFAULT 0,
    -- a reply is being produced for the user message reply_seq until reply_until (a lease, so a
    -- killed instance cannot block the conversation for longer)
    reply_seq           BIGINT,
    reply_until         TIMESTAMPTZ,
    -- memory: messages up to synthesized_seq are learned from; a job up to enqueued_seq was sent
    -- at enqueued_at; a synthesis run holds the conversation until synthesis_until
    synthesized_seq     BIGINT NOT NULL DEFAULT 0,
    enqueued_seq        BIGINT NOT NULL DEFAULT 0,
    enqueued_at         TIMESTAMPTZ,
    synthesis_until     TIMESTAMPTZ,
    -- what the model sees of the turns older than its history budget
    summary             TEXT NOT NULL DEFAULT '',
    summary_through_seq BIGINT NOT NULL DEFAULT 0,
    -- the creator's verified step-up lasts until then in this conversation
    stepped_up_until    TIMESTAMPTZ
);
-- The session list: a user's conversations, newest activity first (the cursor pages by it).
CREATE INDEX conversations_user_activity ON conversations (user_id, last_activity_at DESC, conversation_id DESC);
-- The idle-synthesis sweep: conversations with messages not yet learned from.
CREATE INDEX conversations_unsynthesized ON conversations (last_activity_at) WHERE last_seq > synthesized_seq;

CREATE TABLE session_messages (
    conversation_id   UUID NOT NULL REFERENCES conversations (conversation_id) ON DELETE CASCADE,
    seq               BIGINT NOT NULL,
    role              TEXT NOT NULL CHECK (role IN ('user', 'assistant')),
    content           TEXT NOT NULL,
    -- the client's id of a user message: a resend with it finds the original
    client_message_id TEXT,
    -- an assistant message: the user message it answers, and what producing it cost
    reply_to_seq      BIGINT,
    request_id        TEXT,
    model_used        TEXT,
    input_tokens      INTEGER NOT NULL DEFAULT 0,
    output_tokens     INTEGER NOT NULL DEFAULT 0,
    cost_nano         BIGINT NOT NULL DEFAULT 0 CHECK (cost_nano >= 0),
    created_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (conversation_id, seq)
);
CREATE UNIQUE INDEX session_messages_client_id ON session_messages (conversation_id, client_message_id)
 WHERE client_message_id IS NOT NULL;
CREATE UNIQUE INDEX session_messages_reply ON session_messages (conversation_id, reply_to_seq)
 WHERE reply_to_seq IS NOT NULL;

CREATE TABLE conversation_insights (
    insight_id          UUID PRIMARY KEY,
    user_id             TEXT NOT NULL,
    layer               SMALLINT NOT NULL CHECK (layer BETWEEN 1 AND 7),
    layer_name          TEXT NOT NULL,
    text                TEXT NOT NULL,
    confidence          REAL NOT NULL CHECK (confidence BETWEEN 0 AND 1),
    reinforcement_count INTEGER NOT NULL DEFAULT 0,
    valid_from          TIMESTAMPTZ NOT NULL,
    last_reinforced_at  TIMESTAMPTZ NOT NULL,
    invalidated_at      TIMESTAMPTZ,
    superseded_by       UUID REFERENCES conversation_insights (insight_id) ON DELETE SET NULL,
    created_at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    search              TSVECTOR GENERATED ALWAYS AS (to_tsvector('english', text)) STORED
);
CREATE INDEX insights_user_active ON conversation_insights (user_id, layer) WHERE invalidated_at IS NULL;
CREATE INDEX insights_search ON conversation_insights USING gin (search);

-- The messages an insight rests on. Deleting a conversation deletes its evidence; insights left
-- without any are deleted with it (in the same transaction, by the application).
CREATE TABLE insight_evidence (
    insight_id      UUID NOT NULL REFERENCES conversation_insights (insight_id) ON DELETE CASCADE,
    conversation_id UUID NOT NULL REFERENCES conversations (conversation_id) ON DELETE CASCADE,
    seq             BIGINT NOT NULL,
    kind            TEXT NOT NULL CHECK (kind IN ('add', 'reinforce', 'update', 'invalidate')),
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (insight_id, conversation_id, seq)
);
CREATE INDEX insight_evidence_conversation ON insight_evidence (conversation_id);

-- One row per synthesis job run to its end: the idempotency record (a redelivered job finds it
-- and writes nothing), and what the run did (counts only, never memory content).
CREATE TABLE synthesis_jobs (
    conversation_id UUID NOT NULL REFERENCES conversations (conversation_id) ON DELETE CASCADE,
    through_seq     BIGINT NOT NULL,
    user_id         TEXT NOT NULL,
    -- done: learned from; skipped: not run (reason: disabled, over_budget, nothing_new, ...),
    -- which a later delivery of the same job may still turn into done
    status          TEXT NOT NULL CHECK (status IN ('done', 'skipped')),
    reason          TEXT NOT NULL DEFAULT '',
    messages        INTEGER NOT NULL DEFAULT 0,
    added           INTEGER NOT NULL DEFAULT 0,
    reinforced      INTEGER NOT NULL DEFAULT 0,
    updated         INTEGER NOT NULL DEFAULT 0,
    invalidated     INTEGER NOT NULL DEFAULT 0,
    request_id      TEXT,
    cost_nano       BIGINT NOT NULL DEFAULT 0,
    finished_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (conversation_id, through_seq)
);

-- Every creator step-up attempt, for audit; the count of recent failures locks a user out.
CREATE TABLE stepup_attempts (
    id              BIGSERIAL PRIMARY KEY,
    user_id         TEXT NOT NULL,
    conversation_id UUID,
    success         BOOLEAN NOT NULL,
    locked          BOOLEAN NOT NULL DEFAULT false,
    attempted_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX stepup_attempts_user ON stepup_attempts (user_id, attempted_at DESC);

-- +goose StatementBegin
-- helix_chat_begin starts a reply to a user message in one round trip, and decides what a send
-- is: 'go' (this caller produces the reply to user message o_seq, new or resent without a reply
-- yet; it holds the conversation's reply lease), 'replied' (the client_message_id was answered
-- already: o_seq and o_reply_seq are the pair), 'pending' (its reply is being produced by another
-- caller right now), 'busy' (another message's reply is being produced), 'not_found'. The
-- conversation row's lock orders concurrent sends; the unique index on client_message_id keeps a
-- message from being stored twice however they race.
CREATE FUNCTION helix_chat_begin(p_conversation_id uuid, p_user_id text, p_client_message_id text,
                                 p_content text, p_now timestamptz, p_lease interval)
RETURNS TABLE (o_outcome text, o_seq bigint, o_reply_seq bigint)
LANGUAGE plpgsql AS $$
DECLARE
    v_conv conversations%ROWTYPE;
    v_seq bigint;
    v_reply bigint;
BEGIN
    SELECT * INTO v_conv FROM conversations
     WHERE conversation_id = p_conversation_id AND user_id = p_user_id
       FOR UPDATE;
    IF NOT FOUND THEN
        RETURN QUERY SELECT 'not_found'::text, NULL::bigint, NULL::bigint;
        RETURN;
    END IF;
    -- Under the row lock, a message stored by a concurrent send is visible to this statement.
    SELECT m.seq INTO v_seq FROM session_messages m
     WHERE m.conversation_id = p_conversation_id AND m.client_message_id = p_client_message_id;
    IF FOUND THEN
        SELECT r.seq INTO v_reply FROM session_messages r
         WHERE r.conversation_id = p_conversation_id AND r.reply_to_seq = v_seq;
        IF FOUND THEN
            RETURN QUERY SELECT 'replied'::text, v_seq, v_reply;
            RETURN;
        END IF;
        IF v_conv.reply_until > p_now THEN
            RETURN QUERY SELECT CASE WHEN v_conv.reply_seq = v_seq THEN 'pending' ELSE 'busy' END, v_seq, NULL::bigint;
            RETURN;
        END IF;
        -- Stored but never answered (the reply failed): answer it now.
        UPDATE conversations SET reply_seq = v_seq, reply_until = p_now + p_lease
         WHERE conversation_id = p_conversation_id;
        RETURN QUERY SELECT 'go'::text, v_seq, NULL::bigint;
        RETURN;
    END IF;
    IF v_conv.reply_until > p_now THEN
        RETURN QUERY SELECT 'busy'::text, NULL::bigint, NULL::bigint;
        RETURN;
    END IF;
    v_seq := v_conv.last_seq + 1;
    INSERT INTO session_messages (conversation_id, seq, role, content, client_message_id, created_at)
    VALUES (p_conversation_id, v_seq, 'user', p_content, p_client_message_id, p_now);
    UPDATE conversations
       SET last_seq = v_seq, reply_seq = v_seq, reply_until = p_now + p_lease,
           last_activity_at = p_now, updated_at = p_now
     WHERE conversation_id = p_conversation_id;
    PERFORM pg_notify('helix_chat', p_conversation_id::text || ':' || v_seq);
    RETURN QUERY SELECT 'go'::text, v_seq, NULL::bigint;
END
$$;
-- +goose StatementEnd

-- +goose StatementBegin
-- helix_chat_reply stores the assistant's reply to user message p_reply_to, ends the reply lease,
-- and says whether the conversation now has p_every or more user messages that no synthesis job
-- was sent for (then it records the job as sent: the caller enqueues it after the commit).
CREATE FUNCTION helix_chat_reply(p_conversation_id uuid, p_reply_to bigint, p_content text,
                                 p_request_id text, p_model text, p_input_tokens bigint,
                                 p_output_tokens bigint, p_cost bigint, p_now timestamptz,
                                 p_every bigint)
RETURNS TABLE (o_seq bigint, o_enqueue_through bigint)
LANGUAGE plpgsql AS $$
DECLARE
    v_conv conversations%ROWTYPE;
    v_seq bigint;
    v_waiting bigint;
    v_enqueue boolean;
BEGIN
    SELECT * INTO v_conv FROM conversations WHERE conversation_id = p_conversation_id FOR UPDATE;
    v_seq := v_conv.last_seq + 1;
    INSERT INTO session_messages (conversation_id, seq, role, content, reply_to_seq, request_id,
                                  model_used, input_tokens, output_tokens, cost_nano, created_at)
    VALUES (p_conversation_id, v_seq, 'assistant', p_content, p_reply_to, p_request_id,
            NULLIF(p_model, ''), p_input_tokens, p_output_tokens, p_cost, p_now);
    SELECT count(*) INTO v_waiting FROM session_messages m
     WHERE m.conversation_id = p_conversation_id AND m.role = 'user'
       AND m.seq > GREATEST(v_conv.enqueued_seq, v_conv.synthesized_seq);
    v_enqueue := v_waiting >= p_every;
    UPDATE conversations
       SET last_seq = v_seq, last_activity_at = p_now, updated_at = p_now,
           reply_seq = NULL, reply_until = NULL,
           enqueued_seq = CASE WHEN v_enqueue THEN v_seq ELSE enqueued_seq END,
           enqueued_at  = CASE WHEN v_enqueue THEN p_now ELSE enqueued_at END
     WHERE conversation_id = p_conversation_id;
    PERFORM pg_notify('helix_chat', p_conversation_id::text || ':' || v_seq);
    RETURN QUERY SELECT v_seq, CASE WHEN v_enqueue THEN v_seq ELSE 0 END;
END
$$;
-- +goose StatementEnd

-- +goose Down
DROP FUNCTION helix_chat_reply(uuid, bigint, text, text, text, bigint, bigint, bigint, timestamptz, bigint);
DROP FUNCTION helix_chat_begin(uuid, text, text, text, timestamptz, interval);
DROP TABLE stepup_attempts;
DROP TABLE synthesis_jobs;
DROP TABLE insight_evidence;
DROP TABLE conversation_insights;
DROP TABLE session_messages;
DROP TABLE conversations;
