package backoff_test

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/postern/postern/pkg/backoff"
)

func TestBackoffDoublesJittersAndResets(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := backoff.New(100*time.Millisecond, time.Second)
		want := []time.Duration{100, 200, 400, 800, 1000, 1000}
		for i, d := range want {
			d *= time.Millisecond
			if b.Delay() != d {
				t.Fatalf("try %d: got delay %v, want %v", i, b.Delay(), d)
			}
			start := time.Now()
			if !b.Wait(t.Context()) {
				t.Fatal("Wait returned false with a live context")
			}
			if took := time.Since(start); took < d/2 || took > d {
				t.Errorf("try %d: waited %v, want within [%v, %v]", i, took, d/2, d)
			}
		}
		b.Cap(300 * time.Millisecond)
		if b.Delay() != 300*time.Millisecond {
			t.Errorf("after Cap: got %v, want 300ms", b.Delay())
		}
		b.Reset()
		if b.Delay() != 100*time.Millisecond {
			t.Errorf("after Reset: got %v, want 100ms", b.Delay())
		}
		if inv := backoff.New(time.Second, time.Millisecond); inv.Wait(t.Context()) && inv.Delay() != time.Second {
			t.Errorf("a ceiling below the floor: got %v after a wait, want the floor, 1s", inv.Delay())
		}
	})
}

func TestWaitEndsWithContext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := backoff.New(time.Hour, time.Hour)
		ctx, cancel := context.WithCancel(t.Context())
		time.AfterFunc(time.Second, cancel)
		start := time.Now()
		if b.Wait(ctx) || time.Since(start) != time.Second {
			t.Errorf("got true or a wait of %v, want false after 1s", time.Since(start))
		}
		if b.Delay() != time.Hour {
			t.Errorf("a cut wait changed the delay to %v", b.Delay())
		}
	})
}

func TestJitterRange(t *testing.T) {
	seen := map[bool]bool{}
	for range 1000 {
		j := backoff.Jitter(time.Second)
		if j < 500*time.Millisecond || j > time.Second {
			t.Fatalf("got %v, want within [500ms, 1s]", j)
		}
		seen[j < 750*time.Millisecond] = true
	}
	if len(seen) != 2 {
		t.Error("1000 jitters all fell in one half: not random")
	}
	if backoff.Jitter(0) != 0 {
		t.Error("Jitter(0) is not 0")
	}
}
