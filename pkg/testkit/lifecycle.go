package testkit

// Lifecycle helpers:
//
// Settle drives the clock of a testing/synctest bubble, in which timer
// tests run in microseconds and cannot flake.
//
// Main checks for leaked goroutines: a package's tests call it from
// TestMain, and the run fails when any goroutine a test started is still
// running after the last test (STYLE.md: whoever starts a goroutine stops
// it in Close).

import (
	"errors"
	"net"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/goleak"
)

// Main runs the package's tests, then fails the run if goroutines are
// left over; call it from TestMain:
//
//	func TestMain(m *testing.M) { testkit.Main(m) }
func Main(m *testing.M) {
	goleak.VerifyTestMain(m, ignored...)
}

// ignored are goroutines that live for the process by design, started by
// libraries, not by Postern code.
var ignored []goleak.Option

// Settle lets the clock of the current testing/synctest bubble run for d,
// then waits until every other goroutine of the bubble is durably blocked,
// so that whatever was due by then has happened. Call it inside
// synctest.Test.
func Settle(d time.Duration) {
	time.Sleep(d)
	synctest.Wait()
}

// Async runs fn in a goroutine and returns the channel of its result.
func Async(fn func() error) <-chan error {
	done := make(chan error, 1)
	go func() { done <- fn() }()
	return done
}

// Result waits for the result on done and returns it, failing tb if none
// comes within a minute: the deadline only turns a hang into a failure,
// far beyond any load, and is no time budget.
func Result(tb testing.TB, done <-chan error) error {
	tb.Helper()
	t := time.NewTimer(time.Minute)
	defer t.Stop()
	select {
	case err := <-done:
		return err
	case <-t.C:
		tb.Fatal("no result within a minute: hung")
		return nil
	}
}

// CheckClose calls close from three goroutines at once while a Run runs
// (done is its result) and fails tb unless every call returns nil, and
// the Run has returned wantRun (errors.Is) by the time they do: Close is
// idempotent, safe to race, and ends the Run before it returns.
func CheckClose(tb testing.TB, close func() error, done <-chan error, wantRun error) {
	tb.Helper()
	var wg sync.WaitGroup
	for range 3 {
		wg.Go(func() {
			if err := close(); err != nil {
				tb.Errorf("Close: %v", err)
			}
		})
	}
	wg.Wait()
	select {
	case err := <-done:
		if !errors.Is(err, wantRun) {
			tb.Fatalf("Run: %v, want %v", err, wantRun)
		}
	default:
		tb.Fatal("Close returned before Run did")
	}
}

// BrokenListener is a listener whose socket broke: every Accept fails with
// Err. Close closes the listener it wraps.
type BrokenListener struct {
	net.Listener
	Err error
}

// Accept returns Err.
func (l BrokenListener) Accept() (net.Conn, error) { return nil, l.Err }
