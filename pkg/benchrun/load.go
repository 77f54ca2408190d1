package benchrun

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

const (
	// DefaultMaxRequests bounds the requests of one load run when
	// LoadConfig.MaxRequests is zero.
	DefaultMaxRequests = 10_000_000
	// minLatency and maxLatency are the histogram's range in microseconds
	// (1µs..60s); longer requests are recorded as 60s.
	minLatency = 1
	maxLatency = 60_000_000
	// sigFigs is the histogram's precision in significant decimal digits.
	sigFigs = 3
	// primeTimeout bounds a priming request.
	primeTimeout = 30 * time.Second
)

// LoadConfig configures one closed-loop load run.
type LoadConfig struct {
	// Concurrency is the number of workers, each with at most one request
	// in flight; zero means 1.
	Concurrency int
	// Warmup is how long requests run before recording starts; zero means
	// no warm-up.
	Warmup time.Duration
	// Duration is how long requests are recorded after the warm-up; it must
	// be positive. A request still in flight when it ends is cancelled and
	// counts neither as a request nor as an error.
	Duration time.Duration
	// MaxRequests bounds the requests issued over priming, warm-up and
	// measurement together, across all workers; zero means
	// DefaultMaxRequests.
	MaxRequests int64
	// Prime makes each worker first issue one unrecorded request, which
	// opens its connection, and starts the warm-up only when all have done
	// so (or failed, which counts as an error, or taken over 30s). False
	// means the warm-up starts at once.
	Prime bool
}

// Op issues one request and reads its whole response. It adds every body
// byte to read as it reads it, so that throughput can be measured in the
// middle of a long response. It returns nil on success and an error for a
// transport failure or a non-2xx status. Each worker calls it sequentially;
// different workers call it concurrently.
type Op func(ctx context.Context, read *atomic.Int64) error

// Stats is what one load run measured.
type Stats struct {
	// Requests is the number of requests started after the warm-up that
	// completed (successfully or not) before the end.
	Requests int64
	// Errors is the number of failed requests, in warm-up and measurement.
	Errors int64
	// FirstError is the first failure seen, or nil.
	FirstError error
	// Elapsed is the length of the measurement window actually covered.
	Elapsed time.Duration
	// Bytes is the number of body bytes read during the measurement window.
	Bytes int64
	// Latency holds the latencies in microseconds of the successful
	// requests counted in Requests.
	Latency *hdrhistogram.Histogram
}

func (c LoadConfig) validate() error {
	switch {
	case c.Concurrency < 0:
		return fmt.Errorf("benchrun: load: concurrency %d is negative", c.Concurrency)
	case c.Warmup < 0:
		return fmt.Errorf("benchrun: load: warm-up %v is negative", c.Warmup)
	case c.Duration <= 0:
		return fmt.Errorf("benchrun: load: duration %v is not positive", c.Duration)
	case c.MaxRequests < 0:
		return fmt.Errorf("benchrun: load: max requests %d is negative", c.MaxRequests)
	}
	return nil
}

