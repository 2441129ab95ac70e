package main

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/wahook/wahook/shared/config"
)

func TestConfigDefaults(t *testing.T) {
	t.Parallel()
	cfg, err := config.LoadFrom[Config](map[string]string{"WAHOOK_APP_SECRET": "s3cr3t"})
	if err != nil {
		t.Fatal(err)
	}
	want := Config{
		Common: cfg.Common, HTTPAddr: ":8080", AppSecret: "s3cr3t", BodyLimit: 4 << 20,
		SendTimeout: 5 * time.Second, ResendWindow: 10 * time.Second, InFlightWait: 5 * time.Second,
		AdmitConcurrency: 64, AdmitLatencyTarget: 250 * time.Millisecond, SendConcurrency: 4, ShutdownTimeout: 20 * time.Second,
	}
	if cfg != want {
		t.Errorf("defaults\n got %+v\nwant %+v", cfg, want)
	}
	if cfg.BackendTimeout != 5*time.Second || cfg.LedgerTable == "" {
		t.Errorf("common defaults not applied: %+v", cfg.Common)
	}
}

func TestConfigValidation(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   string
		env    map[string]string
		naming string // the variable the error must name; "" = valid
	}{
		{"no app secret", map[string]string{}, "WAHOOK_APP_SECRET"},
		{"no app secret, insecure switch", map[string]string{"WAHOOK_INSECURE_SKIP_SIGNATURE": "true"}, ""},
		{"resend window equals send timeout", map[string]string{"WAHOOK_APP_SECRET": "s",
			"WAHOOK_SEND_TIMEOUT": "3s", "WAHOOK_RESEND_WINDOW": "3s"}, "WAHOOK_RESEND_WINDOW"},
		{"resend window shorter", map[string]string{"WAHOOK_APP_SECRET": "s", "WAHOOK_RESEND_WINDOW": "1s"}, "WAHOOK_RESEND_WINDOW"},
		{"resend window longer", map[string]string{"WAHOOK_APP_SECRET": "s",
			"WAHOOK_SEND_TIMEOUT": "300ms", "WAHOOK_RESEND_WINDOW": "400ms"}, ""},
		{"tiny body limit", map[string]string{"WAHOOK_APP_SECRET": "s", "WAHOOK_BODY_LIMIT": "10"}, "WAHOOK_BODY_LIMIT"},
		{"zero concurrency", map[string]string{"WAHOOK_APP_SECRET": "s", "WAHOOK_ADMIT_CONCURRENCY": "0"}, "WAHOOK_ADMIT_CONCURRENCY"},
		{"latency target past the call timeout", map[string]string{"WAHOOK_APP_SECRET": "s",
			"WAHOOK_BACKEND_TIMEOUT": "1s", "WAHOOK_ADMIT_LATENCY_TARGET": "1s"}, "WAHOOK_ADMIT_LATENCY_TARGET"},
		{"zero in-flight wait", map[string]string{"WAHOOK_APP_SECRET": "s", "WAHOOK_INFLIGHT_WAIT": "0s"}, "WAHOOK_INFLIGHT_WAIT"},
		{"zero shutdown timeout", map[string]string{"WAHOOK_APP_SECRET": "s", "WAHOOK_SHUTDOWN_TIMEOUT": "0s"}, "WAHOOK_SHUTDOWN_TIMEOUT"},
		{"unparsable duration", map[string]string{"WAHOOK_APP_SECRET": "s", "WAHOOK_SEND_TIMEOUT": "soon"}, "WAHOOK_SEND_TIMEOUT"},
		{"common settings checked", map[string]string{"WAHOOK_APP_SECRET": "s", "WAHOOK_LOG_LEVEL": "loud"}, "WAHOOK_LOG_LEVEL"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := config.LoadFrom[Config](tc.env)
			switch {
			case tc.naming == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tc.naming != "" && err == nil:
				t.Fatalf("no error, want one naming %s", tc.naming)
			case tc.naming != "" && !strings.Contains(err.Error(), tc.naming):
				t.Fatalf("error %q does not name %s", err, tc.naming)
			}
		})
	}
}

func TestConfigFieldsMaskSecrets(t *testing.T) {
	t.Parallel()
	cfg, err := config.LoadFrom[Config](map[string]string{
		"WAHOOK_APP_SECRET": "app-secret-value", "WAHOOK_VERIFY_TOKEN": "verify-token-value",
	})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]string{}
	for _, f := range config.Fields(cfg) {
		v := f.String
		if f.Interface != nil {
			v = fmt.Sprint(f.Interface)
		}
		seen[f.Key] = v
		if strings.Contains(v, "app-secret-value") || strings.Contains(v, "verify-token-value") {
			t.Errorf("field %s shows a secret: %q", f.Key, v)
		}
	}
	for _, k := range []string{"WAHOOK_APP_SECRET", "WAHOOK_VERIFY_TOKEN"} {
		if seen[k] != config.Masked {
			t.Errorf("%s logged as %q, want %q", k, seen[k], config.Masked)
		}
	}
	for _, k := range []string{"WAHOOK_HTTP_ADDR", "WAHOOK_RESEND_WINDOW", "WAHOOK_LEDGER_TABLE"} {
		if _, ok := seen[k]; !ok {
			t.Errorf("%s not logged", k)
		}
	}
}
