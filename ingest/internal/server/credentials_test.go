package server_test

import (
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/wahook/wahook/ingest/internal/metrics"
	"github.com/wahook/wahook/ingest/internal/metrics/metricstest"
	"github.com/wahook/wahook/ingest/internal/server"
	"github.com/wahook/wahook/ingest/internal/signature"
)

// Several app secrets: a body signed with any of them is accepted and counted
// under the matching secret's index; a secret that signs nothing shows as a
// zero series; a body signed with anything else is refused.
func TestSeveralAppSecrets(t *testing.T) {
	t.Parallel()
	secrets := []string{"old-secret", "new-secret", "second-app-secret"}
	s := newStack(t, server.Options{AppSecrets: secrets}, nil)
	body := []byte(seedBody)
	signedBy := map[int]int{0: 3, 1: 5} // secret index → requests; secret 2 signs none
	for i, n := range signedBy {
		for range n {
			if r := post(t, s.url, body, signature.Sign([]byte(secrets[i]), body)); r.code != http.StatusOK {
				t.Fatalf("signed with secret %d: status %d (body %s), want 200", i, r.code, r.body)
			}
		}
	}
	if r := post(t, s.url, body, signature.Sign([]byte("retired-secret"), body)); r.code != http.StatusUnauthorized {
		t.Errorf("signed with a secret not configured: status %d, want 401", r.code)
	}
	for i := range secrets {
		got := metricstest.Value(t, s.reg, "wahook_ingest_signature_matches_total", map[string]string{"index": strconv.Itoa(i)})
		if got != float64(signedBy[i]) {
			t.Errorf("signature_matches_total{index=%d} = %v, want %d", i, got, signedBy[i])
		}
	}
	if !hasSeries(t, s, "wahook_ingest_signature_matches_total", "2") {
		t.Error("no signature_matches_total series for secret 2, which signed nothing: it should show as 0")
	}
	if s.proc.calls() != 8 {
		t.Errorf("processor called %d times, want 8", s.proc.calls())
	}
}

// Rotation, in process: one server per configuration (old only, old and new,
// new only) while the signer switches from old to new in the middle of the
// overlap. A stream of concurrent requests signed with both secrets during
// the overlap: not one correctly signed body gets a 401.
func TestAppSecretRotation(t *testing.T) {
	t.Parallel()
	const oldSecret, newSecret = "meta-secret-before-reset", "meta-secret-after-reset"
	body := []byte(seedBody)
	type phase struct {
		name    string
		secrets []string
		signers []string // requests are signed round robin with these
	}
	phases := []phase{
		{"old only", []string{oldSecret}, []string{oldSecret}},
		{"overlap, signer still old", []string{oldSecret, newSecret}, []string{oldSecret}},
		{"overlap, both in flight", []string{oldSecret, newSecret}, []string{oldSecret, newSecret}},
		{"overlap, signer switched", []string{oldSecret, newSecret}, []string{newSecret}},
		{"new only", []string{newSecret}, []string{newSecret}},
	}
	const perPhase, conc = 60, 8
	for _, ph := range phases {
		s := newStack(t, server.Options{AppSecrets: ph.secrets}, nil)
		var mu sync.Mutex
		codes := map[int]int{}
		var wg sync.WaitGroup
		sem := make(chan struct{}, conc)
		for i := range perPhase {
			sem <- struct{}{}
			wg.Go(func() {
				defer func() { <-sem }()
				r := post(t, s.url, body, signature.Sign([]byte(ph.signers[i%len(ph.signers)]), body))
				mu.Lock()
				codes[r.code]++
				mu.Unlock()
			})
		}
		wg.Wait()
		t.Logf("%s: status codes %v", ph.name, codes)
		if codes[http.StatusOK] != perPhase {
			t.Errorf("%s: status codes %v, want %d × 200 (a correctly signed body refused)", ph.name, codes, perPhase)
		}
		// Each configured secret matched exactly the requests it signed.
		for i, sec := range ph.secrets {
			want := 0
			for j := range perPhase {
				if ph.signers[j%len(ph.signers)] == sec {
					want++
				}
			}
			got := metricstest.Value(t, s.reg, "wahook_ingest_signature_matches_total", map[string]string{"index": strconv.Itoa(i)})
			if got != float64(want) {
				t.Errorf("%s: signature_matches_total{index=%d} = %v, want %d", ph.name, i, got, want)
			}
		}
	}
	// Retired: once only the new secret is configured, the old one is refused.
	s := newStack(t, server.Options{AppSecrets: []string{newSecret}}, nil)
	if r := post(t, s.url, body, signature.Sign([]byte(oldSecret), body)); r.code != http.StatusUnauthorized {
		t.Errorf("old secret after retirement: status %d, want 401", r.code)
	}
}

