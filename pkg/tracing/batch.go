package tracing

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// batcher is Postern's batch span processor, in place of the SDK's
// (sdktrace.NewBatchSpanProcessor) with the same OTEL_BSP_* semantics:
// finished spans wait in a queue of at most maxQueue (more are dropped
// and counted), are exported maxBatch at a time, at the latest delay
// after the previous export, each export bounded by exportTimeout;
// ForceFlush and Shutdown export what is queued.
//
// Why our own: the SDK's hands every span to its export goroutine over a
// channel, and that goroutine wakes for each one to move it into its
// batch; on a 2-core node that is a goroutine wake-up per span, 3 spans a
// request. Here OnEnd appends to a slice under a mutex and wakes the
// export goroutine only when a batch has filled (or the timer fires): a
// wake-up per maxBatch spans.
//
// Memory is bounded by two slices of at most maxQueue spans: the one
// OnEnd fills and the one being exported, swapped at each export.
type batcher struct {
	exp           sdktrace.SpanExporter
	maxQueue      int
	maxBatch      int
	delay         time.Duration
	exportTimeout time.Duration

	dropped atomic.Uint64 // spans dropped on a full queue

	mu     sync.Mutex // guards the following
	queue  []sdktrace.ReadOnlySpan
	spare  []sdktrace.ReadOnlySpan // the last exported slice, emptied, for the next swap
	closed bool                    // Shutdown was called: OnEnd drops silently

	kick     chan struct{}   // a batch has filled (capacity 1: wake-ups coalesce)
	flushReq chan chan error // ForceFlush: export all, then send the result (the channel has room for it)
	stop     chan struct{}   // closed by Shutdown
	done     chan struct{}   // closed when the export goroutine has returned
	stopOnce sync.Once
	lastErr  error // the final export's error: written before done is closed, read after
}

var _ sdktrace.SpanProcessor = (*batcher)(nil)

// newBatcher starts the batch processor of exp with the settings of cfg
// (zero fields take the OpenTelemetry defaults) and its export goroutine,
// which Shutdown stops.
func newBatcher(exp sdktrace.SpanExporter, cfg Config) *batcher {
	maxQueue := orDefault(cfg.MaxQueueSize, defaultMaxQueueSize)
	b := &batcher{
		exp:           exp,
		maxQueue:      maxQueue,
		maxBatch:      min(orDefault(cfg.MaxExportBatchSize, defaultMaxExportBatchSize), maxQueue),
		delay:         orDefault(cfg.BatchTimeout, defaultBatchTimeout),
		exportTimeout: orDefault(cfg.BatchExportTimeout, defaultBatchExportTimeout),
		kick:          make(chan struct{}, 1),
		flushReq:      make(chan chan error),
		stop:          make(chan struct{}),
		done:          make(chan struct{}),
	}
	b.queue = make([]sdktrace.ReadOnlySpan, 0, min(maxQueue, 2*b.maxBatch))
	go b.run()
	return b
}

// OnStart does nothing: spans are queued when they end.
func (b *batcher) OnStart(context.Context, sdktrace.ReadWriteSpan) {}

// OnEnd queues s if it is sampled; on a full queue, or after Shutdown, s
// is dropped (counted in Dropped when the queue was full). It never
// blocks on the export, and wakes the export goroutine only when s
// completes a batch.
func (b *batcher) OnEnd(s sdktrace.ReadOnlySpan) {
	if !s.SpanContext().IsSampled() {
		return
	}
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return
	}
	if len(b.queue) >= b.maxQueue {
		b.mu.Unlock()
		b.dropped.Add(1)
		return
	}
	b.queue = append(b.queue, s)
	full := len(b.queue) == b.maxBatch
	b.mu.Unlock()
	if full {
		select {
		case b.kick <- struct{}{}:
		default: // a wake-up is already pending
		}
	}
}

// Dropped returns how many spans were dropped on a full queue.
func (b *batcher) Dropped() uint64 { return b.dropped.Load() }

// run is the export goroutine: it exports the queue when a batch fills,
// when the delay has passed since the last export, and on ForceFlush; on
// stop it exports what is left and returns.
func (b *batcher) run() {
	defer close(b.done)
	timer := time.NewTimer(b.delay)
	defer timer.Stop()
	full := false // woken by a full batch: export whole batches only
	for {
		select {
		case <-timer.C:
		case <-b.kick:
			full = true
		case ch := <-b.flushReq:
			ch <- b.exportQueued(false)
			continue
		case <-b.stop:
			b.lastErr = b.exportQueued(false)
			return
		}
		if err := b.exportQueued(full); err != nil {
			otel.Handle(err) // as the SDK's processor does: Start logs it
		}
		full = false
		timer.Reset(b.delay)
	}
}

// exportQueued exports the spans queued now, maxBatch at a time, each
// export within exportTimeout, and returns the first error. With
// fullOnly it leaves a last partial batch queued, for the timer or the
// next batch to fill, as the SDK's processor does.
func (b *batcher) exportQueued(fullOnly bool) error {
	b.mu.Lock()
	n := len(b.queue)
	if fullOnly {
		n -= n % b.maxBatch
	}
	spans := b.queue[:n]
	b.queue, b.spare = append(b.spare[:0], b.queue[n:]...), nil
	b.mu.Unlock()
	var first error
	for batch := range chunks(spans, b.maxBatch) {
		ctx, cancel := context.WithTimeout(context.Background(), b.exportTimeout)
		err := b.exp.ExportSpans(ctx, batch)
		cancel()
		if err != nil && first == nil {
			first = err
		}
	}
	spans = spans[:cap(spans)]
	clear(spans) // the spans are the collector's now, and the remainder is in the new queue: keep none alive
	b.mu.Lock()
	if cap(spans) <= 2*b.maxQueue { // bounded: a slice grown past this is left to the collector
		b.spare = spans[:0]
	}
	b.mu.Unlock()
	return first
}

// chunks yields s in consecutive pieces of at most n.
func chunks[T any](s []T, n int) func(func([]T) bool) {
	return func(yield func([]T) bool) {
		for len(s) > 0 {
			k := min(n, len(s))
			if !yield(s[:k:k]) {
				return
			}
			s = s[k:]
		}
	}
}

// ForceFlush exports every span queued, waiting within ctx. After
// Shutdown it does nothing.
func (b *batcher) ForceFlush(ctx context.Context) error {
	ch := make(chan error, 1)
	select {
	case b.flushReq <- ch:
	case <-b.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-ch:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Shutdown stops taking spans, exports those queued and shuts the
// exporter down, within ctx. Only the first call does this; later ones
// return nil.
func (b *batcher) Shutdown(ctx context.Context) error {
	first := false
	b.stopOnce.Do(func() {
		first = true
		b.mu.Lock()
		b.closed = true
		b.mu.Unlock()
		close(b.stop)
	})
	if !first {
		return nil
	}
	select {
	case <-b.done:
	case <-ctx.Done():
		return errors.Join(ctx.Err(), b.exp.Shutdown(ctx))
	}
	return errors.Join(b.lastErr, b.exp.Shutdown(ctx))
}
