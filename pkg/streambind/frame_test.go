package streambind

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"testing"
)

func wgMessage(typ byte, size int) []byte {
	b := make([]byte, size)
	b[0] = typ
	for i := 4; i < size; i++ {
		b[i] = byte(i)
	}
	return b
}

func rawFrame(n int, payload []byte) []byte {
	return append(binary.BigEndian.AppendUint16(nil, uint16(n)), payload...)
}

func TestReadFrame(t *testing.T) {
	tests := []struct {
		name    string
		in      []byte
		want    []byte
		wantErr error
	}{
		{"initiation", AppendFrame(nil, wgMessage(1, 148)), wgMessage(1, 148), nil},
		{"response", AppendFrame(nil, wgMessage(2, 92)), wgMessage(2, 92), nil},
		{"cookie", AppendFrame(nil, wgMessage(3, 64)), wgMessage(3, 64), nil},
		{"keepalive", AppendFrame(nil, wgMessage(4, 32)), wgMessage(4, 32), nil},
		{"full data packet", AppendFrame(nil, wgMessage(4, DefaultMaxPacket)), wgMessage(4, DefaultMaxPacket), nil},
		{"end between frames", nil, nil, io.EOF},
		{"end inside header", []byte{0}, nil, io.ErrUnexpectedEOF},
		{"end inside packet", rawFrame(148, wgMessage(1, 100)), nil, io.ErrUnexpectedEOF},
		{"oversized", rawFrame(DefaultMaxPacket+1, wgMessage(4, DefaultMaxPacket+1)), nil, ErrFrameTooBig},
		{"largest header", rawFrame(MaxFrame, nil), nil, ErrFrameTooBig},
		{"empty", rawFrame(0, nil), nil, ErrBadPacket},
		{"unknown type", AppendFrame(nil, wgMessage(9, 64)), nil, ErrBadPacket},
		{"type with junk", AppendFrame(nil, append([]byte{4, 1, 0, 0}, make([]byte, 40)...)), nil, ErrBadPacket},
		{"short initiation", AppendFrame(nil, wgMessage(1, 147)), nil, ErrBadPacket},
		{"short transport", AppendFrame(nil, wgMessage(4, 31)), nil, ErrBadPacket},
		{"http instead of frames", []byte("GET / HTTP/1.1\r\n\r\n"), nil, ErrFrameTooBig},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			buf := make([]byte, DefaultMaxPacket)
			n, err := ReadFrame(bufio.NewReader(bytes.NewReader(tt.in)), buf, DefaultMaxPacket)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("error: got %v, want %v", err, tt.wantErr)
			}
			if err == nil && !bytes.Equal(buf[:n], tt.want) {
				t.Fatalf("packet: got %d bytes, want %d", n, len(tt.want))
			}
		})
	}
}

func TestReadFrameSequence(t *testing.T) {
	var in []byte
	sizes := []int{148, 92, 32, 1000, 64}
	types := []byte{1, 2, 4, 4, 3}
	for i, n := range sizes {
		in = AppendFrame(in, wgMessage(types[i], n))
	}
	br := bufio.NewReader(bytes.NewReader(in))
	buf := make([]byte, DefaultMaxPacket)
	for i, want := range sizes {
		n, err := ReadFrame(br, buf, DefaultMaxPacket)
		if err != nil || n != want {
			t.Fatalf("frame %d: got %d, %v, want %d, nil", i, n, err, want)
		}
	}
	if _, err := ReadFrame(br, buf, DefaultMaxPacket); err != io.EOF {
		t.Fatalf("after the last frame: got %v, want EOF", err)
	}
}

// FuzzReadFrame feeds arbitrary bytes to the frame reader: it must never
// panic, never return more than the limit, and only ever return packets
// of WireGuard's shapes. Normal test runs run the seeds only.
func FuzzReadFrame(f *testing.F) {
	f.Add(AppendFrame(nil, wgMessage(1, 148)))
	f.Add(AppendFrame(AppendFrame(nil, wgMessage(4, 32)), wgMessage(2, 92)))
	f.Add(rawFrame(MaxFrame, nil))
	f.Add(rawFrame(0, nil))
	f.Add([]byte{0})
	f.Add([]byte("GET / HTTP/1.1\r\n"))
	const limit = 256
	f.Fuzz(func(t *testing.T, in []byte) {
		br := bufio.NewReader(bytes.NewReader(in))
		buf := make([]byte, limit)
		for range 64 {
			n, err := ReadFrame(br, buf, limit)
			if err != nil {
				return
			}
			if n > limit {
				t.Fatalf("got a %d-byte packet, limit %d", n, limit)
			}
			if err := CheckPacket(buf[:n]); err != nil {
				t.Fatalf("returned a packet that fails CheckPacket: %v", err)
			}
		}
	})
}

func TestSendQueueBounded(t *testing.T) {
	q := newSendQueue(1000)
	pkt := wgMessage(4, 98) // 100 bytes a frame
	var bufs [][]byte
	for range 15 {
		bufs = append(bufs, pkt)
	}
	if got := q.push(bufs); got != 5 {
		t.Fatalf("dropped: got %d, want 5", got)
	}
	var out bytes.Buffer
	done := make(chan struct{})
	errc := make(chan error, 1)
	go func() { errc <- q.writeLoop(&lockedWriter{w: &out, done: done, after: 1000}, done) }()
	<-done
	if got := out.Len(); got != 1000 {
		t.Fatalf("written: got %d bytes, want 1000", got)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if got := q.dropped.Load(); got != 5 {
		t.Fatalf("dropped counter: got %d, want 5", got)
	}
	q.close()
	if got := q.push(bufs[:1]); got != 1 {
		t.Fatalf("push after close: got %d dropped, want 1", got)
	}
}

// lockedWriter closes done once after bytes have been written.
type lockedWriter struct {
	w     *bytes.Buffer
	done  chan struct{}
	after int
}

func (l *lockedWriter) Write(b []byte) (int, error) {
	n, err := l.w.Write(b)
	if l.w.Len() >= l.after {
		close(l.done)
	}
	return n, err
}
