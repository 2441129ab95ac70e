package harness

import (
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	dbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"go.uber.org/zap"

	"github.com/wahook/wahook/shared/awstest"
	"github.com/wahook/wahook/shared/resources"
)

// EnvLogLevel sets the processes' WAHOOK_LOG_LEVEL (default info).
const EnvLogLevel = "WAHOOK_E2E_LOG_LEVEL"

// StackOptions shape a stack's resources and every process in it.
type StackOptions struct {
	// Visibility is the queue's visibility timeout and the workers' lease
	// (default 10s; whole seconds).
	Visibility time.Duration
	// MaxReceiveCount is the redrive limit (default 10).
	MaxReceiveCount int
	// MaxAttempts is the workers' WAHOOK_MAX_ATTEMPTS (default 5; the worker
	// wants MaxReceiveCount >= MaxAttempts + 2).
	MaxAttempts int
	// Env is added to every process's environment (wins over the defaults).
	Env map[string]string
	// FIFO makes the queue and its DLQ FIFO queues (.fifo names).
	FIFO bool
	// Sequence gives the workers' audit handler a sequence table: per
	// conversation, the order its handler runs completed (see Sequences).
	Sequence bool
}

// Stack is one test's world: its own tables and queues on the suite's backend,
// and the ingest and worker processes the test starts against them. Everything
// is removed when the test ends; logs are printed when it failed.
type Stack struct {
	Suite *Suite
	Name  string

	LedgerTable   string
	MessagesTable string
	AuditTable    string
	QueueName     string
	DLQName       string
	QueueURL      string
	DLQURL        string
	// SequenceTable is the audit handler's sequence table ("" unless
	// StackOptions.Sequence).
	SequenceTable string

	AppSecret   string
	VerifyToken string
	Visibility  time.Duration
	Bins        Binaries

	t        TB
	opts     StackOptions
	logDir   string
	mu       sync.Mutex
	procs    []*Process
	injected []*Injection
	counter  map[Role]int
	client   *Client
}

// NewStack creates the stack's tables and queues (through shared/resources,
// the same definition auto-provision uses) and registers their removal.
func NewStack(t TB, opts StackOptions) *Stack {
	t.Helper()
	suite := Setup(t)
	bins, err := suite.Binaries(t.Context())
	if err != nil {
		t.Fatalf("e2e: %v", err)
	}
	if opts.Visibility <= 0 {
		opts.Visibility = 10 * time.Second
	}
	if opts.MaxReceiveCount <= 0 {
		opts.MaxReceiveCount = 10
	}
	if opts.MaxAttempts <= 0 {
		opts.MaxAttempts = 5
	}
	name := awstest.UniqueName("e2e-" + shortName(t.Name()))
	s := &Stack{
		Suite: suite, Name: name,
		LedgerTable: name + "-ledger", MessagesTable: name + "-messages", AuditTable: name + "-audit",
		QueueName: name + "-events", DLQName: name + "-events-dlq",
		AppSecret: "e2e-app-secret-" + name, VerifyToken: "e2e-verify-" + name,
		Visibility: opts.Visibility, Bins: bins,
		t: t, opts: opts, counter: map[Role]int{},
	}
	if opts.FIFO {
		s.QueueName += ".fifo"
		s.DLQName += ".fifo"
	}
	if opts.Sequence {
		s.SequenceTable = name + "-seq"
	}
	dir, err := os.MkdirTemp("", "wahook-e2e-"+shortName(t.Name())+"-")
	if err != nil {
		t.Fatalf("log dir: %v", err)
	}
	s.logDir = dir
	t.Cleanup(s.cleanup)

	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	prov, err := resources.Ensure(ctx, suite.Clients.DynamoDB, suite.Clients.SQS, resources.Spec{
		LedgerTable:       s.LedgerTable,
		MessagesTable:     s.MessagesTable,
		QueueName:         s.QueueName,
		DLQName:           s.DLQName,
		VisibilityTimeout: opts.Visibility,
		MaxReceiveCount:   opts.MaxReceiveCount,
	}, zap.NewNop())
	if err != nil {
		t.Fatalf("provision %s: %v", name, err)
	}
	s.QueueURL, s.DLQURL = prov.QueueURL, prov.DLQURL
	if err := createKeyTable(ctx, suite.Clients.DynamoDB, s.AuditTable, AuditKey); err != nil {
		t.Fatalf("provision %s: %v", name, err)
	}
	if s.SequenceTable != "" {
		if err := createKeyTable(ctx, suite.Clients.DynamoDB, s.SequenceTable, AuditKey); err != nil {
			t.Fatalf("provision %s: %v", name, err)
		}
	}
	return s
}

