package testkit

import (
	"context"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// Goroutines snapshots the goroutines running now and returns the leak
// check to call once the test has closed everything it started: the check
// fails tb with the stacks of every goroutine started since the snapshot
// that still runs after 30 s (go.uber.org/goleak, the same check as Main,
// narrowed to one test). A component that started a goroutine did not
// stop it in Close. The 30 s are a deadline for a leak, not a figure:
// goroutines usually end at once.
//
//	leaks := testkit.Goroutines()
//	... start and close the system ...
//	leaks(t)
func Goroutines() func(tb testing.TB) {
	opts := append([]goleak.Option{goleak.IgnoreCurrent()}, ignored...)
	return func(tb testing.TB) {
		tb.Helper()
		var err error
		// Not tb.Context(): it is cancelled before the cleanups, where this runs.
		if Poll(context.Background(), 20*time.Millisecond, 30*time.Second, func() bool {
			err = goleak.Find(opts...)
			return err == nil
		}) != nil {
			tb.Errorf("goroutines leaked: %v", err)
		}
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
