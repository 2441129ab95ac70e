package resources_test

// The ECS stack (deploy/ecs/wahook.json) and this package both define wahook's
// tables and queues: the stack in production, Ensure everywhere else. These tests
// keep the two identical. They run Ensure against a recording fake of the
// DynamoDB and SQS APIs, so what is compared is what the code really asks AWS
// for, and compare it with the template's resources property by property.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"go.uber.org/zap"

	"github.com/wahook/wahook/shared/config"
	"github.com/wahook/wahook/shared/ledger"
	"github.com/wahook/wahook/shared/resources"
)

const templatePath = "../../deploy/ecs/wahook.json"

// Logical ids of the template's data resources.
const (
	ledgerID   = "LedgerTable"
	messagesID = "MessagesTable"
)

// Template properties that do not change a resource's shape: the stack may set
// them whether or not the code does. Everything else must be equal.
var (
	tableExtras = map[string]bool{"TableName": true, "PointInTimeRecoverySpecification": true, "DeletionProtectionEnabled": true, "Tags": true}
	queueExtras = map[string]bool{"QueueName": true, "SqsManagedSseEnabled": true, "KmsMasterKeyId": true, "KmsDataKeyReusePeriodSeconds": true, "Tags": true}
)

type cfnTemplate struct {
	Parameters map[string]struct {
		Default any `json:"Default"`
	} `json:"Parameters"`
	Conditions map[string]any `json:"Conditions"`
	Resources  map[string]struct {
		Type       string         `json:"Type"`
		Properties map[string]any `json:"Properties"`
	} `json:"Resources"`
	// values overrides parameter defaults (a stack created with them).
	values map[string]string
}

// with returns the template as a stack created with these parameter values.
func (tpl cfnTemplate) with(values map[string]string) cfnTemplate {
	tpl.values = values
	return tpl
}

// param is a parameter's value: the override, else the default.
func (tpl cfnTemplate) param(name string) (string, bool) {
	if v, ok := tpl.values[name]; ok {
		return v, true
	}
	p, ok := tpl.Parameters[name]
	return scalar(p.Default), ok
}

// noValue is what Ref AWS::NoValue resolves to: the property is left out.
const noValue = "\x00AWS::NoValue"

// condition evaluates a named condition (Fn::Equals, Fn::Not, Fn::And,
// Fn::Or, Condition) under the parameter values.
func (tpl cfnTemplate) condition(name string) bool {
	return tpl.evalCondition(tpl.Conditions[name])
}

func (tpl cfnTemplate) evalCondition(v any) bool {
	m, _ := v.(map[string]any)
	args, _ := func() ([]any, bool) {
		for _, a := range m {
			l, ok := a.([]any)
			return l, ok
		}
		return nil, false
	}()
	switch {
	case m["Fn::Equals"] != nil && len(args) == 2:
		return fmt.Sprint(tpl.resolve(args[0])) == fmt.Sprint(tpl.resolve(args[1]))
	case m["Fn::Not"] != nil && len(args) == 1:
		return !tpl.evalCondition(args[0])
	case m["Fn::And"] != nil:
		for _, a := range args {
			if !tpl.evalCondition(a) {
				return false
			}
		}
		return true
	case m["Fn::Or"] != nil:
		for _, a := range args {
			if tpl.evalCondition(a) {
				return true
			}
		}
		return false
	case m["Condition"] != nil:
		return tpl.condition(fmt.Sprint(m["Condition"]))
	}
	panic(fmt.Sprintf("deploy_test: cannot evaluate condition %v", v))
}

func loadTemplate(t *testing.T) cfnTemplate {
	t.Helper()
	raw, err := os.ReadFile(templatePath)
	if err != nil {
		t.Fatalf("read the stack: %v", err)
	}
	var tpl cfnTemplate
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&tpl); err != nil {
		t.Fatalf("parse %s: %v", templatePath, err)
	}
	return tpl
}

func (tpl cfnTemplate) ofType(typ string) []string {
	var ids []string
	for id, r := range tpl.Resources {
		if r.Type == typ {
			ids = append(ids, id)
		}
	}
	return ids
}

