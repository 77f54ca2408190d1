package gossip

import (
	"io"
	"log"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/postern/postern/pkg/authority"
	"github.com/postern/postern/pkg/revoke"
	"github.com/postern/postern/pkg/testkit"
)

// intruder is a memberlist node that holds the gossip keyring but no node
// credential of its own: it joins with forged metadata and sends forged
// broadcasts and push-pull state.
type intruder struct {
	mu    sync.Mutex
	meta  []byte
	msgs  [][]byte
	state []byte
}

func (i *intruder) NodeMeta(int) []byte { i.mu.Lock(); defer i.mu.Unlock(); return i.meta }
func (i *intruder) NotifyMsg([]byte)    {}
func (i *intruder) GetBroadcasts(overhead, limit int) [][]byte {
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.msgs // sent again every round
}
func (i *intruder) LocalState(bool) []byte        { i.mu.Lock(); defer i.mu.Unlock(); return i.state }
func (i *intruder) MergeRemoteState([]byte, bool) {}

func startIntruder(tb testing.TB, name string, d *intruder, seed string, tr memberlist.Transport) *memberlist.Memberlist {
	tb.Helper()
	mc := memberlist.DefaultLANConfig()
	mc.Name, mc.BindAddr, mc.BindPort, mc.AdvertisePort = name, "127.0.0.1", 0, 0
	mc.Label = ""
	kr, err := memberlist.NewKeyring([][]byte{testKey}, testKey)
	if err != nil {
		tb.Fatal(err)
	}
	mc.Keyring, mc.GossipVerifyIncoming, mc.GossipVerifyOutgoing = kr, true, true
	mc.Delegate, mc.Transport = d, tr
	mc.GossipInterval, mc.PushPullInterval, mc.ProbeInterval = 50*time.Millisecond, 300*time.Millisecond, 200*time.Millisecond
	mc.Logger = log.New(io.Discard, "", 0)
	ml, err := memberlist.Create(mc)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { ml.Shutdown() })
	ml.Join([]string{seed}) // memberlist may complete the join at its level
	return ml
}

// TestKeyringHolderJoinsNothing: a process with the gossip keyring but no
// node credential (or with a stolen one) is never a member and none of
// its attachments, used tokens, revocations or leave notices are believed,
// whether broadcast or in push-pull state.
func TestKeyringHolderJoinsNothing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var mn memNet
		tokens := map[string]*memTokens{}
		lists := map[string]*revoke.List{}
		regs := map[string]*prometheus.Registry{}
		withStores := func(c *Config) {
			regs[c.Meta.ID] = prometheus.NewRegistry()
			c.Registerer = regs[c.Meta.ID]
			s := newMemTokens()
			tokens[c.Meta.ID] = s
			c.Tokens = s
			withRevocations(t, lists)(c)
		}
		a, b, _ := threeNodes(t, withStores, mn.opt(t))
		b.SetAttachments([]Attachment{{Connector: "real", Group: "g", Alive: true}})
		waitFor(t, waitLong, "a sees b/real", func() bool { return hasAttachment(a, "b", "real", nil) })

		bID := testIdentity(t, "b", "region-b")
		rogue := Identity{Credential: bID.Credential, Key: testIdentity(t, "rogue-key", "region-b").Key} // stolen credential, own key
		now := time.Now()
		forgedAttach := func(node string, signer Identity) []byte {
			w := wireAttach{Node: node, Connector: "evil-" + node, Group: "g", Boot: 100, Version: now.UnixNano() + 1<<40, Alive: true}
			w.Sig = signer.sign("attach", attachSigned(w))
			m, _ := encodeMsg(kindAttachment, w)
			return m
		}
		sealAs := func(id Identity, kind byte, v any) []byte {
			c := &Cluster{cfg: Config{Identity: id}}
			m, err := c.seal(kind, v)
			if err != nil {
				t.Fatal(err)
			}
			return m
		}
		unsigned := func(kind byte, v any) []byte {
			m, _ := encodeMsg(kind, envelope{Body: mustJSON(t, v)})
			return m
		}
		tok := []authority.UsedToken{{ID: "burnt-by-intruder", Expires: now.Add(time.Hour)}}
		rev := []revoke.Record{{Entry: revoke.Session("sid-victim", now, 0)}}
		userRev := []revoke.Record{{Entry: revoke.User("tid/victim", now, now, 0)}}
		d := &intruder{meta: mustJSON(t, map[string]any{"i": "intruder", "r": "region-x"})}
		d.msgs = [][]byte{
			forgedAttach("intruder", rogue),
			forgedAttach("b", rogue),
			unsigned(kindTokens, tok),
			sealAs(rogue, kindTokens, tok),
			unsigned(kindRevoke, rev),
			sealAs(rogue, kindRevoke, rev),
			unsigned(kindLeave, wireLeave{ID: "b", Boot: 100}),
			sealAs(rogue, kindLeave, wireLeave{ID: "b", Boot: 100}),
		}
		// A genuine node may revoke a session, but a user needs the
		// authority: b's own signature on a user revocation is refused too.
		d.msgs = append(d.msgs, sealAs(bID, kindRevoke, userRev))
		d.state = sealAs(rogue, kindState, wireState{
			Attachments: []wireAttach{{Node: "intruder", Connector: "evil-state", Version: 1, Alive: true}},
			Tokens:      []authority.UsedToken{{ID: "burnt-by-state", Expires: now.Add(time.Hour)}},
			Revocations: []revoke.Record{{Entry: revoke.Session("sid-state", now, 0)}},
		})
		startIntruder(t, "intruder", d, a.Addr(), mn.transport())
		// A second intruder presents b's genuine credential in its metadata,
		// signed with its own key.
		stolenMeta, _ := encodeSignedMeta(rogue, Meta{ID: "b", Region: "region-b", Boot: 999})
		startIntruder(t, "b-impostor", &intruder{meta: stolenMeta, msgs: d.msgs, state: d.state}, a.Addr(), mn.transport())

		// Wait until a and b have received and refused every kind of forgery
		// (the intruders repeat them every gossip round), then check that
		// nothing got through; meanwhile a genuine fact still spreads.
		a.TokenUsed(authority.UsedToken{ID: "genuine", Expires: now.Add(time.Hour)})
		waitFor(t, waitLong, "the genuine token reaches b", func() bool { return tokens["b"].has("genuine") })
		for _, id := range []string{"a", "b"} {
			for _, kind := range []string{"alive", "attachment", "token", "revocation", "leave", "state"} {
				waitFor(t, waitLong, id+" refuses forged "+kind+" messages", func() bool {
					return refusedCount(t, regs[id], kind) >= 2
				})
			}
		}
		for _, n := range []*Cluster{a, b} {
			id := n.LocalID()
			for _, m := range n.Members() {
				if m.ID == "intruder" || m.ID == "b-impostor" {
					t.Errorf("%s lists %s as a member", id, m.ID)
				}
			}
			for _, at := range n.Attachments() {
				if at.Connector != "real" {
					t.Errorf("%s believes attachment %s/%s", id, at.Node, at.Connector)
				}
			}
			for _, jti := range []string{"burnt-by-intruder", "burnt-by-state"} {
				if tokens[id].has(jti) {
					t.Errorf("%s believes token %s used", id, jti)
				}
			}
			if l := lists[id]; l.SessionRevoked("sid-victim") || l.SessionRevoked("sid-state") || l.UserRevoked("tid/victim", 0) {
				t.Errorf("%s believes a forged revocation", id)
			}
			if stateOf(n, "b") != StateAlive && id != "b" {
				t.Errorf("%s sees b %s after forged leave notices", id, stateOf(n, "b"))
			}
		}
	})
}

