package main

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"sync/atomic"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"

	"github.com/wahook/wahook/e2e/harness"
)

// load is one webhook load phase's outcome.
type load struct {
	Webhooks        int            `json:"webhooks"`
	Events          int            `json:"events"`
	RequestedPerSec float64        `json:"requested_webhooks_per_sec,omitempty"` // 0: as fast as possible
	AcceptedPerSec  float64        `json:"accepted_events_per_sec"`              // events answered 200 / attack time
	EndToEndPerSec  float64        `json:"end_to_end_events_per_sec"`            // events / (first webhook → last event done)
	P50ms           float64        `json:"p50_ms"`
	P95ms           float64        `json:"p95_ms"`
	P99ms           float64        `json:"p99_ms"`
	MaxMs           float64        `json:"max_ms"`
	Errors          int            `json:"errors"` // non-200 answers and failed requests
	StatusCodes     map[string]int `json:"status_codes"`
	Backlog         time.Duration  `json:"backlog_ns"` // last answer → last event done
}

// attack posts bodies (signed like Meta, round robin over the ingest URLs)
// with vegeta: at rate webhooks/s, or as fast as conc requests in flight allow
// when rate is 0. Bodies that were not answered 200 are delivered again
// afterwards like Meta would (retries until 200), so that every event arrives;
// they count as errors.
func attack(ctx context.Context, s *harness.Stack, bodies [][]byte, rate float64, conc int) (load, vegeta.Metrics, error) {
	urls := s.IngestURLs()
	var next atomic.Int64
	targeter := func(t *vegeta.Target) error {
		i := next.Add(1) - 1
		if i >= int64(len(bodies)) {
			return vegeta.ErrNoTargets
		}
		body := bodies[i]
		t.Method = http.MethodPost
		// The index rides in the query (ingest ignores it) so that a failed
		// result names its body.
		t.URL = urls[int(i)%len(urls)] + "/webhook?bench=" + strconv.FormatInt(i, 10)
		t.Body = body
		t.Header = http.Header{
			"Content-Type":          {"application/json"},
			harness.SignatureHeader: {harness.Sign([]byte(s.AppSecret), body)},
		}
		return nil
	}
	pacer := vegeta.ConstantPacer{Freq: 0, Per: time.Second}
	if rate > 0 {
		// Per-webhook interval, so fractional rates work.
		pacer = vegeta.ConstantPacer{Freq: 1, Per: time.Duration(float64(time.Second) / rate)}
	}
	attacker := vegeta.NewAttacker(vegeta.Workers(uint64(conc)), vegeta.MaxWorkers(uint64(conc)),
		vegeta.Timeout(2*time.Minute), vegeta.KeepAlive(true), vegeta.Connections(conc))
	var m vegeta.Metrics
	var failed [][]byte
	for res := range attacker.Attack(targeter, pacer, 0, "webhooks") {
		if res.Error == vegeta.ErrNoTargets.Error() {
			continue // the end of the bodies, not a request
		}
		m.Add(res)
		if res.Code != http.StatusOK {
			u, err := url.Parse(res.URL)
			i, perr := strconv.Atoi(u.Query().Get("bench"))
			if err != nil || perr != nil || i < 0 || i >= len(bodies) {
				return load{}, m, fmt.Errorf("result for an unknown body: %q", res.URL)
			}
			failed = append(failed, bodies[i])
		}
		if ctx.Err() != nil {
			attacker.Stop()
		}
	}
	m.Close()
	if len(failed) > 0 {
		if _, err := s.Client().DeliverAll(ctx, failed, conc); err != nil {
			return load{}, m, err
		}
	}
	l := load{
		Webhooks: len(bodies), RequestedPerSec: rate, Errors: int(m.Requests) - int(m.Success*float64(m.Requests)+0.5),
		P50ms: ms(m.Latencies.P50), P95ms: ms(m.Latencies.P95), P99ms: ms(m.Latencies.P99), MaxMs: ms(m.Latencies.Max),
		StatusCodes: m.StatusCodes,
	}
	return l, m, ctx.Err()
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
