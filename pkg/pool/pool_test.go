package pool

import (
	"context"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/postern/postern/pkg/testkit"
	"github.com/postern/postern/pkg/wgkey"
)

func key(tb testing.TB) wgkey.Public {
	tb.Helper()
	k, err := wgkey.Generate()
	if err != nil {
		tb.Fatal(err)
	}
	return k.Public()
}

func noDial(context.Context, string, string) (net.Conn, error) {
	return nil, errors.New("no dial in this test")
}

func TestPickLeastOutstanding(t *testing.T) {
	p := New(Config{Dial: noDial})
	a := p.Upsert("a", "hq", key(t))
	b := p.Upsert("b", "hq", key(t))
	p.Upsert("z", "other", key(t))
	a.Acquire()
	a.Acquire()
	b.Acquire()
	for i := 0; i < 20; i++ {
		if got := p.Pick("hq", nil); got != b {
			t.Fatalf("got %s, want b (fewer outstanding)", got.ID)
		}
	}
	if got := p.Pick("hq", []*Connector{b}); got != a {
		t.Fatalf("with b excluded: got %v, want a", got)
	}
	if got := p.Pick("hq", []*Connector{a, b}); got != nil {
		t.Fatalf("all excluded: got %s, want nil", got.ID)
	}
	if got := p.Pick("nogroup", nil); got != nil {
		t.Fatalf("unknown group: got %s", got.ID)
	}
	p.MarkDead(b, "test")
	if got := p.Pick("hq", nil); got != a {
		t.Fatalf("after b died: got %v, want a", got)
	}
	if b.Lost().Err() == nil || !errors.Is(context.Cause(b.Lost()), ErrConnectorLost) {
		t.Fatal("dead connector's requests were not abandoned")
	}
}

func TestPickSpreadsTies(t *testing.T) {
	p := New(Config{Dial: noDial})
	a := p.Upsert("a", "hq", key(t))
	b := p.Upsert("b", "hq", key(t))
	seen := map[*Connector]int{}
	for i := 0; i < 200; i++ {
		seen[p.Pick("hq", nil)]++
	}
	if seen[a] == 0 || seen[b] == 0 {
		t.Fatalf("ties not spread: a=%d b=%d", seen[a], seen[b])
	}
}

func TestUpsertReplacesInstance(t *testing.T) {
	p := New(Config{Dial: noDial})
	k := key(t)
	old := p.Upsert("a", "hq", k)
	cur := p.Upsert("a", "hq", k)
	if old.Lost().Err() == nil {
		t.Fatal("old instance not lost")
	}
	if got := p.Pick("hq", nil); got != cur {
		t.Fatal("new instance not picked")
	}
	if n := len(p.Statuses()); n != 1 {
		t.Fatalf("got %d connectors, want 1", n)
	}
	p.Remove(k)
	if p.Pick("hq", nil) != nil || cur.Lost().Err() == nil {
		t.Fatal("removed connector still picked or not lost")
	}
}

// fakePinger answers a probe after rtt, in the bubble's time; a peer that
// is down never answers (the probe times out). It counts the probes.
type fakePinger struct {
	rtt time.Duration

	mu    sync.Mutex // guards the following
	down  map[wgkey.Public]bool
	calls int
}

func newFakePinger(rtt time.Duration) *fakePinger {
	return &fakePinger{rtt: rtt, down: map[wgkey.Public]bool{}}
}

func (f *fakePinger) Ping(ctx context.Context, peer wgkey.Public) (time.Duration, error) {
	f.mu.Lock()
	down := f.down[peer]
	f.calls++
	f.mu.Unlock()
	if down {
		<-ctx.Done()
		return 0, ctx.Err()
	}
	t := time.NewTimer(f.rtt)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return 0, ctx.Err()
	case <-t.C:
		return f.rtt, nil
	}
}

func (f *fakePinger) set(k wgkey.Public, down bool) {
	f.mu.Lock()
	f.down[k] = down
	f.mu.Unlock()
}

func (f *fakePinger) probes() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls
}

