package benchrun

import (
	"bytes"
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

	"github.com/coder/websocket"
)

// DefaultBulkBytes is the size of one bulk download when Config.BulkBytes
// is zero.
const DefaultBulkBytes = 64 << 20

// wsMessage is the size of one websocket scenario message.
const wsMessage = 128

// System is the running Postern system the built-in scenarios measure.
type System interface {
	// DirectURL returns the URL of path on the internal app itself, over
	// plain HTTP on loopback.
	DirectURL(path string) string
	// TunnelURL returns the URL of path on a passthrough (not
	// pre-authenticated) external host of the app, served through a mesh
	// node.
	TunnelURL(path string) string
	// AuthURL returns the URL of path on a pre-authenticated external host
	// of the same app through the same mesh node, or "" if there is none.
	AuthURL(path string) string
	// AuthCookie returns a valid session cookie for AuthURL, or nil.
	AuthCookie() *http.Cookie
	// TunnelTransport returns a new transport, owned by the caller, that
	// reaches that mesh node for TunnelURL and AuthURL and trusts its
	// certificate.
	TunnelTransport() *http.Transport
	// Failover starts a separate system with two connectors for the
	// failover scenario; the caller closes it.
	Failover(ctx context.Context) (FailoverSystem, error)
	// Regions returns the multi-region system of the regions scenario,
	// starting it on the first call; the System owns and closes it.
	Regions(ctx context.Context) (RegionSystem, error)
	// Relay returns the two-node relay system of the relay scenario,
	// starting it on the first call; the System owns and closes it.
	Relay(ctx context.Context) (RelaySystem, error)
	// Stream returns a system like this one (without sign-in) whose
	// connector carries WireGuard over the HTTPS stream instead of UDP,
	// starting it on the first call; the System owns and closes it.
	Stream(ctx context.Context) (System, error)
	// Bearer returns the URL of path on an external host of the same
	// app through the same mesh node that accepts bearer tokens, and a
	// valid token for it (an Entra app-only access token); "" when there
	// is none.
	Bearer(path string) (url, token string)
	// TCP returns the system's TCP apps, or an error when it has none.
	TCP() (TCPSystem, error)
}

// TCPSystem reaches the TCP apps of a System through the same mesh node.
type TCPSystem interface {
	// DialEcho opens a stream to a TCP app whose target echoes.
	DialEcho(ctx context.Context) (net.Conn, error)
	// DialSource opens a stream to a TCP app whose target answers each
	// 8-byte big-endian length N with N bytes.
	DialSource(ctx context.Context) (net.Conn, error)
}

// FailoverSystem is a system whose app is served by two connectors.
type FailoverSystem interface {
	// TunnelURL and TunnelTransport are as in System.
	TunnelURL(path string) string
	// TunnelTransport is as in System.
	TunnelTransport() *http.Transport
	// Kill stops one of the connectors abruptly, as when its host dies.
	Kill()
	// Close stops the whole system.
	Close() error
}

// Params is what a scenario's Open needs to know about one row.
type Params struct {
	// Concurrency is the number of workers, one connection each.
	Concurrency int
	// BulkBytes is the size of one bulk download.
	BulkBytes int64
	// Variant is the row's variant; zero for scenarios without Variants.
	Variant Variant
}

// Variant is one row of a scenario that has several rows per concurrency
// level, such as one per route strategy and user region.
type Variant struct {
	// Strategy is the route strategy every mesh node uses; empty means
	// not applicable.
	Strategy string
	// UserRegion is the region the user sends requests from; empty means
	// not applicable.
	UserRegion string
}

// Row is one prepared row of a scenario.
type Row struct {
	// Op is the request the load issues.
	Op Op
	// Concurrency, when positive, is the number of workers the row runs
	// with (and reports) instead of Params.Concurrency; zero means
	// Params.Concurrency.
	Concurrency int
	// Close releases what Op holds; nil means nothing to release.
	Close func()
	// OnWindow, if set, is called with the measurement window's start and
	// end before the load starts.
	OnWindow func(start, end time.Time)
	// Finish, if set, adds scenario-specific figures to the row's result.
	Finish func(r *Result)
}