var subVar = regexp.MustCompile(`\$\{([^}]+)\}`)

// resolve evaluates what the comparison needs of the template's intrinsics:
// a Ref to a parameter is the parameter's value (default unless overridden),
// a Ref to a resource is "ref:<id>", Fn::GetAtt is "getatt:<id>.<attr>",
// Fn::Sub substitutes parameter values, Fn::If picks by its condition, and a
// property resolving to AWS::NoValue is left out. Scalars become strings
// (CloudFormation and the AWS APIs disagree on 20 versus "20").
func (tpl cfnTemplate) resolve(v any) any {
	switch v := v.(type) {
	case map[string]any:
		if len(v) == 1 {
			if name, ok := v["Ref"].(string); ok {
				if name == "AWS::NoValue" {
					return noValue
				}
				if p, ok := tpl.param(name); ok {
					return p
				}
				return "ref:" + name
			}
			if branches, ok := v["Fn::If"].([]any); ok && len(branches) == 3 {
				if tpl.condition(fmt.Sprint(branches[0])) {
					return tpl.resolve(branches[1])
				}
				return tpl.resolve(branches[2])
			}
			if ga, ok := v["Fn::GetAtt"].([]any); ok && len(ga) == 2 {
				return fmt.Sprintf("getatt:%v.%v", ga[0], ga[1])
			}
			if s, ok := v["Fn::Sub"].(string); ok {
				return subVar.ReplaceAllStringFunc(s, func(m string) string {
					if p, ok := tpl.param(m[2 : len(m)-1]); ok {
						return p
					}
					return m
				})
			}
		}
		out := make(map[string]any, len(v))
		for k, e := range v {
			if r := tpl.resolve(e); r != noValue {
				out[k] = r
			}
		}
		return out
	case []any:
		out := make([]any, len(v))
		for i, e := range v {
			out[i] = tpl.resolve(e)
		}
		return out
	default:
		return scalar(v)
	}
}

// normalize turns decoded API JSON into the same form as resolve.
func normalize(v any) any { return cfnTemplate{}.resolve(v) }

func scalar(v any) string {
	switch v := v.(type) {
	case nil:
		return ""
	case json.Number:
		return v.String()
	default:
		return fmt.Sprint(v)
	}
}

// fakeAWS answers the calls Ensure makes and records their requests.
type fakeAWS struct {
	mu    sync.Mutex
	calls map[string][]map[string]any // operation → request bodies
}

func (f *fakeAWS) Do(r *http.Request) (*http.Response, error) {
	target := r.Header.Get("X-Amz-Target")
	op := target[strings.LastIndex(target, ".")+1:]
	var in map[string]any
	dec := json.NewDecoder(r.Body)
	dec.UseNumber()
	if err := dec.Decode(&in); err != nil {
		return nil, fmt.Errorf("fake AWS: %s: decode request: %w", target, err)
	}
	f.mu.Lock()
	if f.calls == nil {
		f.calls = map[string][]map[string]any{}
	}
	f.calls[op] = append(f.calls[op], in)
	f.mu.Unlock()

	const account, region = "123456789012", "us-east-1"
	var out any
	switch op {
	case "CreateTable":
		out = map[string]any{"TableDescription": map[string]any{"TableName": in["TableName"], "TableStatus": "ACTIVE"}}
	case "DescribeTable":
		out = map[string]any{"Table": map[string]any{"TableName": in["TableName"], "TableStatus": "ACTIVE"}}
	case "DescribeTimeToLive":
		out = map[string]any{"TimeToLiveDescription": map[string]any{"TimeToLiveStatus": "DISABLED"}}
	case "UpdateTimeToLive":
		out = map[string]any{"TimeToLiveSpecification": in["TimeToLiveSpecification"]}
	case "CreateQueue":
		out = map[string]any{"QueueUrl": fmt.Sprintf("https://sqs.%s.amazonaws.com/%s/%v", region, account, in["QueueName"])}
	case "GetQueueAttributes":
		url, _ := in["QueueUrl"].(string)
		out = map[string]any{"Attributes": map[string]any{
			"QueueArn": fmt.Sprintf("arn:aws:sqs:%s:%s:%s", region, account, url[strings.LastIndex(url, "/")+1:]),
		}}
	default:
		return nil, fmt.Errorf("fake AWS: %s is not expected from Ensure; teach deploy_test.go about it", target)
	}
	body, err := json.Marshal(out)
	if err != nil {
		return nil, err
	}
	return &http.Response{
		StatusCode:    http.StatusOK,
		Header:        http.Header{"Content-Type": {"application/x-amz-json-1.0"}},
		Body:          io.NopCloser(bytes.NewReader(body)),
		ContentLength: int64(len(body)),
		Request:       r,
	}, nil
}