// runPool runs p until the test's bubble ends it; call it inside
// synctest.Test.
func runPool(t *testing.T, p *Pool) {
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { p.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done; p.Close() })
}

// runRelays runs rs until the test's bubble ends it; call it inside
// synctest.Test.
func runRelays(t *testing.T, rs *Relays) {
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { rs.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done; rs.Close() })
}

// at lets the bubble's clock run until d past start (testkit.Settle).
func at(start time.Time, d time.Duration) { testkit.Settle(time.Until(start.Add(d))) }

// TestProbeTiming checks the probe timing to the instant, in a bubble:
// the RTT of the first probe (at ProbeInterval) is recorded; once the
// connector stops answering, it turns suspect exactly SuspectAfter plus
// twice its RTT after the probe began, and dead exactly when the
// DeadAfter-th probe in a row times out, not one instant before; it is
// alive again when the next probe answers.
func TestProbeTiming(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const rtt = 10 * time.Millisecond
		fp := newFakePinger(rtt)
		p := New(Config{Dial: noDial, Pinger: fp, ProbeInterval: time.Second, ProbeTimeout: 500 * time.Millisecond,
			SuspectAfter: 100 * time.Millisecond, DeadAfter: 3})
		k := key(t)
		c := p.Upsert("a", "hq", k)
		start := time.Now()
		runPool(t, p)
		at(start, time.Second+rtt)
		if got := p.Statuses()[0].RTT; got != rtt {
			t.Fatalf("RTT after the first probe: got %v, want %v", got, rtt)
		}
		fp.set(k, true)
		// Probes at 2s, 3s and 4s time out 500ms later each.
		suspectAt := 2*time.Second + 100*time.Millisecond + 2*rtt
		at(start, suspectAt-time.Nanosecond)
		if c.Suspected() {
			t.Fatal("suspect before SuspectAfter + 2 RTT")
		}
		at(start, suspectAt)
		if !c.Suspected() || p.Pick("hq", nil) != c {
			t.Fatalf("at %v: suspected %v, picked %v; want suspect and still picked (alive)", suspectAt, c.Suspected(), p.Pick("hq", nil))
		}
		at(start, 4500*time.Millisecond-time.Nanosecond)
		if !c.Alive() {
			t.Fatal("dead before the third probe in a row timed out")
		}
		at(start, 4500*time.Millisecond)
		if c.Alive() || p.Pick("hq", nil) != nil || c.Lost().Err() == nil {
			t.Fatal("not dead when the third probe in a row timed out")
		}
		fp.set(k, false)
		at(start, 5*time.Second+rtt-time.Nanosecond)
		if p.Pick("hq", nil) != nil {
			t.Fatal("alive before a probe answered")
		}
		at(start, 5*time.Second+rtt)
		if p.Pick("hq", nil) == nil || !p.Statuses()[0].Alive || c.Suspected() {
			t.Fatal("not alive and trusted when a probe answered")
		}
	})
}

// TestDeadAfterInARow checks that only DeadAfter failures in a row kill:
// two misses, an answer, two misses never do.
func TestDeadAfterInARow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fp := newFakePinger(time.Millisecond)
		p := New(Config{Dial: noDial, Pinger: fp, ProbeInterval: time.Second, ProbeTimeout: 500 * time.Millisecond, DeadAfter: 3})
		k := key(t)
		c := p.Upsert("a", "hq", k)
		start := time.Now()
		runPool(t, p)
		for i, down := range []bool{true, true, false, true, true} {
			fp.set(k, down)
			at(start, time.Duration(i+1)*time.Second+600*time.Millisecond) // after probe i+1 ended
			if !c.Alive() {
				t.Fatalf("dead after probe %d: only %v failed in a row", i+1, down)
			}
		}
		if n := fp.probes(); n != 5 {
			t.Fatalf("probes in 5.6s at 1s intervals: got %d, want 5", n)
		}
	})
}

