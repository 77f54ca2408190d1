package simnet

import "time"

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

// sleepFine waits d on ft, or less if stop is closed first.
func sleepFine(ft fineTimer, d time.Duration, stop <-chan struct{}) {
	if d <= 0 {
		return
	}
	due := time.Now().Add(d)
	for {
		ft.Reset(time.Until(due))
		select {
		case <-stop:
			return
		case <-ft.C():
		}
		if !time.Now().Before(due) {
			return
		}
		// A fire left over from an earlier Reset: wait again.
	}
}
