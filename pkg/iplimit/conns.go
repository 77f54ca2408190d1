package iplimit

import (
	"context"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// Conns counts the connections each client holds open and caps them. It is
// safe for concurrent use; an entry lives only while its client has a
// connection open.
type Conns struct {
	mu    sync.Mutex // guards the following
	count map[netip.Prefix]int
	total int
}

// NewConns returns an empty connection table.
func NewConns() *Conns { return &Conns{count: map[netip.Prefix]int{}} }

// Acquire counts a new connection of client k and reports whether the
// client is within limit connections; a refused connection is not
// counted. limit <= 0 means no limit.
func (c *Conns) Acquire(k netip.Prefix, limit int) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if limit > 0 && c.count[k] >= limit {
		return false
	}
	c.count[k]++
	c.total++
	return true
}

// Release uncounts a connection Acquire counted.
func (c *Conns) Release(k netip.Prefix) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if n := c.count[k]; n > 1 {
		c.count[k] = n - 1
	} else {
		delete(c.count, k)
	}
	c.total--
}

// Open returns the number of counted connections and of clients holding
// them.
func (c *Conns) Open() (conns, clients int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.total, len(c.count)
}

// ListenConfig configures Listen.
type ListenConfig struct {
	// PerClient caps the connections one client holds open; zero or less
	// means no cap.
	PerClient func(addr netip.Addr) int
	// ExcessGrace, when positive, hands a connection past the cap to the
	// server anyway, marked (see [Excess]) and with a deadline this far
	// ahead, so that the server can answer it (429) before it closes; zero
	// closes such a connection at once.
	ExcessGrace time.Duration
	// Conns is the table to count in; nil means a new one.
	Conns *Conns
	// Key maps a remote address to its client; nil means [Key]. [Exact]
	// counts every address apart (tunnel peers, whose addresses share one
	// prefix).
	Key func(netip.Addr) netip.Prefix
	// Refused, if set, is called for every connection past the cap.
	Refused func(addr netip.Addr)
}

// Listen wraps l so that every accepted connection counts against its
// client's cap until it is closed.
func Listen(l net.Listener, cfg ListenConfig) *Listener {
	if cfg.Conns == nil {
		cfg.Conns = NewConns()
	}
	return &Listener{Listener: l, cfg: cfg}
}

// Listener is a net.Listener that caps connections per client.
type Listener struct {
	net.Listener
	cfg ListenConfig
}

// Conns returns the listener's connection table.
func (l *Listener) Conns() *Conns { return l.cfg.Conns }

// Accept returns the next connection: one within its client's cap, or one
// past it marked for a quick answer (ExcessGrace), while it closes excess
// connections without grace itself — with a reset when the connection can
// Abort (tunnel connections, see pkg/wgnet), so none lingers.
func (l *Listener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		addr := remoteAddr(c)
		limit := 0
		if l.cfg.PerClient != nil {
			limit = l.cfg.PerClient(addr)
		}
		key := Key
		if l.cfg.Key != nil {
			key = l.cfg.Key
		}
		if k := key(addr); l.cfg.Conns.Acquire(k, limit) {
			return &conn{Conn: c, key: k, conns: l.cfg.Conns}, nil
		}
		if l.cfg.Refused != nil {
			l.cfg.Refused(addr)
		}
		if l.cfg.ExcessGrace <= 0 {
			if a, ok := c.(interface{ Abort() error }); ok {
				_ = a.Abort() // a reset: no endpoint lingers after it
			} else {
				c.Close()
			}
			continue
		}
		c.SetDeadline(time.Now().Add(l.cfg.ExcessGrace))
		return &conn{Conn: c, excess: true}, nil
	}
}

// Exact maps addr to itself as a client.
func Exact(addr netip.Addr) netip.Prefix {
	addr = addr.Unmap().WithZone("")
	return netip.PrefixFrom(addr, addr.BitLen())
}

func remoteAddr(c net.Conn) netip.Addr {
	if ta, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		a, _ := netip.AddrFromSlice(ta.IP)
		return a.Unmap()
	}
	ap, _ := netip.ParseAddrPort(c.RemoteAddr().String())
	return ap.Addr().Unmap()
}

// conn releases its count once when closed.
type conn struct {
	net.Conn
	key    netip.Prefix
	conns  *Conns // nil for an excess connection, which was not counted
	excess bool
	closed atomic.Bool
}

func (c *conn) Close() error {
	err := c.Conn.Close()
	if c.closed.CompareAndSwap(false, true) && c.conns != nil {
		c.conns.Release(c.key)
	}
	return err
}

// NetConn returns the wrapped connection, as crypto/tls.Conn does.
func (c *conn) NetConn() net.Conn { return c.Conn }

type excessKey struct{}

// ConnContext is an http.Server ConnContext: it records in ctx whether c
// is past its client's cap, for [Excess].
// A *tls.Conn (the server's, with ServeTLS) is looked through.
func ConnContext(ctx context.Context, c net.Conn) context.Context {
	for range 4 {
		switch v := c.(type) {
		case *conn:
			if v.excess {
				return context.WithValue(ctx, excessKey{}, true)
			}
			return ctx
		case interface{ NetConn() net.Conn }:
			c = v.NetConn()
		default:
			return ctx
		}
	}
	return ctx
}

// Excess reports whether the request context ctx belongs to a connection
// past its client's cap (see ListenConfig.ExcessGrace and ConnContext):
// the server should answer 429 and close it.
func Excess(ctx context.Context) bool {
	v, _ := ctx.Value(excessKey{}).(bool)
	return v
}
