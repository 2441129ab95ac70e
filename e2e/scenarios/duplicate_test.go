package scenarios

import (
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/wahook/wahook/e2e/harness"
)

// The gate: Meta's handshake, signatures and malformed bodies. Nothing that
// fails verification reaches the ledger.
func TestWebhookGate(t *testing.T) {
	t.Parallel()
	s := harness.NewStack(t, harness.StackOptions{})
	in := s.StartIngest(nil)
	ctx := t.Context()
	c := s.Client()

	get := func(query string) (int, string) {
		t.Helper()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, in.URL("/webhook?"+query), nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var b [256]byte
		n, _ := resp.Body.Read(b[:])
		return resp.StatusCode, string(b[:n])
	}
	if code, body := get("hub.mode=subscribe&hub.verify_token=" + s.VerifyToken + "&hub.challenge=1158201444"); code != 200 || body != "1158201444" {
		t.Errorf("handshake: %d %q, want 200 1158201444", code, body)
	}
	if code, _ := get("hub.mode=subscribe&hub.verify_token=wrong&hub.challenge=1"); code != http.StatusForbidden {
		t.Errorf("handshake with a wrong token: %d, want 403", code)
	}

	g := harness.NewGen(seed(t))
	body := g.Payload(g.Messages(3), nil).JSON()
	base := "http://" + in.Addr
	for name, sig := range map[string]string{
		"no signature":    "",
		"wrong secret":    harness.Sign([]byte("not-the-secret"), body),
		"not hex":         "sha256=zz",
		"other algorithm": "sha1=" + harness.Sign([]byte(s.AppSecret), body)[7:],
	} {
		if r := c.PostSigned(ctx, base, body, sig); r.Status != http.StatusUnauthorized {
			t.Errorf("%s: %v, want 401", name, r)
		}
	}
	if r := c.PostTo(ctx, base, []byte(`{"entry":[`)); r.Status != http.StatusBadRequest {
		t.Errorf("malformed JSON: %v, want 400", r)
	}
	items, err := s.Ledger(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(items) != 0 {
		t.Errorf("ledger holds %d items after only refused requests", len(items))
	}
}

// Scenario 1: the same webhook twice, and 50 times at once, across two
// ingest replicas → each event queued once (again only after an unconfirmed
// ledger write) and processed once.
func TestDuplicateWebhook(t *testing.T) {
	t.Parallel()
	s := harness.NewStack(t, harness.StackOptions{})
	s.StartIngest(nil)
	s.StartIngest(nil)
	s.StartWorker(harness.WorkerOptions{})
	ctx := t.Context()
	c := s.Client()
	urls := s.IngestURLs()
	g := harness.NewGen(seed(t))
	var keys []string

	// The seed's own payload, twice in a row, to each replica once.
	seedBody := harness.SeedPayload("test_msg_001", "1234567890", "Test message", "1642248600")
	first, second := c.PostTo(ctx, urls[0], seedBody), c.PostTo(ctx, urls[1], seedBody)
	if !first.OK() || !second.OK() {
		t.Fatalf("seed payload twice: %v, %v; want 200, 200", first, second)
	}
	if a, b := summaryOf(t, first), summaryOf(t, second); a.Queued != 1 || b.Queued != 0 || b.Duplicates != 1 {
		t.Errorf("seed payload twice: first %+v, second %+v; want queued 1, then duplicate 1", a, b)
	}
	keys = append(keys, "msg#test_msg_001")

	// 50 concurrent copies of the seed's shape, and of a realistic batch
	// (text, image, interactive, statuses), each delivered like Meta (503s
	// retried).
	single := harness.SeedPayload("test_msg_002", "1234567890", "Test message", "1642248601")
	var statuses []harness.Status
	for range 2 {
		statuses = append(statuses, g.Lifecycle(g.WAMID(), "16505551234")...)
	}
	batch := g.Payload(g.Messages(8), statuses)
	keys = append(keys, "msg#test_msg_002")
	keys = append(keys, batch.Keys()...)

	const copies = 50
	type result struct {
		d   harness.Delivery
		err error
	}
	results := make([]result, 2*copies)
	var wg sync.WaitGroup
	dctx, cancel := contextWithTimeout(t, time.Minute)
	defer cancel()
	for i := range 2 * copies {
		body := single
		if i%2 == 1 {
			body = batch.JSON()
		}
		wg.Go(func() {
			d, err := c.Deliver(dctx, body)
			results[i] = result{d, err}
		})
	}
	wg.Wait()
	var queued, duplicates, retries int
	for _, r := range results {
		if r.err != nil {
			t.Fatalf("delivery: %v", r.err)
		}
		retries += r.d.Retries()
		for _, a := range r.d.Attempts {
			if a.Err == nil && (a.Status == http.StatusOK || a.Status == http.StatusServiceUnavailable) {
				sum := summaryOf(t, a)
				queued += sum.Queued
				if a.Status == http.StatusOK {
					duplicates += sum.Duplicates
				}
			}
		}
	}
	events := 1 + len(batch.Keys())
	t.Logf("%d concurrent deliveries of %d distinct events: %d events queued, %d duplicates answered, %d Meta-style retries",
		2*copies, events, queued, duplicates, retries)
	// Each event queued at least once. More than once only when an ingest
	// sent an event whose ledger write it could not confirm (a slow or lost
	// reply): at-least-once by design, the worker's claim absorbs the copy —
	// the invariants below prove every key still ran exactly once.
	switch {
	case queued < events:
		t.Errorf("ingest queued %d events, want each of the %d at least once", queued, events)
	case queued > events:
		t.Logf("ingest queued %d events for %d: %d sent again after a ledger write whose reply did not come in time",
			queued, events, queued-events)
	}
	if want := (copies-1)*len(batch.Keys()) + (copies - 1); duplicates < want {
		t.Errorf("%d duplicates answered, want at least %d", duplicates, want)
	}

	took := s.AwaitSettled(keys, time.Minute)
	tally := s.CheckInvariants(harness.Expect{Keys: keys})
	checkWorkerTally(t, s, tally)
	t.Logf("settled in %v", took.Round(time.Millisecond))
}

// Meta delivers one 1,000-update webhook to two replicas at once (a retry that
// overlaps a slow first attempt). Each request owns part of the keys and waits
// for the other's part, all together: both answer 200 on the first attempt,
// and each event is sent once (no take-over of a live sibling's events).
func TestTwoIdenticalLargeBodies(t *testing.T) {
	t.Parallel()
	s := harness.NewStack(t, harness.StackOptions{})
	s.StartIngest(nil)
	s.StartIngest(nil)
	s.StartWorker(harness.WorkerOptions{})
	c := s.Client()
	urls := s.IngestURLs()
	g := harness.NewGen(seed(t))

	var statuses []harness.Status
	for range 100 {
		statuses = append(statuses, g.Lifecycle(g.WAMID(), "16505551234")[:2]...)
	}
	p := g.Payload(g.Messages(800), statuses)
	body, keys := p.JSON(), p.Keys()
	if len(keys) != 1000 {
		t.Fatalf("payload has %d keys, want 1000", len(keys))
	}

	// Each delivered like Meta (a 503 is retried); on a quiet machine both
	// answer 200 at once, on a busy one a backend timeout may cost a retry.
	var deliveries [2]harness.Delivery
	var errs [2]error
	var wg sync.WaitGroup
	start := make(chan struct{})
	dctx, cancel := contextWithTimeout(t, 3*time.Minute)
	defer cancel()
	for i := range deliveries {
		wg.Go(func() {
			<-start
			deliveries[i], errs[i] = c.DeliverTo(dctx, urls[i], body)
		})
	}
	close(start)
	wg.Wait()
	for i, d := range deliveries {
		if errs[i] != nil {
			t.Fatalf("replica %d: %v", i, errs[i])
		}
		final := summaryOf(t, d.Final())
		if final.Queued+final.Duplicates != len(keys) {
			t.Errorf("replica %d: final answer %+v, want all %d events queued or duplicates", i, final, len(keys))
		}
		t.Logf("replica %d: %d attempt(s), first %v, final %+v", i, len(d.Attempts), d.Attempts[0], final)
	}
	// Counted from SQS's answers, not from ingest's: an attempt the client
	// gave up on (its timeout on a slow machine) sent what it sent all the same.
	sent := s.Sent(harness.RoleIngest)
	if sent != int64(len(keys)) {
		t.Errorf("SQS accepted %d messages from both ingests, want each of the %d events sent exactly once", sent, len(keys))
	}
	t.Logf("SQS accepted %d messages from both ingests", sent)

	took := s.AwaitSettled(keys, 3*time.Minute)
	tally := s.CheckInvariants(harness.Expect{Keys: keys})
	checkWorkerTally(t, s, tally)
	t.Logf("settled in %v", took.Round(time.Millisecond))
}
