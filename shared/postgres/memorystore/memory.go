package memorystore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/helixhq/helix/shared/auditlog"
	"github.com/helixhq/helix/shared/ident"
	"github.com/helixhq/helix/shared/memory"
	"github.com/helixhq/helix/shared/postgres/auditstore"
	"github.com/helixhq/helix/shared/stepup"
	"github.com/helixhq/helix/shared/synthesis"
)

// Memory reads and writes the insights learned about users, and the synthesis jobs that learn them.
type Memory struct {
	pool *pgxpool.Pool
	now  func() time.Time
}

var _ synthesis.Store = (*Memory)(nil)

// NewMemory returns the memory repository.
func NewMemory(pool *pgxpool.Pool, now func() time.Time) *Memory {
	if now == nil {
		now = time.Now
	}
	return &Memory{pool: pool, now: now}
}

const insightColumns = `i.insight_id::text, i.user_id, i.layer, i.text, i.confidence::float8,
	i.reinforcement_count, i.valid_from, i.last_reinforced_at, i.invalidated_at,
	COALESCE(i.superseded_by::text, ''), i.created_at, i.updated_at`

func scanInsight(row pgx.CollectableRow) (memory.Insight, error) {
	var i memory.Insight
	var layer int16
	var invalidated pgtype.Timestamptz
	err := row.Scan(&i.ID, &i.UserID, &layer, &i.Text, &i.Confidence, &i.ReinforcementCount, &i.ValidFrom,
		&i.LastReinforcedAt, &invalidated, &i.SupersededBy, &i.CreatedAt, &i.UpdatedAt)
	i.Layer, i.InvalidatedAt = memory.Layer(layer), invalidated.Time
	return i, err
}

// Insights lists a user's insights with their evidence, newest first.
func (m *Memory) Insights(ctx context.Context, userID string, l memory.Listing) ([]memory.Insight, error) {
	rows, _ := m.pool.Query(ctx, `
		SELECT `+insightColumns+` FROM conversation_insights i
		 WHERE i.user_id = $1 AND ($2 = 0 OR i.layer = $2) AND ($3 OR i.invalidated_at IS NULL)
		 ORDER BY i.layer, i.valid_from DESC, i.insight_id`, userID, int(l.Layer), l.IncludeInvalidated)
	list, err := pgx.CollectRows(rows, scanInsight)
	if err != nil {
		return nil, fmt.Errorf("insights: %w", err)
	}
	return list, m.attachEvidence(ctx, userID, list)
}

// attachEvidence fills each insight's evidence, in one query.
func (m *Memory) attachEvidence(ctx context.Context, userID string, list []memory.Insight) error {
	if len(list) == 0 {
		return nil
	}
	index := make(map[string]int, len(list))
	for n, i := range list {
		index[i.ID] = n
	}
	rows, _ := m.pool.Query(ctx, `
		SELECT e.insight_id::text, e.conversation_id::text, e.seq
		  FROM insight_evidence e JOIN conversation_insights i USING (insight_id)
		 WHERE i.user_id = $1 ORDER BY e.conversation_id, e.seq`, userID)
	var id string
	var ev memory.Evidence
	_, err := pgx.ForEachRow(rows, []any{&id, &ev.ConversationID, &ev.Seq}, func() error {
		if n, ok := index[id]; ok {
			list[n].Evidence = append(list[n].Evidence, ev)
		}
		return nil
	})
	return err
}

// DeleteInsight erases one of the user's insights (and its evidence).
func (m *Memory) DeleteInsight(ctx context.Context, userID, id string) error {
	if !ident.IsUUID(id) {
		return memory.ErrNotFound
	}
	tag, err := m.pool.Exec(ctx, `DELETE FROM conversation_insights WHERE insight_id = $1 AND user_id = $2`, id, userID)
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 0 {
		return memory.ErrNotFound
	}
	return nil
}

// Forget erases everything learned about the user, and marks what they already said as
// synthesized, so synthesis already queued writes nothing back. Conversations stay.
func (m *Memory) Forget(ctx context.Context, userID string) (int64, error) {
	var n int64
	err := pgx.BeginFunc(ctx, m.pool, func(tx pgx.Tx) error {
		// First the conversations: a synthesis run committing now waits for these rows, then
		// finds its range already synthesized and writes nothing.
		if _, err := tx.Exec(ctx, `
			UPDATE conversations SET synthesized_seq = last_seq, enqueued_seq = last_seq, summary = '', summary_through_seq = 0
			 WHERE user_id = $1`, userID); err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, `DELETE FROM conversation_insights WHERE user_id = $1`, userID)
		n = tag.RowsAffected()
		return err
	})
	return n, err
}

