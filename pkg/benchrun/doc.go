// Package benchrun measures Postern's request path end to end. It sits
// outside the request path, as its client: it starts the whole system in
// process (pkg/harness), drives closed-loop load at the sample app either
// directly (the baseline) or through a mesh node, WireGuard and a connector,
// records each request's latency in an HDR histogram, and writes the rows as
// JSON and markdown. The bench command is a thin main over it.
package benchrun