func TestSeveralVerifyTokens(t *testing.T) {
	t.Parallel()
	tokens := []string{"token-of-app-a", "token-of-app-b", "unused-token"}
	s := newStack(t, server.Options{AppSecret: secret, VerifyTokens: tokens}, nil)
	handshake := func(token string) response {
		q := url.Values{"hub.mode": {"subscribe"}, "hub.verify_token": {token}, "hub.challenge": {"4711"}}
		return get(t, s.url+server.PathWebhook+"?"+q.Encode())
	}
	for i, n := range []int{2, 1} {
		for range n {
			if r := handshake(tokens[i]); r.code != http.StatusOK || string(r.body) != "4711" {
				t.Fatalf("token %d: %d %q, want 200 4711", i, r.code, r.body)
			}
		}
	}
	for _, wrong := range []string{"", "token-of-app", "token-of-app-a ", strings.Repeat("x", 200)} {
		if r := handshake(wrong); r.code != http.StatusForbidden {
			t.Errorf("token %q: status %d, want 403", wrong, r.code)
		}
	}
	for i, want := range []float64{2, 1, 0} {
		if got := metricstest.Value(t, s.reg, "wahook_ingest_verify_token_matches_total", map[string]string{"index": strconv.Itoa(i)}); got != want {
			t.Errorf("verify_token_matches_total{index=%d} = %v, want %v", i, got, want)
		}
	}
	if !hasSeries(t, s, "wahook_ingest_verify_token_matches_total", "2") {
		t.Error("no verify_token_matches_total series for the unused token")
	}
}

func TestCredentialOptionsRefused(t *testing.T) {
	t.Parallel()
	for name, opts := range map[string]server.Options{
		"both secret forms":  {AppSecret: "a", AppSecrets: []string{"b"}},
		"both token forms":   {AppSecret: "a", VerifyToken: "t", VerifyTokens: []string{"u"}},
		"duplicate secrets":  {AppSecrets: []string{"a", "b", "a"}},
		"empty secret":       {AppSecrets: []string{"a", ""}},
		"duplicate tokens":   {AppSecret: "a", VerifyTokens: []string{"t", "t"}},
		"no secret":          {VerifyToken: "t"},
		"empty secrets list": {AppSecrets: []string{}},
	} {
		if err := newServerErr(opts); err == nil {
			t.Errorf("%s: server.New accepted %+v", name, opts)
		}
	}
}

// No secret or token value reaches a log line, whatever was presented.
func TestCredentialsNeverLogged(t *testing.T) {
	t.Parallel()
	secrets, tokens := []string{"s3cr3t-one", "s3cr3t-two"}, []string{"t0k3n-one", "t0k3n-two"}
	s := newStack(t, server.Options{AppSecrets: secrets, VerifyTokens: tokens}, nil)
	body := []byte(seedBody)
	post(t, s.url, body, signature.Sign([]byte(secrets[1]), body))
	post(t, s.url, body, signature.Sign([]byte("wrong"), body))
	for _, tok := range append([]string{"wrong"}, tokens...) {
		q := url.Values{"hub.mode": {"subscribe"}, "hub.verify_token": {tok}, "hub.challenge": {"1"}}
		get(t, s.url+server.PathWebhook+"?"+q.Encode())
	}
	if s.logs.Len() == 0 {
		t.Fatal("no log lines: the check below would prove nothing")
	}
	for _, e := range s.logs.All() {
		line := fmt.Sprintf("%s %v", e.Message, e.ContextMap())
		for _, v := range append(secrets, tokens...) {
			if strings.Contains(line, v) {
				t.Errorf("log line shows a credential: %s", line)
			}
		}
	}
}

func hasSeries(t *testing.T, s *stack, name, index string) bool {
	t.Helper()
	families, err := s.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "index" && l.GetValue() == index {
					return true
				}
			}
		}
	}
	return false
}

func newServerErr(opts server.Options) error {
	m, err := metrics.New(prometheus.NewRegistry())
	if err != nil {
		return err
	}
	_, err = server.New(opts, server.Deps{Processor: &fakeProcessor{}, Checker: fakeChecker{},
		Metrics: m, Gatherer: prometheus.NewRegistry(), Log: zap.NewNop()})
	return err
}
