package main

// -fifo: the same conversation workload on a standard and on a FIFO queue, in
// one run, one after the other on the same backend.

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/wahook/wahook/e2e/harness"
)

// fifoResult is one queue type's measured run.
type fifoResult struct {
	queue    string
	accepted time.Duration // all webhooks answered 200, no worker running
	drained  time.Duration // the workers, started on the full backlog, done
	heldBack float64
	retries  int
}

// runFIFO measures c.events events in c.conversations conversations, each
// conversation's webhooks sent in order (the next after the previous one's
// 200), c.conc conversations at once: first on a standard queue, then on a
// FIFO queue, with the same processes and settings. The workers start once
// every webhook is accepted, so that the drain measures the consumers alone.
func runFIFO(r *runner, c config) {
	if c.conversations < 1 || c.conversations > c.events {
		r.Fatalf("-conversations %d: want 1..-events (%d)", c.conversations, c.events)
	}
	suite := harness.Setup(r)
	fmt.Printf("wahook bench -fifo: %s\n", suite.Backend.String())
	per := max(1, c.events/c.conversations)
	fmt.Printf("  %d ingest, %d worker × %d processors, handlers %q; %d conversations × %d events in webhooks of 1..%d, %d conversations sending at once\n",
		c.ingests, c.workers, c.processors, c.handlers, c.conversations, per, c.batch, c.conc)
	var results []fifoResult
	for _, fifo := range []bool{false, true} {
		results = append(results, fifoRun(r, c, fifo, per))
	}
	events := c.conversations * per
	fmt.Printf("\n%-9s %18s %22s %10s\n", "queue", "accepted events/s", "workers drain events/s", "held back")
	for _, res := range results {
		fmt.Printf("%-9s %18.0f %22.0f %10.0f\n", res.queue, float64(events)/res.accepted.Seconds(),
			float64(events)/res.drained.Seconds(), res.heldBack)
	}
	if std, ff := results[0], results[1]; ff.drained > 0 {
		fmt.Printf("the workers drain a FIFO queue at %.0f%% of the standard queue's rate\n", 100*std.drained.Seconds()/ff.drained.Seconds())
	}
}

func fifoRun(r *runner, c config, fifo bool, per int) fifoResult {
	res := fifoResult{queue: "standard"}
	if fifo {
		res.queue = "FIFO"
	}
	s := harness.NewStack(r, harness.StackOptions{FIFO: fifo})
	for range c.ingests {
		s.StartIngest(nil)
	}
	workerOpts := harness.WorkerOptions{Processors: c.processors, Env: map[string]string{"WAHOOK_HANDLERS": c.handlers}}
	startWorkers := func() {
		for range c.workers {
			s.StartWorker(workerOpts)
		}
	}
	// The stack's processes stop when its run is measured, so that the next
	// run has the machine to itself.
	defer func() {
		for _, p := range s.Processes("") {
			p.Kill()
		}
	}()
	g := harness.NewGen(c.seed)
	ctx := r.Context()

	// Warm-up (not measured): connections, tables' first writes.
	startWorkers()
	warm := g.Conversations(10, 10, c.batch)
	sendConversations(r, ctx, s, warm, c.conc)
	awaitDone(r, s, 100)
	for _, w := range s.Processes(harness.RoleWorker) {
		if _, err := w.Terminate(30 * time.Second); err != nil {
			r.Fatalf("stop warm-up worker: %v", err)
		}
	}
	s.Client().Latencies.Reset()

	convs := g.Conversations(c.conversations, per, c.batch)
	began := time.Now()
	res.retries = sendConversations(r, ctx, s, convs, c.conc)
	res.accepted = time.Since(began)
	began = time.Now()
	startWorkers()
	awaitDone(r, s, c.conversations*per)
	res.drained = time.Since(began)
	held, err := s.SumMetric(ctx, harness.RoleWorker, "wahook_worker_events_total", "result", "held_back")
	if err != nil {
		r.Fatalf("%v", err)
	}
	res.heldBack = held
	fmt.Printf("  %-8s: accepted in %v (%d retries; webhook latency %s); workers drained the backlog in %v\n",
		res.queue, res.accepted.Round(time.Millisecond), res.retries, s.Client().Latencies.Summary(), res.drained.Round(time.Millisecond))
	return res
}

// sendConversations sends each conversation's webhooks in order, conc
// conversations at once, and returns the Meta-style retries.
func sendConversations(r *runner, ctx context.Context, s *harness.Stack, convs []harness.Conversation, conc int) int {
	sem := make(chan struct{}, max(1, conc))
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		retries int
	)
	for _, cv := range convs {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			for _, p := range cv.Payloads {
				d, err := s.Client().Deliver(ctx, p.JSON())
				if err != nil {
					r.Fatalf("conversation %s: %v", cv.Group, err)
				}
				mu.Lock()
				retries += d.Retries()
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return retries
}
