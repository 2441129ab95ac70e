package scenarios

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/wahook/wahook/e2e/harness"
)

// Scenario 8: SIGTERM a worker under load. With time to spare, its in-flight
// handlers finish and nothing runs twice; when its shutdown timeout cuts them
// short, it gives them back and the other worker picks them up within 2 s.
func TestGracefulShutdown(t *testing.T) {
	s := harness.NewStack(t, harness.StackOptions{Visibility: 10 * time.Second})
	s.StartIngest(nil)
	g := harness.NewGen(seed(t))
	ctx := t.Context()

	// Phase 1: under load, in-flight handlers finish.
	a := s.StartWorker(harness.WorkerOptions{Processors: 4, AuditDelay: 300 * time.Millisecond})
	b := s.StartWorker(harness.WorkerOptions{Processors: 4, AuditDelay: 300 * time.Millisecond})
	payloads := g.Batches(g.Messages(form(300, 1000)), 5)
	finishKeys := keysOf(payloads)
	var load sync.WaitGroup
	var loadErr error
	lctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	load.Go(func() { _, loadErr = s.Client().DeliverAll(lctx, bodiesOf(payloads), 2) })

	harness.Eventually(t, 30*time.Second, a.Name+" busy", func(ctx context.Context) error {
		h, err := a.Health(ctx)
		if err != nil {
			return err
		}
		if h.InFlight() < 4 {
			return fmt.Errorf("%d in flight", h.InFlight())
		}
		return nil
	})
	h, _ := a.Health(ctx)
	took, err := a.Terminate(30 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.ExitErr(); err != nil {
		t.Errorf("%s exit after SIGTERM: %v, want status 0", a.Name, err)
	}
	t.Logf("phase 1: SIGTERM to %s with %d events in flight; it exited in %v", a.Name, h.InFlight(), took.Round(time.Millisecond))
	load.Wait()
	if loadErr != nil {
		t.Fatal(loadErr)
	}
	s.AwaitSettled(finishKeys, 2*time.Minute)

	// Phase 2: handlers longer than the shutdown timeout are given back.
	if _, err := b.Terminate(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	const shutdown = time.Second
	// More processors than events: some of c's are polling when it gets
	// SIGTERM. SQS (AWS, LocalStack, ElasticMQ alike) keeps a long poll its
	// client abandoned open and hides what it takes for the visibility
	// timeout: the given-back events must not go there.
	c := s.StartWorker(harness.WorkerOptions{Processors: 10, AuditDelay: 30 * time.Second, ShutdownTimeout: shutdown})
	owners, err := c.ProcessorIDs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	long := []harness.Payload{g.Payload(g.Messages(8), nil)}
	longKeys := keysOf(long)
	dctx, dcancel := context.WithTimeout(ctx, time.Minute)
	defer dcancel()
	if _, err := s.Client().DeliverAll(dctx, bodiesOf(long), 1); err != nil {
		t.Fatal(err)
	}
	// A processor handles one receive at a time: how many of the 8 the worker
	// holds depends on how SQS spread them over its 4 long polls.
	var giveBackKeys []string
	harness.Eventually(t, 30*time.Second, c.Name+" holding events", func(ctx context.Context) error {
		held, err := s.Held(ctx, owners)
		if err != nil {
			return err
		}
		if len(held) < 4 {
			return fmt.Errorf("%d held", len(held))
		}
		giveBackKeys = held
		return nil
	})
	d := s.StartWorker(harness.WorkerOptions{Processors: 4})
	harness.Eventually(t, 30*time.Second, d.Name+" polling", func(ctx context.Context) error {
		h, err := d.Health(ctx)
		if err != nil {
			return err
		}
		for _, p := range h.Processors {
			if p.Status != "polling" && p.Status != "processing" {
				return fmt.Errorf("processor %s is %s", p.ID, p.Status)
			}
		}
		return nil
	})

	// The other worker now takes whatever the first did not receive: the
	// events held at this point are the ones the shutdown cuts short.
	if giveBackKeys, err = s.Held(ctx, owners); err != nil {
		t.Fatal(err)
	}
	harness.Eventually(t, 30*time.Second, c.Name+" polling", func(ctx context.Context) error {
		h, err := c.Health(ctx)
		if err != nil {
			return err
		}
		for _, p := range h.Processors {
			if p.Status == "polling" {
				return nil
			}
		}
		return errors.New("no processor polling")
	})
	sigterm := time.Now()
	var exit time.Duration
	var exitErr error
	var stopping sync.WaitGroup
	stopping.Go(func() { exit, exitErr = c.Terminate(30 * time.Second) })
	// The handlers are cut at sigterm+shutdown and given back at once; the
	// other worker claims them (attempt 2).
	cutAt := sigterm.Add(shutdown)
	picked := map[string]time.Duration{}
	deadline := time.After(20 * time.Second)
	tick := time.NewTicker(25 * time.Millisecond) // the measurement's resolution
	defer tick.Stop()
watch:
	for len(picked) < len(giveBackKeys) {
		items, err := s.Ledger(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range giveBackKeys {
			if _, seen := picked[k]; !seen && items[k].Attempt >= 2 {
				picked[k] = time.Since(cutAt)
			}
		}
		select {
		case <-tick.C:
		case <-deadline:
			break watch
		}
	}
	stopping.Wait()
	if exitErr != nil {
		t.Fatal(exitErr)
	}
	if err := c.ExitErr(); err != nil {
		t.Errorf("%s exit after SIGTERM: %v, want status 0", c.Name, err)
	}
	var slowest time.Duration
	for _, d := range picked {
		slowest = max(slowest, d)
	}
	t.Logf("phase 2: SIGTERM to %s holding %d events in 30 s handlers, shutdown timeout %v: exited in %v; "+
		"%d events re-claimed by %s, the last %v after the handlers were cut",
		c.Name, len(giveBackKeys), shutdown, exit.Round(time.Millisecond), len(picked), d.Name, slowest.Round(10*time.Millisecond))
	if len(picked) < len(giveBackKeys) {
		t.Errorf("only %d of %d given-back events were picked up within 20 s", len(picked), len(giveBackKeys))
	}
	if slowest > 2*time.Second {
		t.Errorf("given-back events picked up %v after the handlers were cut, want within 2 s", slowest)
	}

	keys := append(finishKeys, longKeys...)
	s.AwaitSettled(keys, time.Minute)
	s.CheckInvariants(harness.Expect{Keys: keys, Reinvocable: harness.KeysIn(giveBackKeys...)})
}
