// Command bench measures wahook end to end — webhook latency, throughput,
// backend calls per event — against the same backends the race suite uses,
// and in the same run the raw floor of those backends (PutItem, SendMessage,
// both per event, at the same concurrency). It prints numbers and asserts
// nothing.
//
//	go run ./cmd/bench -events 2000 -batch 10 -conc 16
//
// The backend is chosen as in the suite (WAHOOK_E2E_BACKEND, Docker,
// endpoints from the environment, the local emulators).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"maps"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	dbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/wahook/wahook/e2e/harness"
	"github.com/wahook/wahook/shared/awstest"
	"github.com/wahook/wahook/shared/ledger"
)

type config struct {
	events     int
	batch      int
	conc       int
	ingests    int
	workers    int
	processors int
	handlers   string
	timeout    time.Duration
	seed       uint64
	// fifo and conversations: fifo.go.
	fifo          bool
	conversations int
}

func main() {
	var c config
	flag.IntVar(&c.events, "events", 2000, "events to send in the measured run")
	flag.IntVar(&c.batch, "batch", 10, "events per webhook")
	flag.IntVar(&c.conc, "conc", 16, "webhooks in flight (and the floor's concurrency)")
	flag.IntVar(&c.ingests, "ingests", 2, "ingest processes")
	flag.IntVar(&c.workers, "workers", 2, "worker processes")
	flag.IntVar(&c.processors, "processors", 4, "processors per worker")
	flag.StringVar(&c.handlers, "handlers", "store", "WAHOOK_HANDLERS of the workers (store, store,audit)")
	flag.DurationVar(&c.timeout, "timeout", 10*time.Minute, "bound on the whole run")
	flag.Uint64Var(&c.seed, "seed", uint64(time.Now().UnixNano()), "payload generator seed")
	flag.BoolVar(&c.fifo, "fifo", false, "compare a FIFO queue with a standard one on a conversation workload (fifo.go)")
	flag.IntVar(&c.conversations, "conversations", 100, "with -fifo: conversations the events are spread over")
	flag.Parse()
	log.SetFlags(log.Ltime | log.Lmicroseconds)
	log.SetPrefix("bench: ")
	if c.events < 1 || c.batch < 1 || c.conc < 1 || c.ingests < 1 || c.workers < 1 || c.processors < 1 {
		log.Fatal("every count must be at least 1")
	}

	r := newRunner(c.timeout)
	defer r.finish()
	if c.fifo {
		runFIFO(r, c)
		return
	}
	run(r, c)
}

