// Package authfn is Postern's stateless auth service: the handler behind
// the auth functions (AWS Lambda, or a plain HTTP server locally).
//
// It sits at the start of sign-in. A mesh node that sees a browser without a
// valid app cookie redirects it to /authorize here with a signed app
// request (pkg/appreq) that says what the app requires; the service
// verifies it, reuses the global session cookie on the auth host when it
// meets the app's requirements, or else runs the OpenID Connect
// authorization-code flow (PKCE S256, state, nonce) against Microsoft Entra
// ID or another provider. It then mints a short app token bound to the
// browser and redirects back to the app's /.postern/callback, where the mesh
// node turns it into the app's host-only cookie. Nothing is stored on the
// server: the flow state lives in an encrypted cookie, sessions in signed
// JWTs (pkg/session), and the public keys are served at
// /.well-known/jwks.json for mesh nodes to verify with. A command-line
// client's sign-in (cli.go) ends on a confirmation page instead of the
// redirect.
package authfn
