package harness

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Metrics is a Prometheus text exposition, by series: `name{label="v",...}`
// exactly as the process wrote it (labels in its order).
type Metrics map[string]float64

// Metrics scrapes the process's /metrics.
func (p *Process) Metrics(ctx context.Context) (Metrics, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.URL("/metrics"), nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s /metrics: %w", p.Name, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s /metrics: %s", p.Name, resp.Status)
	}
	m := Metrics{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			continue
		}
		m[line[:i]] = v
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s /metrics: %w", p.Name, err)
	}
	return m, nil
}

// Get returns the value of name with the given labels (pairs of name, value;
// in any order), summed over series that carry further labels.
func (m Metrics) Get(name string, labels ...string) float64 {
	var sum float64
	for series, v := range m {
		base, rest, _ := strings.Cut(series, "{")
		if base != name {
			continue
		}
		ok := true
		for i := 0; i+1 < len(labels); i += 2 {
			if !strings.Contains(rest, labels[i]+"="+strconv.Quote(labels[i+1])) {
				ok = false
				break
			}
		}
		if ok {
			sum += v
		}
	}
	return sum
}

// SumMetric adds name{labels} over the running processes of a role.
func (s *Stack) SumMetric(ctx context.Context, role Role, name string, labels ...string) (float64, error) {
	var total float64
	for _, p := range s.Processes(role) {
		m, err := p.Metrics(ctx)
		if err != nil {
			return 0, err
		}
		total += m.Get(name, labels...)
	}
	return total, nil
}
