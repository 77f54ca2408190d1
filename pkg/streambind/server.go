package streambind

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.zx2c4.com/wireguard/conn"

	"github.com/postern/postern/pkg/wgkey"
)

// Defaults for the zero values of ServerConfig and ClientConfig.
const (
	// DefaultSendQueueBytes bounds the frames queued on one stream.
	DefaultSendQueueBytes = 1 << 20
	// DefaultMaxStreams bounds the streams a Server holds open.
	DefaultMaxStreams = 10000
)

// Grant is what an authorised stream request is bound to.
type Grant struct {
	// PublicKey is the WireGuard key of the credential: the stream is this
	// peer's endpoint and no other's.
	PublicKey wgkey.Public
	// ConnectorID names the connector in logs.
	ConnectorID string
	// Expires is when the credential expires; the stream is cut then. The
	// zero value means never.
	Expires time.Time
}

// ProofHeader carries the connector's proof that it holds the
// credential's private key (see enroll.Proof, made for Path).
const ProofHeader = "Postern-Proof"

// Authorizer decides whether a stream may open. It is called with the
// bearer credential of the upgrade request and its proof of possession
// (ProofHeader; empty if none), from concurrent requests, and must return
// promptly. Its errors are logged, never shown to the client, and must not
// contain the credential.
type Authorizer interface {
	AuthorizeStream(ctx context.Context, credential, proof string) (Grant, error)
}

// ServerConfig configures a Server.
type ServerConfig struct {
	// UDP is the node's UDP bind, which the Server wraps; nil means the
	// node has no UDP carrier at all.
	UDP conn.Bind
	// Authorizer admits streams. Required.
	Authorizer Authorizer
	// MaxPacket is the largest WireGuard packet accepted from a stream; a
	// larger frame cuts the stream off. Zero means DefaultMaxPacket.
	MaxPacket int
	// SendQueueBytes bounds the frames queued on each stream; further
	// packets are dropped while it is full. Zero means
	// DefaultSendQueueBytes.
	SendQueueBytes int
	// MaxStreams bounds the open streams; zero means DefaultMaxStreams.
	MaxStreams int
	// Logger; nil discards.
	Logger *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Server is the mesh node's side of the stream carrier. As an
// http.Handler it accepts stream upgrades on Path; as a conn.Bind it wraps
// the node's UDP bind, so that WireGuard receives from UDP and from every
// stream, and sends to a stream peer's Endpoint over its stream and to
// every other endpoint over UDP. A peer that moves between carriers is
// followed by WireGuard's roaming: its endpoint is the source of its
// latest authenticated packet. Its methods are safe for concurrent use.
//
// Streams exist only while the bind is open: Close cuts them all and waits
// for their goroutines.
type Server struct {
	cfg    ServerConfig
	logger *slog.Logger
	inbox  *inbox
	cut    atomic.Uint64
	drops  atomic.Uint64 // of closed streams; open ones count their own

	mu      sync.Mutex // guards the following
	done    chan struct{}
	streams map[wgkey.Public]*serverStream
	wg      sync.WaitGroup
}

var (
	_ conn.Bind    = (*Server)(nil)
	_ http.Handler = (*Server)(nil)
)

// serverStream is one accepted stream.
type serverStream struct {
	grant     Grant
	conn      net.Conn
	q         *sendQueue
	done      chan struct{}
	closeOnce sync.Once
}

func (st *serverStream) close() {
	st.closeOnce.Do(func() {
		close(st.done)
		st.q.close()
		st.conn.Close()
	})
}

// NewServer returns a closed Server; WireGuard opens it.
func NewServer(cfg ServerConfig) (*Server, error) {
	if cfg.Authorizer == nil {
		return nil, errors.New("streambind: new server: no authorizer")
	}
	if cfg.MaxPacket < 0 || cfg.MaxPacket > MaxFrame || cfg.SendQueueBytes < 0 || cfg.MaxStreams < 0 {
		return nil, fmt.Errorf("streambind: new server: limits out of range (max packet %d, send queue %d, max streams %d)",
			cfg.MaxPacket, cfg.SendQueueBytes, cfg.MaxStreams)
	}
	cfg.MaxPacket = cmp(cfg.MaxPacket, DefaultMaxPacket)
	cfg.SendQueueBytes = max(cmp(cfg.SendQueueBytes, DefaultSendQueueBytes), cfg.MaxPacket+FrameHeader)
	cfg.MaxStreams = cmp(cfg.MaxStreams, DefaultMaxStreams)
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Server{cfg: cfg, logger: logger, inbox: newInbox(cfg.MaxPacket)}, nil
}

func cmp[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// ServerStats counts a Server's streams.
type ServerStats struct {
	// Streams is the number of open streams.
	Streams int
	// Cut is the number of streams cut off for breaking the protocol.
	Cut uint64
	// Dropped is the number of packets dropped because a stream's send
	// queue was full.
	Dropped uint64
}

// Stats returns the Server's counters.
func (s *Server) Stats() ServerStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := ServerStats{Streams: len(s.streams), Cut: s.cut.Load(), Dropped: s.drops.Load()}
	for _, x := range s.streams {
		st.Dropped += x.q.dropped.Load()
	}
	return st
}

// HasStream reports whether the peer with key pub has an open stream.
func (s *Server) HasStream(pub wgkey.Public) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.streams[pub] != nil
}

