package testkit

import (
	"net"
	"sync"
	"testing"
)

// Serve accepts connections on l until the test ends, handling each with
// handle on its own goroutine and closing it when handle returns. When
// the test ends it closes l and every connection still open, and waits
// for the accept loop and the handlers, so none outlives the test.
func Serve(tb testing.TB, l net.Listener, handle func(net.Conn)) {
	tb.Helper()
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex // guards open
		open  = map[net.Conn]bool{}
		ended bool
	)
	tb.Cleanup(func() {
		l.Close()
		mu.Lock()
		ended = true
		for c := range open {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			if ended {
				mu.Unlock()
				c.Close()
				return
			}
			open[c] = true
			mu.Unlock()
			wg.Go(func() {
				defer func() {
					mu.Lock()
					delete(open, c)
					mu.Unlock()
					c.Close()
				}()
				handle(c)
			})
		}
	})
}

// Listen serves handle on a new loopback TCP listener (see [Serve]) and
// returns its address.
func Listen(tb testing.TB, handle func(net.Conn)) string {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	Serve(tb, l, handle)
	return l.Addr().String()
}
