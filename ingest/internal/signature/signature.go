// Package signature checks Meta's X-Hub-Signature-256 header: an HMAC-SHA256 of
// the raw request body keyed with the app secret, as "sha256=<hex>".
package signature

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// Header is the header Meta signs webhooks in.
const Header = "X-Hub-Signature-256"

const prefix = "sha256="

// ErrInvalid is returned for a missing, malformed or wrong signature.
var ErrInvalid = errors.New("signature: invalid")

// Sign returns the header value for body under secret.
func Sign(secret, body []byte) string {
	return prefix + hex.EncodeToString(sum(secret, body))
}

// Verify checks header against the raw body, in constant time over the digest.
func Verify(secret []byte, header string, body []byte) error {
	if header == "" {
		return fmt.Errorf("%w: no %s header", ErrInvalid, Header)
	}
	digest, ok := strings.CutPrefix(header, prefix)
	if !ok {
		return fmt.Errorf("%w: %s does not start with %q", ErrInvalid, Header, prefix)
	}
	got, err := hex.DecodeString(digest)
	if err != nil || len(got) != sha256.Size {
		return fmt.Errorf("%w: %s is not a hex SHA-256 digest", ErrInvalid, Header)
	}
	if !hmac.Equal(got, sum(secret, body)) {
		return fmt.Errorf("%w: digest mismatch", ErrInvalid)
	}
	return nil
}

func sum(secret, body []byte) []byte {
	mac := hmac.New(sha256.New, secret)
	mac.Write(body)
	return mac.Sum(nil)
}