func (f *fakeAWS) find(t *testing.T, op, field, value string) map[string]any {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range f.calls[op] {
		if c[field] == value {
			return c
		}
	}
	t.Fatalf("Ensure made no %s call with %s=%q", op, field, value)
	return nil
}

// ensured runs Ensure with the configuration's defaults (a FIFO queue name
// when fifo) and returns the spec and what it asked AWS for.
func ensured(t *testing.T, fifo bool) (resources.Spec, *fakeAWS) {
	t.Helper()
	env := map[string]string{}
	if fifo {
		env["WAHOOK_QUEUE_NAME"] = "wahook-events.fifo"
	}
	cfg, err := config.LoadFrom[config.Common](env)
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	spec := resources.SpecFrom(cfg)
	if spec.FIFO() != fifo {
		t.Fatalf("queue %q: FIFO %v, want %v (the stack's QueueType default is standard)", spec.QueueName, spec.FIFO(), fifo)
	}
	f := &fakeAWS{}
	db := dynamodb.New(dynamodb.Options{
		Region: "us-east-1", Credentials: aws.AnonymousCredentials{}, HTTPClient: f,
		DisableValidateResponseChecksum: true,
	})
	q := sqs.New(sqs.Options{Region: "us-east-1", Credentials: aws.AnonymousCredentials{}, HTTPClient: f})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := resources.Ensure(ctx, db, q, spec, zap.NewNop()); err != nil {
		t.Fatalf("Ensure against the recording fake: %v", err)
	}
	return spec, f
}

// compare reports every property where the template differs from the code.
func compare(t *testing.T, what string, code map[string]any, stack map[string]any, extras map[string]bool) {
	t.Helper()
	keys := map[string]bool{}
	for k := range code {
		keys[k] = true
	}
	for k := range stack {
		keys[k] = true
	}
	for k := range keys {
		c, inCode := code[k]
		s, inStack := stack[k]
		switch {
		case !inCode && extras[k]:
		case !inStack:
			t.Errorf("%s: the code sets %s = %v; the stack does not", what, k, c)
		case !inCode:
			t.Errorf("%s: the stack sets %s = %v; the code (resources.go) does not", what, k, s)
		case !reflect.DeepEqual(c, s):
			t.Errorf("%s: %s differs:\n  code (resources.go): %v\n  stack (%s): %v", what, k, c, templatePath, s)
		}
	}
}

