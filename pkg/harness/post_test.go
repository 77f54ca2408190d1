package harness

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/postern/postern/pkg/sampleapp"
	"github.com/postern/postern/pkg/simnet"
)

// soakSizes are the request body sizes of the POST soak: below, at and
// above the 2 KiB and 4 KiB buffers of net/http and the 64 KiB buffers of
// the proxies' transports.
var soakSizes = []int{100, 4 << 10, 16 << 10, 64 << 10}

// soakResult counts the outcomes of a POST soak.
type soakResult struct {
	ok     atomic.Int64
	failed atomic.Int64
	mu     sync.Mutex
	kinds  map[string]int // failure kind → count
}

func (r *soakResult) fail(kind string) {
	r.failed.Add(1)
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.kinds == nil {
		r.kinds = map[string]int{}
	}
	r.kinds[kind]++
}

func (r *soakResult) String() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	kinds := make([]string, 0, len(r.kinds))
	for k, n := range r.kinds {
		kinds = append(kinds, fmt.Sprintf("%d× %s", n, k))
	}
	sort.Strings(kinds)
	return fmt.Sprintf("%d ok, %d failed %v", r.ok.Load(), r.failed.Load(), kinds)
}

// postSoak sends n POSTs to url's /echo from workers goroutines, each with
// a body of the next of soakSizes, half of the workers over HTTP/1.1 and
// half over HTTP/2, and checks that every answer is a 200 carrying the
// whole body back.
func postSoak(tb testing.TB, transport func() *http.Transport, url string, n int64, workers int) *soakResult {
	tb.Helper()
	bodies := make([][]byte, len(soakSizes))
	for i, size := range soakSizes {
		bodies[i], _ = io.ReadAll(sampleapp.Stream(uint64(i+1), int64(size)))
	}
	res := &soakResult{}
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := range workers {
		t := transport()
		t.ForceAttemptHTTP2 = w%2 == 1
		c := &http.Client{Transport: t}
		wg.Go(func() {
			defer t.CloseIdleConnections()
			for {
				i := next.Add(1) - 1
				if i >= n || tb.Context().Err() != nil {
					return
				}
				body := bodies[i%int64(len(bodies))]
				if kind := postEcho(tb.Context(), c, url, body); kind != "" {
					res.fail(kind)
					continue
				}
				res.ok.Add(1)
			}
		})
	}
	wg.Wait()
	return res
}

// postEcho POSTs body to /echo and returns what went wrong, or "".
func postEcho(ctx context.Context, c *http.Client, url string, body []byte) string {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	began := time.Now()
	resp, err := c.Do(req)
	if err != nil {
		return fmt.Sprintf("request (after %v): %v", time.Since(began).Round(time.Second), err)
	}
	defer resp.Body.Close()
	headers := time.Since(began)
	got, err := io.ReadAll(resp.Body)
	switch {
	case resp.StatusCode != http.StatusOK:
		return fmt.Sprintf("status %d (%d-byte body)", resp.StatusCode, len(body))
	case err != nil:
		// When the stall was, before the answer began or in its body,
		// tells a slow path from a stuck stream.
		return fmt.Sprintf("200 cut after %d of %d bytes (headers after %v, cut after %v): %v", len(got), len(body),
			headers.Round(time.Millisecond), time.Since(began).Round(time.Millisecond), err)
	case !bytes.Equal(got, body):
		return fmt.Sprintf("200 with a wrong body: %d bytes for %d", len(got), len(body))
	}
	return ""
}

// The sizes of the POST soaks. Through the tunnel, 20,000 (the issue's
// bar; 30–50 s on a lightly loaded 2-core machine, 115–150 s at load 20).
// Through the relay, 2,000 in the default run, which 18,000 more would
// lengthen by as much again, and 20,000 under task soak (the soak tag).
// Under the race detector, 2,000 each: it runs the soaks for their data
// races, not their counts. Until the tunnel's TCP used Reno (issue 14),
// about one POST in 20,000–30,000 hung until its deadline under heavy
// load: gVisor's CUBIC had taken a stream's congestion window to zero.
var (
	tunnelSoakRequests = map[bool]int64{false: 20_000, true: 2_000}[raceDetector]
	relaySoakRequests  = map[bool]int64{false: 2_000, true: 20_000}[soakTag && !raceDetector]
)

