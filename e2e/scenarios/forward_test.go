package scenarios

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wahook/wahook/e2e/harness"
	"github.com/wahook/wahook/shared/ledger"
)

// targetLog is what a test HTTP server received: requests per event key
// (the forward handler's Idempotency-Key), in order.
type targetLog struct {
	mu    sync.Mutex
	byKey map[string][]targetRequest
	total int
}

type targetRequest struct {
	Method  string
	Attempt string
	Bytes   int
}

// The forward handler's request headers (worker/handlers/forward).
const (
	headerIdempotencyKey = "Idempotency-Key"
	headerAttempt        = "X-Wahook-Attempt"
)

func newTargetLog() *targetLog { return &targetLog{byKey: map[string][]targetRequest{}} }

// record reads r's body and notes the request under its event key.
func (l *targetLog) record(r *http.Request) string {
	b, _ := io.ReadAll(r.Body)
	key := r.Header.Get(headerIdempotencyKey)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.byKey[key] = append(l.byKey[key], targetRequest{Method: r.Method, Attempt: r.Header.Get(headerAttempt), Bytes: len(b)})
	l.total++
	return key
}

func (l *targetLog) snapshot() (map[string][]targetRequest, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make(map[string][]targetRequest, len(l.byKey))
	for k, v := range l.byKey {
		out[k] = append([]targetRequest(nil), v...)
	}
	return out, l.total
}

// Issue 7, case 7: the forward target redirects. The worker forwards each
// event (handlers audit then forward) to a test server on 127.0.0.1 that
// answers 301, 302, 303, 307 or 308 with a Location on a second test server
// (its query a token). A redirect is a permanent error naming the Location,
// redacted: the event is failed and dead-lettered at its first attempt, not
// done; the target got exactly one POST per event and the Location none
// (Go's client, left to follow, turns a 301/302/303 into a body-less GET and
// re-sends a 307/308 there: a 2xx on it would mark the event done though the
// target never took it).
func TestForwardRedirects(t *testing.T) {
	t.Parallel()
	codes := []int{http.StatusMovedPermanently, http.StatusFound, http.StatusSeeOther, http.StatusTemporaryRedirect, http.StatusPermanentRedirect}
	n := form(2, 10) * len(codes)
	const locationToken = "location-token-e2e-7b1d"

	elsewhere := newTargetLog()
	loc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		elsewhere.record(r)
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(loc.Close)
	g := harness.NewGen(seed(t))
	payloads := g.Batches(g.Messages(n), 1)
	keys := keysOf(payloads)
	codeOf := make(map[string]int, len(keys))
	for i, k := range keys {
		codeOf[k] = codes[i%len(codes)]
	}
	target := newTargetLog()
	tgt := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key := target.record(r)
		w.Header().Set("Location", loc.URL+"/moved/"+strings.ReplaceAll(key, "#", "-")+"?token="+locationToken)
		code := codeOf[key]
		if code == 0 {
			code = http.StatusNotFound // an unknown key: counted above, failed below
		}
		w.WriteHeader(code)
	}))
	t.Cleanup(tgt.Close)

	s := harness.NewStack(t, harness.StackOptions{})
	s.StartIngest(nil)
	s.StartWorker(harness.WorkerOptions{Processors: 4, Env: map[string]string{
		"WAHOOK_HANDLERS":       "audit,forward",
		"WAHOOK_FORWARD_URL":    tgt.URL + "/hook",
		"WAHOOK_FORWARD_SECRET": "e2e-forward-secret",
	}})
	fw := harness.FaultBegins("forward target answers 301/302/303/307/308")
	ctx, cancel := contextWithTimeout(t, 2*time.Minute)
	defer cancel()
	if _, err := s.Client().DeliverAll(ctx, bodiesOf(payloads), 4); err != nil {
		t.Fatal(err)
	}

	// Failed for good and dead-lettered, the queue drained.
	harness.Eventually(t, time.Minute, "every event failed and dead-lettered", func(ctx context.Context) error {
		items, err := s.Ledger(ctx)
		if err != nil {
			return err
		}
		byState := map[ledger.State]int{}
		for _, k := range keys {
			byState[items[k].State]++
		}
		q, dlq, err := s.Depth(ctx)
		if err != nil {
			return err
		}
		if byState[ledger.StateFailed] != n || dlq.Total() != n || q.Total() != 0 {
			return fmt.Errorf("ledger %v of %d; DLQ %s; queue %s", byState, n, dlq, q)
		}
		return nil
	})
	rep := s.Report(fw, keys)
	if rep.Done != 0 {
		t.Errorf("%d of %d events done: a redirect answered as success", rep.Done, n)
	}

	items, err := s.Ledger(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		it := items[k]
		want := fmt.Sprintf("HTTP %d redirect to %s/moved/%s?xxxxx", codeOf[k], loc.URL, strings.ReplaceAll(k, "#", "-"))
		if !strings.Contains(it.Error, want) || strings.Contains(it.Error, locationToken) {
			t.Errorf("%s: ledger error %q, want it to name the redacted Location (%q) and not its token", k, it.Error, want)
		}
		if it.Attempt != 1 {
			t.Errorf("%s: failed at attempt %d, want 1 (a redirect is permanent: never retried)", k, it.Attempt)
		}
	}
	got, total := target.snapshot()
	for _, k := range keys {
		reqs := got[k]
		if len(reqs) != 1 || reqs[0].Method != http.MethodPost || reqs[0].Attempt != "1" || reqs[0].Bytes == 0 {
			t.Errorf("%s (HTTP %d): the target got %+v, want one POST with a body, attempt 1", k, codeOf[k], reqs)
		}
	}
	if total != n {
		t.Errorf("the target got %d requests for %d events, want one each", total, n)
	}
	if byKey, moved := elsewhere.snapshot(); moved != 0 {
		t.Errorf("the Location server got %d requests, want none (redirects followed): %v", moved, byKey)
	}
	audit, err := s.Audit(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		if runs := audit[k].Runs; len(runs) != 1 {
			t.Errorf("%s: handler chain ran %d times, want once", k, len(runs))
		}
	}
	failed, err := s.SumMetric(ctx, harness.RoleWorker, "wahook_worker_events_total", "result", "failed")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d events forwarded to a redirecting target: %d requests there, 0 followed, %v failed (worker metric), DLQ %d",
		n, total, failed, rep.DLQ)
}