// RunLoad runs op in a closed loop: cfg.Concurrency workers each issue a
// request as soon as their previous one has completed, for cfg.Warmup
// unrecorded and then cfg.Duration recorded. It returns an error only for a
// bad cfg or when ctx ends first; failed requests are counted in Stats.
func RunLoad(ctx context.Context, cfg LoadConfig, op Op) (Stats, error) {
	if err := cfg.validate(); err != nil {
		return Stats{}, err
	}
	l := &loop{op: op, limit: cfg.MaxRequests, start: make(chan struct{})}
	if l.limit == 0 {
		l.limit = DefaultMaxRequests
	}
	workers := make([]worker, max(cfg.Concurrency, 1))
	var primed, wg sync.WaitGroup
	primed.Add(len(workers))
	wg.Add(len(workers))
	for i := range workers {
		go func() {
			defer wg.Done()
			if cfg.Prime {
				workers[i].prime(ctx, l)
			}
			primed.Done()
			workers[i].run(l)
		}()
	}
	primed.Wait()
	var cancel context.CancelFunc
	l.warmEnd = time.Now().Add(cfg.Warmup)
	l.end = l.warmEnd.Add(cfg.Duration)
	l.ctx, cancel = context.WithDeadline(ctx, l.end)
	defer cancel()
	close(l.start) // publishes the fields above to the workers
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	warmBytes, warmAt, warmed := snapshotAt(l.warmEnd, done, &l.read)
	<-done
	stopAt := time.Now()
	if stopAt.After(l.end) {
		stopAt = l.end
	}
	if err := ctx.Err(); err != nil {
		return Stats{}, fmt.Errorf("benchrun: load: %w", err)
	}
	st := merge(workers)
	if warmed {
		st.Elapsed = stopAt.Sub(warmAt)
		st.Bytes = l.read.Load() - warmBytes
	}
	return st, nil
}

// loop is the state the workers of one RunLoad share. The fields after
// start are written before start is closed and only read after.
type loop struct {
	op     Op
	limit  int64
	read   atomic.Int64 // body bytes read
	issued atomic.Int64 // requests issued, for the count bound
	start  chan struct{}

	ctx     context.Context // ends at end
	warmEnd time.Time
	end     time.Time
}

// snapshotAt waits until t and returns the byte count and time then. If the
// workers finish first, it reports that the measurement window was never
// reached.
func snapshotAt(t time.Time, done <-chan struct{}, read *atomic.Int64) (int64, time.Time, bool) {
	timer := time.NewTimer(time.Until(t))
	defer timer.Stop()
	select {
	case <-timer.C:
		return read.Load(), time.Now(), true
	case <-done:
		select {
		case <-timer.C: // both were ready: the warm-up did end
			return read.Load(), time.Now(), true
		default:
			return 0, time.Time{}, false
		}
	}
}

// worker is one closed-loop client; its fields are written only by its own
// goroutine and read after it has finished.
type worker struct {
	requests int64
	errors   int64
	first    error
	hist     *hdrhistogram.Histogram
}

// prime issues one unrecorded request, which opens the worker's
// connection; a failure counts as an error.
func (w *worker) prime(ctx context.Context, l *loop) {
	ctx, cancel := context.WithTimeout(ctx, primeTimeout)
	defer cancel()
	l.issued.Add(1)
	if err := l.op(ctx, &l.read); err != nil {
		w.fail(err)
	}
}

func (w *worker) run(l *loop) {
	w.hist = hdrhistogram.New(minLatency, maxLatency, sigFigs)
	<-l.start
	for l.issued.Add(1) <= l.limit {
		t0 := time.Now()
		if !t0.Before(l.end) || l.ctx.Err() != nil {
			return
		}
		err := l.op(l.ctx, &l.read)
		t1 := time.Now()
		if err != nil && l.ctx.Err() != nil {
			return // cut off by the end of the run, not a failure of the system
		}
		measured := !t0.Before(l.warmEnd)
		if measured {
			w.requests++
		}
		if err != nil {
			w.fail(err)
		} else if measured {
			w.record(t1.Sub(t0))
		}
	}
}

func (w *worker) fail(err error) {
	w.errors++
	if w.first == nil {
		w.first = err
	}
}

func (w *worker) record(d time.Duration) {
	us := min(max(d.Microseconds(), minLatency), maxLatency)
	_ = w.hist.RecordValue(us) // in range by construction
}

func merge(ws []worker) Stats {
	st := Stats{Latency: hdrhistogram.New(minLatency, maxLatency, sigFigs)}
	for i := range ws {
		st.Requests += ws[i].requests
		st.Errors += ws[i].errors
		if st.FirstError == nil {
			st.FirstError = ws[i].first
		}
		if ws[i].hist != nil {
			st.Latency.Merge(ws[i].hist)
		}
	}
	return st
}
