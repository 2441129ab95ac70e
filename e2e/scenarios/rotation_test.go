package scenarios

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wahook/wahook/e2e/harness"
)

// Meta's signer during a rotation: which secret(s) the webhooks arriving now
// are signed with.
const (
	signOld  = iota // before the secret is reset in the App Dashboard
	signBoth        // just after: new deliveries signed new, retries of older ones old
	signNew
)

// rotationStream sends webhooks to a changing set of ingest replicas, signed as
// Meta's current signer signs them, and counts every answer's status code by
// stage and by the secret that signed the body. A body answered with anything
// but 200 or 401 is sent again (Meta retries); a 401 is final.
type rotationStream struct {
	secrets [2][]byte // old, new
	stage   atomic.Int32

	// targets is swapped under the write lock, so that once a replica is
	// removed no request is in flight to it and it can be stopped.
	targets sync.RWMutex
	urls    []string
	next    atomic.Uint64

	mu       sync.Mutex
	signer   int32
	inFlight [2]int                           // bodies being delivered, by signing secret
	codes    map[int32]map[string]map[int]int // stage → signed by → status → count
	answered map[int32]int                    // stage → answers
	keys     []string                         // accepted
	refused  []string                         // correctly signed bodies answered 401
}

func (r *rotationStream) setTargets(urls []string) {
	r.targets.Lock()
	r.urls = slices.Clone(urls)
	r.targets.Unlock()
}

