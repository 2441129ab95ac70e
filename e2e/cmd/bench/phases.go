package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/wahook/wahook/e2e/harness"
)

func numCPU() int { return runtime.NumCPU() }

// floor measures the backend alone, through the same counters as wahook.
func (b *bench) floor() *floorResult {
	ctx := b.r.Context()
	rig := newFloorRig(b.r, b.counted)
	res := &floorResult{}
	var concs []int
	for f := range strings.SplitSeq(b.c.sweep, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			b.r.Fatalf("-sweep: bad concurrency %q", f)
		}
		concs = append(concs, n)
	}
	n := b.c.events
	for i, conc := range concs {
		b.dynamo.Reset()
		b.sqs.Reset()
		log.Printf("same-calls floor: %d events at concurrency %d, wahook's requests", n, conc)
		same := b.sameWahookCalls(rig, n, conc)
		if i == len(concs)-1 {
			res.Calls = map[string]map[string]float64{
				"DynamoDB": perEvent(b.dynamo.Counts(), n), "SQS": perEvent(b.sqs.Counts(), n),
			}
		}
		log.Printf("same-calls floor: %d events at concurrency %d, smallest requests", n, conc)
		rate, err := rig.sameCalls(ctx, n, conc, minimalOps{rig})
		if err != nil {
			b.r.Fatalf("same-calls floor at %d: %v", conc, err)
		}
		res.Sweep = append(res.Sweep, sweepPoint{Conc: conc, SameRequestsPerSec: same, EventsPerSec: rate})
	}
	best := res.Best().Conc
	for _, op := range []struct {
		name string
		f    func(context.Context) error
	}{
		{"PutItem (conditional)", func(ctx context.Context) error { return rig.acquire(ctx, rig.key()) }},
		{"SendMessageBatch (10 entries)", func(ctx context.Context) error {
			batch := make([]floorEvent, 10)
			for i := range batch {
				batch[i] = floorEvent{key: rig.key(), body: floorBody}
			}
			return rig.sendBatch(ctx, batch)
		}},
	} {
		rate, lat, err := raw(ctx, n, best, op.f)
		if err != nil {
			b.r.Fatalf("raw floor %s: %v", op.name, err)
		}
		res.Raw = append(res.Raw, rawPoint{Op: op.name, Conc: best, PerSec: rate,
			P50ms: ms(lat.P50), P99ms: ms(lat.P99)})
	}
	// Drain what the raw SendMessageBatch floor left in its queue.
	_, _ = rig.q.PurgeQueue(ctx, &sqs.PurgeQueueInput{QueueUrl: aws.String(rig.queueURL)})
	return res
}

// sameWahookCalls is the same-calls floor's rate making wahook's own
// requests: n fresh events with conc in flight.
func (b *bench) sameWahookCalls(rig *floorRig, n, conc int) float64 {
	ops, err := rig.newWahookOps(b.gen, n)
	if err != nil {
		b.r.Fatalf("%v", err)
	}
	rate, err := rig.sameCalls(b.r.Context(), n, conc, ops)
	if err != nil {
		b.r.Fatalf("same-calls floor at %d (wahook's requests): %v", conc, err)
	}
	return rate
}

// ratioRounds measures, c.ratioReps times, wahook's maximum rate and right
// after it the same-calls floor (wahook's requests) at conc, each over
// c.events fresh events: pairs taken under the same conditions, so that the
// box's speed drifting between the maximum-rate run and the sweep (by a fifth
// between two runs of one day on the 2-core machine) does not move the ratio.
func (b *bench) ratioRounds(conc int) []ratioRound {
	rig := newFloorRig(b.r, b.counted)
	n := b.c.events
	var rounds []ratioRound
	for round := 1; round <= b.c.ratioReps; round++ {
		var l load
		b.measure(fmt.Sprintf("ratio round %d: wahook's maximum rate", round), func() { l = b.deliverAt(b.payloads(n), n, 0) })
		var floor float64
		b.measure(fmt.Sprintf("ratio round %d: same-calls floor at %d", round, conc), func() { floor = b.sameWahookCalls(rig, n, conc) })
		log.Printf("ratio round %d: wahook %.0f events/s, floor %.0f", round, l.EndToEndPerSec, floor)
		rounds = append(rounds, ratioRound{Wahook: l.EndToEndPerSec, Floor: floor, Errors: l.Errors})
	}
	return rounds
}

