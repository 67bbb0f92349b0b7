// Package alertapi is the alert rules' admin API: operators' own rules (the seeds'
// POST /admin/alerts/create kept beside POST /admin/alerts), the standing rules' thresholds, and
// the fires and clears.
package alertapi

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/helixhq/helix/shared/alerts"
	"github.com/helixhq/helix/shared/auth"
	"github.com/helixhq/helix/shared/fault"
	"github.com/helixhq/helix/shared/httpapi"
	"github.com/helixhq/helix/shared/ident"
)

// Store is what the API needs of the alerts' storage.
type Store interface {
	Rules(ctx context.Context, enabledOnly bool) ([]alerts.Rule, error)
	Rule(ctx context.Context, id string) (alerts.Rule, error)
	Create(ctx context.Context, r alerts.Rule, by string) (alerts.Rule, error)
	Update(ctx context.Context, id string, p alerts.Patch, by string) (alerts.Rule, error)
	Delete(ctx context.Context, id, by string) error
	Events(ctx context.Context, before int64, limit int) ([]alerts.Event, error)
	CanSealWebhooks() bool
}

// Register adds the endpoints; allowedHosts are webhook hosts besides Discord's.
func Register(s *httpapi.Server, store Store, allowedHosts []string) {
	h := &handlers{store: store, hosts: allowedHosts}
	s.HandleAdmin("POST /admin/alerts", h.create)
	s.HandleAdmin("POST /admin/alerts/create", h.create)
	s.HandleAdmin("GET /admin/alerts", h.list)
	s.HandleAdmin("GET /admin/alerts/events", h.events)
	s.HandleAdmin("PATCH /admin/alerts/{id}", h.patch)
	s.HandleAdmin("DELETE /admin/alerts/{id}", h.delete)
}

type handlers struct {
	store Store
	hosts []string
}

// RuleView is a rule as the API shows it: whether it has a webhook of its own, never the URL.
type RuleView struct {
	ID         string    `json:"id"`
	Name       string    `json:"name"`
	Type       string    `json:"type"`
	Threshold  float64   `json:"threshold"`
	Severity   string    `json:"severity"`
	Channel    string    `json:"channel"`
	OwnWebhook bool      `json:"own_webhook"`
	Standing   bool      `json:"standing"`
	Status     string    `json:"status"` // active, disabled
	CreatedBy  string    `json:"created_by"`
	CreatedAt  time.Time `json:"created_at"`
	UpdatedAt  time.Time `json:"updated_at"`
}

func viewOf(r alerts.Rule) RuleView {
	status := "active"
	if !r.Enabled {
		status = "disabled"
	}
	return RuleView{ID: r.ID, Name: r.Name, Type: r.Type, Threshold: r.Threshold, Severity: string(r.Severity), Channel: "discord",
		OwnWebhook: r.HasWebhook(), Standing: r.Standing, Status: status, CreatedBy: r.CreatedBy, CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt}
}

// CreateRequest is POST /admin/alerts's body. threshold_usd is the seeds' name for spend rules'
// threshold; threshold is the general one (a fraction for error_rate, ms for latency).
type CreateRequest struct {
	Name         string   `json:"name"`
	Type         string   `json:"type"`
	ThresholdUSD *float64 `json:"threshold_usd"`
	Threshold    *float64 `json:"threshold"`
	Severity     string   `json:"severity"`
	Channel      string   `json:"channel"`
	WebhookURL   string   `json:"webhook_url"`
}

