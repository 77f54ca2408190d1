// Package simnet makes loopback look like the real world for Postern's
// in-process multi-region tests and bench: every packet between simulated
// regions takes a one-way delay (RTT/2 plus jitter), may be lost, and may be
// cut by a partition or an isolated host.
//
// It sits under the transports on the request path: the harness wraps each
// mesh node's and connector's WireGuard conn.Bind with Network.Bind, each
// mesh node's memberlist transport with Network.Transport, and the HTTP
// client legs (user → mesh, connector → mesh API) with Network.Dialer. The
// sender applies the delay once; receiving is untouched.
//
// # Matrix file
//
// A Matrix comes from a strict YAML file (unknown keys, repeated keys, wrong
// types and impossible values are errors with line numbers):
//
//	regions:                       # at least one; names unique; file order kept
//	  - name: us-east-1
//	    intra_rtt_ms: 1.0          # optional; RTT between two hosts in the region (0: none)
//	links:                         # exactly one per pair of distinct regions
//	  - between: [us-east-1, eu-west-1]
//	    rtt_ms: 80.5               # required, >= 0
//	    jitter_ms: 0.8             # optional, >= 0; standard deviation of the RTT
//	    loss: 0                    # optional, in [0,1); per packet, per direction
//	sources:                       # optional; citations for the figures
//	  - "https://... (what figure, retrieved ...)"
//
// Every pair of distinct regions must have exactly one link, in either
// order; a link naming an unknown region, a link joining a region to itself,
// a missing pair and a duplicate pair are errors. DefaultMatrix is the
// embedded default.yaml, whose README.md says where each figure comes from.
//
// # Network
//
// A Network maps loopback addresses (ip:port) to regions. Traffic to an
// address that is not registered is neither delayed nor dropped, unless the
// address is isolated. Partition cuts whole region pairs; Isolate cuts single
// addresses; Heal removes both.
package simnet
