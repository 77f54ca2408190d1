package tracing_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/postern/postern/pkg/tracing"
)

// recorder is a span exporter that keeps the names of each batch it is
// given; with gate set, each export waits for a value on it (or its
// context) first.
type recorder struct {
	gate chan struct{}
	err  error // returned by every export

	mu       sync.Mutex // guards the following
	batches  [][]string
	ids      map[trace.SpanID]bool
	dups     int
	deadline []time.Duration // each export's time left on its context
	shut     bool
}

func (r *recorder) ExportSpans(ctx context.Context, spans []sdktrace.ReadOnlySpan) error {
	if r.gate != nil {
		select {
		case <-r.gate:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	var names []string
	if r.ids == nil {
		r.ids = map[trace.SpanID]bool{}
	}
	for _, s := range spans {
		names = append(names, s.Name())
		if r.ids[s.SpanContext().SpanID()] {
			r.dups++
		}
		r.ids[s.SpanContext().SpanID()] = true
	}
	r.batches = append(r.batches, names)
	if d, ok := ctx.Deadline(); ok {
		r.deadline = append(r.deadline, time.Until(d))
	}
	return r.err
}

func (r *recorder) Shutdown(context.Context) error {
	r.mu.Lock()
	r.shut = true
	r.mu.Unlock()
	return nil
}

// sizes returns the number of spans of each export so far.
func (r *recorder) sizes() []int {
	r.mu.Lock()
	defer r.mu.Unlock()
	var n []int
	for _, b := range r.batches {
		n = append(n, len(b))
	}
	return n
}

// endSpans starts and ends n spans named prefix0, prefix1, … on tp.
func endSpans(tp trace.TracerProvider, prefix string, n int) {
	tr := tp.Tracer("test")
	for i := range n {
		_, s := tr.Start(context.Background(), fmt.Sprintf("%s%d", prefix, i))
		s.End()
	}
}

// newBatched is a tracer provider sampling every span into a batcher of
// exp with cfg.
func newBatched(exp sdktrace.SpanExporter, cfg tracing.Config) (*sdktrace.TracerProvider, *tracing.Batcher) {
	b := tracing.NewBatcher(exp, cfg)
	return sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(b), sdktrace.WithSampler(sdktrace.AlwaysSample())), b
}

// TestBatcherDelay: spans short of a batch wait for the schedule delay
// (OTEL_BSP_SCHEDULE_DELAY), counted from the last export, and no
// longer; a full batch goes at once, without waiting for the timer.
func TestBatcherDelay(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &recorder{}
		tp, _ := newBatched(rec, tracing.Config{BatchTimeout: time.Second, MaxExportBatchSize: 4})
		defer tp.Shutdown(context.Background())
		endSpans(tp, "a", 3)
		time.Sleep(time.Second - time.Nanosecond)
		synctest.Wait()
		if got := rec.sizes(); len(got) != 0 {
			t.Fatalf("before the delay: got exports %v, want none", got)
		}
		time.Sleep(time.Nanosecond)
		synctest.Wait()
		if got := rec.sizes(); !slices.Equal(got, []int{3}) {
			t.Fatalf("at the delay: got exports %v, want [3]", got)
		}
		endSpans(tp, "b", 4) // a full batch: exported without the timer
		synctest.Wait()
		if got := rec.sizes(); !slices.Equal(got, []int{3, 4}) {
			t.Fatalf("full batch: got exports %v, want [3 4] at once", got)
		}
		endSpans(tp, "c", 1)
		time.Sleep(time.Second - time.Nanosecond) // the timer restarted at the last export
		synctest.Wait()
		if got := rec.sizes(); !slices.Equal(got, []int{3, 4}) {
			t.Fatalf("got exports %v before the delay after the last export", got)
		}
		time.Sleep(time.Nanosecond)
		synctest.Wait()
		if got := rec.sizes(); !slices.Equal(got, []int{3, 4, 1}) {
			t.Fatalf("got exports %v, want [3 4 1]", got)
		}
	})
}

// TestBatcherDropOnFull: while the collector is stuck, the queue holds
// OTEL_BSP_MAX_QUEUE_SIZE spans and drops (and counts) the rest, OnEnd
// never blocking; once it answers, what was queued is exported, in
// batches of at most OTEL_BSP_MAX_EXPORT_BATCH_SIZE.
func TestBatcherDropOnFull(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &recorder{gate: make(chan struct{})}
		tp, b := newBatched(rec, tracing.Config{BatchTimeout: time.Hour, MaxQueueSize: 4, MaxExportBatchSize: 2})
		endSpans(tp, "a", 2) // a full batch: the export goroutine takes it and blocks
		synctest.Wait()
		endSpans(tp, "b", 7) // 4 queued, 3 dropped
		synctest.Wait()
		if got := b.Dropped(); got != 3 {
			t.Errorf("dropped %d, want 3", got)
		}
		close(rec.gate)
		if err := tp.Shutdown(context.Background()); err != nil {
			t.Fatal(err)
		}
		if got := rec.sizes(); !slices.Equal(got, []int{2, 2, 2}) {
			t.Errorf("got exports %v, want [2 2 2]", got)
		}
		rec.mu.Lock()
		defer rec.mu.Unlock()
		want := [][]string{{"a0", "a1"}, {"b0", "b1"}, {"b2", "b3"}}
		if fmt.Sprint(rec.batches) != fmt.Sprint(want) {
			t.Errorf("got %v, want %v", rec.batches, want)
		}
	})
}

