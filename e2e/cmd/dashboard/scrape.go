package main

import (
	"context"
	"fmt"
	"log"
	"math"
	"net/http"
	"strconv"
	"sync"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/tsdb"

	"github.com/wahook/wahook/e2e/harness"
)

// scraper scrapes its targets' /metrics every scrapeEvery into db, as
// Prometheus does: every sample labelled with job and instance.
type scraper struct {
	db *tsdb.DB

	mu      sync.Mutex
	targets []target
	scrapes int
}

type target struct {
	proc *harness.Process
	job  string
}

func (s *scraper) add(p *harness.Process, job string) {
	s.mu.Lock()
	s.targets = append(s.targets, target{proc: p, job: job})
	s.mu.Unlock()
}

func (s *scraper) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.scrapes
}

func (s *scraper) run(ctx context.Context) {
	t := time.NewTicker(scrapeEvery)
	defer t.Stop()
	for {
		s.mu.Lock()
		targets := append([]target(nil), s.targets...)
		s.mu.Unlock()
		now := time.Now()
		for _, tg := range targets {
			if !tg.proc.Running() {
				continue // a stopped process: no sample, as Prometheus's scrape fails
			}
			if err := s.scrape(ctx, tg, now); err != nil && ctx.Err() == nil {
				log.Printf("scrape %s: %v", tg.proc.Name, err)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (s *scraper) scrape(ctx context.Context, tg target, now time.Time) error {
	ctx, cancel := context.WithTimeout(ctx, scrapeEvery)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, tg.proc.URL("/metrics"), nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s", resp.Status)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		return err
	}
	app := s.db.Appender(ctx)
	ts := now.UnixMilli()
	add := func(name string, m *dto.Metric, v float64, extra ...string) error {
		b := labels.NewBuilder(labels.EmptyLabels())
		b.Set(labels.MetricName, name)
		b.Set("job", tg.job)
		b.Set("instance", tg.proc.Name)
		for _, lp := range m.GetLabel() {
			b.Set(lp.GetName(), lp.GetValue())
		}
		for i := 0; i+1 < len(extra); i += 2 {
			b.Set(extra[i], extra[i+1])
		}
		_, err := app.Append(0, b.Labels(), ts, v)
		return err
	}
	for name, f := range families {
		for _, m := range f.GetMetric() {
			var err error
			switch f.GetType() {
			case dto.MetricType_COUNTER:
				err = add(name, m, m.GetCounter().GetValue())
			case dto.MetricType_GAUGE:
				err = add(name, m, m.GetGauge().GetValue())
			case dto.MetricType_UNTYPED:
				err = add(name, m, m.GetUntyped().GetValue())
			case dto.MetricType_HISTOGRAM:
				h := m.GetHistogram()
				for _, b := range h.GetBucket() {
					if math.IsInf(b.GetUpperBound(), 1) {
						continue // written below, from the count
					}
					if err = add(name+"_bucket", m, float64(b.GetCumulativeCount()), "le", strconv.FormatFloat(b.GetUpperBound(), 'g', -1, 64)); err != nil {
						break
					}
				}
				if err == nil {
					err = add(name+"_bucket", m, float64(h.GetSampleCount()), "le", "+Inf")
				}
				if err == nil {
					err = add(name+"_sum", m, h.GetSampleSum())
				}
				if err == nil {
					err = add(name+"_count", m, float64(h.GetSampleCount()))
				}
			case dto.MetricType_SUMMARY:
				sm := m.GetSummary()
				err = add(name+"_sum", m, sm.GetSampleSum())
				if err == nil {
					err = add(name+"_count", m, float64(sm.GetSampleCount()))
				}
			}
			if err != nil {
				_ = app.Rollback()
				return fmt.Errorf("append %s: %w", name, err)
			}
		}
	}
	if err := app.Commit(); err != nil {
		return err
	}
	s.mu.Lock()
	s.scrapes++
	s.mu.Unlock()
	return nil
}
