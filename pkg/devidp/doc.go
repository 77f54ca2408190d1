// Package devidp is the development identity provider: a real OpenID Connect
// provider (built on zitadel/oidc's op package) that stands in for Microsoft
// Entra ID in the local demo and in every sign-in test.
//
// It sits where Entra sits on the request path: the auth functions
// redirect the browser to its authorization endpoint, the user picks a test
// user on its login page, and the auth functions exchange the code (PKCE
// S256 is mandatory) for an ID token shaped like an Entra v2 ID token (oid,
// tid, groups or the group-overage claims, roles, acrs, no amr) and an access
// token for its mock Microsoft Graph, which answers getMemberObjects for
// overage users.
//
// Start it on TLS loopback with Listen; the issuer's port is only known
// then, so Listen fills it in:
//
//	cert, _ := ca.Issue("localhost", "*.localhost", "127.0.0.1")
//	idp, err := devidp.Listen("127.0.0.1:0", devcert.ServerTLS(cert), devidp.Config{
//		Users:   devidp.DemoUsers(),
//		Clients: []devidp.Client{{ID: "postern", Secret: secret,
//			RedirectURIs: []string{"https://auth.localhost:8443/callback"}}},
//	})
//	// idp.Issuer() == "https://idp.localhost:<port>/<DemoTenantID>/v2.0"
//	// idp.GraphURL() replaces https://graph.microsoft.com
//	defer idp.Close()
//
// It is for development only: there are no passwords, and anyone who can
// reach it can sign in as any configured user.
package devidp
