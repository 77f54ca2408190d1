package streambind

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"
	"time"

	"github.com/postern/postern/pkg/testkit"
	"github.com/postern/postern/pkg/wgkey"
	"github.com/postern/postern/pkg/wgnet"
)

// testAuth admits the credentials it maps, with the proof testProof.
type testAuth map[string]Grant

func (a testAuth) AuthorizeStream(_ context.Context, cred, proof string) (Grant, error) {
	g, ok := a[cred]
	if !ok {
		return Grant{}, errors.New("unknown credential")
	}
	if proof != testProof(cred) {
		return Grant{}, errors.New("no proof of possession")
	}
	return g, nil
}

// testProof stands in for the connector's proof of possession.
func testProof(cred string) string { return "proof-of-" + cred }

// fixture is a mesh-like node (Server over UDP, behind an HTTPS server with
// HTTP/2 enabled, like meshd's public listener) and a connector-like node
// (ClientBind over a DialBind) with each other as peers.
type fixture struct {
	mesh, conn *wgnet.Node
	srv        *Server
	cb         *ClientBind
	ts         *httptest.Server
	ep         netip.AddrPort // the mesh's UDP endpoint: the route key
	cred       string
	transport  *http.Transport
}

func newKey(tb testing.TB) wgkey.Private {
	tb.Helper()
	k, err := wgkey.Generate()
	if err != nil {
		tb.Fatal(err)
	}
	return k
}

func newFixture(tb testing.TB, clientUDP *wgnet.BlockBind) *fixture {
	tb.Helper()
	mk, ck := newKey(tb), newKey(tb)
	f := &fixture{cred: "cred-" + ck.Public().Short()}
	var err error
	f.srv, err = NewServer(ServerConfig{UDP: wgnet.NewUDPBind(netip.MustParseAddr("127.0.0.1")),
		Authorizer: testAuth{f.cred: {PublicKey: ck.Public(), ConnectorID: "c1"}}})
	if err != nil {
		tb.Fatal(err)
	}
	f.mesh, err = wgnet.New(wgnet.Config{PrivateKey: mk, Bind: f.srv, ListenAddr: netip.MustParseAddrPort("127.0.0.1:0")})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { f.mesh.Close() })
	mux := http.NewServeMux()
	mux.Handle(Path, f.srv)
	f.ts = httptest.NewUnstartedServer(mux)
	f.ts.EnableHTTP2 = true
	f.ts.StartTLS()
	tb.Cleanup(f.ts.Close)
	f.transport = f.ts.Client().Transport.(*http.Transport)
	ccfg := ClientConfig{BackoffMin: 20 * time.Millisecond, BackoffMax: 200 * time.Millisecond}
	if clientUDP != nil {
		ccfg.UDP = clientUDP
	}
	f.cb = NewClientBind(ccfg)
	f.conn, err = wgnet.New(wgnet.Config{PrivateKey: ck, Bind: f.cb})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { f.conn.Close() })
	f.ep = netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), f.mesh.ListenPort())
	f.cb.SetTarget(f.ep, Target{URL: f.ts.URL, Credential: func() string { return f.cred }, Proof: testProof, Transport: f.transport})
	if err := f.mesh.AddPeer(wgnet.Peer{PublicKey: ck.Public()}); err != nil {
		tb.Fatal(err)
	}
	if err := f.conn.AddPeer(wgnet.Peer{PublicKey: mk.Public(), Endpoint: f.ep, Keepalive: 5 * time.Second}); err != nil {
		tb.Fatal(err)
	}
	return f
}

// useStream moves the route to the stream and waits until it is connected.
func (f *fixture) useStream(tb testing.TB) {
	tb.Helper()
	if err := f.cb.SetCarrier(f.ep, CarrierStream); err != nil {
		tb.Fatal(err)
	}
	testkit.WaitFor(tb, 10*time.Second, "stream connected", func() bool { return f.cb.StreamConnected(f.ep) })
}

// ping pings the mesh from the connector, retrying until deadline.
func (f *fixture) ping(tb testing.TB, within time.Duration) {
	tb.Helper()
	testkit.WaitFor(tb, within, "ping through the tunnel", func() bool {
		ctx, cancel := context.WithTimeout(tb.Context(), 500*time.Millisecond)
		defer cancel()
		_, err := f.conn.Ping(ctx, f.mesh.PublicKey())
		return err == nil
	})
}

// meshEndpoint is the connector's endpoint as the mesh's WireGuard sees it.
func (f *fixture) meshEndpoint() string {
	for _, p := range f.mesh.Peers() {
		return p.Endpoint
	}
	return ""
}
