//go:build linux

package netnstest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/postern/postern/pkg/connector"
	"github.com/postern/postern/pkg/harness"
	"github.com/postern/postern/pkg/sampleapp"
)

// appName is the name the namespace's app answers /headers with, so the
// test knows that app, and no other, answered.
const appName = "InNamespace"

// healthAddr is connectord's health endpoint, on the namespace's own
// loopback (a fresh namespace: the port is free).
const healthAddr = "127.0.0.1:7801"

// TestConnectorInNamespaceWithUDPBlocked runs connectord in a network
// namespace whose outbound UDP nftables drops: it must serve the
// namespace's app through the mesh over the stream carrier within 5 s of
// starting, and move back to UDP when the rule is removed.
func TestConnectorInNamespaceWithUDPBlocked(t *testing.T) {
	requireRoot(t)
	bin := buildConnectord(t)
	n := newNetns(t)
	n.checkUDP(t)

	appURL := n.startApp(t)
	h, err := harness.Start(t.Context(), harness.Options{Host: n.hostIP.String(), Connectors: -1,
		ExtraCatalog: fmt.Sprintf("  - id: nsapp\n    host: nsapp.localhost\n    internal_url: %s\n    connector_group: hq\n    preauth: passthrough\n", appURL)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	mesh := h.Meshes()[0]
	if host, _, _ := net.SplitHostPort(mesh.Addr); host != n.hostIP.String() {
		t.Fatalf("mesh listens on %s, want %s", mesh.Addr, n.hostIP)
	}
	_, port, _ := net.SplitHostPort(mesh.Addr)
	url := "https://nsapp.localhost:" + port + "/headers"
	client := h.MeshClient(0)

	n.blockUDP(t)

	dir := t.TempDir()
	ca := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(ca, h.CA.CertPEM(), 0o644); err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(dir, "state")
	tok, _, err := h.Authority.MintEnrollToken("hq", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	enroll := n.command(t.Context(), bin, "enroll", "--mesh", mesh.URL, "--mesh-ca", ca, "--state-dir", state, "--name", "in-netns")
	enroll.Env = append(enroll.Env, "POSTERN_ENROLL_TOKEN="+tok) // not on the command line
	if out, err := enroll.CombinedOutput(); err != nil {
		t.Fatalf("connectord enroll in %s: %v\n%s", n.name, err, out)
	}
	st, err := connector.LoadState(state)
	if err != nil {
		t.Fatal(err)
	}

	logs := &harness.SyncBuffer{}
	run := n.command(context.Background(), bin, "run", "--state-dir", state, "--mesh-ca", ca,
		"--admin", healthAddr, "--probe-interval", "2s", "--allow", "127.0.0.1")
	run.Stdout, run.Stderr = logs, logs
	began := time.Now()
	if err := run.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stopProcess(t, run)
		if t.Failed() {
			t.Logf("connectord log:\n%s", logs.String())
		}
	})

	// Attach over the stream and serve, within 5 s of starting.
	var served, onStream time.Duration
	err = harness.WaitFor(t.Context(), 15*time.Second, func() bool {
		if served == 0 && serves(t.Context(), client, url) {
			served = time.Since(began)
		}
		if onStream == 0 && meshCarrier(h, st.ConnectorID) == "stream" {
			onStream = time.Since(began)
		}
		return served > 0 && onStream > 0
	})
	if err != nil {
		t.Fatalf("with UDP blocked after 15s: served after %v, mesh carrier %q (0 = never)", served, meshCarrier(h, st.ConnectorID))
	}
	t.Logf("UDP blocked: app served through the mesh %v after start, mesh reported carrier stream after %v", served, onStream)
	if served > 5*time.Second || onStream > 5*time.Second {
		t.Fatalf("attached over the stream: served after %v, stream reported after %v, want both within 5s", served, onStream)
	}
	if got := n.healthCarrier(t.Context()); got != "stream" {
		t.Fatalf("connectord health carrier: got %q, want stream", got)
	}
	if got := mesh.Node.Streams().Streams; got != 1 {
		t.Fatalf("mesh open streams: got %d, want 1", got)
	}
	if !strings.Contains(logs.String(), `"msg":"udp_unanswered"`) {
		t.Fatalf("connectord log lacks udp_unanswered")
	}
	wantServes(t, client, url, 20)

	// UDP restored: back to UDP, still serving.
	if out, err := n.command(t.Context(), "nft", "flush", "ruleset").CombinedOutput(); err != nil {
		t.Fatalf("nft flush ruleset in %s: %v\n%s", n.name, err, out)
	}
	restored := time.Now()
	var meshUDP, healthUDP time.Duration
	err = harness.WaitFor(t.Context(), 20*time.Second, func() bool {
		if meshUDP == 0 && meshCarrier(h, st.ConnectorID) == "udp" {
			meshUDP = time.Since(restored)
		}
		if healthUDP == 0 && n.healthCarrier(t.Context()) == "udp" {
			healthUDP = time.Since(restored)
		}
		return meshUDP > 0 && healthUDP > 0
	})
	if err != nil {
		t.Fatalf("20s after UDP came back: mesh carrier %q, connectord health carrier %q, want udp", meshCarrier(h, st.ConnectorID), n.healthCarrier(t.Context()))
	}
	t.Logf("UDP restored: connectord on udp after %v, mesh reported udp after %v (probe interval 2s)", healthUDP, meshUDP)
	wantServes(t, client, url, 20)
	if err := harness.WaitFor(t.Context(), 10*time.Second, func() bool { return mesh.Node.Streams().Streams == 0 }); err != nil {
		t.Fatalf("mesh open streams back on UDP: got %d, want 0", mesh.Node.Streams().Streams)
	}
	if !strings.Contains(logs.String(), `"msg":"carrier_changed"`) {
		t.Fatalf("connectord log lacks carrier_changed")
	}
}

// requireRoot fails the test, never skips it, when it cannot run.
func requireRoot(t *testing.T) {
	t.Helper()
	where := "outside CI"
	if os.Getenv("CI") == "true" {
		where = "in CI (CI=true): the CI runner must run it as root"
	}
	if uid := os.Geteuid(); uid != 0 {
		t.Fatalf("this test creates a network namespace and needs root, but runs as uid %d %s; it is never skipped", uid, where)
	}
	for _, tool := range []struct{ bin, pkg string }{{"ip", "iproute2"}, {"nft", "nftables"}} {
		if _, err := exec.LookPath(tool.bin); err != nil {
			t.Fatalf("this test needs %s (Debian package %s), running %s: %v", tool.bin, tool.pkg, where, err)
		}
	}
}

func buildConnectord(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "connectord")
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	if out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, "../../../connectord").CombinedOutput(); err != nil {
		t.Fatalf("build connectord: %v\n%s", err, out)
	}
	return bin
}