// big times one 1,000-update body, and two identical ones at once on two
// replicas, against twice the floor's time for their ledger writes and sends,
// with c.bigWorkers workers running. The floor's best concurrency is swept
// once; each of c.bigReps rounds then measures the floor at it again, right
// before its bodies, and is held to twice that.
func (b *bench) big() *bigResult {
	ctx := b.r.Context()
	rig := newFloorRig(b.r, b.counted)
	res := &bigResult{Workers: b.c.bigWorkers, Processors: b.c.processors}
	if b.c.bigWorkers != b.c.workers {
		b.startWorkers(b.c.bigWorkers, b.c.processors)
		defer b.startWorkers(b.c.workers, b.c.processors)
	}
	floor := func(name string, conc int) time.Duration {
		var took time.Duration
		var err error
		b.measure(name, func() { took, err = rig.bigBody(ctx, conc) })
		if err != nil {
			b.r.Fatalf("big-body floor: %v", err)
		}
		return took
	}
	var best time.Duration
	for _, conc := range []int{8, 16, 32, 64} {
		if took := floor(fmt.Sprintf("big-body floor, concurrency %d", conc), conc); best == 0 || took < best {
			best, res.FloorConc = took, conc
		}
	}
	for rep := 1; rep <= b.c.bigReps; rep++ {
		run := b.bigRun(rep, floor(fmt.Sprintf("big-body floor, concurrency %d (round %d)", res.FloorConc, rep), res.FloorConc))
		res.Runs = append(res.Runs, run)
		res.Events = run.Events
	}
	for _, p := range b.stack.Processes(harness.RoleIngest) {
		if s, err := readProc(p.Pid()); err == nil {
			res.IngestRSS = append(res.IngestRSS, procCost{Name: p.Name, PeakRSSMB: mb(s.PeakBytes), RSSMB: mb(s.RSSBytes)})
		}
	}
	return res
}

// bigRun is one round of big: one body, then identical twins.
func (b *bench) bigRun(rep int, floor time.Duration) bigRun {
	ctx := b.r.Context()
	run := bigRun{Floor: floor, Bound: 2 * floor}
	body := func() ([]byte, int) {
		var statuses []harness.Status
		for range 100 {
			statuses = append(statuses, b.gen.Lifecycle(b.gen.WAMID(), "16505551234")[:2]...)
		}
		p := b.gen.Payload(b.gen.Messages(800), statuses)
		return p.JSON(), len(p.Keys())
	}
	urls := b.stack.IngestURLs()
	c := b.stack.Client()

	single, n := body()
	base := b.done()
	var r harness.Response
	before := b.dynamo.Counts()
	profiled := b.profileBodies(fmt.Sprintf("body-r%d", rep), 1)
	b.measure(fmt.Sprintf("one 1,000-update body, until answered (round %d)", rep), func() { r = c.PostTo(ctx, urls[0], single) })
	run.Profiles = append(run.Profiles, profiled()...)
	run.SingleCalls = since(before, b.dynamo.Counts())
	run.Single = ms(r.Latency)
	run.SingleOK = r.OK()
	b.measure(fmt.Sprintf("its events done after the answer (round %d)", rep), func() { b.awaitDone(base + n) })

	twin, n := body()
	base = b.done()
	var answers [2]harness.Response
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range answers {
		wg.Go(func() {
			<-start
			answers[i] = c.PostTo(ctx, urls[i], twin)
		})
	}
	before = b.dynamo.Counts()
	profiled = b.profileBodies(fmt.Sprintf("twins-r%d", rep), len(answers))
	b.measure(fmt.Sprintf("two identical 1,000-update bodies, until both answered (round %d)", rep), func() {
		close(start)
		wg.Wait()
	})
	run.Profiles = append(run.Profiles, profiled()...)
	run.TwinCalls = since(before, b.dynamo.Counts())
	run.TwinOK = true
	for _, a := range answers {
		run.Twin = append(run.Twin, ms(a.Latency))
		var sum struct {
			Queued int `json:"queued"`
		}
		if !a.OK() || json.Unmarshal([]byte(a.Body), &sum) != nil {
			run.TwinOK = false
			continue
		}
		run.TwinQueued += sum.Queued
	}
	run.Events = n
	b.awaitDone(base + n)
	return run
}

// since is the calls counted after minus those counted before, by operation.
func since(before, after map[string]int64) map[string]int64 {
	d := make(map[string]int64, len(after))
	for op, n := range after {
		if n -= before[op]; n > 0 {
			d[op] = n
		}
	}
	return d
}

// scaling measures end-to-end throughput for each workers × processors cell,
// then restores the configured workers.
func (b *bench) scaling() []scaleCell {
	var cells []scaleCell
	for _, w := range []int{1, 2} {
		for _, p := range []int{1, 2, 4, 8} {
			b.startWorkers(w, p)
			log.Printf("scaling: %d worker × %d processors, %d events", w, p, b.c.scaleN)
			l := b.deliverAt(b.payloads(b.c.scaleN), b.c.scaleN, 0)
			cells = append(cells, scaleCell{Workers: w, Processors: p, EventsPerSec: l.EndToEndPerSec, P99ms: l.P99ms})
		}
	}
	b.startWorkers(b.c.workers, b.c.processors)
	return cells
}

