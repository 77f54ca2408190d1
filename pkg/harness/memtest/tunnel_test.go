package memtest

import (
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	"github.com/postern/postern/pkg/harness"
	"github.com/postern/postern/pkg/meshnode"
	"github.com/postern/postern/pkg/tunnelhttp"
)

// TestIdleTunnelConnectionsBounded plays a hostile connector that opens
// connection after connection to its mesh node's tunnel listener and lets
// them sit idle: the node keeps at most its per-peer cap open, resets the
// rest at once, and its heap grows by what the cap allows, not by what the
// connector tried. (pkg/harness's TestTunnelTimeouts checks that idle ones
// are closed; here the timeouts are long, so the held ones stay.)
func TestIdleTunnelConnectionsBounded(t *testing.T) {
	const attempts, perPeer = 2000, 32
	h, err := harness.Start(t.Context(), harness.Options{Limits: meshnode.Limits{
		TunnelConnsPerPeer: perPeer, IdleTimeout: time.Hour, ReadHeaderTimeout: time.Hour}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	node := h.Meshes()[0].Node
	target := netip.AddrPortFrom(node.WireGuard().Addr(), tunnelhttp.Port).String()
	conn := h.Connectors()[0].C.Node()
	_, tunnel := node.Conns()

	defer debug.SetGCPercent(debug.SetGCPercent(10))
	base := heapInuse()
	var held []net.Conn
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	refused := 0
	for i := range attempts {
		c, err := conn.DialContext(t.Context(), "tcp", target)
		if err != nil && len(held) >= perPeer && isReset(err) {
			refused++ // the reset came before the dial returned
			continue
		}
		if err != nil {
			t.Fatalf("dial %d: %v", i, err)
		}
		if len(held) < perPeer {
			held = append(held, c)
			continue
		}
		// Past the cap: the node resets it without reading a byte. (The
		// byte written makes a node that dropped the handshake's last ACK,
		// and so has no connection at all, answer with a reset too.)
		c.SetDeadline(time.Now().Add(20 * time.Second))
		c.Write([]byte{0})
		if _, err := c.Read(make([]byte, 1)); err == nil || (!errors.Is(err, io.EOF) && !isReset(err)) {
			t.Fatalf("connection %d past the cap of %d: got %v, want it closed by the node", i, perPeer, err)
		}
		c.Close()
		refused++
		if n, _ := tunnel.Open(); n > perPeer {
			t.Fatalf("after %d attempts the node holds %d tunnel connections, cap %d", i+1, n, perPeer)
		}
	}
	// Both ends live in this process; each held connection costs well
	// under 256 KiB on both sides together, and a refused one nothing once
	// its closed endpoint is gone (the tunnel's TIME-WAIT is short).
	budget := int64(perPeer)*256<<10 + 4<<20
	var grown int64
	if err := harness.WaitFor(t.Context(), 60*time.Second, func() bool {
		grown = int64(heapInuse()) - int64(base)
		return grown <= budget
	}); err != nil {
		t.Fatalf("heap grew by %d KiB for %d held connections (budget %d KiB): refused connections cost memory", grown>>10, len(held), budget>>10)
	}
	t.Logf("%d attempts, %d held, %d refused; heap grew by %d KiB", attempts, len(held), refused, grown>>10)
	for _, c := range held {
		c.Close()
	}
	held = nil
	if err := harness.WaitFor(t.Context(), 10*time.Second, func() bool { n, _ := tunnel.Open(); return n == 0 }); err != nil {
		n, _ := tunnel.Open()
		t.Fatalf("%d tunnel connections still counted after the connector closed all", n)
	}
}

// heapInuse returns the live heap after three collections, so that
// buffers parked in sync.Pools (WireGuard's, after a burst) are freed.
func heapInuse() uint64 {
	runtime.GC()
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse
}

// isReset reports whether err is the end of a connection the other side
// reset.
func isReset(err error) bool {
	var se *os.SyscallError
	return errors.As(err, &se) || errors.Is(err, net.ErrClosed) || strings.Contains(err.Error(), "reset") || strings.Contains(err.Error(), "aborted")
}
