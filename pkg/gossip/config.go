package gossip

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/postern/postern/pkg/authority"
	"github.com/prometheus/client_golang/prometheus"
)

// TokenStore is the set of used enrolment-token ids that the cluster
// spreads; *authority.UsedTokens implements it. Both methods must be safe
// for concurrent use and must not block for long: they are called from
// memberlist's goroutines.
type TokenStore interface {
	// List returns the ids held.
	List() []authority.UsedToken
	// Merge adds ids learnt from another node.
	Merge([]authority.UsedToken) error
}

// Config configures a Cluster.
type Config struct {
	// Meta is the initial metadata; ID and Region are required and must
	// be those of Identity's credential.
	Meta Meta
	// Identity is this node's node credential and node key. Required: a
	// node without one is refused by every other node.
	Identity Identity
	// Verifier checks the other nodes' credentials and admin revocations
	// (the mesh authority). Required.
	Verifier Verifier
	// BindAddr is the "host:port" the gossip listens on (UDP and TCP);
	// port 0 picks a free one. Empty means "0.0.0.0:7946". Ignored when
	// Transport is set.
	BindAddr string
	// AdvertiseAddr is the "host:port" other nodes reach us at; empty
	// means the bound address.
	AdvertiseAddr string
	// Transport carries the gossip; nil means memberlist's NetTransport on
	// BindAddr. Tests and bench pass a latency-injecting decorator.
	Transport memberlist.NodeAwareTransport
	// Keys is the gossip encryption keyring, the first key primary; each
	// key is 16, 24 or 32 bytes. Required unless Insecure is set.
	Keys [][]byte
	// Insecure allows running without Keys (unencrypted gossip); only
	// tests set it.
	Insecure bool
	// Label is the cluster label; packets and streams with another label
	// are refused. Empty means no label.
	Label string
	// Seeds are the "host:port" gossip addresses Join and the rejoin loop
	// contact. Empty (and no Discover) means Join does nothing.
	Seeds []string
	// Discover, if set, finds further seeds each time they are needed
	// (Join, and a rejoin while alone): the other nodes' gossip addresses
	// from EC2 tags or DNS (pkg/discover). It may return some addresses
	// with an error; this node's own address is dropped from them.
	Discover func(ctx context.Context) ([]string, error)
	// Timing sets the failure detector and gossip rates; the zero value
	// means DefaultTiming().
	Timing Timing
	// Tokens is the used enrolment-token store; nil means token ids are
	// not spread.
	Tokens TokenStore
	// Revocations is the deny-list; nil means revocations are not spread.
	Revocations RevocationStore
	// OnStateMerged, if set, is called with the id of a node whose full
	// state (push-pull) this node has verified and merged: its used tokens
	// and revocations are now ours too. It is called from memberlist's
	// goroutines and must not block.
	OnStateMerged func(node string)
	// Logger receives the cluster's logs; nil means slog.Default().
	Logger *slog.Logger
	// Now is the clock (credential expiry, attachment and leave ages, the
	// metadata rate limit); nil means time.Now. Timers use the runtime's
	// clock: tests drive both with testing/synctest.
	Now func() time.Time
	// Registerer receives the cluster's metrics; nil means no metrics.
	Registerer prometheus.Registerer
}

// Timing sets the failure detector and gossip rates.
type Timing struct {
	// ProbeInterval is how often each node probes one other node.
	ProbeInterval time.Duration
	// ProbeTimeout is how long a direct probe waits for its ack before
	// indirect probes start; it must exceed the largest RTT.
	ProbeTimeout time.Duration
	// SuspicionMult scales the suspicion timeout:
	// SuspicionMult × max(1, log10(n)) × ProbeInterval.
	SuspicionMult int
	// SuspicionMaxTimeoutMult caps the Lifeguard suspicion timeout (used
	// when confirmations are expected) at this multiple of the minimum.
	SuspicionMaxTimeoutMult int
	// IndirectChecks is how many nodes are asked to probe on our behalf
	// after a failed direct probe.
	IndirectChecks int
	// AwarenessMaxMultiplier bounds Lifeguard's local-health scaling of the
	// probe interval and timeout (a saturated node probes more slowly
	// rather than accusing healthy peers).
	AwarenessMaxMultiplier int
	// GossipInterval is how often queued broadcasts are sent.
	GossipInterval time.Duration
	// GossipNodes is how many nodes each gossip round reaches.
	GossipNodes int
	// GossipToTheDeadTime is how long dead nodes still receive gossip (and
	// are kept before being forgotten by memberlist).
	GossipToTheDeadTime time.Duration
	// RetransmitMult scales how many times a broadcast is retransmitted:
	// RetransmitMult × ceil(log10(n+1)).
	RetransmitMult int
	// PushPullInterval is how often a full state exchange (anti-entropy,
	// over TCP) runs with one random node.
	PushPullInterval time.Duration
	// TCPTimeout bounds stream connections (push-pull, join).
	TCPTimeout time.Duration
	// RejoinInterval is how often Run tries to rejoin failed members and,
	// when alone, the seeds; it bounds how long a healed partition stays
	// split (DefaultTiming: 5s, a handful of join attempts to dead
	// addresses at most).
	RejoinInterval time.Duration
	// RefreshInterval is how often Run flushes rate-limited metadata,
	// re-broadcasts attachments whose in-flight counts changed, refreshes
	// metrics and collects garbage.
	RefreshInterval time.Duration
	// MetaMinInterval is the minimum spacing of load-only metadata
	// updates.
	MetaMinInterval time.Duration
	// DeadNodeReclaimTime is after how long a dead node's name may be
	// taken by a node at another address (a restarted node).
	DeadNodeReclaimTime time.Duration
}