func run(r *runner, c config) {
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
	// The processes reach the backend through their links and then the
	// counters; the bench's own reads go direct.
	counted := direct
	counted.DynamoDBEndpoint, counted.SQSEndpoint = dynamoCalls.URL(), sqsCalls.URL()
	suite.Backend = &counted

	s := harness.NewStack(r, harness.StackOptions{})
	for range c.ingests {
		s.StartIngest(nil)
	}
	workerOpts := harness.WorkerOptions{Processors: c.processors, Env: map[string]string{"WAHOOK_HANDLERS": c.handlers}}
	for range c.workers {
		s.StartWorker(workerOpts)
	}
	client := s.Client()
	g := harness.NewGen(c.seed)
	ctx := r.Context()

	fmt.Printf("wahook bench: %s\n", direct.String())
	fmt.Printf("  %d ingest, %d worker × %d processors, handlers %q; %d events in webhooks of %d, %d in flight\n",
		c.ingests, c.workers, c.processors, c.handlers, c.events, c.batch, c.conc)

	// Warm-up: connections, JIT, tables' first writes. Not measured.
	warm := g.Batches(g.Messages(100), c.batch)
	if _, err := client.DeliverAll(ctx, bodies(warm), c.conc); err != nil {
		r.Fatalf("warm-up: %v", err)
	}
	awaitDone(r, s, 100)
	dynamoCalls.Reset()
	sqsCalls.Reset()
	client.Latencies.Reset()

	// Measured run: as fast as c.conc webhooks in flight allow.
	var payloads []harness.Payload
	for left := c.events; left > 0; {
		k := min(c.batch, left)
		payloads = append(payloads, g.Payload(g.Messages(k), nil))
		left -= k
	}
	began := time.Now()
	ds, err := client.DeliverAll(ctx, bodies(payloads), c.conc)
	if err != nil {
		r.Fatalf("run: %v", err)
	}
	accepted := time.Since(began)
	retries := 0
	for _, d := range ds {
		retries += d.Retries()
	}
	awaitDone(r, s, 100+c.events)
	completed := time.Since(began)
	dCounts, sCounts := dynamoCalls.Counts(), sqsCalls.Counts()
	lat := client.Latencies.Summary()

	fmt.Printf("\nwebhooks: %d accepted in %v: %.0f events/s, %.0f webhooks/s (%d Meta-style retries)\n",
		len(payloads), accepted.Round(time.Millisecond), float64(c.events)/accepted.Seconds(),
		float64(len(payloads))/accepted.Seconds(), retries)
	fmt.Printf("  latency %s\n", lat)
	fmt.Printf("completed: %d events %v after the first webhook: %.0f events/s end to end\n",
		c.events, completed.Round(time.Millisecond), float64(c.events)/completed.Seconds())
	fmt.Printf("backend calls per event (through the fault proxies and counters; empty long polls included):\n")
	printCalls("DynamoDB", dCounts, c.events)
	printCalls("SQS", sCounts, c.events)

	// Check the run, cheaply: every key done.
	items, err := s.Ledger(ctx)
	if err != nil {
		r.Fatalf("%v", err)
	}
	done := 0
	for _, it := range items {
		if it.State == ledger.StateDone {
			done++
		}
	}
	fmt.Printf("ledger: %d of %d items done\n", done, len(items))

	putRate := floor(r, suite, c)
	if perEvent := float64(sum(dCounts)) / float64(c.events); perEvent > 0 {
		fmt.Printf("\nceiling from the DynamoDB floor alone: %.0f conditional writes/s ÷ %.2f calls per event = %.0f events/s; measured %.0f (%.0f%%)\n",
			putRate, perEvent, putRate/perEvent, float64(c.events)/completed.Seconds(),
			100*float64(c.events)/completed.Seconds()/(putRate/perEvent))
	}
}

func sum(m map[string]int64) int64 {
	var n int64
	for _, v := range m {
		n += v
	}
	return n
}

// awaitDone waits until the workers' done counters reach n: polling the
// workers' /metrics costs the backend nothing, unlike scanning the ledger.
func awaitDone(r *runner, s *harness.Stack, n int) {
	harness.Eventually(r, 5*time.Minute, "events done", func(ctx context.Context) error {
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

func printCalls(service string, counts map[string]int64, events int) {
	var total int64
	var parts []string
	for _, op := range slices.Sorted(maps.Keys(counts)) {
		total += counts[op]
		parts = append(parts, fmt.Sprintf("%s %.2f", op, float64(counts[op])/float64(events)))
	}
	fmt.Printf("  %-8s %.2f  (%s)\n", service, float64(total)/float64(events), strings.Join(parts, ", "))
}

func bodies(ps []harness.Payload) [][]byte {
	out := make([][]byte, len(ps))
	for i, p := range ps {
		out[i] = p.JSON()
	}
	return out
}

// floor measures the backend itself, with the bench's direct clients, at the
// same concurrency: what no pipeline on these emulators can beat. It returns
// the conditional PutItem rate.
func floor(r *runner, suite *harness.Suite, c config) float64 {
	ctx := r.Context()
	db, q := suite.Clients.DynamoDB, suite.Clients.SQS
	table, queue := awstest.UniqueName("bench-floor"), awstest.UniqueName("bench-floor")
	if _, err := db.CreateTable(ctx, &dynamodb.CreateTableInput{
		TableName:            aws.String(table),
		BillingMode:          dbtypes.BillingModePayPerRequest,
		AttributeDefinitions: []dbtypes.AttributeDefinition{{AttributeName: aws.String("pk"), AttributeType: dbtypes.ScalarAttributeTypeS}},
		KeySchema:            []dbtypes.KeySchemaElement{{AttributeName: aws.String("pk"), KeyType: dbtypes.KeyTypeHash}},
	}); err != nil {
		r.Fatalf("floor table: %v", err)
	}
	r.Cleanup(func() {
		_, _ = db.DeleteTable(context.Background(), &dynamodb.DeleteTableInput{TableName: aws.String(table)})
	})
	out, err := q.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(queue)})
	if err != nil {
		r.Fatalf("floor queue: %v", err)
	}
	r.Cleanup(func() { _, _ = q.DeleteQueue(context.Background(), &sqs.DeleteQueueInput{QueueUrl: out.QueueUrl}) })

	var seq atomic.Int64
	put := func(ctx context.Context) error {
		_, err := db.PutItem(ctx, &dynamodb.PutItemInput{
			TableName: aws.String(table),
			Item: map[string]dbtypes.AttributeValue{
				"pk":    &dbtypes.AttributeValueMemberS{Value: fmt.Sprintf("msg#floor-%d", seq.Add(1))},
				"state": &dbtypes.AttributeValueMemberS{Value: "received"},
			},
			ConditionExpression: aws.String("attribute_not_exists(pk)"),
		})
		return err
	}
	send := func(ctx context.Context) error {
		_, err := q.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: out.QueueUrl, MessageBody: aws.String(`{"v":1,"key":"msg#floor"}`)})
		return err
	}
	fmt.Printf("\nraw backend floor (direct clients, %d in flight, %d operations each):\n", c.conc, c.events)
	var putRate float64
	for i, f := range []struct {
		name string
		op   func(ctx context.Context) error
	}{
		{"PutItem (conditional)", put},
		{"SendMessage", send},
		{"PutItem + SendMessage per event", func(ctx context.Context) error {
			if err := put(ctx); err != nil {
				return err
			}
			return send(ctx)
		}},
	} {
		rate, lat, err := hammer(ctx, c.events, c.conc, f.op)
		if err != nil {
			r.Fatalf("floor %s: %v", f.name, err)
		}
		fmt.Printf("  %-32s %6.0f /s   latency %s\n", f.name, rate, lat)
		if i == 0 {
			putRate = rate
		}
	}
	return putRate
}

