// Package chatapi is the HTTP API of the chat function: chat sessions and their messages (sent,
// paged, waited for across devices), and the user's memory (listed, exported, erased). A user
// only ever reaches their own sessions and insights; anyone else's answer 404, as ids that do not
// exist do.
package chatapi

import (
	"context"
	"encoding/base64"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/helixhq/helix/shared/auth"
	"github.com/helixhq/helix/shared/chat"
	"github.com/helixhq/helix/shared/fault"
	"github.com/helixhq/helix/shared/httpapi"
	"github.com/helixhq/helix/shared/httpapi/execapi"
	"github.com/helixhq/helix/shared/ident"
	"github.com/helixhq/helix/shared/memory"
	"github.com/helixhq/helix/shared/money"
)

// Chat is the chat use cases and session store the API calls.
type Chat interface {
	Send(ctx context.Context, s chat.Send) (chat.Exchange, error)
	Wait(ctx context.Context, userID, conversationID string, after int64, limit int, wait time.Duration) ([]chat.Message, error)
}

// Memory is what the memory endpoints need.
type Memory interface {
	Insights(ctx context.Context, userID string, l memory.Listing) ([]memory.Insight, error)
	DeleteInsight(ctx context.Context, userID, id string) error
	Forget(ctx context.Context, userID string) (int64, error)
	Export(ctx context.Context, userID string) ([]memory.Insight, map[string][]memory.ExportedEvidence, error)
}

// Deps are what the chat API needs.
type Deps struct {
	Chat     Chat
	Sessions chat.Store
	Memory   Memory
	// MaxWait bounds ?wait= (20 s: under API Gateway's 30 s and the function's timeout).
	MaxWait time.Duration
}

// Limits on what clients ask for.
const (
	maxTitle        = 200
	defaultPage     = 20
	maxPage         = 100
	defaultMessages = 50
	maxMessages     = 200
)

// Register adds the chat function's endpoints to s.
func Register(s *httpapi.Server, d Deps) {
	if d.MaxWait <= 0 {
		d.MaxWait = 20 * time.Second
	}
	h := &handlers{Deps: d}
	s.Handle("POST /chat/sessions", h.create)
	s.Handle("GET /chat/sessions", h.list)
	s.Handle("GET /chat/sessions/{id}", h.get)
	s.Handle("PATCH /chat/sessions/{id}", h.update)
	s.Handle("DELETE /chat/sessions/{id}", h.delete)
	s.Handle("POST /chat/sessions/{id}/messages", h.send)
	s.Handle("GET /chat/sessions/{id}/messages", h.messages)
	s.Handle("GET /me/insights", h.insights)
	s.Handle("DELETE /me/insights/{id}", h.deleteInsight)
	s.Handle("DELETE /me/memory", h.forget)
	s.Handle("GET /me/memory/export", h.export)
}

type handlers struct{ Deps }

// SessionView is a session as the API shows it.
type SessionView struct {
	ID             string    `json:"id"`
	Title          string    `json:"title"`
	Archived       bool      `json:"archived"`
	LastSeq        int64     `json:"last_seq"`
	CreatedAt      time.Time `json:"created_at"`
	UpdatedAt      time.Time `json:"updated_at"`
	LastActivityAt time.Time `json:"last_activity_at"`
}

func sessionView(c chat.Conversation) SessionView {
	return SessionView{ID: c.ID, Title: c.Title, Archived: c.Archived, LastSeq: c.LastSeq,
		CreatedAt: c.CreatedAt, UpdatedAt: c.UpdatedAt, LastActivityAt: c.LastActivityAt}
}

// MessageView is a message as the API shows it.
type MessageView struct {
	Seq             int64      `json:"seq"`
	Role            string     `json:"role"`
	Content         string     `json:"content"`
	ClientMessageID string     `json:"client_message_id,omitempty"`
	ReplyToSeq      int64      `json:"reply_to_seq,omitempty"`
	Model           string     `json:"model,omitempty"`
	InputTokens     int64      `json:"input_tokens,omitempty"`
	OutputTokens    int64      `json:"output_tokens,omitempty"`
	CostUSD         money.Nano `json:"cost_usd"`
	RequestID       string     `json:"request_id,omitempty"`
	CreatedAt       time.Time  `json:"created_at"`
}

func messageView(m chat.Message) MessageView {
	return MessageView{Seq: m.Seq, Role: string(m.Role), Content: m.Content, ClientMessageID: m.ClientMessageID,
		ReplyToSeq: m.ReplyToSeq, Model: m.Model, InputTokens: m.InputTokens, OutputTokens: m.OutputTokens,
		CostUSD: m.Cost, RequestID: m.RequestID, CreatedAt: m.CreatedAt}
}

