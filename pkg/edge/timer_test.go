package edge

import (
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

func TestBackendTimer(t *testing.T) {
	const d = time.Second
	steps := func(name string, want bool, do func(b *backendTimer)) {
		t.Run(name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				var fired atomic.Bool
				b := newBackendTimer(d, func() { fired.Store(true) })
				do(b)
				synctest.Wait()
				if got := b.finish(); got != want || fired.Load() != want {
					t.Fatalf("fired: got %v (callback %v), want %v", got, fired.Load(), want)
				}
			})
		})
	}
	steps("fires after the duration", true, func(b *backendTimer) { time.Sleep(d) })
	steps("not before", false, func(b *backendTimer) { time.Sleep(d - time.Millisecond) })
	steps("paused while the client sends", false, func(b *backendTimer) {
		time.Sleep(d / 2)
		b.pause()
		time.Sleep(10 * d) // a slow client
		b.run()
		time.Sleep(d - time.Millisecond)
	})
	steps("every resume starts afresh", false, func(b *backendTimer) {
		for range 5 {
			time.Sleep(d - time.Millisecond)
			b.run()
		}
	})
	steps("runs again after a pause", true, func(b *backendTimer) {
		b.pause()
		time.Sleep(10 * d)
		b.run()
		time.Sleep(d)
	})
	steps("finished timers stay finished", false, func(b *backendTimer) {
		b.finish()
		b.run()
		time.Sleep(10 * d)
	})
}
