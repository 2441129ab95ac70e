package harness

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/wahook/wahook/shared/ledger"
)

// ReportPrefix starts the one machine-readable line a fault scenario logs per
// fault (see Stack.Report); cmd/report collects them into e2e/README.md's table.
const ReportPrefix = "REPORT "

// auditFinished is the audit handler's map attempt → processor, written when
// a run got past its delay: the handler's work completed.
const auditFinished = "finished"

// FaultWindow is when a scenario's fault was on, as the scenario marks it.
type FaultWindow struct {
	// Fault names the fault in the report ("ledger writes throttled").
	Fault string
	Start time.Time
	End   time.Time // zero while the fault is on
}

// FaultBegins marks a fault on from now (call Ends when it is lifted).
func FaultBegins(fault string) *FaultWindow { return &FaultWindow{Fault: fault, Start: time.Now()} }

// Ends marks the fault lifted now (the first call counts).
func (w *FaultWindow) Ends() {
	if w.End.IsZero() {
		w.End = time.Now()
	}
}

// FaultReport is one fault's numbers, read from the backends: a row of the
// fault table in e2e/README.md.
type FaultReport struct {
	Scenario string `json:"scenario"`
	Fault    string `json:"fault"`
	// Form is "short" (the CI form, -short) or "long".
	Form string `json:"form"`
	// Events are the keys the scenario had accepted for this fault.
	Events int `json:"events"`
	// Done are those the ledger holds done.
	Done int `json:"done"`
	// DoubleCompletions are events whose handler ran to its end (the audit
	// handler's "finished") under more than one claim.
	DoubleCompletions int `json:"double_completions"`
	// DLQ is the dead-letter queue's depth (the stack's, not only these events').
	DLQ int `json:"dlq"`
	// Exposed are the events the fault could touch: received before it was
	// lifted and not done before it began.
	Exposed int `json:"exposed"`
	// P99ToDoneMS is the 99th percentile of done_at - received_at (the
	// ledger's times: ingest's admission, the completing claim's write) over
	// the exposed events that are done (-1: none).
	P99ToDoneMS int64 `json:"p99_to_done_ms"`
	// RecoveryMS is how long after the fault was lifted the last of the
	// events was settled, done or failed for good (0: all settled while it
	// was on; -1: not all settled).
	RecoveryMS int64 `json:"recovery_ms"`
	// FaultMS is how long the fault was on.
	FaultMS int64 `json:"fault_ms"`
}

// formName is "short" under go test -short, "long" otherwise (and outside go test).
func formName() string {
	if f := flag.Lookup("test.short"); f != nil && f.Value.String() == "true" {
		return "short"
	}
	return "long"
}

// Report reads the ledger, the audit table and the DLQ, computes the fault's
// numbers over keys (the events accepted for it) and logs them as one
// "REPORT {json}" line. Call it once the events settled (or the scenario
// gave up waiting): it reports what the backends hold, nothing is asserted.
// A window not yet ended ends now.
func (s *Stack) Report(w *FaultWindow, keys []string) FaultReport {
	s.t.Helper()
	w.Ends()
	ctx, cancel := context.WithTimeout(s.t.Context(), time.Minute)
	defer cancel()
	r, err := s.report(ctx, w, dedup(keys))
	if err != nil {
		s.t.Errorf("fault report %q: %v", w.Fault, err)
		return r
	}
	b, err := json.Marshal(r)
	if err != nil {
		s.t.Errorf("fault report %q: %v", w.Fault, err)
		return r
	}
	s.t.Logf("%s%s", ReportPrefix, b)
	return r
}

