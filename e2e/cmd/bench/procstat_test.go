package main

import (
	"os"
	"testing"
)

// The bench's own process: it has used some CPU and holds some memory.
func TestReadProcSelf(t *testing.T) {
	s, err := readProc(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if s.RSSBytes <= 0 || s.PeakBytes < s.RSSBytes {
		t.Errorf("rss %d, peak %d: want 0 < rss <= peak", s.RSSBytes, s.PeakBytes)
	}
	if s.CPUSeconds < 0 {
		t.Errorf("cpu %v", s.CPUSeconds)
	}
}
