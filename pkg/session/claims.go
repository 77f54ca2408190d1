// Package session holds the signed tokens of Postern's stateless sign-in:
// the global session on the auth host, the per-app token handed to a mesh
// node through the browser-bound handoff (and kept as the app's host-only
// cookie), and the encrypted, short-lived OIDC flow state. The auth
// functions sign with Ed25519 keys (go-jose, with kid) and publish a JWKS;
// mesh nodes only verify.
//
// It sits below both runtimes: pkg/authfn mints tokens, pkg/edge verifies
// them on every request to a pre-authenticated app.
package session

// This file is the contract shared by the auth functions and the mesh
// edge. Token types are distinguished by the JOSE "typ" header as well as
// by audience, so one kind can never be used as another.

// Token "typ" header values.
const (
	TypeSession = "postern-session+jwt" // global session, aud = the auth host
	TypeApp     = "postern-app+jwt"     // app token, aud = the app's external host
	TypeAssert  = "postern-assert+jwt"  // identity assertion from a mesh node to a backend
	TypeLogout  = "postern-logout+jwt"  // sign-out notice from the auth functions to the mesh
)

// Principal types of an [Identity].
const (
	// PrincipalUser is a person: signed in with a browser (app cookie),
	// or calling through a client app with a delegated access token.
	PrincipalUser = "user"
	// PrincipalApp is an application calling on its own behalf with an
	// app-only (client-credentials) Entra access token.
	PrincipalApp = "app"
	// PrincipalWorkload is a workload of another trusted OIDC issuer
	// (workload identity federation: a GitHub Actions job, a Kubernetes
	// service account).
	PrincipalWorkload = "workload"
)

// WorkloadPrefix starts the Subject of every workload principal:
// "wif:<issuer id>/<sub>". No Entra subject (a GUID) and no OIDC-mode
// subject (a base64url hash) contains ":" before its "/", so workload
// subjects never collide with users'.
const WorkloadPrefix = "wif:"

// Identity is who the user is, as established by the identity provider.
// Users are identified by Subject, never by e-mail.
type Identity struct {
	// Subject is "<tid>/<oid>" for Entra ID (the object id of the user,
	// or of the service principal of an application), "<issuer id>/<sub>"
	// for another OIDC provider (issuer id: a short hash of the issuer
	// URL), or [WorkloadPrefix] + "<issuer id>/<sub>" for a workload
	// (issuer id: the catalogue's id of the issuer).
	Subject string `json:"sub"`
	// Type is the principal type: [PrincipalUser], [PrincipalApp] or
	// [PrincipalWorkload]; empty means a user (app tokens of a browser
	// sign-in leave it out).
	Type string `json:"ptype,omitempty"`
	// ClientID is the client application of a bearer token (Entra's azp
	// or appid): the caller itself for an application, the app the user
	// calls through for a delegated token; empty otherwise.
	ClientID string `json:"azp,omitempty"`
	// Scopes are the delegated permissions (Entra's scp) of a delegated
	// access token; nil otherwise.
	Scopes []string `json:"scp,omitempty"`
	// Issuer is the catalogue id of a workload's issuer; empty otherwise.
	Issuer string `json:"wif,omitempty"`
	// Claims are a workload token's top-level string claims (repository,
	// ref, environment, ...), which policy conditions match; nil
	// otherwise. Assertions do not carry them.
	Claims map[string]string `json:"-"`
	// TenantID and ObjectID are Entra's tid and oid; empty for other
	// providers.
	TenantID string `json:"tid,omitempty"`
	ObjectID string `json:"oid,omitempty"`
	// Name is the display name; Username is preferred_username (UPN for
	// Entra); Email is informational only.
	Name     string `json:"name,omitempty"`
	Username string `json:"preferred_username,omitempty"`
	Email    string `json:"email,omitempty"`
	// Groups holds group object ids; Roles holds app role values. In an
	// app token they are cut down to those the app's policy names; in the
	// global session to those any policy of the catalogue names.
	Groups []string `json:"groups,omitempty"`
	Roles  []string `json:"roles,omitempty"`
	// ACRs are the authentication contexts met (Entra "acrs").
	ACRs []string `json:"acrs,omitempty"`
	// AuthTime is when the user last authenticated at the provider (Unix
	// seconds).
	AuthTime int64 `json:"auth_time"`
	// SessionID ties app tokens to the global session that minted them;
	// empty for bearer tokens.
	SessionID string `json:"sid"`
}

// Delegated reports whether id is a user calling through a client app
// with a delegated access token (as opposed to a browser sign-in).
func (id *Identity) Delegated() bool {
	return id.PrincipalType() == PrincipalUser && id.ClientID != ""
}

// PrincipalType returns the principal type, [PrincipalUser] when Type is
// empty.
func (id *Identity) PrincipalType() string {
	if id.Type == "" {
		return PrincipalUser
	}
	return id.Type
}

