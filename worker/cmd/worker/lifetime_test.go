package main

import (
	"strings"
	"testing"

	"go.uber.org/zap"

	"github.com/wahook/wahook/shared/awstest"
)

// An item TTL shorter than the queue's plus the DLQ's retention is refused at
// start, naming both values (ElasticMQ does not report the retention: the
// worker assumes SQS's maximum, 14 days each).
func TestRunRefusesShortItemTTL(t *testing.T) {
	name := awstest.UniqueName("ttl")
	setEnv(t, map[string]string{
		"WAHOOK_LEDGER_TABLE": name + "-ledger", "WAHOOK_MESSAGES_TABLE": name + "-messages", "WAHOOK_QUEUE_NAME": name + "-q",
		"WAHOOK_AUTO_PROVISION": "true", "WAHOOK_HEALTH_ADDR": freeAddr(t), "WAHOOK_ITEM_TTL": "200h",
	})
	err := run(t.Context(), zap.NewNop())
	if err == nil || !strings.Contains(err.Error(), "WAHOOK_ITEM_TTL 200h0m0s") || !strings.Contains(err.Error(), "dead-letter queue retention 336h0m0s") {
		t.Fatalf("run: %v, want a refusal naming the TTL 200h and the queues' retention 336h", err)
	}
}
