package processor

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/aws"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
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
		d, since time.Duration
		min      int32
		want     int32
	}{
		{0, 0, 0, 0},
		{0, 0, 1, 1},
		{-time.Second, 0, 1, 1},
		{1500 * time.Millisecond, 0, 1, 2},
		{2 * time.Second, 0, 1, 2},
		{24 * time.Hour, 0, 1, 43200},
		// SQS's 12 hours run from the receive, not from now.
		{12 * time.Hour, time.Hour, 1, 11 * 3600},
		{5 * time.Minute, 11*time.Hour + 58*time.Minute, 1, 120},
		{5 * time.Minute, 11*time.Hour + 58*time.Minute + 500*time.Millisecond, 1, 119}, // rounded down at the cap
		{10 * time.Second, 11 * time.Hour, 1, 10},                                       // under the cap: unchanged
		{time.Minute, 13 * time.Hour, 0, 0},
	} {
		if got := visibilitySeconds(tc.d, tc.since, tc.min); got != tc.want {
			t.Errorf("visibilitySeconds(%s, since receive %s, %d) = %d, want %d", tc.d, tc.since, tc.min, got, tc.want)
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
// turns half-open on the first successful probe: one waiter at a time gets
// the trial receive; a ledger answer closes it, a failure reopens it at once.
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
	go func() {
		trial, err := b.Wait(ctx)
		if err == nil && !trial {
			err = errors.New("Wait returned without the trial while not closed")
		}
		waited <- err
	}()
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
	if b.State() != BreakerHalfOpen {
		t.Fatalf("breaker %s after a successful probe, want half-open", b.State())
	}
	// Half-open: the trial is taken; a second waiter blocks until it is
	// handed back, then gets it.
	second := make(chan bool, 1)
	go func() {
		trial, err := b.Wait(ctx)
		second <- err == nil && trial
	}()
	select {
	case <-second:
		t.Fatal("a second waiter got a receive while the trial is held")
	case <-time.After(100 * time.Millisecond):
	}
	b.endTrial()
	select {
	case ok := <-second:
		if !ok {
			t.Fatal("the second waiter did not get the trial")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the trial handed back was not given to the second waiter")
	}
	// A transient failure half-open reopens at once, below the threshold.
	if !b.Failure() || b.State() != BreakerOpen {
		t.Fatalf("breaker %s after a failure half-open, want open", b.State())
	}
	deadline = time.Now().Add(5 * time.Second)
	for b.State() != BreakerHalfOpen {
		if time.Now().After(deadline) {
			t.Fatal("breaker not half-open again after a successful probe")
		}
		time.Sleep(5 * time.Millisecond)
	}
	b.Success()
	if b.State() != BreakerClosed {
		t.Fatalf("breaker %s after a ledger answer half-open, want closed", b.State())
	}
	mu.Lock()
	defer mu.Unlock()
	want := []BreakerState{BreakerOpen, BreakerHalfOpen, BreakerOpen, BreakerHalfOpen, BreakerClosed}
	if fmt.Sprint(changes) != fmt.Sprint(want) {
		t.Errorf("state changes %v, want %v", changes, want)
	}
	// Wait returns at once when closed, without a trial.
	if trial, err := b.Wait(ctx); err != nil || trial {
		t.Errorf("Wait closed: trial %v, err %v", trial, err)
	}
}

// A dead-letter copy keeps the original attributes when it fits SQS's 256
// KiB; else it drops them and cuts the error to fit; when even the bare
// attributes do not fit beside the body, it has none.
func TestDeadLetterAttributes(t *testing.T) {
	t.Parallel()
	str := func(s string) sqstypes.MessageAttributeValue {
		return sqstypes.MessageAttributeValue{DataType: aws.String("String"), StringValue: aws.String(s)}
	}
	original := map[string]sqstypes.MessageAttributeValue{"key": str("msg#" + strings.Repeat("k", 100)), "kind": str("message")}
	reason := strings.Repeat("é", maxReasonLen/2) // 1 KiB of 2-byte runes
	ours := map[string]sqstypes.MessageAttributeValue{
		DLQAttrError: str(reason), DLQAttrReason: str("failed"), DLQAttrProcessor: str("host-1-abcd-p1"),
		DLQAttrMessageID: str("6c3f0b1e-8f2a-4d5b-9c1e-0a1b2c3d4e5f"),
		DLQAttrAttempt:   {DataType: aws.String("Number"), StringValue: aws.String("3")},
	}
	bare := attributesSize(ours) - len(reason) // ours with an empty error value
	noError := bare - len(DLQAttrError) - len("String")
	for _, tc := range []struct {
		name       string
		body       int
		wantNames  int  // attributes kept
		wantOrig   bool // the original ones among them
		wantErrLen int  // bytes of the error kept (-1: no error attribute)
	}{
		{"small body keeps everything", 1000, 7, true, len(reason)},
		{"ingest-sized body drops the originals", DefaultMaxMessageBytes - attributesSize(ours) - 10, 5, false, len(reason)},
		{"error cut to fit", DefaultMaxMessageBytes - bare - 101, 5, false, 100},
		{"error cut on a rune boundary", DefaultMaxMessageBytes - bare - 99, 5, false, 98},
		{"no room for the error", DefaultMaxMessageBytes - noError, 4, false, -1},
		{"no room at all", DefaultMaxMessageBytes - 10, 0, false, -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := deadLetterAttributes(DefaultMaxMessageBytes, tc.body, original, ours)
			if len(got) != tc.wantNames {
				t.Errorf("%d attributes, want %d", len(got), tc.wantNames)
			}
			if _, ok := got["key"]; ok != tc.wantOrig {
				t.Errorf("original attributes kept: %v, want %v", ok, tc.wantOrig)
			}
			if tc.body+attributesSize(got) > DefaultMaxMessageBytes {
				t.Errorf("body %d + attributes %d over SQS's %d", tc.body, attributesSize(got), DefaultMaxMessageBytes)
			}
			e, ok := got[DLQAttrError]
			switch {
			case tc.wantErrLen < 0 && ok:
				t.Errorf("error attribute kept (%d bytes), want none", len(aws.ToString(e.StringValue)))
			case tc.wantErrLen >= 0 && (!ok || len(aws.ToString(e.StringValue)) != tc.wantErrLen || !utf8.ValidString(aws.ToString(e.StringValue))):
				t.Errorf("error attribute %d bytes (present %v), want %d of valid UTF-8", len(aws.ToString(e.StringValue)), ok, tc.wantErrLen)
			}
			if aws.ToString(ours[DLQAttrError].StringValue) != reason {
				t.Error("ours modified")
			}
		})
	}
}
