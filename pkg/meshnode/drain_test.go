package meshnode

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/postern/postern/pkg/lifecycle"
	"github.com/postern/postern/pkg/pool"
	"github.com/postern/postern/pkg/testkit"
	"github.com/postern/postern/pkg/wgkey"
)

// drainNode returns a node with only what drain uses: a pool with one
// connector holding one request, and the drain settings; call it inside
// synctest.Test.
func drainNode(t *testing.T, delay, timeout time.Duration) (*Node, *pool.Connector) {
	t.Helper()
	n := &Node{cfg: Config{DrainDelay: delay, DrainTimeout: timeout, Now: time.Now}, logger: slog.New(slog.DiscardHandler),
		pool: pool.New(pool.Config{Dial: func(context.Context, string, string) (net.Conn, error) { return nil, errors.New("no dial") }})}
	n.life = lifecycle.NewLife(ErrClosed)
	t.Cleanup(func() { n.life.Close(nil, nil); n.pool.Close() })
	k, err := wgkey.Generate()
	if err != nil {
		t.Fatal(err)
	}
	c := n.pool.Upsert("c1", "hq", k.Public())
	c.Acquire()
	return n, c
}

// startDrain runs n.drain and returns a channel closed when it returns.
func startDrain(n *Node) <-chan struct{} {
	done, _ := startDrainPublic(n)
	return done
}

// startDrainPublic is startDrain that also reports whether the drain has
// shut down the public server (stopped accepting) yet.
func startDrainPublic(n *Node) (<-chan struct{}, *atomic.Bool) {
	done := make(chan struct{})
	var shut atomic.Bool
	pub := &http.Server{}
	pub.RegisterOnShutdown(func() { shut.Store(true) })
	go func() { n.drain(pub); close(done) }()
	return done, &shut
}

func ended(done <-chan struct{}) bool {
	select {
	case <-done:
		return true
	default:
		return false
	}
}

// TestDrainTiming checks the drain to the instant: the public listener
// keeps accepting for DrainDelay, relaying stops exactly then, the drain
// waits for the request in flight and ends as soon as it ends (within
// the 10ms poll); without the request ending it ends at DrainTimeout after
// the delay; Close cuts it short at once.
func TestDrainTiming(t *testing.T) {
	const delay, timeout = 5 * time.Second, 10 * time.Second
	t.Run("request ends", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			n, c := drainNode(t, delay, timeout)
			done, shut := startDrainPublic(n)
			synctest.Wait()
			if !n.draining.Load() {
				t.Fatal("not draining (ready) at once when the drain began")
			}
			testkit.Settle(delay - time.Nanosecond)
			if n.relayClosed.Load() || shut.Load() || !n.draining.Load() {
				t.Fatalf("before DrainDelay: relay closed %v, public listener shut %v, draining %v; want open, accepting and draining",
					n.relayClosed.Load(), shut.Load(), n.draining.Load())
			}
			testkit.Settle(time.Nanosecond)
			if !n.relayClosed.Load() || !shut.Load() {
				t.Fatalf("at DrainDelay: relay closed %v, public listener shut %v; want both", n.relayClosed.Load(), shut.Load())
			}
			testkit.Settle(3 * time.Second)
			if ended(done) {
				t.Fatal("the drain ended with a request in flight")
			}
			c.Release()
			testkit.Settle(10 * time.Millisecond)
			if !ended(done) {
				t.Fatal("the drain did not end within 10ms of the last request")
			}
		})
	})
	t.Run("timeout", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			n, _ := drainNode(t, delay, timeout)
			done := startDrain(n)
			testkit.Settle(delay + timeout - time.Nanosecond)
			if ended(done) {
				t.Fatal("the drain ended before DrainTimeout with a request in flight")
			}
			testkit.Settle(time.Nanosecond)
			if !ended(done) {
				t.Fatal("the drain did not end at DrainTimeout")
			}
		})
	})
	t.Run("closed", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			n, _ := drainNode(t, delay, timeout)
			done := startDrain(n)
			testkit.Settle(time.Second)
			n.life.Close(nil, nil)
			synctest.Wait()
			if !ended(done) {
				t.Fatal("the drain went on after Close")
			}
		})
	})
}
