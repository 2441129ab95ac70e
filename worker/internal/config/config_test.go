package config_test

import (
	"strings"
	"testing"
	"time"

	shared "github.com/wahook/wahook/shared/config"
	"github.com/wahook/wahook/worker/internal/config"
)

func TestDefaults(t *testing.T) {
	t.Parallel()
	c, err := shared.LoadFrom[config.Config](map[string]string{})
	if err != nil {
		t.Fatal(err)
	}
	if c.Processors != 4 || c.HandlerTimeout != time.Minute || c.LeaseDuration != 0 || !c.Heartbeat ||
		c.MaxAttempts != 5 || c.ShutdownTimeout != 25*time.Second || c.HealthAddr != ":8081" ||
		len(c.HandlerNames()) != 1 || c.HandlerNames()[0] != "store" || c.ReceiveWait != 20*time.Second ||
		c.VisibilityTimeout != 20*time.Second {
		t.Errorf("defaults: %+v", c)
	}
	c, err = shared.LoadFrom[config.Config](map[string]string{"WAHOOK_LEASE_DURATION": "45s", "WAHOOK_HEARTBEAT": "false",
		"WAHOOK_HANDLERS": "store, audit", "WAHOOK_AUDIT_TABLE": "a"})
	if err != nil {
		t.Fatal(err)
	}
	if c.LeaseDuration != 45*time.Second || c.Heartbeat || strings.Join(c.HandlerNames(), ",") != "store,audit" {
		t.Errorf("overrides: %+v", c)
	}
}

func TestErrorsNameTheVariable(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{"WAHOOK_PROCESSORS": "0"}, "WAHOOK_PROCESSORS"},
		{map[string]string{"WAHOOK_MAX_ATTEMPTS": "0"}, "WAHOOK_MAX_ATTEMPTS"},
		{map[string]string{"WAHOOK_LEASE_DURATION": "100ms"}, "WAHOOK_LEASE_DURATION"},
		{map[string]string{"WAHOOK_RECEIVE_WAIT": "30s"}, "WAHOOK_RECEIVE_WAIT"},
		{map[string]string{"WAHOOK_HANDLERS": "store,nope"}, `unknown handler "nope"`},
		{map[string]string{"WAHOOK_HANDLERS": "store,store"}, "listed twice"},
		{map[string]string{"WAHOOK_HANDLERS": "forward"}, "WAHOOK_FORWARD_URL"},
		{map[string]string{"WAHOOK_HANDLERS": "forward", "WAHOOK_FORWARD_URL": "https://x.example/h"}, "WAHOOK_FORWARD_SECRET"},
		{map[string]string{"WAHOOK_HANDLERS": "audit"}, "WAHOOK_AUDIT_TABLE"},
		{map[string]string{"WAHOOK_VISIBILITY_TIMEOUT": "1500ms"}, "WAHOOK_VISIBILITY_TIMEOUT"},
		{map[string]string{"WAHOOK_SHUTDOWN_TIMEOUT": "x"}, "WAHOOK_SHUTDOWN_TIMEOUT"},
		// Cross-checks name both variables.
		{map[string]string{"WAHOOK_LEASE_DURATION": "10s"}, "WAHOOK_LEASE_DURATION: 10s is under WAHOOK_VISIBILITY_TIMEOUT 20s"},
		{map[string]string{"WAHOOK_LEASE_DURATION": "29s", "WAHOOK_VISIBILITY_TIMEOUT": "30s"}, "WAHOOK_VISIBILITY_TIMEOUT 30s"},
		{map[string]string{"WAHOOK_MAX_RECEIVE_COUNT": "6"}, "WAHOOK_MAX_RECEIVE_COUNT: 6 is under WAHOOK_MAX_ATTEMPTS 5 + 2"},
		{map[string]string{"WAHOOK_MAX_ATTEMPTS": "9"}, "WAHOOK_MAX_RECEIVE_COUNT: 10 is under WAHOOK_MAX_ATTEMPTS 9 + 2"},
		{map[string]string{"WAHOOK_RETRY_MAX": "61m"}, "WAHOOK_RETRY_MAX: 1h1m0s is over 1h"},
	} {
		_, err := shared.LoadFrom[config.Config](tc.env)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: err %v, want it to mention %s", tc.env, err, tc.want)
		}
	}
}

// The bounds of the cross-checks are accepted.
func TestCrossChecksAtTheirBounds(t *testing.T) {
	t.Parallel()
	for _, env := range []map[string]string{
		{"WAHOOK_LEASE_DURATION": "20s"},
		{"WAHOOK_MAX_RECEIVE_COUNT": "7"},
		{"WAHOOK_RETRY_MAX": "1h"},
	} {
		if _, err := shared.LoadFrom[config.Config](env); err != nil {
			t.Errorf("%v: %v", env, err)
		}
	}
}

func TestSecretMasked(t *testing.T) {
	t.Parallel()
	c, err := shared.LoadFrom[config.Config](map[string]string{"WAHOOK_HANDLERS": "forward",
		"WAHOOK_FORWARD_URL": "https://x.example/h", "WAHOOK_FORWARD_SECRET": "hunter2"})
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, f := range shared.Fields(c) {
		if f.Key == "WAHOOK_FORWARD_SECRET" {
			found = true
			if f.String != shared.Masked {
				t.Errorf("secret logged as %q", f.String)
			}
		}
		if f.String == "hunter2" {
			t.Errorf("%s shows the secret", f.Key)
		}
	}
	if !found {
		t.Error("WAHOOK_FORWARD_SECRET not among the fields")
	}
}
