package connector

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/postern/postern/pkg/egress"
	"github.com/postern/postern/pkg/enroll"
	"github.com/postern/postern/pkg/testkit"
	"github.com/postern/postern/pkg/tunnelhttp"
	"github.com/postern/postern/pkg/wgkey"
)

// fakeMesh is a set of fake mesh nodes speaking the enroll API in memory
// (memTransport): no socket, so that tests can run under
// testing/synctest, where a ping's simulated distance is exact.
type fakeMesh struct {
	nodes  []*fakeNode
	client *http.Client
}

// fakeNode is one fake mesh node: it answers attach with every node of
// its mesh, delays pings by delay, and records detaches.
type fakeNode struct {
	id      string
	url     string
	pub     wgkey.Public
	mesh    *fakeMesh
	delay   atomic.Int64 // ping delay, ns
	dead    atomic.Bool  // answers 503 to everything
	attachN atomic.Int32
	pingN   atomic.Int32

	mu       sync.Mutex // guards the following
	detaches []bool
}

func newFakeMesh(tb testing.TB, delays ...time.Duration) *fakeMesh {
	tb.Helper()
	m := &fakeMesh{}
	for i, d := range delays {
		id := string(rune('a' + i))
		n := &fakeNode{id: id, url: "https://" + id + ".mesh.test", pub: newPub(tb), mesh: m}
		n.delay.Store(int64(d))
		m.nodes = append(m.nodes, n)
	}
	m.client = &http.Client{Transport: memTransport{m}}
	return m
}

// memTransport hands each request to the fake node its URL names.
type memTransport struct{ m *fakeMesh }

func (t memTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Body != nil {
		defer r.Body.Close()
	}
	for _, n := range t.m.nodes {
		if n.url == "https://"+r.URL.Host {
			rec := httptest.NewRecorder()
			n.ServeHTTP(rec, r)
			if err := r.Context().Err(); err != nil {
				return nil, err
			}
			resp := rec.Result()
			resp.Request = r
			return resp, nil
		}
	}
	return nil, fmt.Errorf("no fake mesh node at %s", r.URL.Host)
}

func newPub(tb testing.TB) wgkey.Public {
	tb.Helper()
	k, err := wgkey.Generate()
	if err != nil {
		tb.Fatal(err)
	}
	return k.Public()
}

func (m *fakeMesh) infos() []enroll.NodeInfo {
	var out []enroll.NodeInfo
	for _, n := range m.nodes {
		out = append(out, enroll.NodeInfo{ID: n.id, Region: "r-" + n.id, URL: n.url})
	}
	return out
}

func (n *fakeNode) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if n.dead.Load() {
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	switch r.URL.Path {
	case enroll.PingPath:
		n.pingN.Add(1)
		t := time.NewTimer(time.Duration(n.delay.Load())) // simulated distance
		defer t.Stop()
		select {
		case <-t.C:
		case <-r.Context().Done():
		}
		w.WriteHeader(http.StatusNoContent)
	case enroll.AttachPath:
		n.attachN.Add(1)
		json.NewEncoder(w).Encode(enroll.AttachResponse{NodeID: n.id, Region: "r-" + n.id, PublicKey: n.pub,
			Endpoint: "127.0.0.1:9", TunnelAddr: n.pub.Addr(), Nodes: n.mesh.infos()})
	case enroll.DetachPath:
		var req enroll.DetachRequest
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil || req.Credential != testCredential {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		n.mu.Lock()
		n.detaches = append(n.detaches, req.Drain)
		n.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	default:
		w.WriteHeader(http.StatusNotFound)
	}
}

func (n *fakeNode) detachCalls() []bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return slices.Clone(n.detaches)
}

// fakeTunnel connects at once and loses a link when told to.
type fakeTunnel struct {
	mu       sync.Mutex // guards the following
	lost     map[string]chan struct{}
	unlinked []string
}

func (f *fakeTunnel) connect(ctx context.Context, meshURL string, resp enroll.AttachResponse, prev *meshLink) (*meshLink, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lost[meshURL] = make(chan struct{})
	return &meshLink{url: meshURL, nodeID: resp.NodeID, pub: resp.PublicKey, tunAddr: resp.PublicKey.Addr()}, nil
}

