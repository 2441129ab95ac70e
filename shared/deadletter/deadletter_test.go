package deadletter_test

import (
	"testing"

	"github.com/wahook/wahook/shared/deadletter"
	"github.com/wahook/wahook/shared/ledger"
)

func TestAttributesRoundTrip(t *testing.T) {
	t.Parallel()
	in := deadletter.Info{Reason: deadletter.ReasonFailed, Error: "boom", Attempt: 3, Processor: "h-1-x-p2", MessageID: "m-1",
		Key: "msg#w", Kind: "message"}
	got := deadletter.Parse(deadletter.Attributes(in))
	if got != in {
		t.Fatalf("round trip: %+v, want %+v", got, in)
	}
	if got.Fence() != ledger.DoneBy("h-1-x-p2", 3) {
		t.Fatalf("fence %q", got.Fence())
	}
	for _, tc := range []deadletter.Info{
		{Reason: deadletter.ReasonPoison, Processor: "p", Attempt: 1},
		{Reason: deadletter.ReasonFailed, Attempt: 1},
		{Reason: deadletter.ReasonFailed, Processor: "p"},
		{},
	} {
		if f := deadletter.Parse(deadletter.Attributes(tc)).Fence(); f != "" {
			t.Errorf("%+v: fence %q, want none (only a failed copy naming its claim reopens)", tc, f)
		}
	}
	if r := (deadletter.Info{}).DisplayReason(); r != deadletter.ReasonSQSRedrive {
		t.Errorf("no reason shows as %q", r)
	}
}
