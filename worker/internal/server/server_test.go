package server_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/wahook/wahook/shared/health"
	"github.com/wahook/wahook/worker/internal/server"
	"github.com/wahook/wahook/worker/processor"
)

type fakePool struct {
	statuses []processor.Status
	breaker  processor.BreakerState
}

func (p fakePool) Status() []processor.Status      { return p.statuses }
func (p fakePool) Breaker() processor.BreakerState { return p.breaker }

func get(t *testing.T, h http.Handler, path string) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	body, _ := io.ReadAll(rec.Result().Body)
	return rec.Code, string(body)
}

func TestDetailedHealth(t *testing.T) {
	t.Parallel()
	polled := time.Date(2024, 1, 15, 10, 30, 0, 0, time.UTC)
	ok := func(context.Context) error { return nil }
	down := func(context.Context) error { return errors.New("connection refused") }
	for _, tc := range []struct {
		name       string
		dynamo     health.Check
		breaker    processor.BreakerState
		wantStatus string
		wantCode   int
	}{
		{"healthy", ok, processor.BreakerClosed, health.Healthy, 200},
		{"breaker open", ok, processor.BreakerOpen, health.Degraded, 200},
		{"dynamodb down", down, processor.BreakerOpen, health.Degraded, 200},
	} {
		pool := fakePool{breaker: tc.breaker, statuses: []processor.Status{{ID: "h-1-ab-p1", Status: processor.StatePolling,
			ProcessedCount: 7, ErrorsCount: 1, InFlight: 2, LastPollAt: &polled}}}
		checker := health.NewChecker(time.Second, map[string]health.Check{"dynamodb": tc.dynamo, "sqs": ok})
		h := server.New(checker, pool, prometheus.NewRegistry(), zap.NewNop())
		code, body := get(t, h, "/health/detailed")
		if code != tc.wantCode {
			t.Errorf("%s: code %d", tc.name, code)
		}
		var got struct {
			Status     string                       `json:"status"`
			Timestamp  time.Time                    `json:"timestamp"`
			Components map[string]map[string]any    `json:"components"`
			Processors []map[string]json.RawMessage `json:"processors"`
			Breaker    struct {
				State string `json:"state"`
			} `json:"breaker"`
		}
		if err := json.Unmarshal([]byte(body), &got); err != nil {
			t.Fatalf("%s: %v in %s", tc.name, err, body)
		}
		if got.Status != tc.wantStatus || got.Timestamp.IsZero() || got.Breaker.State != string(tc.breaker) {
			t.Errorf("%s: %s", tc.name, body)
		}
		if got.Components["dynamodb"]["status"] == nil || got.Components["sqs"]["status"] != health.Connected {
			t.Errorf("%s: components %v", tc.name, got.Components)
		}
		if len(got.Processors) != 1 {
			t.Fatalf("%s: processors %s", tc.name, body)
		}
		p := got.Processors[0]
		for k, want := range map[string]string{"id": `"h-1-ab-p1"`, "status": `"polling"`, "processed_count": "7",
			"errors_count": "1", "in_flight": "2", "last_poll_at": `"2024-01-15T10:30:00Z"`} {
			if string(p[k]) != want {
				t.Errorf("%s: processor %s = %s, want %s", tc.name, k, p[k], want)
			}
		}
	}
}

func TestLivenessAndMetrics(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	if _, err := processor.NewMetrics(reg); err != nil {
		t.Fatal(err)
	}
	h := server.New(health.NewChecker(time.Second, nil), fakePool{breaker: processor.BreakerClosed}, reg, zap.NewNop())
	if code, body := get(t, h, "/health"); code != 200 || !strings.Contains(body, `"ok"`) {
		t.Errorf("/health: %d %s", code, body)
	}
	code, body := get(t, h, "/metrics")
	if code != 200 {
		t.Fatalf("/metrics: %d", code)
	}
	for _, name := range []string{"wahook_worker_in_flight", "wahook_worker_breaker_open"} {
		if !strings.Contains(body, name) {
			t.Errorf("/metrics lacks %s", name)
		}
	}
	if code, _ := get(t, h, "/nope"); code != http.StatusNotFound {
		t.Errorf("/nope: %d", code)
	}
}
