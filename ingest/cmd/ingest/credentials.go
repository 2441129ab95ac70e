package main

import (
	"errors"
	"fmt"
	"os"
	"strings"
)

// Credentials are the app secrets and verify tokens ingest accepts, in the
// order the index label of their metrics names them.
type Credentials struct {
	AppSecrets   []string
	VerifyTokens []string
}

// Credentials reads the app secrets and verify tokens from whichever form
// each is configured in (files are read here, once). Errors name the
// variable and never show a value.
func (c Config) Credentials() (Credentials, error) {
	secrets, serr := c.appSecrets().values()
	tokens, terr := c.verifyTokens().values()
	if err := errors.Join(serr, terr); err != nil {
		return Credentials{}, fmt.Errorf("config: %w", err)
	}
	return Credentials{AppSecrets: secrets, VerifyTokens: tokens}, nil
}

// credential is one kind of credential in its three forms: a single value
// (taken literally), a comma-separated list, and a file holding the list.
// At most one form may be set.
type credential struct {
	what          string // "app secret", "verify token"
	oneVar, one   string
	listVar, list string
	fileVar, file string
}

func (c Config) appSecrets() credential {
	return credential{what: "app secret",
		oneVar: "WAHOOK_APP_SECRET", one: c.AppSecret,
		listVar: "WAHOOK_APP_SECRETS", list: c.AppSecrets,
		fileVar: "WAHOOK_APP_SECRETS_FILE", file: c.AppSecretsFile}
}

func (c Config) verifyTokens() credential {
	return credential{what: "verify token",
		oneVar: "WAHOOK_VERIFY_TOKEN", one: c.VerifyToken,
		listVar: "WAHOOK_VERIFY_TOKENS", list: c.VerifyTokens,
		fileVar: "WAHOOK_VERIFY_TOKENS_FILE", file: c.VerifyTokensFile}
}

// check validates what can be checked without reading a file: at most one
// form set, one set when required, and the inline list's entries.
func (c credential) check(required bool) error {
	var set []string
	for _, f := range [][2]string{{c.oneVar, c.one}, {c.listVar, c.list}, {c.fileVar, c.file}} {
		if f[1] != "" {
			set = append(set, f[0])
		}
	}
	switch {
	case len(set) > 1:
		return fmt.Errorf("%s: set only one of them (each is a form of the %ss)", strings.Join(set, ", "), c.what)
	case len(set) == 0 && required && c.what == "app secret":
		return fmt.Errorf("%s, %s or %s: one is required to verify X-Hub-Signature-256 "+
			"(set WAHOOK_INSECURE_SKIP_SIGNATURE=true to accept unsigned webhooks in development)",
			c.oneVar, c.listVar, c.fileVar)
	case c.list != "":
		_, err := splitList(c.listVar, c.what, c.list)
		return err
	}
	return nil
}

// values returns the configured values (none when no form is set).
func (c credential) values() ([]string, error) {
	if err := c.check(false); err != nil {
		return nil, err
	}
	switch {
	case c.one != "":
		return []string{c.one}, nil
	case c.list != "":
		return splitList(c.listVar, c.what, c.list)
	case c.file != "":
		b, err := os.ReadFile(c.file)
		if err != nil {
			// The path is configuration, not a secret; the error names it.
			return nil, fmt.Errorf("%s: %w", c.fileVar, err)
		}
		return splitList(c.fileVar, c.what, string(b))
	}
	return nil, nil
}

// splitList splits a list on commas and line breaks, trims the space around
// each entry and drops empty ones. It refuses a list with no entry and a
// value given twice (the metrics tell entries apart by index). Errors name
// variable and entry indexes, never a value.
func splitList(variable, what, s string) ([]string, error) {
	var out []string
	for _, line := range strings.Split(s, "\n") {
		for _, v := range strings.Split(line, ",") {
			if v = strings.TrimSpace(v); v != "" {
				out = append(out, v)
			}
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: holds no %s", variable, what)
	}
	for i, v := range out {
		for j := range i {
			if out[j] == v {
				return nil, fmt.Errorf("%s: %ss %d and %d are the same (counting from 0)", variable, what, j, i)
			}
		}
	}
	return out, nil
}
