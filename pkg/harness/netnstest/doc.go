// Package netnstest holds the end-to-end test of a connector behind a real
// firewall: the connectord binary runs in a Linux network namespace whose
// outbound UDP an nftables rule drops, and it must still serve an app
// through the mesh, over the stream carrier, and move back to UDP once the
// rule is gone.
//
// It sits on the whole request path: a client in the root namespace asks
// the mesh node (package harness, listening on the host end of a veth pair)
// for an app that listens only on the namespace's loopback, so only the
// connector inside the namespace can reach it.
//
// The test creates its own namespace and veth pair (named after the test's
// process id, addresses in a free 10.203.X.0/30) and always deletes both,
// then checks that none is left. It needs root, iproute2 ("ip") and
// nftables ("nft"); without them it fails with a message saying what is
// missing — it never skips, in CI (CI=true, where the runner is root and
// installs both) or elsewhere, so a skipped run is never counted as
// passing. The package has no non-test code.
package netnstest