// refusedCount reads postern_gossip_messages_total{kind,dir="refused"}.
func refusedCount(tb testing.TB, reg *prometheus.Registry, kind string) float64 {
	tb.Helper()
	return testkit.MetricValue(tb, reg, "postern_gossip_messages_total", "kind", kind, "dir", "refused")
}

// TestRevocationsSpread: a session revocation by a node and a user
// revocation with the authority's proof reach every node by broadcast,
// and a late joiner by push-pull.
func TestRevocationsSpread(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var mn memNet
		lists := map[string]*revoke.List{}
		withList := withRevocations(t, lists)
		a, _, _ := threeNodes(t, withList, mn.opt(t))
		now := time.Now()
		userEntry := revoke.User("tid/alice", now, now, 0)
		proof, err := testAuthority(t).SignRevocation(userEntry)
		if err != nil {
			t.Fatal(err)
		}
		added, err := lists["a"].Add(revoke.Record{Entry: revoke.Session("sid-1", now, 0)}, revoke.Record{Entry: userEntry, Proof: proof})
		if err != nil || len(added) != 2 {
			t.Fatalf("add: %v %v", added, err)
		}
		a.Revoked(added)
		for _, id := range []string{"b", "c"} {
			waitFor(t, waitLong, id+" has both revocations", func() bool {
				return lists[id].SessionRevoked("sid-1") && lists[id].UserRevoked("tid/alice", now.Unix()-1)
			})
		}
		newNode(t, "d", []string{a.Addr()}, withList, mn.opt(t))
		waitFor(t, waitLong, "d has both revocations", func() bool {
			return lists["d"].SessionRevoked("sid-1") && lists["d"].UserRevoked("tid/alice", now.Unix()-1)
		})
	})
}

// withRevocations gives each test node a deny-list of its own, recorded in
// lists by node id.
func withRevocations(tb testing.TB, lists map[string]*revoke.List) nodeOpts {
	return func(c *Config) {
		l, err := revoke.Open(tb.TempDir()+"/r.json", nil)
		if err != nil {
			tb.Fatal(err)
		}
		lists[c.Meta.ID] = l
		c.Revocations = l
	}
}