// Export returns every insight about the user, invalidated ones included, each with its evidence
// and the messages it rests on.
func (m *Memory) Export(ctx context.Context, userID string) ([]memory.Insight, map[string][]memory.ExportedEvidence, error) {
	list, err := m.Insights(ctx, userID, memory.Listing{IncludeInvalidated: true})
	if err != nil {
		return nil, nil, err
	}
	rows, _ := m.pool.Query(ctx, `
		SELECT e.insight_id::text, e.conversation_id::text, e.seq, e.kind, COALESCE(s.content, '')
		  FROM insight_evidence e
		  JOIN conversation_insights i USING (insight_id)
		  LEFT JOIN session_messages s ON s.conversation_id = e.conversation_id AND s.seq = e.seq
		 WHERE i.user_id = $1 ORDER BY e.insight_id, e.conversation_id, e.seq`, userID)
	out := map[string][]memory.ExportedEvidence{}
	var id string
	var ev memory.ExportedEvidence
	_, err = pgx.ForEachRow(rows, []any{&id, &ev.ConversationID, &ev.Seq, &ev.Kind, &ev.Message}, func() error {
		out[id] = append(out[id], ev)
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("export evidence: %w", err)
	}
	return list, out, nil
}

// ---- synthesis.Store ----

// Claim implements synthesis.Store.
func (m *Memory) Claim(ctx context.Context, j synthesis.Job, lease time.Duration, maxMessages int) (synthesis.Work, error) {
	var w synthesis.Work
	var done bool
	if err := m.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM synthesis_jobs WHERE conversation_id = $1 AND through_seq = $2 AND status = 'done')`,
		j.ConversationID, j.ThroughSeq).Scan(&done); err != nil {
		return w, fmt.Errorf("claim synthesis: %w", err)
	}
	if done {
		return w, synthesis.ErrDone
	}
	now := m.now()
	var last int64
	err := m.pool.QueryRow(ctx, `
		UPDATE conversations SET synthesis_until = $3
		 WHERE conversation_id = $1 AND user_id = $2 AND (synthesis_until IS NULL OR synthesis_until < $4)
		RETURNING synthesized_seq, last_seq, summary`, j.ConversationID, j.UserID, now.Add(lease), now).
		Scan(&w.After, &last, &w.Summary)
	if errors.Is(err, pgx.ErrNoRows) {
		var exists bool
		if err := m.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM conversations WHERE conversation_id = $1 AND user_id = $2)`,
			j.ConversationID, j.UserID).Scan(&exists); err != nil {
			return w, fmt.Errorf("claim synthesis: %w", err)
		}
		if !exists {
			return w, synthesis.ErrGone
		}
		return w, synthesis.ErrBusy
	}
	if err != nil {
		return w, fmt.Errorf("claim synthesis: %w", err)
	}
	w.Through = min(j.ThroughSeq, last)
	if w.Through <= w.After {
		return w, nil // nothing new: the caller records the job and releases the lease
	}
	rows, _ := m.pool.Query(ctx, `SELECT seq, role, content, coalesce(model_used, '') FROM session_messages
		 WHERE conversation_id = $1 AND seq > $2 AND seq <= $3 ORDER BY seq LIMIT $4`,
		j.ConversationID, w.After, w.Through, maxMessages)
	var msg synthesis.Message
	var model string
	fetched := int64(0)
	_, err = pgx.ForEachRow(rows, []any{&msg.Seq, &msg.Role, &msg.Content, &model}, func() error {
		fetched = msg.Seq
		// Step-up turns (the redacted attempt and Helix's own answer, which no model wrote) are
		// nothing to learn about the user from.
		if (msg.Role == "user" && msg.Content == stepup.Redacted) || (msg.Role == "assistant" && model == "") {
			return nil
		}
		w.Messages = append(w.Messages, msg)
		return nil
	})
	if err != nil {
		return w, fmt.Errorf("claim synthesis: messages: %w", err)
	}
	if fetched > 0 {
		w.Through = fetched // a long stretch is learned in parts
	}
	return w, nil
}

