package chatstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/helixhq/helix/shared/chat"
	"github.com/helixhq/helix/shared/ident"
	"github.com/helixhq/helix/shared/money"
	"github.com/helixhq/helix/shared/postgres/memorystore"
)

// Chat reads and writes conversations and their messages.
type Chat struct {
	pool *pgxpool.Pool
	now  func() time.Time
}

var _ chat.Store = (*Chat)(nil)

// NewChat returns the chat repository.
func NewChat(pool *pgxpool.Pool, now func() time.Time) *Chat {
	if now == nil {
		now = time.Now
	}
	return &Chat{pool: pool, now: now}
}

const conversationColumns = `conversation_id::text, user_id, title, archived, last_seq, created_at,
	updated_at, last_activity_at, summary, summary_through_seq, stepped_up_until`

func scanConversation(row pgx.CollectableRow) (chat.Conversation, error) {
	var c chat.Conversation
	var stepped pgtype.Timestamptz
	err := row.Scan(&c.ID, &c.UserID, &c.Title, &c.Archived, &c.LastSeq, &c.CreatedAt, &c.UpdatedAt,
		&c.LastActivityAt, &c.Summary, &c.SummaryThroughSeq, &stepped)
	c.SteppedUpUntil = stepped.Time
	return c, err
}

const messageColumns = `conversation_id::text, seq, role, content, COALESCE(client_message_id, ''),
	COALESCE(reply_to_seq, 0), COALESCE(request_id, ''), COALESCE(model_used, ''), input_tokens,
	output_tokens, cost_nano, created_at`

func scanMessage(row pgx.CollectableRow) (chat.Message, error) {
	var m chat.Message
	var role string
	var cost int64
	err := row.Scan(&m.ConversationID, &m.Seq, &role, &m.Content, &m.ClientMessageID, &m.ReplyToSeq,
		&m.RequestID, &m.Model, &m.InputTokens, &m.OutputTokens, &cost, &m.CreatedAt)
	m.Role, m.Cost = chat.Role(role), money.Nano(cost)
	return m, err
}

// CreateConversation implements chat.Store.
func (c *Chat) CreateConversation(ctx context.Context, userID, title string) (chat.Conversation, error) {
	now := c.now()
	rows, _ := c.pool.Query(ctx, `
		INSERT INTO conversations (conversation_id, user_id, title, created_at, updated_at, last_activity_at)
		VALUES ($1, $2, $3, $4, $4, $4)
		RETURNING `+conversationColumns, uuid.NewString(), userID, title, now)
	conv, err := pgx.CollectExactlyOneRow(rows, scanConversation)
	if err != nil {
		return conv, fmt.Errorf("create conversation: %w", err)
	}
	return conv, nil
}

// ListConversations implements chat.Store: keyset pagination on (last_activity_at, id).
func (c *Chat) ListConversations(ctx context.Context, userID string, p chat.Page) ([]chat.Conversation, error) {
	before := p.Before.LastActivityAt
	if before.IsZero() {
		before = time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)
	}
	beforeID := p.Before.ID
	if beforeID == "" {
		beforeID = "ffffffff-ffff-ffff-ffff-ffffffffffff"
	}
	rows, _ := c.pool.Query(ctx, `
		SELECT `+conversationColumns+` FROM conversations
		 WHERE user_id = $1 AND (archived = false OR $2)
		   AND (last_activity_at, conversation_id) < ($3, $4::uuid)
		 ORDER BY last_activity_at DESC, conversation_id DESC
		 LIMIT $5`, userID, p.IncludeArchived, before, beforeID, p.Limit)
	list, err := pgx.CollectRows(rows, scanConversation)
	if err != nil {
		return nil, fmt.Errorf("list conversations: %w", err)
	}
	return list, nil
}

// GetConversation implements chat.Store.
func (c *Chat) GetConversation(ctx context.Context, userID, id string) (chat.Conversation, error) {
	if !ident.IsUUID(id) {
		return chat.Conversation{}, chat.ErrNotFound
	}
	rows, _ := c.pool.Query(ctx, `SELECT `+conversationColumns+` FROM conversations WHERE conversation_id = $1 AND user_id = $2`, id, userID)
	conv, err := pgx.CollectExactlyOneRow(rows, scanConversation)
	if errors.Is(err, pgx.ErrNoRows) {
		return conv, chat.ErrNotFound
	}
	return conv, err
}

