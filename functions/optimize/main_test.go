package main

// These tests invoke the optimize function as the Lambda runtime does: the scheduled event's JSON
// (events/optimize/scheduled.json) goes to lambda.NewHandler(newHandler(...)).Invoke, on a core
// booted the way main boots it (app.Boot over an environment) against a fresh migrated database
// with a seeded week, and the answer is read back as JSON. The analysis itself is tested in
// shared/optimize and shared/app/optimizeapp; these tests are about the function: what it runs
// on and what it answers.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/lambda"

	"github.com/helixhq/helix/shared/app"
	"github.com/helixhq/helix/shared/app/optimizeapp"
	"github.com/helixhq/helix/shared/optimize"
	"github.com/helixhq/helix/shared/pgtest"
)

var pg *pgtest.Server

func TestMain(m *testing.M) {
	os.Exit(pgtest.Main(m, func(s *pgtest.Server) { pg = s }))
}

const scheduledEvent = "../../events/optimize/scheduled.json"

// lambdaTimeout: what template.yaml should give OptimizeFunction (the run takes seconds over a
// million operations; the rest is headroom).
const lambdaTimeout = 5 * time.Minute

// answer is the invocation's answer with the field names the Lambda console shows.
type answer struct {
	Day             string      `json:"day"`
	Recommendations []string    `json:"recommendations"`
	New             int         `json:"new_recommendations"`
	Saving          json.Number `json:"estimated_monthly_saving_usd"`
	TopCostly       []struct {
		OperationID string `json:"operation_id"`
	} `json:"top_costly"`
}

func newHandlerEnv(t *testing.T) lambda.Handler {
	t.Helper()
	core, err := app.Boot(t.Context(), app.Options{Function: "optimize",
		Environ: []string{"DATABASE_URL=" + pg.NewDatabase(t)}, LogOut: io.Discard})
	if err != nil {
		t.Fatalf("cold start: %v", err)
	}
	t.Cleanup(core.Pool.Close)
	// A week in which gemini did email-compose's fallbacks as well as deepseek did the rest
	// (the same week as shared/app/optimizeapp's test): one switch, $9.471428571 a month.
	from := optimize.WindowAt(time.Now()).From
	for i := range 140 {
		model, in, out, lat, ok := "deepseek", 100_000, 20_000, 400, i >= 2
		at := from.Add(time.Duration(i) * time.Hour)
		if i >= 100 {
			model, in, out, lat, ok = "gemini_flash", 50_000, 12_500, 450, i >= 101
			at = from.Add(time.Duration(i-100)*time.Hour + 30*time.Minute)
		}
		if _, err := core.Pool.Exec(t.Context(), `
			INSERT INTO ai_operation_log (request_id, operation_id, user_id, model_used, input_tokens, output_tokens,
			                              cost_nano, latency_ms, success, created_at)
			VALUES ($1, 'email-compose', 'alice', $2, $3, $4, 1000, $5, $6, $7)`,
			fmt.Sprintf("r%d", i), model, in, out, lat, ok, at); err != nil {
			t.Fatal(err)
		}
	}
	return lambda.NewHandler(newHandler(optimizeapp.New(core)))
}

func invoke(t *testing.T, h lambda.Handler, payload []byte) (answer, error) {
	ctx, cancel := context.WithTimeout(t.Context(), lambdaTimeout)
	defer cancel()
	out, err := h.Invoke(ctx, payload)
	if err != nil {
		return answer{}, err
	}
	var a answer
	dec := json.NewDecoder(strings.NewReader(string(out)))
	dec.UseNumber()
	if err := dec.Decode(&a); err != nil || !strings.Contains(string(out), `"anomalies":[]`) {
		t.Fatalf("answer %s: %v", out, err)
	}
	return a, nil
}

func TestScheduledEventRunsTheOptimizer(t *testing.T) {
	h := newHandlerEnv(t)
	ev, err := os.ReadFile(scheduledEvent)
	if err != nil {
		t.Fatal(err)
	}
	before := time.Now().UTC().Format(time.DateOnly)
	a, err := invoke(t, h, ev)
	if err != nil {
		t.Fatal(err)
	}
	after := time.Now().UTC().Format(time.DateOnly)
	if (a.Day != before && a.Day != after) || a.New != 1 || len(a.Recommendations) != 1 || a.Saving != "9.471428571" ||
		len(a.TopCostly) != 1 || a.TopCostly[0].OperationID != "email-compose" {
		t.Errorf("answer %+v", a)
	}
	// The schedule firing twice the same day (EventBridge delivers at least once) adds nothing.
	if a, err = invoke(t, h, ev); err != nil || a.New != 0 || len(a.Recommendations) != 1 {
		t.Errorf("second invocation: %+v, %v", a, err)
	}
}

func TestOnlyTheScheduleRunsIt(t *testing.T) {
	h := newHandlerEnv(t)
	ev, err := os.ReadFile(scheduledEvent)
	if err != nil {
		t.Fatal(err)
	}
	for name, payload := range map[string]string{
		"another source":      strings.Replace(string(ev), `"aws.events"`, `"my.app"`, 1),
		"another detail-type": strings.Replace(string(ev), `"Scheduled Event"`, `"Object Created"`, 1),
		"an API event":        `{"version":"2.0","routeKey":"POST /dev/optimize/run","rawPath":"/dev/optimize/run"}`,
	} {
		if _, err := invoke(t, h, []byte(payload)); err == nil || !strings.Contains(err.Error(), "not a scheduled event") {
			t.Errorf("%s: err %v", name, err)
		}
	}
}