// netns is a network namespace the test created, joined to the root
// namespace by a veth pair: hostLink (hostIP) in the root namespace,
// nsLink (nsIP) in the namespace, a /30 between them.
type netns struct {
	name             string
	hostLink, nsLink string
	hostIP, nsIP     netip.Addr
	// What the test created, and so deletes.
	nsCreated, linkCreated bool
}

// newNetns creates the namespace and the veth pair, with names derived
// from the process id (interface names stay within 15 characters) and a
// free 10.203.X.0/30; cleanup deletes both and checks that they are gone.
func newNetns(t *testing.T) *netns {
	t.Helper()
	pid := os.Getpid()
	n := &netns{name: fmt.Sprintf("postern-nt-%d", pid), hostLink: fmt.Sprintf("pnt%dh", pid), nsLink: fmt.Sprintf("pnt%dn", pid)}
	n.hostIP, n.nsIP = freeSubnet(t)
	t.Cleanup(func() { n.delete(t) })
	run(t, "ip", "netns", "add", n.name)
	n.nsCreated = true
	run(t, "ip", "link", "add", n.hostLink, "type", "veth", "peer", "name", n.nsLink, "netns", n.name)
	n.linkCreated = true
	run(t, "ip", "addr", "add", n.hostIP.String()+"/30", "dev", n.hostLink)
	run(t, "ip", "link", "set", n.hostLink, "up")
	run(t, "ip", "-n", n.name, "addr", "add", n.nsIP.String()+"/30", "dev", n.nsLink)
	run(t, "ip", "-n", n.name, "link", "set", n.nsLink, "up")
	run(t, "ip", "-n", n.name, "link", "set", "lo", "up")
	t.Logf("namespace %s: %s %s <-> %s %s", n.name, n.hostLink, n.hostIP, n.nsLink, n.nsIP)
	return n
}