// TestPOSTSoakThroughTunnel sends POSTs with bodies of several sizes to a
// backend that answers with the body, and wants every one back whole.
func TestPOSTSoakThroughTunnel(t *testing.T) {
	h := start(t, Options{Connectors: 2})
	began := time.Now()
	res := postSoak(t, func() *http.Transport { return h.MeshTransport(0) }, h.AppURL(0, "/echo"), tunnelSoakRequests, 16)
	t.Logf("tunnel: %v in %v", res, time.Since(began).Round(time.Millisecond))
	if res.failed.Load() != 0 || res.ok.Load() != tunnelSoakRequests {
		t.Fatalf("POST soak through the tunnel: %v, want %d ok", res, tunnelSoakRequests)
	}
}

// TestRelayDuplex runs the full-duplex exchange through a relay (user →
// node A → node B → connector).
func TestRelayDuplex(t *testing.T) {
	h := startRelay(t, 0)
	tr := h.MeshTransport(0)
	defer tr.CloseIdleConnections()
	duplexExchange(t, &http.Client{Transport: tr}, h.GroupURL(0, RelayGroup, "/echo?duplex=1"), 8, 40<<10)
}

// TestRelayPOSTSoak runs the POST soak through a relay (user → node A →
// node B → connector) and wants every body back whole.
func TestRelayPOSTSoak(t *testing.T) {
	h := startRelay(t, 0)
	began := time.Now()
	res := postSoak(t, func() *http.Transport { return h.MeshTransport(0) }, h.GroupURL(0, RelayGroup, "/echo"), relaySoakRequests, 16)
	t.Logf("relay: %v in %v", res, time.Since(began).Round(time.Millisecond))
	if res.failed.Load() != 0 || res.ok.Load() != relaySoakRequests {
		t.Fatalf("POST soak through the relay: %v, want %d ok", res, relaySoakRequests)
	}
}

// startRelay starts the relay system, its nodes with drain delay delay,
// and waits until node A relays through node B.
func startRelay(t *testing.T, delay time.Duration) *Harness {
	t.Helper()
	h := start(t, Options{Topology: RelayTopology(simnet.NewNetwork(ZeroMatrix(), 1)), DrainDelay: delay})
	if err := h.WaitConverged(t.Context(), 30*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := h.CheckRelay(); err != nil {
		t.Fatal(err)
	}
	return h
}

// TestRelayRestartAndDrain restarts node A of the relay system and checks
// that it turns ready only when it can serve; then drains node B, the only
// path, and checks that node A keeps using it until it goes.
func TestRelayRestartAndDrain(t *testing.T) {
	// Node B drains for 10 s before it goes: node A learns it by gossip
	// (about a second) well within that, however loaded the machine.
	h := startRelay(t, 10*time.Second)
	t.Run("ready means serving after a restart", func(t *testing.T) {
		h.KillMesh(0)
		if err := h.StartMesh(0); err != nil {
			t.Fatal(err)
		}
		began := time.Now()
		if err := WaitFor(t.Context(), 30*time.Second, func() bool { return ready(h, 0) }); err != nil {
			t.Fatal("the restarted node never turned ready")
		}
		readyAfter := time.Since(began)
		resp, body := get(t, h.MeshClient(0), h.GroupURL(0, RelayGroup, "/hello"))
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("ready %v after the restart, but the first request got %d %q", readyAfter, resp.StatusCode, body)
		}
		t.Logf("ready %v after the restart, and serving", readyAfter.Round(time.Millisecond))
	})
	t.Run("a draining node that is the only path is used until it goes", func(t *testing.T) {
		l := startMixedLoad(t, h.UserClient(0), "https://"+GroupHost(RelayGroup)+":"+portOf(h, 0), 4)
		l.waitOK(t, 50)
		began := time.Now()
		stopped := make(chan struct{})
		go func() { defer close(stopped); h.StopMesh(1) }()
		// Node A learns from the gossip that B drains (within the drain
		// delay of 10s, during which B serves on).
		if err := WaitFor(t.Context(), 8*time.Second, func() bool { return viaDraining(h, 0) }); err != nil {
			t.Fatalf("node A did not learn within 8s that node B drains")
		}
		learnt := time.Now()
		l.waitOK(t, 20)
		window := time.Since(learnt)
		l.halt()
		var during, failed int
		for _, r := range l.results {
			if r.start.After(learnt) && r.end.Before(learnt.Add(window)) {
				during++
				if !r.ok {
					failed++
				}
			}
		}
		t.Logf("A knew %v after the stop began; %d requests in the next %v, %d failed", learnt.Sub(began).Round(time.Millisecond), during, window.Round(time.Millisecond), failed)
		if failed > 0 || during == 0 {
			t.Errorf("while node B drained as the only path: %d of %d requests failed, want none: %v", failed, during, first(l.errors(), 5))
		}
		<-stopped
	})
}