// TestRelayProvedFirst checks the rules of the relay kind: a new relay
// path takes no request until a probe answers, and from exactly then; it
// comes back as a new instance; it is kept by key until removed.
func TestRelayProvedFirst(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const rtt = 20 * time.Millisecond
		fp := newFakePinger(rtt)
		rs := NewRelays(Config{Dial: noDial, Pinger: fp, ProbeInterval: time.Second, ProbeTimeout: 500 * time.Millisecond, DeadAfter: 2})
		k := key(t)
		fp.set(k, true)
		r := rs.Upsert("b", k)
		if r.Usable() || r.Healthy() {
			t.Fatal("an unproven relay path takes requests")
		}
		if rs.Get(k) != r || r.Node != "b" || r.HostPort() == "" {
			t.Fatalf("relay path not kept by key: got %+v", rs.Get(k))
		}
		start := time.Now()
		runRelays(t, rs)
		at(start, 3*time.Second+600*time.Millisecond)
		if n := fp.probes(); n != 3 || rs.Get(k).Usable() {
			t.Fatalf("after 3 failed probes: %d probes, usable %v; want 3, not usable", n, rs.Get(k).Usable())
		}
		fp.set(k, false)
		at(start, 4*time.Second+rtt-time.Nanosecond)
		if rs.Get(k).Healthy() {
			t.Fatal("taken before a probe answered")
		}
		at(start, 4*time.Second+rtt)
		up := rs.Get(k)
		if !up.Healthy() {
			t.Fatal("relay path not alive once a probe answered")
		}
		if up == r || r.Lost().Err() == nil {
			t.Fatal("the unproven instance was not replaced by a live one")
		}
		if !up.TryAcquire() {
			t.Fatal("a live relay path refused a request")
		}
		up.Release()
		if got := rs.List(); len(got) != 1 || got[0] != up {
			t.Fatalf("List: got %v, want the live instance", got)
		}
		rs.Remove(k)
		if rs.Get(k) != nil || up.Lost().Err() == nil || len(rs.List()) != 0 {
			t.Fatal("removed relay path still kept or not lost")
		}
	})
}

// TestTryAcquireAndDrain checks the drain handshake: a request that picked
// a connector just before it began draining either backs out unsent or is
// counted where WaitIdle sees it, also when both race.
func TestTryAcquireAndDrain(t *testing.T) {
	p := New(Config{Dial: noDial})
	k := key(t)
	c := p.Upsert("a", "hq", k)
	if !c.TryAcquire() {
		t.Fatal("a live connector refused a request")
	}
	p.SetDraining(k, true)
	if c.TryAcquire() {
		t.Fatal("a draining connector took a new request")
	}
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	if c.WaitIdle(ctx) {
		t.Fatal("WaitIdle returned with a request outstanding")
	}
	c.Release()
	if !c.WaitIdle(t.Context()) || c.Outstanding() != 0 {
		t.Fatalf("WaitIdle after the last release: outstanding %d", c.Outstanding())
	}
	p.SetDraining(k, false)
	p.MarkDead(c, "test")
	if c.TryAcquire() || c.Outstanding() != 0 {
		t.Fatal("a lost connector took a request")
	}

	// Race requests against the drain: whatever TryAcquire admitted is
	// still outstanding when WaitIdle returns, never released behind its
	// back.
	for range 200 {
		c := p.Upsert("b", "hq", key(t))
		var admitted, done sync.WaitGroup
		var lateAdmit atomic.Bool
		idle := make(chan struct{})
		for range 4 {
			admitted.Add(1)
			go func() {
				defer admitted.Done()
				if c.TryAcquire() {
					select {
					case <-idle:
						lateAdmit.Store(true) // admitted, yet the drain saw nothing
					default:
					}
					done.Add(1)
					go func() { defer done.Done(); c.Release() }()
				}
			}()
		}
		c.draining.Store(true)
		c.WaitIdle(t.Context())
		close(idle)
		admitted.Wait()
		done.Wait()
		if lateAdmit.Load() {
			t.Fatal("a request was admitted after the drain found the connector idle")
		}
	}
}