// hammer runs op n times with conc in flight and returns the rate and latencies.
func hammer(ctx context.Context, n, conc int, op func(context.Context) error) (float64, harness.Summary, error) {
	var (
		next int64
		mu   sync.Mutex
		lat  = make([]time.Duration, 0, n)
		errs []error
		wg   sync.WaitGroup
	)
	began := time.Now()
	for range conc {
		wg.Go(func() {
			for atomic.AddInt64(&next, 1) <= int64(n) {
				t0 := time.Now()
				err := op(ctx)
				d := time.Since(t0)
				mu.Lock()
				lat = append(lat, d)
				if err != nil {
					errs = append(errs, err)
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	took := time.Since(began)
	return float64(n) / took.Seconds(), harness.Summarize(lat), errors.Join(errs...)
}

// runner is the harness's TB for a command: it logs, collects cleanups and
// runs them once at the end, or at the first fatal error.
type runner struct {
	ctx    context.Context
	cancel context.CancelFunc

	mu       sync.Mutex
	cleanups []func()
	failed   bool
	once     sync.Once
}

func newRunner(timeout time.Duration) *runner {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	return &runner{ctx: ctx, cancel: cancel}
}

func (r *runner) Helper()                           {}
func (r *runner) Name() string                      { return "bench" }
func (r *runner) Context() context.Context          { return r.ctx }
func (r *runner) Logf(format string, args ...any)   { log.Printf(format, args...) }
func (r *runner) Errorf(format string, args ...any) { r.fail(); log.Printf(format, args...) }
func (r *runner) Fatalf(format string, args ...any) {
	r.fail()
	log.Printf(format, args...)
	r.finish()
	os.Exit(1)
}
func (r *runner) Skipf(format string, args ...any) {
	log.Printf("cannot run: "+format, args...)
	r.finish()
	os.Exit(2)
}

func (r *runner) fail() {
	r.mu.Lock()
	r.failed = true
	r.mu.Unlock()
}

func (r *runner) Failed() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.failed
}

func (r *runner) Cleanup(f func()) {
	r.mu.Lock()
	r.cleanups = append(r.cleanups, f)
	r.mu.Unlock()
}

// finish runs the cleanups (last first) and stops the suite, once.
func (r *runner) finish() {
	r.once.Do(func() {
		r.mu.Lock()
		cs := r.cleanups
		r.cleanups = nil
		r.mu.Unlock()
		for i := len(cs) - 1; i >= 0; i-- {
			cs[i]()
		}
		harness.Shutdown(r.Failed())
		r.cancel()
	})
}
