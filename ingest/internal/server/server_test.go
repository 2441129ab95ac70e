package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/wahook/wahook/ingest/internal/metrics"
	"github.com/wahook/wahook/ingest/internal/metrics/metricstest"
	"github.com/wahook/wahook/ingest/internal/pipeline"
	"github.com/wahook/wahook/ingest/internal/server"
	"github.com/wahook/wahook/ingest/internal/signature"
	"github.com/wahook/wahook/shared/health"
	"github.com/wahook/wahook/shared/logging"
	"github.com/wahook/wahook/shared/webhook"
	"github.com/wahook/wahook/shared/webhook/webhooktest"
)

const (
	secret      = "test-app-secret"
	verifyToken = "test-verify-token"
)

// seedBody is the seed's Scenario 1 payload: no object, field or metadata.
const seedBody = webhooktest.SeedScenario1

// fakeProcessor records the batches it gets and answers with result (or, when
// result is nil, queues every event).
type fakeProcessor struct {
	mu      sync.Mutex
	batches []*webhook.Batch
	result  func(*webhook.Batch) pipeline.Result
	panics  bool
}

func (f *fakeProcessor) Process(_ context.Context, b *webhook.Batch, log *zap.Logger) pipeline.Result {
	f.mu.Lock()
	f.batches = append(f.batches, b)
	f.mu.Unlock()
	log.Info("processing")
	if f.panics {
		panic("boom")
	}
	if f.result != nil {
		return f.result(b)
	}
	return pipeline.Result{Received: len(b.Events) + len(b.Rejected), Queued: len(b.Events), Rejected: len(b.Rejected)}
}

func (f *fakeProcessor) calls() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.batches)
}

type fakeChecker struct{ report health.Report }

func (f fakeChecker) Run(context.Context) health.Report { return f.report }

type stack struct {
	url   string
	proc  *fakeProcessor
	reg   *prometheus.Registry
	logs  *observer.ObservedLogs
	check *fakeChecker
}

func newStack(t *testing.T, opts server.Options, proc *fakeProcessor) *stack {
	t.Helper()
	if proc == nil {
		proc = &fakeProcessor{}
	}
	core, logs := observer.New(zapcore.DebugLevel)
	reg := prometheus.NewRegistry()
	m, err := metrics.New(reg)
	if err != nil {
		t.Fatal(err)
	}
	check := &fakeChecker{report: health.Report{Status: health.Healthy, Timestamp: time.Now().UTC(), Components: map[string]health.Component{
		"dynamodb": {Status: health.Connected, LatencyMS: 1.5}, "sqs": {Status: health.Connected, LatencyMS: 2},
	}}}
	h, err := server.New(opts, server.Deps{Processor: proc, Checker: checkerFunc(func() health.Report { return check.report }),
		Metrics: m, Gatherer: reg, Log: zap.New(core)})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return &stack{url: srv.URL, proc: proc, reg: reg, logs: logs, check: check}
}

type checkerFunc func() health.Report

func (f checkerFunc) Run(context.Context) health.Report { return f() }

func defaultOptions() server.Options {
	return server.Options{AppSecret: secret, VerifyToken: verifyToken}
}

type response struct {
	code   int
	header http.Header
	body   []byte
}

func do(t *testing.T, req *http.Request) response {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL.Path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{code: resp.StatusCode, header: resp.Header, body: body}
}

func post(t *testing.T, base string, body []byte, sig string) response {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, base+server.PathWebhook, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if sig != "" {
		req.Header.Set(signature.Header, sig)
	}
	return do(t, req)
}

func get(t *testing.T, rawURL string) response {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, rawURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	return do(t, req)
}