// Candidates implements synthesis.Store: the user's active insights most related to the new
// messages, and the most salient ones, so the model can reinforce, update or invalidate them.
func (m *Memory) Candidates(ctx context.Context, userID, text string, limit int) ([]memory.Insight, error) {
	// Faded routines included: new evidence may reconsolidate them.
	rows, _ := m.pool.Query(ctx, RankedInsightsSQL, RankedInsightsArgs(userID, text, m.now(), limit, false)...)
	list, err := pgx.CollectRows(rows, ScanRankedInsight)
	if err != nil {
		return nil, fmt.Errorf("synthesis candidates: %w", err)
	}
	return list, nil
}

// Commit implements synthesis.Store: in one transaction, the conversation moves to Through only
// if nothing else moved it since the claim (a Forget, another run), the actions are applied,
// and the job is recorded done; a redelivered job finds the record and writes nothing.
func (m *Memory) Commit(ctx context.Context, j synthesis.Job, w synthesis.Work, r synthesis.Result) (synthesis.Counts, error) {
	var counts synthesis.Counts
	err := pgx.BeginFunc(ctx, m.pool, func(tx pgx.Tx) error {
		now := m.now()
		tag, err := tx.Exec(ctx, `
			UPDATE conversations
			   SET synthesized_seq = $3, summary = $4, summary_through_seq = $3, synthesis_until = NULL,
			       enqueued_seq = GREATEST(enqueued_seq, $3)
			 WHERE conversation_id = $1 AND user_id = $2 AND synthesized_seq = $5`,
			j.ConversationID, j.UserID, w.Through, r.Summary, w.After)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			counts = synthesis.Counts{}
			return recordJob(ctx, tx, j, w, "skipped", "superseded", counts, nil, r)
		}
		layers := map[string]int{}
		for _, a := range r.Actions {
			if err := applyAction(ctx, tx, j, a, now, &counts, layers); err != nil {
				return err
			}
		}
		if w.Through < j.ThroughSeq {
			// A part of a longer stretch: the job is not done until its last part is, so a later
			// delivery (or the sweep) can claim the rest.
			return recordJob(ctx, tx, j, w, "skipped", "partial", counts, layers, r)
		}
		return recordJob(ctx, tx, j, w, "done", "", counts, layers, r)
	})
	return counts, err
}

