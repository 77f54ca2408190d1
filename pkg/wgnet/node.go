// Package wgnet is a userspace WireGuard node on a gVisor network stack.
//
// It is the transport under the whole request path: a mesh node and a
// connector each run one Node, add each other as peers, and then dial and
// listen for TCP over the tunnel as if it were an ordinary network, with no
// TUN device, no root and no kernel WireGuard. Every node's tunnel address is
// derived from its public key (see package wgkey).
package wgnet

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.zx2c4.com/wireguard/conn"
	"golang.zx2c4.com/wireguard/device"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"

	"github.com/postern/postern/pkg/wgkey"
)

// DefaultMTU is the tunnel MTU used when Config.MTU is zero. It leaves room
// for the IPv6 + UDP + WireGuard overhead inside a 1500-byte path.
const DefaultMTU = 1420

// Config configures a Node.
type Config struct {
	// PrivateKey is the node's WireGuard private key. Required.
	PrivateKey wgkey.Private
	// Bind carries WireGuard's UDP datagrams. Nil means a UDP bind on
	// ListenAddr (NewUDPBind). A connector, which must not listen on the
	// host network, passes NewDialBind().
	Bind conn.Bind
	// ListenAddr is the local UDP address for the default bind. The zero
	// value means all interfaces; its port 0 means a random port.
	ListenAddr netip.AddrPort
	// MTU of the tunnel; zero means DefaultMTU.
	MTU int
	// Logger receives WireGuard's errors and, at debug level, its
	// verbose log. Nil discards.
	Logger *slog.Logger

	// Test hooks (set only by this package's tests): inbound, if set,
	// sees every decrypted packet before the stack and drops it when it
	// returns false; tcpProbe, if set, sees each TCP endpoint's state
	// after every segment it handles.
	inbound  func(pkt []byte) bool
	tcpProbe tcp.TCPProbeFunc
}

// Peer is a WireGuard peer to add to a Node.
type Peer struct {
	// PublicKey identifies the peer; its tunnel address is the only
	// address allowed from it.
	PublicKey wgkey.Public
	// Endpoint is the peer's UDP address. The zero value means unknown:
	// the node learns it from the peer's first authenticated packet.
	Endpoint netip.AddrPort
	// Keepalive is the persistent-keepalive interval; zero disables it.
	Keepalive time.Duration
}

// PeerStats describes one peer of a Node.
type PeerStats struct {
	PublicKey     wgkey.Public
	Addr          netip.Addr
	Endpoint      string
	LastHandshake time.Time // zero if none yet
	RxBytes       uint64
	TxBytes       uint64
	// RTT is the last round trip measured with Ping; zero if none.
	RTT time.Duration
}

// Node is a userspace WireGuard device with its own TCP/IP stack.
// Its methods are safe for concurrent use.
type Node struct {
	priv   wgkey.Private
	pub    wgkey.Public
	addr   netip.Addr
	dev    *device.Device
	link   *linkTUN
	stack  *stack.Stack
	bind   conn.Bind
	logger *slog.Logger

	echo      net.PacketConn
	closeOnce sync.Once
	closeErr  error
	done      chan struct{}
	wg        sync.WaitGroup

	mu  sync.Mutex // guards the following
	rtt map[wgkey.Public]time.Duration

	rxMu   sync.Mutex // guards the following
	rxSnap map[wgkey.Public]uint64
	rxAt   time.Time
}

// rxSnapshotAge bounds how stale the receive counters Received returns
// may be: reading them serialises every peer, so a burst of callers (many
// connectors failing their probes at once) shares one reading.
const rxSnapshotAge = 50 * time.Millisecond