// freeSubnet picks a 10.203.X.0/30 that no address or route of the root
// namespace uses, starting from one derived from the process id.
func freeSubnet(t *testing.T) (host, peer netip.Addr) {
	t.Helper()
	used := run(t, "ip", "-4", "-o", "addr", "show") + run(t, "ip", "-4", "route", "show", "table", "all")
	start := os.Getpid() % 250
	for i := range 250 {
		x := byte((start+i)%250 + 1)
		if !strings.Contains(used, fmt.Sprintf("10.203.%d.", x)) {
			return netip.AddrFrom4([4]byte{10, 203, x, 1}), netip.AddrFrom4([4]byte{10, 203, x, 2})
		}
	}
	t.Fatal("no free 10.203.X.0/30 subnet")
	return
}

// delete removes what the test created and fails the test if the
// namespace or either end of the veth pair is still there.
func (n *netns) delete(t *testing.T) {
	t.Helper()
	if n.linkCreated {
		if out, err := exec.Command("ip", "link", "del", n.hostLink).CombinedOutput(); err != nil {
			t.Errorf("ip link del %s: %v: %s", n.hostLink, err, out)
		}
	}
	if n.nsCreated {
		if out, err := exec.Command("ip", "netns", "del", n.name).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v: %s", n.name, err, out)
		}
	}
	var left []string
	err := harness.WaitFor(context.Background(), 5*time.Second, func() bool {
		left = n.leftovers()
		return len(left) == 0
	})
	if err != nil {
		t.Errorf("left over after cleanup: %v", left)
	}
}

// leftovers lists the namespace and links of n still present.
func (n *netns) leftovers() []string {
	var left []string
	out, err := exec.Command("ip", "netns", "list").CombinedOutput()
	if err != nil {
		return []string{fmt.Sprintf("ip netns list: %v: %s", err, out)}
	}
	for _, line := range strings.Split(string(out), "\n") {
		if f := strings.Fields(line); len(f) > 0 && f[0] == n.name {
			left = append(left, "netns "+n.name)
		}
	}
	out, err = exec.Command("ip", "-o", "link", "show").CombinedOutput()
	if err != nil {
		return []string{fmt.Sprintf("ip link show: %v: %s", err, out)}
	}
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		name, _, _ := strings.Cut(strings.TrimSuffix(f[1], ":"), "@")
		if name == n.hostLink || name == n.nsLink {
			left = append(left, "link "+name)
		}
	}
	return left
}

// command returns an exec.Cmd running name in the namespace, with the
// environment minus proxy settings (no proxy is reachable from there).
func (n *netns) command(ctx context.Context, name string, args ...string) *exec.Cmd {
	c := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", n.name, name}, args...)...)
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if !strings.HasSuffix(strings.ToUpper(k), "_PROXY") {
			c.Env = append(c.Env, kv)
		}
	}
	return c
}

// do runs fn on an OS thread moved into the namespace: sockets fn opens
// live there, and stay there after do returns. fn must not start
// goroutines that open sockets.
func (n *netns) do(fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		root, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer root.Close()
		target, err := os.Open(filepath.Join("/run/netns", n.name))
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer target.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("setns %s: %w", n.name, err)
			return
		}
		ferr := fn()
		if err := unix.Setns(int(root.Fd()), unix.CLONE_NEWNET); err != nil {
			// The thread stays locked, so it ends with this goroutine
			// instead of running others in the wrong namespace.
			errc <- fmt.Errorf("setns back to the root namespace: %w", err)
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// dial dials from inside the namespace.
func (n *netns) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	var c net.Conn
	err := n.do(func() error {
		var err error
		c, err = (&net.Dialer{}).DialContext(ctx, network, addr)
		return err
	})
	return c, err
}

