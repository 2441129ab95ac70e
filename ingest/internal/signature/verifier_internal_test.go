package signature

import (
	"fmt"
	"testing"
)

// Every secret's digest is computed on every verification, whichever secret
// matches and whether any does: an early exit would let response times tell
// which secret (or how many) an attacker's guess got past.
func TestVerifyComputesEveryDigest(t *testing.T) {
	t.Parallel()
	secrets := [][]byte{[]byte("s0"), []byte("s1"), []byte("s2"), []byte("s3")}
	body := []byte(`{"entry":[]}`)
	cases := map[string]string{"no match": Sign([]byte("other"), body)}
	for i, s := range secrets {
		cases[fmt.Sprintf("secret %d matches", i)] = Sign(s, body)
	}
	for name, header := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			v, err := NewVerifier(secrets...)
			if err != nil {
				t.Fatal(err)
			}
			computed := map[string]int{}
			v.mac = func(secret, b []byte) []byte {
				computed[string(secret)]++
				return sum(secret, b)
			}
			_, _ = v.Verify(header, body)
			for _, s := range secrets {
				if computed[string(s)] != 1 {
					t.Errorf("digest under %q computed %d times, want 1 (all: %v)", s, computed[string(s)], computed)
				}
			}
		})
	}
}
