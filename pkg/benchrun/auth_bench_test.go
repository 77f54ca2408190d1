package benchrun

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/postern/postern/pkg/harness"
)

// BenchmarkTunnelAuth is bench run's tunnel, tunnel-auth and tunnel-bearer
// scenarios (GET /hello through a mesh node, the WireGuard tunnel and a
// connector, 32 workers on keep-alive connections of their own) on one
// system, measured as the process's CPU per request. On a CPU-bound
// 2-core machine req/s is the inverse of CPU per request, and CPU per
// request is far steadier than a few seconds of req/s, so the issues'
// ratios (tunnel-bearer ≥ 0.95, tunnel-auth ≥ 0.97 of tunnel req/s) are
// read as tunnel's CPU per request over each leg's. A fourth leg,
// tunnel-pad, sends the open app one header as long as the bearer token,
// which every hop carries to the backend: it tells what carrying that
// many bytes costs apart from any verification. Each of the b.N
// iterations is one round: perRound requests of every leg, the legs in
// an order that rotates from round to round so that drifting load and
// being first cancel out; it reports each leg's median cpu-ns/req and
// the ratios (medians of the per-round ratios):
//
//	go test -run '^$' -bench BenchmarkTunnelAuth -benchtime 9x ./pkg/benchrun
func BenchmarkTunnelAuth(b *testing.B) {
	const workers, perRound = 32, 6400
	ctx := context.Background()
	h, err := harness.Start(ctx, harness.Options{Connectors: 1, Auth: true})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = h.Close() })
	ck, err := h.SignIn(ctx, BenchUser)
	if err != nil {
		b.Fatal(err)
	}
	tok, err := h.ClientCredentials(ctx, harness.DaemonClientID, harness.DaemonSecret, harness.APIIdentifier+"/.default")
	if err != nil {
		b.Fatal(err)
	}
	// tunnel-pad is the open app with one header of the bearer token's
	// length that every hop carries to the backend: what the bytes of an
	// identity cost without any verification.
	pad := []string{strings.Repeat("p", len(tok))}
	auth := []string{"Bearer " + tok} // a client holds its header, as a real one would
	names := []string{"tunnel", "cookie", "bearer", "tunnel-pad"}
	loads := []*authLoad{
		newAuthLoad(h, h.OpenAppURL(0, "/hello"), nil),
		newAuthLoad(h, h.AppURL(0, "/hello"), func(r *http.Request) { r.AddCookie(ck) }),
		newAuthLoad(h, h.APIURL(0, "/hello"), func(r *http.Request) { r.Header["Authorization"] = auth }),
		newAuthLoad(h, h.OpenAppURL(0, "/hello"), func(r *http.Request) { r.Header[PadHeader] = pad }),
	}
	for _, l := range loads {
		defer l.close()
		l.run(b, workers, 32*workers) // connections, TLS sessions, caches
	}
	runtime.GC()
	cpu := make([][]float64, len(loads))   // per leg, per round: ns per request
	ratio := make([][]float64, len(loads)) // per leg, per round: tunnel's over the leg's
	b.ResetTimer()
	for round := range b.N {
		for k := range loads {
			i := (round + k) % len(loads)
			start := processCPU()
			loads[i].run(b, workers, perRound)
			cpu[i] = append(cpu[i], float64(processCPU()-start)/perRound)
		}
		for i := range loads {
			ratio[i] = append(ratio[i], cpu[0][round]/cpu[i][round])
		}
	}
	b.StopTimer()
	for i, name := range names {
		b.ReportMetric(median(cpu[i]), name+"-cpu-ns/req")
		if i > 0 {
			b.ReportMetric(median(ratio[i]), name+"/tunnel")
		}
	}
}

// authLoad GETs one URL through a mesh node on keep-alive connections of
// its own, each request dressed by set (a cookie, a bearer token).
type authLoad struct {
	tr  *http.Transport
	c   *http.Client
	url string
	set func(*http.Request)
}

func newAuthLoad(h *harness.Harness, url string, set func(*http.Request)) *authLoad {
	tr := h.MeshTransport(0)
	return &authLoad{tr: tr, c: &http.Client{Transport: tr}, url: url, set: set}
}

func (l *authLoad) close() { l.tr.CloseIdleConnections() }

// get sends one request; an answer other than 200 is an error.
func (l *authLoad) get() error {
	req, err := http.NewRequest(http.MethodGet, l.url, nil)
	if err != nil {
		return err
	}
	if l.set != nil {
		l.set(req)
	}
	resp, err := l.c.Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", l.url, resp.Status)
	}
	return nil
}

// run sends n requests spread over workers goroutines, untimed.
func (l *authLoad) run(b *testing.B, workers, n int) {
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for range n / workers {
				if err := l.get(); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
}
