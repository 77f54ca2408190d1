package meshnode

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/postern/postern/pkg/authority"
	"github.com/postern/postern/pkg/testkit"
)

// TestMain fails the package's run if a test leaves a goroutine behind.
func TestMain(m *testing.M) { testkit.Main(m) }

// testConfig returns the config of a lone plain-HTTP node on loopback
// with the catalogue catalogYAML, a node credential, no catalogue
// polling and no drain; every listener on a free port of 127.0.0.1.
func testConfig(t *testing.T, catalogYAML string) Config {
	t.Helper()
	dir := t.TempDir()
	catPath := filepath.Join(dir, "catalog.yaml")
	if err := os.WriteFile(catPath, []byte(catalogYAML), 0o600); err != nil {
		t.Fatal(err)
	}
	key, err := authority.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	auth, err := authority.New(authority.Config{Key: key})
	if err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(dir, "state")
	nk, err := InitKeys(state)
	if err != nil {
		t.Fatal(err)
	}
	cred, err := auth.IssueNodeCredential("n1", "local", nk.WG, nk.Node, authority.DefaultNodeCredentialTTL)
	if err != nil {
		t.Fatal(err)
	}
	return Config{ID: "n1", Region: "local", Listen: "127.0.0.1:0", PlainHTTP: true, StateDir: state,
		WGListen: netip.MustParseAddrPort("127.0.0.1:0"), Authority: auth, NodeCredential: cred, CatalogPath: catPath,
		CatalogPoll: -1, DrainTimeout: -1}
}

// freeAddr returns a loopback address whose TCP and UDP ports were free a
// moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	for range 20 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		l.Close()
		if p, err := net.ListenPacket("udp", addr); err == nil {
			p.Close()
			return addr
		}
	}
	t.Fatal("no free port with both TCP and UDP")
	return ""
}

// checkReleased fails unless the TCP (and, with udp, the UDP) port of
// addr can be bound again: whoever held it let it go.
func checkReleased(t *testing.T, what, addr string, udp bool) {
	t.Helper()
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Errorf("%s %s still bound: %v", what, addr, err)
	} else {
		l.Close()
	}
	if udp {
		p, err := net.ListenPacket("udp", addr)
		if err != nil {
			t.Errorf("%s %s (UDP) still bound: %v", what, addr, err)
			return
		}
		p.Close()
	}
}