// SessionCreate is the body of POST /chat/sessions.
type SessionCreate struct {
	Title string `json:"title"`
}

func checkTitle(t string) (string, error) {
	t = strings.TrimSpace(t)
	if n := utf8.RuneCountInString(t); n > maxTitle {
		return "", fault.Errorf(fault.InvalidField, "title must be at most %d characters, got %d", maxTitle, n)
	}
	if strings.ContainsRune(t, 0) {
		return "", fault.New(fault.InvalidField, "title must not contain NUL")
	}
	return t, nil
}

func (h *handlers) create(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	var body SessionCreate
	if err := httpapi.DecodeJSON(r, &body); err != nil {
		// Every field is optional, so no body at all is a session without a title.
		if fe, ok := fault.From(err); !ok || fe.Code != fault.EmptyBody {
			return err
		}
	}
	title, err := checkTitle(body.Title)
	if err != nil {
		return err
	}
	c, err := h.Sessions.CreateConversation(r.Context(), p.UserID, title)
	if err != nil {
		return err
	}
	httpapi.WriteJSON(w, http.StatusCreated, sessionView(c))
	return nil
}

// sessionID is the {id} of a session path: anything that is not a UUID names no session.
func sessionID(r *http.Request) (string, error) {
	id, err := httpapi.PathID(r, "id")
	if err != nil {
		return "", err
	}
	if !ident.IsUUID(id) {
		return "", chat.ErrNotFound
	}
	return id, nil
}

// intParam reads an integer query parameter in [min, max]; def when absent.
func intParam(r *http.Request, name string, def, min, max int64) (int64, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < min || n > max {
		return 0, fault.Errorf(fault.InvalidField, "%s must be an integer from %d to %d", name, min, max)
	}
	return n, nil
}

func boolParam(r *http.Request, name string) (bool, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, fault.Errorf(fault.InvalidField, "%s must be true or false", name)
	}
	return b, nil
}

// cursor encodes a page's position: opaque to clients.
func encodeCursor(c chat.Cursor) string {
	return base64.RawURLEncoding.EncodeToString([]byte(c.LastActivityAt.UTC().Format(time.RFC3339Nano) + "|" + c.ID))
}

func decodeCursor(s string) (chat.Cursor, error) {
	bad := fault.New(fault.InvalidField, "cursor is not one this API gave out")
	raw, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return chat.Cursor{}, bad
	}
	at, id, ok := strings.Cut(string(raw), "|")
	t, err := time.Parse(time.RFC3339Nano, at)
	if !ok || err != nil || !ident.IsUUID(id) {
		return chat.Cursor{}, bad
	}
	return chat.Cursor{LastActivityAt: t, ID: id}, nil
}

// SessionList is a page of sessions; next_cursor continues it ("" at the end).
type SessionList struct {
	Sessions   []SessionView `json:"sessions"`
	NextCursor string        `json:"next_cursor,omitempty"`
}

func (h *handlers) list(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	limit, err := intParam(r, "limit", defaultPage, 1, maxPage)
	if err != nil {
		return err
	}
	archived, err := boolParam(r, "include_archived")
	if err != nil {
		return err
	}
	page := chat.Page{Limit: int(limit) + 1, IncludeArchived: archived}
	if c := r.URL.Query().Get("cursor"); c != "" {
		if page.Before, err = decodeCursor(c); err != nil {
			return err
		}
	}
	list, err := h.Sessions.ListConversations(r.Context(), p.UserID, page)
	if err != nil {
		return err
	}
	out := SessionList{Sessions: []SessionView{}}
	for n, c := range list {
		if n == int(limit) {
			last := list[n-1]
			out.NextCursor = encodeCursor(chat.Cursor{LastActivityAt: last.LastActivityAt, ID: last.ID})
			break
		}
		out.Sessions = append(out.Sessions, sessionView(c))
	}
	httpapi.WriteJSON(w, http.StatusOK, out)
	return nil
}

func (h *handlers) get(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	id, err := sessionID(r)
	if err != nil {
		return err
	}
	c, err := h.Sessions.GetConversation(r.Context(), p.UserID, id)
	if err != nil {
		return err
	}
	httpapi.WriteJSON(w, http.StatusOK, sessionView(c))
	return nil
}