// UpdateConversation implements chat.Store.
func (c *Chat) UpdateConversation(ctx context.Context, userID, id string, ch chat.Change) (chat.Conversation, error) {
	if !ident.IsUUID(id) {
		return chat.Conversation{}, chat.ErrNotFound
	}
	rows, _ := c.pool.Query(ctx, `
		UPDATE conversations SET title = COALESCE($3, title), archived = COALESCE($4, archived), updated_at = $5
		 WHERE conversation_id = $1 AND user_id = $2
		RETURNING `+conversationColumns, id, userID, ch.Title, ch.Archived, c.now())
	conv, err := pgx.CollectExactlyOneRow(rows, scanConversation)
	if errors.Is(err, pgx.ErrNoRows) {
		return conv, chat.ErrNotFound
	}
	return conv, err
}

// DeleteConversation implements chat.Store: in one transaction, the insights whose every piece of
// evidence is in this conversation, then the conversation (its messages, evidence and jobs go
// with it).
func (c *Chat) DeleteConversation(ctx context.Context, userID, id string) error {
	if !ident.IsUUID(id) {
		return chat.ErrNotFound
	}
	return pgx.BeginFunc(ctx, c.pool, func(tx pgx.Tx) error {
		var found bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM conversations WHERE conversation_id = $1 AND user_id = $2 FOR UPDATE)`, id, userID).Scan(&found); err != nil {
			return err
		}
		if !found {
			return chat.ErrNotFound
		}
		if _, err := tx.Exec(ctx, `
			DELETE FROM conversation_insights i
			 WHERE i.user_id = $2
			   AND EXISTS (SELECT 1 FROM insight_evidence e WHERE e.insight_id = i.insight_id AND e.conversation_id = $1)
			   AND NOT EXISTS (SELECT 1 FROM insight_evidence e WHERE e.insight_id = i.insight_id AND e.conversation_id <> $1)`,
			id, userID); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `DELETE FROM conversations WHERE conversation_id = $1`, id)
		return err
	})
}

// Messages implements chat.Store: one statement answers both whether the session is the user's
// (no row: not found) and its messages after seq.
func (c *Chat) Messages(ctx context.Context, userID, id string, after int64, limit int) ([]chat.Message, error) {
	if !ident.IsUUID(id) {
		return nil, chat.ErrNotFound
	}
	rows, _ := c.pool.Query(ctx, `
		SELECT m.seq FROM conversations c
		  LEFT JOIN LATERAL (
		       SELECT seq FROM session_messages WHERE conversation_id = c.conversation_id AND seq > $3
		        ORDER BY seq LIMIT $4) m ON true
		 WHERE c.conversation_id = $1 AND c.user_id = $2`, id, userID, after, limit)
	seqs, err := pgx.CollectRows(rows, pgx.RowTo[*int64])
	if err != nil {
		return nil, fmt.Errorf("messages: %w", err)
	}
	if len(seqs) == 0 {
		return nil, chat.ErrNotFound
	}
	if seqs[0] == nil {
		return nil, nil
	}
	rows, _ = c.pool.Query(ctx, `SELECT `+messageColumns+` FROM session_messages
		 WHERE conversation_id = $1 AND seq > $2 ORDER BY seq LIMIT $3`, id, after, limit)
	return pgx.CollectRows(rows, scanMessage)
}

// beginSQL and the statements batched with it: Begin sends them in one round trip. The reads
// after the first see what it did: the conversation's reply_seq is the message being answered
// when the outcome is 'go' (their rows are ignored otherwise).
const (
	beginSQL = `SELECT o_outcome, COALESCE(o_seq, 0), COALESCE(o_reply_seq, 0)
		FROM helix_chat_begin($1, $2, $3, $4, $5, $6)`
	beginConversationSQL = `SELECT ` + conversationColumns + ` FROM conversations WHERE conversation_id = $1 AND user_id = $2`
	beginMessageSQL      = `SELECT ` + messageColumns + ` FROM session_messages m
		WHERE m.conversation_id = $1 AND m.seq = (SELECT reply_seq FROM conversations WHERE conversation_id = $1 AND user_id = $2)`
	// beginHistorySQL: the newest messages before the one answered whose contents fit in $3
	// bytes. Summarized turns are included while they fit: the summary stands in only for what
	// does not (the model keeps the last turns word for word right after a synthesis too).
	beginHistorySQL = `SELECT ` + messageColumns + ` FROM (
		SELECT m.*, sum(octet_length(m.content)) OVER (ORDER BY m.seq DESC) AS used
		  FROM session_messages m, conversations c
		 WHERE c.conversation_id = $1 AND c.user_id = $2 AND m.conversation_id = c.conversation_id
		   AND m.seq < c.reply_seq
		 ORDER BY m.seq DESC LIMIT 500) AS h
		WHERE used <= $3 ORDER BY seq`
	trustSQL = `SELECT trust_level::float8 FROM user_profiles WHERE user_id = $1`
)

// Begin implements chat.Store.
func (c *Chat) Begin(ctx context.Context, r chat.BeginRequest) (chat.Begun, error) {
	if !ident.IsUUID(r.ConversationID) {
		return chat.Begun{}, chat.ErrNotFound
	}
	now := c.now()
	b := &pgx.Batch{}
	b.Queue(beginSQL, r.ConversationID, r.UserID, r.ClientMessageID, r.Content, now, r.Lease)
	b.Queue(beginConversationSQL, r.ConversationID, r.UserID)
	b.Queue(beginMessageSQL, r.ConversationID, r.UserID)
	b.Queue(beginHistorySQL, r.ConversationID, r.UserID, r.HistoryBytes)
	b.Queue(memorystore.RankedInsightsSQL, memorystore.RankedInsightsArgs(r.UserID, r.Query, now, r.Insights, true)...)
	b.Queue(trustSQL, r.UserID)
	res := c.pool.SendBatch(ctx, b)
	defer res.Close()

	var out chat.Begun
	var outcome string
	if err := res.QueryRow().Scan(&outcome, &out.Seq, &out.ReplySeq); err != nil {
		return out, fmt.Errorf("begin a reply: %w", err)
	}
	out.Outcome = chat.Outcome(outcome)
	if outcome == "not_found" {
		return out, chat.ErrNotFound
	}
	rows, _ := res.Query()
	conv, err := pgx.CollectExactlyOneRow(rows, scanConversation)
	if err != nil {
		return out, fmt.Errorf("begin a reply: conversation: %w", err)
	}
	rows, _ = res.Query()
	msgs, err := pgx.CollectRows(rows, scanMessage)
	if err != nil {
		return out, fmt.Errorf("begin a reply: message: %w", err)
	}
	rows, _ = res.Query()
	history, err := pgx.CollectRows(rows, scanMessage)
	if err != nil {
		return out, fmt.Errorf("begin a reply: history: %w", err)
	}
	rows, _ = res.Query()
	insights, err := pgx.CollectRows(rows, memorystore.ScanRankedInsight)
	if err != nil {
		return out, fmt.Errorf("begin a reply: insights: %w", err)
	}
	var trust float64
	switch err := res.QueryRow().Scan(&trust); {
	case err == nil:
		out.Trust, out.HasTrust = trust, true
	case !errors.Is(err, pgx.ErrNoRows):
		return out, fmt.Errorf("begin a reply: trust: %w", err)
	}
	if out.Outcome == chat.Go && len(msgs) == 1 {
		out.Conversation, out.Message, out.History, out.Insights = conv, msgs[0], history, insights
	}
	return out, nil
}

// StoreReply implements chat.Store.
func (c *Chat) StoreReply(ctx context.Context, id string, replyTo int64, r chat.Reply, every int64) (int64, int64, error) {
	var seq, through int64
	at := r.At
	if at.IsZero() {
		at = c.now()
	}
	err := c.pool.QueryRow(ctx, `SELECT o_seq, o_enqueue_through FROM helix_chat_reply($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
		id, replyTo, r.Content, r.RequestID, r.Model, r.InputTokens, r.OutputTokens, int64(r.Cost), at, every).
		Scan(&seq, &through)
	if err != nil {
		return 0, 0, fmt.Errorf("store reply: %w", err)
	}
	return seq, through, nil
}

// Abort implements chat.Store.
func (c *Chat) Abort(ctx context.Context, id string, seq int64) error {
	// The notification wakes a resend waiting for this reply: it finds the lease free and answers
	// the message itself.
	_, err := c.pool.Exec(ctx, `
		WITH ended AS (
			UPDATE conversations SET reply_seq = NULL, reply_until = NULL
			 WHERE conversation_id = $1 AND reply_seq = $2
			RETURNING conversation_id)
		SELECT pg_notify('`+chatChannel+`', conversation_id::text || ':' || $2::text) FROM ended`, id, seq)
	return err
}

// Pair implements chat.Store.
func (c *Chat) Pair(ctx context.Context, id string, seq int64) (chat.Message, chat.Message, error) {
	rows, _ := c.pool.Query(ctx, `SELECT `+messageColumns+` FROM session_messages
		 WHERE conversation_id = $1 AND (seq = $2 OR reply_to_seq = $2) ORDER BY seq`, id, seq)
	msgs, err := pgx.CollectRows(rows, scanMessage)
	if err != nil {
		return chat.Message{}, chat.Message{}, fmt.Errorf("message pair: %w", err)
	}
	var u, a chat.Message
	for _, m := range msgs {
		if m.Seq == seq {
			u = m
		} else {
			a = m
		}
	}
	return u, a, nil
}

// SteppedUp implements chat.Store.
func (c *Chat) SteppedUp(ctx context.Context, id string, until time.Time) error {
	_, err := c.pool.Exec(ctx, `UPDATE conversations SET stepped_up_until = $2 WHERE conversation_id = $1`, id, until)
	return err
}
