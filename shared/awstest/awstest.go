// Package awstest runs the local AWS emulators (dynalite for DynamoDB,
// ElasticMQ or LocalStack's SQS for SQS) as child processes on free ports,
// for tests.
//
// The emulators must have been installed by localstack/install.sh. Typical use:
//
//	var emu *awstest.Emulators
//
//	func TestMain(m *testing.M) { awstest.Main(m, &emu) }
//
//	func TestX(t *testing.T) {
//		c, err := emu.Clients(t.Context())
//		...
//		queue := awstest.UniqueName("x")
//	}
//
// When WAHOOK_TEST_DYNAMODB_ENDPOINT and WAHOOK_TEST_SQS_ENDPOINT are set,
// the emulators (or real services) at those endpoints are used instead and
// nothing is started.
package awstest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/wahook/wahook/shared/awsclient"
)

// Environment variables read by this package.
const (
	// EnvDynamoDBEndpoint and EnvSQSEndpoint: use these endpoints, start nothing.
	EnvDynamoDBEndpoint = "WAHOOK_TEST_DYNAMODB_ENDPOINT"
	EnvSQSEndpoint      = "WAHOOK_TEST_SQS_ENDPOINT"
	// EnvLocalstackDir points at the repository's localstack/ directory
	// (default: found by walking up from the working directory to go.work).
	EnvLocalstackDir = "WAHOOK_LOCALSTACK_DIR"
	// EnvToolsDir points at the installed emulators (default localstack/.tools),
	// the same variable localstack/install.sh honours.
	EnvToolsDir = "WAHOOK_TOOLS_DIR"
	// EnvStartTimeout bounds the start of the emulators (Go duration, default 90s).
	EnvStartTimeout = "WAHOOK_EMULATOR_START_TIMEOUT"
	// EnvKeepLogs, when set to 1, keeps the emulators' temp dir (logs) after Stop.
	EnvKeepLogs = "WAHOOK_KEEP_EMULATOR_LOGS"
	// EnvSQSImpl chooses the SQS emulator Start runs: SQSElasticMQ (default)
	// or SQSLocalStack.
	EnvSQSImpl = "WAHOOK_TEST_SQS"
)

// The SQS emulators.
const (
	SQSElasticMQ  = "elasticmq"  // ElasticMQ 1.7 (JVM)
	SQSLocalStack = "localstack" // LocalStack's SQS on the host (Python, no Docker)
)

// Test credentials and region the emulators are used with.
const (
	Region          = "us-east-1"
	AccessKeyID     = "test"
	SecretAccessKey = "test"
	AccountID       = "000000000000"
)

// Service names one emulator.
type Service string

// The emulated services.
const (
	DynamoDB Service = "dynamodb"
	SQS      Service = "sqs"
)

// Emulators is a running pair of emulators (or endpoints taken from the
// environment). Its methods are safe for concurrent use.
type Emulators struct {
	DynamoDBEndpoint string // e.g. http://127.0.0.1:41234
	SQSEndpoint      string // e.g. http://127.0.0.1:41235
	// SQSImpl is the SQS emulator started: SQSElasticMQ or SQSLocalStack
	// ("" for endpoints from the env).
	SQSImpl string

	// LogDir holds dynamodb.log and sqs.log ("" for endpoints from the env).
	LogDir string

	// StartupDynamoDB and StartupSQS: how long each took from exec to the
	// first successful API call (zero for endpoints from the env).
	StartupDynamoDB time.Duration
	StartupSQS      time.Duration

	owned    bool
	procs    map[Service]*proc
	stopOnce sync.Once
	stopErr  error
}

type proc struct {
	svc     Service
	cmd     *exec.Cmd
	logPath string
	logFile *os.File
	done    chan struct{} // closed when the process has exited
	waitErr error
}

// FromEnv returns emulators at the endpoints named by
// WAHOOK_TEST_DYNAMODB_ENDPOINT and WAHOOK_TEST_SQS_ENDPOINT, when both are set.
// Stop is then a no-op.
func FromEnv() (*Emulators, bool) {
	d, s := os.Getenv(EnvDynamoDBEndpoint), os.Getenv(EnvSQSEndpoint)
	if d == "" || s == "" {
		return nil, false
	}
	return &Emulators{DynamoDBEndpoint: d, SQSEndpoint: s}, true
}

