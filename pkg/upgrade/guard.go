package upgrade

import (
	"fmt"
	"io"
	"sync"
)

// Guard wraps the backend side of an upgraded WebSocket connection:
// writes to it (what the client sends) reach the backend only while they
// are well-formed client frames (RFC 6455 §5.2): masked, a known opcode,
// reserved bits clear unless an extension was negotiated (extensions),
// control frames unfragmented and at most 125 bytes, continuation frames
// only inside a fragmented message, minimal length encoding, and nothing
// after a close frame. At the first byte that breaks these rules, Write
// passes what came before it, then fails with [ErrFrame] and every later
// Write fails too; the proxy then closes both sides. A raw HTTP request
// written after the handshake fails at its first byte.
//
// Frame payloads are not inspected: a WebSocket backend unmasks them, and
// a backend that does not speak WebSocket meets the frame header first,
// whose second byte (mask bit set) is not HTTP.
//
// Reads and Close go straight to rwc. Write is safe for one writer at a
// time, as io.Copy uses it.
func Guard(rwc io.ReadWriteCloser, extensions bool) io.ReadWriteCloser {
	return &guard{ReadWriteCloser: rwc, ext: extensions}
}

type guard struct {
	io.ReadWriteCloser
	ext bool

	mu      sync.Mutex // guards the following
	hdr     [14]byte   // the frame header being read
	hn      int        // bytes of hdr read
	payload uint64     // payload bytes left in the current frame
	inMsg   bool       // inside a fragmented data message
	closed  bool       // a close frame was sent
	err     error      // sticky
}

// CloseWrite passes a half-close on to the backend when it supports one.
func (g *guard) CloseWrite() error {
	if cw, ok := g.ReadWriteCloser.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

func (g *guard) Write(p []byte) (int, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.err != nil {
		return 0, g.err
	}
	ok := g.scanLocked(p)
	n, err := g.ReadWriteCloser.Write(p[:ok])
	if err != nil {
		return n, err
	}
	if ok < len(p) {
		return n, g.err
	}
	return n, nil
}

// scanLocked advances the frame state over p and returns how many bytes of
// p are valid; on a violation it sets g.err.
func (g *guard) scanLocked(p []byte) int {
	i := 0
	for i < len(p) {
		if g.payload > 0 {
			n := uint64(len(p) - i)
			if n > g.payload {
				n = g.payload
			}
			g.payload -= n
			i += int(n)
			continue
		}
		if g.closed {
			g.err = fmt.Errorf("upgrade: %w: data after the close frame", ErrFrame)
			return i
		}
		g.hdr[g.hn] = p[i]
		g.hn++
		i++
		if err := g.headerLocked(); err != nil {
			g.err = err
			return i - 1
		}
	}
	return i
}

// headerLocked checks the header bytes read so far; once the header is
// complete it sets g.payload and resets g.hn for the next frame.
func (g *guard) headerLocked() error {
	b0 := g.hdr[0]
	fin, rsv, op := b0&0x80 != 0, b0&0x70, b0&0x0f
	if g.hn == 1 {
		switch {
		case rsv != 0 && !g.ext:
			return fmt.Errorf("upgrade: %w: reserved bits set without an extension", ErrFrame)
		case op > 2 && op < 8 || op > 10:
			return fmt.Errorf("upgrade: %w: opcode %d", ErrFrame, op)
		case op >= 8 && !fin:
			return fmt.Errorf("upgrade: %w: fragmented control frame", ErrFrame)
		case op == 0 && !g.inMsg:
			return fmt.Errorf("upgrade: %w: continuation outside a message", ErrFrame)
		case (op == 1 || op == 2) && g.inMsg:
			return fmt.Errorf("upgrade: %w: new message inside a fragmented one", ErrFrame)
		}
		return nil
	}
	b1 := g.hdr[1]
	if g.hn == 2 {
		switch {
		case b1&0x80 == 0:
			return fmt.Errorf("upgrade: %w: unmasked client frame", ErrFrame)
		case op >= 8 && b1&0x7f > 125:
			return fmt.Errorf("upgrade: %w: control frame over 125 bytes", ErrFrame)
		}
	}
	var lenBytes int
	switch b1 & 0x7f {
	case 126:
		lenBytes = 2
	case 127:
		lenBytes = 8
	}
	if g.hn == 3 && lenBytes == 8 && g.hdr[2]&0x80 != 0 {
		return fmt.Errorf("upgrade: %w: payload length over 2^63", ErrFrame)
	}
	if g.hn == 2+lenBytes && !minimal(g.hdr[1:2+lenBytes]) {
		return fmt.Errorf("upgrade: %w: non-minimal payload length", ErrFrame)
	}
	if g.hn < 2+lenBytes+4 {
		return nil
	}
	n := uint64(b1 & 0x7f)
	if lenBytes > 0 {
		n = 0
		for _, b := range g.hdr[2 : 2+lenBytes] {
			n = n<<8 | uint64(b)
		}
	}
	if op <= 2 {
		g.inMsg = !fin
	}
	g.payload = n
	g.hn = 0
	if op == 8 {
		g.closed = true
	}
	return nil
}

// minimal reports whether the length field l (the second header byte and
// its extended length) uses the shortest encoding, as RFC 6455 §5.2
// requires.
func minimal(l []byte) bool {
	var n uint64
	for _, b := range l[1:] {
		n = n<<8 | uint64(b)
	}
	switch l[0] & 0x7f {
	case 126:
		return n >= 126
	case 127:
		return n > 0xffff
	}
	return true
}