// checkUDP proves the veth pair carries UDP from the namespace to the
// host side before any rule is added, so that the block is what changes.
func (n *netns) checkUDP(t *testing.T) {
	t.Helper()
	l, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(n.hostIP, 0)))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	buf := make([]byte, 16)
	err = harness.WaitFor(t.Context(), 5*time.Second, func() bool {
		c, err := n.dial(t.Context(), "udp", l.LocalAddr().String())
		if err != nil {
			return false
		}
		c.Write([]byte("ping"))
		c.Close()
		l.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		k, _, err := l.ReadFromUDP(buf)
		return err == nil && string(buf[:k]) == "ping"
	})
	if err != nil {
		t.Fatalf("UDP from %s to %s never arrived: the veth pair does not work", n.name, l.LocalAddr())
	}
}

// blockUDP adds the nftables rule dropping every outbound UDP packet in
// the namespace, and checks that a UDP send there now fails.
func (n *netns) blockUDP(t *testing.T) {
	t.Helper()
	for _, args := range [][]string{
		{"add", "table", "inet", "postern_test"},
		{"add", "chain", "inet", "postern_test", "out", "{ type filter hook output priority 0; policy accept; }"},
		{"add", "rule", "inet", "postern_test", "out", "meta", "l4proto", "udp", "drop"},
	} {
		if out, err := n.command(t.Context(), "nft", args...).CombinedOutput(); err != nil {
			t.Fatalf("nft %s in %s: %v\n%s", strings.Join(args, " "), n.name, err, out)
		}
	}
	c, err := n.dial(t.Context(), "udp", netip.AddrPortFrom(n.hostIP, 9).String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("x")); !errors.Is(err, syscall.EPERM) {
		t.Fatalf("UDP send in %s with the rule: got %v, want operation not permitted", n.name, err)
	}
}

// startApp serves the sample app on the namespace's loopback, where only
// a connector inside the namespace can reach it, and returns its URL as
// seen from there.
func (n *netns) startApp(t *testing.T) string {
	t.Helper()
	var l net.Listener
	if err := n.do(func() error {
		var err error
		l, err = net.Listen("tcp", "127.0.0.1:0")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: sampleapp.New(sampleapp.Config{Name: appName}).Handler(), ReadHeaderTimeout: 10 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Serve(l)
	}()
	// The listener holds the namespace: it closes before the namespace is
	// deleted (cleanups run last first).
	t.Cleanup(func() {
		srv.Close()
		<-done
	})
	return "http://" + l.Addr().String()
}

// healthCarrier returns the carrier connectord's health endpoint reports
// for its first mesh node, or "" when it cannot be read.
func (n *netns) healthCarrier(ctx context.Context) string {
	c := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DialContext: n.dial, DisableKeepAlives: true}}
	req, err := http.NewRequestWithContext(ctx, "GET", "http://"+healthAddr+"/healthz", nil)
	if err != nil {
		return ""
	}
	resp, err := c.Do(req)
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	var h struct {
		Attached []struct {
			Carrier string `json:"carrier"`
		} `json:"attached"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&h); err != nil || len(h.Attached) == 0 {
		return ""
	}
	return h.Attached[0].Carrier
}

// meshCarrier returns the carrier mesh node 0 reports for connector id.
func meshCarrier(h *harness.Harness, id string) string {
	for _, c := range h.Meshes()[0].Node.Status().Connectors {
		if c.ID == id {
			return c.Carrier
		}
	}
	return ""
}

// serves reports whether the namespace's app answers through the mesh.
func serves(ctx context.Context, c *http.Client, url string) bool {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", url, nil)
	if err != nil {
		return false
	}
	resp, err := c.Do(req)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	var info sampleapp.RequestInfo
	return resp.StatusCode == 200 && json.NewDecoder(resp.Body).Decode(&info) == nil && info.App == appName
}

func wantServes(t *testing.T, c *http.Client, url string, n int) {
	t.Helper()
	for i := range n {
		if !serves(t.Context(), c, url) {
			t.Fatalf("request %d of %d through the mesh failed", i+1, n)
		}
	}
}

// run runs a command in the root namespace and returns its output.
func run(t *testing.T, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, args[0], args[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// stopProcess ends p with SIGTERM, then SIGKILL if it has not exited
// within 5 s.
func stopProcess(t *testing.T, p *exec.Cmd) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- p.Wait() }()
	p.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Errorf("connectord did not exit within 5s of SIGTERM")
		p.Process.Kill()
		<-done
	}
}