func TestVerifyHandshake(t *testing.T) {
	t.Parallel()
	s := newStack(t, defaultOptions(), nil)
	// A challenge with characters that need escaping comes back byte for byte.
	challenge := "1158201444 ü+&=%/?"
	cases := []struct {
		name  string
		query url.Values
		want  int
	}{
		{"ok", url.Values{"hub.mode": {"subscribe"}, "hub.verify_token": {verifyToken}, "hub.challenge": {challenge}}, http.StatusOK},
		{"wrong token", url.Values{"hub.mode": {"subscribe"}, "hub.verify_token": {"nope"}, "hub.challenge": {challenge}}, http.StatusForbidden},
		{"token prefix", url.Values{"hub.mode": {"subscribe"}, "hub.verify_token": {verifyToken[:4]}, "hub.challenge": {challenge}}, http.StatusForbidden},
		{"missing token", url.Values{"hub.mode": {"subscribe"}, "hub.challenge": {challenge}}, http.StatusForbidden},
		{"wrong mode", url.Values{"hub.mode": {"unsubscribe"}, "hub.verify_token": {verifyToken}, "hub.challenge": {challenge}}, http.StatusForbidden},
		{"no parameters", url.Values{}, http.StatusForbidden},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := get(t, s.url+server.PathWebhook+"?"+tc.query.Encode())
			if r.code != tc.want {
				t.Fatalf("status %d, want %d (body %s)", r.code, tc.want, r.body)
			}
			if tc.want != http.StatusOK {
				return
			}
			if string(r.body) != challenge {
				t.Errorf("body %q, want the challenge %q", r.body, challenge)
			}
			if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
				t.Errorf("Content-Type %q, want text/plain", ct)
			}
		})
	}
}

func TestVerifyRefusedWithoutConfiguredToken(t *testing.T) {
	t.Parallel()
	s := newStack(t, server.Options{AppSecret: secret}, nil)
	for _, token := range []string{"", "anything"} {
		q := url.Values{"hub.mode": {"subscribe"}, "hub.verify_token": {token}, "hub.challenge": {"42"}}
		if r := get(t, s.url+server.PathWebhook+"?"+q.Encode()); r.code != http.StatusForbidden {
			t.Errorf("token %q: status %d, want 403", token, r.code)
		}
	}
}

func TestSignature(t *testing.T) {
	t.Parallel()
	emoji := []byte(`{"entry":[{"changes":[{"value":{"messages":[{"id":"wamid.emoji","from":"1","text":{"body":"ol\u00e1 👋🏽 mail me @ a@b.co — ñ"}}]}}]}]}`)
	// The same JSON re-serialised (as a framework that parses and re-encodes
	// would): same meaning, other bytes.
	var v any
	if err := json.Unmarshal(emoji, &v); err != nil {
		t.Fatal(err)
	}
	reserialised, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(reserialised, emoji) {
		t.Fatal("re-serialised body equals the original; the case proves nothing")
	}
	seed := []byte(seedBody)
	cases := []struct {
		name string
		body []byte
		sig  string
		want int
	}{
		{"seed payload", seed, signature.Sign([]byte(secret), seed), http.StatusOK},
		{"emoji and @", emoji, signature.Sign([]byte(secret), emoji), http.StatusOK},
		{"wrong secret", seed, signature.Sign([]byte("other"), seed), http.StatusUnauthorized},
		{"missing", seed, "", http.StatusUnauthorized},
		{"malformed", seed, "sha256=not-hex", http.StatusUnauthorized},
		{"sha1", seed, "sha1=" + strings.TrimPrefix(signature.Sign([]byte(secret), seed), "sha256="), http.StatusUnauthorized},
		{"re-serialised body", reserialised, signature.Sign([]byte(secret), emoji), http.StatusUnauthorized},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := newStack(t, defaultOptions(), nil)
			r := post(t, s.url, tc.body, tc.sig)
			if r.code != tc.want {
				t.Fatalf("status %d, want %d (body %s)", r.code, tc.want, r.body)
			}
			wantCalls := 0
			if tc.want == http.StatusOK {
				wantCalls = 1
			}
			if got := s.proc.calls(); got != wantCalls {
				t.Errorf("processor called %d times, want %d", got, wantCalls)
			}
		})
	}
}