// Start starts dynalite and the SQS emulator WAHOOK_TEST_SQS names
// (ElasticMQ by default); see StartSQS.
func Start(ctx context.Context) (*Emulators, error) {
	return StartSQS(ctx, os.Getenv(EnvSQSImpl))
}

// StartSQS starts dynalite and the SQS emulator impl (SQSElasticMQ when
// empty, or SQSLocalStack) on free ports of 127.0.0.1 and waits until both
// answer an API call (ListTables, ListQueues). The processes run in their own
// process groups, die with the test binary (Pdeathsig on Linux), and log into
// a temp dir (LogDir), which also holds LocalStack's state. On failure the
// error carries the log tail.
func StartSQS(ctx context.Context, impl string) (*Emulators, error) {
	impl = cmpOr(impl, SQSElasticMQ)
	if impl != SQSElasticMQ && impl != SQSLocalStack {
		return nil, fmt.Errorf("awstest: SQS emulator %q: want %s or %s", impl, SQSElasticMQ, SQSLocalStack)
	}
	lsDir, err := LocalstackDir()
	if err != nil {
		return nil, err
	}
	tools := cmpOr(os.Getenv(EnvToolsDir), filepath.Join(lsDir, ".tools"))
	dynCLI := filepath.Join(tools, "dynalite", "node_modules", "dynalite", "cli.js")
	// dynalite dies when a client aborts a request mid-body; the guard keeps it up.
	dynGuard := filepath.Join(lsDir, "dynalite", "abort-guard.js")
	if _, err := os.Stat(dynGuard); err != nil {
		return nil, fmt.Errorf("awstest: %w", err)
	}
	if _, err := os.Stat(dynCLI); err != nil {
		return nil, fmt.Errorf("awstest: dynalite not installed in %s: run %s", tools, filepath.Join(lsDir, "install.sh"))
	}
	node, err := exec.LookPath("node")
	if err != nil {
		return nil, fmt.Errorf("awstest: dynalite needs node on PATH: %w", err)
	}
	var sqsSpec func(dir string, port int) (*exec.Cmd, error)
	switch impl {
	case SQSElasticMQ:
		sqsSpec, err = elasticMQSpec(lsDir, tools)
	case SQSLocalStack:
		sqsSpec, err = localStackSpec(lsDir, tools)
	}
	if err != nil {
		return nil, err
	}

	timeout := 90 * time.Second
	if v := os.Getenv(EnvStartTimeout); v != "" {
		if d, err := time.ParseDuration(v); err == nil && d > 0 {
			timeout = d
		}
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	dir, err := os.MkdirTemp("", "wahook-emulators-")
	if err != nil {
		return nil, fmt.Errorf("awstest: %w", err)
	}
	e := &Emulators{LogDir: dir, SQSImpl: impl, owned: true, procs: map[Service]*proc{}}
	var mu sync.Mutex

	specs := map[Service]func(port int) (*exec.Cmd, error){
		DynamoDB: func(port int) (*exec.Cmd, error) {
			return exec.Command(node, "--max-old-space-size=256", "--require", dynGuard, dynCLI,
				"--host", "127.0.0.1", "--port", strconv.Itoa(port),
				"--createTableMs", "0", "--deleteTableMs", "0", "--updateTableMs", "0"), nil
		},
		SQS: func(port int) (*exec.Cmd, error) { return sqsSpec(dir, port) },
	}

	var wg sync.WaitGroup
	errs := make([]error, 0, 2)
	for svc, spec := range specs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p, endpoint, took, err := startOne(ctx, svc, dir, spec)
			mu.Lock()
			defer mu.Unlock()
			if p != nil {
				e.procs[svc] = p
			}
			if err != nil {
				errs = append(errs, err)
				return
			}
			switch svc {
			case DynamoDB:
				e.DynamoDBEndpoint, e.StartupDynamoDB = endpoint, took
			case SQS:
				e.SQSEndpoint, e.StartupSQS = endpoint, took
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		_ = e.Stop()
		return nil, err
	}
	return e, nil
}

// startOne starts one emulator on a free port and waits for it to answer,
// retrying with another port when the chosen one was taken meanwhile.
func startOne(ctx context.Context, svc Service, dir string, spec func(int) (*exec.Cmd, error)) (*proc, string, time.Duration, error) {
	var lastErr error
	for try := 0; try < 3; try++ {
		port, err := freePort()
		if err != nil {
			return nil, "", 0, fmt.Errorf("awstest: %s: free port: %w", svc, err)
		}
		cmd, err := spec(port)
		if err != nil {
			return nil, "", 0, fmt.Errorf("awstest: %s: %w", svc, err)
		}
		p, err := launch(svc, cmd, filepath.Join(dir, string(svc)+".log"))
		if err != nil {
			return nil, "", 0, err
		}
		endpoint := "http://127.0.0.1:" + strconv.Itoa(port)
		began := time.Now()
		err = waitReady(ctx, svc, endpoint, p)
		if err == nil {
			// Another process may have taken the port before the emulator
			// bound it, and answered the probe in its place.
			var owned bool
			if owned, err = ListenerOwnedBy(p.cmd.Process.Pid, port); err == nil && owned {
				return p, endpoint, time.Since(began), nil
			}
			if err == nil {
				err = errPortTaken
			}
		}
		tail := p.tail(4096)
		p.kill()
		lastErr = fmt.Errorf("awstest: %s emulator did not start on %s: %w\n--- %s (tail) ---\n%s",
			svc, endpoint, err, p.logPath, tail)
		if ctx.Err() != nil || !(errors.Is(err, errPortTaken) || portInUse(tail)) {
			return nil, "", 0, lastErr
		}
	}
	return nil, "", 0, lastErr
}

// elasticMQSpec starts ElasticMQ with the repository's config template.
func elasticMQSpec(lsDir, tools string) (func(dir string, port int) (*exec.Cmd, error), error) {
	emqLib := filepath.Join(tools, "elasticmq", "lib")
	if jars, _ := filepath.Glob(filepath.Join(emqLib, "elasticmq-server_*.jar")); len(jars) == 0 {
		return nil, fmt.Errorf("awstest: ElasticMQ not installed in %s: run %s", tools, filepath.Join(lsDir, "install.sh"))
	}
	tmpl, err := os.ReadFile(filepath.Join(lsDir, "elasticmq", "elasticmq.conf.template"))
	if err != nil {
		return nil, fmt.Errorf("awstest: read ElasticMQ config template: %w", err)
	}
	java, err := javaPath()
	if err != nil {
		return nil, err
	}
	return func(dir string, port int) (*exec.Cmd, error) {
		conf := strings.NewReplacer("@HOST@", "127.0.0.1", "@PORT@", strconv.Itoa(port)).Replace(string(tmpl))
		confPath := filepath.Join(dir, "elasticmq.conf")
		if err := os.WriteFile(confPath, []byte(conf), 0o600); err != nil {
			return nil, err
		}
		return exec.Command(java, append(JavaOptions(),
			"-Dconfig.file="+confPath,
			"-cp", filepath.Join(emqLib, "*"),
			"org.elasticmq.server.Main")...), nil
	}, nil
}

// LocalStackPython returns the python of the LocalStack venv install.sh made
// (tools/localstack-<version>, the version pinned in
// localstack-sqs/requirements.txt).
func LocalStackPython(lsDir, tools string) (string, error) {
	req, err := os.ReadFile(filepath.Join(lsDir, "localstack-sqs", "requirements.txt"))
	if err != nil {
		return "", fmt.Errorf("awstest: LocalStack pin: %w", err)
	}
	var version string
	for line := range strings.Lines(string(req)) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "localstack-core=="); ok {
			version = v
		}
	}
	if version == "" {
		return "", errors.New("awstest: no localstack-core== pin in localstack-sqs/requirements.txt")
	}
	venv := filepath.Join(tools, "localstack-"+version)
	if _, err := os.Stat(filepath.Join(venv, ".installed")); err != nil {
		return "", fmt.Errorf("awstest: LocalStack %s not installed in %s: run %s localstack",
			version, venv, filepath.Join(lsDir, "install.sh"))
	}
	return filepath.Join(venv, "bin", "python"), nil
}

