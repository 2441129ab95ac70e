package main

import (
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"
)

// Goals of the benchmark (issue 9), marked met or not in the report.
const (
	goalRatio = 0.9 // wahook's throughput ÷ the same-calls floor's best
	goalRSSMB = 50  // per service process, at load
)

// Report is one run's results; it is written as Markdown and as JSON.
type Report struct {
	Date      string                        `json:"date"`
	Machine   string                        `json:"machine"`
	Backend   string                        `json:"backend"`
	Setup     string                        `json:"setup"`
	Max       load                          `json:"max_rate"`
	Sustained *load                         `json:"sustained,omitempty"`
	Processes []procCost                    `json:"processes"`
	Calls     map[string]map[string]float64 `json:"calls_per_event"`
	Floor     *floorResult                  `json:"floor,omitempty"`
	Ratio     float64                       `json:"ratio_to_floor,omitempty"`         // to the floor making wahook's own requests
	RatioMin  float64                       `json:"ratio_to_minimal_floor,omitempty"` // to the one making the smallest requests
	// RatioRounds are wahook's maximum rate and the floor at its best
	// concurrency measured back to back (-ratio-rounds); their median ratio
	// is the one held to the goal.
	RatioRounds []ratioRound `json:"ratio_rounds,omitempty"`
	Big         *bigResult   `json:"big_body,omitempty"`
	Scaling     []scaleCell  `json:"scaling,omitempty"`
	Soak        *soakResult  `json:"soak,omitempty"`
	Profiles    []string     `json:"profiles,omitempty"`
	CPU         []phaseCPU   `json:"cpu_by_phase,omitempty"`
}

type procCost struct {
	Name            string  `json:"name"`
	CPUSecondsPer1k float64 `json:"cpu_seconds_per_1k_events,omitempty"`
	PeakRSSMB       float64 `json:"peak_rss_mb"`
	RSSMB           float64 `json:"rss_mb"`
}

type sweepPoint struct {
	Conc int `json:"concurrency"`
	// SameRequestsPerSec: the floor making wahook's own requests (ledger calls
	// by shared/ledger, ingest's envelopes, the store handler's write);
	// EventsPerSec: the same calls as the smallest request of each kind.
	SameRequestsPerSec float64 `json:"same_requests_events_per_sec"`
	EventsPerSec       float64 `json:"events_per_sec"`
}

type rawPoint struct {
	Op     string  `json:"operation"`
	Conc   int     `json:"concurrency"`
	PerSec float64 `json:"per_sec"`
	P50ms  float64 `json:"p50_ms"`
	P99ms  float64 `json:"p99_ms"`
}

// ratioRound is one pair of ratioRounds.
type ratioRound struct {
	Wahook float64 `json:"wahook_events_per_sec"` // end to end, at the maximum rate
	Floor  float64 `json:"floor_events_per_sec"`  // the same-calls floor, wahook's requests
	Errors int     `json:"errors"`                // wahook's webhooks not answered 200
}

func (r ratioRound) ratio() float64 { return r.Wahook / r.Floor }

// medianRatio is the median of the rounds' ratios (the lower middle one of an
// even number), 0 without rounds.
func medianRatio(rounds []ratioRound) float64 {
	if len(rounds) == 0 {
		return 0
	}
	ratios := make([]float64, len(rounds))
	for i, r := range rounds {
		ratios[i] = r.ratio()
	}
	slices.Sort(ratios)
	return ratios[(len(ratios)-1)/2]
}

type floorResult struct {
	Sweep []sweepPoint                  `json:"same_calls_sweep"`
	Calls map[string]map[string]float64 `json:"calls_per_event"`
	Raw   []rawPoint                    `json:"raw"`
}

// Best is the sweep's fastest point of the floor making wahook's own requests.
func (f *floorResult) Best() sweepPoint {
	return f.fastest(func(p sweepPoint) float64 { return p.SameRequestsPerSec })
}

// Minimal is the sweep's fastest point of the floor making the smallest requests.
func (f *floorResult) Minimal() sweepPoint {
	return f.fastest(func(p sweepPoint) float64 { return p.EventsPerSec })
}

func (f *floorResult) fastest(rate func(sweepPoint) float64) sweepPoint {
	var best sweepPoint
	for _, p := range f.Sweep {
		if rate(p) > rate(best) {
			best = p
		}
	}
	return best
}

