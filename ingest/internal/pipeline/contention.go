package pipeline

import (
	"context"
	"math/rand/v2"
	"sync"
	"sync/atomic"

	"go.uber.org/zap"

	"github.com/wahook/wahook/shared/ledger"
)

// readAhead is how many keys of a contended body one Read looks at: one
// BatchGetItem call. Shorter stretches leave the sibling less time to take a
// key read as free (50 against 100 cut the refused writes of twin 1,000-update
// bodies from 130–180 to 100–120) for one more read per 100 keys.
const readAhead = 50

// admission is the order in which one request admits its body's events, and
// what it knows of keys that other requests hold.
//
// A copy of a body that another request is still admitting (Meta's retry of a
// slow request, or the same webhook for two subscribed apps, each on its own
// replica) would otherwise try a conditional write for every key its sibling
// holds: a thousand refused writes for a 1,000-update body, which cost the
// ledger nearly what the sibling's own writes do and slow both. Two things
// spare them:
//   - each request admits its body in an order of its own, a random
//     permutation, so that two copies do not write the same keys side by side
//     (in body order both would race for every key);
//   - once one of its writes is refused (the key was taken), the request reads
//     each later stretch of readAhead keys of its order (one consistent
//     BatchGetItem) before writing any of them. A key it finds `received`
//     goes straight to Await; one found queued or further on is a duplicate
//     there and then, as Await would have found it on its first read (handed
//     to Await too, such keys were read twice: two copies of a 1,000-update
//     body read about 3,000 keys between them).
//
// A key read as free but taken before its write is refused by the write, as
// before: with independent orders, a key the sibling wrote in the short while
// between the read and the write — about a tenth of a 1,000-update body,
// against every key in body order without reads
// (TestIdenticalBodiesDoNotWriteEachOthersKeys). A key read as `received` is
// decided by Await, as a refused write would be. A body nobody else holds
// costs nothing more: no read until a write is refused.
type admission struct {
	p         *Pipeline
	items     []item
	order     []int                            // admission position → index in items
	contended atomic.Bool                      // a write was refused: read ahead from now on
	held      []func() map[string]ledger.State // per stretch of readAhead positions, read once: key → state
	log       *zap.Logger
}

func (p *Pipeline) newAdmission(ctx context.Context, items []item, log *zap.Logger) *admission {
	n := len(items)
	a := &admission{p: p, items: items, order: rand.Perm(n), log: log}
	for from := 0; from < n; from += readAhead {
		positions := a.order[from:min(from+readAhead, n)]
		a.held = append(a.held, sync.OnceValue(func() map[string]ledger.State { return a.read(ctx, positions) }))
	}
	return a
}

// run calls fn for every admission position, as many at once as the
// process's limiter allows, and waits for them. fn calls admit. A position
// that waits for a slot longer than a backend call may take is not admitted,
// nor is any after it: the ledger is not keeping up with what the process's
// webhooks ask of it, and those events are left to Meta's retry (the webhook
// is answered 503) rather than written late, or timed out, or written after
// the answer. What was admitted goes on to the queue as usual.
func (a *admission) run(ctx context.Context, fn func(j int)) {
	_, backoffsBefore := a.p.admit.state()
	writers := newCrew()
	shed := 0
	for j := range a.order {
		if err := a.p.admit.acquire(ctx, a.p.opts.BackendTimeout); err != nil {
			for _, i := range a.order[j:] {
				a.items[i].outcome = failed
			}
			shed = len(a.order) - j
			break
		}
		writers.Go(func() { fn(j) })
	}
	writers.Wait()
	now, backoffs := a.p.admit.state()
	fields := []zap.Field{zap.Int("events", len(a.order)), zap.Int("admit_concurrency", now)}
	switch {
	case shed > 0 && ctx.Err() != nil:
		a.log.Info("the request ended before its body was admitted: events left for Meta's retry without a write",
			append(fields, zap.Int("not_admitted", shed), zap.Error(ctx.Err()))...)
	case shed > 0:
		a.log.Warn("the ledger is not keeping up: events left for Meta's retry without a write",
			append(fields, zap.Int("not_admitted", shed))...)
	case len(a.order) <= startConcurrency:
	case backoffs > backoffsBefore:
		a.log.Info("the ledger answered slowly: admission backed off", fields...)
	default:
		a.log.Debug("admitted", fields...)
	}
}

// admit acquires the key of the event at admission position j, or, once the
// body is contended, finds it held without a write: `received` (reported as
// exists, with the receipt to await) or further on (a duplicate, decided).
// It reports exists when another request has the key. Called once per
// position, holding one of the limiter's slots, which it frees.
func (a *admission) admit(ctx context.Context, j int) (*item, ledger.Receipt, bool) {
	it := &a.items[a.order[j]]
	if a.contended.Load() {
		if state, held := a.held[j/readAhead]()[it.event.Key]; held {
			a.p.admit.release()
			_, it.admitSpan = a.p.startAdmit(ctx, it) // ended once decided
			if state == ledger.StateReceived {
				return it, ledger.Receipt{Key: it.event.Key}, true // a sibling's: Await decides
			}
			// Moved on already: what Await would make of it, without its read.
			a.p.decided(ctx, it, ledger.Admission{Duplicate: true, State: state}, nil, a.log)
			return it, ledger.Receipt{}, false
		}
	}
	r, exists := a.p.acquire(ctx, it, a.log)
	if exists {
		a.contended.Store(true)
	}
	return it, r, exists
}

// read reports the state of each key at positions that has an item. A failed
// read reports none: their writes decide, as without it.
func (a *admission) read(ctx context.Context, positions []int) map[string]ledger.State {
	keys := make([]string, len(positions))
	for i, j := range positions {
		keys[i] = a.items[j].event.Key
	}
	ctx, cancel := context.WithTimeout(ctx, a.p.opts.BackendTimeout)
	defer cancel()
	found, err := a.p.ledger.Read(ctx, keys)
	if err != nil {
		a.log.Warn("could not read ahead of a contended body; writing each key", zap.Int("keys", len(keys)), zap.Error(err))
		return nil
	}
	held := make(map[string]ledger.State, len(found))
	for k, it := range found {
		held[k] = it.State
	}
	return held
}
