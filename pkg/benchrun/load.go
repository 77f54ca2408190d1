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
	// requestsModeLimit bounds the measurement window of a run bounded by
	// LoadConfig.Requests.
	requestsModeLimit = 10 * time.Minute
)

// LoadConfig configures one load run, closed or open loop.
type LoadConfig struct {
	// Concurrency is the number of workers, each with at most one request
	// in flight; zero means 1. In an open loop it bounds the requests in
	// flight: a scheduled request waits for a free worker, and the wait
	// counts in its latency.
	Concurrency int
	// Rate, when positive, makes the run an open loop: requests are
	// scheduled at Rate per second in total, whatever the responses do,
	// and each latency is measured from the request's scheduled send time
	// (free of coordinated omission). Zero means a closed loop.
	Rate float64
	// Warmup is how long requests run before recording starts; zero means
	// no warm-up.
	Warmup time.Duration
	// Duration is how long requests are recorded after the warm-up; it must
	// be positive unless Requests is set. A request still in flight when it
	// ends is cancelled and counts neither as a request nor as an error.
	Duration time.Duration
	// Requests, when positive, ends the run once that many requests have
	// been started after the warm-up (and have completed); Duration, if
	// also set, still bounds the window, otherwise 10 minutes does. Zero
	// means the run is bounded by Duration only.
	Requests int64
	// MaxRequests bounds the requests issued over priming, warm-up and
	// measurement together, across all workers; zero means
	// DefaultMaxRequests.
	MaxRequests int64
	// Prime makes each worker first issue one unrecorded request, which
	// opens its connection, and starts the warm-up only when all have done
	// so (or failed, which counts as an error, or taken over 30s). False
	// means the warm-up starts at once.
	Prime bool
	// OnWindow, if set, is called once the times are fixed, before any
	// warm-up request, with the start and end of the measurement window.
	OnWindow func(start, end time.Time)
	// Done, if set, is incremented for every completed request (priming,
	// warm-up and measured), for a live progress display.
	Done *atomic.Int64
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
	// ErrorsByKind splits Errors by ErrorKind; nil when there were none.
	ErrorsByKind map[string]int64
	// FirstError is the first failure seen, or nil.
	FirstError error
	// Elapsed is the length of the measurement window actually covered.
	Elapsed time.Duration
	// Bytes is the number of body bytes read during the measurement window.
	Bytes int64
	// CPU is the processor time (user and system) the whole process used
	// during the measurement window; zero where it cannot be read.
	CPU time.Duration
	// Latency holds the latencies in microseconds of the successful
	// requests counted in Requests.
	Latency *hdrhistogram.Histogram
}

func (c LoadConfig) validate() error {
	switch {
	case c.Concurrency < 0:
		return fmt.Errorf("benchrun: load: concurrency %d is negative", c.Concurrency)
	case c.Rate < 0:
		return fmt.Errorf("benchrun: load: rate %v is negative", c.Rate)
	case c.Warmup < 0:
		return fmt.Errorf("benchrun: load: warm-up %v is negative", c.Warmup)
	case c.Requests < 0:
		return fmt.Errorf("benchrun: load: request count %d is negative", c.Requests)
	case c.Duration < 0 || (c.Duration == 0 && c.Requests == 0):
		return fmt.Errorf("benchrun: load: duration %v is not positive and no request count is given", c.Duration)
	case c.MaxRequests < 0:
		return fmt.Errorf("benchrun: load: max requests %d is negative", c.MaxRequests)
	}
	return nil
}

