// Package tstest holds the test helpers every package's tests share; it is
// imported by tests only.
//
// Settle drives the clock of a testing/synctest bubble, in which timer
// tests run in microseconds and cannot flake.
//
// Main checks for leaked goroutines: a package's tests call it from
// TestMain, and the run fails when any goroutine a test started is still
// running after the last test (STYLE.md: whoever starts a goroutine stops
// it in Close).
package tstest

import (
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/goleak"
)

// Main runs the package's tests, then fails the run if goroutines are
// left over; call it from TestMain:
//
//	func TestMain(m *testing.M) { tstest.Main(m) }
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
