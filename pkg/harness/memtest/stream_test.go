// Package memtest checks that nothing along the request path holds a whole
// body. It measures the heap, so it runs in a process of its own, apart from
// the other end-to-end tests whose leftovers would blur the figure.
package memtest

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/postern/postern/pkg/harness"
	"github.com/postern/postern/pkg/sampleapp"
)

func start(t *testing.T) *harness.Harness {
	t.Helper()
	h, err := harness.Start(t.Context(), harness.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

func TestStreamingBothWays64MiB(t *testing.T) {
	h := start(t)
	c := h.MeshClient(0)
	const size = 64 << 20
	var peak atomic.Uint64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	// Sample the live heap (what the last collection found reachable),
	// not the heap in use: on a busy machine the collector lags, and the
	// heap in use then counts tens of MiB of garbage no component holds.
	// Collect eagerly, so that a collection ends often during the stream.
	defer debug.SetGCPercent(debug.SetGCPercent(10))
	runtime.GC()
	base := liveHeap()
	go func() {
		defer wg.Done()
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				if live := liveHeap(); live > peak.Load() {
					peak.Store(live)
				}
			}
		}
	}()
	// Download.
	want := sha256.New()
	io.Copy(want, sampleapp.Stream(42, size))
	resp, err := c.Get(h.AppURL(0, fmt.Sprintf("/download?bytes=%d&seed=42", size)))
	if err != nil {
		t.Fatal(err)
	}
	got := sha256.New()
	n, err := io.Copy(got, resp.Body)
	resp.Body.Close()
	if err != nil || n != size || hex.EncodeToString(got.Sum(nil)) != hex.EncodeToString(want.Sum(nil)) {
		t.Fatalf("download: %d bytes, err %v, checksum match %v", n, err, string(got.Sum(nil)) == string(want.Sum(nil)))
	}
	// Upload.
	req, _ := http.NewRequest("POST", h.AppURL(0, "/upload"), sampleapp.Stream(7, size))
	req.ContentLength = -1 // chunked: the proxy must stream it
	resp, err = c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var up struct {
		Bytes  int64  `json:"bytes"`
		SHA256 string `json:"sha256"`
	}
	json.NewDecoder(resp.Body).Decode(&up)
	resp.Body.Close()
	sum := sha256.New()
	io.Copy(sum, sampleapp.Stream(7, size))
	if up.Bytes != size || up.SHA256 != hex.EncodeToString(sum.Sum(nil)) {
		t.Fatalf("upload: got %d bytes %s", up.Bytes, up.SHA256)
	}
	close(stop)
	wg.Wait()
	// Nothing along the path may hold a whole body. What it does hold is
	// bounded buffering: netstack TCP windows (up to 1 MiB each way on both
	// ends of the tunnel, pkg/wgnet; WireGuard holds each packet in flight
	// in a 64 KiB buffer), HTTP/2 flow-control windows and copy buffers,
	// about 40 MiB live on an idle machine and up to about 65 MiB when
	// other work keeps the cores busy (the windows fill while the readers
	// wait for a core). A component holding the whole 64 MiB body would add
	// that on top (over 100 MiB), so 90 MiB separates the two.
	grew := int64(peak.Load()) - int64(base)
	t.Logf("live heap grew by at most %.1f MiB", float64(grew)/(1<<20))
	if grew > 90<<20 {
		t.Fatalf("heap grew by %d MiB while streaming 64 MiB", grew>>20)
	}
}

// liveHeap returns the heap bytes the last garbage collection marked live.
func liveHeap() uint64 {
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}
