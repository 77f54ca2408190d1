// Package nodecred is the wire format of mesh node credentials: the mesh
// authority's signed statement that a mesh node (id, region) owns a
// WireGuard key and an Ed25519 node key until a time, and the check of
// such a statement against the authority's public keys.
//
// It holds no private key and does no I/O, so that whoever only verifies
// (the auth functions, which check the node credential carried by a signed
// app request) links nothing of the authority itself. pkg/authority issues
// credentials through [Encode]; pkg/gossip and pkg/appreq verify them with
// a [Verifier].
package nodecred
