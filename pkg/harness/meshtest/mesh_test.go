package meshtest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/postern/postern/pkg/enroll"
	"github.com/postern/postern/pkg/harness"
	"github.com/postern/postern/pkg/meshnode"
	"github.com/postern/postern/pkg/simnet"
	"github.com/postern/postern/pkg/wgkey"
)

const (
	east = "us-east-1"
	west = "eu-west-1"
	asia = "ap-southeast-1"
)

// waitConverged waits until the mesh has converged (harness.WaitConverged),
// with harness.Patience as a hang guard only. A connector that measured a
// node slow or unreachable while the machine was busy keeps that
// measurement until its next one (every 30 s in the harness, 10 s after an
// unreachable node), so on a loaded machine convergence may take minutes
// (a fixed budget failed the test: 30 s, later 90 s). Every 30 s it logs
// what is still missing, so a slow convergence says why.
func waitConverged(t testing.TB, h *harness.Harness) {
	t.Helper()
	start := time.Now()
	for {
		err := h.WaitConverged(t.Context(), 30*time.Second)
		if err == nil {
			return
		}
		if time.Since(start) >= harness.Patience || t.Context().Err() != nil {
			t.Fatalf("after %v: %v", time.Since(start).Round(time.Second), err)
		}
		t.Logf("not converged after %v: %v", time.Since(start).Round(time.Second), err)
	}
}

