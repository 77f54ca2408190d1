// Package appreq is the signed app request: what a mesh node tells the
// auth functions about an app when it sends a browser to sign in, so that
// the functions need no copy of the catalogue and adding or changing an
// app needs no function redeploy.
//
// It sits at the first hop of sign-in. The edge (pkg/edge) builds a
// [Request] from the live catalogue — the app's id and host, the groups
// and roles its policy names, the authentication contexts required for the
// return path (path step-up included), the session age and lifetimes, the
// return path and the browser binding — and signs it as a compact JWS
// (EdDSA, typ "postern-appreq+jwt") with the node's own Ed25519 node key,
// carrying the node's authority-signed node credential. The auth functions
// (pkg/authfn) trust only the mesh authority's public key: they verify the
// credential, then the node's signature with the key the credential names,
// the audience (their own URL) and a short validity window (at most
// [MaxLifetime], checked with a small skew). A request is not single-use
// (the functions keep no state): a replay inside its window gets an app
// token bound to the binding cookie of the browser that started it, which
// is useless elsewhere; outside its window it is refused.
package appreq