// shortName keeps the last part of a test name, for resource names.
func shortName(name string) string {
	if i := strings.LastIndexByte(name, '/'); i >= 0 {
		name = name[i+1:]
	}
	name = strings.TrimPrefix(name, "Test")
	if len(name) > 24 {
		name = name[:24]
	}
	return strings.ToLower(name)
}

func createKeyTable(ctx context.Context, db *dynamodb.Client, table, key string) error {
	_, err := db.CreateTable(ctx, &dynamodb.CreateTableInput{
		TableName:            aws.String(table),
		BillingMode:          dbtypes.BillingModePayPerRequest,
		AttributeDefinitions: []dbtypes.AttributeDefinition{{AttributeName: aws.String(key), AttributeType: dbtypes.ScalarAttributeTypeS}},
		KeySchema:            []dbtypes.KeySchemaElement{{AttributeName: aws.String(key), KeyType: dbtypes.KeyTypeHash}},
	})
	if err != nil {
		return fmt.Errorf("create table %s: %w", table, err)
	}
	w := dynamodb.NewTableExistsWaiter(db, func(o *dynamodb.TableExistsWaiterOptions) {
		o.MinDelay, o.MaxDelay = 100*time.Millisecond, time.Second
	})
	if err := w.Wait(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(table)}, time.Minute); err != nil {
		return fmt.Errorf("wait for table %s: %w", table, err)
	}
	return nil
}

// baseEnv is what every process gets: the backend through the process's own
// links, the stack's resources, test-sized timeouts.
func (s *Stack) baseEnv(dynamo, sqsLink *Link) map[string]string {
	b := s.Suite.Backend
	env := map[string]string{
		"PATH":                      os.Getenv("PATH"),
		"HOME":                      os.Getenv("HOME"),
		"TMPDIR":                    os.TempDir(),
		"AWS_REGION":                b.Region,
		"AWS_ACCESS_KEY_ID":         b.AccessKeyID,
		"AWS_SECRET_ACCESS_KEY":     b.SecretAccessKey,
		"AWS_EC2_METADATA_DISABLED": "true",
		"AWS_ENDPOINT_URL_DYNAMODB": dynamo.Endpoint(),
		"AWS_ENDPOINT_URL_SQS":      sqsLink.Endpoint(),
		"WAHOOK_AUTO_PROVISION":     "true",
		"WAHOOK_LEDGER_TABLE":       s.LedgerTable,
		"WAHOOK_MESSAGES_TABLE":     s.MessagesTable,
		"WAHOOK_QUEUE_NAME":         s.QueueName,
		"WAHOOK_DLQ_NAME":           s.DLQName,
		"WAHOOK_VISIBILITY_TIMEOUT": s.opts.Visibility.String(),
		"WAHOOK_MAX_RECEIVE_COUNT":  strconv.Itoa(s.opts.MaxReceiveCount),
		"WAHOOK_LOG_LEVEL":          cmpOr(os.Getenv(EnvLogLevel), "info"),
		"WAHOOK_LOG_FORMAT":         "json",
		"WAHOOK_BACKEND_TIMEOUT":    "3s",
	}
	if s.Bins.Race {
		env["GORACE"] = "halt_on_error=1 exitcode=" + strconv.Itoa(RaceExitCode)
	}
	return env
}

