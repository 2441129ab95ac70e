package server

import (
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
)

// tokenSet holds the verify tokens as SHA-256 digests, so that a presented
// token is compared with each in constant time whatever its length.
type tokenSet struct {
	digests [][sha256.Size]byte
}

func newTokenSet(tokens []string) (tokenSet, error) {
	var ts tokenSet
	for i, t := range tokens {
		if t == "" {
			return tokenSet{}, fmt.Errorf("token %d is empty", i)
		}
		d := sha256.Sum256([]byte(t))
		for j, seen := range ts.digests {
			if seen == d {
				return tokenSet{}, fmt.Errorf("tokens %d and %d are the same", j, i)
			}
		}
		ts.digests = append(ts.digests, d)
	}
	return ts, nil
}

// match returns the index of the token presented. Every configured token is
// compared, whether or not an earlier one matched.
func (ts tokenSet) match(token string) (int, bool) {
	if token == "" || len(ts.digests) == 0 {
		return -1, false
	}
	got := sha256.Sum256([]byte(token))
	match := -1
	for i, d := range ts.digests {
		match = subtle.ConstantTimeSelect(subtle.ConstantTimeCompare(got[:], d[:]), i, match)
	}
	return match, match >= 0
}
