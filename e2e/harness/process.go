package harness

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/wahook/wahook/shared/awstest"
)

// Role is what a process is.
type Role string

// The roles.
const (
	RoleIngest Role = "ingest"
	RoleWorker Role = "worker"
)

// ReadyTimeout bounds a process's start, until its /health answers.
const ReadyTimeout = 30 * time.Second

// Process is one running ingest or worker binary.
type Process struct {
	Name string
	Role Role
	// Addr is the HTTP address: ingest's API, the worker's health server.
	Addr string
	// DynamoDB and SQS are the process's own links to the backend (TCP
	// faults); DynamoDBAPI and SQSAPI, behind them, inject API faults.
	DynamoDB    *Link
	SQS         *Link
	DynamoDBAPI *Injector
	SQSAPI      *Injector
	LogPath     string
	Env         []string
	Started     time.Time

	cmd     *exec.Cmd
	logFile *os.File
	done    chan struct{}
	waitErr error
	// stopping is set before we signal the process: its exit is expected.
	stopping atomic.Bool
}

// URL is the process's HTTP URL for path.
func (p *Process) URL(path string) string { return "http://" + p.Addr + path }

// Pid is the process id.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Done is closed when the process has exited.
func (p *Process) Done() <-chan struct{} { return p.done }

// Running reports whether the process is still alive.
func (p *Process) Running() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// ExitErr is the process's exit status (nil: exit 0). Only valid after Done.
func (p *Process) ExitErr() error {
	<-p.done
	return p.waitErr
}

// Expected reports whether the harness stopped the process on purpose.
func (p *Process) Expected() bool { return p.stopping.Load() }

// Kill is kill -9: the process (and its group) dies at once, mid-whatever.
func (p *Process) Kill() {
	p.stopping.Store(true)
	_ = syscall.Kill(-p.Pid(), syscall.SIGKILL)
	<-p.done
}

// Pause is SIGSTOP: the process freezes mid-whatever (a long GC pause, a
// stalled VM) and so do its heartbeats, until Resume.
func (p *Process) Pause() error {
	if err := syscall.Kill(-p.Pid(), syscall.SIGSTOP); err != nil {
		return fmt.Errorf("SIGSTOP %s: %w", p.Name, err)
	}
	return nil
}

// Resume is SIGCONT after Pause.
func (p *Process) Resume() error {
	if err := syscall.Kill(-p.Pid(), syscall.SIGCONT); err != nil {
		return fmt.Errorf("SIGCONT %s: %w", p.Name, err)
	}
	return nil
}

// Terminate sends SIGTERM and waits up to timeout for the process to exit on
// its own. It returns how long the exit took. When the process outlives
// timeout it is killed and the error says so.
func (p *Process) Terminate(timeout time.Duration) (time.Duration, error) {
	p.stopping.Store(true)
	began := time.Now()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return 0, fmt.Errorf("SIGTERM %s: %w", p.Name, err)
	}
	select {
	case <-p.done:
		return time.Since(began), nil
	case <-time.After(timeout):
		p.Kill()
		return time.Since(began), fmt.Errorf("%s did not exit within %v of SIGTERM; killed", p.Name, timeout)
	}
}

// Tail returns the last maxBytes of the process's log.
func (p *Process) Tail(maxBytes int64) string { return tailFile(p.LogPath, maxBytes) }

// Describe is the process's name, pid and exit status, for messages.
func (p *Process) Describe() string {
	state := "running"
	if !p.Running() {
		state = "exited: " + exitText(p.waitErr)
	}
	return fmt.Sprintf("%s (pid %d, %s, %s)", p.Name, p.Pid(), p.Addr, state)
}

func exitText(err error) string {
	if err == nil {
		return "status 0"
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) && ee.ExitCode() == RaceExitCode {
		return fmt.Sprintf("%v (DATA RACE detected)", err)
	}
	return err.Error()
}

type procSpec struct {
	name    string
	role    Role
	bin     string
	env     []string
	logPath string
	addr    string
}