func (f *fakeTunnel) watch(ctx context.Context, link *meshLink) {
	f.mu.Lock()
	ch := f.lost[link.url]
	f.mu.Unlock()
	select {
	case <-ctx.Done():
	case <-ch:
	}
}

func (f *fakeTunnel) unlink(link *meshLink) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.unlinked = append(f.unlinked, link.url)
}

func (f *fakeTunnel) lose(meshURL string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	close(f.lost[meshURL])
}

const testCredential = "test-credential"

// newConnector builds, without running it, a connector with state st
// against m, on a fake tunnel.
func newConnector(tb testing.TB, m *fakeMesh, st State, mod func(*Config)) (*Connector, *fakeTunnel) {
	tb.Helper()
	c, err := New(testConfig(tb, m, st, mod))
	if err != nil {
		tb.Fatal(err)
	}
	ft := &fakeTunnel{lost: map[string]chan struct{}{}}
	c.tun = ft
	return c, ft
}

// testConfig returns the config of a connector with state st against m,
// changed by mod.
func testConfig(tb testing.TB, m *fakeMesh, st State, mod func(*Config)) Config {
	tb.Helper()
	dir := tb.TempDir()
	if _, err := wgkey.LoadOrCreate(filepath.Join(dir, keyFile)); err != nil {
		tb.Fatal(err)
	}
	st.ConnectorID, st.Group, st.Credential = "c-1", "branch", testCredential
	st.CredentialIssued, st.CredentialExpires = time.Now(), time.Now().Add(24*time.Hour)
	if err := st.Save(dir); err != nil {
		tb.Fatal(err)
	}
	cfg := Config{StateDir: dir, HTTPClient: m.client, Reevaluate: time.Hour, BackoffMin: 10 * time.Millisecond,
		BackoffMax: 50 * time.Millisecond, DrainWait: 5 * time.Second}
	var err error
	if cfg.AllowList, err = egress.ParseAllowList([]string{"127.0.0.1"}); err != nil { // the test backends
		tb.Fatal(err)
	}
	if mod != nil {
		mod(&cfg)
	}
	return cfg
}

// startConnector runs a connector with state st against m, on a fake
// tunnel, until the test ends.
func startConnector(tb testing.TB, m *fakeMesh, st State, mod func(*Config)) (*Connector, *fakeTunnel) {
	tb.Helper()
	c, ft := newConnector(tb, m, st, mod)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	tb.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			tb.Errorf("run: got %v, want nil", err)
		}
		c.Close()
	})
	return c, ft
}

// waitFor polls cond until it holds or 10 s pass.
func waitFor(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	testkit.WaitFor(tb, 10*time.Second, what, cond)
}

func waitAttached(tb testing.TB, c *Connector, want ...string) {
	tb.Helper()
	waitFor(tb, "attached to "+cmp.Diff(want, c.AttachedNodes()), func() bool { return slices.Equal(c.AttachedNodes(), want) })
}

// startManager runs c's attachment manager, built without a WireGuard
// node (build), on a fake tunnel against m, until the test ends. Call it
// inside synctest.Test: the manager's timers and the fake nodes' ping
// delays then run on the bubble's clock.
func startManager(t *testing.T, m *fakeMesh, st State, mod func(*Config)) (*Connector, *fakeTunnel) {
	t.Helper()
	c, err := build(testConfig(t, m, st, mod))
	if err != nil {
		t.Fatal(err)
	}
	ft := &fakeTunnel{lost: map[string]chan struct{}{}}
	c.tun = ft
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { c.manage(ctx); close(done) }()
	t.Cleanup(func() {
		cancel()
		<-done
		c.loops.Wait()
		c.own.Close()
	})
	return c, ft
}

// measured returns the RTTs of c's last measurement.
func measured(c *Connector) map[string]time.Duration {
	c.mmu.Lock()
	defer c.mmu.Unlock()
	return maps.Clone(c.rtts)
}

