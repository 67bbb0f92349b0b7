package postgres

import (
	"context"

	"github.com/helixhq/helix/shared/budget"
	"github.com/helixhq/helix/shared/groupcommit"
	"github.com/helixhq/helix/shared/oplog"
)

// ReserveBatch writes rs as one batch, as the group-commit batcher hands it over, and answers
// each item as Reserve would.
func ReserveBatch(ctx context.Context, l *Ledger, rs []budget.Reservation) ([]budget.Admission, []error) {
	items := make([]reserveItem, len(rs))
	for i, r := range rs {
		items[i] = reserveItem{r: r, now: l.now()}
	}
	res := l.flushReserves(ctx, items)
	adms, errs := make([]budget.Admission, len(rs)), make([]error, len(rs))
	for i, r := range res {
		if r.Err != nil {
			errs[i] = r.Err
			continue
		}
		adms[i], errs[i] = admission(items[i], r.Value)
	}
	return adms, errs
}

// FinishBatch writes recs with their outcomes as one batch; it answers whether each closed a
// reservation.
func FinishBatch(ctx context.Context, o *Operations, recs []oplog.Record, outcomes []oplog.Outcome) ([]bool, []error) {
	items := make([]finishItem, len(recs))
	for i, rec := range recs {
		name, err := outcomeName(outcomes[i])
		if err != nil {
			panic(err)
		}
		items[i] = finishItem{outcome: name, rec: rec, now: o.now()}
	}
	res := o.flushFinishes(ctx, items)
	closed, errs := make([]bool, len(recs)), make([]error, len(recs))
	for i, r := range res {
		closed[i], errs[i] = r.Value, r.Err
	}
	return closed, errs
}

// TodayBatch reads users' days as one batch, as the group-commit batcher hands it over.
func TodayBatch(ctx context.Context, l *Ledger, users []string) ([]budget.Day, []error) {
	items := make([]todayItem, len(users))
	for i, u := range users {
		items[i] = todayItem{userID: u, date: budget.DateOf(l.now())}
	}
	res := l.flushTodays(ctx, items)
	days, errs := make([]budget.Day, len(users)), make([]error, len(users))
	for i, r := range res {
		days[i], errs[i] = r.Value.day(items[i]), r.Err
	}
	return days, errs
}

// ObserveGroupCommit turns on group commit for l and o (either may be nil) and reports each
// batch's size to observe, so a test can tell that batches did form.
func ObserveGroupCommit(l *Ledger, o *Operations, opts groupcommit.Options, observe func(kind string, n int)) {
	if l != nil {
		l.reserves = groupcommit.NewSharded(nil, func(ctx context.Context, items []reserveItem) []groupcommit.Result[reserveRow] {
			observe("reserve", len(items))
			return l.flushReserves(ctx, items)
		}, opts)
		l.todays = groupcommit.NewSharded(nil, func(ctx context.Context, items []todayItem) []groupcommit.Result[todayRow] {
			observe("today", len(items))
			return l.flushTodays(ctx, items)
		}, opts)
	}
	if o != nil {
		o.finishes = groupcommit.NewSharded(nil, func(ctx context.Context, items []finishItem) []groupcommit.Result[bool] {
			observe("finish", len(items))
			return o.flushFinishes(ctx, items)
		}, opts)
	}
}

// WatchRefusals tells f of every batch Postgres refuses (whose items were then written one by
// one), for l and o (either may be nil).
func WatchRefusals(l *Ledger, o *Operations, f func(error)) {
	if l != nil {
		l.batchRefused = f
	}
	if o != nil {
		o.batchRefused = f
	}
}