// DefaultTiming returns the timing for real deployments: clusters of up to
// about 10 mesh nodes whose pairwise RTTs reach ~250 ms.
//
// Failure detection arithmetic (memberlist state.go probeNode and
// suspectNode, util.go suspicionTimeout):
//
//   - Each of the n-1 live nodes probes one node per ProbeInterval (400 ms)
//     in shuffled round-robin order, so a dead node is first probed within
//     about PI/(n-1) on average (80 ms for 6 nodes), at worst ~PI.
//   - A probe waits ProbeTimeout (320 ms = the largest RTT of the default
//     matrix, 239 ms eu-west-1 ↔ ap-southeast-1, plus 80 ms headroom) for a
//     direct ack, then asks IndirectChecks nodes (and a TCP ping) until the
//     probe deadline, sent + ProbeInterval. The prober marks the target
//     suspect at +400 ms.
//   - The suspicion timeout is SuspicionMult × max(1, log10(n)) × PI; for
//     n ≤ 10 that is 2 × 1 × 400 ms = 0.8 s. With SuspicionMult 2 the
//     Lifeguard confirmation count k = SuspicionMult-2 = 0, so the timer
//     is the minimum at once (no waiting for independent confirmations).
//   - The dead message then reaches every node within a couple of gossip
//     rounds (GossipInterval 100 ms, GossipNodes 3, plus one-way latency
//     ≤ 125 ms): ≈ 0.2-0.3 s.
//
// Total ≈ 0.1-0.4 (first probe) + 0.4 (probe) + 0.8 (suspicion) + 0.3
// (spread) ≈ 1.6-1.9 s. Measured in pkg/harness/meshtest over the default
// matrix. The mesh node does not wait for it to route around a dead node:
// its probes through the mesh tunnel withdraw the relay path first, and
// requests not yet sent are retried on another path at once.
//
// False alarms: a live node is only declared dead if it fails to refute a
// suspicion for 0.8 s; the refutation (an alive message with a higher
// incarnation) needs one gossip round plus one-way latency, ~0.25 s. The
// ProbeTimeout keeps 80 ms of headroom above the worst RTT, and Lifeguard
// awareness (AwarenessMaxMultiplier 8) stays on: a node whose CPU is
// saturated misses acks, raises its own health score and stretches its
// probe interval and timeout up to 8×, so it stops accusing healthy peers
// instead of flooding suspicions. `task soak` checks this for 10 minutes.
func DefaultTiming() Timing {
	return Timing{
		ProbeInterval:           400 * time.Millisecond,
		ProbeTimeout:            320 * time.Millisecond,
		SuspicionMult:           2,
		SuspicionMaxTimeoutMult: 4,
		IndirectChecks:          3,
		AwarenessMaxMultiplier:  8,
		GossipInterval:          100 * time.Millisecond,
		GossipNodes:             3,
		GossipToTheDeadTime:     30 * time.Second,
		RetransmitMult:          4,
		PushPullInterval:        15 * time.Second,
		TCPTimeout:              5 * time.Second,
		RejoinInterval:          5 * time.Second,
		RefreshInterval:         5 * time.Second,
		MetaMinInterval:         time.Second,
		DeadNodeReclaimTime:     30 * time.Second,
	}
}

