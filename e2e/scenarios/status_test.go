package scenarios

import (
	"testing"
	"time"

	"github.com/wahook/wahook/e2e/harness"
)

// Scenario 3: the statuses of 200 outbound messages arrive shuffled, batched
// at random and duplicated → each message ends at its highest-ranked status
// (failed is terminal) with every status kept in its history.
func TestStatusRace(t *testing.T) {
	t.Parallel()
	wamids := form(200, 1000)
	s := harness.NewStack(t, harness.StackOptions{})
	s.StartIngest(nil)
	s.StartIngest(nil)
	s.StartWorker(harness.WorkerOptions{Processors: 4})
	s.StartWorker(harness.WorkerOptions{Processors: 4})
	g := harness.NewGen(seed(t))
	rng := g.Rand()

	type want struct {
		final   string
		history map[string]string // status → Meta timestamp
	}
	expect := map[string]*want{}
	var all []harness.Status
	for range wamids {
		id := g.WAMID()
		to, _ := g.Customer()
		life := g.Lifecycle(id, to)
		w := &want{history: map[string]string{}}
		for _, st := range life {
			w.history[st.Status] = st.Timestamp
			if harness.StatusRank[st.Status] > harness.StatusRank[w.final] {
				w.final = st.Status
			}
		}
		expect[id] = w
		all = append(all, life...)
	}
	var keys []string
	for _, st := range all {
		keys = append(keys, st.Key())
	}
	// A quarter of the statuses arrive twice, then everything is shuffled.
	dups := len(all) / 4
	for i := range dups {
		all = append(all, all[rng.IntN(len(all)-i)])
	}
	rng.Shuffle(len(all), func(i, j int) { all[i], all[j] = all[j], all[i] })
	var payloads []harness.Payload
	for len(all) > 0 {
		k := min(1+rng.IntN(8), len(all))
		payloads = append(payloads, g.Payload(nil, all[:k]))
		all = all[k:]
	}

	ctx, cancel := contextWithTimeout(t, 2*time.Minute)
	defer cancel()
	began := time.Now()
	if _, err := s.Client().DeliverAll(ctx, bodiesOf(payloads), 16); err != nil {
		t.Fatal(err)
	}
	sent := time.Since(began)
	settled := s.AwaitSettled(keys, 2*time.Minute)
	tally := s.CheckInvariants(harness.Expect{Keys: keys})

	rows, err := s.Messages(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	wrongFinal, wrongHistory := 0, 0
	for id, w := range expect {
		row := rows[id]
		if got := harness.S(row, "status"); got != w.final {
			wrongFinal++
			if wrongFinal <= 5 {
				t.Errorf("%s: status %q, want %q (history %v)", id, got, w.final, w.history)
			}
		}
		if got, want := harness.N(row, "status_rank"), harness.StatusRank[w.final]; got != int64(want) {
			t.Errorf("%s: status_rank %d, want %d", id, got, want)
		}
		hist := harness.M(row, "statuses")
		ok := len(hist) == len(w.history)
		for st, ts := range w.history {
			if harness.S(hist, st) != ts {
				ok = false
			}
		}
		if !ok {
			wrongHistory++
			if wrongHistory <= 5 {
				t.Errorf("%s: statuses %v, want %v", id, hist, w.history)
			}
		}
	}
	if wrongFinal+wrongHistory > 0 {
		t.Errorf("%d messages with a wrong final status, %d with an incomplete history, of %d", wrongFinal, wrongHistory, len(expect))
	}
	t.Logf("%d statuses of %d messages (+%d duplicates) in %d webhooks: sent in %v, settled %v later; %s",
		len(keys), wamids, dups, len(payloads), sent.Round(time.Millisecond), settled.Round(time.Millisecond), tally)
}
