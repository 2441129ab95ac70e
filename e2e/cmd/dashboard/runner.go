package main

import (
	"time"

	"github.com/wahook/wahook/e2e/harness"
)

// runner is the harness's TB for this command.
type runner = harness.Command

func newRunner(timeout time.Duration) *runner { return harness.NewCommand("dashboard", timeout) }