// LocalStackEnv is the environment LocalStack's SQS runs with on the host:
// SQS only, on addr, queue URLs naming addr (http://addr/<account>/<queue>,
// like ElasticMQ's), no DNS server, no analytics or certificate download,
// state and temp files under stateDir.
func LocalStackEnv(addr, stateDir string) []string {
	return []string{
		"SERVICES=sqs",
		"EAGER_SERVICE_LOADING=1",
		"GATEWAY_LISTEN=" + addr,
		"LOCALSTACK_HOST=" + addr,
		"SQS_ENDPOINT_STRATEGY=off",
		"SQS_DISABLE_CLOUDWATCH_METRICS=1",
		"DNS_ADDRESS=0",
		"DISABLE_EVENTS=1",
		"SKIP_SSL_CERT_DOWNLOAD=1",
		"FILESYSTEM_ROOT=" + filepath.Join(stateDir, "fs"),
		"TMPDIR=" + filepath.Join(stateDir, "tmp"),
	}
}

// localStackSpec starts LocalStack's SQS (python -m localstack.runtime.main).
func localStackSpec(lsDir, tools string) (func(dir string, port int) (*exec.Cmd, error), error) {
	python, err := LocalStackPython(lsDir, tools)
	if err != nil {
		return nil, err
	}
	return func(dir string, port int) (*exec.Cmd, error) {
		state := filepath.Join(dir, "localstack")
		for _, d := range []string{"fs", "tmp"} {
			if err := os.MkdirAll(filepath.Join(state, d), 0o700); err != nil {
				return nil, err
			}
		}
		cmd := exec.Command(python, "-m", "localstack.runtime.main")
		cmd.Env = append(childEnv(), LocalStackEnv("127.0.0.1:"+strconv.Itoa(port), state)...)
		return cmd, nil
	}, nil
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// errPortTaken: the port chosen for an emulator answered, but from another process.
var errPortTaken = errors.New("port taken by another process before the emulator bound it")

func portInUse(log string) bool {
	return strings.Contains(log, "EADDRINUSE") || strings.Contains(log, "BindException") ||
		strings.Contains(log, "Address already in use")
}

func launch(svc Service, cmd *exec.Cmd, logPath string) (*proc, error) {
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("awstest: %s log: %w", svc, err)
	}
	fmt.Fprintf(f, "=== %s: %s\n", time.Now().Format(time.RFC3339Nano), strings.Join(cmd.Args, " "))
	cmd.Stdout, cmd.Stderr = f, f
	cmd.Stdin = nil
	cmd.SysProcAttr = sysProcAttr()
	if cmd.Env == nil {
		cmd.Env = childEnv()
	}
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("awstest: start %s emulator: %w", svc, err)
	}
	p := &proc{svc: svc, cmd: cmd, logPath: logPath, logFile: f, done: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// childEnv is the environment of the emulators: the test's, minus anything
// that would make the JVM or node noisy or reach out.
func childEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "JAVA_TOOL_OPTIONS=") || strings.HasPrefix(kv, "_JAVA_OPTIONS=") ||
			strings.HasPrefix(kv, "NODE_OPTIONS=") {
			continue
		}
		env = append(env, kv)
	}
	return env
}