// SessionUpdate is the body of PATCH /chat/sessions/{id}.
type SessionUpdate struct {
	Title    *string `json:"title"`
	Archived *bool   `json:"archived"`
}

func (h *handlers) update(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	id, err := sessionID(r)
	if err != nil {
		return err
	}
	var body SessionUpdate
	if err := httpapi.DecodeJSON(r, &body); err != nil {
		return err
	}
	if body.Title == nil && body.Archived == nil {
		return fault.New(fault.MissingField, "send title, archived or both")
	}
	if body.Title != nil {
		t, err := checkTitle(*body.Title)
		if err != nil {
			return err
		}
		body.Title = &t
	}
	c, err := h.Sessions.UpdateConversation(r.Context(), p.UserID, id, chat.Change{Title: body.Title, Archived: body.Archived})
	if err != nil {
		return err
	}
	httpapi.WriteJSON(w, http.StatusOK, sessionView(c))
	return nil
}

func (h *handlers) delete(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	id, err := sessionID(r)
	if err != nil {
		return err
	}
	if err := h.Sessions.DeleteConversation(r.Context(), p.UserID, id); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// MessageSend is the body of POST /chat/sessions/{id}/messages.
type MessageSend struct {
	Content string `json:"content"`
	// ClientMessageID makes resends safe: the same id again returns the original pair, charged
	// once. Omitted, the server makes one (and a resend is a new message).
	ClientMessageID string `json:"client_message_id"`
	// ApprovalID re-sends a message held for approval once an admin approved it.
	ApprovalID string `json:"approval_id"`
}

// ExchangeView is the answer to a send: the user message and the reply.
type ExchangeView struct {
	User      MessageView `json:"user"`
	Assistant MessageView `json:"assistant"`
	// Replayed: this client_message_id was sent before; nothing new was charged.
	Replayed bool `json:"replayed"`
}

// send stores a message and answers it with the reply: as JSON, or, when the request accepts
// text/event-stream, as a stream of the reply's deltas ending with the stored pair (stream.go).
func (h *handlers) send(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	id, err := sessionID(r)
	if err != nil {
		return err
	}
	var body MessageSend
	if err := httpapi.DecodeJSON(r, &body); err != nil {
		return err
	}
	if body.ClientMessageID == "" {
		body.ClientMessageID = uuid.NewString()
	} else if err := httpapi.CheckID("client_message_id", body.ClientMessageID); err != nil {
		return err
	}
	if body.ApprovalID != "" {
		if err := httpapi.CheckID("approval_id", body.ApprovalID); err != nil {
			return err
		}
	}
	if strings.ContainsRune(body.Content, 0) {
		return fault.New(fault.InvalidField, "content must not contain NUL")
	}
	in := chat.Send{
		UserID: p.UserID, ConversationID: id, ClientMessageID: body.ClientMessageID,
		Content: body.Content, RequestID: httpapi.RequestID(r.Context()), ApprovalID: body.ApprovalID,
	}
	var es *eventStream
	if wantsStream(r) {
		es = newEventStream(w)
		in.Stream = es.delta
	}
	ex, err := h.Chat.Send(r.Context(), in)
	if es != nil && es.started {
		// The answer is a stream already: it ends with the stored pair or the error.
		if err != nil {
			es.fail(in.RequestID, err)
		} else {
			es.message(exchangeView(ex))
		}
		return nil
	}
	if execapi.WritePending(w, err) {
		return nil
	}
	if err != nil {
		return err
	}
	if es != nil && !ex.Replayed {
		es.message(exchangeView(ex)) // a reply no model produced (a step-up): nothing to stream before it
		return nil
	}
	status := http.StatusCreated
	if ex.Replayed {
		status = http.StatusOK
	}
	w.Header().Set("X-Helix-Cost-Usd", ex.Assistant.Cost.String())
	httpapi.WriteJSON(w, status, exchangeView(ex))
	return nil
}

func exchangeView(ex chat.Exchange) ExchangeView {
	return ExchangeView{User: messageView(ex.User), Assistant: messageView(ex.Assistant), Replayed: ex.Replayed}
}

// MessageList is a page of messages; after it, continue with ?after=<last_seq>.
type MessageList struct {
	Messages []MessageView `json:"messages"`
	LastSeq  int64         `json:"last_seq"`
}

func (h *handlers) messages(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	id, err := sessionID(r)
	if err != nil {
		return err
	}
	after, err := intParam(r, "after", 0, 0, 1<<53)
	if err != nil {
		return err
	}
	limit, err := intParam(r, "limit", defaultMessages, 1, maxMessages)
	if err != nil {
		return err
	}
	waitS, err := intParam(r, "wait", 0, 0, int64(h.MaxWait/time.Second))
	if err != nil {
		return err
	}
	msgs, err := h.Chat.Wait(r.Context(), p.UserID, id, after, int(limit), time.Duration(waitS)*time.Second)
	if err != nil {
		return err
	}
	out := MessageList{Messages: []MessageView{}, LastSeq: after}
	for _, m := range msgs {
		out.Messages = append(out.Messages, messageView(m))
		out.LastSeq = m.Seq
	}
	httpapi.WriteJSON(w, http.StatusOK, out)
	return nil
}

// InsightView is an insight as the API shows it.
type InsightView struct {
	ID                 string         `json:"id"`
	Layer              int            `json:"layer"`
	LayerName          string         `json:"layer_name"`
	Text               string         `json:"text"`
	Confidence         float64        `json:"confidence"`
	ReinforcementCount int            `json:"reinforcement_count"`
	ValidFrom          time.Time      `json:"valid_from"`
	LastReinforcedAt   time.Time      `json:"last_reinforced_at"`
	InvalidatedAt      *time.Time     `json:"invalidated_at,omitempty"`
	SupersededBy       string         `json:"superseded_by,omitempty"`
	Evidence           []EvidenceView `json:"evidence"`
}

// EvidenceView is a message an insight rests on.
type EvidenceView struct {
	SessionID string `json:"session_id"`
	Seq       int64  `json:"seq"`
	Kind      string `json:"kind,omitempty"`
	Message   string `json:"message,omitempty"`
}

func insightView(i memory.Insight) InsightView {
	v := InsightView{ID: i.ID, Layer: int(i.Layer), LayerName: i.Layer.Name(), Text: i.Text, Confidence: i.Confidence,
		ReinforcementCount: i.ReinforcementCount, ValidFrom: i.ValidFrom, LastReinforcedAt: i.LastReinforcedAt,
		SupersededBy: i.SupersededBy, Evidence: []EvidenceView{}}
	if !i.InvalidatedAt.IsZero() {
		t := i.InvalidatedAt
		v.InvalidatedAt = &t
	}
	for _, e := range i.Evidence {
		v.Evidence = append(v.Evidence, EvidenceView{SessionID: e.ConversationID, Seq: e.Seq})
	}
	return v
}

func (h *handlers) insights(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	layer, err := intParam(r, "layer", 0, 0, int64(memory.MaxLayer))
	if err != nil {
		return err
	}
	inv, err := boolParam(r, "include_invalidated")
	if err != nil {
		return err
	}
	list, err := h.Memory.Insights(r.Context(), p.UserID, memory.Listing{Layer: memory.Layer(layer), IncludeInvalidated: inv})
	if err != nil {
		return err
	}
	out := []InsightView{}
	for _, i := range list {
		out = append(out, insightView(i))
	}
	httpapi.WriteJSON(w, http.StatusOK, map[string]any{"insights": out})
	return nil
}

func (h *handlers) deleteInsight(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	id, err := httpapi.PathID(r, "id")
	if err != nil {
		return err
	}
	if !ident.IsUUID(id) {
		return memory.ErrNotFound
	}
	if err := h.Memory.DeleteInsight(r.Context(), p.UserID, id); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (h *handlers) forget(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	n, err := h.Memory.Forget(r.Context(), p.UserID)
	if err != nil {
		return err
	}
	httpapi.WriteJSON(w, http.StatusOK, map[string]any{"deleted_insights": n})
	return nil
}

// Export is everything learned about the user.
type Export struct {
	UserID     string        `json:"user_id"`
	ExportedAt time.Time     `json:"exported_at"`
	Insights   []InsightView `json:"insights"`
}

func (h *handlers) export(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	list, evidence, err := h.Memory.Export(r.Context(), p.UserID)
	if err != nil {
		return err
	}
	out := Export{UserID: p.UserID, ExportedAt: time.Now().UTC(), Insights: []InsightView{}}
	for _, i := range list {
		v := insightView(i)
		v.Evidence = []EvidenceView{}
		for _, e := range evidence[i.ID] {
			v.Evidence = append(v.Evidence, EvidenceView{SessionID: e.ConversationID, Seq: e.Seq, Kind: string(e.Kind), Message: e.Message})
		}
		out.Insights = append(out.Insights, v)
	}
	w.Header().Set("Content-Disposition", `attachment; filename="helix-memory.json"`)
	httpapi.WriteJSON(w, http.StatusOK, out)
	return nil
}