func TestDeployTablesMatchCode(t *testing.T) {
	tpl := loadTemplate(t)
	spec, f := ensured(t, false)

	if ids := tpl.ofType("AWS::DynamoDB::Table"); len(ids) != 2 {
		t.Errorf("the stack defines tables %v; the code defines two (%s, %s): keep them in step", ids, ledgerID, messagesID)
	}
	ttl := f.find(t, "UpdateTimeToLive", "TableName", spec.LedgerTable)["TimeToLiveSpecification"]
	if got := normalize(ttl).(map[string]any)["AttributeName"]; got != ledger.AttrExpiresAt {
		t.Fatalf("Ensure enables TTL on %v, want ledger.AttrExpiresAt (%s)", got, ledger.AttrExpiresAt)
	}
	for _, tc := range []struct {
		id    string
		input *dynamodb.CreateTableInput
		ttl   any // the TimeToLiveSpecification Ensure sets, or nil
	}{
		{ledgerID, resources.LedgerTableInput(spec.LedgerTable), ttl},
		{messagesID, resources.MessagesTableInput(spec.MessagesTable), nil},
	} {
		name := aws.ToString(tc.input.TableName)
		// What Ensure sent, in the API's own JSON, whose property names are
		// CloudFormation's too.
		code := normalize(f.find(t, "CreateTable", "TableName", name)).(map[string]any)
		delete(code, "TableName")
		if tc.ttl != nil {
			code["TimeToLiveSpecification"] = normalize(tc.ttl)
		}
		if len(tc.input.KeySchema) == 0 {
			t.Fatalf("%s: the code defines no key schema", name)
		}
		r, ok := tpl.Resources[tc.id]
		if !ok || r.Type != "AWS::DynamoDB::Table" {
			t.Errorf("the stack has no table %s (the code's %s)", tc.id, name)
			continue
		}
		compare(t, "table "+tc.id, code, tpl.resolve(r.Properties).(map[string]any), tableExtras)
	}
}

// TestDeployQueuesMatchCode compares the queues for each QueueType: the
// stack created with QueueType=fifo against Ensure with a .fifo queue name.
func TestDeployQueuesMatchCode(t *testing.T) {
	for _, queueType := range []string{"standard", "fifo"} {
		t.Run(queueType, func(t *testing.T) {
			tpl := loadTemplate(t)
			if _, ok := tpl.Parameters["QueueType"]; !ok {
				t.Fatal("the stack has no QueueType parameter")
			}
			tpl = tpl.with(map[string]string{"QueueType": queueType})
			spec, f := ensured(t, queueType == "fifo")
			checkQueues(t, tpl, spec, f)
		})
	}
}