// applyAction applies one action, counting what it changed, overall and per layer (by name).
func applyAction(ctx context.Context, tx pgx.Tx, j synthesis.Job, a memory.Action, now time.Time, counts *synthesis.Counts, layers map[string]int) error {
	evidence := func(id string, kind memory.Kind) error {
		for _, seq := range a.Evidence {
			if _, err := tx.Exec(ctx, `
				INSERT INTO insight_evidence (insight_id, conversation_id, seq, kind, created_at)
				VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING`, id, j.ConversationID, seq, string(kind), now); err != nil {
				return err
			}
		}
		return nil
	}
	insert := func(layer memory.Layer, text string, confidence float64) (string, error) {
		id := uuid.NewString()
		_, err := tx.Exec(ctx, `
			INSERT INTO conversation_insights (insight_id, user_id, layer, layer_name, text, confidence,
			                                   valid_from, last_reinforced_at, created_at, updated_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $7, $7, $7)`,
			id, j.UserID, int(layer), layer.Name(), text, confidence, now)
		return id, err
	}
	switch a.Kind {
	case memory.Add:
		id, err := insert(a.Layer, a.Text, a.Confidence)
		if err != nil {
			return err
		}
		counts.Added++
		layers[a.Layer.Name()]++
		return evidence(id, memory.Add)
	case memory.Reinforce:
		var layer int16
		err := tx.QueryRow(ctx, `
			UPDATE conversation_insights
			   SET reinforcement_count = reinforcement_count + 1, last_reinforced_at = $3,
			       confidence = LEAST(1.0, confidence + (1.0 - confidence) * 0.2), updated_at = $3
			 WHERE insight_id = $1 AND user_id = $2 AND invalidated_at IS NULL
			RETURNING layer`, a.InsightID, j.UserID, now).Scan(&layer)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil // invalidated meanwhile (by this run): nothing reinforced
		}
		if err != nil {
			return err
		}
		counts.Reinforced++
		layers[memory.Layer(layer).Name()]++
		return evidence(a.InsightID, memory.Reinforce)
	case memory.Update:
		// A new version supersedes the old one, which is kept, invalidated and linked to it.
		var layer int16
		err := tx.QueryRow(ctx, `SELECT layer FROM conversation_insights WHERE insight_id = $1 AND user_id = $2 AND invalidated_at IS NULL FOR UPDATE`,
			a.InsightID, j.UserID).Scan(&layer)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil // invalidated meanwhile: nothing to update
		}
		if err != nil {
			return err
		}
		id, err := insert(memory.Layer(layer), a.Text, a.Confidence)
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE conversation_insights SET invalidated_at = $3, superseded_by = $4, updated_at = $3
			 WHERE insight_id = $1 AND user_id = $2`, a.InsightID, j.UserID, now, id); err != nil {
			return err
		}
		counts.Updated++
		layers[memory.Layer(layer).Name()]++
		return evidence(id, memory.Update)
	case memory.Invalidate:
		var layer int16
		err := tx.QueryRow(ctx, `UPDATE conversation_insights SET invalidated_at = $3, updated_at = $3
			 WHERE insight_id = $1 AND user_id = $2 AND invalidated_at IS NULL RETURNING layer`, a.InsightID, j.UserID, now).Scan(&layer)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil // already invalidated: nothing to record twice
		}
		if err != nil {
			return err
		}
		counts.Invalidated++
		layers[memory.Layer(layer).Name()]++
		return evidence(a.InsightID, memory.Invalidate)
	}
	return fmt.Errorf("unknown action %q", a.Kind)
}

// recordJob records the run in synthesis_jobs and in the audit log (counts and layers, never
// what was learned).
func recordJob(ctx context.Context, tx pgx.Tx, j synthesis.Job, w synthesis.Work, status, reason string, c synthesis.Counts, layers map[string]int, r synthesis.Result) error {
	_, err := tx.Exec(ctx, `
		INSERT INTO synthesis_jobs (conversation_id, through_seq, user_id, status, reason, messages, added,
		                            reinforced, updated, invalidated, request_id, cost_nano, finished_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, NULLIF($11, ''), $12, now())
		ON CONFLICT (conversation_id, through_seq) DO UPDATE
		   SET status = EXCLUDED.status, reason = EXCLUDED.reason, messages = EXCLUDED.messages,
		       added = EXCLUDED.added, reinforced = EXCLUDED.reinforced, updated = EXCLUDED.updated,
		       invalidated = EXCLUDED.invalidated, request_id = EXCLUDED.request_id,
		       cost_nano = EXCLUDED.cost_nano, finished_at = EXCLUDED.finished_at
		 WHERE synthesis_jobs.status <> 'done'`,
		j.ConversationID, j.ThroughSeq, j.UserID, status, reason, len(w.Messages), c.Added, c.Reinforced,
		c.Updated, c.Invalidated, r.RequestID, int64(r.Cost))
	if err != nil {
		return err
	}
	return auditstore.Record(ctx, tx, auditlog.Event{Kind: auditlog.Synthesis, Actor: j.UserID, Payload: auditlog.SynthesisRun{
		ConversationID: j.ConversationID, ThroughSeq: j.ThroughSeq, Status: status, Reason: reason,
		Messages: len(w.Messages), Added: c.Added, Reinforced: c.Reinforced, Updated: c.Updated,
		Invalidated: c.Invalidated, Layers: layers, CostNano: int64(r.Cost),
	}})
}

// Skip implements synthesis.Store.
func (m *Memory) Skip(ctx context.Context, j synthesis.Job, w synthesis.Work, reason string) error {
	return pgx.BeginFunc(ctx, m.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `UPDATE conversations SET synthesis_until = NULL WHERE conversation_id = $1 AND user_id = $2`,
			j.ConversationID, j.UserID); err != nil {
			return err
		}
		var exists bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM conversations WHERE conversation_id = $1)`, j.ConversationID).Scan(&exists); err != nil || !exists {
			return err // a deleted conversation has nothing left to record against
		}
		return recordJob(ctx, tx, j, w, "skipped", reason, synthesis.Counts{}, nil, synthesis.Result{})
	})
}

