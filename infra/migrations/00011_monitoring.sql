-- +goose Up
-- The monitoring API's reads (the budget function). Each is served by an index:
--   realtime feed (newest first, keyset on id)         ai_operation_log_pkey, scanned backward
--   /admin/spend over [from, to), any group_by         idx_ai_ops_created (00008)
--   /admin/spend/summary: today's calls per provider   idx_ai_ops_created
--   /me/usage: one user's rows in [from, to)           idx_ai_ops_user_date (00001)
--   /admin/spend/summary: budget utilisation today     idx_budget_days_day (below)
-- The log's indexes are all there already: another one on the hot insert path would cost every
-- call for reads an operator makes a few times a minute. budget_days is keyed (user_id, day), so
-- "every user's row for today" needs its own index; day never changes once a row exists, so the
-- ledger's updates of spent and reserved stay HOT.
CREATE INDEX idx_budget_days_day ON budget_days (day);

-- +goose Down
DROP INDEX idx_budget_days_day;