// portOf returns mesh node i's public port.
func portOf(h *Harness, i int) string {
	_, port, _ := net.SplitHostPort(h.Meshes()[i].Addr)
	return port
}

// viaDraining reports whether mesh node i knows that a node on its route
// to the relay app drains.
func viaDraining(h *Harness, i int) bool {
	ex, err := h.Meshes()[i].Node.Explain("app-" + RelayGroup)
	if err != nil {
		return false
	}
	for _, p := range ex.Paths {
		if strings.Contains(p.Why, "draining") {
			return true
		}
	}
	return false
}

// duplexExchange POSTs to url's /echo?duplex=1 and sends the body piece by
// piece, each only after the previous one came back: it passes only if
// every hop streams the request and the response at the same time.
func duplexExchange(tb testing.TB, c *http.Client, url string, pieces, size int) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(tb.Context(), 10*time.Second)
	defer cancel()
	pr, pw := io.Pipe()
	defer pw.Close()
	defer context.AfterFunc(ctx, func() { pw.CloseWithError(ctx.Err()) })()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, url, pr)
	req.ContentLength = int64(pieces * size)
	replies := sendAsync(c, req)
	piece := make([]byte, size)
	for i := range pieces {
		for j := range piece {
			piece[j] = byte(i + j)
		}
		if _, err := pw.Write(piece); err != nil {
			tb.Fatalf("piece %d: write: %v", i, err)
		}
		if i == pieces-1 {
			// Go's HTTP/2 client holds the last DATA frame of a body of
			// known length until it has seen the body's end.
			pw.Close()
		}
		if i == 0 {
			r := <-replies
			if r.err != nil {
				tb.Fatalf("POST: %v", r.err)
			}
			defer r.resp.Body.Close()
			if r.resp.StatusCode != http.StatusOK {
				tb.Fatalf("status: got %d, want 200", r.resp.StatusCode)
			}
			replies <- r
		}
		r := <-replies
		replies <- r
		got := make([]byte, size)
		if _, err := io.ReadFull(r.resp.Body, got); err != nil {
			tb.Fatalf("piece %d: read back: %v", i, err)
		}
		if !bytes.Equal(got, piece) {
			tb.Fatalf("piece %d: came back different", i)
		}
	}
	r := <-replies
	if n, err := io.Copy(io.Discard, r.resp.Body); n != 0 || err != nil {
		tb.Fatalf("after the last piece: got %d more bytes, %v", n, err)
	}
}

// TestFullDuplexThroughTunnel sends a request body piece by piece and reads
// each piece back before sending the next, over HTTP/1.1 and HTTP/2: every
// hop must stream both ways at once, and no server may consume or close a
// request body that its proxy is still forwarding when the response starts.
func TestFullDuplexThroughTunnel(t *testing.T) {
	h := start(t, Options{})
	for _, h2 := range []bool{false, true} {
		t.Run(fmt.Sprintf("http2=%v", h2), func(t *testing.T) {
			tr := h.MeshTransport(0)
			tr.ForceAttemptHTTP2 = h2
			defer tr.CloseIdleConnections()
			duplexExchange(t, &http.Client{Transport: tr}, h.AppURL(0, "/echo?duplex=1"), 8, 40<<10)
		})
	}
}