// AppClaims are the claims of an app token (typ [TypeApp]): minted by the
// auth functions for one app, verified by a mesh node at the handoff and on
// every request as the app's host-only cookie.
type AppClaims struct {
	Identity
	// AppID is the catalogue id of the app.
	AppID string `json:"app"`
	// Audience is the app's external host, without port.
	Audience string `json:"aud"`
	// Binding is the base64url (no padding) SHA-256 of the bind cookie's
	// nonce: the handoff only succeeds in the browser that started it.
	Binding string `json:"bh"`
	// ReturnPath is the validated path to return to after the handoff.
	ReturnPath string `json:"rd"`
	// CLI marks a token handed to a command-line client through a
	// loopback redirect (connectord access): it is accepted only as a
	// bearer token together with the nonce whose hash is Binding, never
	// as the app cookie; a browser's token (CLI false) only as the cookie.
	CLI bool `json:"cli,omitempty"`
	// IssuedAt, NotBefore and Expiry are Unix seconds; NotBefore 0 means
	// "from IssuedAt".
	IssuedAt  int64 `json:"iat"`
	NotBefore int64 `json:"nbf,omitempty"`
	Expiry    int64 `json:"exp"`
	// Issuer is the auth functions' URL.
	Issuer string `json:"iss"`
}

// SessionClaims are the claims of the global session (typ [TypeSession]),
// kept as a cookie on the auth host only.
type SessionClaims struct {
	Identity
	// Filter is the digest of the session filter (pkg/appreq) that the
	// identity's groups and roles were cut to; a request with another
	// filter does not use them. Empty in sessions that predate it.
	Filter string `json:"sfd,omitempty"`
	// NoticeHost is the host of the app the session was signed in for: a
	// sign-out at the auth host alone carries its notice there.
	NoticeHost string `json:"nh,omitempty"`
	// NoticeLifetime is the catalogue's longest app token lifetime, in
	// seconds, when the session began: a sign-out notice outlives the
	// session's end by it.
	NoticeLifetime int64 `json:"nlt,omitempty"`
	// Audience is the auth host, without port.
	Audience string `json:"aud"`
	// IssuedAt and Expiry are Unix seconds.
	IssuedAt int64 `json:"iat"`
	Expiry   int64 `json:"exp"`
	// Issuer is the auth functions' URL.
	Issuer string `json:"iss"`
}

// LogoutClaims are the claims of a sign-out notice (typ [TypeLogout]): the
// auth functions' signed word that session SessionID ended. They cannot
// tell the mesh themselves (they keep no state and do not gossip), so the
// browser carries the notice to a mesh node of one app, which revokes the
// session for the whole mesh; every app token of that session is refused
// from then on, wherever it was minted.
type LogoutClaims struct {
	// SessionID is the sid that ended.
	SessionID string `json:"sid"`
	// Subject is the user, for the logs.
	Subject string `json:"sub"`
	// Audience is the app host that the notice is carried to.
	Audience string `json:"aud"`
	// IssuedAt is when the session ended; Expiry is when the last app
	// token of the session expires at the latest: the revocation lives
	// until then.
	IssuedAt int64 `json:"iat"`
	Expiry   int64 `json:"exp"`
	// Issuer is the auth functions' URL.
	Issuer string `json:"iss"`
}

// AssertionClaims are the claims of the identity assertion (typ
// [TypeAssert]) that a mesh node sends to a backend, signed with the
// node's node key ([AssertionSigner]); the mesh's assertion JWKS, served by
// every node, lists the certified node key of every node.
type AssertionClaims struct {
	Identity
	// Audience is the app's external host.
	Audience string `json:"aud"`
	// Issuer is the mesh's issuer, the same on every node (see
	// pkg/nodekeys.Issuer).
	Issuer string `json:"iss"`
	// IssuedAt and Expiry are Unix seconds.
	IssuedAt int64 `json:"iat"`
	Expiry   int64 `json:"exp"`
}

// ForPolicy returns a copy of id that keeps only the groups and roles
// named in groups and roles (in id's order), so that an app token carries
// only what the app's policy can use and stays small. Other fields are
// shared with id.
func (id Identity) ForPolicy(groups, roles []string) Identity {
	id.Groups = keepNamed(id.Groups, groups)
	id.Roles = keepNamed(id.Roles, roles)
	return id
}

// keepNamed returns the items of have that are in named, as a new slice
// (nil when none is).
func keepNamed(have, named []string) []string {
	if len(have) == 0 || len(named) == 0 {
		return nil
	}
	set := make(map[string]struct{}, len(named))
	for _, n := range named {
		set[n] = struct{}{}
	}
	var out []string
	for _, h := range have {
		if _, ok := set[h]; ok {
			out = append(out, h)
		}
	}
	return out
}