func TestInsecureSkipSignature(t *testing.T) {
	t.Parallel()
	s := newStack(t, server.Options{InsecureSkipSignature: true}, nil)
	if r := post(t, s.url, []byte(seedBody), ""); r.code != http.StatusOK {
		t.Fatalf("status %d, want 200 (body %s)", r.code, r.body)
	}
}

func TestRefusesToStartWithoutSecret(t *testing.T) {
	t.Parallel()
	m, err := metrics.New(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	_, err = server.New(server.Options{}, server.Deps{Processor: &fakeProcessor{}, Checker: fakeChecker{},
		Metrics: m, Gatherer: prometheus.NewRegistry(), Log: zap.NewNop()})
	if err == nil {
		t.Fatal("New without app secret: nil error")
	}
}

func TestBodyLimit(t *testing.T) {
	t.Parallel()
	const limit = 2048
	opts := defaultOptions()
	opts.BodyLimit = limit
	s := newStack(t, opts, nil)
	// A valid webhook padded with whitespace to n bytes.
	body := func(n int) []byte {
		b := []byte(seedBody)
		return append(b, bytes.Repeat([]byte(" "), n-len(b))...)
	}
	cases := []struct {
		name    string
		size    int
		chunked bool // no Content-Length: the limit is found while reading
		want    int
	}{
		{"at the limit", limit, false, http.StatusOK},
		{"one over, declared", limit + 1, false, http.StatusRequestEntityTooLarge},
		{"one over, chunked", limit + 1, true, http.StatusRequestEntityTooLarge},
		{"far over, chunked", 64 * limit, true, http.StatusRequestEntityTooLarge},
		{"far over, declared", 1 << 20, false, http.StatusRequestEntityTooLarge},
		{"huge, chunked", 4 << 20, true, http.StatusRequestEntityTooLarge},
		{"huge, declared", 4 << 20, false, http.StatusRequestEntityTooLarge},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b := body(tc.size)
			var rd io.Reader = bytes.NewReader(b)
			if tc.chunked {
				rd = io.MultiReader(rd) // hides the length: sent chunked
			}
			req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, s.url+server.PathWebhook, rd)
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set(signature.Header, signature.Sign([]byte(secret), b))
			r := do(t, req)
			if r.code != tc.want {
				t.Fatalf("status %d, want %d (body %s)", r.code, tc.want, r.body)
			}
		})
	}
	if got := s.proc.calls(); got != 1 {
		t.Errorf("processor called %d times, want 1 (only the body at the limit)", got)
	}
}

func TestMalformedJSON(t *testing.T) {
	t.Parallel()
	s := newStack(t, defaultOptions(), nil)
	for _, b := range []string{`{"entry": [`, `not json`, `{"entry":[]} trailing`, `[1,2]`, ``} {
		r := post(t, s.url, []byte(b), signature.Sign([]byte(secret), []byte(b)))
		if r.code != http.StatusBadRequest {
			t.Errorf("body %q: status %d, want 400 (body %s)", b, r.code, r.body)
		}
	}
	if got := s.proc.calls(); got != 0 {
		t.Errorf("processor called %d times, want 0", got)
	}
}

