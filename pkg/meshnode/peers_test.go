package meshnode

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/postern/postern/pkg/gossip"
	"github.com/postern/postern/pkg/pool"
	"github.com/postern/postern/pkg/testkit"
	"github.com/postern/postern/pkg/wgkey"
	"github.com/postern/postern/pkg/wgnet"
)

// fakeTunnel records the WireGuard peer changes meshPeers makes; rx is
// what Received reports.
type fakeTunnel struct {
	mu      sync.Mutex
	peers   map[wgkey.Public]wgnet.Peer
	adds    int
	removes int
	rx      map[wgkey.Public]uint64
}

func (f *fakeTunnel) AddPeer(p wgnet.Peer) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.peers[p.PublicKey] = p
	f.adds++
	return nil
}

func (f *fakeTunnel) RemovePeer(pub wgkey.Public) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.peers, pub)
	f.removes++
	return nil
}

func (f *fakeTunnel) Received(pub wgkey.Public) (uint64, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	rx, ok := f.rx[pub]
	return rx, ok
}

func (f *fakeTunnel) counts() (peers, adds, removes int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.peers), f.adds, f.removes
}

func (f *fakeTunnel) receive(pub wgkey.Public, n uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rx[pub] += n
}

// peersEnv is a meshPeers over a fakeTunnel and real relay paths probed
// by a silentPinger, in a synctest bubble (time.Now is the bubble's).
type peersEnv struct {
	t      *testing.T
	tun    *fakeTunnel
	ping   *silentPinger
	relays *pool.Relays
	p      *meshPeers
	member gossip.Member
}

func newPeersEnv(t *testing.T) *peersEnv {
	e := &peersEnv{t: t, tun: &fakeTunnel{peers: map[wgkey.Public]wgnet.Peer{}, rx: map[wgkey.Public]uint64{}},
		ping: &silentPinger{silent: map[wgkey.Public]bool{}}}
	cfg := routerProbes
	cfg.Pinger = e.ping
	e.relays = pool.NewRelays(cfg)
	e.p = newMeshPeers(e.tun, e.relays, time.Now, slog.New(slog.DiscardHandler))
	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	wg.Go(func() { e.relays.Run(ctx) })
	t.Cleanup(func() { cancel(); wg.Wait(); e.relays.Close() })
	k, err := wgkey.Generate()
	if err != nil {
		t.Fatal(err)
	}
	e.member = gossip.Member{Meta: gossip.Meta{ID: "b", Region: "r", WGKey: k.Public(), WGEndpoint: "127.0.0.1:5000", Boot: 1},
		State: gossip.StateAlive}
	return e
}

// alive reconciles with the member alive, dead reconciles without it.
func (e *peersEnv) alive() { e.p.reconcile(map[string]gossip.Member{"b": e.member}) }
func (e *peersEnv) dead()  { e.p.reconcile(map[string]gossip.Member{}) }

// stream adds the member, waits for its relay path to answer and returns
// it carrying one request (a stream through it).
func (e *peersEnv) stream() *pool.Relay {
	e.t.Helper()
	e.alive()
	testkit.Settle(50 * time.Millisecond) // a few probes
	r := e.relays.Get(e.member.WGKey)
	if r == nil || !r.Usable() || !r.TryAcquire() {
		e.t.Fatal("the relay path did not come up")
	}
	return r
}

// TestGossipFlapKeepsTheRelayStream: the gossip declares a member dead and
// alive again within the grace (as under load) while its tunnel works: the
// relay path takes no new request meanwhile, but neither the WireGuard
// peer nor the path instance (with its stream) is touched, and once the
// member is back the same path takes requests again.
func TestGossipFlapKeepsTheRelayStream(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newPeersEnv(t)
		r := e.stream()
		e.dead()
		if r.Usable() || r.TryAcquire() {
			t.Fatal("the path of a member declared dead still takes new requests")
		}
		testkit.Settle(peerGrace / 2)
		e.dead() // still dead, within the grace
		e.alive()
		if _, adds, removes := e.tun.counts(); adds != 1 || removes != 0 {
			t.Fatalf("the flap touched the WireGuard peer: %d adds, %d removes; want 1, 0", adds, removes)
		}
		if e.relays.Get(e.member.WGKey) != r || r.Lost().Err() != nil || r.Outstanding() != 1 {
			t.Fatal("the flap replaced or ended the relay path and its stream")
		}
		if !r.Usable() {
			t.Fatal("the path of a member back alive takes no new requests")
		}
		testkit.Settle(2 * peerGrace)
		e.alive()
		if e.relays.Get(e.member.WGKey) != r || r.Lost().Err() != nil {
			t.Fatal("a grace that began before the flap ended the path later")
		}
	})
}