// startProcess starts the binary, with its output in its log file, and waits
// until GET /health answers 200.
func startProcess(ctx context.Context, s procSpec) (*Process, error) {
	f, err := os.OpenFile(s.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("start %s: log: %w", s.name, err)
	}
	fmt.Fprintf(f, "=== %s: start %s (%s)\n", time.Now().Format(time.RFC3339Nano), s.name, s.bin)
	cmd := exec.Command(s.bin)
	cmd.Env = s.env
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("start %s: %w", s.name, err)
	}
	p := &Process{
		Name: s.name, Role: s.role, Addr: s.addr, LogPath: s.logPath, Env: s.env,
		Started: time.Now(), cmd: cmd, logFile: f, done: make(chan struct{}),
	}
	go func() {
		p.waitErr = cmd.Wait()
		fmt.Fprintf(f, "=== %s: %s exited: %s\n", time.Now().Format(time.RFC3339Nano), s.name, exitText(p.waitErr))
		f.Close()
		close(p.done)
	}()
	if err := p.waitReady(ctx); err != nil {
		p.Kill()
		return nil, fmt.Errorf("start %s: %w\n--- %s log (tail) ---\n%s", s.name, err, s.name, p.Tail(8<<10))
	}
	return p, nil
}

func (p *Process) waitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, ReadyTimeout)
	defer cancel()
	hc := &http.Client{Timeout: time.Second}
	var last error
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.URL("/health"), nil)
		if err != nil {
			return err
		}
		resp, err := hc.Do(req)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p.ownsAddr()
			}
			err = fmt.Errorf("GET /health: %s", resp.Status)
		}
		last = err
		select {
		case <-p.done:
			return fmt.Errorf("exited before ready: %s", exitText(p.waitErr))
		case <-ctx.Done():
			return fmt.Errorf("not ready within %v: %v", ReadyTimeout, last)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// errPortTaken: the process's port answered, but from another process that
// took the port between FreeAddr and the child's bind.
var errPortTaken = errors.New("port taken by another process before the child bound it")

// ownsAddr checks that the listener on p.Addr is the child's (or its
// children's), not another process's that took the port meanwhile.
func (p *Process) ownsAddr() error {
	_, portText, err := net.SplitHostPort(p.Addr)
	if err != nil {
		return fmt.Errorf("address %q: %w", p.Addr, err)
	}
	port, err := strconv.Atoi(portText)
	if err != nil {
		return fmt.Errorf("address %q: %w", p.Addr, err)
	}
	owned, err := awstest.ListenerOwnedBy(p.Pid(), port)
	if err != nil {
		return err
	}
	if !owned {
		return fmt.Errorf("%s: %w", p.Addr, errPortTaken)
	}
	return nil
}

// addrInUse reports whether a failed start looks like a port taken meanwhile:
// by the child's bind failing, or by another process answering in its place.
func addrInUse(err error) bool {
	return errors.Is(err, errPortTaken) ||
		err != nil && strings.Contains(err.Error(), "address already in use")
}

// FreeAddr returns a 127.0.0.1 address with a port free right now.
func FreeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("free port: %w", err)
	}
	defer l.Close()
	return "127.0.0.1:" + strconv.Itoa(l.Addr().(*net.TCPAddr).Port), nil
}

func tailFile(path string, maxBytes int64) string {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	defer f.Close()
	return tailReader(f, maxBytes)
}

// tailReader returns the last maxBytes of r, starting at a line boundary.
func tailReader(r io.Reader, maxBytes int64) string {
	if s, ok := r.(io.Seeker); ok {
		if end, err := s.Seek(0, io.SeekEnd); err == nil && end > maxBytes {
			_, _ = s.Seek(end-maxBytes, io.SeekStart)
		} else {
			_, _ = s.Seek(0, io.SeekStart)
		}
		b, _ := io.ReadAll(r)
		return trimToLine(b, int64(len(b)) >= maxBytes)
	}
	b, _ := io.ReadAll(r)
	cut := int64(len(b)) > maxBytes
	if cut {
		b = b[int64(len(b))-maxBytes:]
	}
	return trimToLine(b, cut)
}

func trimToLine(b []byte, cut bool) string {
	s := string(b)
	if cut {
		if i := strings.IndexByte(s, '\n'); i >= 0 {
			s = "…\n" + s[i+1:]
		}
	}
	return s
}
