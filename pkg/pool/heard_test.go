package pool

import (
	"context"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/postern/postern/pkg/wgkey"
)

// busyPinger never gets an answer to a probe, as one stuck behind a bulk
// transfer on a loaded path, while the peer's receive counter grows as
// long as traffic flows.
type busyPinger struct {
	rx      atomic.Uint64
	flowing atomic.Bool
}

func (b *busyPinger) Ping(ctx context.Context, _ wgkey.Public) (time.Duration, error) {
	<-ctx.Done()
	return 0, ctx.Err()
}

func (b *busyPinger) Received(wgkey.Public) (uint64, bool) { return b.rx.Load(), true }

// TestTrafficKeepsAConnectorAlive: probes that time out while bytes keep
// arriving from the connector do not declare it dead (which would cut the
// streams it carries); once the bytes stop, the same probes declare it
// dead as fast as before.
func TestTrafficKeepsAConnectorAlive(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		bp := &busyPinger{}
		const interval, timeout = 250 * time.Millisecond, 400 * time.Millisecond
		p := New(Config{Dial: noDial, Pinger: bp, ProbeInterval: interval, ProbeTimeout: timeout, DeadAfter: 2})
		c := p.Upsert("a", "hq", key(t))
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan struct{})
		bp.flowing.Store(true)
		traffic := make(chan struct{})
		go func() { // the connector's bytes arrive every 50ms while flowing
			defer close(traffic)
			for ctx.Err() == nil {
				time.Sleep(50 * time.Millisecond)
				if bp.flowing.Load() {
					bp.rx.Add(1400)
				}
			}
		}()
		go func() { p.Run(ctx); close(done) }()
		t.Cleanup(func() { cancel(); <-done; <-traffic; p.Close() }) // inside the bubble, also after a failure
		time.Sleep(10 * time.Second)
		if !c.Alive() || c.Lost().Err() != nil {
			t.Fatal("a connector whose bytes keep arriving was declared dead because its probes timed out")
		}
		bp.flowing.Store(false)
		began := time.Now()
		for c.Alive() && time.Since(began) < 10*time.Second {
			time.Sleep(10 * time.Millisecond)
		}
		if c.Alive() {
			t.Fatal("a silent connector was never declared dead")
		}
		// Two probes in a row without an answer or a byte: the first may
		// have begun just before the bytes stopped.
		if took, want := time.Since(began), 3*(interval+timeout); took > want {
			t.Fatalf("declared dead %v after the bytes stopped, want within %v", took, want)
		}
	})
}