// Rule checks the request and makes the rule it asks for.
func (c CreateRequest) Rule(allowedHosts []string) (alerts.Rule, error) {
	if err := alerts.CheckName(c.Name); err != nil {
		return alerts.Rule{}, fault.New(fault.InvalidField, err.Error())
	}
	if c.Type == "" {
		return alerts.Rule{}, fault.New(fault.MissingField, "type is required: daily_spend, user_spend, error_rate or latency")
	}
	known := false
	for _, t := range alerts.OperatorTypes() {
		known = known || t == c.Type
	}
	if !known {
		return alerts.Rule{}, fault.Errorf(fault.InvalidField, "type must be daily_spend, user_spend, error_rate or latency (the standing rules are changed with PATCH)")
	}
	var threshold float64
	switch {
	case c.ThresholdUSD != nil && c.Threshold != nil:
		return alerts.Rule{}, fault.New(fault.InvalidField, "send threshold_usd or threshold, not both")
	case c.ThresholdUSD != nil && !spendType(c.Type):
		return alerts.Rule{}, fault.New(fault.InvalidField, "threshold_usd is for spend rules; send threshold")
	case c.ThresholdUSD != nil:
		threshold = *c.ThresholdUSD
	case c.Threshold != nil:
		threshold = *c.Threshold
	default:
		return alerts.Rule{}, fault.New(fault.MissingField, "threshold_usd (spend rules) or threshold is required")
	}
	if err := alerts.CheckThreshold(c.Type, threshold); err != nil {
		return alerts.Rule{}, fault.New(fault.InvalidField, err.Error())
	}
	sev := alerts.DefaultSeverity(c.Type)
	switch c.Severity {
	case "":
	case string(alerts.Warning), string(alerts.Critical):
		sev = alerts.Severity(c.Severity)
	default:
		return alerts.Rule{}, fault.New(fault.InvalidField, "severity must be warning or critical")
	}
	if c.Channel != "" && c.Channel != "discord" {
		return alerts.Rule{}, fault.New(fault.InvalidField, "channel must be discord")
	}
	if c.WebhookURL != "" {
		if err := alerts.CheckWebhook(c.WebhookURL, allowedHosts); err != nil {
			return alerts.Rule{}, fault.New(fault.InvalidField, err.Error())
		}
	}
	return alerts.Rule{Name: c.Name, Type: c.Type, Threshold: threshold, Severity: sev, Enabled: true, Webhook: c.WebhookURL}, nil
}

// spendType reports whether a rule's threshold is in USD (threshold_usd may name it).
func spendType(typ string) bool {
	return typ == alerts.DailySpend || typ == alerts.UserSpend || typ == alerts.HighDailySpend
}

func (h *handlers) create(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	var body CreateRequest
	if err := httpapi.DecodeJSON(r, &body); err != nil {
		return err
	}
	rule, err := body.Rule(h.hosts)
	if err != nil {
		return err
	}
	if rule.Webhook != "" && !h.store.CanSealWebhooks() {
		return fault.New(fault.InvalidField, "webhook_url needs HELIX_ALERT_WEBHOOK_KEY on the server; without it, alerts go to #helix-alerts only")
	}
	out, err := h.store.Create(r.Context(), rule, p.UserID)
	if err != nil {
		return err
	}
	httpapi.WriteJSON(w, http.StatusCreated, viewOf(out))
	return nil
}

func (h *handlers) list(w http.ResponseWriter, r *http.Request, _ auth.Principal) error {
	rules, err := h.store.Rules(r.Context(), false)
	if err != nil {
		return err
	}
	out := []RuleView{}
	for _, x := range rules {
		out = append(out, viewOf(x))
	}
	httpapi.WriteJSON(w, http.StatusOK, map[string]any{"rules": out})
	return nil
}

// PatchRequest is PATCH /admin/alerts/{id}'s body.
type PatchRequest struct {
	Name         *string  `json:"name"`
	Threshold    *float64 `json:"threshold"`
	ThresholdUSD *float64 `json:"threshold_usd"`
	Severity     *string  `json:"severity"`
	Status       *string  `json:"status"` // active, disabled
}

func ruleID(r *http.Request) (string, error) {
	id := r.PathValue("id")
	if err := ident.Check(id); err != nil || !ident.IsUUID(id) {
		return "", fault.New(fault.InvalidField, "id must be an alert rule's id (a UUID)")
	}
	return id, nil
}

