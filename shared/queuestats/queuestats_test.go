package queuestats_test

import (
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap"

	"github.com/wahook/wahook/shared/awstest"
	"github.com/wahook/wahook/shared/queuestats"
	"github.com/wahook/wahook/shared/resources"
)

var emu *awstest.Emulators

func TestMain(m *testing.M) { awstest.Main(m, &emu) }

// TestPoll: the gauges say what the queues hold, read from the emulator.
func TestPoll(t *testing.T) {
	c, err := emu.Clients(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	name := awstest.UniqueName("qstats")
	prov, err := resources.Ensure(t.Context(), c.DynamoDB, c.SQS, resources.Spec{
		LedgerTable: name + "-ledger", QueueName: name + "-q", DLQName: name + "-dlq",
		VisibilityTimeout: 30 * time.Second, MaxReceiveCount: 5,
	}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	send := func(url string, n int) {
		for range n {
			if _, err := c.SQS.SendMessage(t.Context(), &sqs.SendMessageInput{QueueUrl: &url, MessageBody: aws.String("{}")}); err != nil {
				t.Fatal(err)
			}
		}
	}
	send(prov.QueueURL, 3)
	send(prov.DLQURL, 2)
	// One of the three in flight.
	if _, err := c.SQS.ReceiveMessage(t.Context(), &sqs.ReceiveMessageInput{QueueUrl: &prov.QueueURL, MaxNumberOfMessages: 1, WaitTimeSeconds: 1}); err != nil {
		t.Fatal(err)
	}

	reg := prometheus.NewRegistry()
	p, err := queuestats.New(c.SQS, prov.QueueURL, prov.DLQURL, time.Minute, 5*time.Second, reg, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	p.Poll(t.Context())
	want := `
# HELP wahook_queue_messages Approximate messages in the queue (source, dead_letter) by state (visible, in_flight, delayed), as SQS's GetQueueAttributes reports them.
# TYPE wahook_queue_messages gauge
wahook_queue_messages{queue="dead_letter",state="delayed"} 0
wahook_queue_messages{queue="dead_letter",state="in_flight"} 0
wahook_queue_messages{queue="dead_letter",state="visible"} 2
wahook_queue_messages{queue="source",state="delayed"} 0
wahook_queue_messages{queue="source",state="in_flight"} 1
wahook_queue_messages{queue="source",state="visible"} 2
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "wahook_queue_messages"); err != nil {
		t.Fatal(err)
	}
	if ts := gauge(t, reg, "wahook_queue_stats_updated_timestamp_seconds"); time.Since(time.Unix(int64(ts), 0)) > time.Minute {
		t.Fatalf("stats_updated_timestamp_seconds = %v, want the time of the read", ts)
	}
}

// gauge is the value of an unlabelled gauge on reg.
func gauge(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatalf("no %s", name)
	return 0
}
