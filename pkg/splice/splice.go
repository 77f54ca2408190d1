// Package splice joins two byte streams, as every hop of a TCP app's
// connection does: the user's client between its local connection and the
// WebSocket to the mesh, the mesh edge between that WebSocket and the
// tunnel stream, and the connector between the tunnel stream and the
// target. It counts the bytes each way for the access logs.
package splice

import (
	"io"
	"sync"
)

// bufSize is the copy buffer of one direction.
const bufSize = 64 << 10

var buffers = sync.Pool{New: func() any { b := make([]byte, bufSize); return &b }}

// Pipe copies a to b and b to a until either direction ends (EOF or an
// error), then closes both and waits for the other direction. A stream
// ends when either side closes; there is no half-close. It returns the
// bytes copied from a to b and from b to a.
func Pipe(a, b io.ReadWriteCloser) (aToB, bToA int64) {
	var once sync.Once
	closeBoth := func() {
		once.Do(func() {
			a.Close()
			b.Close()
		})
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		aToB = copyBuf(b, a)
		closeBoth()
	}()
	bToA = copyBuf(a, b)
	closeBoth()
	<-done
	return aToB, bToA
}

func copyBuf(dst io.Writer, src io.Reader) int64 {
	bp := buffers.Get().(*[]byte)
	defer buffers.Put(bp)
	n, _ := io.CopyBuffer(dst, src, *bp)
	return n
}

// Set tracks the streams a component carries, so that its Close can end
// them all. The zero Set is ready to use; it is safe for concurrent use.
type Set struct {
	mu   sync.Mutex // guards the following
	open map[io.Closer]struct{}
}

// Add tracks c.
func (s *Set) Add(c io.Closer) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.open == nil {
		s.open = map[io.Closer]struct{}{}
	}
	s.open[c] = struct{}{}
}

// Remove stops tracking c.
func (s *Set) Remove(c io.Closer) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.open, c)
}

// CloseMatching closes the tracked streams for which match reports true
// (they stay tracked until their carrier removes them) and returns how
// many it closed. match is called under the Set's lock: it must not call
// the Set.
func (s *Set) CloseMatching(match func(io.Closer) bool) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for c := range s.open {
		if match(c) {
			c.Close()
			n++
		}
	}
	return n
}

// Len returns the number of streams tracked.
func (s *Set) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.open)
}

// CloseAll closes every stream tracked.
func (s *Set) CloseAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.open {
		c.Close()
	}
}
