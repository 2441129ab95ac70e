// Package cli is the wahook operator tool: the ledger's and the queues' state
// (status), one event's history (event), and the dead-letter queue (dlq list,
// show, replay, purge). It reads the same environment as the services
// (WAHOOK_LEDGER_TABLE, WAHOOK_QUEUE_URL/NAME, ... and the AWS SDK's own
// variables) and the dead-letter attribute contract of shared/deadletter.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/wahook/wahook/shared/awsclient"
	"github.com/wahook/wahook/shared/config"
	"github.com/wahook/wahook/shared/ledger"
	"github.com/wahook/wahook/shared/resources"
)

// Exit codes (also in the root command's help).
const (
	ExitOK       = 0 // done
	ExitError    = 1 // a backend or unexpected error
	ExitUsage    = 2 // bad flags or arguments
	ExitNotFound = 3 // the event or dead letter asked for does not exist
	ExitPartial  = 4 // some selected dead letters were not replayed or purged
	ExitAborted  = 5 // a destructive command was not confirmed
)

// ExitError carries a command's exit code.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func exit(code int, format string, args ...any) error {
	return &exitError{code: code, err: fmt.Errorf(format, args...)}
}

// Code is the exit code for err (ExitOK for nil).
func Code(err error) int {
	if err == nil {
		return ExitOK
	}
	var e *exitError
	if errors.As(err, &e) {
		return e.code
	}
	return ExitError
}

// IO is where a command reads and writes.
type IO struct {
	In       io.Reader
	Out, Err io.Writer
	// Interactive says whether In is a terminal a prompt can be answered on.
	Interactive bool
	// ErrTerminal says whether Err is a terminal (progress bars go there).
	ErrTerminal bool
}

// StdIO is the process's standard streams.
func StdIO() IO {
	return IO{In: os.Stdin, Out: os.Stdout, Err: os.Stderr, Interactive: term.IsTerminal(int(os.Stdin.Fd())),
		ErrTerminal: term.IsTerminal(int(os.Stderr.Fd()))}
}

// app is what every command works with, built once per run.
type app struct {
	io       IO
	output   string // table or json
	timeout  time.Duration
	cfg      config.Common
	clients  *awsclient.Clients
	ledger   *ledger.Store
	queueURL string
	dlqURL   string
}

// connect loads the configuration and the clients; the queues' URLs are
// resolved as the services do.
func (a *app) connect(ctx context.Context) error {
	cfg, err := config.Load[config.Common]()
	if err != nil {
		return exit(ExitUsage, "%w", err)
	}
	a.cfg = cfg
	clients, err := awsclient.New(ctx, awsclient.Options{})
	if err != nil {
		return err
	}
	a.clients = clients
	a.ledger, err = ledger.New(clients.DynamoDB, cfg.LedgerTable, ledger.Options{TTL: cfg.ItemTTL})
	if err != nil {
		return err
	}
	if a.queueURL, err = resources.QueueURL(ctx, clients.SQS, cfg); err != nil {
		return err
	}
	if a.dlqURL, err = resources.DeadLetterURL(ctx, clients.SQS, a.queueURL); err != nil {
		return fmt.Errorf("dead-letter queue: %w", err)
	}
	return nil
}

// NewRoot returns the wahook command tree.
func NewRoot(streams IO) *cobra.Command {
	a := &app{io: streams}
	root := &cobra.Command{
		Use:   "wahook",
		Short: "Operate wahook: ledger and queue status, event history, dead letters",
		Long: `wahook inspects and operates a wahook deployment: the DynamoDB ledger, the event
queue and its dead-letter queue. It reads the services' environment
(WAHOOK_LEDGER_TABLE, WAHOOK_MESSAGES_TABLE, WAHOOK_QUEUE_URL or WAHOOK_QUEUE_NAME)
and the AWS SDK's own variables (AWS_REGION, AWS_ENDPOINT_URL_*, credentials chain).

Exit codes: 0 ok, 1 error, 2 bad usage, 3 not found, 4 partly done (some dead
letters skipped or failed), 5 not confirmed.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			if cmd.HasParent() && cmd.Parent().Name() == "completion" {
				return nil // shell completion scripts need no backend
			}
			if a.output != "table" && a.output != "json" {
				return exit(ExitUsage, "-o %q: want table or json", a.output)
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), a.timeout)
			defer cancel()
			return a.connect(ctx)
		},
	}
	root.SetIn(streams.In)
	root.SetOut(streams.Out)
	root.SetErr(streams.Err)
	root.PersistentFlags().StringVarP(&a.output, "output", "o", "table", "output format: table or json")
	root.PersistentFlags().DurationVar(&a.timeout, "timeout", 30*time.Second, "bound on finding the queues at start")
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return exit(ExitUsage, "%w", err) })
	root.AddCommand(a.statusCmd(), a.eventCmd(), a.dlqCmd())
	return root
}

// Execute runs the command tree on args and returns the exit code.
func Execute(ctx context.Context, streams IO, args []string) int {
	root := NewRoot(streams)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err != nil {
		if Code(err) == ExitError && isUsage(err) {
			err = exit(ExitUsage, "%w", err)
		}
		fmt.Fprintln(streams.Err, "wahook:", err)
	}
	return Code(err)
}

// isUsage recognises cobra's own argument errors.
func isUsage(err error) bool {
	msg := err.Error()
	for _, s := range []string{"unknown command", "accepts ", "requires ", "unknown flag", "unknown shorthand flag", "invalid argument", "flag needs an argument"} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}

// confirm asks before a destructive step unless yes; without a terminal to
// ask on, it refuses.
func (a *app) confirm(yes bool, question string) error {
	if yes {
		return nil
	}
	if !a.io.Interactive {
		return exit(ExitAborted, "%s: not confirmed (no terminal to ask on; pass --yes)", question)
	}
	fmt.Fprintf(a.io.Err, "%s [y/N] ", question)
	var answer string
	_, _ = fmt.Fscanln(a.io.In, &answer)
	if a := strings.ToLower(strings.TrimSpace(answer)); a != "y" && a != "yes" {
		return exit(ExitAborted, "%s: not confirmed", question)
	}
	return nil
}