// Scenario is one named workload, run once per concurrency level.
type Scenario struct {
	// Name identifies it on the command line and in the results.
	Name string
	// Concurrency lists the levels it runs at, one result row each.
	Concurrency []int
	// FixedConcurrency means Config.Concurrency does not override
	// Concurrency.
	FixedConcurrency bool
	// Bulk means its rows report throughput (mib_s).
	Bulk bool
	// Prime makes every worker open its connection with an unrecorded
	// request before the warm-up.
	Prime bool
	// ClosedOnly means the row always runs as a closed loop, even when
	// Config.Rate asks for an open loop.
	ClosedOnly bool
	// MinRequests, when positive and Config.Requests is zero, bounds each
	// row by that recorded request count instead of by Config.Duration (a
	// Config.Requests of its own, e.g. a quick check's, wins); zero means
	// the rows follow Config.
	MinRequests int64
	// MinDuration is the shortest measurement window the scenario needs;
	// a shorter Config.Duration is raised to it and Config.Requests is
	// ignored. Zero means no minimum.
	MinDuration time.Duration
	// Baseline names the scenario its rows are compared to (added_p50_ms,
	// ratio_to_direct); empty means none.
	Baseline string
	// BaselineConcurrency is the concurrency of the baseline row compared
	// to; zero means the row's own.
	BaselineConcurrency int
	// Peer names the scenario whose rps at the same concurrency its rows
	// report a ratio to (ratio_to_tunnel); empty means none.
	Peer string
	// MaxWarmup, when positive, caps Config.Warmup for the scenario's
	// rows; zero means Config.Warmup applies as given.
	MaxWarmup time.Duration
	// Variants, if set, lists the rows the scenario runs at each
	// concurrency level, in order, given the run's configuration; nil
	// means one row per level.
	Variants func(cfg Config) []Variant
	// Extra leaves the scenario out of StandardSuite: it starts a system
	// of its own and would push the standard run past its time budget.
	Extra bool
	// Open prepares one row against sys.
	Open func(ctx context.Context, sys System, p Params) (*Row, error)
}

// Builtin returns the built-in scenarios in their canonical order.
func Builtin() []Scenario {
	return []Scenario{
		{Name: "direct", Concurrency: []int{1, 32}, Prime: true, Open: openHello(direct)},
		{Name: "tunnel", Concurrency: []int{1, 32}, Prime: true, Baseline: "direct", Open: openHello(tunnel)},
		{Name: "tunnel-auth", Concurrency: []int{1, 32}, Prime: true, Baseline: "direct", Peer: "tunnel", Open: openHello(tunnelAuth)},
		{Name: "tunnel-bearer", Concurrency: []int{1, 32}, Prime: true, Baseline: "direct", Peer: "tunnel", Open: openHello(tunnelBearer)},
		{Name: "tunnel-pad", Concurrency: []int{1, 32}, Prime: true, Baseline: "direct", Peer: "tunnel", Open: openHello(tunnelPad)},
		{Name: "bulk-direct", Concurrency: []int{1}, FixedConcurrency: true, Bulk: true, ClosedOnly: true, Open: openDownload(direct)},
		{Name: "bulk-tunnel", Concurrency: []int{1}, FixedConcurrency: true, Bulk: true, ClosedOnly: true, Baseline: "bulk-direct", Open: openDownload(tunnel)},
		{Name: "bulk-tunnel-8", Concurrency: []int{8}, FixedConcurrency: true, Bulk: true, ClosedOnly: true, Baseline: "bulk-direct",
			BaselineConcurrency: 1, Open: openDownload(tunnel)},
		{Name: "websocket", Concurrency: []int{1, 32}, Prime: true, Open: openWebSocket},
		{Name: "tcp", Concurrency: []int{1, 32}, Prime: true, Open: openTCPEcho},
		{Name: "bulk-tcp", Concurrency: []int{1}, FixedConcurrency: true, Bulk: true, ClosedOnly: true, Baseline: "bulk-direct", Open: openTCPBulk},
		{Name: "cold", Concurrency: []int{1}, Baseline: "direct", Open: openCold},
		{Name: "failover", Concurrency: []int{8}, FixedConcurrency: true, Prime: true, ClosedOnly: true,
			MinDuration: 4 * time.Second, Open: openFailover},
		{Name: "tunnel-stream", Concurrency: []int{1, 32}, Prime: true, Baseline: "direct", Extra: true, Open: openStream(openHello(tunnel))},
		{Name: "bulk-tunnel-stream", Concurrency: []int{1}, FixedConcurrency: true, Bulk: true, ClosedOnly: true, Baseline: "bulk-direct",
			Extra: true, Open: openStream(openDownload(tunnel))},
		{Name: "relay", Concurrency: []int{1, 32}, Prime: true, Baseline: "tunnel", Extra: true, Open: openRelay},
		{Name: "regions", Concurrency: []int{1}, FixedConcurrency: true, Prime: true, ClosedOnly: true,
			MaxWarmup: regionsMaxWarmup, MinRequests: regionsMinRequests, Extra: true, Variants: regionVariants, Open: openRegions},
	}
}