// soakRun holds a sustained rate (half the measured maximum) for c.soak and
// samples every service's RSS every 10s.
func (b *bench) soakRun(maxPerSec float64) *soakResult {
	rate := 0.5 * maxPerSec / float64(b.c.batch)
	n := int(rate * b.c.soak.Seconds())
	log.Printf("soak: %.1f webhooks/s for %v (%d webhooks)", rate, b.c.soak, n)
	res := &soakResult{Duration: b.c.soak, WebhooksPerSec: rate}
	procs := b.procs()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(10 * time.Second)
		defer t.Stop()
		began := time.Now()
		for {
			row := soakSample{At: time.Since(began).Round(time.Second), RSSMB: map[string]float64{}}
			for _, p := range procs {
				if s, err := readProc(p.Pid()); err == nil {
					row.RSSMB[p.Name] = mb(s.RSSBytes)
				}
			}
			res.Samples = append(res.Samples, row)
			select {
			case <-stop:
				return
			case <-t.C:
			}
		}
	})
	l := b.deliverAt(b.payloads(n*b.c.batch), n*b.c.batch, rate)
	close(stop)
	wg.Wait()
	res.Load = l
	end := sample(b.r, procs)
	for _, p := range procs {
		res.PeakRSSMB = append(res.PeakRSSMB, procCost{Name: p.Name, PeakRSSMB: mb(end[p.Pid()].PeakBytes), RSSMB: mb(end[p.Pid()].RSSBytes)})
	}
	return res
}

// captureProfiles takes a 10s CPU profile and a heap profile of the first
// ingest and the first worker, while the maximum-rate run goes on.
func (b *bench) captureProfiles(dir string) []string {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.r.Fatalf("profile dir: %v", err)
	}
	var (
		mu    sync.Mutex
		files []string
		wg    sync.WaitGroup
	)
	for _, role := range []harness.Role{harness.RoleIngest, harness.RoleWorker} {
		p := b.stack.Processes(role)[0]
		for _, kind := range []string{"profile?seconds=10", "heap"} {
			wg.Go(func() {
				if kind == "heap" {
					time.Sleep(8 * time.Second) // mid-run, not at rest
				}
				name := filepath.Join(dir, fmt.Sprintf("%s-%s.pprof", p.Name, strings.Split(kind, "?")[0]))
				if err := fetch(b.r.Context(), p.URL("/debug/pprof/"+kind), name); err != nil {
					log.Printf("profile %s: %v", name, err)
					return
				}
				mu.Lock()
				files = append(files, name)
				mu.Unlock()
			})
		}
	}
	wg.Wait()
	return files
}

// bodyProfile is how long a body's CPU profile runs: longer than a body takes
// to be answered on a slow machine. The ingest is idle for the rest of it (the
// bench waits for the body's events to be done), so the profile holds the
// body's work alone.
const bodyProfile = 4 * time.Second

// profileBodies starts, with -profile, a CPU profile of each of the first n
// ingests, named after what, and returns a function that waits for them and
// returns their files (none without -profile). The profiles are started
// before the bodies are posted: pprof's handler answers its headers only
// when it is done, so the bench cannot see the profile begin; a profile that
// starts a little after the post misses at most the reading of the body.
func (b *bench) profileBodies(what string, n int) func() []string {
	if b.c.profile == "" {
		return func() []string { return nil }
	}
	files := make([]string, n)
	var wg sync.WaitGroup
	for i, p := range b.stack.Processes(harness.RoleIngest)[:n] {
		wg.Go(func() {
			name := filepath.Join(b.c.profile, fmt.Sprintf("%s-cpu-%s.pprof", p.Name, what))
			url := p.URL(fmt.Sprintf("/debug/pprof/profile?seconds=%d", int(bodyProfile.Seconds())))
			if err := fetch(b.r.Context(), url, name); err != nil {
				log.Printf("profile %s: %v", name, err)
				return
			}
			files[i] = name
		})
	}
	return func() []string {
		wg.Wait()
		return slices.DeleteFunc(files, func(f string) bool { return f == "" })
	}
}

// allocProfile writes the first ingest's allocation profile (counts since
// its start) to dir, named after when.
func (b *bench) allocProfile(dir, when string) string {
	p := b.stack.Processes(harness.RoleIngest)[0]
	name := filepath.Join(dir, fmt.Sprintf("%s-allocs-%s.pprof", p.Name, when))
	if err := fetch(b.r.Context(), p.URL("/debug/pprof/allocs"), name); err != nil {
		b.r.Fatalf("profile %s: %v", name, err)
	}
	return name
}

func fetch(ctx context.Context, url, path string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