// JavaOptions are the JVM flags ElasticMQ runs with: small heap, serial GC and
// C1 only, for a fast start on small (2-core) machines.
func JavaOptions() []string {
	return []string{
		"-Xms32m", "-Xmx256m", "-Xss512k",
		"-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-Xshare:auto",
		"-Djava.net.preferIPv4Stack=true",
	}
}

func javaPath() (string, error) {
	if jh := os.Getenv("JAVA_HOME"); jh != "" {
		p := filepath.Join(jh, "bin", "java")
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	p, err := exec.LookPath("java")
	if err != nil {
		return "", fmt.Errorf("awstest: ElasticMQ needs java (JDK >= 17) on PATH: %w", err)
	}
	return p, nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// waitReady polls a real API call until it succeeds, the process exits or ctx ends.
func waitReady(ctx context.Context, svc Service, endpoint string, p *proc) error {
	o := awsclient.Options{
		Region:            Region,
		StaticCredentials: &aws.Credentials{AccessKeyID: AccessKeyID, SecretAccessKey: SecretAccessKey},
		MaxAttempts:       1,
		DialTimeout:       time.Second,
	}
	switch svc {
	case DynamoDB:
		o.DynamoDBEndpoint = endpoint
	case SQS:
		o.SQSEndpoint = endpoint
	}
	c, err := awsclient.New(ctx, o)
	if err != nil {
		return err
	}
	var last error
	for {
		callCtx, cancel := context.WithTimeout(ctx, 3*time.Second)
		switch svc {
		case DynamoDB:
			_, last = c.DynamoDB.ListTables(callCtx, &dynamodb.ListTablesInput{})
		case SQS:
			_, last = c.SQS.ListQueues(callCtx, &sqs.ListQueuesInput{})
		}
		cancel()
		if last == nil {
			return nil
		}
		select {
		case <-p.done:
			return fmt.Errorf("process exited (%v)", p.waitErr)
		case <-ctx.Done():
			return fmt.Errorf("not ready before deadline: last error: %v", last)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// tail returns the last n bytes of the process's log.
func (p *proc) tail(n int64) string {
	return tailFile(p.logPath, n)
}

func tailFile(path string, n int64) string {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && st.Size() > n {
		_, _ = f.Seek(st.Size()-n, io.SeekStart)
	}
	b, _ := io.ReadAll(f)
	return string(b)
}

// kill stops the process group: SIGTERM, then SIGKILL after a grace period.
func (p *proc) kill() {
	pid := p.cmd.Process.Pid
	select {
	case <-p.done:
	default:
		_ = signalGroup(pid, syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(3 * time.Second):
			_ = signalGroup(pid, syscall.SIGKILL)
			<-p.done
		}
	}
	// Children the emulator may have forked (none expected) go with the group.
	_ = signalGroup(pid, syscall.SIGKILL)
	p.logFile.Close()
}

// Stop kills the emulators' process groups, waits for them, and removes the
// temp dir (unless WAHOOK_KEEP_EMULATOR_LOGS=1). Idempotent; a no-op for
// endpoints from the environment.
func (e *Emulators) Stop() error {
	if e == nil || !e.owned {
		return nil
	}
	e.stopOnce.Do(func() {
		var wg sync.WaitGroup
		for _, p := range e.procs {
			wg.Add(1)
			go func() { defer wg.Done(); p.kill() }()
		}
		wg.Wait()
		if os.Getenv(EnvKeepLogs) == "1" {
			fmt.Fprintf(os.Stderr, "awstest: emulator logs kept in %s\n", e.LogDir)
			return
		}
		e.stopErr = os.RemoveAll(e.LogDir)
	})
	return e.stopErr
}

// Pause freezes an emulator (SIGSTOP to its process group): its port still
// accepts connections but nothing answers, as with a hung backend. Resume
// undoes it; state is kept. Only for emulators this package started.
func (e *Emulators) Pause(s Service) error { return e.signal(s, syscall.SIGSTOP) }

// Resume continues an emulator frozen by Pause.
func (e *Emulators) Resume(s Service) error { return e.signal(s, syscall.SIGCONT) }

func (e *Emulators) signal(s Service, sig syscall.Signal) error {
	if e == nil || !e.owned {
		return errors.New("awstest: emulators not started by this process")
	}
	p := e.procs[s]
	if p == nil {
		return fmt.Errorf("awstest: no %s emulator", s)
	}
	return signalGroup(p.cmd.Process.Pid, sig)
}

// Options returns awsclient options for the emulators: static test
// credentials, region us-east-1, both endpoints.
func (e *Emulators) Options() awsclient.Options {
	return awsclient.Options{
		Region:            Region,
		DynamoDBEndpoint:  e.DynamoDBEndpoint,
		SQSEndpoint:       e.SQSEndpoint,
		StaticCredentials: &aws.Credentials{AccessKeyID: AccessKeyID, SecretAccessKey: SecretAccessKey},
	}
}

// Clients returns SDK clients for the emulators (see Options).
func (e *Emulators) Clients(ctx context.Context) (*awsclient.Clients, error) {
	return awsclient.New(ctx, e.Options())
}

// Env returns the environment variables that point a wahook process (or any
// AWS SDK) at the emulators, as KEY=VALUE, for exec.Cmd.Env.
func (e *Emulators) Env() []string {
	return []string{
		"AWS_REGION=" + Region,
		"AWS_ENDPOINT_URL_DYNAMODB=" + e.DynamoDBEndpoint,
		"AWS_ENDPOINT_URL_SQS=" + e.SQSEndpoint,
		"AWS_ACCESS_KEY_ID=" + AccessKeyID,
		"AWS_SECRET_ACCESS_KEY=" + SecretAccessKey,
		"AWS_EC2_METADATA_DISABLED=true",
	}
}

// Logs returns the last maxBytes of each emulator's log, for failure reports.
func (e *Emulators) Logs(maxBytes int64) string {
	if e == nil || !e.owned {
		return ""
	}
	var b strings.Builder
	for _, s := range []Service{DynamoDB, SQS} {
		if p := e.procs[s]; p != nil {
			fmt.Fprintf(&b, "--- %s emulator log (%s, tail) ---\n%s\n", s, p.logPath, p.tail(maxBytes))
		}
	}
	return b.String()
}

// Main is a TestMain helper: it takes the emulators from the environment
// (FromEnv) or starts them, stores them in *e, runs the tests, prints the
// emulators' logs when tests failed, stops the emulators and exits.
func Main(m *testing.M, e **Emulators) {
	os.Exit(Run(m, e))
}

// Run is Main without the os.Exit: it returns the exit code.
func Run(m *testing.M, e **Emulators) int {
	if !flag.Parsed() {
		flag.Parse()
	}
	emu, ok := FromEnv()
	if !ok {
		var err error
		began := time.Now()
		emu, err = Start(context.Background())
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		if testing.Verbose() {
			fmt.Fprintf(os.Stderr, "awstest: emulators up in %v (dynalite %v at %s, %s %v at %s)\n",
				time.Since(began).Round(time.Millisecond), emu.StartupDynamoDB.Round(time.Millisecond),
				emu.DynamoDBEndpoint, emu.SQSImpl, emu.StartupSQS.Round(time.Millisecond), emu.SQSEndpoint)
		}
	}
	*e = emu

	// Stop the emulators on SIGINT/SIGTERM too (Pdeathsig covers SIGKILL).
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	var stopping atomic.Bool
	go func() {
		if _, ok := <-sigs; ok && stopping.CompareAndSwap(false, true) {
			_ = emu.Stop()
			os.Exit(130)
		}
	}()

	code := m.Run()
	signal.Stop(sigs)
	close(sigs)
	if !stopping.CompareAndSwap(false, true) {
		select {} // a signal handler is stopping and exiting
	}
	if code != 0 {
		if logs := emu.Logs(8192); logs != "" {
			fmt.Fprint(os.Stderr, logs)
		}
	}
	if err := emu.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, "awstest: stop emulators:", err)
	}
	return code
}

var nameSeq atomic.Uint64

// UniqueName returns a name for a per-test table or queue: prefix, a random
// part and a sequence number, valid for both (letters, digits, '-', at most
// 64 characters). Append ".fifo" for a FIFO queue.
func UniqueName(prefix string) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	clean := strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_':
			return r
		}
		return '-'
	}, prefix)
	if len(clean) > 40 {
		clean = clean[:40]
	}
	if clean == "" {
		clean = "t"
	}
	return fmt.Sprintf("%s-%s-%d", clean, hex.EncodeToString(b[:]), nameSeq.Add(1))
}

// LocalstackDir returns the repository's localstack/ directory:
// WAHOOK_LOCALSTACK_DIR, else found by walking up from the working directory
// to the directory holding go.work.
func LocalstackDir() (string, error) {
	if d := os.Getenv(EnvLocalstackDir); d != "" {
		return filepath.Abs(d)
	}
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for d := wd; ; {
		if _, err := os.Stat(filepath.Join(d, "go.work")); err == nil {
			return filepath.Join(d, "localstack"), nil
		}
		parent := filepath.Dir(d)
		if parent == d {
			return "", fmt.Errorf("awstest: no go.work above %s; set %s", wd, EnvLocalstackDir)
		}
		d = parent
	}
}

// PIDs returns the process ids of the emulators this package started.
func (e *Emulators) PIDs() map[Service]int {
	m := map[Service]int{}
	if e == nil {
		return m
	}
	for s, p := range e.procs {
		m[s] = p.cmd.Process.Pid
	}
	return m
}
