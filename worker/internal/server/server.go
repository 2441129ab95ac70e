// Package server is the worker's small HTTP server: liveness, a detailed
// health report and Prometheus metrics.
package server

import (
	"encoding/json"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"

	"github.com/wahook/wahook/shared/health"
	"github.com/wahook/wahook/worker/processor"
)

// Pool is what the server reports on.
type Pool interface {
	Status() []processor.Status
	Breaker() processor.BreakerState
}

// Detailed is the body of /health/detailed.
type Detailed struct {
	Status     string                      `json:"status"`
	Timestamp  time.Time                   `json:"timestamp"`
	Components map[string]health.Component `json:"components"`
	Processors []processor.Status          `json:"processors"`
	Breaker    Breaker                     `json:"breaker"`
}

// Breaker is the ledger breaker's part of the report.
type Breaker struct {
	State processor.BreakerState `json:"state"`
}

// New returns the server's handler. checker runs the backend checks of
// /health/detailed; gatherer serves /metrics.
func New(checker *health.Checker, pool Pool, gatherer prometheus.Gatherer, log *zap.Logger) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"}, log)
	})
	mux.HandleFunc("GET /health/detailed", func(w http.ResponseWriter, r *http.Request) {
		rep := checker.Run(r.Context())
		d := Detailed{
			Status:     rep.Status,
			Timestamp:  rep.Timestamp,
			Components: rep.Components,
			Processors: pool.Status(),
			Breaker:    Breaker{State: pool.Breaker()},
		}
		if d.Breaker.State == processor.BreakerOpen && d.Status == health.Healthy {
			d.Status = health.Degraded
		}
		code := http.StatusOK
		if d.Status == health.Unhealthy {
			code = http.StatusServiceUnavailable
		}
		writeJSON(w, code, d, log)
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(gatherer, promhttp.HandlerOpts{}))
	return mux
}

func writeJSON(w http.ResponseWriter, code int, v any, log *zap.Logger) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	if err := json.NewEncoder(w).Encode(v); err != nil {
		log.Debug("write health response", zap.Error(err))
	}
}
