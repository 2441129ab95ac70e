package harness

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// SignatureHeader is Meta's signature header.
const SignatureHeader = "X-Hub-Signature-256"

// Sign returns Meta's signature of body: sha256=<hex HMAC-SHA256(secret, body)>.
func Sign(secret, body []byte) string {
	mac := hmac.New(sha256.New, secret)
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

// Response is one POST's outcome.
type Response struct {
	URL     string
	Status  int // 0 when the request failed without an answer
	Err     error
	Latency time.Duration
	Start   time.Time
	Body    string
}

// OK reports a 200.
func (r Response) OK() bool { return r.Err == nil && r.Status == http.StatusOK }

func (r Response) String() string {
	if r.Err != nil {
		return fmt.Sprintf("%s: %v after %v", r.URL, r.Err, r.Latency)
	}
	return fmt.Sprintf("%s: %d after %v", r.URL, r.Status, r.Latency)
}

// Client posts webhooks to the stack's ingest processes (round robin), signed
// like Meta. It records every answer's latency.
type Client struct {
	secret  []byte
	targets func() []string
	http    *http.Client
	next    atomic.Uint64

	// Latencies records every answered request (any status).
	Latencies *Recorder
}

// NewClient returns a client for the base URLs targets returns at each call
// (so that restarted ingest processes are picked up).
func NewClient(secret string, targets func() []string) *Client {
	return &Client{
		secret:  []byte(secret),
		targets: targets,
		http: &http.Client{
			Timeout: 30 * time.Second, // Meta gives up on a webhook after ~30s too
			Transport: &http.Transport{
				MaxIdleConnsPerHost: 64,
				IdleConnTimeout:     30 * time.Second,
			},
		},
		Latencies: &Recorder{},
	}
}

// Post sends body once to the next ingest.
func (c *Client) Post(ctx context.Context, body []byte) Response {
	urls := c.targets()
	if len(urls) == 0 {
		return Response{Err: errors.New("no ingest running")}
	}
	return c.PostTo(ctx, urls[int(c.next.Add(1)-1)%len(urls)], body)
}

// PostTo sends body once to the ingest at base.
func (c *Client) PostTo(ctx context.Context, base string, body []byte) Response {
	return c.post(ctx, base, body, Sign(c.secret, body))
}

// PostSigned sends body with the given signature header value (for tests of
// bad signatures).
func (c *Client) PostSigned(ctx context.Context, base string, body []byte, signature string) Response {
	return c.post(ctx, base, body, signature)
}

func (c *Client) post(ctx context.Context, base string, body []byte, signature string) Response {
	r := Response{URL: base + "/webhook", Start: time.Now()}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.URL, bytes.NewReader(body))
	if err != nil {
		r.Err = err
		return r
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "facebookexternalua")
	if signature != "" {
		req.Header.Set(SignatureHeader, signature)
	}
	resp, err := c.http.Do(req)
	r.Latency = time.Since(r.Start)
	if err != nil {
		r.Err = err
		return r
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	resp.Body.Close()
	r.Status, r.Body = resp.StatusCode, string(b)
	c.Latencies.Add(r.Latency)
	return r
}

// Delivery is the story of one webhook delivered like Meta delivers.
type Delivery struct {
	Attempts []Response
}

// Final is the last attempt.
func (d Delivery) Final() Response {
	if len(d.Attempts) == 0 {
		return Response{}
	}
	return d.Attempts[len(d.Attempts)-1]
}

// Retries is the number of attempts after the first.
func (d Delivery) Retries() int { return max(0, len(d.Attempts)-1) }

// Deliver posts body until an ingest answers 200, retrying every other answer
// or failure with backoff and jitter, as Meta does (on a much shorter clock).
// The error says why it gave up: ctx ended first.
func (c *Client) Deliver(ctx context.Context, body []byte) (Delivery, error) {
	return c.deliver(ctx, body, c.Post)
}

// DeliverTo is Deliver to the ingest at base only.
func (c *Client) DeliverTo(ctx context.Context, base string, body []byte) (Delivery, error) {
	return c.deliver(ctx, body, func(ctx context.Context, body []byte) Response { return c.PostTo(ctx, base, body) })
}

func (c *Client) deliver(ctx context.Context, body []byte, post func(context.Context, []byte) Response) (Delivery, error) {
	var d Delivery
	wait := 100 * time.Millisecond
	for {
		r := post(ctx, body)
		d.Attempts = append(d.Attempts, r)
		if r.OK() {
			return d, nil
		}
		pause := wait/2 + rand.N(wait/2+1)
		wait = min(2*wait, 2*time.Second)
		select {
		case <-ctx.Done():
			return d, fmt.Errorf("webhook not accepted after %d attempts (last: %v): %w", len(d.Attempts), r, ctx.Err())
		case <-time.After(pause):
		}
	}
}

// DeliverAll delivers every body with at most conc requests in flight and
// returns the deliveries in the order of bodies. The first error ends it.
func (c *Client) DeliverAll(ctx context.Context, bodies [][]byte, conc int) ([]Delivery, error) {
	out := make([]Delivery, len(bodies))
	errs := make([]error, len(bodies))
	sem := make(chan struct{}, max(1, conc))
	var wg sync.WaitGroup
	for i, b := range bodies {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			wg.Wait()
			return out, ctx.Err()
		}
		wg.Go(func() {
			defer func() { <-sem }()
			out[i], errs[i] = c.Deliver(ctx, b)
		})
	}
	wg.Wait()
	return out, errors.Join(errs...)
}

// Recorder collects latencies; safe for concurrent use.
type Recorder struct {
	mu sync.Mutex
	d  []time.Duration
}

// Add records one latency.
func (r *Recorder) Add(d time.Duration) {
	r.mu.Lock()
	r.d = append(r.d, d)
	r.mu.Unlock()
}

// Reset forgets everything recorded.
func (r *Recorder) Reset() {
	r.mu.Lock()
	r.d = nil
	r.mu.Unlock()
}

// Summary is a latency distribution.
type Summary struct {
	N                       int
	Min, P50, P95, P99, Max time.Duration
	Mean                    time.Duration
}

func (s Summary) String() string {
	r := func(d time.Duration) time.Duration { return d.Round(100 * time.Microsecond) }
	return fmt.Sprintf("n=%d min=%v p50=%v p95=%v p99=%v max=%v mean=%v",
		s.N, r(s.Min), r(s.P50), r(s.P95), r(s.P99), r(s.Max), r(s.Mean))
}

// Summary computes percentiles (nearest rank) of what was recorded.
func (r *Recorder) Summary() Summary {
	r.mu.Lock()
	d := append([]time.Duration(nil), r.d...)
	r.mu.Unlock()
	return Summarize(d)
}

// Summarize computes percentiles (nearest rank) of d.
func Summarize(d []time.Duration) Summary {
	if len(d) == 0 {
		return Summary{}
	}
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	var sum time.Duration
	for _, x := range d {
		sum += x
	}
	pct := func(p float64) time.Duration {
		i := int(float64(len(d))*p+0.999999) - 1
		return d[min(max(i, 0), len(d)-1)]
	}
	return Summary{
		N: len(d), Min: d[0], Max: d[len(d)-1], Mean: sum / time.Duration(len(d)),
		P50: pct(0.50), P95: pct(0.95), P99: pct(0.99),
	}
}