func (h *handlers) patch(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	id, err := ruleID(r)
	if err != nil {
		return err
	}
	var body PatchRequest
	if err := httpapi.DecodeJSON(r, &body); err != nil {
		return err
	}
	rule, err := h.store.Rule(r.Context(), id)
	if errors.Is(err, alerts.ErrNotFound) {
		return fault.New(fault.AlertRuleNotFound, "no such alert rule")
	}
	if err != nil {
		return err
	}
	var patch alerts.Patch
	if body.Name != nil {
		if err := alerts.CheckName(*body.Name); err != nil {
			return fault.New(fault.InvalidField, err.Error())
		}
		patch.Name = body.Name
	}
	if body.Threshold != nil && body.ThresholdUSD != nil {
		return fault.New(fault.InvalidField, "send threshold_usd or threshold, not both")
	}
	if body.ThresholdUSD != nil && !spendType(rule.Type) {
		return fault.New(fault.InvalidField, "threshold_usd is for spend rules; send threshold")
	}
	if t := body.Threshold; t != nil || body.ThresholdUSD != nil {
		if t == nil {
			t = body.ThresholdUSD
		}
		if err := alerts.CheckThreshold(rule.Type, *t); err != nil {
			return fault.New(fault.InvalidField, err.Error())
		}
		patch.Threshold = t
	}
	if s := body.Severity; s != nil {
		if *s != string(alerts.Warning) && *s != string(alerts.Critical) {
			return fault.New(fault.InvalidField, "severity must be warning or critical")
		}
		sev := alerts.Severity(*s)
		patch.Severity = &sev
	}
	if s := body.Status; s != nil {
		if *s != "active" && *s != "disabled" {
			return fault.New(fault.InvalidField, "status must be active or disabled")
		}
		on := *s == "active"
		patch.Enabled = &on
	}
	if patch == (alerts.Patch{}) {
		return fault.New(fault.MissingField, "send name, threshold (or threshold_usd), severity or status")
	}
	out, err := h.store.Update(r.Context(), id, patch, p.UserID)
	if errors.Is(err, alerts.ErrNotFound) {
		return fault.New(fault.AlertRuleNotFound, "no such alert rule")
	}
	if err != nil {
		return err
	}
	httpapi.WriteJSON(w, http.StatusOK, viewOf(out))
	return nil
}

func (h *handlers) delete(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	id, err := ruleID(r)
	if err != nil {
		return err
	}
	switch err := h.store.Delete(r.Context(), id, p.UserID); {
	case errors.Is(err, alerts.ErrNotFound):
		return fault.New(fault.AlertRuleNotFound, "no such alert rule")
	case errors.Is(err, alerts.ErrStanding):
		return fault.New(fault.AlertRuleStanding, err.Error())
	case err != nil:
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// EventView is an alert fired or cleared.
type EventView struct {
	ID       int64     `json:"id"`
	RuleID   string    `json:"rule_id"`
	RuleName string    `json:"rule_name"`
	Type     string    `json:"type"`
	Severity string    `json:"severity"`
	Subject  string    `json:"subject,omitempty"`
	State    string    `json:"state"`
	Value    float64   `json:"value"`
	Detail   string    `json:"detail"`
	At       time.Time `json:"created_at"`
	// Delivery to the rule's own webhook, if it has one (the fire and clear reach #helix-alerts
	// through the outbox regardless): when it arrived, attempts so far, the last failure.
	Delivered     *time.Time `json:"delivered_at,omitempty"`
	Attempts      int        `json:"delivery_attempts,omitempty"`
	DeliveryError string     `json:"delivery_error,omitempty"`
}

func (h *handlers) events(w http.ResponseWriter, r *http.Request, _ auth.Principal) error {
	q := r.URL.Query()
	limit, before := int64(50), int64(0)
	for name, dst := range map[string]*int64{"limit": &limit, "before": &before} {
		if v := q.Get(name); v != "" {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n < 1 || (name == "limit" && n > 500) {
				if name == "limit" {
					return fault.New(fault.InvalidField, "limit must be an integer from 1 to 500")
				}
				return fault.New(fault.InvalidField, "before must be an event id (a positive integer): the previous page's next_before")
			}
			*dst = n
		}
	}
	list, err := h.store.Events(r.Context(), before, int(limit))
	if err != nil {
		return err
	}
	out := []EventView{}
	for _, e := range list {
		out = append(out, EventView{ID: e.ID, RuleID: e.RuleID, RuleName: e.RuleName, Type: e.Type, Severity: string(e.Severity),
			Subject: e.Subject, State: e.State, Value: e.Value, Detail: e.Detail, At: e.At, Delivered: e.Delivered,
			Attempts: e.Attempts, DeliveryError: e.LastError})
	}
	resp := map[string]any{"events": out}
	if n := len(list); n == int(limit) {
		resp["next_before"] = list[n-1].ID
	}
	httpapi.WriteJSON(w, http.StatusOK, resp)
	return nil
}
