// Command bench measures wahook end to end against the same backends the race
// suite uses, and in the same run the floor of those backends, and prints a
// report (Markdown; -o also writes it and its JSON twin to files):
//
//   - webhook load with vegeta: the maximum rate, then a sustained rate below
//     it; latency p50/p95/p99/max, errors, end-to-end events/s;
//
//   - per service process: CPU seconds per 1,000 events and peak RSS (/proc);
//
//   - backend calls per event by operation (counting proxies in front of the
//     emulators, through which wahook and the floor clients both go);
//
//   - the raw floor (one operation alone) and the same-calls floor: a client
//     that makes exactly wahook's calls per event and nothing else, swept over
//     its concurrency; the ratio of wahook's throughput to its best;
//
//   - one 1,000-update body, and two identical ones at once, against twice the
//     floor's time for the 2,000 conditional writes and 100 batch sends, with
//     one worker running (-big-workers);
//
//   - a scaling table: workers 1, 2 × processors 1, 2, 4, 8;
//
//   - with -soak, a sustained run of that length sampling every service's RSS.
//
//     go run ./cmd/bench -events 2000 -o bench-results
//
// The backend is chosen as in the suite (WAHOOK_E2E_BACKEND, Docker,
// endpoints from the environment, the local emulators). It asserts nothing:
// goals are marked met or not in the report.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/wahook/wahook/e2e/harness"
	"github.com/wahook/wahook/shared/awsclient"
)

type config struct {
	events     int
	batch      int
	conc       int
	ingests    int
	workers    int
	bigWorkers int
	bigReps    int
	ratioReps  int
	processors int
	handlers   string
	sustain    time.Duration
	scaleN     int
	sweep      string
	soak       time.Duration
	out        string
	profile    string
	skip       string
	ingestEnv  string
	workerEnv  string
	timeout    time.Duration
	seed       uint64
	// fifo and conversations: fifo.go.
	fifo          bool
	conversations int
}

func main() {
	var c config
	flag.IntVar(&c.events, "events", 2000, "events in the maximum-rate run")
	flag.IntVar(&c.batch, "batch", 10, "events per webhook")
	flag.IntVar(&c.conc, "conc", 16, "webhooks in flight at most")
	flag.IntVar(&c.ingests, "ingests", 2, "ingest processes")
	flag.IntVar(&c.workers, "workers", 2, "worker processes")
	flag.IntVar(&c.bigWorkers, "big-workers", 1, "worker processes running during the 1,000-update body runs")
	flag.IntVar(&c.bigReps, "big-rounds", 3, "rounds of the 1,000-update body runs (floor, one body, twins)")
	flag.IntVar(&c.ratioReps, "ratio-rounds", 3, "rounds of the ratio to the floor after the sweep: each wahook's maximum rate, then the floor at its best concurrency, back to back (0: none)")
	flag.IntVar(&c.processors, "processors", 4, "processors per worker")
	flag.StringVar(&c.handlers, "handlers", "store", "WAHOOK_HANDLERS of the workers")
	flag.DurationVar(&c.sustain, "sustain", 20*time.Second, "length of the sustained-rate run (at 70% of the maximum)")
	flag.IntVar(&c.scaleN, "scale-events", 1000, "events per cell of the scaling table")
	flag.StringVar(&c.sweep, "sweep", "1,2,4,8,16,32", "concurrencies of the same-calls floor client")
	flag.DurationVar(&c.soak, "soak", 0, "also run a sustained soak this long, sampling RSS (e.g. 10m)")
	flag.StringVar(&c.out, "o", "", "write the report to `path`.md and path.json")
	flag.StringVar(&c.profile, "profile", "", "write CPU and heap profiles of an ingest and a worker, taken during the maximum-rate run, the first ingest's allocations before and after the 1,000-update bodies (go tool pprof -sample_index=alloc_space -base BEFORE AFTER), and the ingests' CPU profiles of each body and twin pair (go tool pprof -top DIR/ingest-*-cpu-twins-*.pprof merges them), to `dir`")
	flag.StringVar(&c.skip, "skip", "", "comma-separated phases to leave out: sustained, floor, big, scaling")
	flag.StringVar(&c.ingestEnv, "ingest-env", "", "extra ingest settings, `K=V,K=V` (e.g. WAHOOK_ADMIT_CONCURRENCY=32 to compare)")
	flag.StringVar(&c.workerEnv, "worker-env", "", "extra worker settings, `K=V,K=V` (e.g. WAHOOK_DYNAMODB_CONCURRENCY=0 to compare)")
	flag.DurationVar(&c.timeout, "timeout", 30*time.Minute, "bound on the whole run")
	flag.Uint64Var(&c.seed, "seed", uint64(time.Now().UnixNano()), "payload generator seed")
	flag.BoolVar(&c.fifo, "fifo", false, "compare a FIFO queue with a standard one on a conversation workload (fifo.go)")
	flag.IntVar(&c.conversations, "conversations", 100, "with -fifo: conversations the events are spread over")
	flag.Parse()
	log.SetFlags(log.Ltime | log.Lmicroseconds)
	log.SetPrefix("bench: ")
	if c.ratioReps < 0 {
		log.Fatal("-ratio-rounds cannot be negative")
	}
	if c.events < 1 || c.batch < 1 || c.conc < 1 || c.ingests < 2 || c.workers < 1 || c.bigWorkers < 1 || c.bigReps < 1 || c.processors < 1 {
		log.Fatal("every count must be at least 1, and -ingests at least 2 (the twin-body run posts to two replicas)")
	}

	r := newRunner(c.timeout + c.soak)
	defer r.Finish()
	if c.fifo {
		runFIFO(r, c)
		return
	}
	rep := run(r, c)
	md := rep.Markdown()
	fmt.Print(md)
	if c.out != "" {
		if err := rep.Write(c.out); err != nil {
			r.Fatalf("%v", err)
		}
		log.Printf("report written to %s.md and %s.json", c.out, c.out)
	}
}