// get fetches url with a client that keeps no connection afterwards.
func get(url string) (int, error) {
	c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 10 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

// TestStartStop runs a node with every listener on a fixed port, checks
// that each serves, stops it by its context (Run returns nil), closes it
// twice, and checks that every port is free again.
func TestStartStop(t *testing.T) {
	cfg := testConfig(t, passthroughCatalog)
	cfg.Listen, cfg.AdminListen = freeAddr(t), freeAddr(t)
	wgAddr := freeAddr(t)
	cfg.WGListen = netip.MustParseAddrPort(wgAddr)
	n, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := testkit.Async(func() error { return n.Run(ctx) })
	waitServing(t, n, done)
	if code, err := get("http://" + cfg.AdminListen + "/healthz"); err != nil || code != http.StatusOK {
		t.Fatalf("admin /healthz: %d, %v; want 200", code, err)
	}
	cancel()
	if err := testkit.Result(t, done); err != nil {
		t.Fatalf("Run after its context ended: %v, want nil", err)
	}
	for range 2 {
		if err := n.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
	}
	checkReleased(t, "public listener", cfg.Listen, false)
	checkReleased(t, "admin listener", cfg.AdminListen, false)
	checkReleased(t, "WireGuard port", wgAddr, true)
	if err := n.Run(t.Context()); !errors.Is(err, ErrClosed) {
		t.Fatalf("Run after Close: %v, want ErrClosed", err)
	}
}

// TestBindFailure checks that a port already taken is New's error, and
// that New then releases every port and goroutine it had taken before:
// the admin listener (the last listener bound; before this fix Run bound
// it after starting the others, and hung on them) and the gossip port
// (bound after all listeners).
func TestBindFailure(t *testing.T) {
	for _, tc := range []struct {
		name, want string
		take       func(cfg *Config, taken string)
	}{
		{"admin", "admin listener", func(cfg *Config, taken string) { cfg.AdminListen = taken }},
		{"public", "public listener", func(cfg *Config, taken string) { cfg.Listen = taken }},
		{"gossip", "gossip", func(cfg *Config, taken string) {
			cfg.Cluster = &ClusterConfig{GossipListen: taken, Insecure: true}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			busy, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer busy.Close()
			cfg := testConfig(t, passthroughCatalog)
			cfg.Listen, cfg.AdminListen = freeAddr(t), freeAddr(t)
			wgAddr := freeAddr(t)
			cfg.WGListen = netip.MustParseAddrPort(wgAddr)
			tc.take(&cfg, busy.Addr().String())
			n, err := New(cfg)
			if err == nil {
				n.Close()
				t.Fatalf("New with %s on a taken port succeeded", tc.name)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New: %v, want an error naming the %s", err, tc.want)
			}
			for _, addr := range []string{cfg.Listen, cfg.AdminListen} {
				if addr != busy.Addr().String() {
					checkReleased(t, "listener", addr, false)
				}
			}
			checkReleased(t, "WireGuard port", wgAddr, true)
		})
	}
}

// TestRunReturnsServerFailure checks that when one server fails, Run stops
// the others and returns that failure (it used to log it and return nil
// or wait), and that the admin server it stopped released its port.
func TestRunReturnsServerFailure(t *testing.T) {
	cfg := testConfig(t, passthroughCatalog)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	broken := errors.New("socket broke")
	cfg.Listener = testkit.BrokenListener{Listener: l, Err: broken}
	cfg.AdminListen = freeAddr(t)
	cfg.DrainTimeout = time.Hour // a failure must not wait for a drain
	n, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	err = testkit.Result(t, testkit.Async(func() error { return n.Run(t.Context()) }))
	if !errors.Is(err, broken) {
		t.Fatalf("Run: %v, want the public server's failure", err)
	}
	if !strings.HasPrefix(err.Error(), "meshnode: serve 127.0.0.1:") {
		t.Errorf("Run: %q, want it to name the listener", err)
	}
	checkReleased(t, "admin listener", cfg.AdminListen, false)
	if err := n.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

// TestCloseDuringStart closes a node whose Run waits at start for the
// auth functions' keys (for an hour): Run returns ErrClosed and Close
// returns once it did.
func TestCloseDuringStart(t *testing.T) {
	var asked atomic.Int32
	auth := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		asked.Add(1)
		http.Error(w, "starting", http.StatusServiceUnavailable)
	}))
	defer auth.Close()
	cfg := testConfig(t, preAuthCatalog)
	cfg.AuthURL, cfg.AuthStartupWait = auth.URL, time.Hour
	cfg.AuthHTTPClient = &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	n, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	done := testkit.Async(func() error { return n.Run(t.Context()) })
	waitFor(t, "Run asks for the keys", func() bool { return asked.Load() > 0 })
	if err := n.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := testkit.Result(t, done); !errors.Is(err, ErrClosed) {
		t.Fatalf("Run closed during start: %v, want ErrClosed", err)
	}
}

// TestCloseWhileRunning closes nodes while they serve and while they
// drain (an hour's drain delay): Run returns ErrClosed at once, without
// waiting for the drain, and concurrent Closes all return after it.
func TestCloseWhileRunning(t *testing.T) {
	for _, draining := range []bool{false, true} {
		name := map[bool]string{false: "serving", true: "draining"}[draining]
		t.Run(name, func(t *testing.T) {
			cfg := testConfig(t, passthroughCatalog)
			cfg.DrainDelay, cfg.DrainTimeout = time.Hour, time.Hour
			n, err := New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			done := testkit.Async(func() error { return n.Run(ctx) })
			waitServing(t, n, done)
			if draining {
				cancel()
				waitFor(t, "draining", func() bool { _, rd := readyz(t, n); return !rd.Ready })
			}
			testkit.CheckClose(t, n.Close, done, ErrClosed)
			if _, err := net.Dial("tcp", n.Addr().String()); err == nil {
				t.Fatal("the public listener still accepts after Close")
			}
		})
	}
}

// TestRunOnce checks that a second Run, while the first runs, is refused
// and leaves the first running.
func TestRunOnce(t *testing.T) {
	n, err := New(testConfig(t, passthroughCatalog))
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	ctx, cancel := context.WithCancel(t.Context())
	done := testkit.Async(func() error { return n.Run(ctx) })
	waitServing(t, n, done)
	if err := n.Run(ctx); err == nil || errors.Is(err, ErrClosed) {
		t.Fatalf("second Run: %v, want already started", err)
	}
	if code, err := get("http://" + n.Addr().String() + "/"); err != nil || code == 0 {
		t.Fatalf("the first Run stopped serving: %v", err)
	}
	cancel()
	if err := testkit.Result(t, done); err != nil {
		t.Fatalf("Run: %v", err)
	}
}
