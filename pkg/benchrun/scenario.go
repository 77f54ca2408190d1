package benchrun

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultBulkBytes is the size of one bulk download when Config.BulkBytes
// is zero.
const DefaultBulkBytes = 256 << 20

// System is the running Postern system the built-in scenarios measure.
type System interface {
	// DirectURL returns the URL of path on the internal app itself, over
	// plain HTTP on loopback.
	DirectURL(path string) string
	// TunnelURL returns the URL of path on the app's external host, served
	// through a mesh node.
	TunnelURL(path string) string
	// TunnelTransport returns a new transport, owned by the caller, that
	// reaches that mesh node for TunnelURL and trusts its certificate.
	TunnelTransport() *http.Transport
}

// Params is what a scenario's Open needs to know about one row.
type Params struct {
	// Concurrency is the number of workers, one connection each.
	Concurrency int
	// BulkBytes is the size of one bulk download.
	BulkBytes int64
}

// Scenario is one named workload, run once per concurrency level.
type Scenario struct {
	// Name identifies it on the command line and in the results.
	Name string
	// Concurrency lists the levels it runs at, one result row each.
	Concurrency []int
	// Bulk means its rows report throughput (mib_s).
	Bulk bool
	// Baseline names the scenario its rows are compared to (added_p50_ms,
	// ratio_to_direct); empty means none.
	Baseline string
	// Open prepares the op for one row against sys. The returned close
	// releases what the op holds, such as idle connections.
	Open func(sys System, p Params) (op Op, close func(), err error)
}

// Builtin returns the built-in scenarios in their canonical order.
func Builtin() []Scenario {
	return []Scenario{
		{Name: "direct", Concurrency: []int{1, 32}, Open: openHello(direct)},
		{Name: "tunnel", Concurrency: []int{1, 32}, Baseline: "direct", Open: openHello(tunnel)},
		{Name: "bulk-direct", Concurrency: []int{1}, Bulk: true, Open: openDownload(direct)},
		{Name: "bulk-tunnel", Concurrency: []int{1}, Bulk: true, Baseline: "bulk-direct", Open: openDownload(tunnel)},
	}
}

// Lookup returns the built-in scenarios with the given names, in the given
// order. An unknown or repeated name is an error that lists the known ones.
func Lookup(names []string) ([]Scenario, error) {
	all := Builtin()
	known := make([]string, len(all))
	for i, s := range all {
		known[i] = s.Name
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("benchrun: no scenarios given; known: %s", strings.Join(known, ", "))
	}
	seen := make(map[string]bool)
	var out []Scenario
	for _, n := range names {
		i := indexOf(known, n)
		if i < 0 {
			return nil, fmt.Errorf("benchrun: %w %q; known: %s", ErrUnknownScenario, n, strings.Join(known, ", "))
		}
		if seen[n] {
			return nil, fmt.Errorf("benchrun: scenario %q given twice", n)
		}
		seen[n] = true
		out = append(out, all[i])
	}
	return out, nil
}

func indexOf(list []string, s string) int {
	for i, v := range list {
		if v == s {
			return i
		}
	}
	return -1
}

// route picks the URL and transport of a scenario.
type route int

const (
	direct route = iota
	tunnel
)

func (r route) client(sys System, p Params) *http.Client {
	if r == direct {
		return &http.Client{Transport: directTransport(p.Concurrency)}
	}
	return &http.Client{Transport: http1(sys.TunnelTransport(), p.Concurrency)}
}

func (r route) url(sys System, path string) string {
	if r == direct {
		return sys.DirectURL(path)
	}
	return sys.TunnelURL(path)
}

func openHello(r route) func(System, Params) (Op, func(), error) {
	return func(sys System, p Params) (Op, func(), error) {
		c := r.client(sys, p)
		return GetOp(c, r.url(sys, "/hello"), -1), c.CloseIdleConnections, nil
	}
}

func openDownload(r route) func(System, Params) (Op, func(), error) {
	return func(sys System, p Params) (Op, func(), error) {
		if p.BulkBytes <= 0 {
			return nil, nil, fmt.Errorf("benchrun: bulk size %d is not positive", p.BulkBytes)
		}
		c := r.client(sys, p)
		u := r.url(sys, fmt.Sprintf("/download?bytes=%d&seed=1", p.BulkBytes))
		return GetOp(c, u, p.BulkBytes), c.CloseIdleConnections, nil
	}
}

// directTransport returns a plain HTTP/1.1 keep-alive transport with at most
// conns connections, all kept idle between requests. It ignores proxy
// settings from the environment.
func directTransport(conns int) *http.Transport {
	d := &net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}
	return http1(&http.Transport{DialContext: d.DialContext, IdleConnTimeout: 90 * time.Second,
		DisableCompression: true}, conns)
}

// http1 restricts tr to HTTP/1.1 with at most conns connections, all kept
// idle between requests, so that each worker has its own connection. It
// also removes "h2" from the ALPN protocols offered, which a transport that
// was used or cloned with HTTP/2 enabled has added there.
func http1(tr *http.Transport, conns int) *http.Transport {
	var p http.Protocols
	p.SetHTTP1(true)
	tr.Protocols = &p
	tr.ForceAttemptHTTP2 = false
	tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{} // non-nil and empty: no HTTP/2
	if tr.TLSClientConfig != nil {
		tr.TLSClientConfig = tr.TLSClientConfig.Clone()
		tr.TLSClientConfig.NextProtos = slices.DeleteFunc(tr.TLSClientConfig.NextProtos, func(p string) bool { return p == "h2" })
	}
	tr.MaxConnsPerHost = conns
	tr.MaxIdleConnsPerHost = conns
	tr.MaxIdleConns = 0 // no limit across hosts
	tr.Proxy = nil
	return tr
}

// GetOp returns an Op that GETs url with c and reads the body to the end.
// It fails on a transport error, a non-2xx status, a response not over
// HTTP/1.x, or, when want is not negative, a body of another length.
func GetOp(c *http.Client, url string, want int64) Op {
	bufs := &sync.Pool{New: func() any { b := make([]byte, 64<<10); return &b }}
	return func(ctx context.Context, read *atomic.Int64) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return fmt.Errorf("benchrun: get: %w", err)
		}
		resp, err := c.Do(req)
		if err != nil {
			return fmt.Errorf("benchrun: get: %w", err)
		}
		defer resp.Body.Close()
		bp := bufs.Get().(*[]byte)
		defer bufs.Put(bp)
		n, err := io.CopyBuffer(counter{read}, onlyReader{resp.Body}, *bp)
		switch {
		case err != nil:
			return fmt.Errorf("benchrun: get: read body: %w", err)
		case resp.StatusCode < 200 || resp.StatusCode > 299:
			return fmt.Errorf("benchrun: get: %w: %d", ErrStatus, resp.StatusCode)
		case resp.ProtoMajor != 1:
			return fmt.Errorf("benchrun: get: %w: %s", ErrProtocol, resp.Proto)
		case want >= 0 && n != want:
			return fmt.Errorf("benchrun: get: %w: got %d bytes, want %d", ErrShortBody, n, want)
		}
		return nil
	}
}

// counter is an io.Writer that only counts.
type counter struct{ n *atomic.Int64 }

func (c counter) Write(p []byte) (int, error) {
	c.n.Add(int64(len(p)))
	return len(p), nil
}

// onlyReader hides any WriterTo of the body so that io.CopyBuffer uses the
// pooled buffer.
type onlyReader struct{ io.Reader }
