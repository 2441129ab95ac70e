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
