// Package testkit holds the helpers that tests all over the module share,
// so that each exists once: waiting for a condition by polling with a
// deadline (never a bare sleep, and never a wall-clock budget asserted as
// a result), and a buffer that a logger writes while a test reads. It is
// small and imports nothing of Postern, so a package's unit tests use it
// without linking the in-process harness (which builds on it).
package testkit

import (
	"bytes"
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

// PollInterval is how often [WaitFor] tries its condition.
const PollInterval = 10 * time.Millisecond

// ErrTimeout is what [Poll] returns when the condition did not hold in
// time.
var ErrTimeout = errors.New("condition not met in time")

// Poll calls cond every interval until it holds (nil), or ctx ends or
// timeout passes first ([ErrTimeout]). cond runs at once, then after each
// interval; it runs on the caller's goroutine.
func Poll(ctx context.Context, interval, timeout time.Duration, cond func() bool) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	t := time.NewTicker(interval)
	defer t.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			return ErrTimeout
		case <-t.C:
		}
	}
	return nil
}

// WaitFor polls cond every [PollInterval] until it holds and returns how
// long that took. If timeout passes first, it
// logs each status (to describe the state) and fails tb with what. The
// timeout is a deadline for a hang, not a figure: choose it far above what
// the condition takes on a loaded machine.
func WaitFor(tb testing.TB, timeout time.Duration, what string, cond func() bool, status ...func() string) time.Duration {
	tb.Helper()
	start := time.Now()
	// Not tb.Context(): it is cancelled before the cleanups, which may wait.
	if err := Poll(context.Background(), PollInterval, timeout, cond); err != nil {
		for _, s := range status {
			tb.Log(s())
		}
		tb.Fatalf("%s: not within %v", what, timeout)
	}
	return time.Since(start)
}

// SyncBuffer is a bytes.Buffer safe for concurrent use: a logger or a
// child process writes while a test reads. The zero value is empty and
// ready.
type SyncBuffer struct {
	mu sync.Mutex // guards b
	b  bytes.Buffer
}

// Write appends p.
func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String returns everything written so far.
func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