// ingestEnv is ingest's environment beyond baseEnv.
func (s *Stack) ingestEnv(addr string) map[string]string {
	return map[string]string{
		"WAHOOK_HTTP_ADDR":     addr,
		"WAHOOK_APP_SECRET":    s.AppSecret,
		"WAHOOK_VERIFY_TOKEN":  s.VerifyToken,
		"WAHOOK_SEND_TIMEOUT":  "3s",
		"WAHOOK_RESEND_WINDOW": "6s",
		"WAHOOK_INFLIGHT_WAIT": "4s", // beyond the 2s renewal interval
	}
}

// WorkerOptions shape one worker process.
type WorkerOptions struct {
	// Processors per process (default 4).
	Processors int
	// AuditDelay slows the audit handler (to kill or cut mid-handler).
	AuditDelay time.Duration
	// ShutdownTimeout bounds the graceful stop (default: the worker's own, 25s).
	ShutdownTimeout time.Duration
	// Env is added last (wins).
	Env map[string]string
}

func (s *Stack) workerEnv(addr string, o WorkerOptions) map[string]string {
	env := map[string]string{
		"WAHOOK_HEALTH_ADDR":    addr,
		"WAHOOK_PROCESSORS":     strconv.Itoa(cmpOrInt(o.Processors, 4)),
		"WAHOOK_HANDLERS":       "store,audit",
		"WAHOOK_AUDIT_TABLE":    s.AuditTable,
		"WAHOOK_LEASE_DURATION": s.opts.Visibility.String(),
		"WAHOOK_HEARTBEAT":      "true",
		"WAHOOK_MAX_ATTEMPTS":   strconv.Itoa(s.opts.MaxAttempts),
	}
	if o.AuditDelay > 0 {
		env["WAHOOK_AUDIT_DELAY"] = o.AuditDelay.String()
	}
	if s.SequenceTable != "" {
		env["WAHOOK_AUDIT_SEQUENCE_TABLE"] = s.SequenceTable
	}
	if o.ShutdownTimeout > 0 {
		env["WAHOOK_SHUTDOWN_TIMEOUT"] = o.ShutdownTimeout.String()
	}
	return env
}

func cmpOrInt(a, b int) int {
	if a != 0 {
		return a
	}
	return b
}

// StartIngest starts an ingest process and waits until it answers /health.
func (s *Stack) StartIngest(env map[string]string) *Process {
	s.t.Helper()
	return s.start(RoleIngest, s.Bins.Ingest, func(addr string) map[string]string {
		e := s.ingestEnv(addr)
		maps.Copy(e, env)
		return e
	})
}

// StartWorker starts a worker process and waits until its health server answers.
func (s *Stack) StartWorker(o WorkerOptions) *Process {
	s.t.Helper()
	return s.start(RoleWorker, s.Bins.Worker, func(addr string) map[string]string {
		e := s.workerEnv(addr, o)
		maps.Copy(e, o.Env)
		return e
	})
}