func checkQueues(t *testing.T, tpl cfnTemplate, spec resources.Spec, f *fakeAWS) {

	queues := tpl.ofType("AWS::SQS::Queue")
	if len(queues) != 2 {
		t.Fatalf("the stack defines queues %v; the code defines two (the queue and its DLQ)", queues)
	}
	// The queue is the one with a redrive policy; the DLQ is its target.
	var mainID, dlqID string
	for _, id := range queues {
		rp, ok := tpl.Resources[id].Properties["RedrivePolicy"]
		if !ok {
			continue
		}
		if s, isString := rp.(string); isString { // CloudFormation takes a JSON string too
			if err := json.Unmarshal([]byte(s), &rp); err != nil {
				t.Fatalf("%s: RedrivePolicy: %v", id, err)
			}
		}
		mainID = id
		target, _ := tpl.resolve(rp).(map[string]any)["deadLetterTargetArn"].(string)
		id, ok := strings.CutPrefix(target, "getatt:")
		if !ok || !strings.HasSuffix(id, ".Arn") {
			t.Fatalf("%s: the redrive target %q is not a queue of the stack", mainID, target)
		}
		dlqID = strings.TrimSuffix(id, ".Arn")
	}
	if mainID == "" || dlqID == "" || dlqID == mainID || tpl.Resources[dlqID].Type != "AWS::SQS::Queue" {
		t.Fatalf("the stack's queues %v are not a queue redriving to a DLQ", queues)
	}

	codeQueue := func(name string) map[string]any {
		attrs, _ := normalize(f.find(t, "CreateQueue", "QueueName", name)["Attributes"]).(map[string]any)
		if rp, ok := attrs["RedrivePolicy"].(string); ok {
			var policy map[string]any
			if err := json.Unmarshal([]byte(rp), &policy); err != nil {
				t.Fatalf("the code's redrive policy %q: %v", rp, err)
			}
			policy = normalize(policy).(map[string]any)
			// The code points at the DLQ's ARN; the stack at its GetAtt.
			if arn := policy["deadLetterTargetArn"]; !strings.HasSuffix(fmt.Sprint(arn), ":"+spec.DLQName) {
				t.Fatalf("the code's queue redrives to %v, not to its DLQ %s", arn, spec.DLQName)
			}
			policy["deadLetterTargetArn"] = "getatt:" + dlqID + ".Arn"
			attrs["RedrivePolicy"] = policy
		}
		return attrs
	}
	stackQueue := func(id string) map[string]any {
		props := tpl.Resources[id].Properties
		if s, ok := props["RedrivePolicy"].(string); ok {
			var rp any
			if err := json.Unmarshal([]byte(s), &rp); err != nil {
				t.Fatalf("%s: RedrivePolicy: %v", id, err)
			}
			props["RedrivePolicy"] = rp
		}
		return tpl.resolve(props).(map[string]any)
	}
	compare(t, "queue "+mainID, codeQueue(spec.QueueName), stackQueue(mainID), queueExtras)
	compare(t, "dead-letter queue "+dlqID, codeQueue(spec.DLQName), stackQueue(dlqID), queueExtras)
	// Names are extras, but SQS wants .fifo on exactly the FIFO queues.
	for _, id := range []string{mainID, dlqID} {
		if name := fmt.Sprint(stackQueue(id)["QueueName"]); strings.HasSuffix(name, ".fifo") != spec.FIFO() {
			t.Errorf("queue %s is named %q; FIFO queue: %v", id, name, spec.FIFO())
		}
	}

	// Readable pins of what the comparison covers, against the configuration's
	// defaults (a failure here means the code changed: update the stack too).
	q := stackQueue(mainID)
	if got, want := q["VisibilityTimeout"], fmt.Sprint(int(spec.VisibilityTimeout/time.Second)); got != want {
		t.Errorf("queue visibility: stack %v, config default WAHOOK_VISIBILITY_TIMEOUT %s", got, want)
	}
	if got, want := q["RedrivePolicy"].(map[string]any)["maxReceiveCount"], fmt.Sprint(spec.MaxReceiveCount); got != want {
		t.Errorf("maxReceiveCount: stack %v, config default WAHOOK_MAX_RECEIVE_COUNT %s", got, want)
	}
	if got := q["MessageRetentionPeriod"]; got != fmt.Sprint(14*24*3600) {
		t.Errorf("queue retention: stack %v, want 14 days", got)
	}
	if got := q["ReceiveMessageWaitTimeSeconds"]; got != "20" {
		t.Errorf("queue receive wait: stack %v, want 20", got)
	}
}

// TestDeployTasksUseTheStackResources checks that both services are pointed at
// the stack's tables and queue, with settings that agree with the queue.
func TestDeployTasksUseTheStackResources(t *testing.T) {
	tpl := loadTemplate(t)
	var mainQueue map[string]any
	var mainID string
	for _, id := range tpl.ofType("AWS::SQS::Queue") {
		if _, ok := tpl.Resources[id].Properties["RedrivePolicy"]; ok {
			mainID, mainQueue = id, tpl.resolve(tpl.Resources[id].Properties).(map[string]any)
		}
	}
	if mainQueue == nil {
		t.Fatal("the stack has no queue with a redrive policy")
	}
	rp, _ := mainQueue["RedrivePolicy"].(map[string]any)

	tasks := tpl.ofType("AWS::ECS::TaskDefinition")
	if len(tasks) != 2 {
		t.Fatalf("the stack defines task definitions %v; want ingest and worker", tasks)
	}
	for _, id := range tasks {
		containers, _ := tpl.resolve(tpl.Resources[id].Properties["ContainerDefinitions"]).([]any)
		if len(containers) != 1 {
			t.Fatalf("%s: want one container, got %d", id, len(containers))
		}
		c := containers[0].(map[string]any)
		env := map[string]any{}
		for _, e := range c["Environment"].([]any) {
			e := e.(map[string]any)
			env[e["Name"].(string)] = e["Value"]
		}
		want := map[string]any{
			"WAHOOK_LEDGER_TABLE":   "ref:" + ledgerID,
			"WAHOOK_MESSAGES_TABLE": "ref:" + messagesID,
			"WAHOOK_QUEUE_URL":      "ref:" + mainID,
			"WAHOOK_AUTO_PROVISION": "false",
			"AWS_REGION":            "ref:AWS::Region",
		}
		if vis, err := time.ParseDuration(fmt.Sprint(env["WAHOOK_VISIBILITY_TIMEOUT"])); err != nil || fmt.Sprint(int(vis/time.Second)) != mainQueue["VisibilityTimeout"] {
			t.Errorf("%s: WAHOOK_VISIBILITY_TIMEOUT %v disagrees with the queue's visibility %v", id, env["WAHOOK_VISIBILITY_TIMEOUT"], mainQueue["VisibilityTimeout"])
		}
		want["WAHOOK_MAX_RECEIVE_COUNT"] = rp["maxReceiveCount"]
		for k, v := range want {
			if env[k] != v {
				t.Errorf("%s: %s = %v, want %v", id, k, env[k], v)
			}
		}
	}
}

