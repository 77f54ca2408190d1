package connector

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/postern/postern/pkg/egress"
	"github.com/postern/postern/pkg/enroll"
	"github.com/postern/postern/pkg/testkit"
	"github.com/postern/postern/pkg/tunnelhttp"
	"github.com/postern/postern/pkg/wgkey"
)

// fakeMesh is a set of fake mesh nodes speaking the enroll API over TLS.
type fakeMesh struct {
	nodes  []*fakeNode
	client *http.Client
}

// fakeNode is one fake mesh node: it answers attach with every node of
// its mesh, delays pings by delay, and records detaches.
type fakeNode struct {
	id      string
	pub     wgkey.Public
	ts      *httptest.Server
	mesh    *fakeMesh
	delay   atomic.Int64 // ping delay, ns
	dead    atomic.Bool  // answers 503 to everything
	attachN atomic.Int32

	mu       sync.Mutex // guards the following
	detaches []bool
}

func newFakeMesh(tb testing.TB, delays ...time.Duration) *fakeMesh {
	tb.Helper()
	m := &fakeMesh{}
	pool := x509.NewCertPool()
	for i, d := range delays {
		n := &fakeNode{id: string(rune('a' + i)), pub: newPub(tb), mesh: m}
		n.delay.Store(int64(d))
		n.ts = httptest.NewTLSServer(n)
		tb.Cleanup(n.ts.Close)
		pool.AddCert(n.ts.Certificate())
		m.nodes = append(m.nodes, n)
	}
	m.client = m.nodes[0].ts.Client()
	return m
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
		out = append(out, enroll.NodeInfo{ID: n.id, Region: "r-" + n.id, URL: n.ts.URL})
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
		time.Sleep(time.Duration(n.delay.Load())) // simulated distance
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

// startConnector runs a connector with state st against m, on a fake
// tunnel, until the test ends.
func startConnector(tb testing.TB, m *fakeMesh, st State, mod func(*Config)) (*Connector, *fakeTunnel) {
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
	c, err := New(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	ft := &fakeTunnel{lost: map[string]chan struct{}{}}
	c.tun = ft
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

// TestConvergesToNearest starts from the farthest node as the only seed,
// learns the others from its answer, and moves to the two nearest,
// draining and detaching the seed.
func TestConvergesToNearest(t *testing.T) {
	m := newFakeMesh(t, 80*time.Millisecond, 0, 40*time.Millisecond)
	a := m.nodes[0]
	c, _ := startConnector(t, m, State{MeshURLs: []string{a.ts.URL}}, nil)
	waitAttached(t, c, "b", "c")
	waitFor(t, "seed detached", func() bool { return len(a.detachCalls()) == 2 })
	if got, want := a.detachCalls(), []bool{true, false}; !slices.Equal(got, want) {
		t.Fatalf("seed detaches: got %v, want %v", got, want)
	}
	st, err := LoadState(c.cfg.StateDir)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(m.infos(), st.Nodes); diff != "" {
		t.Fatalf("saved nodes (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{a.ts.URL}, st.MeshURLs); diff != "" {
		t.Fatalf("seeds (-want +got):\n%s", diff)
	}
	for _, n := range m.nodes[1:] {
		if got := n.detachCalls(); len(got) != 0 {
			t.Fatalf("node %s detaches: got %v, want none", n.id, got)
		}
	}
}

// TestKnownNodesMeasuredFirst attaches straight to the k nearest of the
// nodes a previous run learned, never to the farther ones.
func TestKnownNodesMeasuredFirst(t *testing.T) {
	m := newFakeMesh(t, 60*time.Millisecond, 30*time.Millisecond, 0)
	c, _ := startConnector(t, m, State{MeshURLs: []string{m.nodes[0].ts.URL}, Nodes: m.infos()}, func(cfg *Config) { cfg.Attach = 1 })
	waitAttached(t, c, "c")
	if n := m.nodes[0].attachN.Load() + m.nodes[1].attachN.Load(); n != 0 {
		t.Fatalf("attaches to farther nodes: got %d, want 0", n)
	}
}

// TestLostNodeReplaced loses the nearest node and expects the next
// nearest to take its place at once.
func TestLostNodeReplaced(t *testing.T) {
	m := newFakeMesh(t, 0, 30*time.Millisecond, 60*time.Millisecond)
	c, ft := startConnector(t, m, State{MeshURLs: []string{m.nodes[0].ts.URL}, Nodes: m.infos()}, nil)
	waitAttached(t, c, "a", "b")
	m.nodes[0].dead.Store(true)
	ft.lose(m.nodes[0].ts.URL)
	waitAttached(t, c, "b", "c")
	waitFor(t, "lost node's loop stopped", func() bool {
		ft.mu.Lock()
		defer ft.mu.Unlock()
		return slices.Contains(ft.unlinked, m.nodes[0].ts.URL)
	})
}

// TestDrain announces the drain to every node, waits for the request in
// flight, then detaches, and does not attach again.
func TestDrain(t *testing.T) {
	m := newFakeMesh(t, 0, 20*time.Millisecond, 200*time.Millisecond)
	c, _ := startConnector(t, m, State{MeshURLs: []string{m.nodes[0].ts.URL}, Nodes: m.infos()}, nil)
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
	c, _ := startConnector(t, m, State{MeshURLs: []string{m.nodes[0].ts.URL}}, nil)
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
