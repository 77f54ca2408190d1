package simnet

import (
	"sync/atomic"
	"time"
)

// fineTimer is a one-shot timer, like time.Timer, that fires within tens
// of microseconds of its due time where the platform allows (see
// newFineTimer): the Go runtime on Linux sleeps in epoll with millisecond
// resolution when the process is idle, which rounds every timer up to the
// next millisecond and more than doubled a 1 ms intra-region RTT. It never
// spins: an earlier version yielded in a loop for the last millisecond
// before each due time, and on two cores the two binds of a local path
// spinning at once kept the runtime from polling the network, so each
// exchange of a short path took about one RTT more than simulated.
//
// C receives after each Reset's delay; a Reset before a previous one
// fired replaces it, though a fire already sent to C stays there (callers
// re-check their own due times). Close stops it; it is idempotent.
type fineTimer interface {
	C() <-chan struct{}
	Reset(d time.Duration)
	Close()
}

// coarseTimer is the fineTimer of platforms without a precise one: a
// time.Timer.
type coarseTimer struct {
	t    *time.Timer
	c    chan struct{}
	stop chan struct{}
	done chan struct{}
}

func newCoarseTimer() *coarseTimer {
	t := &coarseTimer{t: time.NewTimer(time.Hour), c: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(t.done)
		for {
			select {
			case <-t.stop:
				return
			case <-t.t.C:
				select {
				case t.c <- struct{}{}:
				default:
				}
			}
		}
	}()
	return t
}

func (t *coarseTimer) C() <-chan struct{}    { return t.c }
func (t *coarseTimer) Reset(d time.Duration) { t.t.Reset(d) }
func (t *coarseTimer) Close() {
	select {
	case <-t.stop:
	default:
		close(t.stop)
		t.t.Stop()
	}
	<-t.done
}

// maxLead caps how early a wait arms its timer (see lead).
const maxLead = 200 * time.Microsecond

// lead learns how late waiters resume after their due time (the poller
// noticing the timer, a thread taking the goroutine: about 50–150 µs on a
// busy 2-core machine, four times per request on a local path) and arms
// their timers that much early, so that they resume on time on average.
// Its zero value leads by nothing; it is safe for concurrent use. A
// Network shares one among all its waits.
type lead struct{ ns atomic.Int64 }

// get returns how early to arm a timer.
func (l *lead) get() time.Duration { return time.Duration(l.ns.Load()) }

// observe records that a wait resumed late after its due time (negative:
// early), moving the lead an eighth of the way towards making it on time,
// within [0, maxLead].
func (l *lead) observe(late time.Duration) {
	late = min(max(late, -maxLead), maxLead)
	for {
		old := l.ns.Load()
		n := min(max(old+int64(late)/8, 0), int64(maxLead))
		if l.ns.CompareAndSwap(old, n) {
			return
		}
	}
}

// sleepFine waits d on ft, or less if stop is closed first. It arms ft
// ld's lead early and returns once within that lead of the due time, then
// tells ld how late it resumed.
func sleepFine(ft fineTimer, ld *lead, d time.Duration, stop <-chan struct{}) {
	if d <= 0 {
		return
	}
	due := time.Now().Add(d)
	for {
		ft.Reset(time.Until(due) - ld.get())
		select {
		case <-stop:
			return
		case <-ft.C():
		}
		now := time.Now()
		if !now.Add(ld.get()).Before(due) {
			ld.observe(now.Sub(due))
			return
		}
		// A fire left over from an earlier Reset: wait again.
	}
}