// LocalTiming returns a faster timing for loopback-only tests.
func LocalTiming() Timing {
	return Timing{
		ProbeInterval:           250 * time.Millisecond,
		ProbeTimeout:            150 * time.Millisecond,
		SuspicionMult:           3,
		SuspicionMaxTimeoutMult: 4,
		IndirectChecks:          2,
		AwarenessMaxMultiplier:  8,
		GossipInterval:          100 * time.Millisecond,
		GossipNodes:             3,
		GossipToTheDeadTime:     2 * time.Second,
		RetransmitMult:          3,
		PushPullInterval:        2 * time.Second,
		TCPTimeout:              5 * time.Second,
		RejoinInterval:          time.Second,
		RefreshInterval:         500 * time.Millisecond,
		MetaMinInterval:         time.Second,
		DeadNodeReclaimTime:     time.Second,
	}
}

// validate checks the fields that memberlist would otherwise misuse.
func (t Timing) validate() error {
	switch {
	case t.ProbeInterval <= 0, t.ProbeTimeout <= 0, t.GossipInterval <= 0, t.PushPullInterval <= 0,
		t.TCPTimeout <= 0, t.RejoinInterval <= 0, t.RefreshInterval <= 0:
		return fmt.Errorf("timing: intervals and timeouts must be positive: %w", ErrInvalidConfig)
	case t.ProbeTimeout >= t.ProbeInterval:
		return fmt.Errorf("timing: probe timeout %v must be below probe interval %v: %w", t.ProbeTimeout, t.ProbeInterval, ErrInvalidConfig)
	case t.SuspicionMult < 1, t.GossipNodes < 1, t.RetransmitMult < 1, t.AwarenessMaxMultiplier < 1:
		return fmt.Errorf("timing: multipliers and gossip nodes must be at least 1: %w", ErrInvalidConfig)
	}
	return nil
}

// validKeyLen reports whether n is an AES key length.
func validKeyLen(n int) bool { return n == 16 || n == 24 || n == 32 }

// memberlistConfig builds memberlist's configuration; the delegates are set
// by the caller.
func (cfg *Config) memberlistConfig(t Timing) (*memberlist.Config, error) {
	mc := memberlist.DefaultLANConfig()
	mc.Name = cfg.Meta.ID
	mc.Label = cfg.Label
	mc.ProbeInterval = t.ProbeInterval
	mc.ProbeTimeout = t.ProbeTimeout
	mc.SuspicionMult = t.SuspicionMult
	mc.SuspicionMaxTimeoutMult = max(t.SuspicionMaxTimeoutMult, 1)
	mc.IndirectChecks = t.IndirectChecks
	mc.AwarenessMaxMultiplier = t.AwarenessMaxMultiplier
	mc.GossipInterval = t.GossipInterval
	mc.GossipNodes = t.GossipNodes
	mc.GossipToTheDeadTime = t.GossipToTheDeadTime
	mc.RetransmitMult = t.RetransmitMult
	mc.PushPullInterval = t.PushPullInterval
	mc.TCPTimeout = t.TCPTimeout
	mc.DeadNodeReclaimTime = t.DeadNodeReclaimTime
	if len(cfg.Keys) > 0 {
		kr, err := memberlist.NewKeyring(cfg.Keys, cfg.Keys[0])
		if err != nil {
			return nil, fmt.Errorf("keyring: %w", err) // memberlist's message names no key bytes
		}
		mc.Keyring = kr
		mc.GossipVerifyIncoming, mc.GossipVerifyOutgoing = true, true
	}
	if cfg.Transport != nil {
		mc.Transport = cfg.Transport
	} else {
		bind := cfg.BindAddr
		if bind == "" {
			bind = "0.0.0.0:7946"
		}
		host, port, err := splitHostPort(bind)
		if err != nil {
			return nil, fmt.Errorf("bind address: %w", err)
		}
		mc.BindAddr, mc.BindPort, mc.AdvertisePort = host, port, port
	}
	if cfg.AdvertiseAddr != "" {
		host, port, err := splitHostPort(cfg.AdvertiseAddr)
		if err != nil || port == 0 {
			return nil, fmt.Errorf("advertise address %q: want host:port with a port: %w", cfg.AdvertiseAddr, ErrInvalidConfig)
		}
		mc.AdvertiseAddr, mc.AdvertisePort = host, port
	}
	return mc, nil
}

// splitHostPort parses "host:port".
func splitHostPort(s string) (string, int, error) {
	host, p, err := net.SplitHostPort(s)
	if err != nil {
		return "", 0, fmt.Errorf("%q: %v: %w", s, err, ErrInvalidConfig)
	}
	port, err := strconv.Atoi(p)
	if err != nil || port < 0 || port > 65535 {
		return "", 0, fmt.Errorf("%q: bad port: %w", s, ErrInvalidConfig)
	}
	return host, port, nil
}
