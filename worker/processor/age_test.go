package processor_test

import (
	"context"
	"testing"
	"time"

	"github.com/wahook/wahook/worker/processor"
)

// TestReceiveAge: every receive of a message is observed with its age since
// SQS's SentTimestamp.
func TestReceiveAge(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 10*time.Second)
	for i := range 3 {
		e.send(envelopeBody(t, key(i)))
	}
	r := e.start(processor.Options{}, processor.HandlerFunc(func(context.Context, processor.Event) error { return nil }))
	eventually(t, 20*time.Second, "3 events done", func() bool { return result(t, r, processor.ResultDone) == 3 })
	if n := metric(t, r.reg, "wahook_worker_receive_age_seconds", nil); n != 3 {
		t.Fatalf("receive age observed %v times, want 3 (one per receive)", n)
	}
}
