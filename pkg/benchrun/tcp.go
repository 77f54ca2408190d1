package benchrun

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"

	"github.com/postern/postern/pkg/access"
	"github.com/postern/postern/pkg/harness"
)

// The TCP apps of the benchmark system.
const (
	tcpEchoApp   = "bench-echo"
	tcpSourceApp = "bench-source"
)

// tcpTargets are the targets of the benchmark system's TCP apps, on
// loopback beside the sample app.
type tcpTargets struct{ echo, source *harness.TCPTarget }

func startTCPTargets() (*tcpTargets, error) {
	echo, err := harness.StartTCPTarget(harness.TargetEcho)
	if err != nil {
		return nil, fmt.Errorf("benchrun: tcp target: %w", err)
	}
	source, err := harness.StartTCPTarget(harness.TargetSource)
	if err != nil {
		echo.Close()
		return nil, fmt.Errorf("benchrun: tcp target: %w", err)
	}
	return &tcpTargets{echo: echo, source: source}, nil
}

// catalog returns the TCP apps' catalogue entries.
func (t *tcpTargets) catalog() string {
	return harness.TCPApp(tcpEchoApp, t.echo.Addr()) + harness.TCPApp(tcpSourceApp, t.source.Addr())
}

func (t *tcpTargets) close() {
	t.echo.Close()
	t.source.Close()
}

// client returns a client of TCP app id through mesh node 0 with token.
func (t *tcpTargets) client(h *harness.Harness, id, token string) *access.Client {
	c, err := access.New(access.Config{AppURL: h.URLFor(0, id+".localhost"), Token: token, HTTPClient: h.StreamClient(0)})
	if err != nil {
		panic("benchrun: " + err.Error()) // the URL is built here: cannot happen
	}
	return c
}

// tcpClients adapts two access clients to TCPSystem.
type tcpClients struct{ echo, source *access.Client }

func (c tcpClients) DialEcho(ctx context.Context) (net.Conn, error)   { return c.echo.Dial(ctx) }
func (c tcpClients) DialSource(ctx context.Context) (net.Conn, error) { return c.source.Dial(ctx) }

// tcpMessage is the size of one tcp scenario round trip.
const tcpMessage = 128

// openTCPEcho measures the round trip of a small message through a TCP
// app: each worker takes a stream from a pool (opening one, a WebSocket
// to the mesh, if there is none), sends the message, reads the echo and
// puts the stream back.
func openTCPEcho(_ context.Context, sys System, p Params) (*Row, error) {
	ts, err := sys.TCP()
	if err != nil {
		return nil, err
	}
	msg := bytes.Repeat([]byte("t"), tcpMessage)
	return streamRow(ts.DialEcho, p.Concurrency, func(conn net.Conn, read *atomic.Int64) error {
		if _, err := conn.Write(msg); err != nil {
			return fmt.Errorf("benchrun: tcp: write: %w", err)
		}
		got := make([]byte, len(msg))
		if _, err := io.ReadFull(conn, got); err != nil {
			return fmt.Errorf("benchrun: tcp: read: %w", err)
		}
		read.Add(int64(len(got)))
		if !bytes.Equal(got, msg) {
			return fmt.Errorf("benchrun: tcp: %w", ErrWebSocket)
		}
		return nil
	}), nil
}

// openTCPBulk measures the throughput of a TCP app: each op asks the
// source target for BulkBytes and reads them through the stream.
func openTCPBulk(_ context.Context, sys System, p Params) (*Row, error) {
	ts, err := sys.TCP()
	if err != nil {
		return nil, err
	}
	if p.BulkBytes <= 0 {
		return nil, fmt.Errorf("benchrun: bulk size %d is not positive", p.BulkBytes)
	}
	bufs := &sync.Pool{New: func() any { b := make([]byte, 64<<10); return &b }}
	return streamRow(ts.DialSource, p.Concurrency, func(conn net.Conn, read *atomic.Int64) error {
		var hdr [8]byte
		binary.BigEndian.PutUint64(hdr[:], uint64(p.BulkBytes))
		if _, err := conn.Write(hdr[:]); err != nil {
			return fmt.Errorf("benchrun: bulk-tcp: write: %w", err)
		}
		bp := bufs.Get().(*[]byte)
		defer bufs.Put(bp)
		n, err := io.CopyBuffer(counter{read}, io.LimitReader(onlyReader{conn}, p.BulkBytes), *bp)
		if err != nil || n != p.BulkBytes {
			return fmt.Errorf("benchrun: bulk-tcp: %w: got %d bytes, want %d (%v)", ErrShortBody, n, p.BulkBytes, err)
		}
		return nil
	}), nil
}

// streamRow returns the row of a load whose ops each use one stream from
// a pool of at most conc, opened with dial on first need; a stream is
// closed when the run ends during its op.
func streamRow(dial func(context.Context) (net.Conn, error), conc int, use func(net.Conn, *atomic.Int64) error) *Row {
	open := func(ctx context.Context) (net.Conn, error) {
		c, err := dial(ctx)
		if err != nil {
			return nil, fmt.Errorf("benchrun: open stream: %w", err)
		}
		return c, nil
	}
	return connRow(conc, open, func(c net.Conn) { c.Close() }, func(ctx context.Context, c net.Conn, read *atomic.Int64) error {
		stop := context.AfterFunc(ctx, func() { c.Close() })
		defer stop()
		return use(c, read)
	}, nil)
}
