package auditapp

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/helixhq/helix/shared/alerts"
	"github.com/helixhq/helix/shared/outbox"
)

// maxAlertAttempts bounds delivery to an operator rule's own webhook; the fire and clear are in
// #helix-alerts (through the outbox) whatever happens to it.
const maxAlertAttempts = 20

// evaluateAlerts reads every enabled rule, advances its alerts (each fire and clear is recorded
// with the state change, and so reaches #helix-alerts), then delivers fires and clears to the
// rules' own webhooks. A rule whose reading fails does not stop the others.
func (a *Audit) evaluateAlerts(ctx context.Context, now time.Time) error {
	if a.Alerts == nil {
		return nil
	}
	rules, err := a.Alerts.Rules(ctx, true)
	if err != nil {
		return err
	}
	var failed []string
	for _, r := range rules {
		readings, err := a.Alerts.Readings(ctx, r, now)
		if err == nil && r.Type == alerts.DiscordBacklog {
			readings = a.configuredChannels(readings)
		}
		if err == nil {
			_, err = a.Alerts.Apply(ctx, r, readings, now)
		}
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			failed = append(failed, fmt.Sprintf("%s: %v", r.Type, err))
		}
	}
	if err := a.deliverAlerts(ctx, rules); err != nil {
		failed = append(failed, "deliver: "+err.Error())
	}
	if len(failed) > 0 {
		return errors.New(strings.Join(failed, "; "))
	}
	return nil
}

// configuredChannels keeps the backlog readings of channels that have a webhook: a channel
// without one keeps its messages on purpose (and says so at start-up), which is no incident.
func (a *Audit) configuredChannels(readings []alerts.Reading) []alerts.Reading {
	if a.Deliverer == nil {
		return readings
	}
	var out []alerts.Reading
	for _, rd := range readings {
		if a.Deliverer.Webhooks[outbox.Channel(rd.Subject)] != "" {
			out = append(out, rd)
		}
	}
	return out
}

func (a *Audit) deliverAlerts(ctx context.Context, rules []alerts.Rule) error {
	events, err := a.Alerts.Undelivered(ctx, 50, maxAlertAttempts)
	if err != nil || len(events) == 0 || a.AlertSender == nil {
		return err
	}
	hooks := map[string]string{}
	for _, r := range rules {
		hooks[r.ID] = r.Webhook
	}
	for _, e := range events {
		hook := hooks[e.RuleID]
		if hook == "" {
			continue // a rule disabled since: its events wait until it is enabled again
		}
		r := a.AlertSender.Send(ctx, hook, []outbox.Message{alertMessage(e)})
		if r.Status >= 200 && r.Status < 300 {
			err = a.Alerts.Delivered(context.WithoutCancel(ctx), e.ID, a.now())
		} else {
			reason := fmt.Sprintf("HTTP %d", r.Status)
			if r.Status == 0 && r.Err != nil {
				reason = r.Err.Error() // the discord client never puts the URL in its errors
			}
			err = a.Alerts.Failed(context.WithoutCancel(ctx), e.ID, reason)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// alertMessage is an alert event as a rule's own webhook gets it.
func alertMessage(e alerts.Event) outbox.Message {
	color := 0xf59e0b
	if e.Severity == alerts.Critical {
		color = 0xef4444
	}
	if e.State == "cleared" {
		color = 0x22c55e
	}
	title := fmt.Sprintf("Alert %s: %s", e.State, e.RuleName)
	if e.Subject != "" {
		title += " (" + e.Subject + ")"
	}
	return outbox.Message{Title: title, Description: e.Detail, Color: color,
		Fields: []outbox.Field{{Name: "type", Value: e.Type, Inline: true}, {Name: "severity", Value: string(e.Severity), Inline: true}},
		Footer: fmt.Sprintf("alert event %d", e.ID)}.Fit()
}