// TestConvergesToNearest starts from the farthest node as the only seed,
// learns the others from its answer, and moves to the two nearest,
// draining and detaching the seed.
func TestConvergesToNearest(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := newFakeMesh(t, 80*time.Millisecond, 0, 40*time.Millisecond)
		a := m.nodes[0]
		c, _ := startManager(t, m, State{MeshURLs: []string{a.url}}, nil)
		testkit.Settle(time.Second) // attach, measure (4 pings of 80ms at most), move, drain
		if got, want := c.AttachedNodes(), []string{"b", "c"}; !slices.Equal(got, want) {
			t.Fatalf("attached: got %v, want %v", got, want)
		}
		if got, want := a.detachCalls(), []bool{true, false}; !slices.Equal(got, want) {
			t.Fatalf("seed detaches: got %v, want %v", got, want)
		}
		if got := measured(c); got[a.url] != 80*time.Millisecond || got[m.nodes[2].url] != 40*time.Millisecond {
			t.Fatalf("measured RTTs: got %v, want exactly the simulated distances", got)
		}
		st, err := LoadState(c.cfg.StateDir)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(m.infos(), st.Nodes); diff != "" {
			t.Fatalf("saved nodes (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff([]string{a.url}, st.MeshURLs); diff != "" {
			t.Fatalf("seeds (-want +got):\n%s", diff)
		}
		for _, n := range m.nodes[1:] {
			if got := n.detachCalls(); len(got) != 0 {
				t.Fatalf("node %s detaches: got %v, want none", n.id, got)
			}
		}
	})
}

// TestKnownNodesMeasuredFirst attaches straight to the k nearest of the
// nodes a previous run learned, never to the farther ones.
func TestKnownNodesMeasuredFirst(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := newFakeMesh(t, 60*time.Millisecond, 30*time.Millisecond, 0)
		c, _ := startManager(t, m, State{MeshURLs: []string{m.nodes[0].url}, Nodes: m.infos()}, func(cfg *Config) { cfg.Attach = 1 })
		testkit.Settle(time.Second)
		if got, want := c.AttachedNodes(), []string{"c"}; !slices.Equal(got, want) {
			t.Fatalf("attached: got %v, want %v", got, want)
		}
		if n := m.nodes[0].attachN.Load() + m.nodes[1].attachN.Load(); n != 0 {
			t.Fatalf("attaches to farther nodes: got %d, want 0", n)
		}
	})
}

// TestLostNodeReplaced loses the nearest node and expects the next
// nearest to take its place at once, without waiting for a
// re-evaluation.
func TestLostNodeReplaced(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := newFakeMesh(t, 0, 30*time.Millisecond, 60*time.Millisecond)
		c, ft := startManager(t, m, State{MeshURLs: []string{m.nodes[0].url}, Nodes: m.infos()}, nil)
		testkit.Settle(time.Second)
		if got, want := c.AttachedNodes(), []string{"a", "b"}; !slices.Equal(got, want) {
			t.Fatalf("attached: got %v, want %v", got, want)
		}
		m.nodes[0].dead.Store(true)
		ft.lose(m.nodes[0].url)
		testkit.Settle(time.Second) // far below the hour of re-evaluation
		if got, want := c.AttachedNodes(), []string{"b", "c"}; !slices.Equal(got, want) {
			t.Fatalf("attached after a loss: got %v, want %v", got, want)
		}
		ft.mu.Lock()
		defer ft.mu.Unlock()
		if !slices.Contains(ft.unlinked, m.nodes[0].url) {
			t.Fatal("the lost node's loop did not stop")
		}
	})
}

