package memtrim_test

import (
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/postern/postern/pkg/memtrim"
)

// fakeRuntime plays the runtime's figures: the test sets what the next
// read sees, and a trim brings Held down to rest.
type fakeRuntime struct {
	mu    sync.Mutex
	s     memtrim.Stats
	rest  uint64
	trims int
}

func (f *fakeRuntime) read() memtrim.Stats {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.s
}

func (f *fakeRuntime) trim() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.trims++
	f.s.Held = f.rest
}

// set makes the process allocate alloc bytes and hold held from now on.
func (f *fakeRuntime) set(alloc, held uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.s.Allocated += alloc
	f.s.Held = held
}

func (f *fakeRuntime) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.trims
}

const mib = 1 << 20

// TestTrimsAfterBurstOnly walks a process through rest, a burst, idleness
// after it, idleness again, a small rise and a second burst: it is
// trimmed once per burst, only once the burst is over, never while busy,
// never for a rise within the slack, and not again when the memory it
// holds after a trim is real.
func TestTrimsAfterBurstOnly(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fakeRuntime{s: memtrim.Stats{Held: 30 * mib}, rest: 32 * mib}
		tr := memtrim.StartWith(memtrim.Config{Every: time.Second, Idle: mib, Slack: 16 * mib}, f.read, f.trim)
		defer tr.Close()
		step := func(alloc, held uint64, wantTrims int, what string) {
			t.Helper()
			f.set(alloc, held)
			time.Sleep(time.Second)
			synctest.Wait()
			if got := f.count(); got != wantTrims || tr.Trims() != wantTrims {
				t.Fatalf("%s: %d trims (trimmer counts %d), want %d", what, got, tr.Trims(), wantTrims)
			}
		}
		step(100*mib, 120*mib, 0, "busy, holding 90 MiB above rest")
		step(200*mib, 150*mib, 0, "still busy")
		step(0, 150*mib, 1, "idle after the burst")
		step(0, 32*mib, 1, "idle at rest")
		step(512<<10, 40*mib, 1, "idle, 8 MiB above the floor (within the slack)")
		step(0, 47*mib, 1, "idle, 15 MiB above the floor")
		step(0, 49*mib, 2, "idle, 17 MiB above the floor")
		// Real growth: the trim cannot bring it down, so it is the new
		// floor and not trimmed again and again.
		f.rest = 100 * mib
		step(300*mib, 140*mib, 2, "busy again")
		step(0, 140*mib, 3, "idle: trimmed to 100 MiB of live heap")
		step(0, 100*mib, 3, "idle at the new floor")
		step(0, 110*mib, 3, "idle, within the slack of the new floor")
	})
}

// TestCloseIdempotent closes a Trimmer twice (the second returns at
// once) and checks that it stopped: a burst after Close is not trimmed.
func TestCloseIdempotent(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fakeRuntime{rest: mib}
		tr := memtrim.StartWith(memtrim.Config{}, f.read, f.trim)
		f.set(0, 500*mib)
		tr.Close()
		tr.Close()
		n := f.count()
		time.Sleep(time.Minute)
		synctest.Wait()
		if f.count() != n {
			t.Fatal("the trimmer trimmed after Close")
		}
	})
}

// TestTrimReturnsPooledBuffers fills a sync.Pool with 64 MiB of 64 KiB
// buffers (as WireGuard's pools hold after a burst), drops every other
// reference, and checks that Trim returns them to the operating system:
// the memory the runtime holds falls by most of them. A single collection
// would not do (the pool's victim cache keeps them one more cycle).
func TestTrimReturnsPooledBuffers(t *testing.T) {
	pool := sync.Pool{New: func() any { return new([64 << 10]byte) }}
	bufs := make([]*[64 << 10]byte, 1024)
	for i := range bufs {
		bufs[i] = pool.Get().(*[64 << 10]byte)
		bufs[i][0] = 1 // touch it: resident
	}
	for _, b := range bufs {
		pool.Put(b)
	}
	clear(bufs)
	before := memtrim.Read().Held
	memtrim.Trim()
	after := memtrim.Read().Held
	t.Logf("held %d MiB before the trim, %d MiB after", before>>20, after>>20)
	if before < after+48*mib {
		t.Fatalf("held %d MiB before the trim and %d MiB after: want it down by at least 48 MiB of the 64 MiB pooled", before>>20, after>>20)
	}
}