// TestDeployItemTTLOutlivesTheQueues: the TTL the tasks run with (their
// WAHOOK_ITEM_TTL, else the configuration's default) passes the start-up rule
// against the stack's queue and DLQ retention, and so does the code's default
// against the queues Ensure creates: neither service would refuse to start.
func TestDeployItemTTLOutlivesTheQueues(t *testing.T) {
	tpl := loadTemplate(t)
	retention := map[string]time.Duration{}
	var mainID string
	for _, id := range tpl.ofType("AWS::SQS::Queue") {
		props := tpl.resolve(tpl.Resources[id].Properties).(map[string]any)
		secs, err := strconv.Atoi(fmt.Sprint(props["MessageRetentionPeriod"]))
		if err != nil {
			t.Fatalf("%s: MessageRetentionPeriod %v: the stack must set it (SQS's default is 4 days)", id, props["MessageRetentionPeriod"])
		}
		retention[id] = time.Duration(secs) * time.Second
		if _, ok := props["RedrivePolicy"]; ok {
			mainID = id
		}
	}
	var queue, dlq time.Duration
	for id, r := range retention {
		if id == mainID {
			queue = r
		} else {
			dlq = r
		}
	}
	defaults, err := config.LoadFrom[config.Common](map[string]string{})
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range tpl.ofType("AWS::ECS::TaskDefinition") {
		containers, _ := tpl.resolve(tpl.Resources[id].Properties["ContainerDefinitions"]).([]any)
		ttl := defaults.ItemTTL
		for _, e := range containers[0].(map[string]any)["Environment"].([]any) {
			if e := e.(map[string]any); e["Name"] == "WAHOOK_ITEM_TTL" {
				if ttl, err = time.ParseDuration(fmt.Sprint(e["Value"])); err != nil {
					t.Fatalf("%s: WAHOOK_ITEM_TTL %v: %v", id, e["Value"], err)
				}
			}
		}
		if err := ledger.CheckTTL(ttl, queue, dlq); err != nil {
			t.Errorf("%s would refuse to start against the stack's queues: %v", id, err)
		}
	}
	spec, f := ensured(t, false)
	for _, name := range []string{spec.QueueName, spec.DLQName} {
		attrs, _ := normalize(f.find(t, "CreateQueue", "QueueName", name)["Attributes"]).(map[string]any)
		secs, err := strconv.Atoi(fmt.Sprint(attrs["MessageRetentionPeriod"]))
		if err != nil {
			t.Fatalf("Ensure creates %s without a MessageRetentionPeriod", name)
		}
		retention[name] = time.Duration(secs) * time.Second
	}
	if err := ledger.CheckTTL(defaults.ItemTTL, retention[spec.QueueName], retention[spec.DLQName]); err != nil {
		t.Errorf("the default WAHOOK_ITEM_TTL against the queues Ensure creates: %v", err)
	}
	if defaults.ItemTTL != ledger.DefaultTTL {
		t.Errorf("WAHOOK_ITEM_TTL's default %s differs from ledger.DefaultTTL %s", defaults.ItemTTL, ledger.DefaultTTL)
	}
}
