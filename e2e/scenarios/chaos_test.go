package scenarios

import (
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/wahook/wahook/e2e/harness"
)

// Scenario 9: a fixed number of events — messages of every type and status
// lifecycles, a fifth of the webhooks re-sent — delivered like Meta while a
// seeded schedule kills workers and ingests (-9 and SIGTERM), restarts them,
// and breaks their links to SQS and DynamoDB in every way the fault proxy
// knows, pauses workers past their leases (zombies) and throttles the
// ledger's writes → the same invariants as every other scenario. The seed is
// new every run and printed; WAHOOK_E2E_SEED replays the schedule (timing
// still varies).
func TestChaosSoak(t *testing.T) {
	t.Parallel()
	events := form(600, 3000)
	produceFor := form(40*time.Second, 4*time.Minute)
	// A new schedule every run (CI explores), printed so a failure replays.
	sd := freshSeed(t)
	t.Logf("chaos seed %d (replay the schedule with %s=%d)", sd, EnvSeed, sd)
	rng := rand.New(rand.NewPCG(sd, 0xc4a05))
	g := harness.NewGen(sd)

	s := harness.NewStack(t, harness.StackOptions{Visibility: 5 * time.Second})
	worker := harness.WorkerOptions{Processors: 3, AuditDelay: 300 * time.Millisecond}
	for range 2 {
		s.StartIngest(nil)
	}
	for range 3 {
		s.StartWorker(worker)
	}

	// The workload: ~80% inbound messages, ~20% statuses.
	var payloads []harness.Payload
	msgs := g.Messages(events * 8 / 10)
	payloads = append(payloads, g.Batches(msgs, 4)...)
	var statuses []harness.Status
	for len(statuses) < events-len(msgs) {
		to, _ := g.Customer()
		statuses = append(statuses, g.Lifecycle(g.WAMID(), to)...)
	}
	rng.Shuffle(len(statuses), func(i, j int) { statuses[i], statuses[j] = statuses[j], statuses[i] })
	for len(statuses) > 0 {
		k := min(1+rng.IntN(4), len(statuses))
		payloads = append(payloads, g.Payload(nil, statuses[:k]))
		statuses = statuses[k:]
	}
	keys := keysOf(payloads)
	bodies := bodiesOf(payloads)
	for i := range payloads {
		if rng.Float64() < 0.2 {
			bodies = append(bodies, bodies[i])
		}
	}
	rng.Shuffle(len(bodies), func(i, j int) { bodies[i], bodies[j] = bodies[j], bodies[i] })

	// Producer: a steady pace over produceFor, each webhook retried like Meta.
	ctx := t.Context()
	pctx, cancel := context.WithTimeout(ctx, produceFor+4*time.Minute)
	defer cancel()
	var (
		producing sync.WaitGroup
		mu        sync.Mutex
		failed    []error
		retries   int
	)
	produced := make(chan struct{})
	producing.Go(func() {
		defer close(produced)
		var each sync.WaitGroup
		sem := make(chan struct{}, 32)
		tick := time.NewTicker(produceFor / time.Duration(len(bodies)))
		defer tick.Stop()
		for _, b := range bodies {
			select {
			case <-tick.C:
			case <-pctx.Done():
				return
			}
			select {
			case sem <- struct{}{}:
			case <-pctx.Done():
				return
			}
			each.Go(func() {
				defer func() { <-sem }()
				d, err := s.Client().Deliver(pctx, b)
				mu.Lock()
				defer mu.Unlock()
				retries += d.Retries()
				if err != nil {
					failed = append(failed, err)
				}
			})
		}
		each.Wait()
	})

	// Chaos: one action every 0.5-2 s until every webhook is accepted.
	began := time.Now()
	fw := harness.FaultBegins("chaos: kills, link faults, zombie pauses, ledger throttling")
	counts := map[string]int{}
	pause := func(d time.Duration) bool {
		select {
		case <-time.After(d):
			return true
		case <-ctx.Done():
			return false
		}
	}
	pick := func(ps []*harness.Process) *harness.Process { return ps[rng.IntN(len(ps))] }
chaos:
	for {
		select {
		case <-produced:
			break chaos
		case <-time.After(500*time.Millisecond + upTo(rng, 1500*time.Millisecond)):
		}
		var what string
		// Weights: worker kill -9 3, worker SIGTERM 2, ingest kill -9 2, worker
		// link 3, ingest link 2, zombie pause 2, ledger throttled 1, quiet 1.
		switch action := rng.IntN(16); {
		case action < 3:
			w := pick(s.Processes(harness.RoleWorker))
			w.Kill()
			gap := upTo(rng, 2*time.Second)
			pause(gap)
			nw := s.StartWorker(worker)
			what = fmt.Sprintf("kill -9 %s, %s up %v later", w.Name, nw.Name, gap.Round(time.Millisecond))
			counts["kill -9 worker"]++
		case action < 5:
			w := pick(s.Processes(harness.RoleWorker))
			if err := w.Resume(); err != nil { // a paused worker cannot stop gracefully
				t.Fatal(err)
			}
			took, err := w.Terminate(30 * time.Second)
			if err != nil {
				t.Error(err)
			}
			nw := s.StartWorker(worker)
			what = fmt.Sprintf("SIGTERM %s (exited in %v), %s up", w.Name, took.Round(time.Millisecond), nw.Name)
			counts["SIGTERM worker"]++
		case action < 7:
			in := pick(s.Processes(harness.RoleIngest))
			in.Kill()
			ni := s.StartIngest(nil)
			what = fmt.Sprintf("kill -9 %s, %s up", in.Name, ni.Name)
			counts["kill -9 ingest"]++
		case action < 12:
			role := harness.RoleWorker
			if action >= 10 {
				role = harness.RoleIngest
			}
			p := pick(s.Processes(role))
			link, svc := p.DynamoDB, "dynamodb"
			if rng.IntN(2) == 0 {
				link, svc = p.SQS, "sqs"
			}
			f := harness.AllFaults[rng.IntN(len(harness.AllFaults))]
			d := time.Second + upTo(rng, 4*time.Second)
			if err := link.Apply(f); err != nil {
				t.Fatal(err)
			}
			pause(d)
			if err := link.Restore(); err != nil {
				t.Fatal(err)
			}
			what = fmt.Sprintf("%s on %s's %s link for %v", f, p.Name, svc, d.Round(time.Millisecond))
			counts[string(f)+" "+string(role)]++
		case action < 14:
			// A zombie: frozen past its lease while others take its events
			// over, then woken, its writes fenced off.
			w := pick(s.Processes(harness.RoleWorker))
			d := 2*time.Second + upTo(rng, 8*time.Second)
			if err := w.Pause(); err != nil {
				t.Fatal(err)
			}
			pause(d)
			if err := w.Resume(); err != nil {
				t.Fatal(err)
			}
			what = fmt.Sprintf("SIGSTOP %s for %v, then SIGCONT", w.Name, d.Round(time.Millisecond))
			counts["zombie pause worker"]++
		case action < 15:
			d := time.Second + upTo(rng, 5*time.Second)
			inj := s.InjectAll(harness.DynamoDB, harness.Throttle().On(harness.DynamoDBWrites...).
				Matching(harness.Table(s.LedgerTable)).For(d))
			pause(d)
			s.ClearInjections()
			what = fmt.Sprintf("ledger writes throttled for %v (%d refused)", d.Round(time.Millisecond), inj.Hits())
			counts["ledger throttled"]++
		default:
			what = "quiet"
		}
		t.Logf("chaos +%v: %s", time.Since(began).Round(100*time.Millisecond), what)
	}
	producing.Wait()
	fw.Ends()
	if len(failed) > 0 {
		t.Fatalf("%d webhooks never accepted, e.g. %v", len(failed), failed[0])
	}
	accepted := time.Since(began)
	summary := ""
	for _, k := range slices.Sorted(maps.Keys(counts)) {
		summary += fmt.Sprintf(" %s×%d", k, counts[k])
	}
	t.Logf("%d webhooks (%d distinct events) accepted in %v with %d Meta-style retries; chaos:%s",
		len(bodies), len(keys), accepted.Round(100*time.Millisecond), retries, summary)

	settled := s.AwaitSettled(keys, 3*time.Minute)
	s.Report(fw, keys)
	tally := s.CheckInvariants(harness.Expect{Keys: keys, Reinvocable: harness.AnyKey})
	t.Logf("settled %v after the last webhook; %s", settled.Round(100*time.Millisecond), tally)
	// The last fault may have opened a breaker whose probe backs off: await
	// health instead of sampling it once.
	harness.Eventually(t, 30*time.Second, "every process healthy after the chaos", func(ctx context.Context) error {
		for _, p := range s.Processes("") {
			h, err := p.Health(ctx)
			if err != nil {
				return err
			}
			if h.Status != "healthy" {
				return fmt.Errorf("%s is %s (breaker %q)", p.Name, h.Status, h.Breaker.State)
			}
		}
		return nil
	})
}

// freshSeed is WAHOOK_E2E_SEED, else a new random seed: a schedule that CI
// explores, not one it replays forever.
func freshSeed(t *testing.T) uint64 {
	t.Helper()
	if os.Getenv(EnvSeed) != "" {
		return seed(t)
	}
	return rand.Uint64()
}

// upTo is a duration in [0, d) from the seeded RNG.
func upTo(rng *rand.Rand, d time.Duration) time.Duration {
	return time.Duration(rng.Int64N(int64(d)))
}
