package simnet

import (
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// timerfd is the Linux fineTimer: a timerfd, which the kernel fires with
// high-resolution timers, read through the runtime's network poller, so
// the wait takes no thread and wakes the poller itself when it fires.
type timerfd struct {
	f    *os.File
	c    chan struct{}
	done chan struct{}
	once sync.Once
}

// newFineTimer returns a timerfd, or a coarse timer if the kernel refuses
// one.
func newFineTimer() fineTimer {
	fd, err := unix.TimerfdCreate(unix.CLOCK_MONOTONIC, unix.TFD_NONBLOCK|unix.TFD_CLOEXEC)
	if err != nil {
		return newCoarseTimer()
	}
	t := &timerfd{f: os.NewFile(uintptr(fd), "simnet-timerfd"), c: make(chan struct{}, 1), done: make(chan struct{})}
	go t.read()
	return t
}

// read forwards every expiry to c until the file is closed.
func (t *timerfd) read() {
	defer close(t.done)
	var b [8]byte
	for {
		if _, err := t.f.Read(b[:]); err != nil {
			return
		}
		select {
		case t.c <- struct{}{}:
		default:
		}
	}
}

func (t *timerfd) C() <-chan struct{} { return t.c }

func (t *timerfd) Reset(d time.Duration) {
	d = max(d, time.Microsecond) // a zero it_value disarms the timer
	spec := unix.ItimerSpec{Value: unix.NsecToTimespec(int64(d))}
	rc, err := t.f.SyscallConn()
	if err != nil {
		return
	}
	// Control refuses a closed file, so a Reset racing Close never
	// touches a reused descriptor.
	_ = rc.Control(func(fd uintptr) { _ = unix.TimerfdSettime(int(fd), 0, &spec, nil) })
}

func (t *timerfd) Close() {
	t.once.Do(func() { _ = t.f.Close() })
	<-t.done
}
