package audit_test

import (
	"errors"
	"strconv"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/wahook/wahook/worker/handlers/audit"
)

func TestFailsFirstAttemptIsASeededShare(t *testing.T) {
	t.Parallel()
	const n = 20000
	picked, differs := 0, 0
	for i := range n {
		k := "msg#wamid." + strconv.Itoa(i)
		a := audit.FailsFirstAttempt(k, 0.1, 7)
		if a != audit.FailsFirstAttempt(k, 0.1, 7) {
			t.Fatalf("%s: not deterministic", k)
		}
		if a {
			picked++
		}
		if a != audit.FailsFirstAttempt(k, 0.1, 8) {
			differs++
		}
		if audit.FailsFirstAttempt(k, 0, 7) {
			t.Fatalf("%s fails at rate 0", k)
		}
	}
	if share := float64(picked) / n; share < 0.09 || share > 0.11 {
		t.Errorf("rate 0.1 picked %.3f of the keys", share)
	}
	if differs == 0 {
		t.Error("another seed picks the same keys")
	}
}

// An injected failure ends the first attempt before anything is recorded as
// finished; runs that finish append to their conversation's sequence, none
// lost under concurrent appends.
func TestSequenceAndInjectedFailure(t *testing.T) {
	t.Parallel()
	db, table := setup(t)
	_, seqTable := setup(t)
	h, err := audit.New(db, audit.Options{Table: table, SequenceTable: seqTable, FailRate: 1})
	if err != nil {
		t.Fatal(err)
	}
	first := event("SEQ0", 1, "p1")
	if err := h.Handle(t.Context(), first); !errors.Is(err, audit.ErrInjected) {
		t.Fatalf("first attempt: %v, want ErrInjected", err)
	}
	if it := read(t, db, table, first.Key()); it[audit.AttrFinishes] != nil {
		t.Errorf("failed first attempt recorded as finished: %v", it)
	}
	const runs = 20
	var wg sync.WaitGroup
	for i := range runs {
		wg.Go(func() {
			if err := h.Handle(t.Context(), event("SEQ"+strconv.Itoa(i), 2, "p1")); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	group := first.Envelope.GroupID()
	seq, _ := read(t, db, seqTable, group)[audit.AttrSequence].(*types.AttributeValueMemberL)
	if seq == nil || len(seq.Value) != runs {
		t.Fatalf("sequence of %q: %v, want %d entries", group, seq, runs)
	}
	seen := map[string]bool{}
	for _, e := range seq.Value {
		seen[e.(*types.AttributeValueMemberS).Value] = true
	}
	if !seen["msg#SEQ0#2"] || len(seen) != runs {
		t.Errorf("sequence entries %v: want %d distinct <key>#<attempt>", seen, runs)
	}
}