func (s *Stack) report(ctx context.Context, w *FaultWindow, keys []string) (FaultReport, error) {
	r := FaultReport{Scenario: s.t.Name(), Fault: w.Fault, Form: formName(), Events: len(keys),
		FaultMS: w.End.Sub(w.Start).Milliseconds(), P99ToDoneMS: -1}
	items, err := s.Ledger(ctx)
	if err != nil {
		return r, err
	}
	audit, err := Scan(ctx, s.Suite.Clients.DynamoDB, s.AuditTable)
	if err != nil {
		return r, err
	}
	finished := make(map[string]int, len(audit))
	for _, it := range audit {
		finished[S(it, AuditKey)] = len(M(it, auditFinished))
	}
	_, dlq, err := s.Depth(ctx)
	if err != nil {
		return r, err
	}
	r.DLQ = dlq.Total()

	var toDone []time.Duration
	var lastSettled time.Time // done, or failed for good
	settled := 0
	for _, k := range keys {
		if finished[k] > 1 {
			r.DoubleCompletions++
		}
		it, ok := items[k]
		if ok && it.State == ledger.StateFailed {
			settled++
			lastSettled = maxTime(lastSettled, it.DoneAt)
		}
		if !ok || it.State != ledger.StateDone {
			continue
		}
		r.Done++
		settled++
		lastSettled = maxTime(lastSettled, it.DoneAt)
		// An event the scenario put on the queue itself (no ingest, so no
		// received_at) was there before the fault: it counts from its start.
		from := it.ReceivedAt
		if from.IsZero() {
			from = w.Start
		}
		if from.Before(w.End) && !it.DoneAt.Before(w.Start) {
			r.Exposed++
			toDone = append(toDone, it.DoneAt.Sub(from))
		}
	}
	for _, k := range keys {
		// Not done: exposed unless received after the fault.
		if it, ok := items[k]; !ok || it.State != ledger.StateDone {
			if !ok || it.ReceivedAt.Before(w.End) {
				r.Exposed++
			}
		}
	}
	if len(toDone) > 0 {
		r.P99ToDoneMS = Percentile(toDone, 0.99).Milliseconds()
	}
	switch {
	case settled < r.Events:
		r.RecoveryMS = -1
	case lastSettled.After(w.End):
		r.RecoveryMS = lastSettled.Sub(w.End).Milliseconds()
	}
	return r, nil
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// Percentile is the nearest-rank q-quantile of ds (0 for none).
func Percentile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(float64(len(s))*q+0.999999) - 1
	return s[min(max(i, 0), len(s)-1)]
}

// ReadReports collects the REPORT lines of go test output (-v, or a failed
// test's log), in order; a line that does not parse is an error.
func ReadReports(r io.Reader) ([]FaultReport, error) {
	var out []FaultReport
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		line := sc.Text()
		i := strings.Index(line, ReportPrefix+"{")
		if i < 0 {
			continue
		}
		var fr FaultReport
		if err := json.Unmarshal([]byte(line[i+len(ReportPrefix):]), &fr); err != nil {
			return out, fmt.Errorf("report line %q: %w", line, err)
		}
		out = append(out, fr)
	}
	return out, sc.Err()
}

// ReportTable renders reports as e2e/README.md's Markdown fault table.
func ReportTable(rs []FaultReport) string {
	var b strings.Builder
	b.WriteString("| Scenario | Fault | Form | Fault on | Events | Done | Double completions | DLQ | p99 time to done (exposed) | Recovery after the fault |\n")
	b.WriteString("|---|---|---|---|---:|---:|---:|---:|---:|---:|\n")
	for _, r := range rs {
		p99 := "–"
		if r.P99ToDoneMS >= 0 {
			p99 = fmt.Sprintf("%s (%d)", ms(r.P99ToDoneMS), r.Exposed)
		}
		rec := "not recovered"
		if r.RecoveryMS >= 0 {
			rec = ms(r.RecoveryMS)
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %d | %d | %d | %d | %s | %s |\n",
			strings.TrimPrefix(r.Scenario, "Test"), r.Fault, r.Form, ms(r.FaultMS), r.Events, r.Done,
			r.DoubleCompletions, r.DLQ, p99, rec)
	}
	return b.String()
}

func ms(n int64) string {
	d := time.Duration(n) * time.Millisecond
	if d >= 10*time.Second {
		return d.Round(time.Second).String()
	}
	return d.Round(100 * time.Millisecond).String()
}
