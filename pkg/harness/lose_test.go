package harness

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"
)

// effects is a backend that records each request it received whole (by
// the request id the edge sets, which stays the same on every attempt of a
// request): a second record of an id is a duplicate side effect.
type effects struct {
	mu    sync.Mutex
	seen  map[string]int
	begun chan string   // the id of each request whose handler started
	read  chan int64    // body bytes read so far, for the partly-read case
	done  chan string   // the id of each request whose effect took place
	hold  chan struct{} // closed to let held answers go
}

func newEffects() *effects {
	return &effects{seen: map[string]int{}, begun: make(chan string, 16), read: make(chan int64, 1024),
		done: make(chan string, 16), hold: make(chan struct{})}
}

func (e *effects) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rid := r.Header.Get("X-Request-Id")
	e.begun <- rid
	var n int64
	buf := make([]byte, 4096)
	for {
		m, err := r.Body.Read(buf)
		n += int64(m)
		select {
		case e.read <- n:
		default:
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return // a body cut short has no effect
		}
	}
	e.mu.Lock()
	e.seen[rid]++
	e.mu.Unlock()
	e.done <- rid
	if r.URL.Query().Get("hold") != "" {
		<-e.hold
	}
	fmt.Fprintf(w, "done %s %d", rid, n)
}

func (e *effects) count(rid string) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.seen[rid]
}

// restart starts killed connector i again.
func restart(tb testing.TB, h *Harness, i int) {
	tb.Helper()
	if err := h.RestartConnector(tb.Context(), i); err != nil {
		tb.Fatal(err)
	}
}

// waitQuiet waits until no connector has a request in flight at mesh
// node 0, so that the next request is the only one.
func waitQuiet(tb testing.TB, h *Harness) {
	tb.Helper()
	err := WaitFor(tb.Context(), 30*time.Second, func() bool {
		for _, s := range h.Meshes()[0].Node.Pool().Statuses() {
			if s.Outstanding > 0 {
				return false
			}
		}
		return true
	})
	if err != nil {
		tb.Fatal("requests of an earlier case are still in flight")
	}
}

// servingConnector returns the harness index of the connector that has a
// request in flight at mesh node 0, once exactly one has.
func servingConnector(tb testing.TB, h *Harness) int {
	tb.Helper()
	var id string
	err := WaitFor(tb.Context(), 10*time.Second, func() bool {
		id = ""
		for _, s := range h.Meshes()[0].Node.Pool().Statuses() {
			if s.Outstanding > 0 {
				if id != "" {
					return false
				}
				id = s.ID
			}
		}
		return id != ""
	})
	if err != nil {
		tb.Fatal("no connector has the request")
	}
	for i, c := range h.Connectors() {
		if c.C.ID() == id {
			return i
		}
	}
	tb.Fatalf("connector %s is not the harness's", id)
	return -1
}

// TestLosingAConnectorNeverDuplicatesNorTruncates loses the connector that
// serves a request at the worst moments: during a POST whose body the
// backend has whole, during a POST whose body is half sent, and during a
// streamed response. Each request must either succeed once or fail
// visibly (502, or a cut the client sees), never reach the backend twice,
// never end as a 200 whose body is short.
func TestLosingAConnectorNeverDuplicatesNorTruncates(t *testing.T) {
	fx := newEffects()
	backend := httptest.NewServer(fx)
	defer backend.Close()
	defer close(fx.hold)
	h := start(t, Options{Connectors: 3, ExtraCatalog: fmt.Sprintf(
		"  - id: fx\n    host: fx.localhost\n    internal_url: %s\n    connector_group: hq\n    preauth: passthrough\n", backend.URL)})
	url := "https://fx.localhost:" + portOf(h, 0)
	c := h.MeshClient(0)

	t.Run("POST whose body the backend has", func(t *testing.T) {
		waitQuiet(t, h)
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, url+"/?hold=1", bytes.NewReader(make([]byte, 64<<10)))
		replies := sendAsync(c, req)
		<-fx.begun
		rid := <-fx.done
		killed := servingConnector(t, h)
		h.KillConnector(killed)
		defer restart(t, h, killed)
		r := <-replies
		if r.err != nil {
			t.Fatalf("got %v, want 502", r.err)
		}
		b, _ := io.ReadAll(r.resp.Body)
		r.resp.Body.Close()
		if r.resp.StatusCode != http.StatusBadGateway {
			t.Errorf("got %d %q, want 502: the POST reached the backend and must not be sent again", r.resp.StatusCode, b)
		}
		if n := fx.count(rid); n != 1 {
			t.Errorf("the backend ran the POST %d times, want once", n)
		}
	})

	t.Run("POST whose body is half sent", func(t *testing.T) {
		waitQuiet(t, h)
		for len(fx.read) > 0 {
			<-fx.read // the first case's
		}
		pr, pw := io.Pipe()
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, url+"/", pr)
		req.ContentLength = 2 << 20
		replies := sendAsync(c, req)
		go func() {
			// Half the body, then the rest once the connector is gone.
			pw.Write(make([]byte, 1<<20))
		}()
		rid := <-fx.begun
		for n := int64(0); n < 64<<10; n = <-fx.read {
		}
		killed := servingConnector(t, h)
		h.KillConnector(killed)
		defer restart(t, h, killed)
		go func() {
			pw.Write(make([]byte, 1<<20))
			pw.Close()
		}()
		r := <-replies
		if r.err == nil {
			b, err := io.ReadAll(r.resp.Body)
			r.resp.Body.Close()
			if r.resp.StatusCode == http.StatusOK {
				t.Errorf("got 200 %q (%v) for a POST whose connector died with half its body sent", b, err)
			}
		}
		if n := fx.count(rid); n != 0 {
			t.Errorf("the backend ran a POST whose body it never had whole %d times", n)
		}
	})

	for _, h2 := range []bool{false, true} {
		t.Run(fmt.Sprintf("streamed response, http2=%v", h2), func(t *testing.T) {
			waitQuiet(t, h)
			tr := h.MeshTransport(0)
			tr.ForceAttemptHTTP2 = h2
			defer tr.CloseIdleConnections()
			const size = 256 << 20
			resp, err := (&http.Client{Transport: tr}).Get(h.AppURL(0, fmt.Sprintf("/download?bytes=%d", size)))
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if _, err := io.CopyN(io.Discard, resp.Body, 1<<20); err != nil {
				t.Fatal(err)
			}
			killed := servingConnector(t, h)
			h.KillConnector(killed)
			defer restart(t, h, killed)
			n, err := io.Copy(io.Discard, resp.Body)
			if err == nil {
				t.Errorf("the download ended cleanly after %d of %d bytes although its connector died: a truncated 200", n+1<<20, size)
			}
		})
	}
}