type bigResult struct {
	Events     int      `json:"events"`
	Workers    int      `json:"workers"` // running during the runs
	Processors int      `json:"processors"`
	FloorConc  int      `json:"floor_concurrency"` // the floor's best, swept once
	Runs       []bigRun `json:"runs"`
	// IngestRSS: each ingest's resident set after the rounds, and its high-water mark.
	IngestRSS []procCost `json:"ingest_rss"`
}

// bigRun is one round: the floor again, one body, identical twins.
type bigRun struct {
	Events     int           `json:"events"`
	Floor      time.Duration `json:"floor_ns"` // 2,000 conditional writes + 100 batch sends
	Bound      time.Duration `json:"bound_ns"` // 2 × Floor
	Single     float64       `json:"single_ms"`
	SingleOK   bool          `json:"single_ok"`
	Twin       []float64     `json:"twin_ms"`
	TwinOK     bool          `json:"twin_ok"` // both answered 200
	TwinQueued int           `json:"twin_queued"`
	// DynamoDB calls by operation while the body, and the twins, were being
	// answered (the running worker's among them).
	SingleCalls map[string]int64 `json:"single_dynamodb_calls"`
	TwinCalls   map[string]int64 `json:"twin_dynamodb_calls"`
	// Profiles are the ingests' CPU profiles of the body and the twins
	// (-profile); the report lists them with the others.
	Profiles []string `json:"-"`
}

// met reports whether the single body and both twins were answered 200 within
// the bound, and the twins' events queued once over both.
func (r bigRun) met() (single, twins bool) {
	bound := ms(r.Bound)
	single = r.SingleOK && r.Single <= bound
	twins = r.TwinOK && r.TwinQueued == r.Events && len(r.Twin) == 2
	for _, t := range r.Twin {
		twins = twins && t <= bound
	}
	return single, twins
}

type scaleCell struct {
	Workers      int     `json:"workers"`
	Processors   int     `json:"processors"`
	EventsPerSec float64 `json:"events_per_sec"`
	P99ms        float64 `json:"webhook_p99_ms"`
}

type soakSample struct {
	At    time.Duration      `json:"at_ns"`
	RSSMB map[string]float64 `json:"rss_mb"`
}

type soakResult struct {
	Duration       time.Duration `json:"duration_ns"`
	WebhooksPerSec float64       `json:"webhooks_per_sec"`
	Load           load          `json:"load"`
	Samples        []soakSample  `json:"samples"`
	PeakRSSMB      []procCost    `json:"end"`
}

// Write writes path.md and path.json.
func (r *Report) Write(path string) error {
	raw, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("report json: %w", err)
	}
	if err := os.WriteFile(path+".json", append(raw, '\n'), 0o644); err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	if err := os.WriteFile(path+".md", []byte(r.Markdown()), 0o644); err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	return nil
}

func mark(ok bool) string {
	if ok {
		return "met"
	}
	return "NOT met"
}