// threeRegions starts 3 regions × 2 nodes; group "east" has two connectors
// in us-east-1, group "asia" one in ap-southeast-1, and group "shared" one
// in each of us-east-1 and ap-southeast-1 (so the route has a real choice).
func threeRegions(t testing.TB, mod func(*harness.Topology)) (*harness.Harness, *simnet.Network) {
	t.Helper()
	net := simnet.NewNetwork(simnet.DefaultMatrix(), uint64(time.Now().UnixNano()))
	top := &harness.Topology{
		Net: net,
		Nodes: []harness.NodeSpec{{ID: "use1-a", Region: east}, {ID: "use1-b", Region: east}, {ID: "euw1-a", Region: west},
			{ID: "euw1-b", Region: west}, {ID: "apse1-a", Region: asia}, {ID: "apse1-b", Region: asia}},
		Groups: []harness.GroupSpec{{ID: "east", Region: east}, {ID: "asia", Region: asia}, {ID: "shared"}},
		Connectors: []harness.ConnectorSpec{{Group: "east", Region: east}, {Group: "east", Region: east}, {Group: "asia", Region: asia},
			{Group: "shared", Region: east}, {Group: "shared", Region: asia}},
	}
	if mod != nil {
		mod(top)
	}
	start := time.Now()
	opts := harness.Options{Topology: top}
	if os.Getenv("POSTERN_TEST_LOG") != "" {
		opts.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	h, err := harness.Start(t.Context(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	waitConverged(t, h)
	t.Logf("converged %s after start", time.Since(start).Round(time.Millisecond))
	return h, net
}

func TestRouteWithinTenPercentOfOptimum(t *testing.T) {
	h, net := threeRegions(t, nil)
	m := net.Matrix()
	regionOf := map[string]string{}
	for i, mm := range h.Meshes() {
		regionOf[mm.ID] = h.RegionOf(i)
	}
	trials, good := 0, 0
	for round := 0; round < 30; round++ {
		for i, mm := range h.Meshes() {
			for _, g := range []string{"east", "asia", "shared"} {
				ex, err := mm.Node.Explain("app-" + g)
				if err != nil {
					t.Fatal(err)
				}
				from := h.RegionOf(i)
				// The optimum over every node a connector of the group is
				// attached to, from the matrix alone.
				opt, ok := harness.OptimalRTT(m, mm.ID, from, h.Attachments(g))
				if !ok {
					opt = 1 << 62 // nothing attached: no chosen path to judge
				}
				ok = true
				for _, p := range ex.Paths {
					if !p.Chosen {
						continue
					}
					via := regionOf[p.Via]
					if p.Via == "local" {
						via = from
					}
					if c := harness.PathRTT(m, from, via, h.ConnectorRegion(p.Connector), p.Via == "local"); !nearOptimum(c, opt) {
						ok = false
						t.Logf("round %d: %s → %s chose via %s to %s (true %v, optimum %v; estimated %.1f ms, node RTT from %s: measured %.1f ms, coordinates %.1f ms; connector %.1f ms)",
							round, mm.ID, g, p.Via, p.Connector, c, opt, p.RTTMs, p.RTTSource, p.MeasuredRTTMs, p.CoordRTTMs, p.ConnectorRTTMs)
					}
				}
				trials++
				if ok {
					good++
				}
			}
		}
		time.Sleep(100 * time.Millisecond) // sample the decisions as they are rebuilt
	}
	t.Logf("%d of %d trials within 10%% of the optimum", good, trials)
	if float64(good) < 0.95*float64(trials) {
		t.Errorf("got %d of %d trials within 10%% of the optimum, want at least 95%%", good, trials)
	}
	// And the traffic really flows: a user in eu-west-1 reaches both apps.
	euw := h.MeshIndex("euw1-a")
	for _, g := range []string{"east", "asia"} {
		get(t, h.UserClient(euw), h.GroupURL(euw, g, "/"), http.StatusOK)
	}
}

// noiseFloor is how far a path's measured cost may stray from the truth
// on a loaded 2-core machine: the RTTs are measured through userspace
// WireGuard and netstack, so CPU scheduling delay adds up to a few
// milliseconds. Within a region the simulated paths differ by 1 ms, less
// than that noise; between regions they differ by tens of milliseconds.
const noiseFloor = 2 * time.Millisecond

// nearOptimum reports whether a path of true cost c is within 10% of the
// optimum opt, or within the measurement noise floor of it (a 2 ms path
// where 1 ms was possible is not a wrong route).
func nearOptimum(c, opt time.Duration) bool {
	return float64(c) <= 1.1*float64(opt) || c-opt <= noiseFloor
}

func get(t testing.TB, c *http.Client, url string, want int) {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != want {
		t.Fatalf("GET %s: got %d, want %d", url, resp.StatusCode, want)
	}
}

// load sends GETs from a user at node i to group's app until stop is
// called, and records when each request finished and whether it succeeded.
type load struct {
	mu      sync.Mutex
	results []result
	stop    context.CancelFunc
	done    sync.WaitGroup
	n       atomic.Int64
}

type result struct {
	at time.Time
	ok bool
}

func startLoad(t testing.TB, h *harness.Harness, i int, group string, workers int) *load {
	ctx, cancel := context.WithCancel(t.Context())
	l := &load{stop: cancel}
	c := h.UserClient(i)
	url := h.GroupURL(i, group, "/")
	for range workers {
		l.done.Add(1)
		go func() {
			defer l.done.Done()
			for ctx.Err() == nil {
				// A slow answer (a loaded machine) is no failure: the
				// outage measures the gaps; Patience only guards a hang.
				rctx, rcancel := context.WithTimeout(ctx, harness.Patience)
				req, _ := http.NewRequestWithContext(rctx, "GET", url, nil)
				resp, err := c.Do(req)
				ok := err == nil && resp.StatusCode == http.StatusOK
				if err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
				rcancel()
				if ctx.Err() != nil {
					return
				}
				l.n.Add(1)
				l.mu.Lock()
				l.results = append(l.results, result{time.Now(), ok})
				l.mu.Unlock()
				if !ok {
					time.Sleep(20 * time.Millisecond)
				}
			}
		}()
	}
	return l
}

func (l *load) finish() []result {
	l.stop()
	l.done.Wait()
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.results
}

// outage returns the longest time after since without a successful
// request, and the number of failures.
func outage(rs []result, since time.Time) (time.Duration, int) {
	last, worst, failed := since, time.Duration(0), 0
	for _, r := range rs {
		if r.at.Before(since) {
			continue
		}
		if !r.ok {
			failed++
			continue
		}
		worst = max(worst, r.at.Sub(last))
		last = r.at
	}
	return worst, failed
}

func waitRequests(t testing.TB, l *load, n int64) {
	t.Helper()
	if err := harness.WaitFor(t.Context(), harness.Patience, func() bool { return l.n.Load() >= n }); err != nil {
		t.Fatalf("load made %d requests, want %d", l.n.Load(), n)
	}
}

func TestKillNodeRecoversWithinTwoSeconds(t *testing.T) {
	h, _ := threeRegions(t, nil)
	euw := h.MeshIndex("euw1-a")
	l := startLoad(t, h, euw, "east", 4)
	waitRequests(t, l, 20)
	ex, _ := h.Meshes()[euw].Node.Explain("app-east")
	victim := ex.Paths[0].Via
	killed := time.Now()
	h.KillMesh(h.MeshIndex(victim))
	t.Logf("killed %s, the first path of euw1-a → east", victim)
	// Watch, from euw1-a, when the route through the victim is withdrawn
	// and when the gossip declares it dead.
	var withdrawn, dead time.Duration
	watch := make(chan struct{})
	go func() {
		defer close(watch)
		node := h.Meshes()[euw].Node
		for time.Since(killed) < harness.Patience && t.Context().Err() == nil && (withdrawn == 0 || dead == 0) {
			if withdrawn == 0 && !eligibleVia(node, "app-east", victim) {
				withdrawn = time.Since(killed)
			}
			if dead == 0 && stateOf(node, victim) == "dead" {
				dead = time.Since(killed)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}()
	before := l.n.Load()
	waitRequests(t, l, before+40)
	rs := l.finish()
	<-watch
	gap, failed := outage(rs, killed)
	t.Logf("longest gap without success after the kill: %v; failed requests: %d", gap.Round(time.Millisecond), failed)
	t.Logf("route through %s withdrawn after %v; gossip declared it dead after %v", victim, withdrawn.Round(time.Millisecond), dead.Round(time.Millisecond))
	if gap > 2*time.Second {
		t.Errorf("got a %v gap without a successful request, want at most 2s", gap)
	}
	if withdrawn == 0 || withdrawn > 2*time.Second {
		t.Errorf("route through the dead node withdrawn after %v, want within 2s", withdrawn)
	}
	if dead == 0 {
		t.Errorf("gossip did not declare %s dead", victim)
	}
	// The connectors that were attached to it move to their next-nearest
	// node by themselves.
	reattach := time.Now()
	waitConverged(t, h)
	t.Logf("connectors re-attached and routes rebuilt %v after the checks", time.Since(reattach).Round(time.Millisecond))
}

func eligibleVia(n *meshnode.Node, app, via string) bool {
	ex, _ := n.Explain(app)
	for _, p := range ex.Paths {
		if p.Via == via && p.Eligible {
			return true
		}
	}
	return false
}

func stateOf(n *meshnode.Node, id string) string {
	for _, m := range n.Status().Mesh.Nodes {
		if m.ID == id {
			return m.State
		}
	}
	return "gone"
}

func TestKillConnectorFailsOver(t *testing.T) {
	h, _ := threeRegions(t, nil)
	euw := h.MeshIndex("euw1-a")
	l := startLoad(t, h, euw, "east", 4)
	waitRequests(t, l, 20)
	killed := time.Now()
	h.KillConnector(0)
	before := l.n.Load()
	waitRequests(t, l, before+40)
	rs := l.finish()
	gap, failed := outage(rs, killed)
	t.Logf("connector killed: longest gap %v, failed requests %d", gap.Round(time.Millisecond), failed)
	if failed > 0 {
		t.Errorf("got %d failed requests, want 0 (GETs are retried on the other connector)", failed)
	}
}

func TestDrainNodeLosesNothing(t *testing.T) {
	h, _ := threeRegions(t, nil)
	euw := h.MeshIndex("euw1-a")
	l := startLoad(t, h, euw, "east", 4)
	waitRequests(t, l, 20)
	ex, _ := h.Meshes()[euw].Node.Explain("app-east")
	victim := h.MeshIndex(ex.Paths[0].Via)
	stopped := time.Now()
	h.StopMesh(victim)
	before := l.n.Load()
	waitRequests(t, l, before+40)
	rs := l.finish()
	gap, failed := outage(rs, stopped)
	t.Logf("graceful stop of %s: longest gap %v, failed %d", ex.Paths[0].Via, gap.Round(time.Millisecond), failed)
	if failed > 0 {
		t.Errorf("got %d failed requests during a drain, want 0", failed)
	}
}

func TestPartitionAndHeal(t *testing.T) {
	h, net := threeRegions(t, nil)
	euw, use := h.MeshIndex("euw1-a"), h.MeshIndex("use1-a")
	net.Partition([]string{east}, []string{west, asia})
	// Each side keeps serving what it can reach: us-east serves east
	// locally, eu-west still reaches asia, and eu-west answers 503 for
	// east once the routes through us-east are withdrawn.
	err := harness.WaitFor(t.Context(), harness.Patience, func() bool {
		resp, err := h.UserClient(euw).Get(h.GroupURL(euw, "east", "/"))
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusServiceUnavailable
	})
	if err != nil {
		t.Fatal("eu-west did not withdraw the routes to east after the partition")
	}
	get(t, h.UserClient(use), h.GroupURL(use, "east", "/"), http.StatusOK)
	get(t, h.UserClient(euw), h.GroupURL(euw, "asia", "/"), http.StatusOK)
	healed := time.Now()
	net.Heal()
	waitConverged(t, h)
	t.Logf("healed and converged in %v without operator action", time.Since(healed).Round(time.Millisecond))
	get(t, h.UserClient(euw), h.GroupURL(euw, "east", "/"), http.StatusOK)
	get(t, h.UserClient(use), h.GroupURL(use, "asia", "/"), http.StatusOK)
}

func TestExplainText(t *testing.T) {
	h, _ := threeRegions(t, nil)
	ex, err := h.Meshes()[h.MeshIndex("euw1-a")].Node.Explain("app-asia")
	if err != nil {
		t.Fatal(err)
	}
	var b stringsBuilder
	if err := meshnode.WriteExplain(&b, ex); err != nil {
		t.Fatal(err)
	}
	t.Logf("\n%s", b.String())
	if ex.Paths[0].Via != "apse1-a" && ex.Paths[0].Via != "apse1-b" || !ex.Paths[0].Chosen {
		t.Errorf("got first path %+v, want a chosen relay through ap-southeast-1", ex.Paths[0])
	}
	if _, err := h.Meshes()[0].Node.Explain("nope"); err == nil {
		t.Error("got nil error explaining an unknown app")
	}
}

type stringsBuilder struct{ b []byte }

func (s *stringsBuilder) Write(p []byte) (int, error) { s.b = append(s.b, p...); return len(p), nil }
func (s *stringsBuilder) String() string              { return string(s.b) }

var _ = fmt.Sprint

func TestRelayRefusesConnectorsAndReportsMetrics(t *testing.T) {
	h, _ := threeRegions(t, nil)
	euw := h.MeshIndex("euw1-a")
	get(t, h.UserClient(euw), h.GroupURL(euw, "asia", "/hello"), http.StatusOK)
	// A connector is a WireGuard peer of the node too, but it must not be
	// able to use the relay: it would forge identity headers.
	asiaNode := h.Meshes()[h.MeshIndex("apse1-a")]
	c := h.Connectors()[2] // the asia connector, attached to apse1-a
	hc := &http.Client{Transport: &http.Transport{DialContext: c.C.Node().DialContext}, Timeout: 10 * time.Second}
	req, _ := http.NewRequest("GET", "http://["+asiaNode.Node.WireGuard().Addr().String()+"]:80/hello", nil)
	req.Header.Set("Postern-App", "app-asia")
	req.Header.Set("X-Postern-User", "forged")
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("relay request from a connector: got %d, want 403", resp.StatusCode)
	}
	rec := httptest.NewRecorder()
	h.Meshes()[euw].Node.AdminHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	for _, want := range []string{`postern_mesh_route_choices_total{kind="relay"}`, `postern_mesh_tunnel_peers{kind="mesh"} 5`,
		`postern_gossip_members{state="alive"} 6`} {
		if !strings.Contains(rec.Body.String(), want) {
			t.Errorf("euw1-a metrics lack %s", want)
		}
	}
	rec = httptest.NewRecorder()
	asiaNode.Node.AdminHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	for _, want := range []string{`postern_mesh_relays_served_total`, `postern_mesh_relays_refused_total 1`} {
		if !strings.Contains(rec.Body.String(), want) {
			t.Errorf("apse1-a metrics lack %s", want)
		}
	}
	rec = httptest.NewRecorder()
	h.Meshes()[euw].Node.AdminHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/routes/explain?app=nope", nil))
	if rec.Code != http.StatusNotFound {
		t.Errorf("explain of an unknown app: got %d, want 404", rec.Code)
	}
}

func TestUsedTokenSpreadsThroughTheMesh(t *testing.T) {
	h, _ := threeRegions(t, nil)
	tok, _, err := h.Authority.MintEnrollToken("east", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	key, _ := wgkey.Generate()
	first := &enroll.Client{BaseURL: h.Meshes()[h.MeshIndex("use1-a")].URL, HTTPClient: h.APIClient()}
	if _, err := first.Enroll(t.Context(), tok, key, "one"); err != nil {
		t.Fatal(err)
	}
	// The same token at a node on the other side of the world is refused
	// once the used id has spread.
	other := &enroll.Client{BaseURL: h.Meshes()[h.MeshIndex("apse1-b")].URL, HTTPClient: h.APIClient()}
	var lastErr error
	err = harness.WaitFor(t.Context(), harness.Patience, func() bool {
		key2, _ := wgkey.Generate()
		_, lastErr = other.Enroll(t.Context(), tok, key2, "two")
		var apiErr *enroll.APIError
		return errors.As(lastErr, &apiErr) && apiErr.Code == enroll.CodeTokenAlreadyUsed
	})
	if err != nil {
		t.Fatalf("apse1-b still accepts a token used at use1-a: last answer %v", lastErr)
	}
	// The enrollee whose answer was lost (say, to a timeout) retries with
	// the same key, at any node: the same redemption, accepted again.
	if _, err := other.Enroll(t.Context(), tok, key, "one"); err != nil {
		t.Fatalf("a retry of the winning redemption (same key) at apse1-b: %v", err)
	}
}

func TestConnectorDrainLosesNothing(t *testing.T) {
	h, _ := threeRegions(t, nil)
	euw := h.MeshIndex("euw1-a")
	l := startLoad(t, h, euw, "east", 4)
	waitRequests(t, l, 20)
	start := time.Now()
	ctx, cancel := context.WithTimeout(t.Context(), harness.Patience)
	defer cancel()
	if err := h.Connectors()[0].C.Drain(ctx); err != nil {
		t.Fatalf("drain: %v", err)
	}
	t.Logf("connector 0 drained in %v", time.Since(start).Round(time.Millisecond))
	before := l.n.Load()
	waitRequests(t, l, before+20)
	rs := l.finish()
	if _, failed := outage(rs, start); failed > 0 {
		t.Errorf("got %d failed requests while a connector drained, want 0", failed)
	}
	for _, m := range h.Meshes() {
		for _, c := range m.Node.Status().Connectors {
			if c.ID == h.Connectors()[0].C.ID() {
				t.Errorf("%s still holds the drained connector %s", m.ID, c.ID)
			}
		}
	}
}

func TestPinnedGroupStaysInItsRegion(t *testing.T) {
	h, _ := threeRegions(t, func(top *harness.Topology) {
		top.Groups[2] = harness.GroupSpec{ID: "shared", Region: asia, Pin: true}
	})
	// The us-east-1 connector of the pinned group may attach only in
	// ap-southeast-1, and every node routes the group there, although
	// us-east-1 would be nearer for eu-west-1.
	for _, c := range h.Connectors()[3:] {
		for _, id := range c.C.AttachedNodes() {
			if !strings.HasPrefix(id, "apse1-") {
				t.Errorf("connector %s of the pinned group attached to %s", c.C.ID(), id)
			}
		}
	}
	for _, m := range h.Meshes() {
		ex, err := m.Node.Explain("app-shared")
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range ex.Paths {
			if p.Chosen && p.Region != asia {
				t.Errorf("%s routes the pinned group via %s in %s", m.ID, p.Via, p.Region)
			}
		}
	}
}
