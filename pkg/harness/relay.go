package harness

import (
	"errors"
	"fmt"

	"github.com/postern/postern/pkg/simnet"
)

// The relay system: node A in region a, node B in region b, and one
// connector of group RelayGroup, pinned to region b, so that every request
// a user sends to node A is relayed through node B.
const (
	// RelayGroup is the relay system's connector group; its app is
	// "app-relay" at GroupHost(RelayGroup).
	RelayGroup = "relay"
	// RelayRegionA and RelayRegionB are the regions of node A (with the
	// user) and of node B (with the connector).
	RelayRegionA, RelayRegionB = "a", "b"
	// RelayNodeA and RelayNodeB are the ids of the two nodes.
	RelayNodeA, RelayNodeB = "A", "B"
)

// zeroMatrixYAML is a matrix of regions a and b with no injected delay at
// all, so that what is measured or raced is Postern's own.
const zeroMatrixYAML = `regions:
  - name: a
    intra_rtt_ms: 0
  - name: b
    intra_rtt_ms: 0
links:
  - between: [a, b]
    rtt_ms: 0
`

// ZeroMatrix returns the matrix of the relay system: regions a and b with
// no injected delay.
func ZeroMatrix() *simnet.Matrix {
	m, err := simnet.ParseMatrix([]byte(zeroMatrixYAML))
	if err != nil {
		panic("harness: the built-in zero matrix does not parse: " + err.Error())
	}
	return m
}

// RelayTopology returns the relay system's topology over net, whose matrix
// must have regions a and b (ZeroMatrix).
func RelayTopology(net *simnet.Network) *Topology {
	return &Topology{Net: net,
		Nodes:      []NodeSpec{{ID: RelayNodeA, Region: RelayRegionA}, {ID: RelayNodeB, Region: RelayRegionB}},
		Groups:     []GroupSpec{{ID: RelayGroup, Region: RelayRegionB, Pin: true}},
		Connectors: []ConnectorSpec{{Group: RelayGroup, Region: RelayRegionB}},
		// One attachment: the harness waits for min(AttachK, nodes)
		// attachments, and the pinned group may attach to node B only.
		AttachK: 1}
}

// ErrNotRelay means node A of the relay system does not route the relay
// group's app through node B.
var ErrNotRelay = errors.New("node A does not relay through node B")

// CheckRelay returns an error unless mesh node 0 (node A of a system
// started with RelayTopology) routes the relay group's app through node B
// first.
func (h *Harness) CheckRelay() error {
	ex, err := h.Meshes()[0].Node.Explain("app-" + RelayGroup)
	if err != nil {
		return fmt.Errorf("harness: relay: explain: %w", err)
	}
	if len(ex.Paths) == 0 || !ex.Paths[0].Chosen || ex.Paths[0].Via != RelayNodeB {
		return fmt.Errorf("harness: relay: %w: node A's route is %+v", ErrNotRelay, ex.Paths)
	}
	return nil
}
