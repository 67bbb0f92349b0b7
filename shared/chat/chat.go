// Package chat is Helix's conversations: sessions a user talks to Helix in from any device,
// their numbered messages, and the send use case that stores a message, answers it through the
// execution pipeline as the chat_message operation (with a system prompt built from the user's
// memory), stores the reply, and hands finished stretches of conversation to synthesis.
package chat

import (
	"context"
	"time"

	"github.com/helixhq/helix/shared/fault"
	"github.com/helixhq/helix/shared/memory"
	"github.com/helixhq/helix/shared/money"
)

// Role of a message's author.
type Role string

// Roles.
const (
	User      Role = "user"
	Assistant Role = "assistant"
)

// Conversation is a chat session.
type Conversation struct {
	ID             string
	UserID         string
	Title          string
	Archived       bool
	LastSeq        int64
	CreatedAt      time.Time
	UpdatedAt      time.Time
	LastActivityAt time.Time
	// Summary covers the messages up to SummaryThroughSeq, for the turns older than a model's
	// history budget.
	Summary           string
	SummaryThroughSeq int64
	// SteppedUpUntil is when the creator's verified step-up in this conversation ends.
	SteppedUpUntil time.Time
}

// Message is one message of a conversation, numbered from 1.
type Message struct {
	ConversationID string
	Seq            int64
	Role           Role
	Content        string
	// ClientMessageID is the client's id of a user message (its resends find the original).
	ClientMessageID string
	// An assistant message: the user message it answers and what producing it cost.
	ReplyToSeq   int64
	RequestID    string
	Model        string
	InputTokens  int64
	OutputTokens int64
	Cost         money.Nano
	CreatedAt    time.Time
}

// Exchange is a user message and the reply to it.
type Exchange struct {
	User, Assistant Message
	// Replayed is true when the user message was sent before (a resend): nothing new was charged.
	Replayed bool
}

// Errors of the chat use cases.
var (
	// ErrNotFound also covers another user's session: ids of others are not revealed.
	ErrNotFound = fault.New(fault.NotFound, "no such session")
	// ErrReplyInProgress: the session's previous reply is still being produced.
	ErrReplyInProgress = fault.New(fault.ReplyInProgress, "a reply in this session is still being produced; send this message once it has arrived")
)

// Outcome of Begin: what a send is.
type Outcome string

// Outcomes of Begin.
const (
	// Go: this caller produces the reply to the user message (new, or resent with no reply yet).
	Go Outcome = "go"
	// Replied: the message was sent and answered before; Begun names the pair.
	Replied Outcome = "replied"
	// Pending: the message's reply is being produced by another caller right now.
	Pending Outcome = "pending"
	// Busy: another message's reply is being produced in this session.
	Busy Outcome = "busy"
)

// BeginRequest is a send, as Begin takes it.
type BeginRequest struct {
	UserID          string
	ConversationID  string
	ClientMessageID string
	Content         string // as stored (a step-up message is stored redacted)
	Lease           time.Duration
	// What a reply is made from, read in the same round trip: the history that fits in
	// HistoryBytes, and up to Insights insights ranked for Query (the message as sent).
	HistoryBytes int
	Insights     int
	Query        string
}

// Begun is what Begin found or did.
type Begun struct {
	Outcome  Outcome
	Seq      int64 // the user message
	ReplySeq int64 // its reply, when Replied

	// With Go, what the reply is made from.
	Conversation Conversation
	Message      Message   // the stored user message (a resend answers the original text)
	History      []Message // the turns before it that fit the budget, oldest first
	Insights     []memory.Insight
	Trust        float64 // the user's stored trust level, when HasTrust
	HasTrust     bool
}

// Reply is the assistant message to store.
type Reply struct {
	Content      string
	RequestID    string
	Model        string
	InputTokens  int64
	OutputTokens int64
	Cost         money.Nano
	// At is when the reply is stored (its created_at); zero: the store's clock.
	At time.Time
}

// Page asks for a page of a user's sessions, newest activity first.
type Page struct {
	// Before continues a listing: the sessions after this cursor (see Cursor).
	Before          Cursor
	Limit           int
	IncludeArchived bool
}

// Cursor is a position in a session listing: the last session of the previous page.
type Cursor struct {
	LastActivityAt time.Time
	ID             string
}

// Change edits a session; nil fields are left as they are.
type Change struct {
	Title    *string
	Archived *bool
}

// Store persists conversations. Every method that takes a user id acts only on that user's
// sessions, and answers ErrNotFound for anyone else's.
type Store interface {
	CreateConversation(ctx context.Context, userID, title string) (Conversation, error)
	ListConversations(ctx context.Context, userID string, p Page) ([]Conversation, error)
	GetConversation(ctx context.Context, userID, id string) (Conversation, error)
	UpdateConversation(ctx context.Context, userID, id string, c Change) (Conversation, error)
	// DeleteConversation erases the session, its messages, and every insight whose only
	// evidence is in it.
	DeleteConversation(ctx context.Context, userID, id string) error
	// Messages lists the session's messages after seq, oldest first.
	Messages(ctx context.Context, userID, id string, after int64, limit int) ([]Message, error)

	// Begin stores a user message (or finds it, by client message id) and takes the session's
	// reply lease for it (see Outcome), and with Go reads what the reply is made from, all in one
	// round trip.
	Begin(ctx context.Context, r BeginRequest) (Begun, error)
	// StoreReply stores the reply to user message replyTo, ends the lease, and returns the
	// reply's seq and, when every or more messages await synthesis, the seq to synthesize
	// through (0 otherwise; the job counts as sent).
	StoreReply(ctx context.Context, id string, replyTo int64, r Reply, every int64) (seq, synthesizeThrough int64, err error)
	// Abort ends the lease a failed reply held, so the message can be sent again.
	Abort(ctx context.Context, id string, seq int64) error
	// Pair returns user message seq and its reply (a zero Message when there is none yet).
	Pair(ctx context.Context, id string, seq int64) (Message, Message, error)
	// SteppedUp records the creator's verified step-up in the session until then.
	SteppedUp(ctx context.Context, id string, until time.Time) error
}

// Notifier tells waiting readers that a session has new messages (Postgres LISTEN/NOTIFY across
// instances; one shared connection per process, not a query per waiter).
type Notifier interface {
	// Subscribe returns a channel that receives when the session gets a new message, and the
	// function that ends the subscription.
	Subscribe(ctx context.Context, conversationID string) (<-chan struct{}, func(), error)
}