// Release implements synthesis.Store.
func (m *Memory) Release(ctx context.Context, j synthesis.Job) error {
	_, err := m.pool.Exec(ctx, `UPDATE conversations SET synthesis_until = NULL WHERE conversation_id = $1 AND user_id = $2`, j.ConversationID, j.UserID)
	return err
}

// Due implements synthesis.Store: conversations idle for idle with messages no job covers, and
// those whose job was sent more than stale ago without completing (a lost send, a crashed run),
// recorded as sent now.
func (m *Memory) Due(ctx context.Context, idle, stale time.Duration, limit int) ([]synthesis.Job, error) {
	now := m.now()
	rows, _ := m.pool.Query(ctx, `
		UPDATE conversations c SET enqueued_seq = c.last_seq, enqueued_at = $1
		  FROM (SELECT conversation_id FROM conversations
		         WHERE last_seq > synthesized_seq
		           AND ((enqueued_seq < last_seq AND last_activity_at < $2)
		             OR (enqueued_seq > synthesized_seq AND enqueued_at < $3))
		         ORDER BY last_activity_at
		         LIMIT $4
		           FOR UPDATE SKIP LOCKED) due
		 WHERE c.conversation_id = due.conversation_id
		RETURNING c.conversation_id::text, c.user_id, c.last_seq`, now, now.Add(-idle), now.Add(-stale), limit)
	var jobs []synthesis.Job
	var j synthesis.Job
	_, err := pgx.ForEachRow(rows, []any{&j.ConversationID, &j.UserID, &j.ThroughSeq}, func() error {
		jobs = append(jobs, j)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("due synthesis: %w", err)
	}
	return jobs, nil
}

// RankedInsightsSQL ranks a user's active insights for a message: relevance (full-text match of
// the insight against the message: 0.4 per distinct word (lexeme) of the message the insight
// has, counted over tsvector arrays, which costs a fraction of ts_rank_cd over a long message),
// then salience (strength, which for a
// routine is its faded confidence (see memory.Insight.Strength), reinforcement, recency of the
// last reinforcement, which fades over a month or so). Routines weaker than $5 are left out.
// Arguments: $1 user, $2 text, $3 now, $4 limit, $5 the weakest routine strength kept (0 keeps
// every routine, for synthesis), $6 the routine half-life in seconds. Use RankedInsightsArgs.
const RankedInsightsSQL = `
WITH ranked AS (
  SELECT insight_id, layer, text, confidence, reinforcement_count, valid_from, last_reinforced_at, search,
         CASE WHEN layer = 5 AND $3::timestamptz > last_reinforced_at
              THEN confidence::float8 * power(0.5, extract(epoch FROM ($3::timestamptz - last_reinforced_at))::float8 / $6::float8)
              ELSE confidence::float8 END AS strength
    FROM conversation_insights
   WHERE user_id = $1 AND invalidated_at IS NULL
)
SELECT insight_id::text, layer, text, confidence::float8, reinforcement_count, valid_from, last_reinforced_at
  FROM ranked, (SELECT tsvector_to_array(to_tsvector('english', $2)) AS words) AS query
 WHERE layer <> 5 OR strength >= $5::float8
 ORDER BY (SELECT count(*) FROM unnest(tsvector_to_array(search)) AS w WHERE w = ANY (query.words)) * 0.4
          + strength
          + least(reinforcement_count, 10) * 0.05
          + 1.0 / (1.0 + extract(epoch FROM ($3::timestamptz - last_reinforced_at)) / 2592000.0) DESC,
          last_reinforced_at DESC
 LIMIT $4`

// RankedInsightsArgs are RankedInsightsSQL's arguments; forPrompt leaves faded routines out.
func RankedInsightsArgs(userID, text string, now time.Time, limit int, forPrompt bool) []any {
	floor := 0.0
	if forPrompt {
		floor = memory.FadedStrength
	}
	return []any{userID, text, now, limit, floor, memory.RoutineHalfLife.Seconds()}
}

// ScanRankedInsight scans a row of RankedInsightsSQL.
func ScanRankedInsight(row pgx.CollectableRow) (memory.Insight, error) {
	var i memory.Insight
	var layer int16
	err := row.Scan(&i.ID, &layer, &i.Text, &i.Confidence, &i.ReinforcementCount, &i.ValidFrom, &i.LastReinforcedAt)
	i.Layer = memory.Layer(layer)
	return i, err
}
