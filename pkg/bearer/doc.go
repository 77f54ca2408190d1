// Package bearer verifies the bearer tokens that callers other than
// browsers present at the mesh edge in "Authorization: Bearer": Microsoft
// Entra ID access tokens of an app's API (v1 and v2, delegated and
// app-only) and tokens of other trusted OpenID Connect issuers (workload
// identity federation: GitHub Actions, Kubernetes service accounts). Each
// verified token becomes a session.Identity whose principal type says
// whether the caller is a user, an application or a workload, so that the
// app's policy (pkg/policy) decides on it as on a browser's app cookie.
//
// It sits on the mesh node's request path where pkg/session's cookie
// verification sits, and like it keeps a cache of verified tokens so that
// the hot path is a map lookup. The catalogue (pkg/catalog) says which
// tokens an app accepts; nothing else does: a token's issuer is matched
// against the catalogue before any key is fetched, so a token can never
// make the mesh fetch a URL of the caller's choosing.
//
// Signatures are checked with go-jose against the issuer's JSON Web Key
// Set, found through its discovery document (which must name the issuer
// exactly) and cached; an
// unknown kid triggers a refetch at most once per RefetchInterval, so key
// rotation is followed without letting callers drive the fetches. Only
// asymmetric algorithms are accepted ("none" and HMAC never are).
package bearer