// TestReevaluateHysteresis checks the re-evaluation: every Reevaluate
// (±10%) the connector measures again, stays with its node while another
// is nearer by no more than 20% or 5 ms, and moves, at the next
// re-evaluation and not before, once one is clearly nearer.
func TestReevaluateHysteresis(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const every = 10 * time.Minute
		m := newFakeMesh(t, 10*time.Millisecond, 30*time.Millisecond)
		a, b := m.nodes[0], m.nodes[1]
		c, _ := startManager(t, m, State{MeshURLs: []string{a.url}, Nodes: m.infos()},
			func(cfg *Config) { cfg.Attach, cfg.Reevaluate = 1, every })
		testkit.Settle(time.Second)
		if got := c.AttachedNodes(); !slices.Equal(got, []string{"a"}) {
			t.Fatalf("attached: got %v, want [a]", got)
		}
		b.delay.Store(int64(9 * time.Millisecond)) // nearer by 10% and 1 ms: not clearly
		testkit.Settle(3 * every)
		if got := c.AttachedNodes(); !slices.Equal(got, []string{"a"}) || measured(c)[b.url] != 9*time.Millisecond {
			t.Fatalf("after 3 re-evaluations with b barely nearer: attached %v, measured %v; want [a], b at 9ms", got, measured(c))
		}
		// Just after a re-evaluation, b comes clearly nearer.
		for pings, waited := b.pingN.Load(), time.Duration(0); b.pingN.Load() == pings; waited += time.Second {
			if waited > 2*every {
				t.Fatal("no re-evaluation within two intervals")
			}
			testkit.Settle(time.Second)
		}
		// Let that measurement end first: a ping of it answered at the new
		// delay would make this re-evaluation move (3.7% of runs did).
		testkit.Settle(measureTimeout + time.Second)
		b.delay.Store(int64(2 * time.Millisecond))
		testkit.Settle(every * 8 / 10) // before the next, jittered, re-evaluation
		if got := c.AttachedNodes(); !slices.Equal(got, []string{"a"}) {
			t.Fatalf("moved before the re-evaluation: attached %v", got)
		}
		testkit.Settle(every*4/10 + time.Second) // past the latest re-evaluation
		if got := c.AttachedNodes(); !slices.Equal(got, []string{"b"}) {
			t.Fatalf("after the re-evaluation: attached %v, want [b]", got)
		}
		if got, want := a.detachCalls(), []bool{true, false}; !slices.Equal(got, want) {
			t.Fatalf("a's detaches: got %v, want %v (drain, then detach)", got, want)
		}
	})
}

// TestRenewAtTwoThirds checks the credential renewal to the instant: the
// first try exactly two thirds into the credential's life, a retry after
// a failure within the backoff, and the next renewal two thirds into the
// renewed credential's life.
func TestRenewAtTwoThirds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const life = 24 * time.Hour
		m := newFakeMesh(t, 0)
		c, err := build(testConfig(t, m, State{MeshURLs: []string{m.nodes[0].url}}, nil))
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		c.state.CredentialIssued, c.state.CredentialExpires = start, start.Add(life)
		var mu sync.Mutex // guards tries
		var tries []time.Time
		renew := func(context.Context) error {
			mu.Lock()
			tries = append(tries, time.Now())
			n := len(tries)
			mu.Unlock()
			if n == 1 {
				return errors.New("mesh node busy")
			}
			c.mu.Lock()
			c.state.CredentialIssued, c.state.CredentialExpires = time.Now(), time.Now().Add(life)
			c.mu.Unlock()
			return nil
		}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan struct{})
		go func() { c.renewLoop(ctx, renew); close(done) }()
		defer func() { cancel(); <-done; c.own.Close() }()
		got := func() []time.Time { mu.Lock(); defer mu.Unlock(); return slices.Clone(tries) }
		due := start.Add(life * 2 / 3)
		testkit.Settle(time.Until(due) - time.Nanosecond)
		if len(got()) != 0 {
			t.Fatalf("renewed at %v, before two thirds of the life", got()[0].Sub(start))
		}
		testkit.Settle(time.Nanosecond)
		if len(got()) != 1 || !got()[0].Equal(due) {
			t.Fatalf("tries: %v, want one at %v", got(), due)
		}
		testkit.Settle(c.cfg.BackoffMin)
		if len(got()) != 2 {
			t.Fatalf("tries after a failure and BackoffMin: %d, want 2", len(got()))
		}
		if d := got()[1].Sub(got()[0]); d < c.cfg.BackoffMin/2 || d > c.cfg.BackoffMin {
			t.Fatalf("retry after %v, want within [%v, %v]", d, c.cfg.BackoffMin/2, c.cfg.BackoffMin)
		}
		next := got()[1].Add(life * 2 / 3)
		testkit.Settle(time.Until(next) - time.Nanosecond)
		if len(got()) != 2 {
			t.Fatalf("renewed again %v after the renewal, before two thirds of the new life", got()[2].Sub(got()[1]))
		}
		testkit.Settle(time.Nanosecond)
		if len(got()) != 3 || !got()[2].Equal(next) {
			t.Fatalf("tries: %v, want the third at %v", got(), next)
		}
	})
}