func TestAnswerFollowsResult(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   string
		result pipeline.Result
		want   int
		body   server.Summary
	}{
		{"all queued", pipeline.Result{Received: 3, Queued: 2, Rejected: 1}, http.StatusOK,
			server.Summary{Received: 3, Queued: 2, Rejected: 1}},
		{"duplicates are fine", pipeline.Result{Received: 2, Queued: 1, Duplicates: 1}, http.StatusOK,
			server.Summary{Received: 2, Queued: 1, Duplicates: 1}},
		{"one failed", pipeline.Result{Received: 3, Queued: 1, Duplicates: 1, Failed: 1}, http.StatusServiceUnavailable,
			server.Summary{Received: 3, Queued: 1, Duplicates: 1, Failed: 1}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := newStack(t, defaultOptions(), &fakeProcessor{result: func(*webhook.Batch) pipeline.Result { return tc.result }})
			r := post(t, s.url, []byte(seedBody), signature.Sign([]byte(secret), []byte(seedBody)))
			if r.code != tc.want {
				t.Fatalf("status %d, want %d (body %s)", r.code, tc.want, r.body)
			}
			var got server.Summary
			if err := json.Unmarshal(r.body, &got); err != nil {
				t.Fatalf("body %s: %v", r.body, err)
			}
			if got != tc.body {
				t.Errorf("summary %+v, want %+v", got, tc.body)
			}
			if want := `"failed"`; (tc.result.Failed > 0) != bytes.Contains(r.body, []byte(want)) {
				t.Errorf("body %s: failed count shown only on failure", r.body)
			}
			if n := metricstest.Value(t, s.reg, "wahook_ingest_webhook_requests_total",
				map[string]string{"method": "POST", "code": fmt.Sprint(tc.want)}); n != 1 {
				t.Errorf("webhook_requests_total{code=%d} = %v, want 1", tc.want, n)
			}
			if n := metricstest.Value(t, s.reg, "wahook_ingest_webhook_request_duration_seconds", nil); n != 1 {
				t.Errorf("request_duration_seconds count = %v, want 1", n)
			}
		})
	}
}

func TestPanicRecovery(t *testing.T) {
	t.Parallel()
	s := newStack(t, defaultOptions(), &fakeProcessor{panics: true})
	r := post(t, s.url, []byte(seedBody), signature.Sign([]byte(secret), []byte(seedBody)))
	if r.code != http.StatusInternalServerError {
		t.Fatalf("status %d, want 500 (body %s)", r.code, r.body)
	}
	if bytes.Contains(r.body, []byte("boom")) {
		t.Errorf("500 body %s shows the panic", r.body)
	}
	panics := s.logs.FilterMessage("panic in handler").All()
	if len(panics) != 1 {
		t.Fatalf("%d panic log lines, want 1", len(panics))
	}
	if panics[0].ContextMap()[logging.FieldRequestID] == "" {
		t.Error("panic log line has no request id")
	}
	// The server still serves.
	if r := get(t, s.url+server.PathHealth); r.code != http.StatusOK {
		t.Fatalf("after a panic: /health status %d", r.code)
	}
}

func TestRequestIDOnEveryLine(t *testing.T) {
	t.Parallel()
	s := newStack(t, defaultOptions(), nil)
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, s.url+server.PathWebhook, strings.NewReader(seedBody))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set(signature.Header, signature.Sign([]byte(secret), []byte(seedBody)))
	req.Header.Set("X-Request-ID", "req-from-lb-1")
	r := do(t, req)
	if got := r.header.Get("X-Request-ID"); got != "req-from-lb-1" {
		t.Errorf("X-Request-ID %q, want the incoming one", got)
	}
	// Without one, the server makes one up and returns it.
	r2 := post(t, s.url, []byte(seedBody), signature.Sign([]byte(secret), []byte(seedBody)))
	generated := r2.header.Get("X-Request-ID")
	if generated == "" {
		t.Fatal("no X-Request-ID generated")
	}
	// One that is too long or not printable is replaced.
	for _, bad := range []string{strings.Repeat("x", 129), "has space"} {
		req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, s.url+server.PathHealth, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("X-Request-ID", bad)
		if got := do(t, req).header.Get("X-Request-ID"); got == bad || got == "" {
			t.Errorf("incoming X-Request-ID %.10q...: answered with %q, want a new one", bad, got)
		}
	}
	lines := s.logs.All()
	if len(lines) < 4 { // processing + access line, twice
		t.Fatalf("%d log lines, want at least 4", len(lines))
	}
	seen := map[string]int{}
	for _, l := range lines {
		id, _ := l.ContextMap()[logging.FieldRequestID].(string)
		if id == "" {
			t.Errorf("log line %q has no request id", l.Message)
		}
		seen[id]++
	}
	if seen["req-from-lb-1"] < 2 || seen[generated] < 2 {
		t.Errorf("lines per request id: %v", seen)
	}
}