// RunLoad runs op for cfg.Warmup unrecorded and then cfg.Duration (or
// cfg.Requests requests) recorded. In a closed loop, cfg.Concurrency
// workers each issue a request as soon as their previous one has completed;
// in an open loop (cfg.Rate > 0) requests are issued on a fixed schedule.
// It returns an error only for a bad cfg or when ctx ends first; failed
// requests are counted in Stats.
func RunLoad(ctx context.Context, cfg LoadConfig, op Op) (Stats, error) {
	if err := cfg.validate(); err != nil {
		return Stats{}, err
	}
	l := &loop{op: op, limit: cfg.MaxRequests, measureLimit: cfg.Requests, start: make(chan struct{}), done: cfg.Done}
	if l.limit == 0 {
		l.limit = DefaultMaxRequests
	}
	if l.done == nil {
		l.done = new(atomic.Int64)
	}
	if cfg.Rate > 0 {
		l.interval = time.Duration(float64(time.Second) / cfg.Rate)
		if l.interval <= 0 {
			l.interval = 1
		}
	}
	window := cfg.Duration
	if window == 0 {
		window = requestsModeLimit
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
	l.warmStart = time.Now()
	l.warmEnd = l.warmStart.Add(cfg.Warmup)
	l.end = l.warmEnd.Add(window)
	l.ctx, cancel = context.WithDeadline(ctx, l.end)
	defer cancel()
	if cfg.OnWindow != nil {
		cfg.OnWindow(l.warmEnd, l.end)
	}
	close(l.start) // publishes the fields above to the workers
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	// The window starts at warmEnd: the snapshot is taken when the timer
	// fires or when a worker starts the first measured request, whichever
	// comes first. (A timer alone fires late on a busy machine: fast
	// requests could then all finish first and the window look never
	// reached.)
	timerDone := make(chan struct{})
	go func() {
		defer close(timerDone)
		timer := time.NewTimer(time.Until(l.warmEnd))
		defer timer.Stop()
		select {
		case <-timer.C:
			l.snapshot()
		case <-done:
		}
	}()
	<-done
	<-timerDone
	stopAt := time.Now()
	cpuEnd := processCPU()
	if stopAt.After(l.end) {
		stopAt = l.end
	}
	if err := ctx.Err(); err != nil {
		return Stats{}, fmt.Errorf("benchrun: load: %w", err)
	}
	st := merge(workers)
	if l.warmed {
		st.Elapsed = stopAt.Sub(l.snap.at)
		st.Bytes = l.read.Load() - l.snap.bytes
		st.CPU = cpuEnd - l.snap.cpu
	}
	return st, nil
}

// loop is the state the workers of one RunLoad share. The fields after
// start are written before start is closed and only read after.
type loop struct {
	op           Op
	limit        int64
	measureLimit int64         // LoadConfig.Requests
	interval     time.Duration // open loop: time between scheduled sends; 0 = closed loop
	read         atomic.Int64  // body bytes read
	issued       atomic.Int64  // requests issued, for the count bound
	measured     atomic.Int64  // requests issued in the measurement window
	next         atomic.Int64  // open loop: index of the next scheduled send
	done         *atomic.Int64 // requests completed
	start        chan struct{}

	ctx       context.Context // ends at end
	warmStart time.Time
	warmEnd   time.Time
	end       time.Time

	snapOnce sync.Once // guards the following, written once, read after the workers finish
	snap     snapshot
	warmed   bool // the measurement window was reached
}

// snapshot records the state at the start of the measurement window, the
// first time it is called.
func (l *loop) snapshot() {
	l.snapOnce.Do(func() {
		l.snap = snapshot{bytes: l.read.Load(), at: time.Now(), cpu: processCPU()}
		l.warmed = true
	})
}

// snapshot is the state of a run at the start of its measurement window.
type snapshot struct {
	bytes int64
	at    time.Time
	cpu   time.Duration
}

// worker is one client; its fields are written only by its own goroutine
// and read after it has finished.
type worker struct {
	requests int64
	errors   int64
	kinds    map[string]int64
	first    error
	hist     *hdrhistogram.Histogram
}

// prime issues one unrecorded request, which opens the worker's
// connection; a failure counts as an error.
func (w *worker) prime(ctx context.Context, l *loop) {
	ctx, cancel := context.WithTimeout(ctx, primeTimeout)
	defer cancel()
	l.issued.Add(1)
	err := l.op(ctx, &l.read)
	l.done.Add(1)
	if err != nil {
		w.fail(err)
	}
}

func (w *worker) run(l *loop) {
	w.hist = hdrhistogram.New(minLatency, maxLatency, sigFigs)
	<-l.start
	for l.issued.Add(1) <= l.limit {
		var t0 time.Time // the send time latency is measured from
		if l.interval > 0 {
			t0 = l.warmStart.Add(time.Duration(l.next.Add(1)-1) * l.interval)
			if !t0.Before(l.end) || !sleepUntil(l.ctx, t0) {
				return
			}
		} else {
			t0 = time.Now()
			if !t0.Before(l.end) || l.ctx.Err() != nil {
				return
			}
		}
		measured := !t0.Before(l.warmEnd)
		if measured {
			l.snapshot()
		}
		if measured && l.measureLimit > 0 && l.measured.Add(1) > l.measureLimit {
			return
		}
		err := l.op(l.ctx, &l.read)
		t1 := time.Now()
		if err != nil && l.ctx.Err() != nil {
			return // cut off by the end of the run, not a failure of the system
		}
		l.done.Add(1)
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

// sleepUntil waits until t or until ctx ends, and reports whether t came.
func sleepUntil(ctx context.Context, t time.Time) bool {
	d := time.Until(t)
	if d <= 0 {
		return ctx.Err() == nil
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return true
	case <-ctx.Done():
		return false
	}
}

func (w *worker) fail(err error) {
	w.errors++
	if w.kinds == nil {
		w.kinds = make(map[string]int64)
	}
	w.kinds[ErrorKind(err)]++
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
		for k, n := range ws[i].kinds {
			if st.ErrorsByKind == nil {
				st.ErrorsByKind = make(map[string]int64)
			}
			st.ErrorsByKind[k] += n
		}
		if st.FirstError == nil {
			st.FirstError = ws[i].first
		}
		if ws[i].hist != nil {
			st.Latency.Merge(ws[i].hist)
		}
	}
	return st
}