// Received returns how many bytes have arrived from peer so far
// (WireGuard's counter of authenticated packets, handshakes included),
// as of a reading at most rxSnapshotAge old; false if peer is unknown.
func (n *Node) Received(peer wgkey.Public) (uint64, bool) {
	n.rxMu.Lock()
	defer n.rxMu.Unlock()
	if n.rxSnap == nil || time.Since(n.rxAt) > rxSnapshotAge {
		snap := make(map[wgkey.Public]uint64)
		for _, p := range n.Peers() {
			snap[p.PublicKey] = p.RxBytes
		}
		n.rxSnap, n.rxAt = snap, time.Now()
	}
	rx, ok := n.rxSnap[peer]
	return rx, ok
}

// EchoPort is the UDP port on which every node answers Ping inside the tunnel.
const EchoPort = 7

// New starts a Node: its network stack, its WireGuard device, and the echo
// responder used by Ping.
func New(cfg Config) (*Node, error) {
	if cfg.PrivateKey.IsZero() {
		return nil, errors.New("wgnet: new: no private key")
	}
	mtu := cfg.MTU
	if mtu == 0 {
		mtu = DefaultMTU
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	pub := cfg.PrivateKey.Public()
	n := &Node{
		priv:   cfg.PrivateKey,
		pub:    pub,
		addr:   pub.Addr(),
		logger: logger,
		done:   make(chan struct{}),
		rtt:    make(map[wgkey.Public]time.Duration),
	}
	if mtu < 1280 || mtu > 65535 {
		return nil, fmt.Errorf("wgnet: new: mtu %d outside 1280..65535", mtu)
	}
	n.link = newLinkTUN(mtu)
	n.link.inbound = cfg.inbound
	s, err := newStack(n.link, n.addr, cfg.tcpProbe)
	if err != nil {
		return nil, fmt.Errorf("wgnet: new: %w", err)
	}
	n.stack = s
	bind := cfg.Bind
	if bind == nil {
		bind = NewUDPBind(cfg.ListenAddr.Addr())
	}
	n.bind = bind
	n.dev = device.NewDevice(n.link.device(), bind, wgLogger(logger))
	port := cfg.ListenAddr.Port()
	if err := n.dev.IpcSet(fmt.Sprintf("private_key=%s\nlisten_port=%d\n", cfg.PrivateKey.Hex(), port)); err != nil {
		n.shutdown()
		return nil, fmt.Errorf("wgnet: new: configure device: %w", err)
	}
	if err := n.dev.Up(); err != nil {
		n.shutdown()
		return nil, fmt.Errorf("wgnet: new: bring device up: %w", err)
	}
	if err := n.startEcho(); err != nil {
		n.shutdown()
		return nil, err
	}
	return n, nil
}

func wgLogger(l *slog.Logger) *device.Logger {
	return &device.Logger{
		Verbosef: func(format string, args ...any) {
			l.Debug(fmt.Sprintf(format, args...), "component", "wireguard")
		},
		Errorf: func(format string, args ...any) {
			l.Warn(fmt.Sprintf(format, args...), "component", "wireguard")
		},
	}
}

// Up reports whether the WireGuard device is up: brought up by New and not
// closed since.
func (n *Node) Up() bool {
	select {
	case <-n.done:
		return false
	case <-n.dev.Wait():
		return false
	default:
		return true
	}
}

// Addr returns the node's tunnel address.
func (n *Node) Addr() netip.Addr { return n.addr }

// PublicKey returns the node's public key.
func (n *Node) PublicKey() wgkey.Public { return n.pub }

// ListenPort returns the UDP port WireGuard is bound to, or 0 if the bind
// has no port (a stream carrier, for example).
func (n *Node) ListenPort() uint16 {
	s, err := n.dev.IpcGet()
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(s, "\n") {
		if v, ok := strings.CutPrefix(line, "listen_port="); ok {
			p, _ := strconv.Atoi(v)
			return uint16(p)
		}
	}
	return 0
}

// AddPeer adds p, or updates it if it is already a peer.
func (n *Node) AddPeer(p Peer) error {
	if p.PublicKey.IsZero() {
		return errors.New("wgnet: add peer: zero public key")
	}
	if p.PublicKey == n.pub {
		return errors.New("wgnet: add peer: that is this node's own key")
	}
	var b strings.Builder
	fmt.Fprintf(&b, "public_key=%s\nreplace_allowed_ips=true\nallowed_ip=%s/128\n", p.PublicKey.Hex(), p.PublicKey.Addr())
	if p.Endpoint.IsValid() {
		fmt.Fprintf(&b, "endpoint=%s\n", p.Endpoint)
	}
	fmt.Fprintf(&b, "persistent_keepalive_interval=%d\n", int(p.Keepalive/time.Second))
	if err := n.dev.IpcSet(b.String()); err != nil {
		return fmt.Errorf("wgnet: add peer %s: %w", p.PublicKey.Short(), err)
	}
	return nil
}

// RemovePeer removes the peer with key pub; removing an unknown peer is not
// an error.
func (n *Node) RemovePeer(pub wgkey.Public) error {
	if err := n.dev.IpcSet(fmt.Sprintf("public_key=%s\nremove=true\n", pub.Hex())); err != nil {
		return fmt.Errorf("wgnet: remove peer %s: %w", pub.Short(), err)
	}
	n.mu.Lock()
	delete(n.rtt, pub)
	n.mu.Unlock()
	return nil
}

// Peers returns the stats of every peer.
func (n *Node) Peers() []PeerStats {
	s, err := n.dev.IpcGet()
	if err != nil {
		return nil
	}
	var out []PeerStats
	var cur *PeerStats
	var sec, nsec int64
	flush := func() {
		if cur != nil {
			if sec != 0 || nsec != 0 {
				cur.LastHandshake = time.Unix(sec, nsec)
			}
			out = append(out, *cur)
		}
		sec, nsec = 0, 0
	}
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), "=")
		if !ok {
			continue
		}
		switch k {
		case "public_key":
			flush()
			var pk wgkey.Public
			if b, err := hexDecode(v); err == nil {
				copy(pk[:], b)
			}
			cur = &PeerStats{PublicKey: pk, Addr: pk.Addr()}
			n.mu.Lock()
			cur.RTT = n.rtt[pk]
			n.mu.Unlock()
		case "endpoint":
			if cur != nil {
				cur.Endpoint = v
			}
		case "last_handshake_time_sec":
			sec, _ = strconv.ParseInt(v, 10, 64)
		case "last_handshake_time_nsec":
			nsec, _ = strconv.ParseInt(v, 10, 64)
		case "rx_bytes":
			if cur != nil {
				cur.RxBytes, _ = strconv.ParseUint(v, 10, 64)
			}
		case "tx_bytes":
			if cur != nil {
				cur.TxBytes, _ = strconv.ParseUint(v, 10, 64)
			}
		}
	}
	flush()
	return out
}

// DialContext dials a TCP connection over the tunnel. network must be "tcp"
// or "tcp6"; address is "[tunnel address]:port".
func (n *Node) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	if network != "tcp" && network != "tcp6" {
		return nil, fmt.Errorf("wgnet: dial %s: network %q not supported", address, network)
	}
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return nil, fmt.Errorf("wgnet: dial %s: %w", address, err)
	}
	fa, proto := fullAddr(ap)
	c, err := gonet.DialContextTCP(ctx, n.stack, fa, proto)
	if err != nil {
		return nil, fmt.Errorf("wgnet: dial %s: %w", address, err)
	}
	return c, nil
}

// Close shuts the device and its stack down and waits for every goroutine
// they started. It is idempotent.
func (n *Node) Close() error {
	n.closeOnce.Do(func() {
		close(n.done)
		n.shutdown()
	})
	return n.closeErr
}

// shutdown stops the echo responder, the WireGuard device (which closes
// the bind and the link) and the stack, in that order.
func (n *Node) shutdown() {
	if n.echo != nil {
		n.echo.Close()
	}
	n.dev.Close()
	n.link.shut()
	n.stack.Close()
	n.stack.Wait()
	n.wg.Wait()
}
