package gossip

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/postern/postern/pkg/authority"
	"github.com/postern/postern/pkg/testkit"
	"github.com/postern/postern/pkg/wgkey"
)

// testKey is the gossip key of the test clusters.
var testKey = bytes.Repeat([]byte{7}, 32)

// nodeOpts tweak a test node's configuration.
type nodeOpts func(*Config)

// newNode starts a cluster node on loopback with LocalTiming, runs it
// until the test ends and closes it in cleanup.
func newNode(tb testing.TB, id string, seeds []string, opts ...nodeOpts) *Cluster {
	tb.Helper()
	cfg := Config{
		Meta:     Meta{ID: id, Region: "region-" + id, Boot: 100, PublicURL: "https://" + id + ".example:443"},
		Identity: testIdentity(tb, id, "region-"+id),
		Verifier: testAuthority(tb),
		BindAddr: "127.0.0.1:0",
		Keys:     [][]byte{testKey},
		Seeds:    seeds,
		Timing:   LocalTiming(),
		Logger:   slog.New(slog.DiscardHandler),
	}
	for _, o := range opts {
		o(&cfg)
	}
	c, err := New(cfg)
	if err != nil {
		tb.Fatalf("New(%s): %v", id, err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); c.Run(tb.Context()) }()
	tb.Cleanup(func() {
		c.Close()
		wg.Wait()
	})
	if len(seeds) > 0 {
		if _, err := c.Join(tb.Context()); err != nil {
			tb.Fatalf("Join(%s): %v", id, err)
		}
	}
	return c
}

// testAuthorityKey signs the test nodes' credentials.
var testAuthorityKey, _ = authority.KeyFromSeed(bytes.Repeat([]byte{3}, 32))

// testAuthority returns the test mesh authority.
func testAuthority(tb testing.TB) *authority.Authority {
	tb.Helper()
	a, err := authority.New(authority.Config{Key: testAuthorityKey})
	if err != nil {
		tb.Fatal(err)
	}
	return a
}

// identities holds one identity per node id, so that tests can sign as
// any test node.
var identities sync.Map // id+"/"+region+"/"+year → Identity

// testIdentity returns the identity of test node id in region, minting it
// on first use: the tests under testing/synctest, whose clock starts in
// 2000, get their own.
func testIdentity(tb testing.TB, id, region string) Identity {
	tb.Helper()
	cacheKey := fmt.Sprintf("%s/%s/%d", id, region, time.Now().Year())
	if v, ok := identities.Load(cacheKey); ok {
		return v.(Identity)
	}
	wg, err := wgkey.Generate()
	if err != nil {
		tb.Fatal(err)
	}
	nk, err := authority.GenerateKey()
	if err != nil {
		tb.Fatal(err)
	}
	cred, err := testAuthority(tb).IssueNodeCredential(id, region, wg.Public(), nk.Public(), time.Hour)
	if err != nil {
		tb.Fatal(err)
	}
	v, _ := identities.LoadOrStore(cacheKey, Identity{Credential: cred, Key: nk})
	return v.(Identity)
}

// waitFor polls cond until it holds or the deadline passes.
// An optional status func describes the state on failure.
func waitFor(tb testing.TB, timeout time.Duration, what string, cond func() bool, status ...func() string) time.Duration {
	tb.Helper()
	return testkit.WaitFor(tb, timeout, what, cond, status...)
}

// member returns c's view of id.
func member(c *Cluster, id string) (Member, bool) {
	for _, m := range c.Members() {
		if m.ID == id {
			return m, true
		}
	}
	return Member{}, false
}

// stateOf returns c's view of id's state, "" when unknown.
func stateOf(c *Cluster, id string) State {
	m, _ := member(c, id)
	return m.State
}

// aliveCount counts the alive members c sees.
func aliveCount(c *Cluster) int {
	n := 0
	for _, m := range c.Members() {
		if m.State == StateAlive {
			n++
		}
	}
	return n
}

// hasAttachment reports whether c sees connector through node.
func hasAttachment(c *Cluster, node, connector string, match func(Attachment) bool) bool {
	for _, a := range c.Attachments() {
		if a.Node == node && a.Connector == connector {
			return match == nil || match(a)
		}
	}
	return false
}

// memTokens is an in-memory TokenStore.
type memTokens struct {
	mu  sync.Mutex
	ids map[string]time.Time
}

func newMemTokens() *memTokens { return &memTokens{ids: map[string]time.Time{}} }

func (m *memTokens) List() []authority.UsedToken {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []authority.UsedToken
	for id, exp := range m.ids {
		out = append(out, authority.UsedToken{ID: id, Expires: exp})
	}
	return out
}

func (m *memTokens) Merge(ts []authority.UsedToken) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, t := range ts {
		m.ids[t.ID] = t.Expires
	}
	return nil
}

func (m *memTokens) has(id string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	_, ok := m.ids[id]
	return ok
}

func mustJSON(tb testing.TB, v any) []byte {
	tb.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}