// send delivers one body until it is accepted or refused.
func (r *rotationStream) send(ctx context.Context, c *harness.Client, seq int, body []byte, keys []string) {
	r.mu.Lock()
	which := 0 // old
	switch r.signer {
	case signBoth:
		which = seq % 2
	case signNew:
		which = 1
	}
	r.inFlight[which]++
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		r.inFlight[which]--
		r.mu.Unlock()
	}()
	name := [2]string{"old", "new"}[which]
	sig := harness.Sign(r.secrets[which], body)
	for ctx.Err() == nil {
		r.targets.RLock()
		base := r.urls[int(r.next.Add(1)%uint64(len(r.urls)))]
		stage := r.stage.Load()
		resp := c.PostSigned(ctx, base, body, sig)
		r.targets.RUnlock()
		if ctx.Err() != nil {
			return
		}
		r.mu.Lock()
		byCode := r.codes[stage][name]
		if byCode == nil {
			byCode = map[int]int{}
			r.codes[stage][name] = byCode
		}
		byCode[resp.Status]++
		r.answered[stage]++
		switch resp.Status {
		case http.StatusOK:
			r.keys = append(r.keys, keys...)
		case http.StatusUnauthorized:
			r.refused = append(r.refused, fmt.Sprintf("stage %d, signed %s, %s", stage+1, name, resp)) // stages are numbered from 1 in the log
		}
		r.mu.Unlock()
		if resp.Status == http.StatusOK || resp.Status == http.StatusUnauthorized {
			return
		}
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Rotating the Meta app secret on real ingest processes, rolled one replica at
// a time like a deployment: old only (WAHOOK_APP_SECRET) → old and new
// (WAHOOK_APP_SECRETS_FILE) → new only (WAHOOK_APP_SECRETS). Webhooks stream
// throughout, signed as Meta signs them: old, then (once the secret is reset
// at Meta) new and old mixed while older deliveries are retried, then new.
// Not one correctly signed body gets a 401; the old secret's match counter
// stops growing once Meta signs only with the new one, so it can be retired;
// after the roll it is refused; every accepted event is processed once.
func TestAppSecretRotation(t *testing.T) {
	t.Parallel()
	s := harness.NewStack(t, harness.StackOptions{})
	ctx := t.Context()
	oldSecret, newSecret := s.AppSecret, "rotated-"+s.AppSecret
	newToken := "rotated-" + s.VerifyToken
	overlapFile := filepath.Join(t.TempDir(), "app-secrets")
	if err := os.WriteFile(overlapFile, []byte(oldSecret+"\n"+newSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	overlapEnv := map[string]string{
		"WAHOOK_APP_SECRET": "", "WAHOOK_APP_SECRETS_FILE": overlapFile,
		"WAHOOK_VERIFY_TOKEN": "", "WAHOOK_VERIFY_TOKENS": s.VerifyToken + "," + newToken,
	}
	newEnv := map[string]string{
		"WAHOOK_APP_SECRET": "", "WAHOOK_APP_SECRETS": newSecret,
		"WAHOOK_VERIFY_TOKEN": newToken,
	}

	replicas := []*harness.Process{s.StartIngest(nil), s.StartIngest(nil)}
	s.StartWorker(harness.WorkerOptions{})
	urls := func() []string {
		var out []string
		for _, p := range replicas {
			out = append(out, "http://"+p.Addr)
		}
		return out
	}
	st := &rotationStream{
		secrets:  [2][]byte{[]byte(oldSecret), []byte(newSecret)},
		codes:    map[int32]map[string]map[int]int{},
		answered: map[int32]int{},
	}
	stageNames := []string{
		"1 old only, signer old", "2 rolling to old+new", "3 old+new, signer old",
		"4 old+new, signer both", "5 old+new, signer new", "6 rolling to new only", "7 new only",
	}
	for i := range stageNames {
		st.codes[int32(i)] = map[string]map[int]int{}
	}
	st.setTargets(urls())
	client := harness.NewClient(oldSecret, func() []string { return nil }) // PostSigned only

	// The stream: one generator paced at ~40 webhooks/s, three senders.
	sctx, stop := context.WithCancel(ctx)
	type webhook struct {
		seq  int
		body []byte
		keys []string
	}
	bodies := make(chan webhook)
	var wg sync.WaitGroup
	g := harness.NewGen(seed(t))
	wg.Go(func() {
		defer close(bodies)
		tick := time.NewTicker(25 * time.Millisecond)
		defer tick.Stop()
		for seq := 0; ; seq++ {
			p := g.Payload(g.Messages(1+seq%2), nil)
			select {
			case <-sctx.Done():
				return
			case <-tick.C:
			}
			select {
			case <-sctx.Done():
				return
			case bodies <- webhook{seq, p.JSON(), p.Keys()}:
			}
		}
	})
	for range 3 {
		wg.Go(func() {
			for w := range bodies {
				// Not sctx: a body sent when the stream stops is still answered
				// and counted (it may have been admitted).
				st.send(ctx, client, w.seq, w.body, w.keys)
			}
		})
	}
	defer func() { stop(); wg.Wait() }()

	// answers waits until the current stage has n more answers than it has now.
	answers := func(n int) {
		t.Helper()
		stage := st.stage.Load()
		st.mu.Lock()
		want := st.answered[stage] + n
		st.mu.Unlock()
		harness.Eventually(t, time.Minute, fmt.Sprintf("%d answers in stage %q", want, stageNames[stage]), func(context.Context) error {
			st.mu.Lock()
			got := st.answered[stage]
			st.mu.Unlock()
			if got < want {
				return fmt.Errorf("%d answers", got)
			}
			return nil
		})
	}
	// roll replaces each replica with one started with env: the new one takes
	// traffic, then the old one stops taking it and gets SIGTERM.
	roll := func(env map[string]string) {
		t.Helper()
		for i, old := range replicas {
			replicas[i] = s.StartIngest(env)
			st.setTargets(append(urls(), "http://"+old.Addr))
			answers(5)
			st.setTargets(urls())
			if _, err := old.Terminate(20 * time.Second); err != nil {
				t.Fatal(err)
			}
		}
	}
	handshake := func(p *harness.Process, token string) int {
		t.Helper()
		q := url.Values{"hub.mode": {"subscribe"}, "hub.verify_token": {token}, "hub.challenge": {"31337"}}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.URL("/webhook?"+q.Encode()), nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	matches := func(index string) float64 {
		t.Helper()
		var total float64
		for _, p := range replicas {
			m, err := p.Metrics(ctx)
			if err != nil {
				t.Fatal(err)
			}
			total += m.Get("wahook_ingest_signature_matches_total", "index", index)
		}
		return total
	}
	enter := func(stage int32, signer int32) {
		st.mu.Lock()
		st.signer = signer
		st.mu.Unlock()
		st.stage.Store(stage)
	}

	const per = 30
	enter(0, signOld)
	answers(per)
	enter(1, signOld)
	roll(overlapEnv)
	enter(2, signOld)
	answers(per)
	for _, p := range replicas {
		for _, tok := range []string{s.VerifyToken, newToken} {
			if code := handshake(p, tok); code != http.StatusOK {
				t.Errorf("%s, overlap: handshake with token %q: %d, want 200", p.Name, tok, code)
			}
		}
	}
	enter(3, signBoth)
	answers(2 * per)
	probes := harness.NewGen(seed(t) + 1) // refused bodies; g belongs to the stream
	for _, p := range replicas {
		body := probes.Payload(probes.Messages(1), nil).JSON()
		if r := client.PostSigned(ctx, "http://"+p.Addr, body, harness.Sign([]byte("never-configured"), body)); r.Status != http.StatusUnauthorized {
			t.Errorf("%s, overlap: body signed with an unknown secret: %v, want 401", p.Name, r)
		}
	}
	enter(4, signNew)
	harness.Eventually(t, time.Minute, "the last old-signed bodies answered", func(context.Context) error {
		st.mu.Lock()
		defer st.mu.Unlock()
		if n := st.inFlight[0]; n > 0 {
			return fmt.Errorf("%d in flight", n)
		}
		return nil
	})
	oldMatches, newMatches := matches("0"), matches("1")
	answers(per)
	if got := matches("0"); got != oldMatches {
		t.Errorf("old secret's matches grew from %v to %v while Meta signed only with the new one", oldMatches, got)
	}
	if got := matches("1"); got <= newMatches {
		t.Errorf("new secret's matches did not grow (%v → %v) while Meta signed with it", newMatches, got)
	}
	t.Logf("overlap replicas: old secret matched %v times, new %v (index 0 flat once Meta switched: retire it)", oldMatches, matches("1"))
	enter(5, signNew)
	roll(newEnv)
	enter(6, signNew)
	answers(per)
	stop()
	wg.Wait()

	for _, p := range replicas {
		body := probes.Payload(probes.Messages(1), nil).JSON()
		if r := client.PostSigned(ctx, "http://"+p.Addr, body, harness.Sign([]byte(oldSecret), body)); r.Status != http.StatusUnauthorized {
			t.Errorf("%s, after the roll: body signed with the retired secret: %v, want 401", p.Name, r)
		}
		if code := handshake(p, s.VerifyToken); code != http.StatusForbidden {
			t.Errorf("%s, after the roll: handshake with the retired token: %d, want 403", p.Name, code)
		}
	}
	st.mu.Lock()
	total401 := 0
	for i, name := range stageNames {
		t.Logf("stage %s: status codes by signing secret %v", name, st.codes[int32(i)])
		for _, byCode := range st.codes[int32(i)] {
			total401 += byCode[http.StatusUnauthorized]
		}
	}
	keys, refused := st.keys, st.refused
	st.mu.Unlock()
	if total401 > 0 {
		t.Errorf("%d correctly signed bodies answered 401 during the rotation, e.g. %s", total401, refused[0])
	}
	if len(keys) < 6*per {
		t.Fatalf("only %d events accepted: the stream did not run through the rotation", len(keys))
	}
	s.AwaitSettled(keys, 2*time.Minute)
	s.CheckInvariants(harness.Expect{Keys: keys})
}