func (s *Stack) start(role Role, bin string, roleEnv func(addr string) map[string]string) *Process {
	s.t.Helper()
	s.mu.Lock()
	s.counter[role]++
	name := fmt.Sprintf("%s-%d", role, s.counter[role])
	s.mu.Unlock()

	// process ─▶ link (TCP faults) ─▶ injector (API faults) ─▶ backend: a
	// scenario breaks the connection as the process sees it, or the API's
	// answers, or both.
	dynAPI, err := NewInjector(DynamoDB, s.Suite.Backend.DynamoDBEndpoint)
	if err != nil {
		s.t.Fatalf("start %s: %v", name, err)
	}
	sqsAPI, err := NewInjector(SQS, s.Suite.Backend.SQSEndpoint)
	if err != nil {
		_ = dynAPI.Close()
		s.t.Fatalf("start %s: %v", name, err)
	}
	closeAPIs := func() { _ = dynAPI.Close(); _ = sqsAPI.Close() }
	s.mu.Lock()
	for _, inj := range s.injected {
		api := dynAPI
		if inj.api == SQS {
			api = sqsAPI
		}
		if inj.role == "" || inj.role == role {
			inj.add(api)
		}
	}
	s.mu.Unlock()
	faults := s.Suite.Faults
	dynamo, err := faults.Link(s.Name+"/"+name+"/dynamodb", dynAPI.URL())
	if err != nil {
		closeAPIs()
		s.t.Fatalf("start %s: %v", name, err)
	}
	sqsLink, err := faults.Link(s.Name+"/"+name+"/sqs", sqsAPI.URL())
	if err != nil {
		dynamo.Close()
		closeAPIs()
		s.t.Fatalf("start %s: %v", name, err)
	}
	var p *Process
	for try := 0; ; try++ {
		addr, err := FreeAddr()
		if err != nil {
			s.t.Fatalf("start %s: %v", name, err)
		}
		env := s.baseEnv(dynamo, sqsLink)
		maps.Copy(env, roleEnv(addr))
		maps.Copy(env, s.opts.Env)
		p, err = startProcess(s.t.Context(), procSpec{
			name: name, role: role, bin: bin, env: envList(env), addr: addr,
			logPath: filepath.Join(s.logDir, name+".log"),
		})
		if err == nil {
			break
		}
		if !addrInUse(err) || try == 2 {
			dynamo.Close()
			sqsLink.Close()
			closeAPIs()
			s.t.Fatalf("%v", err)
		}
	}
	p.DynamoDB, p.SQS = dynamo, sqsLink
	p.DynamoDBAPI, p.SQSAPI = dynAPI, sqsAPI
	s.mu.Lock()
	s.procs = append(s.procs, p)
	s.mu.Unlock()
	return p
}

func envList(env map[string]string) []string {
	out := make([]string, 0, len(env))
	for _, k := range slices.Sorted(maps.Keys(env)) {
		out = append(out, k+"="+env[k])
	}
	return out
}

// Processes returns the running processes of a role ("" for all), in start order.
func (s *Stack) Processes(role Role) []*Process {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*Process
	for _, p := range s.procs {
		if (role == "" || p.Role == role) && p.Running() {
			out = append(out, p)
		}
	}
	return out
}

// IngestURLs are the base URLs of the running ingest processes.
func (s *Stack) IngestURLs() []string {
	var out []string
	for _, p := range s.Processes(RoleIngest) {
		out = append(out, "http://"+p.Addr)
	}
	return out
}

// Client is the stack's webhook client (one per stack, round robin over the
// running ingest processes).
func (s *Stack) Client() *Client {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.client == nil {
		s.client = NewClient(s.AppSecret, s.IngestURLs)
	}
	return s.client
}

// CheckProcesses fails the test for every process that exited without the
// harness stopping it (a crash, a panic, a data race).
func (s *Stack) CheckProcesses() {
	s.t.Helper()
	s.mu.Lock()
	procs := slices.Clone(s.procs)
	s.mu.Unlock()
	for _, p := range procs {
		if !p.Running() && !p.Expected() {
			s.t.Errorf("%s exited on its own: %s\n--- %s log (tail) ---\n%s", p.Name, exitText(p.waitErr), p.Name, p.Tail(8<<10))
		}
	}
}

