package main

import (
	"bufio"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/wahook/wahook/e2e/harness"
)

// phaseCPU is where one phase's time went: its wall time and the CPU seconds
// each group of processes used meanwhile (the services, each emulator, and
// the bench itself, which runs the load generator, the call counters and the
// floor clients). On a 2-core box the sum shows how close the machine was to
// full, and an emulator near 1.0 core × wall is single-threaded and saturated.
type phaseCPU struct {
	Phase string             `json:"phase"`
	Wall  time.Duration      `json:"wall_ns"`
	CPU   map[string]float64 `json:"cpu_seconds"`
	// Load is the machine's 1-minute load average at the phase's end: other
	// jobs on a shared box show here.
	Load float64 `json:"load_average_1m"`
}

// cpuGroups is the order of the groups in the report.
var cpuGroups = []string{"ingest", "worker", "dynamodb emulator", "sqs emulator", "bench"}

// meter reads the CPU time of the processes that make up one run.
type meter struct {
	emulators map[string]int // group → pid (0: not found, e.g. a remote endpoint)
}

// newMeter finds the emulators' processes by the ports they listen on.
func newMeter(backend *harness.Backend) *meter {
	m := &meter{emulators: map[string]int{}}
	for group, endpoint := range map[string]string{
		"dynamodb emulator": backend.DynamoDBEndpoint, "sqs emulator": backend.SQSEndpoint,
	} {
		pid, err := listenerPid(endpoint)
		if err != nil {
			fmt.Fprintf(os.Stderr, "bench: %s: %v (its CPU is not reported)\n", group, err)
		}
		m.emulators[group] = pid
	}
	return m
}

// pids are the processes of each group now.
func (m *meter) pids(s *harness.Stack) map[string][]int {
	out := map[string][]int{"bench": {os.Getpid()}}
	for group, pid := range m.emulators {
		if pid > 0 {
			out[group] = []int{pid}
		}
	}
	for _, p := range s.Processes(harness.RoleIngest) {
		out["ingest"] = append(out["ingest"], p.Pid())
	}
	for _, p := range s.Processes(harness.RoleWorker) {
		out["worker"] = append(out["worker"], p.Pid())
	}
	return out
}

func cpuOf(groups map[string][]int) map[string]float64 {
	out := map[string]float64{}
	for g, pids := range groups {
		for _, pid := range pids {
			if s, err := readProc(pid); err == nil {
				out[g] += s.CPUSeconds
			}
		}
	}
	return out
}

// measure runs fn and records its wall time and each group's CPU seconds.
func (m *meter) measure(s *harness.Stack, phase string, fn func()) phaseCPU {
	groups := m.pids(s)
	before := cpuOf(groups)
	began := time.Now()
	fn()
	res := phaseCPU{Phase: phase, Wall: time.Since(began), CPU: map[string]float64{}, Load: loadAverage()}
	for g, v := range cpuOf(groups) {
		res.CPU[g] = v - before[g]
	}
	return res
}

func loadAverage() float64 {
	raw, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(raw))
	if len(f) == 0 {
		return 0
	}
	v, _ := strconv.ParseFloat(f[0], 64)
	return v
}

// listenerPid is the process listening on endpoint's TCP port on this host:
// the socket's inode from /proc/net/tcp{,6}, then the process holding it.
func listenerPid(endpoint string) (int, error) {
	u, err := url.Parse(endpoint)
	if err != nil {
		return 0, fmt.Errorf("endpoint %q: %w", endpoint, err)
	}
	port, err := strconv.Atoi(u.Port())
	if err != nil {
		return 0, fmt.Errorf("endpoint %q: no port", endpoint)
	}
	inodes := map[string]bool{}
	for _, table := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		f, err := os.Open(table)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			// sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
			fields := strings.Fields(sc.Text())
			if len(fields) < 10 || fields[3] != "0A" { // 0A: LISTEN
				continue
			}
			_, hexPort, ok := strings.Cut(fields[1], ":")
			if p, err := strconv.ParseUint(hexPort, 16, 16); ok && err == nil && int(p) == port {
				inodes["socket:["+fields[9]+"]"] = true
			}
		}
		f.Close()
	}
	if len(inodes) == 0 {
		return 0, fmt.Errorf("nothing on this host listens on port %d", port)
	}
	fds, _ := filepath.Glob("/proc/[0-9]*/fd/*")
	for _, fd := range fds {
		if link, err := os.Readlink(fd); err == nil && inodes[link] {
			pid, err := strconv.Atoi(strings.Split(fd, "/")[2])
			if err == nil {
				return pid, nil
			}
		}
	}
	return 0, fmt.Errorf("no process of ours holds the socket listening on port %d", port)
}
