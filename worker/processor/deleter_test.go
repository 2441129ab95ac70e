package processor

import (
	"context"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"go.uber.org/zap"
)

// batchQueue records DeleteMessageBatch calls and fails the receipts it is told to.
type batchQueue struct {
	Queue
	mu      sync.Mutex
	calls   [][]string
	failing map[string]bool
}

func (q *batchQueue) DeleteMessageBatch(_ context.Context, in *sqs.DeleteMessageBatchInput, _ ...func(*sqs.Options)) (*sqs.DeleteMessageBatchOutput, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	var receipts []string
	out := &sqs.DeleteMessageBatchOutput{}
	for _, e := range in.Entries {
		receipts = append(receipts, aws.ToString(e.ReceiptHandle))
		if q.failing[aws.ToString(e.ReceiptHandle)] {
			out.Failed = append(out.Failed, sqstypes.BatchResultErrorEntry{Id: e.Id, Code: aws.String("ReceiptHandleIsInvalid"), SenderFault: true})
		} else {
			out.Successful = append(out.Successful, sqstypes.DeleteMessageBatchResultEntry{Id: e.Id})
		}
	}
	q.calls = append(q.calls, receipts)
	return out, nil
}

func counterValue(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

// Deletes go out in batches of at most ten; a short timer flushes a partial
// batch; per-entry failures are counted, not mistaken for success.
func TestDeleterBatchesAndChecksEntries(t *testing.T) {
	t.Parallel()
	q := &batchQueue{failing: map[string]bool{"r3": true}}
	m, err := NewMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	opts := Options{QueueURL: "q", DeadLetterURL: "d", DeleteFlushInterval: 20 * time.Millisecond}
	if err := opts.setDefaults(); err != nil {
		t.Fatal(err)
	}
	pr := &processor{opts: &opts, deps: &Deps{Queue: q}, metrics: m, log: zap.NewNop(),
		breaker: newBreaker(5, nil, time.Second, time.Second, time.Second, zap.NewNop(), func(BreakerState) {})}
	d := newDeleter(pr)
	var wg sync.WaitGroup
	wg.Go(d.run)
	for i := range 12 {
		d.add(deletion{receipt: "r" + strconv.Itoa(i), log: zap.NewNop()})
	}
	// The two left over are flushed by the timer, before close.
	deadline := time.Now().Add(5 * time.Second)
	for {
		q.mu.Lock()
		n := len(q.calls)
		q.mu.Unlock()
		if n == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d DeleteMessageBatch calls, want 2", n)
		}
		time.Sleep(5 * time.Millisecond)
	}
	d.add(deletion{receipt: "r12", log: zap.NewNop()})
	d.close()
	wg.Wait()
	if len(q.calls) != 3 || len(q.calls[0]) != 10 || len(q.calls[1]) != 2 || len(q.calls[2]) != 1 {
		t.Errorf("calls %v, want batches of 10, 2 and 1 (the last flushed by close)", q.calls)
	}
	if ok, bad := counterValue(t, m.deletes.WithLabelValues("ok")), counterValue(t, m.deletes.WithLabelValues("error")); ok != 12 || bad != 1 {
		t.Errorf("deletes ok %v error %v, want 12 and 1", ok, bad)
	}
}