func (s *Stack) cleanup() {
	s.CheckProcesses()
	s.mu.Lock()
	procs := slices.Clone(s.procs)
	s.mu.Unlock()
	for _, p := range procs {
		if p.Running() {
			p.Kill()
		}
		p.DynamoDB.Close()
		p.SQS.Close()
		_ = p.DynamoDBAPI.Close()
		_ = p.SQSAPI.Close()
	}
	keep := os.Getenv(EnvKeepLogs) == "1"
	if s.t.Failed() {
		for _, p := range procs {
			s.t.Logf("--- %s log (%s, tail) ---\n%s", p.Describe(), p.LogPath, p.Tail(6<<10))
		}
		keep = true
	}
	if keep {
		s.t.Logf("process logs kept in %s", s.logDir)
	} else {
		_ = os.RemoveAll(s.logDir)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := s.Suite.Clients
	for _, table := range []string{s.LedgerTable, s.MessagesTable, s.AuditTable, s.SequenceTable} {
		if table == "" {
			continue
		}
		_, _ = c.DynamoDB.DeleteTable(ctx, &dynamodb.DeleteTableInput{TableName: aws.String(table)})
	}
	for _, url := range []string{s.QueueURL, s.DLQURL} {
		if url != "" {
			_, _ = c.SQS.DeleteQueue(ctx, &sqs.DeleteQueueInput{QueueUrl: aws.String(url)})
		}
	}
}

// Injection is a rule programmed into the API injectors of a stack's
// processes: those running when it was made and those started later.
type Injection struct {
	api    API
	role   Role
	rule   Rule
	mu     sync.Mutex
	active []*Active
}

func (inj *Injection) add(in *Injector) {
	a := in.Add(inj.rule)
	inj.mu.Lock()
	inj.active = append(inj.active, a)
	inj.mu.Unlock()
}

// Hits is how many calls (or batch entries) the rule changed, over every
// process.
func (inj *Injection) Hits() int64 {
	inj.mu.Lock()
	defer inj.mu.Unlock()
	var n int64
	for _, a := range inj.active {
		n += a.Hits()
	}
	return n
}

// Inject programs r into the api injector of every process of role ("" for
// all), running or started later, until the stack ends or ClearInjections.
// A rule's For window runs from when each injector got it.
func (s *Stack) Inject(role Role, api API, r Rule) *Injection {
	inj := &Injection{api: api, role: role, rule: r}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.injected = append(s.injected, inj)
	for _, p := range s.procs {
		if p.Running() && (role == "" || p.Role == role) {
			in := p.DynamoDBAPI
			if api == SQS {
				in = p.SQSAPI
			}
			inj.add(in)
		}
	}
	return inj
}

// Received is how many messages SQS handed out to the stack's processes,
// those stopped included: each delivery of each copy, as the backend counted
// it through the injectors.
func (s *Stack) Received() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	var n int64
	for _, p := range s.procs {
		n += p.SQSAPI.Received()
	}
	return n
}

// HandedOut is how often SQS handed the message with this id out to the
// stack's processes, those stopped included.
func (s *Stack) HandedOut(messageID string) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	var n int64
	for _, p := range s.procs {
		n += p.SQSAPI.HandedOut(messageID)
	}
	return n
}

// Sent is how many messages SQS accepted from the stack's processes of role
// ("" for all), those stopped included, as Injector.Sent counts them.
func (s *Stack) Sent(role Role) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	var n int64
	for _, p := range s.procs {
		if role == "" || p.Role == role {
			n += p.SQSAPI.Sent()
		}
	}
	return n
}

// HandedOutAgain maps each FIFO message group of which SQS handed out a
// message more than once, to any process of the stack, to when that was first
// seen (Injector.HandedOutAgain).
func (s *Stack) HandedOutAgain() map[string]time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	groups := map[string]time.Time{}
	for _, p := range s.procs {
		p.SQSAPI.HandedOutAgain(groups)
	}
	return groups
}

// InjectAll is Inject for every process.
func (s *Stack) InjectAll(api API, r Rule) *Injection { return s.Inject("", api, r) }

// ClearInjections removes every injected rule from every process.
func (s *Stack) ClearInjections() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.injected = nil
	for _, p := range s.procs {
		p.DynamoDBAPI.Clear()
		p.SQSAPI.Clear()
	}
}
