package testkit

import (
	"context"
	"runtime"
	"strings"
	"testing"
	"time"
)

// CheckGoroutines waits until at most limit goroutines run (take the
// baseline with runtime.NumGoroutine before starting what the test
// closes, plus any slack for the runtime's own), and fails tb with every
// goroutine's stack if some are still running after 30 s: a component
// that started a goroutine did not stop it in Close. The 30 s are a
// deadline for a leak, not a figure: goroutines usually end at once.
func CheckGoroutines(tb testing.TB, limit int) {
	tb.Helper()
	// Not tb.Context(): it is cancelled before the cleanups, where this runs.
	if Poll(context.Background(), 20*time.Millisecond, 30*time.Second, func() bool { return runtime.NumGoroutine() <= limit }) != nil {
		buf := make([]byte, 1<<20)
		tb.Errorf("goroutines leaked: got %d, want at most %d\n%s", runtime.NumGoroutine(), limit, buf[:runtime.Stack(buf, true)])
	}
}

// SecretPiece returns the first substring of secret, at least min bytes
// long, that text contains ("" when there is none): a test that an error
// or a log never shows any recognisable part of a secret.
func SecretPiece(text, secret string, min int) string {
	for n := min; n <= len(secret); n++ {
		for i := 0; i+n <= len(secret); i++ {
			if p := secret[i : i+n]; strings.Contains(text, p) {
				return p
			}
		}
	}
	return ""
}
