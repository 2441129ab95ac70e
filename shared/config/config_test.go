package config_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/wahook/wahook/shared/config"
)

type svc struct {
	config.Common
	Secret string `env:"WAHOOK_TEST_SECRET" secret:"true"`
	Addr   string `env:"WAHOOK_TEST_ADDR" envDefault:":1"`
	Target string `env:"WAHOOK_TEST_URL" secret:"url"`
}

func TestDefaults(t *testing.T) {
	t.Parallel()
	c, err := config.LoadFrom[svc](map[string]string{})
	if err != nil {
		t.Fatal(err)
	}
	if c.LedgerTable != "wahook-ledger" || c.QueueName != "wahook-events" || c.VisibilityTimeout != 20*time.Second ||
		c.ItemTTL != 672*time.Hour || c.DeadLetterName() != "wahook-events-dlq" || c.Addr != ":1" {
		t.Fatalf("defaults = %+v", c)
	}
}

func TestValidationNamesTheVariable(t *testing.T) {
	t.Parallel()
	for env, bad := range map[string]string{
		"WAHOOK_LOG_LEVEL":          "loud",
		"WAHOOK_LOG_FORMAT":         "xml",
		"WAHOOK_VISIBILITY_TIMEOUT": "1500ms",
		"WAHOOK_ITEM_TTL":           "24h",
		"WAHOOK_MAX_RECEIVE_COUNT":  "0",
	} {
		t.Run(env, func(t *testing.T) {
			t.Parallel()
			_, err := config.LoadFrom[svc](map[string]string{env: bad})
			if err == nil || !strings.Contains(err.Error(), env) {
				t.Fatalf("err = %v, want one naming %s", err, env)
			}
		})
	}
	_, err := config.LoadFrom[svc](map[string]string{"WAHOOK_VISIBILITY_TIMEOUT": "soon"})
	if err == nil || !strings.Contains(err.Error(), "WAHOOK_VISIBILITY_TIMEOUT") {
		t.Fatalf("parse error = %v, want one naming the variable", err)
	}
}

func TestFIFODeadLetterName(t *testing.T) {
	t.Parallel()
	c := config.Common{QueueName: "events.fifo"}
	if got := c.DeadLetterName(); got != "events-dlq.fifo" {
		t.Fatalf("dlq = %q", got)
	}
}

func TestFieldsMaskSecrets(t *testing.T) {
	t.Parallel()
	c, err := config.LoadFrom[svc](map[string]string{"WAHOOK_TEST_SECRET": "hunter2",
		"WAHOOK_TEST_URL": "https://svc:hunter2@hooks.example.com/wa?key=hunter2"})
	if err != nil {
		t.Fatal(err)
	}
	core, logs := observer.New(zapcore.InfoLevel)
	zap.New(core).Info("config", config.Fields(c)...)
	ctx := logs.All()[0].ContextMap()
	if ctx["WAHOOK_TEST_SECRET"] != config.Masked {
		t.Fatalf("secret logged as %v", ctx["WAHOOK_TEST_SECRET"])
	}
	if want := "https://xxxxx@hooks.example.com/wa?xxxxx"; ctx["WAHOOK_TEST_URL"] != want {
		t.Fatalf("URL logged as %v, want %s", ctx["WAHOOK_TEST_URL"], want)
	}
	if ctx["WAHOOK_LEDGER_TABLE"] != "wahook-ledger" || ctx["WAHOOK_TEST_ADDR"] != ":1" {
		t.Fatalf("fields = %v", ctx)
	}
	for k, v := range ctx {
		if s, ok := v.(string); ok && strings.Contains(s, "hunter2") {
			t.Fatalf("%s leaks the secret", k)
		}
	}
}

func TestVariables(t *testing.T) {
	t.Parallel()
	got := config.Variables[svc]()
	for _, want := range []string{"WAHOOK_TEST_SECRET", "WAHOOK_TEST_ADDR", "WAHOOK_LEDGER_TABLE", "WAHOOK_QUEUE_URL"} {
		if !slices.Contains(got, want) {
			t.Errorf("Variables = %v, missing %s", got, want)
		}
	}
	if !slices.IsSorted(got) {
		t.Errorf("Variables not sorted: %v", got)
	}
}