// bench is one run's shared state.
type bench struct {
	r       *runner
	c       config
	suite   *harness.Suite
	stack   *harness.Stack
	dynamo  *harness.CallCounter
	sqs     *harness.CallCounter
	counted *awsclient.Clients // the floor clients: through the counters too
	gen     *harness.Gen
	meter   *meter
	cpu     []phaseCPU
}

// measure runs one phase and records where its time went (cpu.go).
func (b *bench) measure(phase string, fn func()) {
	b.cpu = append(b.cpu, b.meter.measure(b.stack, phase, fn))
}

func (b *bench) skip(phase string) bool { return slices.Contains(strings.Split(b.c.skip, ","), phase) }

func run(r *runner, c config) *Report {
	suite := harness.Setup(r)
	direct := *suite.Backend
	dynamoCalls, err := harness.NewCallCounter(direct.DynamoDBEndpoint)
	if err != nil {
		r.Fatalf("%v", err)
	}
	r.Cleanup(func() { _ = dynamoCalls.Close() })
	sqsCalls, err := harness.NewCallCounter(direct.SQSEndpoint)
	if err != nil {
		r.Fatalf("%v", err)
	}
	r.Cleanup(func() { _ = sqsCalls.Close() })
	counted := direct
	counted.DynamoDBEndpoint, counted.SQSEndpoint = dynamoCalls.URL(), sqsCalls.URL()
	floorClients, err := awsclient.New(r.Context(), counted.Options())
	if err != nil {
		r.Fatalf("floor clients: %v", err)
	}

	// The processes talk to the counters directly (no fault proxy in the way):
	// the same path as the floor clients'.
	env := map[string]string{
		"AWS_ENDPOINT_URL_DYNAMODB": counted.DynamoDBEndpoint,
		"AWS_ENDPOINT_URL_SQS":      counted.SQSEndpoint,
		"WAHOOK_LOG_LEVEL":          "warn",
		"WAHOOK_PPROF":              strconv.FormatBool(c.profile != ""),
	}
	s := harness.NewStack(r, harness.StackOptions{Env: env})
	for range c.ingests {
		s.StartIngest(settings(c.ingestEnv))
	}
	b := &bench{r: r, c: c, suite: suite, stack: s, dynamo: dynamoCalls, sqs: sqsCalls, counted: floorClients,
		gen: harness.NewGen(c.seed), meter: newMeter(&direct)}
	b.startWorkers(c.workers, c.processors)

	rep := &Report{
		Date: time.Now().UTC().Format(time.RFC3339), Machine: machine(), Backend: direct.String(),
		Setup: fmt.Sprintf("%d ingest, %d worker × %d processors, handlers %q, receive wait %v; webhooks of %d events, %d in flight at most%s",
			c.ingests, c.workers, c.processors, c.handlers, receiveWait, c.batch, c.conc, cmpOr(c.ingestEnv, "; ingest "+c.ingestEnv)+cmpOr(c.workerEnv, "; worker "+c.workerEnv)),
	}
	log.Printf("%s; %s", rep.Backend, rep.Setup)

	// Warm-up: connections, tables' first writes, the JIT of the emulators.
	b.deliverAt(b.payloads(200), 200, 0)

	log.Printf("maximum rate: %d events", c.events)
	procs := b.procs()
	before := sample(r, procs)
	b.dynamo.Reset()
	b.sqs.Reset()
	var profiles sync.WaitGroup
	if c.profile != "" {
		profiles.Go(func() { rep.Profiles = b.captureProfiles(c.profile) })
	}
	b.measure("maximum rate", func() { rep.Max = b.deliverAt(b.payloads(c.events), c.events, 0) })
	rep.Calls = map[string]map[string]float64{
		"DynamoDB": perEvent(b.dynamo.Counts(), c.events), "SQS": perEvent(b.sqs.Counts(), c.events),
	}
	rep.Processes = cost(procs, before, sample(r, procs), c.events)
	profiles.Wait()

	if !b.skip("sustained") {
		rate := 0.7 * rep.Max.EndToEndPerSec / float64(c.batch)
		n := max(1, int(rate*c.sustain.Seconds()))
		log.Printf("sustained rate: %.1f webhooks/s for %v", rate, c.sustain)
		var l load
		b.measure("sustained rate", func() { l = b.deliverAt(b.payloads(n*c.batch), n*c.batch, rate) })
		rep.Sustained = &l
	}
	if !b.skip("floor") {
		b.measure("same-calls floor sweep", func() { rep.Floor = b.floor() })
		if best := rep.Floor.Best(); best.SameRequestsPerSec > 0 {
			rep.Ratio = rep.Max.EndToEndPerSec / best.SameRequestsPerSec
		}
		if minimal := rep.Floor.Minimal(); minimal.EventsPerSec > 0 {
			rep.RatioMin = rep.Max.EndToEndPerSec / minimal.EventsPerSec
		}
		if c.ratioReps > 0 {
			rep.RatioRounds = b.ratioRounds(rep.Floor.Best().Conc)
		}
	}
	if !b.skip("big") {
		if c.profile != "" {
			rep.Profiles = append(rep.Profiles, b.allocProfile(c.profile, "before-big"))
		}
		rep.Big = b.big()
		if c.profile != "" {
			rep.Profiles = append(rep.Profiles, b.allocProfile(c.profile, "after-big"))
			for _, run := range rep.Big.Runs {
				rep.Profiles = append(rep.Profiles, run.Profiles...)
			}
		}
	}
	if !b.skip("scaling") {
		rep.Scaling = b.scaling()
	}
	if c.soak > 0 {
		rep.Soak = b.soakRun(rep.Max.EndToEndPerSec)
	}
	s.CheckProcesses()
	rep.CPU = b.cpu
	return rep
}

