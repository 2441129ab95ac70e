// Package signature checks Meta's X-Hub-Signature-256 header: an HMAC-SHA256 of
// the raw request body keyed with the app secret, as "sha256=<hex>".
//
// A Verifier holds one or more secrets (a rotation's old and new one, or the
// secrets of several Meta apps posting to one endpoint) and accepts a body
// signed with any of them, telling which.
package signature

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
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

// Verify checks header against the raw body under one secret.
func Verify(secret []byte, header string, body []byte) error {
	v, err := NewVerifier(secret)
	if err != nil {
		return err
	}
	_, err = v.Verify(header, body)
	return err
}

// Verifier checks signatures against every secret it holds. Safe for
// concurrent use.
type Verifier struct {
	secrets [][]byte
	// mac computes one digest; a field so that a test can count the digests
	// a verification computes.
	mac func(secret, body []byte) []byte
}

// NewVerifier returns a Verifier for secrets, in order: Verify reports a match
// by its index in this list. Secrets must be non-empty and distinct.
func NewVerifier(secrets ...[]byte) (*Verifier, error) {
	if len(secrets) == 0 {
		return nil, errors.New("signature: no secret")
	}
	for i, s := range secrets {
		if len(s) == 0 {
			return nil, fmt.Errorf("signature: secret %d is empty", i)
		}
		for j := range i {
			if bytes.Equal(secrets[j], s) {
				return nil, fmt.Errorf("signature: secrets %d and %d are the same", j, i)
			}
		}
	}
	own := make([][]byte, len(secrets))
	for i, s := range secrets {
		own[i] = bytes.Clone(s)
	}
	return &Verifier{secrets: own, mac: sum}, nil
}

// Len is the number of secrets.
func (v *Verifier) Len() int { return len(v.secrets) }

// Verify checks header against the raw body and returns the index of the
// secret it was signed with. Every secret's digest is computed and compared in
// constant time, whether or not an earlier one matched, so the time taken
// tells neither whether nor which secret matched.
func (v *Verifier) Verify(header string, body []byte) (int, error) {
	if header == "" {
		return -1, fmt.Errorf("%w: no %s header", ErrInvalid, Header)
	}
	digest, ok := strings.CutPrefix(header, prefix)
	if !ok {
		return -1, fmt.Errorf("%w: %s does not start with %q", ErrInvalid, Header, prefix)
	}
	got, err := hex.DecodeString(digest)
	if err != nil || len(got) != sha256.Size {
		return -1, fmt.Errorf("%w: %s is not a hex SHA-256 digest", ErrInvalid, Header)
	}
	match := -1
	for i, s := range v.secrets {
		// Both sides are sha256.Size bytes, so ConstantTimeCompare runs in
		// constant time, and ConstantTimeSelect records a match without a branch.
		eq := subtle.ConstantTimeCompare(got, v.mac(s, body))
		match = subtle.ConstantTimeSelect(eq, i, match)
	}
	if match < 0 {
		return -1, fmt.Errorf("%w: digest mismatch", ErrInvalid)
	}
	return match, nil
}

func sum(secret, body []byte) []byte {
	mac := hmac.New(sha256.New, secret)
	mac.Write(body)
	return mac.Sum(nil)
}
