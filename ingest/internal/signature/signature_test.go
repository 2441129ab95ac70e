package signature_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strings"
	"testing"

	"github.com/wahook/wahook/ingest/internal/signature"
)

func TestVerify(t *testing.T) {
	t.Parallel()
	secret := []byte("app-secret")
	body := []byte(`{"entry":[{"changes":[{"value":{"messages":[{"id":"wamid.1","text":{"body":"héllo 👋 @team"}}]}}]}]}`)
	// Computed independently of Sign, the way Meta documents it.
	mac := hmac.New(sha256.New, secret)
	mac.Write(body)
	good := "sha256=" + hex.EncodeToString(mac.Sum(nil))

	cases := []struct {
		name   string
		header string
		body   []byte
		ok     bool
	}{
		{"valid", good, body, true},
		{"Sign agrees", signature.Sign(secret, body), body, true},
		{"missing", "", body, false},
		{"no prefix", strings.TrimPrefix(good, "sha256="), body, false},
		{"sha1 prefix", "sha1=" + strings.TrimPrefix(good, "sha256="), body, false},
		{"not hex", "sha256=" + strings.Repeat("zz", 32), body, false},
		{"short digest", good[:len(good)-2], body, false},
		{"uppercase hex", "sha256=" + strings.ToUpper(strings.TrimPrefix(good, "sha256=")), body, true},
		{"other secret", signature.Sign([]byte("other"), body), body, false},
		{"body changed", good, append([]byte(nil), append(body, ' ')...), false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := signature.Verify(secret, tc.header, tc.body)
			if tc.ok && err != nil {
				t.Fatalf("Verify: %v, want nil", err)
			}
			if !tc.ok && !errors.Is(err, signature.ErrInvalid) {
				t.Fatalf("Verify: %v, want ErrInvalid", err)
			}
		})
	}
}

// Several secrets: a body signed with any of them is accepted, and Verify says
// which one; the same body under a secret not in the list is refused.
func TestVerifierSeveralSecrets(t *testing.T) {
	t.Parallel()
	secrets := [][]byte{[]byte("old-secret"), []byte("new-secret"), []byte("second-app")}
	v, err := signature.NewVerifier(secrets...)
	if err != nil {
		t.Fatal(err)
	}
	body := []byte(`{"entry":[]}`)
	for want, s := range secrets {
		got, err := v.Verify(signature.Sign(s, body), body)
		if err != nil || got != want {
			t.Errorf("signed with secret %d: Verify = %d, %v; want %d, nil", want, got, err, want)
		}
	}
	for name, header := range map[string]string{
		"retired secret": signature.Sign([]byte("retired"), body),
		"missing":        "",
		"malformed":      "sha256=00",
	} {
		if got, err := v.Verify(header, body); got != -1 || !errors.Is(err, signature.ErrInvalid) {
			t.Errorf("%s: Verify = %d, %v; want -1, ErrInvalid", name, got, err)
		}
	}
}

func TestNewVerifierRefuses(t *testing.T) {
	t.Parallel()
	for name, secrets := range map[string][][]byte{
		"none":      nil,
		"empty":     {[]byte("a"), {}},
		"duplicate": {[]byte("a"), []byte("b"), []byte("a")},
	} {
		if _, err := signature.NewVerifier(secrets...); err == nil {
			t.Errorf("%s: NewVerifier accepted %q", name, secrets)
		}
	}
}

// The verifier keeps its own copy: a caller reusing its buffer does not change
// what is accepted.
func TestVerifierCopiesSecrets(t *testing.T) {
	t.Parallel()
	s := []byte("secret")
	v, err := signature.NewVerifier(s)
	if err != nil {
		t.Fatal(err)
	}
	body := []byte("{}")
	header := signature.Sign([]byte("secret"), body)
	copy(s, "XXXXXX")
	if _, err := v.Verify(header, body); err != nil {
		t.Fatalf("after the caller changed its buffer: %v", err)
	}
}