// StandardSuite is the scenario list `task bench` runs: every built-in
// scenario that is not Extra.
func StandardSuite() []string {
	var names []string
	for _, s := range Builtin() {
		if !s.Extra {
			names = append(names, s.Name)
		}
	}
	return names
}

// ExtraSuite is the scenario list of the second benchmark run: the Extra
// scenarios, each after the baseline it is compared to (direct,
// bulk-direct, tunnel).
func ExtraSuite() []string {
	return []string{"direct", "tunnel", "bulk-direct", "tunnel-stream", "bulk-tunnel-stream", "relay", "regions"}
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
		i := slices.Index(known, n)
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

// PadHeader is the header tunnel-pad's requests carry.
const PadHeader = "X-Bench-Pad"

// leg picks the URL, transport and cookie of a scenario.
type leg int

const (
	direct leg = iota
	tunnel
	tunnelAuth
	tunnelBearer
	tunnelPad
)

func (r leg) client(sys System, p Params) *http.Client {
	if r == direct {
		return noRedirect(&http.Client{Transport: directTransport(p.Concurrency)})
	}
	return noRedirect(&http.Client{Transport: http1(sys.TunnelTransport(), p.Concurrency)})
}

// url returns the URL of path on the leg and what authenticates a request
// to it: a cookie, or an Authorization header.
func (r leg) url(sys System, path string) (string, func(*http.Request), error) {
	switch r {
	case direct:
		return sys.DirectURL(path), nil, nil
	case tunnel:
		return sys.TunnelURL(path), nil, nil
	case tunnelBearer:
		u, tok := sys.Bearer(path)
		if u == "" {
			return "", nil, fmt.Errorf("benchrun: %w", ErrNoAuth)
		}
		auth := []string{"Bearer " + tok} // a client holds its header, as a real one would
		return u, func(req *http.Request) { req.Header["Authorization"] = auth }, nil
	case tunnelPad:
		// The control of tunnel-bearer: the open app, with one header as
		// long as tunnel-bearer's Authorization that every hop carries to
		// the backend. What the bytes cost, without any verification.
		_, tok := sys.Bearer(path)
		if tok == "" {
			return "", nil, fmt.Errorf("benchrun: %w", ErrNoAuth)
		}
		pad := []string{strings.Repeat("p", len("Bearer "+tok))}
		return sys.TunnelURL(path), func(req *http.Request) { req.Header[PadHeader] = pad }, nil
	}
	u, ck := sys.AuthURL(path), sys.AuthCookie()
	if u == "" || ck == nil {
		return "", nil, fmt.Errorf("benchrun: %w", ErrNoAuth)
	}
	return u, func(req *http.Request) { req.AddCookie(ck) }, nil
}

func openHello(r leg) func(context.Context, System, Params) (*Row, error) {
	return func(_ context.Context, sys System, p Params) (*Row, error) {
		u, auth, err := r.url(sys, "/hello")
		if err != nil {
			return nil, err
		}
		c := r.client(sys, p)
		return &Row{Op: getOp(c, u, -1, auth), Close: c.CloseIdleConnections}, nil
	}
}

func openDownload(r leg) func(context.Context, System, Params) (*Row, error) {
	return func(_ context.Context, sys System, p Params) (*Row, error) {
		if p.BulkBytes <= 0 {
			return nil, fmt.Errorf("benchrun: bulk size %d is not positive", p.BulkBytes)
		}
		u, auth, err := r.url(sys, fmt.Sprintf("/download?bytes=%d&seed=1", p.BulkBytes))
		if err != nil {
			return nil, err
		}
		c := r.client(sys, p)
		return &Row{Op: getOp(c, u, p.BulkBytes, auth), Close: c.CloseIdleConnections}, nil
	}
}

// openStream runs open on the system whose connector uses the stream
// carrier.
func openStream(open func(context.Context, System, Params) (*Row, error)) func(context.Context, System, Params) (*Row, error) {
	return func(ctx context.Context, sys System, p Params) (*Row, error) {
		ss, err := sys.Stream(ctx)
		if err != nil {
			return nil, err
		}
		return open(ctx, ss, p)
	}
}

// openCold GETs /hello through the tunnel on a new TCP and TLS connection
// for every request.
func openCold(_ context.Context, sys System, p Params) (*Row, error) {
	tr := http1(sys.TunnelTransport(), p.Concurrency)
	tr.DisableKeepAlives = true
	c := noRedirect(&http.Client{Transport: tr})
	return &Row{Op: GetOp(c, sys.TunnelURL("/hello"), -1, nil), Close: c.CloseIdleConnections}, nil
}

// openWebSocket opens one WebSocket per worker to /ws through the tunnel
// (on its first op, which priming makes unrecorded) and then measures the
// round trip of one message echoed by the app.
func openWebSocket(_ context.Context, sys System, p Params) (*Row, error) {
	tr := http1(sys.TunnelTransport(), p.Concurrency)
	tr.MaxConnsPerHost = 0 // hijacked connections must not block a re-dial
	c := &http.Client{Transport: tr}
	u := strings.Replace(sys.TunnelURL("/ws"), "https://", "wss://", 1)
	return webSocketRow(c, u, p.Concurrency), nil
}

// webSocketRow returns the row of a WebSocket echo load against u: each
// worker takes a connection from a pool (dialling one if there is none),
// sends a message, reads the echo and puts the connection back.
func webSocketRow(c *http.Client, u string, conc int) *Row {
	msg := bytes.Repeat([]byte("p"), wsMessage)
	dial := func(ctx context.Context) (*websocket.Conn, error) {
		cn, resp, err := websocket.Dial(ctx, u, &websocket.DialOptions{HTTPClient: c})
		if err != nil {
			if resp != nil && resp.StatusCode != http.StatusSwitchingProtocols {
				return nil, fmt.Errorf("benchrun: websocket: %w", statusError{resp.StatusCode})
			}
			return nil, fmt.Errorf("benchrun: websocket: dial: %w", err)
		}
		return cn, nil
	}
	use := func(ctx context.Context, cn *websocket.Conn, read *atomic.Int64) error {
		return echo(ctx, cn, msg, read)
	}
	return connRow(conc, dial, func(cn *websocket.Conn) { cn.CloseNow() }, use, c.CloseIdleConnections)
}

func echo(ctx context.Context, conn *websocket.Conn, msg []byte, read *atomic.Int64) error {
	if err := conn.Write(ctx, websocket.MessageBinary, msg); err != nil {
		return fmt.Errorf("benchrun: websocket: write: %w", err)
	}
	_, got, err := conn.Read(ctx)
	if err != nil {
		return fmt.Errorf("benchrun: websocket: read: %w", err)
	}
	read.Add(int64(len(got)))
	if !bytes.Equal(got, msg) {
		return fmt.Errorf("benchrun: websocket: %w", ErrWebSocket)
	}
	return nil
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

// GetOp returns an Op that GETs url with c, sending cookie if it is not
// nil, and reads the body to the end. It fails on a transport error, a
// non-2xx status, a response not over HTTP/1.x, or, when want is not
// negative, a body of another length.
func GetOp(c *http.Client, url string, want int64, cookie *http.Cookie) Op {
	if cookie == nil {
		return getOp(c, url, want, nil)
	}
	return getOp(c, url, want, func(req *http.Request) { req.AddCookie(cookie) })
}

// getOp is GetOp with auth, when not nil, adding the request's
// credentials.
func getOp(c *http.Client, url string, want int64, auth func(*http.Request)) Op {
	bufs := &sync.Pool{New: func() any { b := make([]byte, 64<<10); return &b }}
	return func(ctx context.Context, read *atomic.Int64) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return fmt.Errorf("benchrun: get: %w", err)
		}
		if auth != nil {
			auth(req)
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
			return fmt.Errorf("benchrun: get: %w", statusError{resp.StatusCode})
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
