package scenarios

import (
	"encoding/json"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"

	"github.com/wahook/wahook/e2e/harness"
)

// DashboardPath is the provisioned Grafana dashboard, from this package.
const DashboardPath = "../../deploy/observability/grafana/dashboards/wahook.json"

// dashboardPanel is the part of a Grafana panel the test reads.
type dashboardPanel struct {
	Title   string           `json:"title"`
	Type    string           `json:"type"`
	Panels  []dashboardPanel `json:"panels"` // a collapsed row's
	Targets []struct {
		Expr string `json:"expr"`
	} `json:"targets"`
}

// selector is one metric a panel's query reads, with its equality matchers.
type selector struct {
	panel, expr, metric string
	equal               map[string]string
}

// The dashboard cannot rot: every metric its panels query, and every label
// value they match on, is exported by the real ingest and worker processes
// (read from their /metrics after one webhook went through, duplicates
// included). It also covers what operators asked for.
func TestDashboardQueriesExportedMetrics(t *testing.T) {
	t.Parallel()
	sels := dashboardSelectors(t, DashboardPath)

	s := harness.NewStack(t, harness.StackOptions{})
	in := s.StartIngest(nil)
	wk := s.StartWorker(harness.WorkerOptions{})
	ctx := t.Context()
	g := harness.NewGen(seed(t))
	p := g.Payload(g.Messages(2), nil)
	for range 2 { // the second time as duplicates
		if r := s.Client().Post(ctx, p.JSON()); !r.OK() {
			t.Fatalf("POST: %v", r)
		}
	}
	s.AwaitSettled(p.Keys(), 60*time.Second)

	// series: metric name → the label sets of its series.
	series := map[string][]map[string]string{}
	for _, proc := range []*harness.Process{in, wk} {
		m, err := proc.Metrics(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for s := range m {
			name, ls := splitSeries(s)
			series[name] = append(series[name], ls)
		}
	}
	for _, sel := range sels {
		got, ok := series[sel.metric]
		if !ok {
			t.Errorf("panel %q queries %s, which neither process exports (expr %s; exported names like it: %v)",
				sel.panel, sel.metric, sel.expr, like(series, sel.metric))
			continue
		}
		for k, v := range sel.equal {
			if !slices.ContainsFunc(got, func(ls map[string]string) bool { return ls[k] == v }) {
				t.Errorf("panel %q matches %s{%s=%q}, but no exported series has it (expr %s)", sel.panel, sel.metric, k, v, sel.expr)
			}
		}
	}

	// What the issue asked the dashboard to show.
	queried := map[string]bool{}
	for _, sel := range sels {
		queried[sel.metric] = true
	}
	for _, want := range []string{
		"wahook_ingest_webhook_requests_total", "wahook_ingest_webhook_request_duration_seconds_bucket", // webhook rate, latency
		"wahook_ingest_duplicates_total", "wahook_worker_duplicates_total", // duplicates
		"wahook_ingest_events_total", "wahook_worker_events_total", // events by result
		"wahook_queue_messages", "wahook_worker_receive_age_seconds_bucket", // backlog, DLQ depth, age at receive
		"wahook_worker_claim_conflicts_total", "wahook_worker_leases_lost_total", "wahook_worker_heartbeats_total",
		"wahook_worker_breaker_open", "wahook_worker_dead_lettered_total",
		"wahook_ingest_signature_matches_total", // which app secret signs (rotation)
	} {
		if !queried[want] {
			t.Errorf("no panel queries %s", want)
		}
	}
	t.Logf("%d queries over %d metrics checked against %d exported metric names", len(sels), len(queried), len(series))
}

// dashboardSelectors parses every panel query of the dashboard at path.
func dashboardSelectors(t *testing.T, path string) []selector {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []dashboardPanel `json:"panels"`
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	var panels []dashboardPanel
	for _, p := range dash.Panels {
		panels = append(panels, p)
		panels = append(panels, p.Panels...)
	}
	// Grafana's interval variables, replaced as Grafana does before sending.
	vars := strings.NewReplacer("$__rate_interval", "1m", "$__interval", "15s", "$__range", "30m")
	pp := parser.NewParser(parser.Options{})
	var sels []selector
	graphs := 0
	for _, p := range panels {
		if p.Type == "row" {
			continue
		}
		graphs++
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			expr, err := pp.ParseExpr(vars.Replace(tg.Expr))
			if err != nil {
				t.Errorf("panel %q: query %q does not parse: %v", p.Title, tg.Expr, err)
				continue
			}
			n := 0
			parser.Inspect(expr, func(node parser.Node, _ []parser.Node) error {
				vs, ok := node.(*parser.VectorSelector)
				if !ok {
					return nil
				}
				n++
				sel := selector{panel: p.Title, expr: tg.Expr, metric: vs.Name, equal: map[string]string{}}
				for _, m := range vs.LabelMatchers {
					if m.Name != labels.MetricName && m.Type == labels.MatchEqual {
						sel.equal[m.Name] = m.Value
					}
				}
				sels = append(sels, sel)
				return nil
			})
			if n == 0 {
				t.Errorf("panel %q: query %q reads no metric", p.Title, tg.Expr)
			}
		}
	}
	if graphs < 10 {
		t.Fatalf("%s has %d panels; the dashboard is missing", path, graphs)
	}
	return sels
}

var labelPair = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"`)

// splitSeries splits `name{a="x",b="y"}` into its name and labels.
func splitSeries(s string) (string, map[string]string) {
	name, rest, _ := strings.Cut(s, "{")
	ls := map[string]string{}
	for _, m := range labelPair.FindAllStringSubmatch(rest, -1) {
		ls[m[1]] = m[2]
	}
	return name, ls
}

// like lists exported names sharing name's first two words, for the message.
func like(series map[string][]map[string]string, name string) []string {
	parts := strings.SplitN(name, "_", 3)
	prefix := strings.Join(parts[:min(2, len(parts))], "_")
	var out []string
	for n := range series {
		if strings.HasPrefix(n, prefix) {
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return out
}
