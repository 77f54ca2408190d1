package wgnet

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
	"gvisor.dev/gvisor/pkg/waiter"
)

// listenBacklog is the accept queue of a tunnel listener (Linux's default
// somaxconn).
const listenBacklog = 4096

// Listen listens for TCP connections on port of the node's tunnel address.
// Its connections are *Conn, which a server can Abort.
func (n *Node) Listen(port uint16) (net.Listener, error) {
	fa, proto := fullAddr(netip.AddrPortFrom(n.addr, port))
	var wq waiter.Queue
	ep, terr := n.stack.NewEndpoint(tcp.ProtocolNumber, proto, &wq)
	if terr != nil {
		return nil, fmt.Errorf("wgnet: listen on port %d: %s", port, terr)
	}
	if terr := ep.Bind(fa); terr != nil {
		ep.Close()
		return nil, fmt.Errorf("wgnet: listen on port %d: bind: %s", port, terr)
	}
	if terr := ep.Listen(listenBacklog); terr != nil {
		ep.Close()
		return nil, fmt.Errorf("wgnet: listen on port %d: %s", port, terr)
	}
	return &listener{ep: ep, wq: &wq, addr: &net.TCPAddr{IP: n.addr.AsSlice(), Port: int(port)}, closed: make(chan struct{})}, nil
}

// listener is a tunnel TCP listener, like gonet's, whose connections keep
// their endpoint so that they can be aborted.
type listener struct {
	ep     tcpip.Endpoint
	wq     *waiter.Queue
	addr   net.Addr
	once   sync.Once
	closed chan struct{}
}

// Accept waits for the next connection; after Close it returns
// net.ErrClosed.
func (l *listener) Accept() (net.Conn, error) {
	entry, ready := waiter.NewChannelEntry(waiter.ReadableEvents)
	l.wq.EventRegister(&entry)
	defer l.wq.EventUnregister(&entry)
	for {
		ep, wq, err := l.ep.Accept(nil)
		if err == nil {
			return &Conn{TCPConn: gonet.NewTCPConn(wq, ep), ep: ep}, nil
		}
		if _, ok := err.(*tcpip.ErrWouldBlock); !ok {
			select {
			case <-l.closed:
				return nil, net.ErrClosed
			default:
			}
			return nil, &net.OpError{Op: "accept", Net: "tcp", Addr: l.addr, Err: errors.New(err.String())}
		}
		select {
		case <-ready:
		case <-l.closed:
			return nil, net.ErrClosed
		}
	}
}

// Close stops listening; it is idempotent.
func (l *listener) Close() error {
	l.once.Do(func() {
		close(l.closed)
		l.ep.Close()
	})
	return nil
}

// Addr returns the tunnel address and port listened on.
func (l *listener) Addr() net.Addr { return l.addr }

// Conn is a TCP connection accepted on a tunnel listener.
type Conn struct {
	*gonet.TCPConn
	ep tcpip.Endpoint
}

// Abort closes c with a reset rather than the orderly close, so that its
// endpoint goes at once instead of lingering in FIN-WAIT and TIME-WAIT: for
// connections a server refuses without a word.
func (c *Conn) Abort() error {
	c.ep.SocketOptions().SetLinger(tcpip.LingerOption{Enabled: true, Timeout: 0})
	return c.TCPConn.Close()
}