// receiveWait is the workers' long poll. A stopped worker's long polls live on
// in the queue until they end, and take messages that then stay invisible for
// the visibility timeout: after stopping workers the bench waits them out, and
// a short wait keeps that pause short. Under load receives return at once.
const receiveWait = 5 * time.Second

// startWorkers stops the running workers and starts n with p processors each.
func (b *bench) startWorkers(n, p int) {
	stopped := false
	for _, w := range b.stack.Processes(harness.RoleWorker) {
		if _, err := w.Terminate(30 * time.Second); err != nil {
			b.r.Fatalf("stop %s: %v", w.Name, err)
		}
		stopped = true
	}
	if stopped {
		time.Sleep(receiveWait + time.Second) // the stopped workers' last long polls end
	}
	env := settings(b.c.workerEnv)
	env["WAHOOK_HANDLERS"], env["WAHOOK_RECEIVE_WAIT"] = b.c.handlers, receiveWait.String()
	for range n {
		b.stack.StartWorker(harness.WorkerOptions{Processors: p, Env: env})
	}
}

// settings parses K=V,K=V.
func settings(list string) map[string]string {
	out := map[string]string{}
	for kv := range strings.SplitSeq(list, ",") {
		if k, v, ok := strings.Cut(kv, "="); ok {
			out[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
	}
	return out
}

func cmpOr(cond, s string) string {
	if cond == "" {
		return ""
	}
	return s
}

func (b *bench) procs() []*harness.Process { return b.stack.Processes("") }

// payloads are n fresh events in webhooks of c.batch.
func (b *bench) payloads(n int) [][]byte {
	var out [][]byte
	for n > 0 {
		k := min(b.c.batch, n)
		out = append(out, b.gen.Payload(b.gen.Messages(k), nil).JSON())
		n -= k
	}
	return out
}

// deliverAt posts bodies holding events at rate webhooks/s (0: as fast as
// possible) and waits until the workers have done every event.
func (b *bench) deliverAt(bodies [][]byte, events int, rate float64) load {
	base := b.done()
	began := time.Now()
	l, m, err := attack(b.r.Context(), b.stack, bodies, rate, b.c.conc)
	if err != nil {
		b.r.Fatalf("load: %v", err)
	}
	answered := time.Now()
	b.awaitDone(base + events)
	completed := time.Since(began)
	l.Events = events
	l.AcceptedPerSec = float64(events) * m.Success / m.Duration.Seconds()
	l.EndToEndPerSec = float64(events) / completed.Seconds()
	l.Backlog = time.Since(answered)
	return l
}

func (b *bench) done() int {
	n, err := b.stack.SumMetric(b.r.Context(), harness.RoleWorker, "wahook_worker_events_total", "result", "done")
	if err != nil {
		b.r.Fatalf("%v", err)
	}
	return int(n)
}

func (b *bench) awaitDone(n int) { awaitDone(b.r, b.stack, n) }

// awaitDone waits until the running workers' done counters reach n: polling
// their /metrics costs the backend nothing, unlike scanning the ledger.
func awaitDone(r *runner, s *harness.Stack, n int) {
	harness.Eventually(r, 10*time.Minute, "events done", func(ctx context.Context) error {
		done, err := s.SumMetric(ctx, harness.RoleWorker, "wahook_worker_events_total", "result", "done")
		if err != nil {
			return err
		}
		if int(done) < n {
			return fmt.Errorf("%d of %d done", int(done), n)
		}
		return nil
	})
}

func perEvent(counts map[string]int64, events int) map[string]float64 {
	out := make(map[string]float64, len(counts))
	for op, n := range counts {
		out[op] = float64(n) / float64(events)
	}
	return out
}

func sample(r *runner, procs []*harness.Process) map[int]procSample {
	out := map[int]procSample{}
	for _, p := range procs {
		s, err := readProc(p.Pid())
		if err != nil {
			r.Fatalf("%s: %v", p.Name, err)
		}
		out[p.Pid()] = s
	}
	return out
}

func cost(procs []*harness.Process, before, after map[int]procSample, events int) []procCost {
	var out []procCost
	for _, p := range procs {
		b, a := before[p.Pid()], after[p.Pid()]
		out = append(out, procCost{
			Name: p.Name, CPUSecondsPer1k: (a.CPUSeconds - b.CPUSeconds) * 1000 / float64(events),
			PeakRSSMB: mb(a.PeakBytes), RSSMB: mb(a.RSSBytes),
		})
	}
	return out
}

func mb(n int64) float64 { return float64(n) / (1 << 20) }

// machine describes the host: CPU model, cores, kernel.
func machine() string {
	model := "unknown CPU"
	if raw, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.Lines(string(raw)) {
			if name, val, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(name) == "model name" {
				model = strings.TrimSpace(val)
				break
			}
		}
	}
	kernel, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	return fmt.Sprintf("%s, %d cores, Linux %s", model, numCPU(), strings.TrimSpace(string(kernel)))
}

func sortedKeys[V any](m map[string]V) []string { return slices.Sorted(maps.Keys(m)) }

// runner is the harness's TB for this command.
type runner = harness.Command

func newRunner(timeout time.Duration) *runner { return harness.NewCommand("bench", timeout) }
