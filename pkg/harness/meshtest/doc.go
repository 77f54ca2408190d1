// Package meshtest holds the multi-region tests of the mesh: three
// simulated regions with two mesh nodes each, connector groups in
// different regions, real WireGuard, real memberlist gossip, and latency
// from the default RTT matrix (pkg/simnet). They check route choice
// against the matrix's true optimum, node and connector failure, drain,
// and partition and heal. `task test:mesh` runs them 20 times in a row.
package meshtest
