package main

import (
	"os"
	"strings"
	"testing"

	"go.uber.org/zap"

	"github.com/wahook/wahook/shared/awstest"
	"github.com/wahook/wahook/shared/config"
)

// An item TTL shorter than the queue's plus the DLQ's retention is refused at
// start, naming both values. (ElasticMQ does not report MessageRetentionPeriod:
// ingest then assumes SQS's maximum, 14 days each.)
func TestServeRefusesShortItemTTL(t *testing.T) {
	t.Parallel()
	cfg, err := config.LoadFrom[Config](map[string]string{
		"WAHOOK_HTTP_ADDR": "127.0.0.1:0", "WAHOOK_AUTO_PROVISION": "true", "WAHOOK_INSECURE_SKIP_SIGNATURE": "true",
		"WAHOOK_LEDGER_TABLE": awstest.UniqueName("ttl-ledger"), "WAHOOK_QUEUE_NAME": awstest.UniqueName("ttl-events"),
		"WAHOOK_ITEM_TTL": "192h",
	})
	if err != nil {
		t.Fatal(err)
	}
	err = serve(t.Context(), zap.NewNop(), cfg, emu.Options(), make(chan os.Signal), nil)
	if err == nil || !strings.Contains(err.Error(), "WAHOOK_ITEM_TTL 192h0m0s") || !strings.Contains(err.Error(), "queue retention 336h0m0s") {
		t.Fatalf("serve: %v, want a refusal naming the TTL 192h and the queues' retention 336h", err)
	}
}