// Markdown renders the report.
func (r *Report) Markdown() string {
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	p("## wahook benchmark, %s\n\n", r.Date)
	p("- machine: %s\n- backend: %s\n- setup: %s\n\n", r.Machine, r.Backend, r.Setup)

	p("### Webhook load (vegeta)\n\n")
	header := func() {
		p("| run | webhooks | events | accepted events/s | end-to-end events/s | p50 ms | p95 ms | p99 ms | max ms | errors | backlog after the last answer |\n")
		p("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	}
	header()
	row := func(name string, l load) {
		p("| %s | %d | %d | %.0f | %.0f | %.0f | %.0f | %.0f | %.0f | %d | %v |\n", name, l.Webhooks, l.Events,
			l.AcceptedPerSec, l.EndToEndPerSec, l.P50ms, l.P95ms, l.P99ms, l.MaxMs, l.Errors, l.Backlog.Round(time.Millisecond))
	}
	row("maximum rate", r.Max)
	if r.Sustained != nil {
		row(fmt.Sprintf("sustained %.1f webhooks/s", r.Sustained.RequestedPerSec), *r.Sustained)
	}
	p("\n")

	p("### Cost per service process (maximum-rate run, from /proc)\n\n")
	p("| process | CPU s per 1,000 events | peak RSS MB (VmHWM) | RSS MB at the end | ≤ %d MB |\n|---|---:|---:|---:|---|\n", goalRSSMB)
	for _, c := range r.Processes {
		p("| %s | %.2f | %.1f | %.1f | %s |\n", c.Name, c.CPUSecondsPer1k, c.PeakRSSMB, c.RSSMB, mark(c.PeakRSSMB <= goalRSSMB))
	}
	p("\n")

	p("### Backend calls per event\n\n| service | wahook | same-calls floor client |\n|---|---|---|\n")
	for _, svc := range []string{"DynamoDB", "SQS"} {
		var floor map[string]float64
		if r.Floor != nil {
			floor = r.Floor.Calls[svc]
		}
		p("| %s | %s | %s |\n", svc, calls(r.Calls[svc]), calls(floor))
	}
	p("\n(Empty long polls are included on the SQS side.)\n\n")

	if f := r.Floor; f != nil {
		best := f.Best()
		p("### Floor (same run, same counters, direct clients)\n\n")
		p("Same-calls floor client (Acquire, SendMessageBatch per 10, MarkQueued; receive, Claim, the handler's write, Complete, DeleteMessageBatch), " +
			"concurrency sweep, in two flavours: wahook's own requests — the ledger calls made with wahook's own code (shared/ledger: " +
			"fenced conditions, tokens, lease, attempt and TTL), the envelopes ingest sends for the bench's messages, the store handler's " +
			"UpdateItem — and the smallest request of each kind (one-attribute conditions, a stand-in body of an envelope's size, a plain " +
			"put of 200 bytes for the handler), which shows what wahook's richer requests cost the emulator:\n\n")
		p("| concurrency | events/s, wahook's requests | events/s, smallest requests |\n|---:|---:|---:|\n")
		for _, s := range f.Sweep {
			p("| %d | %.0f | %.0f |\n", s.Conc, s.SameRequestsPerSec, s.EventsPerSec)
		}
		minimal := f.Minimal()
		goal := ""
		if len(r.RatioRounds) == 0 {
			goal = fmt.Sprintf(" (goal ≥ %.1f: %s)", goalRatio, mark(r.Ratio >= goalRatio))
		}
		p("\n**wahook ÷ same-calls floor at its best (%d, wahook's requests): %.0f ÷ %.0f = %.2f**%s; "+
			"÷ the smallest-request floor at its best (%d): %.0f ÷ %.0f = %.2f\n\n",
			best.Conc, r.Max.EndToEndPerSec, best.SameRequestsPerSec, r.Ratio, goal,
			minimal.Conc, r.Max.EndToEndPerSec, minimal.EventsPerSec, r.RatioMin)
		if len(r.RatioRounds) > 0 {
			p("The same ratio measured back to back, round by round: wahook's maximum rate, then the floor at %d "+
				"(wahook's requests), each over %d fresh events; the pair shares the box's conditions, which the "+
				"maximum-rate run and the sweep above, a minute apart, need not:\n\n", best.Conc, r.Max.Events)
			p("| round | wahook events/s | floor events/s | ratio | wahook's errors |\n|---:|---:|---:|---:|---:|\n")
			for i, x := range r.RatioRounds {
				p("| %d | %.0f | %.0f | %.2f | %d |\n", i+1, x.Wahook, x.Floor, x.ratio(), x.Errors)
			}
			m := medianRatio(r.RatioRounds)
			p("\n**Median of the rounds: %.2f** (goal ≥ %.1f: %s)\n\n", m, goalRatio, mark(m >= goalRatio))
		}
		p("Raw floor, one operation alone at concurrency %d:\n\n| operation | per s | p50 ms | p99 ms |\n|---|---:|---:|---:|\n", best.Conc)
		for _, x := range f.Raw {
			p("| %s | %.0f | %.1f | %.1f |\n", x.Op, x.PerSec, x.P50ms, x.P99ms)
		}
		p("\n")
	}

	if g := r.Big; g != nil {
		p("### A 1,000-update body (%d worker × %d processors running)\n\n", g.Workers, g.Processors)
		p("Each round measures the floor (2,000 conditional writes + 100 batch sends, at concurrency %d, the best of 8, 16, 32, 64) "+
			"right before its bodies; the bound is twice it. Twins: two identical bodies at once, one on each ingest replica.\n\n", g.FloorConc)
		p("| round | floor | bound | one body | within | twin 1 | twin 2 | within, both 200 | twins' events queued once |\n|---:|---:|---:|---:|---|---:|---:|---|---|\n")
		singles, twins := 0, 0
		for i, run := range g.Runs {
			s, t := run.met()
			singles, twins = singles+btoi(s), twins+btoi(t)
			tw := [2]float64{}
			copy(tw[:], run.Twin)
			p("| %d | %v | %v | %.0f ms%s | %s | %.0f ms | %.0f ms | %s | %d of %d |\n", i+1,
				run.Floor.Round(time.Millisecond), run.Bound.Round(time.Millisecond), run.Single, okMark(run.SingleOK), mark(s),
				tw[0], tw[1], mark(t), run.TwinQueued, run.Events)
		}
		p("\nWithin the bound: one body in %d of %d rounds, the twins in %d of %d.\n\n", singles, len(g.Runs), twins, len(g.Runs))
		p("DynamoDB calls while they were answered (both ingests and the running worker):\n\n| round | one body | twins |\n|---:|---|---|\n")
		for i, run := range g.Runs {
			p("| %d | %s | %s |\n", i+1, counts(run.SingleCalls), counts(run.TwinCalls))
		}
		p("\n")
		for _, c := range g.IngestRSS {
			p("- %s after the rounds: RSS %.1f MB, peak (VmHWM, since it started) %.1f MB\n", c.Name, c.RSSMB, c.PeakRSSMB)
		}
		p("\n")
	}

	if len(r.Scaling) > 0 {
		p("### Scaling (end-to-end events/s, maximum rate)\n\n| workers \\ processors | 1 | 2 | 4 | 8 |\n|---|---:|---:|---:|---:|\n")
		for _, w := range []int{1, 2} {
			p("| %d |", w)
			for _, c := range r.Scaling {
				if c.Workers == w {
					p(" %.0f |", c.EventsPerSec)
				}
			}
			p("\n")
		}
		p("\n")
	}

	if s := r.Soak; s != nil {
		p("### Soak: %v at %.1f webhooks/s\n\n", s.Duration, s.WebhooksPerSec)
		header()
		row("soak", s.Load)
		p("\n| process | RSS MB first sample | RSS MB last sample | max sample | peak (VmHWM) |\n|---|---:|---:|---:|---:|\n")
		for _, c := range s.PeakRSSMB {
			first, last, top := 0.0, 0.0, 0.0
			for i, smp := range s.Samples {
				v := smp.RSSMB[c.Name]
				if i == 0 {
					first = v
				}
				last, top = v, max(top, v)
			}
			p("| %s | %.1f | %.1f | %.1f | %.1f |\n", c.Name, first, last, top, c.PeakRSSMB)
		}
		p("\n")
	}
	if len(r.CPU) > 0 {
		p("### Where the time went (CPU by process group, from /proc)\n\n")
		p("Cores busy on average during each phase (CPU seconds ÷ wall seconds; 1.00 = one core). The bench runs the load generator, the call counters and the floor clients. A single-threaded emulator (dynalite is one Node.js event loop) cannot use more than 1.00.\n\n")
		p("| phase | wall s |")
		for _, g := range cpuGroups {
			p(" %s |", g)
		}
		p(" all | load average |\n|---|---:|")
		for range cpuGroups {
			p("---:|")
		}
		p("---:|---:|\n")
		for _, c := range r.CPU {
			wall := c.Wall.Seconds()
			p("| %s | %.2f |", c.Phase, wall)
			total := 0.0
			for _, g := range cpuGroups {
				total += c.CPU[g]
				p(" %.2f |", c.CPU[g]/wall)
			}
			p(" %.2f | %.1f |\n", total/wall, c.Load)
		}
		p("\n")
	}
	if len(r.Profiles) > 0 {
		p("Profiles: %s (`go tool pprof -top FILE`).\n", strings.Join(r.Profiles, ", "))
	}
	return b.String()
}

func calls(m map[string]float64) string {
	if len(m) == 0 {
		return "—"
	}
	total := 0.0
	var parts []string
	for _, op := range sortedKeys(m) {
		total += m[op]
		parts = append(parts, fmt.Sprintf("%s %.2f", op, m[op]))
	}
	return fmt.Sprintf("%.2f (%s)", total, strings.Join(parts, ", "))
}

func counts(m map[string]int64) string {
	var parts []string
	for _, op := range sortedKeys(m) {
		parts = append(parts, fmt.Sprintf("%s %d", op, m[op]))
	}
	return strings.Join(parts, ", ")
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// okMark flags an answer that was not 200.
func okMark(ok bool) string {
	if ok {
		return ""
	}
	return " (not 200)"
}