// ServeHTTP implements http.Handler: it authorises an upgrade request on
// Path, switches the connection to the stream protocol and serves the
// stream until it ends.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != Path {
		http.Error(w, "no such Postern API endpoint", http.StatusNotFound)
		return
	}
	if !upgradeRequested(r.Header) || r.Method != http.MethodGet {
		w.Header().Set("Upgrade", Protocol)
		w.Header().Set("Connection", "Upgrade")
		http.Error(w, "this endpoint accepts only a GET with Upgrade: "+Protocol+" over HTTP/1.1", http.StatusUpgradeRequired)
		return
	}
	cred, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || cred == "" {
		w.Header().Set("WWW-Authenticate", `Bearer realm="postern"`)
		http.Error(w, "present the connector credential as a bearer token", http.StatusUnauthorized)
		return
	}
	grant, err := s.cfg.Authorizer.AuthorizeStream(r.Context(), cred, r.Header.Get(ProofHeader))
	if err != nil {
		s.logger.Warn("stream_refused", "remote_addr", r.RemoteAddr, "error", err)
		http.Error(w, "the credential does not admit a stream to this mesh node", http.StatusForbidden)
		return
	}
	hj, ok := w.(http.Hijacker)
	if !ok {
		http.Error(w, "streams need HTTP/1.1", http.StatusHTTPVersionNotSupported)
		return
	}
	c, brw, err := hj.Hijack()
	if err != nil {
		return
	}
	st, err := s.register(grant, c)
	if err != nil {
		s.logger.Warn("stream_refused", "connector", grant.ConnectorID, "error", err)
		const msg = "this mesh node cannot take another stream now; try again later\n"
		_, _ = fmt.Fprintf(c, "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s", len(msg), msg)
		c.Close()
		return
	}
	defer s.wg.Done()
	s.serve(st, brw)
}

// upgradeRequested reports whether h asks to switch to Protocol.
func upgradeRequested(h http.Header) bool {
	return headerHasToken(h, "Connection", "upgrade") && strings.EqualFold(h.Get("Upgrade"), Protocol)
}

