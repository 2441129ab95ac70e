package harness

import (
	"strings"
	"testing"
	"time"
)

func TestPercentile(t *testing.T) {
	var ds []time.Duration
	for i := 100; i >= 1; i-- {
		ds = append(ds, time.Duration(i)*time.Millisecond)
	}
	for _, c := range []struct {
		q    float64
		want time.Duration
	}{{0.99, 99 * time.Millisecond}, {0.5, 50 * time.Millisecond}, {1, 100 * time.Millisecond}, {0, time.Millisecond}} {
		if got := Percentile(ds, c.q); got != c.want {
			t.Errorf("Percentile(1..100 ms, %v) = %v, want %v", c.q, got, c.want)
		}
	}
	if got := Percentile([]time.Duration{7 * time.Second}, 0.99); got != 7*time.Second {
		t.Errorf("Percentile of one = %v, want 7s", got)
	}
	if got := Percentile(nil, 0.99); got != 0 {
		t.Errorf("Percentile of none = %v, want 0", got)
	}
}

func TestReadReportsAndTable(t *testing.T) {
	out := `=== RUN   TestLostReplies
    api_faults_test.go:170: settled: 200 keys
    report.go:99: REPORT {"scenario":"TestLostReplies","fault":"lost replies","form":"short","events":200,"done":200,"double_completions":0,"dlq":0,"exposed":200,"p99_to_done_ms":1234,"recovery_ms":0,"fault_ms":30000}
--- PASS: TestLostReplies (40.00s)
    report.go:99: REPORT {"scenario":"TestSlowBackend","fault":"2 s added to claim","form":"long","events":100,"done":98,"double_completions":1,"dlq":2,"exposed":100,"p99_to_done_ms":-1,"recovery_ms":-1,"fault_ms":5000}
`
	rs, err := ReadReports(strings.NewReader(out))
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 2 || rs[0].Events != 200 || rs[0].P99ToDoneMS != 1234 || rs[1].DoubleCompletions != 1 || rs[1].RecoveryMS != -1 {
		t.Fatalf("read %+v", rs)
	}
	table := ReportTable(rs)
	for _, want := range []string{
		"| LostReplies | lost replies | short | 30s | 200 | 200 | 0 | 0 | 1.2s (200) | 0s |",
		"| SlowBackend | 2 s added to claim | long | 5s | 100 | 98 | 1 | 2 | – | not recovered |",
	} {
		if !strings.Contains(table, want) {
			t.Errorf("table lacks %q:\n%s", want, table)
		}
	}
	if _, err := ReadReports(strings.NewReader("x REPORT {broken\n")); err == nil {
		t.Error("a broken REPORT line parsed")
	}
}
