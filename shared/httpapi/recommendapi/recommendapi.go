// Package recommendapi is the admin API of the optimizer's recommendations (in the route
// function, beside the route administration it changes): list them, approve one (a model switch
// is applied to its route at once, in the audit log), reject one.
//
// Deciding again what was already decided the same way is a no-op answered 200 with the
// recommendation as it is (a retried approve applies nothing twice); a contrary decision, or one
// on a stale recommendation, is 409 recommendation_not_pending; an approve that finds the route
// changed since the recommendation was made is 409 recommendation_stale, saying what changed.
package recommendapi

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/helixhq/helix/shared/auth"
	"github.com/helixhq/helix/shared/fault"
	"github.com/helixhq/helix/shared/httpapi"
	"github.com/helixhq/helix/shared/money"
	"github.com/helixhq/helix/shared/optimize"
)

// Store is what the API reads and decides with.
type Store interface {
	List(ctx context.Context, status string, limit int) ([]optimize.Stored, error)
	Decide(ctx context.Context, id string, approve bool, actor, note string) (optimize.Stored, error)
}

// Catalog is the route function's catalog cache, invalidated after an approval so that this
// instance routes by the new primary at once (others within the catalog's TTL).
type Catalog interface{ Invalidate() }

// Register adds the endpoints to s; cat may be nil.
func Register(s *httpapi.Server, st Store, cat Catalog) {
	h := &handlers{st: st, cat: cat}
	s.HandleAdmin("GET /admin/recommendations", h.list)
	s.HandleAdmin("POST /admin/recommendations/{id}/approve", h.decide(true))
	s.HandleAdmin("POST /admin/recommendations/{id}/reject", h.decide(false))
}

type handlers struct {
	st  Store
	cat Catalog
}

// View is a recommendation as the API shows it.
type View struct {
	ID                    string          `json:"id"`
	Type                  string          `json:"type"`
	Target                string          `json:"target"`
	Proposal              json.RawMessage `json:"proposal"`
	EstimatedMonthlySaved money.Nano      `json:"estimated_monthly_saving_usd"`
	Evidence              json.RawMessage `json:"evidence"`
	Reasoning             string          `json:"reasoning"`
	BasedOn               json.RawMessage `json:"based_on"`
	Status                string          `json:"status"`
	StaleReason           string          `json:"stale_reason,omitempty"`
	AnalysisDay           string          `json:"analysis_day"`
	RefreshedDay          string          `json:"refreshed_day"`
	CreatedAt             time.Time       `json:"created_at"`
	DecidedBy             string          `json:"decided_by,omitempty"`
	DecidedAt             *time.Time      `json:"decided_at,omitempty"`
	Note                  string          `json:"note,omitempty"`
}

func view(r optimize.Stored) View {
	v := View{ID: r.ID, Type: r.Type, Target: r.Target, Proposal: r.Proposal, EstimatedMonthlySaved: r.MonthlySaving,
		Evidence: r.Evidence, Reasoning: r.Reasoning, BasedOn: r.Basis, Status: r.Status, StaleReason: r.StaleReason,
		AnalysisDay: r.AnalysisDay.Format(time.DateOnly), RefreshedDay: r.RefreshedDay.Format(time.DateOnly),
		CreatedAt: r.CreatedAt, DecidedBy: r.DecidedBy, Note: r.DecisionNote}
	if !r.DecidedAt.IsZero() {
		t := r.DecidedAt
		v.DecidedAt = &t
	}
	return v
}

// Listing bounds.
const (
	defaultLimit = 100
	maxLimit     = 500
	// MaxNote is the longest decision note, in characters.
	MaxNote = 500
)

// ListQuery is GET /admin/recommendations' query.
type ListQuery struct {
	Status string // "" for every status
	Limit  int
}

