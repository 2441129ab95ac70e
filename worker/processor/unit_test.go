package processor

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
)

func TestBackoff(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		attempt  int
		min, max time.Duration
	}{
		{1, 500 * time.Millisecond, time.Second},
		{2, time.Second, 2 * time.Second},
		{4, 4 * time.Second, 8 * time.Second},
		{30, 150 * time.Second, 5 * time.Minute}, // capped
	} {
		for range 200 {
			d := backoff(tc.attempt, time.Second, 5*time.Minute)
			if d < tc.min || d > tc.max {
				t.Fatalf("backoff(%d) = %s, want within [%s, %s]", tc.attempt, d, tc.min, tc.max)
			}
		}
	}
}

func TestVisibilitySeconds(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		d    time.Duration
		min  int32
		want int32
	}{
		{0, 0, 0},
		{0, 1, 1},
		{-time.Second, 1, 1},
		{1500 * time.Millisecond, 1, 2},
		{2 * time.Second, 1, 2},
		{24 * time.Hour, 1, 43200},
	} {
		if got := visibilitySeconds(tc.d, tc.min); got != tc.want {
			t.Errorf("visibilitySeconds(%s, %d) = %d, want %d", tc.d, tc.min, got, tc.want)
		}
	}
}

func TestErrorClassification(t *testing.T) {
	t.Parallel()
	base := errors.New("boom")
	perm := fmt.Errorf("handler: %w", Permanent(base))
	if !IsPermanent(perm) || !errors.Is(perm, base) {
		t.Errorf("wrapped Permanent: IsPermanent %v, Is(base) %v", IsPermanent(perm), errors.Is(perm, base))
	}
	if IsPermanent(base) || Permanent(nil) != nil || RetryAfter(time.Second, nil) != nil {
		t.Error("plain errors must be retryable; nil must stay nil")
	}
	ra := fmt.Errorf("forward: %w", RetryAfter(7*time.Second, base))
	if d, ok := RequestedDelay(ra); !ok || d != 7*time.Second || IsPermanent(ra) {
		t.Errorf("RequestedDelay = %s, %v", d, ok)
	}
	if _, ok := RequestedDelay(base); ok {
		t.Error("a plain error requests no delay")
	}
}

func TestChainStopsAtFirstError(t *testing.T) {
	t.Parallel()
	var ran []int
	mk := func(i int, err error) Handler {
		return HandlerFunc(func(context.Context, Event) error { ran = append(ran, i); return err })
	}
	err := Chain(mk(1, nil), mk(2, Permanent(errors.New("no"))), mk(3, nil)).Handle(t.Context(), Event{})
	if !IsPermanent(err) || len(ran) != 2 {
		t.Errorf("err %v, ran %v; want the permanent error after handlers 1 and 2", err, ran)
	}
}

// The breaker opens at the threshold of consecutive failures (a success in
// between resets the count), blocks Wait while open, probes with backoff and
// closes on the first successful probe.
func TestBreaker(t *testing.T) {
	t.Parallel()
	var probes atomic.Int32
	var healthy atomic.Bool
	var mu sync.Mutex
	var changes []BreakerState
	b := newBreaker(3, func(ctx context.Context) error {
		probes.Add(1)
		if healthy.Load() {
			return nil
		}
		return errors.New("still down")
	}, 10*time.Millisecond, 40*time.Millisecond, time.Second, zap.NewNop(), func(s BreakerState) {
		mu.Lock()
		changes = append(changes, s)
		mu.Unlock()
	})
	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	wg.Go(func() { b.run(ctx) })
	t.Cleanup(func() { cancel(); wg.Wait() })

	b.Failure()
	b.Failure()
	b.Success()
	b.Failure()
	if b.Failure() || b.State() != BreakerClosed {
		t.Fatal("breaker opened before 3 consecutive failures")
	}
	if !b.Failure() || b.State() != BreakerOpen {
		t.Fatal("breaker not open after 3 consecutive failures")
	}
	waited := make(chan error, 1)
	go func() { waited <- b.Wait(ctx) }()
	deadline := time.Now().Add(5 * time.Second)
	for probes.Load() < 3 {
		if time.Now().After(deadline) {
			t.Fatal("breaker does not probe")
		}
		time.Sleep(5 * time.Millisecond)
	}
	select {
	case <-waited:
		t.Fatal("Wait returned while the breaker is open")
	default:
	}
	healthy.Store(true)
	select {
	case err := <-waited:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Wait still blocked after a successful probe")
	}
	if b.State() != BreakerClosed {
		t.Error("breaker not closed after a successful probe")
	}
	mu.Lock()
	defer mu.Unlock()
	if len(changes) != 2 || changes[0] != BreakerOpen || changes[1] != BreakerClosed {
		t.Errorf("state changes %v, want [open closed]", changes)
	}
	// Wait returns at once when closed, and honours ctx when open.
	if err := b.Wait(ctx); err != nil {
		t.Error(err)
	}
}
