package streambind

import (
	"bufio"
	"net"
	"sync"

	"golang.zx2c4.com/wireguard/conn"
)

// inboxLen bounds the packets read from streams and not yet taken by
// WireGuard; with the packet limit it bounds a bind's receive memory. A
// stream whose packets do not fit waits, and TCP pushes back on its sender.
const inboxLen = 1024

// readBufferSize is the read buffer of every stream.
const readBufferSize = 64 << 10

// inPacket is one packet read from a stream.
type inPacket struct {
	buf *[]byte
	n   int
	ep  conn.Endpoint
}

// inbox fans the packets of every stream in to one ReceiveFunc.
type inbox struct {
	ch        chan inPacket
	maxPacket int
	bufs      sync.Pool // *[]byte of maxPacket bytes
}

func newInbox(maxPacket int) *inbox {
	ib := &inbox{ch: make(chan inPacket, inboxLen), maxPacket: maxPacket}
	ib.bufs.New = func() any { b := make([]byte, maxPacket); return &b }
	return ib
}

// readLoop reads frames from br into the inbox, each reported as coming
// from ep, until a read fails or stop closes. A frame that breaks the
// protocol ends the loop with its error.
func (ib *inbox) readLoop(br *bufio.Reader, ep conn.Endpoint, stop <-chan struct{}) error {
	for {
		bp := ib.bufs.Get().(*[]byte)
		n, err := ReadFrame(br, *bp, ib.maxPacket)
		if err != nil {
			ib.bufs.Put(bp)
			return err
		}
		select {
		case ib.ch <- inPacket{buf: bp, n: n, ep: ep}:
		case <-stop:
			ib.bufs.Put(bp)
			return nil
		}
	}
}

// receiver returns a ReceiveFunc that waits for one packet and then takes
// whatever else is queued, up to len(packets); it returns net.ErrClosed
// once done closes.
func (ib *inbox) receiver(done <-chan struct{}) conn.ReceiveFunc {
	return func(packets [][]byte, sizes []int, eps []conn.Endpoint) (int, error) {
		var p inPacket
		select {
		case <-done:
			return 0, net.ErrClosed
		case p = <-ib.ch:
		}
		i := 0
		for {
			sizes[i] = copy(packets[i], (*p.buf)[:p.n])
			eps[i] = p.ep
			ib.bufs.Put(p.buf)
			i++
			if i == len(packets) {
				return i, nil
			}
			select {
			case p = <-ib.ch:
			default:
				return i, nil
			}
		}
	}
}
