// Package jws verifies the compact JWS tokens that Postern signs with
// Ed25519 (the mesh authority's enrolment tokens, credentials and
// revocations; the auth functions' session, app and logout tokens; the
// mesh's identity assertions) under one strict header policy, so that
// every verifier on the request path refuses the same things.
//
// The policy: at most a size cap, exactly three base64url (unpadded,
// canonical) parts, a protected header that is one JSON object whose only
// members are "alg", "kid" and "typ", each a string and none repeated,
// "alg" exactly "EdDSA", a non-empty "kid", the expected "typ", and a
// 64-byte Ed25519 signature over the first two parts. Any other header —
// "jku", "x5u", "jwk", "x5c", "crit", "b64", "zip", "cty" — makes a token
// malformed rather than being ignored or obeyed: a verifier must never
// take its key, its algorithm or its payload encoding from the token.
//
// The package only verifies; signing stays with the packages that own the
// keys. It sits below [github.com/postern/postern/pkg/authority] and
// [github.com/postern/postern/pkg/session] and imports nothing of Postern.
package jws
