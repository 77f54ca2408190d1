package gossip

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/postern/postern/pkg/authority"
	"github.com/postern/postern/pkg/wgkey"
)

// maxIDLen bounds node ids, regions, connector names and groups, so that
// every broadcast fits one UDP packet.
const maxIDLen = 128

// Meta is a node's metadata, carried in memberlist's node meta. Its encoded
// form must fit memberlist.MetaMaxSize (512 bytes).
type Meta struct {
	// ID is the node's unique name in the cluster; required.
	ID string
	// Region is the node's region, e.g. "eu-west-1"; required.
	Region string
	// WGKey is the node's WireGuard public key; the tunnel address is
	// WGKey.Addr(). It is always the key the node credential names; zero
	// in a Config means "the credential's".
	WGKey wgkey.Public
	// WGEndpoint is the "host:port" of the node's WireGuard UDP socket.
	WGEndpoint string
	// PublicURL is the "https://host:port" of the node's public listener,
	// where connectors attach.
	PublicURL string
	// Load is the number of requests in flight.
	Load int
	// Version is the node's software version.
	Version string
	// Boot is the node's start time in unix nanoseconds; entries from an
	// older boot of a node are stale.
	Boot int64
	// Draining says the node takes no new work.
	Draining bool
}

// wireMeta is Meta's compact encoded form. The WireGuard key is not in
// it: the node credential beside it names the key.
type wireMeta struct {
	ID         string `json:"i"`
	Region     string `json:"r"`
	WGEndpoint string `json:"e,omitempty"`
	PublicURL  string `json:"u,omitempty"`
	Load       int    `json:"l,omitempty"`
	Version    string `json:"v,omitempty"`
	Boot       int64  `json:"b,omitempty"`
	Draining   bool   `json:"d,omitempty"`
}

// encodeMetaBody validates m and returns the JSON body of its encoded
// form.
func encodeMetaBody(m Meta) ([]byte, error) {
	if m.ID == "" || len(m.ID) > maxIDLen {
		return nil, fmt.Errorf("encode meta: id must be 1..%d bytes: %w", maxIDLen, ErrInvalidArgument)
	}
	if m.Region == "" || len(m.Region) > maxIDLen {
		return nil, fmt.Errorf("encode meta: region must be 1..%d bytes: %w", maxIDLen, ErrInvalidArgument)
	}
	if m.Load < 0 {
		return nil, fmt.Errorf("encode meta: negative load %d: %w", m.Load, ErrInvalidArgument)
	}
	w := wireMeta{ID: m.ID, Region: m.Region, WGEndpoint: m.WGEndpoint, PublicURL: m.PublicURL,
		Load: m.Load, Version: m.Version, Boot: m.Boot, Draining: m.Draining}
	b, err := json.Marshal(w)
	if err != nil {
		return nil, fmt.Errorf("encode meta: %w", err)
	}
	if len(b) > memberlist.MetaMaxSize {
		return nil, fmt.Errorf("encode meta: %d bytes, limit %d: %w", len(b), memberlist.MetaMaxSize, ErrMetaTooLarge)
	}
	return b, nil
}

// decodeMetaBody parses the JSON body of a remote node's metadata.
func decodeMetaBody(b []byte) (Meta, error) {
	var w wireMeta
	if err := json.Unmarshal(b, &w); err != nil {
		return Meta{}, fmt.Errorf("decode meta: %w", err)
	}
	if w.ID == "" || len(w.ID) > maxIDLen || w.Region == "" || len(w.Region) > maxIDLen || w.Load < 0 {
		return Meta{}, fmt.Errorf("decode meta: bad id, region or load: %w", ErrInvalidArgument)
	}
	return Meta{ID: w.ID, Region: w.Region, WGEndpoint: w.WGEndpoint, PublicURL: w.PublicURL,
		Load: w.Load, Version: w.Version, Boot: w.Boot, Draining: w.Draining}, nil
}

// loadOnly reports whether a and b differ in Load alone.
func loadOnly(a, b Meta) bool {
	a.Load = b.Load
	return a == b
}

// State is a member's state as seen from this node.
type State string

// Member states.
const (
	// StateAlive is a member that answers probes.
	StateAlive State = "alive"
	// StateSuspect is a member suspected of failure. memberlist does not
	// expose suspicion, so Members does not currently report it.
	StateSuspect State = "suspect"
	// StateDead is a member declared failed.
	StateDead State = "dead"
	// StateLeft is a member that left gracefully.
	StateLeft State = "left"
)

// Member is one node of the cluster as seen from this node.
type Member struct {
	Meta
	// State is the member's state.
	State State
	// Addr is the member's gossip address, "host:port".
	Addr string
	// RTT is the Vivaldi estimate of the RTT from this node; valid when
	// HasRTT is set.
	RTT time.Duration
	// HasRTT says RTT holds an estimate.
	HasRTT bool
	// LastProbeRTT is the last RTT measured by a probe of this member;
	// zero means none yet.
	LastProbeRTT time.Duration
	// Credential is the member's node credential, verified against the
	// authority's keys when its metadata arrived.
	Credential authority.NodeCredential
}
