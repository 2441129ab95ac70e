// Command wahook is the operator's tool for a wahook deployment: ledger and
// queue status, one event's history, and the dead-letter queue (list, show,
// replay, purge). See `wahook --help` and the README's operator session.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/wahook/wahook/worker/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	code := cli.Execute(ctx, cli.StdIO(), os.Args[1:])
	stop()
	os.Exit(code)
}
