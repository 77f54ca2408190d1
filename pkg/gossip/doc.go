// Package gossip is the mesh nodes' cluster: every meshd joins one encrypted
// memberlist (SWIM) cluster through which it publishes its own metadata
// (region, WireGuard key and endpoint, public URL, load), learns the other
// mesh nodes, spreads which connectors are attached to it and their health,
// spreads used enrolment-token ids, and estimates the RTT to every other node
// with Vivaldi network coordinates fed by memberlist's probes.
//
// On the request path it sits beside the data plane: the mesh node runtime
// (pkg/meshnode) reads Members and Attachments to choose the node through
// which a request reaches its connector, and EstimateRTT to weigh the relay
// hop; no request bytes flow through this package.
package gossip