func headerHasToken(h http.Header, name, token string) bool {
	for _, v := range h.Values(name) {
		for _, t := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

// register adds a stream for g, replacing the peer's previous stream (its
// connector reconnected). The caller must call s.wg.Done when the stream's
// handler returns.
func (s *Server) register(g Grant, c net.Conn) (*serverStream, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.done == nil {
		return nil, errors.New("streambind: server is not open")
	}
	old := s.streams[g.PublicKey]
	if old == nil && len(s.streams) >= s.cfg.MaxStreams {
		return nil, fmt.Errorf("streambind: %d streams open, the limit", len(s.streams))
	}
	if old != nil {
		s.drops.Add(old.q.dropped.Load())
		old.close()
	}
	st := &serverStream{grant: g, q: newSendQueue(s.cfg.SendQueueBytes), done: make(chan struct{}), conn: c}
	s.streams[g.PublicKey] = st
	s.wg.Add(1)
	return st, nil
}

// Drop closes pub's stream, if it has one (its connector was detached,
// revoked, or its group removed), and reports whether it had.
func (s *Server) Drop(pub wgkey.Public) bool {
	s.mu.Lock()
	st := s.streams[pub]
	s.mu.Unlock()
	if st == nil {
		return false
	}
	st.close()
	return true
}

// unregister removes st if it is still its peer's stream, and closes it.
func (s *Server) unregister(st *serverStream) {
	s.mu.Lock()
	if s.streams[st.grant.PublicKey] == st {
		delete(s.streams, st.grant.PublicKey)
		s.drops.Add(st.q.dropped.Load())
	}
	s.mu.Unlock()
	st.close()
}

// serve answers 101 and runs the stream: the writer in a new goroutine,
// the reader in this one.
func (s *Server) serve(st *serverStream, brw *bufio.ReadWriter) {
	defer s.unregister(st)
	c := st.conn
	c.SetDeadline(time.Time{})
	_, _ = brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: " + Protocol + "\r\nConnection: Upgrade\r\n\r\n")
	if err := brw.Flush(); err != nil {
		return
	}
	if !st.grant.Expires.IsZero() {
		t := time.AfterFunc(st.grant.Expires.Sub(s.cfg.Now()), st.close)
		defer t.Stop()
	}
	// Bytes the client sent early sit in the hijacked reader; read them
	// first, then the connection through a larger buffer.
	early, _ := brw.Reader.Peek(brw.Reader.Buffered())
	br := bufio.NewReaderSize(io.MultiReader(bytes.NewReader(bytes.Clone(early)), c), readBufferSize)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		_ = st.q.writeLoop(c, st.done)
		st.close()
	}()
	log := s.logger.With("connector", st.grant.ConnectorID, "remote_addr", c.RemoteAddr().String())
	log.Info("stream_opened")
	err := s.inbox.readLoop(br, Endpoint{Key: st.grant.PublicKey}, st.done)
	cut := errors.Is(err, ErrFrameTooBig) || errors.Is(err, ErrBadPacket)
	if cut {
		s.cut.Add(1)
	}
	st.close()
	wg.Wait()
	if cut {
		log.Warn("stream_cut", "error", err)
	} else {
		log.Info("stream_closed")
	}
}

// Open implements conn.Bind: it opens the UDP bind on port and adds the
// streams' receive function.
func (s *Server) Open(port uint16) ([]conn.ReceiveFunc, uint16, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.done != nil {
		return nil, 0, conn.ErrBindAlreadyOpen
	}
	var fns []conn.ReceiveFunc
	var actual uint16
	if s.cfg.UDP != nil {
		var err error
		if fns, actual, err = s.cfg.UDP.Open(port); err != nil {
			return nil, 0, err
		}
	}
	s.done = make(chan struct{})
	s.streams = make(map[wgkey.Public]*serverStream)
	return append(fns, s.inbox.receiver(s.done)), actual, nil
}

// Close implements conn.Bind: it closes the UDP bind, cuts every stream
// and waits for their goroutines. It is idempotent.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.done == nil {
		s.mu.Unlock()
		return nil
	}
	close(s.done)
	s.done = nil
	for _, st := range s.streams {
		st.close()
	}
	s.streams = nil
	s.mu.Unlock()
	var err error
	if s.cfg.UDP != nil {
		err = s.cfg.UDP.Close()
	}
	s.wg.Wait()
	return err
}

// SetMark implements conn.Bind.
func (s *Server) SetMark(mark uint32) error {
	if s.cfg.UDP == nil {
		return nil
	}
	return s.cfg.UDP.SetMark(mark)
}

// Send implements conn.Bind. A stream endpoint's packets are queued on its
// stream, or dropped if it has none or its queue is full, as UDP would
// drop them; every other endpoint goes to the UDP bind.
func (s *Server) Send(bufs [][]byte, ep conn.Endpoint) error {
	e, ok := ep.(Endpoint)
	if !ok {
		if s.cfg.UDP == nil {
			return fmt.Errorf("streambind: send: %w", errForeignEndpoint)
		}
		return s.cfg.UDP.Send(bufs, ep)
	}
	s.mu.Lock()
	st := s.streams[e.Key]
	s.mu.Unlock()
	if st != nil {
		st.q.push(bufs)
	}
	return nil
}

// ParseEndpoint implements conn.Bind with the UDP bind's endpoints; stream
// endpoints are only ever learnt from received packets.
func (s *Server) ParseEndpoint(str string) (conn.Endpoint, error) {
	if s.cfg.UDP == nil {
		return nil, fmt.Errorf("streambind: parse endpoint %q: no UDP bind", str)
	}
	return s.cfg.UDP.ParseEndpoint(str)
}

// BatchSize implements conn.Bind.
func (s *Server) BatchSize() int {
	if s.cfg.UDP != nil {
		return s.cfg.UDP.BatchSize()
	}
	return conn.IdealBatchSize
}
