// Command report runs the race suite's fault scenarios and prints the fault
// table of e2e/README.md (issue 7's report): per fault, the events, how many
// are done, double completions, the DLQ, the p99 time to done of the events
// the fault touched and the recovery time after it, each read from the
// backends by the scenario (harness.Stack.Report logs one "REPORT {json}"
// line per fault). Run from the e2e module:
//
//	go run ./cmd/report                       # long forms (tens of minutes)
//	go run ./cmd/report -short                # the CI forms (minutes)
//	go run ./cmd/report -readme README.md     # and rewrite the README's table
//	go run ./cmd/report -from saved-test-output.txt
//
// The go test output goes to stderr as it runs; the table to stdout.
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/wahook/wahook/e2e/harness"
)

// faultScenarios are the scenarios that call Stack.Report: a new fault
// scenario adds its name here.
const faultScenarios = "^(" +
	"TestLedgerWritesThrottled|TestLostReplies|TestSlowBackend|TestZombieWorker|TestIngestSendFaults|TestChaosSoak|" +
	"TestForwardRedirects|TestOutcomeUnknownNotLeaseLost|" +
	"TestHandlerIgnoringContext|TestInterruptionsDoNotExhaustAttempts|TestResultWriteNotCutShort" +
	")$"

// The README's table sits between these markers.
const (
	beginMarker = "<!-- fault-report:begin -->"
	endMarker   = "<!-- fault-report:end -->"
)

func main() {
	short := flag.Bool("short", false, "run the scenarios' CI forms (go test -short)")
	run := flag.String("run", faultScenarios, "go test -run pattern")
	from := flag.String("from", "", "read saved go test -v output instead of running the scenarios")
	readme := flag.String("readme", "", "rewrite the table between "+beginMarker+" and "+endMarker+" in this file")
	timeout := flag.Duration("timeout", 90*time.Minute, "go test -timeout")
	flag.Parse()
	log.SetFlags(0)
	log.SetPrefix("report: ")

	out, err := output(*from, *run, *short, *timeout)
	if err != nil {
		log.Print(err) // a failed scenario still reports: print what there is
	}
	reports, perr := harness.ReadReports(bytes.NewReader(out))
	if perr != nil {
		log.Fatal(perr)
	}
	if len(reports) == 0 {
		log.Fatal("no REPORT lines in the output")
	}
	host, _ := os.Hostname()
	at := time.Now()
	if fi, err := os.Stat(*from); *from != "" && err == nil {
		at = fi.ModTime() // when the saved run ended
	}
	table := fmt.Sprintf("Measured %s on %s (%d CPUs, %s/%s).\n\n%s",
		at.UTC().Format("2006-01-02 15:04 MST"), host, runtime.NumCPU(), runtime.GOOS, runtime.GOARCH,
		harness.ReportTable(reports))
	fmt.Print(table)
	if *readme != "" {
		if err := rewrite(*readme, table); err != nil {
			log.Fatal(err)
		}
	}
	if err != nil {
		os.Exit(1)
	}
}

// output is the go test -v output of the fault scenarios, or the saved file's.
func output(from, run string, short bool, timeout time.Duration) ([]byte, error) {
	if from != "" {
		return os.ReadFile(from)
	}
	if _, err := os.Stat("scenarios"); err != nil {
		return nil, fmt.Errorf("run from the e2e module (no ./scenarios here): %w", err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	args := []string{"test", "-race", "-count=1", "-v", "-timeout", timeout.String(), "-run", run}
	if short {
		args = append(args, "-short")
	}
	args = append(args, "./scenarios/")
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = time.Minute
	var buf bytes.Buffer
	cmd.Stdout = io.MultiWriter(&buf, os.Stderr)
	cmd.Stderr = os.Stderr
	log.Printf("go %s", strings.Join(args, " "))
	if err := cmd.Run(); err != nil {
		return buf.Bytes(), fmt.Errorf("go test: %w (the table below holds what the scenarios reported)", err)
	}
	return buf.Bytes(), nil
}

// rewrite replaces what lies between the markers in path with table.
func rewrite(path, table string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	s := string(b)
	i, j := strings.Index(s, beginMarker), strings.Index(s, endMarker)
	if i < 0 || j < i {
		return fmt.Errorf("%s: no %s … %s markers", path, beginMarker, endMarker)
	}
	s = s[:i+len(beginMarker)] + "\n" + table + s[j:]
	return os.WriteFile(path, []byte(s), 0o644)
}