// TestDrain announces the drain to every node, waits for the request in
// flight, then detaches, and does not attach again.
func TestDrain(t *testing.T) {
	m := newFakeMesh(t, 0, 20*time.Millisecond, 200*time.Millisecond)
	c, _ := startConnector(t, m, State{MeshURLs: []string{m.nodes[0].url}, Nodes: m.infos()}, nil)
	waitAttached(t, c, "a", "b")

	release := make(chan struct{})
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-release
		io.WriteString(w, "done")
	}))
	t.Cleanup(backend.Close)
	served := make(chan int, 1)
	go func() {
		req := httptest.NewRequest(http.MethodGet, "/", nil)
		req.Header.Set(tunnelhttp.HeaderTarget, backend.URL)
		rec := httptest.NewRecorder()
		c.egress.ServeHTTP(rec, req)
		served <- rec.Code
	}()
	waitFor(t, "request in flight", func() bool { return c.egress.InFlight() == 1 })
	if got := probeCode(c, "/readyz"); got != http.StatusOK {
		t.Fatalf("/readyz while attached: got %d, want 200", got)
	}

	drained := make(chan error, 1)
	go func() { drained <- c.Drain(t.Context()) }()
	for _, n := range m.nodes[:2] {
		waitFor(t, "drain announced to "+n.id, func() bool { return len(n.detachCalls()) >= 1 })
	}
	// Draining: no longer ready (no new requests), still alive.
	if got := probeCode(c, "/readyz"); got != http.StatusServiceUnavailable {
		t.Fatalf("/readyz while draining: got %d, want 503", got)
	}
	if got := probeCode(c, "/healthz"); got != http.StatusOK {
		t.Fatalf("/healthz while draining with links: got %d, want 200", got)
	}
	for _, n := range m.nodes[:2] {
		if got, want := n.detachCalls(), []bool{true}; !slices.Equal(got, want) {
			t.Fatalf("node %s detaches with a request in flight: got %v, want %v", n.id, got, want)
		}
	}
	close(release)
	if code := <-served; code != http.StatusOK {
		t.Fatalf("request in flight: got %d, want 200", code)
	}
	if err := <-drained; err != nil {
		t.Fatalf("drain: got %v, want nil", err)
	}
	for _, n := range m.nodes[:2] {
		if got, want := n.detachCalls(), []bool{true, false}; !slices.Equal(got, want) {
			t.Fatalf("node %s detaches: got %v, want %v", n.id, got, want)
		}
	}
	if got := c.AttachedNodes(); len(got) != 0 {
		t.Fatalf("attached after drain: got %v, want none", got)
	}
	attaches := m.nodes[0].attachN.Load() + m.nodes[1].attachN.Load() + m.nodes[2].attachN.Load()
	c.kickManager()
	c.reconcile(t.Context())
	if got := m.nodes[0].attachN.Load() + m.nodes[1].attachN.Load() + m.nodes[2].attachN.Load(); got != attaches {
		t.Fatalf("attaches after drain: got %d, want %d", got, attaches)
	}
}

// probeCode is the status of GET path on c's admin handler.
func probeCode(c *Connector, path string) int {
	rec := httptest.NewRecorder()
	c.healthHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	return rec.Code
}

// TestDrainTimeout returns an error naming the requests still in flight
// when ctx ends first, and detaches anyway.
func TestDrainTimeout(t *testing.T) {
	m := newFakeMesh(t, 0)
	c, _ := startConnector(t, m, State{MeshURLs: []string{m.nodes[0].url}}, nil)
	waitAttached(t, c, "a")
	c.egress.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/", nil)) // no target: done at once
	release := make(chan struct{})
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-release }))
	t.Cleanup(backend.Close)
	t.Cleanup(func() { close(release) })
	go func() {
		req := httptest.NewRequest(http.MethodGet, "/", nil)
		req.Header.Set(tunnelhttp.HeaderTarget, backend.URL)
		c.egress.ServeHTTP(httptest.NewRecorder(), req)
	}()
	waitFor(t, "request in flight", func() bool { return c.egress.InFlight() == 1 })
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	if err := c.Drain(ctx); err == nil {
		t.Fatal("drain with a request stuck: got nil, want an error")
	}
	if got, want := m.nodes[0].detachCalls(), []bool{true, false}; !slices.Equal(got, want) {
		t.Fatalf("detaches: got %v, want %v", got, want)
	}
}

func TestRefusesToRunWithoutAllowList(t *testing.T) {
	_, err := New(Config{StateDir: t.TempDir()})
	if err == nil || !strings.Contains(err.Error(), "--allow-any") {
		t.Fatalf("got %v, want a refusal naming --allow-any", err)
	}
}