// TestRealDeathRemovesAfterGrace: a member that stays dead loses its
// WireGuard peer and relay path (ending the stream) once the grace is
// over, not before; one back with a new WireGuard key is replaced at
// once; one back after a restart (new boot time) gets a fresh peer.
func TestRealDeathRemovesAfterGrace(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newPeersEnv(t)
		r := e.stream()
		e.dead()
		testkit.Settle(peerGrace - time.Millisecond)
		e.dead()
		if peers, _, removes := e.tun.counts(); peers != 1 || removes != 0 || r.Lost().Err() != nil {
			t.Fatal("removed before the grace was over")
		}
		testkit.Settle(time.Millisecond)
		e.dead()
		if peers, _, removes := e.tun.counts(); peers != 0 || removes != 1 {
			t.Fatalf("after the grace: %d peers, %d removes; want 0, 1", peers, removes)
		}
		if e.relays.Get(e.member.WGKey) != nil || r.Lost().Err() == nil {
			t.Fatal("the relay path of a dead member outlived the grace")
		}

		// Back with a new key while in the grace: the old peer goes at once.
		r = e.stream()
		old := e.member.WGKey
		e.dead()
		k, err := wgkey.Generate()
		if err != nil {
			t.Fatal(err)
		}
		e.member.WGKey = k.Public()
		e.alive()
		if e.relays.Get(old) != nil || r.Lost().Err() == nil || e.relays.Get(e.member.WGKey) == nil {
			t.Fatal("a member back with a new WireGuard key kept its old peer")
		}

		// Back after a restart: a fresh peer and relay path.
		r = e.stream()
		e.dead()
		e.member.Boot++
		_, adds, removes := e.tun.counts()
		e.alive()
		if _, a, rm := e.tun.counts(); a != adds+1 || rm != removes+1 || e.relays.Get(e.member.WGKey) == r || r.Lost().Err() == nil {
			t.Fatal("a restarted member did not get a fresh peer and relay path")
		}
	})
}

// TestStuckPeerResetOnlyWhenNothingArrives: a live member's relay path
// that fails its probes is reset after peerReset only when nothing
// arrived from the peer through the tunnel meanwhile (a session that no
// longer decrypts); bytes arriving prove the session works and the probes
// merely slow, and then the peer is left alone.
func TestStuckPeerResetOnlyWhenNothingArrives(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newPeersEnv(t)
		r := e.stream()
		r.Release()
		k := e.member.WGKey
		e.ping.set(k, true)
		testkit.Settle(5 * time.Second) // declared dead by its probes
		for range 10 {
			e.tun.receive(k, 1500) // a stream's packets keep arriving
			e.alive()
			testkit.Settle(time.Second)
		}
		if _, _, removes := e.tun.counts(); removes != 0 {
			t.Fatal("a peer whose packets arrive was reset")
		}
		e.tun.receive(k, 1500) // the last packet: from now on, silence
		e.alive()
		testkit.Settle(peerReset - time.Millisecond)
		e.alive()
		if _, _, removes := e.tun.counts(); removes != 0 {
			t.Fatal("reset before peerReset")
		}
		testkit.Settle(time.Millisecond)
		e.alive()
		if _, adds, removes := e.tun.counts(); removes != 1 || adds != 2 {
			t.Fatalf("a silent stuck peer: %d removes, %d adds; want a reset (1, 2)", removes, adds)
		}
	})
}
