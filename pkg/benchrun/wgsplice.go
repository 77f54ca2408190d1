package benchrun

import (
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"time"

	"golang.zx2c4.com/wireguard/conn"
	"golang.zx2c4.com/wireguard/device"
	"golang.zx2c4.com/wireguard/tun/netstack"

	"github.com/postern/postern/pkg/wgkey"
)

// The wgsplice peer of bench real: stock wireguard-go with its gVisor
// netstack (golang.zx2c4.com/wireguard/tun/netstack) and its default UDP
// bind, in two processes, splicing TCP with no HTTP in between:
//
//	load → edge (TCP listener on loopback) → netstack dial → WireGuard/UDP
//	     → inner (netstack listener) → TCP to the backend
//
// It is the floor of a userspace-WireGuard reverse tunnel: what Postern's
// path costs beyond it is TLS, HTTP parsing and the mesh's own work.

// Addresses inside the splice's WireGuard network.
var (
	spliceEdgeIP  = netip.MustParseAddr("10.77.0.1")
	spliceInnerIP = netip.MustParseAddr("10.77.0.2")
)

// spliceInnerPort is the inner side's netstack TCP port.
const spliceInnerPort = 80

// SpliceArgs configures one side of the wgsplice peer.
type SpliceArgs struct {
	// Inner selects the inner side (the connector's place); false is the
	// edge side (the mesh node's place).
	Inner bool
	// Key is this side's WireGuard private key.
	Key wgkey.Private
	// Peer is the other side's WireGuard public key.
	Peer wgkey.Public
	// UDP is this side's WireGuard UDP port on 127.0.0.1; PeerUDP the
	// other side's (the edge sends first; the inner side learns the
	// edge's endpoint from its handshake).
	UDP, PeerUDP uint16
	// Listen is the edge side's TCP listen address for the load.
	Listen string
	// Backend is the inner side's TCP target.
	Backend string
}

// RunSplice runs one side of the wgsplice peer until ctx ends.
func RunSplice(ctx context.Context, a SpliceArgs) error {
	self, other := spliceEdgeIP, spliceInnerIP
	if a.Inner {
		self, other = other, self
	}
	tdev, tnet, err := netstack.CreateNetTUN([]netip.Addr{self}, nil, 1420)
	if err != nil {
		return fmt.Errorf("benchrun: splice: %w", err)
	}
	dev := device.NewDevice(tdev, conn.NewDefaultBind(), device.NewLogger(device.LogLevelSilent, ""))
	defer dev.Close()
	pub := a.Peer
	ipc := fmt.Sprintf("private_key=%s\nlisten_port=%d\npublic_key=%s\nallowed_ip=%s/32\npersistent_keepalive_interval=25\n",
		a.Key.Hex(), a.UDP, hex.EncodeToString(pub[:]), other)
	if !a.Inner {
		ipc += fmt.Sprintf("endpoint=127.0.0.1:%d\n", a.PeerUDP)
	}
	if err := dev.IpcSet(ipc); err != nil {
		return fmt.Errorf("benchrun: splice: configure: %w", err)
	}
	if err := dev.Up(); err != nil {
		return fmt.Errorf("benchrun: splice: %w", err)
	}
	var l net.Listener
	var dial func(context.Context) (net.Conn, error)
	if a.Inner {
		l, err = tnet.ListenTCPAddrPort(netip.AddrPortFrom(self, spliceInnerPort))
		d := &net.Dialer{Timeout: 5 * time.Second}
		dial = func(ctx context.Context) (net.Conn, error) { return d.DialContext(ctx, "tcp", a.Backend) }
	} else {
		l, err = net.Listen("tcp", a.Listen)
		dial = func(ctx context.Context) (net.Conn, error) {
			return tnet.DialContextTCPAddrPort(ctx, netip.AddrPortFrom(other, spliceInnerPort))
		}
	}
	if err != nil {
		return fmt.Errorf("benchrun: splice: listen: %w", err)
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	go func() {
		<-ctx.Done()
		l.Close()
	}()
	for {
		c, err := l.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("benchrun: splice: accept: %w", err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			spliceConn(ctx, c, dial)
		}()
	}
}

// spliceConn copies between c and a new connection from dial, both ways,
// until either side ends or ctx does.
func spliceConn(ctx context.Context, c net.Conn, dial func(context.Context) (net.Conn, error)) {
	defer c.Close()
	o, err := dial(ctx)
	if err != nil {
		return
	}
	defer o.Close()
	stop := context.AfterFunc(ctx, func() { c.Close(); o.Close() })
	defer stop()
	done := make(chan struct{}, 2)
	cp := func(dst, src net.Conn) {
		// A copy ends with either side's close or reset: both are the
		// end of the connection, nothing to report.
		_, _ = io.Copy(dst, src)
		if cw, ok := dst.(interface{ CloseWrite() error }); ok {
			_ = cw.CloseWrite()
		}
		done <- struct{}{}
	}
	go cp(o, c)
	go cp(c, o)
	<-done
	<-done
}