// ParseListQuery validates the query: status pending (the default), approved, rejected, stale,
// applied or all; limit 1 to 500.
func ParseListQuery(q url.Values) (ListQuery, error) {
	out := ListQuery{Status: optimize.StatusPending, Limit: defaultLimit}
	switch s := q.Get("status"); s {
	case "":
	case "all":
		out.Status = ""
	case optimize.StatusPending, optimize.StatusApproved, optimize.StatusRejected,
		optimize.StatusStale, optimize.StatusApplied:
		out.Status = s
	default:
		return out, fault.New(fault.InvalidField, "status must be pending, approved, rejected, stale, applied or all")
	}
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > maxLimit {
			return out, fault.Errorf(fault.InvalidField, "limit must be an integer from 1 to %d", maxLimit)
		}
		out.Limit = n
	}
	return out, nil
}

// Decision is the optional body of approve and reject.
type Decision struct {
	Note string `json:"note"`
}

// ParseDecision reads the optional body: empty, or {"note": "..."} of at most MaxNote characters.
func ParseDecision(body []byte) (Decision, error) {
	var d Decision
	if len(body) == 0 {
		return d, nil
	}
	if err := httpapi.DecodeJSONBytes(bytesReader(body), &d); err != nil {
		return d, err
	}
	if utf8.RuneCountInString(d.Note) > MaxNote {
		return d, fault.Errorf(fault.InvalidField, "note must be at most %d characters", MaxNote)
	}
	for _, r := range d.Note {
		if r == 0 {
			return d, fault.New(fault.InvalidField, "note must not contain NUL")
		}
	}
	return d, nil
}

// ParseID validates a recommendation id: a UUID.
func ParseID(v string) (string, error) {
	id, err := uuid.Parse(v)
	if err != nil || len(v) != 36 {
		return "", fault.New(fault.InvalidField, "id must be a recommendation id (a UUID)")
	}
	return id.String(), nil
}

func (h *handlers) list(w http.ResponseWriter, r *http.Request, _ auth.Principal) error {
	q, err := ParseListQuery(r.URL.Query())
	if err != nil {
		return err
	}
	list, err := h.st.List(r.Context(), q.Status, q.Limit)
	if err != nil {
		return err
	}
	out := make([]View, 0, len(list))
	for _, rec := range list {
		out = append(out, view(rec))
	}
	httpapi.WriteJSON(w, http.StatusOK, map[string]any{"recommendations": out})
	return nil
}

func (h *handlers) decide(approve bool) httpapi.Handler {
	return func(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
		id, err := ParseID(r.PathValue("id"))
		if err != nil {
			return err
		}
		body, err := readBody(r)
		if err != nil {
			return err
		}
		d, err := ParseDecision(body)
		if err != nil {
			return err
		}
		rec, err := h.st.Decide(r.Context(), id, approve, p.UserID, d.Note)
		if approve && h.cat != nil {
			h.cat.Invalidate()
		}
		if err != nil {
			return err
		}
		httpapi.WriteJSON(w, http.StatusOK, view(rec))
		return nil
	}
}

func bytesReader(b []byte) *bytes.Reader { return bytes.NewReader(b) }

// readBody reads at most httpapi.MaxBodyBytes (+1, so a larger body is seen as one).
func readBody(r *http.Request) ([]byte, error) {
	if r.ContentLength > httpapi.MaxBodyBytes {
		return nil, fault.Errorf(fault.BodyTooLarge, "request body exceeds %d bytes", httpapi.MaxBodyBytes)
	}
	b, err := io.ReadAll(io.LimitReader(r.Body, httpapi.MaxBodyBytes+1))
	if err != nil {
		return nil, fault.Wrap(fault.MalformedJSON, err, "the request body could not be read")
	}
	if len(b) > httpapi.MaxBodyBytes {
		return nil, fault.Errorf(fault.BodyTooLarge, "request body exceeds %d bytes", httpapi.MaxBodyBytes)
	}
	return bytes.TrimSpace(b), nil
}
