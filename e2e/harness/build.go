package harness

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// Environment variables that shape the binaries under test.
const (
	// EnvBinDir points at prebuilt `ingest` and `worker` binaries; nothing is built.
	EnvBinDir = "WAHOOK_E2E_BIN_DIR"
	// EnvRaceBinaries=1 builds the binaries with -race and makes a detected
	// race end the process (exit code RaceExitCode), which fails the test.
	EnvRaceBinaries = "WAHOOK_E2E_RACE_BINARIES"
)

// RaceExitCode is the exit code of a -race binary that found a data race.
const RaceExitCode = 66

// Binaries are the paths of the programs under test.
type Binaries struct {
	Ingest string
	Worker string
	Race   bool
	// Took is how long the build took (zero for prebuilt binaries).
	Took time.Duration
}

// RepoRoot returns the directory holding go.work, walking up from the working
// directory.
func RepoRoot() (string, error) {
	wd, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("repo root: %w", err)
	}
	for d := wd; ; {
		if _, err := os.Stat(filepath.Join(d, "go.work")); err == nil {
			return d, nil
		}
		parent := filepath.Dir(d)
		if parent == d {
			return "", fmt.Errorf("repo root: no go.work above %s", wd)
		}
		d = parent
	}
}

// BuildBinaries builds ingest and worker into dir (once per test run), or takes
// them from WAHOOK_E2E_BIN_DIR.
func BuildBinaries(ctx context.Context, dir string) (Binaries, error) {
	race := os.Getenv(EnvRaceBinaries) == "1"
	if pre := os.Getenv(EnvBinDir); pre != "" {
		b := Binaries{Ingest: filepath.Join(pre, "ingest"), Worker: filepath.Join(pre, "worker"), Race: race}
		for _, p := range []string{b.Ingest, b.Worker} {
			if _, err := os.Stat(p); err != nil {
				return Binaries{}, fmt.Errorf("%s: %w", EnvBinDir, err)
			}
		}
		return b, nil
	}
	root, err := RepoRoot()
	if err != nil {
		return Binaries{}, err
	}
	// `go test` puts its own GOROOT/bin first on PATH.
	goCmd, err := exec.LookPath("go")
	if err != nil {
		return Binaries{}, fmt.Errorf("build binaries: %w", err)
	}
	b := Binaries{Ingest: filepath.Join(dir, "ingest"), Worker: filepath.Join(dir, "worker"), Race: race}
	began := time.Now()
	// Built from inside each module, so that it works with GOWORK=off as well.
	for _, m := range []struct{ module, out string }{{"ingest", b.Ingest}, {"worker", b.Worker}} {
		args := []string{"build", "-o", m.out}
		if race {
			args = append(args, "-race")
		}
		args = append(args, "./cmd/"+m.module)
		cmd := exec.CommandContext(ctx, goCmd, args...)
		cmd.Dir = filepath.Join(root, m.module)
		out, err := cmd.CombinedOutput()
		if err != nil {
			return Binaries{}, fmt.Errorf("go %s (in %s): %w\n%s", strings.Join(args, " "), cmd.Dir, err, out)
		}
	}
	b.Took = time.Since(began)
	return b, nil
}
