// Package memtrim gives a daemon's memory back to the operating system
// after a burst of traffic.
//
// Go keeps the heap it grew: a bulk download through the tunnel fills
// WireGuard's 64 KiB packet buffers (pooled in sync.Pools, which only
// drop them after two collections) and the runtime returns the freed pages
// only slowly, and only when collections run — which an idle process
// hardly does. A mesh node or connector that served one large download
// would keep its peak resident for minutes. A Trimmer watches the
// runtime's own figures and, once the process has been idle for a period
// while holding well above what it held at rest, runs two collections and
// returns the free pages at once (debug.FreeOSMemory). A busy process is
// never trimmed; a process whose live heap really grew is trimmed once,
// and then not again until it grows by the slack once more.
//
// It is process-wide, as the runtime is: a main starts one (meshd run,
// connectord run). It imports no Postern package.
package memtrim

import (
	"log/slog"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
	"time"
)

// Defaults of Config's zero fields.
const (
	DefaultEvery = 5 * time.Second
	DefaultIdle  = 4 << 20
	DefaultSlack = 16 << 20
)

// Config configures a Trimmer.
type Config struct {
	// Every is how often the trimmer reads the runtime's figures; zero
	// means DefaultEvery.
	Every time.Duration
	// Idle is how many bytes the process may allocate in one period and
	// still count as idle; zero means DefaultIdle.
	Idle uint64
	// Slack is how far the memory the runtime holds may rise above the
	// lowest it held since the last trim before an idle period trims it;
	// zero means DefaultSlack.
	Slack uint64
	// Logger receives a debug line per trim; nil discards.
	Logger *slog.Logger
}

// Stats are the runtime figures a Trimmer decides on.
type Stats struct {
	// Allocated is the bytes allocated on the heap since the start
	// (cumulative).
	Allocated uint64
	// Held is the memory the runtime has mapped and not returned to the
	// operating system: an upper bound of its share of the resident set.
	Held uint64
}

// Read returns the runtime's figures now.
func Read() Stats {
	s := []metrics.Sample{
		{Name: "/gc/heap/allocs:bytes"},
		{Name: "/memory/classes/total:bytes"},
		{Name: "/memory/classes/heap/released:bytes"},
	}
	metrics.Read(s)
	return Stats{Allocated: s[0].Value.Uint64(), Held: s[1].Value.Uint64() - s[2].Value.Uint64()}
}

// Trim runs two collections (the first moves sync.Pools' contents to
// their victim caches, the second frees them) and returns every free page
// to the operating system.
func Trim() {
	runtime.GC()
	debug.FreeOSMemory()
}

// Trimmer trims the process's memory after bursts; see the package
// documentation. Close stops it.
type Trimmer struct {
	cfg  Config
	read func() Stats
	trim func()
	tick *time.Ticker

	done      chan struct{}
	wg        sync.WaitGroup
	closeOnce sync.Once

	mu    sync.Mutex // guards trims
	trims int
}

// Start starts a Trimmer on the process's runtime.
func Start(cfg Config) *Trimmer { return start(cfg, Read, Trim) }

func start(cfg Config, read func() Stats, trim func()) *Trimmer {
	if cfg.Every <= 0 {
		cfg.Every = DefaultEvery
	}
	if cfg.Idle == 0 {
		cfg.Idle = DefaultIdle
	}
	if cfg.Slack == 0 {
		cfg.Slack = DefaultSlack
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	t := &Trimmer{cfg: cfg, read: read, trim: trim, tick: time.NewTicker(cfg.Every), done: make(chan struct{})}
	prev := read()
	t.wg.Add(1)
	go t.loop(prev)
	return t
}

// loop reads the figures every period and trims when the last period was
// idle and the runtime holds more than the slack above its floor, the
// least it held since the last trim.
func (t *Trimmer) loop(prev Stats) {
	defer t.wg.Done()
	floor := prev.Held
	for {
		select {
		case <-t.done:
			return
		case <-t.tick.C:
		}
		now := t.read()
		idle := now.Allocated-prev.Allocated < t.cfg.Idle
		floor = min(floor, now.Held)
		if idle && now.Held > floor+t.cfg.Slack {
			t.trim()
			after := t.read()
			t.cfg.Logger.Debug("memory_trimmed", "held_before_bytes", now.Held, "held_after_bytes", after.Held)
			t.mu.Lock()
			t.trims++
			t.mu.Unlock()
			now, floor = after, after.Held
		}
		prev = now
	}
}

// Trims returns how many times t has trimmed.
func (t *Trimmer) Trims() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.trims
}

// Close stops the trimmer and waits for it. It is idempotent.
func (t *Trimmer) Close() {
	t.closeOnce.Do(func() {
		close(t.done)
		t.tick.Stop()
		t.wg.Wait()
	})
}
