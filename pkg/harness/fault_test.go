package harness

import (
	"context"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// load sends GET /hello from workers goroutines until stop is closed, and
// counts successes and failures.
type load struct {
	ok, failed atomic.Int64
	wg         sync.WaitGroup
	stop       chan struct{}
	mu         sync.Mutex
	errs       []string
}

func startLoad(ctx context.Context, c *http.Client, url string, workers int) *load {
	l := &load{stop: make(chan struct{})}
	for i := 0; i < workers; i++ {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for n := 0; n < 100000; n++ {
				select {
				case <-l.stop:
					return
				case <-ctx.Done():
					return
				default:
				}
				req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
				resp, err := c.Do(req)
				if err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
				if err == nil && resp.StatusCode == 200 {
					l.ok.Add(1)
					continue
				}
				l.failed.Add(1)
				l.mu.Lock()
				if err != nil {
					l.errs = append(l.errs, err.Error())
				} else {
					l.errs = append(l.errs, resp.Status)
				}
				l.mu.Unlock()
			}
		}()
	}
	return l
}

func (l *load) halt() { close(l.stop); l.wg.Wait() }

func TestFailoverWhenConnectorDies(t *testing.T) {
	h := start(t, Options{Connectors: 2})
	c := h.MeshClient(0)
	l := startLoad(t.Context(), c, h.AppURL(0, "/hello"), 8)
	waitOK := func(n int64) {
		t.Helper()
		target := l.ok.Load() + n
		if err := WaitFor(t.Context(), 20*time.Second, func() bool { return l.ok.Load() >= target }); err != nil {
			t.Fatalf("load stalled at %d successes", l.ok.Load())
		}
	}
	waitOK(200)
	h.KillConnector(0)
	killedAt := l.ok.Load()
	waitOK(500) // the survivor carries the load on
	l.halt()
	if f := l.failed.Load(); f != 0 {
		t.Fatalf("%d requests failed after a connector died (%d succeeded); first errors: %v", f, l.ok.Load(), first(l.errs, 5))
	}
	alive := func() int {
		n := 0
		for _, s := range h.Meshes()[0].Node.Pool().Statuses() {
			if s.Alive {
				n++
			}
		}
		return n
	}
	// Its GETs went elsewhere when it missed a probe; it is declared dead
	// after a few more.
	if err := WaitFor(t.Context(), 20*time.Second, func() bool { return alive() == 1 }); err != nil {
		t.Fatalf("alive connectors: got %d, want 1", alive())
	}
	t.Logf("%d requests before the kill, %d in all, none failed", killedAt, l.ok.Load())
}

func first(s []string, n int) []string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// TestConnectorRestartServesAgain kills the connector and starts it again
// on its state: the mesh serves through it again, with no operator step.
// How soon (the design's 3 s) is logged as a figure, not asserted: a wall
// clock budget fails on a loaded machine; the attach and handshake timers
// behind it are tested under synctest in pkg/connector.
func TestConnectorRestartServesAgain(t *testing.T) {
	h := start(t, Options{})
	c := h.MeshClient(0)
	if resp, _ := get(t, c, h.AppURL(0, "/hello")); resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	h.KillConnector(0)
	began := time.Now()
	if err := h.RestartConnector(t.Context(), 0); err != nil {
		t.Fatal(err)
	}
	err := WaitFor(t.Context(), 60*time.Second, func() bool {
		resp, err := c.Get(h.AppURL(0, "/hello"))
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	if err != nil {
		t.Fatalf("not serving 60s after the connector restarted")
	}
	t.Logf("serving again %v after restart (design: within 3s)", time.Since(began).Round(time.Millisecond))
}

func TestMeshRestartConnectorsReattach(t *testing.T) {
	h := start(t, Options{})
	h.StopMesh(0)
	if err := h.StartMesh(0); err != nil {
		t.Fatal(err)
	}
	c := h.MeshClient(0)
	err := WaitFor(t.Context(), 20*time.Second, func() bool {
		resp, err := c.Get(h.AppURL(0, "/hello"))
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	if err != nil {
		t.Fatal("connector did not reattach to the restarted mesh node")
	}
}

func TestCredentialRenewedThroughTunnel(t *testing.T) {
	h := start(t, Options{CredentialTTL: 3 * time.Second})
	c := h.Connectors()[0].C
	first := c.State()
	err := WaitFor(t.Context(), 10*time.Second, func() bool { return c.State().Credential != first.Credential })
	if err != nil {
		t.Fatal("credential not renewed before expiry")
	}
	if !c.State().CredentialExpires.After(first.CredentialExpires) {
		t.Fatalf("renewed credential expires %v, not after %v", c.State().CredentialExpires, first.CredentialExpires)
	}
	saved, err := connectorState(h.Connectors()[0].Dir)
	if err != nil || saved != c.State().Credential {
		t.Fatalf("renewed credential not saved to disk: %v", err)
	}
	// Attach again with the renewed credential: the mesh accepts it.
	h.KillConnector(0)
	if err := h.RestartConnector(t.Context(), 0); err != nil {
		t.Fatal(err)
	}
	if resp, _ := get(t, h.MeshClient(0), h.AppURL(0, "/hello")); resp.StatusCode != 200 {
		t.Fatalf("status %d after reattaching with the renewed credential", resp.StatusCode)
	}
}
