package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// clockTicks is USER_HZ, the unit of /proc/<pid>/stat's CPU times: 100 on
// every Linux this runs on (the kernel fixes it for user space).
const clockTicks = 100

// procSample is one reading of a process's CPU time and memory from /proc.
type procSample struct {
	CPUSeconds float64 // user + system
	RSSBytes   int64   // VmRSS
	PeakBytes  int64   // VmHWM: the resident set's high-water mark
}

// readProc reads pid's CPU time (/proc/<pid>/stat) and memory (/proc/<pid>/status).
func readProc(pid int) (procSample, error) {
	var s procSample
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return s, fmt.Errorf("read stat of %d: %w", pid, err)
	}
	// The command name (field 2) may hold spaces: fields count from the last ')'.
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return s, fmt.Errorf("stat of %d: no command name", pid)
	}
	fields := strings.Fields(string(stat[i+1:]))
	// After the name: state is field 3, utime 14, stime 15 (man 5 proc).
	if len(fields) < 13 {
		return s, fmt.Errorf("stat of %d: %d fields", pid, len(fields))
	}
	utime, err1 := strconv.ParseInt(fields[11], 10, 64)
	stime, err2 := strconv.ParseInt(fields[12], 10, 64)
	if err1 != nil || err2 != nil {
		return s, fmt.Errorf("stat of %d: bad utime/stime %q %q", pid, fields[11], fields[12])
	}
	s.CPUSeconds = float64(utime+stime) / clockTicks

	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return s, fmt.Errorf("read status of %d: %w", pid, err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name, val, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		var dst *int64
		switch name {
		case "VmRSS":
			dst = &s.RSSBytes
		case "VmHWM":
			dst = &s.PeakBytes
		default:
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(val), " kB"), 10, 64)
		if err != nil {
			return s, fmt.Errorf("status of %d: %s %q: %w", pid, name, val, err)
		}
		*dst = kb * 1024
	}
	return s, sc.Err()
}