func TestAccessLogHidesVerifyToken(t *testing.T) {
	t.Parallel()
	s := newStack(t, defaultOptions(), nil)
	q := url.Values{"hub.mode": {"subscribe"}, "hub.verify_token": {verifyToken}, "hub.challenge": {"1"}}
	get(t, s.url+server.PathWebhook+"?"+q.Encode())
	for _, l := range s.logs.All() {
		for k, v := range l.ContextMap() {
			if strings.Contains(fmt.Sprint(v), verifyToken) {
				t.Errorf("log line %q field %s shows the verify token", l.Message, k)
			}
		}
	}
}

func TestHealth(t *testing.T) {
	t.Parallel()
	s := newStack(t, defaultOptions(), nil)
	if r := get(t, s.url+server.PathHealth); r.code != http.StatusOK {
		t.Fatalf("/health: %d", r.code)
	}

	r := get(t, s.url+server.PathHealthDetailed)
	if r.code != http.StatusOK {
		t.Fatalf("/health/detailed healthy: %d (%s)", r.code, r.body)
	}
	var rep struct {
		Status     string    `json:"status"`
		Timestamp  time.Time `json:"timestamp"`
		Components map[string]struct {
			Status    string  `json:"status"`
			LatencyMS float64 `json:"latency_ms"`
		} `json:"components"`
	}
	if err := json.Unmarshal(r.body, &rep); err != nil {
		t.Fatalf("%s: %v", r.body, err)
	}
	if rep.Status != health.Healthy || rep.Timestamp.IsZero() || len(rep.Components) != 2 ||
		rep.Components["dynamodb"].Status != health.Connected || rep.Components["sqs"].LatencyMS != 2 {
		t.Errorf("report %+v", rep)
	}
}

func TestHealthDetailedUnhealthy(t *testing.T) {
	t.Parallel()
	s := newStack(t, defaultOptions(), nil)
	s.check.report = health.Report{Status: health.Unhealthy, Timestamp: time.Now().UTC(), Components: map[string]health.Component{
		"dynamodb": {Status: health.Disconnected, Error: "down"}, "sqs": {Status: health.Disconnected, Error: "down"},
	}}
	r := get(t, s.url+server.PathHealthDetailed)
	if r.code != http.StatusServiceUnavailable {
		t.Fatalf("status %d, want 503", r.code)
	}
	var rep health.Report
	if err := json.Unmarshal(r.body, &rep); err != nil || rep.Status != health.Unhealthy || rep.Components["sqs"].Error != "down" {
		t.Errorf("body %s (%v)", r.body, err)
	}
}

func TestMetricsEndpoint(t *testing.T) {
	t.Parallel()
	s := newStack(t, defaultOptions(), nil)
	post(t, s.url, []byte(seedBody), "sha256=00")
	r := get(t, s.url+server.PathMetrics)
	if r.code != http.StatusOK {
		t.Fatalf("/metrics: %d", r.code)
	}
	for _, want := range []string{
		`wahook_ingest_webhook_requests_total{code="401",method="POST"} 1`,
		`wahook_ingest_webhook_request_duration_seconds_bucket`,
		`go_goroutines`,
	} {
		if !bytes.Contains(r.body, []byte(want)) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

func TestUnknownRoute(t *testing.T) {
	t.Parallel()
	s := newStack(t, defaultOptions(), nil)
	if r := get(t, s.url+"/nope"); r.code != http.StatusNotFound {
		t.Errorf("status %d, want 404", r.code)
	}
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPut, s.url+server.PathWebhook, nil)
	if r := do(t, req); r.code != http.StatusMethodNotAllowed {
		t.Errorf("PUT /webhook: status %d, want 405", r.code)
	}
}
