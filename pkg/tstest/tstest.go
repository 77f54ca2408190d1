// Package tstest holds the test helpers every package's tests share; it is
// imported by tests only.
//
// Main checks for leaked goroutines: a package's tests call it from
// TestMain, and the run fails when any goroutine a test started is still
// running after the last test (STYLE.md: whoever starts a goroutine stops
// it in Close).
package tstest

import (
	"testing"

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
