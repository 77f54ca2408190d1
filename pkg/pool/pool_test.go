package pool

import (
	"context"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"testing"
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

type fakePinger struct {
	mu    sync.Mutex
	down  map[wgkey.Public]bool
	calls int
}

func (f *fakePinger) Ping(ctx context.Context, peer wgkey.Public) (time.Duration, error) {
	f.mu.Lock()
	down := f.down[peer]
	f.calls++
	f.mu.Unlock()
	if down {
		return 0, errors.New("no answer")
	}
	return time.Millisecond, nil
}

func (f *fakePinger) set(k wgkey.Public, down bool) {
	f.mu.Lock()
	f.down[k] = down
	f.mu.Unlock()
}

func TestProbesMarkDeadAndAlive(t *testing.T) {
	fp := &fakePinger{down: map[wgkey.Public]bool{}}
	p := New(Config{Dial: noDial, Pinger: fp, ProbeInterval: 5 * time.Millisecond, DeadAfter: 2})
	k := key(t)
	p.Upsert("a", "hq", k)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { p.Run(ctx); close(done) }()
	defer func() { cancel(); <-done; p.Close() }()
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		testkit.WaitFor(t, 10*time.Second, what, cond)
	}
	waitFor("rtt recorded", func() bool { return p.Statuses()[0].RTT == time.Millisecond })
	fp.set(k, true)
	waitFor("connector down", func() bool { return p.Pick("hq", nil) == nil })
	fp.set(k, false)
	waitFor("connector up", func() bool { return p.Pick("hq", nil) != nil })
	if !p.Statuses()[0].Alive {
		t.Fatal("status not alive after recovery")
	}
}

// TestRelayProvedFirst checks the rules of the relay kind: a new relay
// path takes no request until a probe answers, it dies after DeadAfter
// failed probes like a connector, and it comes back as a new instance.
func TestRelayProvedFirst(t *testing.T) {
	fp := &fakePinger{down: map[wgkey.Public]bool{}}
	rs := NewRelays(Config{Dial: noDial, Pinger: fp, ProbeInterval: 5 * time.Millisecond, DeadAfter: 2})
	k := key(t)
	fp.set(k, true)
	r := rs.Upsert("b", k)
	if r.Usable() || r.Healthy() {
		t.Fatal("an unproven relay path takes requests")
	}
	if rs.Get(k) != r || r.Node != "b" || r.HostPort() == "" {
		t.Fatalf("relay path not kept by key: got %+v", rs.Get(k))
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { rs.Run(ctx); close(done) }()
	defer func() { cancel(); <-done; rs.Close() }()
	deadline := time.Now().Add(5 * time.Second)
	for calls := 0; calls < 3; {
		if time.Now().After(deadline) {
			t.Fatal("no probes")
		}
		time.Sleep(5 * time.Millisecond)
		fp.mu.Lock()
		calls = fp.calls
		fp.mu.Unlock()
	}
	if rs.Get(k).Usable() {
		t.Fatal("a relay path whose probes fail takes requests")
	}
	fp.set(k, false)
	deadline = time.Now().Add(5 * time.Second)
	for !rs.Get(k).Healthy() {
		if time.Now().After(deadline) {
			t.Fatal("relay path not alive after a probe answered")
		}
		time.Sleep(5 * time.Millisecond)
	}
	up := rs.Get(k)
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
