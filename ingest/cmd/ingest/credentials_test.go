package main

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/wahook/wahook/shared/config"
)

func writeFile(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "secrets")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestCredentialForms(t *testing.T) {
	t.Parallel()
	file := writeFile(t, "old-secret\n  new-secret  \r\n\n")
	tokenFile := writeFile(t, "tok-a,tok-b")
	cases := []struct {
		name           string
		env            map[string]string
		secrets, token []string
	}{
		{"one secret, taken literally", map[string]string{"WAHOOK_APP_SECRET": " a,b "}, []string{" a,b "}, nil},
		{"list", map[string]string{"WAHOOK_APP_SECRETS": "old, new,", "WAHOOK_VERIFY_TOKEN": "t"}, []string{"old", "new"}, []string{"t"}},
		{"file, one per line", map[string]string{"WAHOOK_APP_SECRETS_FILE": file}, []string{"old-secret", "new-secret"}, nil},
		{"token list", map[string]string{"WAHOOK_APP_SECRET": "s", "WAHOOK_VERIFY_TOKENS": "a,b"}, []string{"s"}, []string{"a", "b"}},
		{"token file", map[string]string{"WAHOOK_APP_SECRET": "s", "WAHOOK_VERIFY_TOKENS_FILE": tokenFile}, []string{"s"}, []string{"tok-a", "tok-b"}},
		{"insecure, none", map[string]string{"WAHOOK_INSECURE_SKIP_SIGNATURE": "true"}, nil, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg, err := config.LoadFrom[Config](tc.env)
			if err != nil {
				t.Fatal(err)
			}
			creds, err := cfg.Credentials()
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(creds.AppSecrets, tc.secrets) || !slices.Equal(creds.VerifyTokens, tc.token) {
				t.Errorf("got secrets %q tokens %q, want %q %q", creds.AppSecrets, creds.VerifyTokens, tc.secrets, tc.token)
			}
		})
	}
}

// Every refusal names the variable to fix and shows no value.
func TestCredentialErrors(t *testing.T) {
	t.Parallel()
	const value = "sekrit-value"
	empty := writeFile(t, " \n,\n")
	dup := writeFile(t, value+"\nother\n"+value+"\n")
	missing := filepath.Join(t.TempDir(), "nope")
	cases := []struct {
		name   string
		env    map[string]string
		naming []string
		atLoad bool // refused by config.Load (no file read needed)
	}{
		{"none", map[string]string{}, []string{"WAHOOK_APP_SECRET", "WAHOOK_APP_SECRETS", "WAHOOK_APP_SECRETS_FILE"}, true},
		{"two forms", map[string]string{"WAHOOK_APP_SECRET": value, "WAHOOK_APP_SECRETS": value + "2"}, []string{"WAHOOK_APP_SECRET, WAHOOK_APP_SECRETS"}, true},
		{"two token forms", map[string]string{"WAHOOK_APP_SECRET": "s", "WAHOOK_VERIFY_TOKEN": value, "WAHOOK_VERIFY_TOKENS_FILE": missing}, []string{"WAHOOK_VERIFY_TOKEN, WAHOOK_VERIFY_TOKENS_FILE"}, true},
		{"list of nothing", map[string]string{"WAHOOK_APP_SECRETS": " , ,"}, []string{"WAHOOK_APP_SECRETS"}, true},
		{"list duplicate", map[string]string{"WAHOOK_APP_SECRETS": value + "," + value}, []string{"WAHOOK_APP_SECRETS"}, true},
		{"token list duplicate", map[string]string{"WAHOOK_APP_SECRET": "s", "WAHOOK_VERIFY_TOKENS": value + "," + value}, []string{"WAHOOK_VERIFY_TOKENS"}, true},
		{"missing file", map[string]string{"WAHOOK_APP_SECRETS_FILE": missing}, []string{"WAHOOK_APP_SECRETS_FILE", missing}, false},
		{"empty file", map[string]string{"WAHOOK_APP_SECRETS_FILE": empty}, []string{"WAHOOK_APP_SECRETS_FILE"}, false},
		{"file duplicate", map[string]string{"WAHOOK_APP_SECRETS_FILE": dup}, []string{"WAHOOK_APP_SECRETS_FILE", "0 and 2"}, false},
		{"missing token file", map[string]string{"WAHOOK_APP_SECRET": "s", "WAHOOK_VERIFY_TOKENS_FILE": missing}, []string{"WAHOOK_VERIFY_TOKENS_FILE"}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg, err := config.LoadFrom[Config](tc.env)
			if tc.atLoad != (err != nil) {
				t.Fatalf("config.Load: %v; want an error: %v", err, tc.atLoad)
			}
			if err == nil {
				_, err = cfg.Credentials()
			}
			if err == nil {
				t.Fatal("no error")
			}
			for _, n := range tc.naming {
				if !strings.Contains(err.Error(), n) {
					t.Errorf("error %q does not name %s", err, n)
				}
			}
			if strings.Contains(err.Error(), value) {
				t.Errorf("error %q shows a value", err)
			}
		})
	}
}

func TestCredentialFieldsMasked(t *testing.T) {
	t.Parallel()
	file := writeFile(t, "x")
	cfg, err := config.LoadFrom[Config](map[string]string{
		"WAHOOK_APP_SECRETS": "secret-one,secret-two", "WAHOOK_VERIFY_TOKENS_FILE": file,
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
	}
	want := map[string]string{
		"WAHOOK_APP_SECRETS": config.Masked, "WAHOOK_APP_SECRET": "", "WAHOOK_APP_SECRETS_FILE": "",
		"WAHOOK_VERIFY_TOKENS_FILE": file, // a path, not a secret
	}
	for k, v := range want {
		if got, ok := seen[k]; !ok || got != v {
			t.Errorf("%s logged as %q (present %v), want %q", k, got, ok, v)
		}
	}
}
