package pool

import (
	"testing"
	"testing/synctest"
	"time"
)

// TestRelayWithdrawKeepsStreams checks Withdraw, the mesh's answer to a
// gossip false alarm: a withdrawn relay path takes no new request but is
// not ended (its requests and streams go on), stays withdrawn when it is
// revived after a death, is still declared dead (and then lost) when it
// stops answering, and takes requests again once restored.
func TestRelayWithdrawKeepsStreams(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fp := newFakePinger(10 * time.Millisecond)
		rs := NewRelays(Config{Dial: noDial, Pinger: fp, ProbeInterval: time.Second, ProbeTimeout: 500 * time.Millisecond, DeadAfter: 2})
		k := key(t)
		rs.Upsert("b", k)
		start := time.Now()
		runRelays(t, rs)
		at(start, 1100*time.Millisecond)
		r := rs.Get(k)
		if !r.Usable() || !r.TryAcquire() {
			t.Fatal("relay path not usable once a probe answered")
		}
		// r now carries a request (a stream) when the gossip flaps.
		if !rs.Withdraw(k, true) {
			t.Fatal("Withdraw did not find the relay path")
		}
		if r.Usable() || r.Healthy() || !r.Withdrawn() {
			t.Fatal("a withdrawn relay path is still offered to new requests")
		}
		if r.TryAcquire() {
			t.Fatal("a withdrawn relay path took a new request")
		}
		at(start, 5100*time.Millisecond) // four more probes, all answered
		if rs.Get(k) != r || r.Lost().Err() != nil || r.Outstanding() != 1 {
			t.Fatalf("withdrawing ended the path: same instance %v, lost %v, outstanding %d", rs.Get(k) == r, r.Lost().Err(), r.Outstanding())
		}
		if !rs.Withdraw(k, false) || !r.Usable() || !r.TryAcquire() {
			t.Fatal("a restored relay path takes no new request")
		}
		r.Release()
		r.Release()

		// Withdrawn, then dead (its probes fail): lost; revived: still
		// withdrawn until restored.
		rs.Withdraw(k, true)
		fp.set(k, true)
		at(start, 7600*time.Millisecond)
		if r.Lost().Err() == nil {
			t.Fatal("a withdrawn relay path that stopped answering was not declared dead")
		}
		fp.set(k, false)
		at(start, 8100*time.Millisecond)
		up := rs.Get(k)
		if up == r || !up.Alive() {
			t.Fatal("the relay path did not come back as a new live instance")
		}
		if up.Usable() || up.TryAcquire() {
			t.Fatal("a revived instance of a withdrawn relay path takes new requests")
		}
		rs.Withdraw(k, false)
		if !up.Usable() {
			t.Fatal("the revived instance is not usable once restored")
		}
		if rs.Withdraw(key(t), true) {
			t.Fatal("Withdraw reported an unknown relay path as found")
		}
	})
}
