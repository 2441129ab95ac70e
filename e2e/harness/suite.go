package harness

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/wahook/wahook/shared/awsclient"
)

// EnvKeepLogs=1 keeps every process log directory, not only failed tests'.
const EnvKeepLogs = "WAHOOK_E2E_KEEP_LOGS"

// Suite is what every test of a run shares: the backend, the binaries, the
// fault proxy and clients that talk to the backend directly.
type Suite struct {
	Backend *Backend
	Faults  *Faults
	// Clients talk to the backend directly, past every fault: the truth.
	Clients *awsclient.Clients

	binsOnce sync.Once
	bins     Binaries
	binsErr  error
	binDir   string
	logged   sync.Once
	started  time.Duration
}

var (
	suiteOnce sync.Once
	suite     *Suite
	suiteErr  error
)

// Main runs the tests, then stops what the suite started. Use it as TestMain.
func Main(m *testing.M) {
	code := m.Run()
	Shutdown(code != 0)
	os.Exit(code)
}

// Shutdown closes the suite Setup started, if any, printing the backend's
// logs first when failed.
func Shutdown(failed bool) {
	if suite == nil {
		return
	}
	if failed {
		if logs := suite.Backend.Logs(8 << 10); logs != "" {
			fmt.Fprint(os.Stderr, logs)
		}
	}
	suite.Close()
}

// InCI reports whether CI=true (or 1): then a missing backend fails the run.
func InCI() bool {
	ci, _ := strconv.ParseBool(os.Getenv("CI"))
	return ci
}

// Setup returns the suite, starting the backend on first use. Without any
// backend the test is skipped with the reason — or fails, under CI.
func Setup(t TB) *Suite {
	t.Helper()
	suiteOnce.Do(func() {
		began := time.Now()
		suite, suiteErr = NewSuite(context.Background())
		if suite != nil {
			suite.started = time.Since(began)
		}
	})
	switch {
	case errors.Is(suiteErr, ErrNoBackend) && InCI():
		t.Fatalf("e2e: %v (CI is set: a missing backend is a failure, not a skip)", suiteErr)
	case errors.Is(suiteErr, ErrNoBackend):
		t.Skipf("e2e skipped: %v", suiteErr)
	case suiteErr != nil:
		t.Fatalf("e2e setup: %v", suiteErr)
	}
	suite.logged.Do(func() {
		t.Logf("e2e backend: %s (up in %v)", suite.Backend, suite.started.Round(time.Millisecond))
	})
	return suite
}

// NewSuite starts a backend (see StartBackend). Close releases it.
func NewSuite(ctx context.Context) (*Suite, error) {
	b, err := StartBackend(ctx)
	if err != nil {
		return nil, err
	}
	s := &Suite{Backend: b, Faults: NewFaults()}
	if s.Clients, err = awsclient.New(ctx, b.Options()); err != nil {
		s.Close()
		return nil, fmt.Errorf("clients: %w", err)
	}
	return s, nil
}

// Binaries builds the ingest and worker binaries on first use (once per run).
func (s *Suite) Binaries(ctx context.Context) (Binaries, error) {
	s.binsOnce.Do(func() {
		if s.binDir, s.binsErr = os.MkdirTemp("", "wahook-e2e-bin-"); s.binsErr != nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Minute)
		defer cancel()
		s.bins, s.binsErr = BuildBinaries(ctx, s.binDir)
		if s.binsErr == nil && s.bins.Took > 0 {
			race := ""
			if s.bins.Race {
				race = " with -race"
			}
			fmt.Fprintf(os.Stderr, "e2e: built ingest and worker%s in %v\n", race, s.bins.Took.Round(time.Millisecond))
		}
	})
	return s.bins, s.binsErr
}

// Close stops the fault proxies and the backend and removes the binaries.
func (s *Suite) Close() {
	s.Faults.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := s.Backend.Stop(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: stop backend:", err)
	}
	if s.binDir != "" {
		_ = os.RemoveAll(s.binDir)
	}
}
