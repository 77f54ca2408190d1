// Package deptest holds checks over the whole Postern module, after
// Tailscale's tstest/deptest: every .go file is gofmt-formatted, `go mod
// tidy` would change nothing, and the trust boundaries between the binaries
// hold as import rules (the auth functions link no WireGuard, gVisor or
// gossip code; the connector links no gossip, session-signing or OIDC code).
//
// It sits beside the request path rather than on it: it has no code of its
// own, only tests, which run with `go test ./...` and so in CI.
package deptest
