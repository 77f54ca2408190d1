package simnet

import (
	"testing"
	"time"
)

// patience is the hang guard of the timer tests: a timer that never fires
// fails the test instead of hanging it. It is no budget: a timer that
// fires late, on a loaded machine, passes.
const patience = time.Minute

// waitFire waits for ft to fire, failing after patience.
func waitFire(t *testing.T, ft fineTimer) {
	t.Helper()
	select {
	case <-ft.C():
	case <-time.After(patience):
		t.Fatal("the timer never fired")
	}
}

// Every fineTimer (the platform's and the coarse one) fires no earlier
// than its delay, a later Reset replaces an earlier one, and Close is
// idempotent.
func TestFineTimer(t *testing.T) {
	for name, mk := range map[string]func() fineTimer{"platform": newFineTimer, "coarse": func() fineTimer { return newCoarseTimer() }} {
		t.Run(name, func(t *testing.T) {
			ft := mk()
			defer ft.Close()
			for _, d := range []time.Duration{300 * time.Microsecond, 2 * time.Millisecond} {
				start := time.Now()
				ft.Reset(d)
				waitFire(t, ft)
				if got := time.Since(start); got < d {
					t.Errorf("fired after %v, before its delay %v", got, d)
				}
			}
			ft.Reset(time.Hour)
			ft.Reset(time.Millisecond) // replaces the hour
			waitFire(t, ft)
			ft.Close()
			ft.Close()
		})
	}
}

// sleepFine returns at once when stop is closed, and otherwise not before
// its delay, even with a stale fire waiting in the timer's channel.
func TestSleepFine(t *testing.T) {
	ft := newFineTimer()
	defer ft.Close()
	var ld lead
	stop := make(chan struct{})
	close(stop)
	sleepFine(ft, &ld, time.Hour, stop) // would hang the test if stop were ignored

	ft.Reset(time.Microsecond)
	waitFire(t, ft)
	ft.Reset(time.Microsecond) // a stale fire left in C
	time.Sleep(time.Millisecond)
	start := time.Now()
	early := ld.get()
	sleepFine(ft, &ld, 3*time.Millisecond, make(chan struct{}))
	if got := time.Since(start); got < 3*time.Millisecond-early {
		t.Errorf("slept %v, want at least 3ms less the lead %v", got, early)
	}
}

// lead moves an eighth of the way per observation, never below zero nor
// above maxLead, and a wait with a lead returns no earlier than that lead
// before its due time.
func TestLead(t *testing.T) {
	var ld lead
	ld.observe(80 * time.Microsecond)
	if got := ld.get(); got != 10*time.Microsecond {
		t.Errorf("after one 80µs late wake: lead %v, want 10µs", got)
	}
	ld.observe(-time.Second)
	if got := ld.get(); got != 0 {
		t.Errorf("after an early wake: lead %v, want 0 (never negative)", got)
	}
	for range 200 {
		ld.observe(time.Second)
	}
	if got := ld.get(); got != maxLead {
		t.Errorf("after late wakes: lead %v, want the cap %v", got, maxLead)
	}
	ft := newFineTimer()
	defer ft.Close()
	for range 5 {
		early := ld.get()
		start := time.Now()
		sleepFine(ft, &ld, time.Millisecond, nil)
		if got := time.Since(start); got < time.Millisecond-early {
			t.Errorf("slept %v with a lead of %v, want at least %v", got, early, time.Millisecond-early)
		}
	}
}
