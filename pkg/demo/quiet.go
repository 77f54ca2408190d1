package demo

import (
	"context"
	"io"
	"sync"
	"time"
)

// QuietWriter passes writes through to an underlying writer and remembers
// when the last one happened, so that the banner can wait for the log to
// settle. Safe for concurrent use.
type QuietWriter struct {
	now func() time.Time

	mu   sync.Mutex // guards the following, and serialises writes
	w    io.Writer
	last time.Time
}

// NewQuietWriter returns a QuietWriter over w. now is the clock; nil means
// time.Now.
func NewQuietWriter(w io.Writer, now func() time.Time) *QuietWriter {
	if now == nil {
		now = time.Now
	}
	return &QuietWriter{w: w, now: now, last: now()}
}

// Write writes p whole to the underlying writer.
func (q *QuietWriter) Write(p []byte) (int, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.last = q.now()
	return q.w.Write(p)
}

// WaitQuiet returns once nothing has been written for quiet, or after
// max, or when ctx ends, whichever is first.
func (q *QuietWriter) WaitQuiet(ctx context.Context, quiet, max time.Duration) {
	deadline := q.now().Add(max)
	for {
		q.mu.Lock()
		idle := q.now().Sub(q.last)
		q.mu.Unlock()
		if idle >= quiet {
			return
		}
		wait := quiet - idle
		if left := deadline.Sub(q.now()); left <= 0 {
			return
		} else if wait > left {
			wait = left
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}