// TestBatcherShutdown: Shutdown exports what is queued without waiting
// for the delay and shuts the exporter down; spans ended after it are
// not exported (nor counted as dropped), a second Shutdown and a
// ForceFlush after it do nothing and return nil.
func TestBatcherShutdown(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &recorder{}
		tp, b := newBatched(rec, tracing.Config{BatchTimeout: time.Hour, MaxExportBatchSize: 3})
		endSpans(tp, "a", 5) // one full batch goes at once, 2 spans wait
		if err := b.Shutdown(context.Background()); err != nil {
			t.Fatal(err)
		}
		if got := rec.sizes(); !slices.Equal(got, []int{3, 2}) {
			t.Errorf("got exports %v, want [3 2]", got)
		}
		if !rec.shut {
			t.Error("the exporter was not shut down")
		}
		b.OnEnd(endedSpan(t))
		synctest.Wait()
		if err := b.Shutdown(context.Background()); err != nil {
			t.Errorf("second Shutdown: %v", err)
		}
		if err := b.ForceFlush(context.Background()); err != nil {
			t.Errorf("ForceFlush after Shutdown: %v", err)
		}
		if got := rec.sizes(); !slices.Equal(got, []int{3, 2}) || b.Dropped() != 0 {
			t.Errorf("after Shutdown: exports %v, dropped %d", got, b.Dropped())
		}
	})
}

// endedSpan returns a sampled span that has ended, from a provider of
// its own.
func endedSpan(t *testing.T) sdktrace.ReadOnlySpan {
	var got sdktrace.ReadOnlySpan
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(onEnd(func(s sdktrace.ReadOnlySpan) { got = s })))
	_, s := tp.Tracer("test").Start(context.Background(), "late")
	s.End()
	if got == nil {
		t.Fatal("no span")
	}
	return got
}

// onEnd is a span processor calling f on each ended span.
type onEnd func(sdktrace.ReadOnlySpan)

func (f onEnd) OnStart(context.Context, sdktrace.ReadWriteSpan) {}
func (f onEnd) OnEnd(s sdktrace.ReadOnlySpan)                   { f(s) }
func (f onEnd) Shutdown(context.Context) error                  { return nil }
func (f onEnd) ForceFlush(context.Context) error                { return nil }

// TestBatcherExportTimeout: each export's context ends after
// OTEL_BSP_EXPORT_TIMEOUT, so a collector that never answers holds the
// queue that long and no longer; ForceFlush returns the export's error,
// and unsampled spans are never queued.
func TestBatcherExportTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &recorder{gate: make(chan struct{})} // never opened
		b := tracing.NewBatcher(rec, tracing.Config{BatchTimeout: time.Hour, BatchExportTimeout: 2 * time.Second})
		tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(b), sdktrace.WithSampler(sdktrace.NeverSample()))
		endSpans(tp, "unsampled", 3)
		on := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(onEnd(b.OnEnd)), sdktrace.WithSampler(sdktrace.AlwaysSample()))
		endSpans(on, "a", 1)
		start := time.Now()
		err := b.ForceFlush(context.Background())
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("ForceFlush: got %v, want the export's deadline error", err)
		}
		if d := time.Since(start); d != 2*time.Second {
			t.Errorf("the export was given %v, want 2s", d)
		}
		rec.gate = nil // the next exports answer at once
		endSpans(on, "b", 1)
		if err := b.Shutdown(context.Background()); err != nil {
			t.Fatal(err)
		}
		rec.mu.Lock()
		defer rec.mu.Unlock()
		if fmt.Sprint(rec.batches) != "[[b0]]" || !slices.Equal(rec.deadline, []time.Duration{2 * time.Second}) {
			t.Errorf("got exports %v with %v left, want [[b0]] with 2s (a0 was lost to the timeout, unsampled spans never queued)", rec.batches, rec.deadline)
		}
	})
}

// TestBatcherConcurrent: spans ended from many goroutines at once (run
// it with -race) are each exported exactly once, in batches of at most
// OTEL_BSP_MAX_EXPORT_BATCH_SIZE, none dropped with a queue that holds
// them all.
func TestBatcherConcurrent(t *testing.T) {
	const goroutines, each, batch = 8, 500, 64
	rec := &recorder{}
	tp, b := newBatched(rec, tracing.Config{BatchTimeout: time.Millisecond, MaxQueueSize: goroutines * each, MaxExportBatchSize: batch})
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() { endSpans(tp, fmt.Sprintf("g%d.", g), each) })
	}
	wg.Wait()
	if err := tp.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	total := 0
	for _, n := range rec.sizes() {
		if n > batch {
			t.Errorf("an export of %d spans, more than %d", n, batch)
		}
		total += n
	}
	if total != goroutines*each || rec.dups != 0 || b.Dropped() != 0 {
		t.Errorf("exported %d spans (%d twice), dropped %d; want %d, none twice, none dropped", total, rec.dups, b.Dropped(), goroutines*each)
	}
}
