package edge

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/postern/postern/pkg/appreq"
	"github.com/postern/postern/pkg/catalog"
	"github.com/postern/postern/pkg/errpage"
	"github.com/postern/postern/pkg/policy"
	"github.com/postern/postern/pkg/session"
)

// Cookie names Postern sets on app hosts. None ever reaches a backend.
const (
	// AppCookie holds the app token: the verified identity for this host.
	AppCookie = "__Host-postern"
	// BindCookie, with "-" and the first 8 characters of the binding hash
	// appended, names the cookie holding the nonce that binds one sign-in
	// handoff to the browser that started it; each sign-in in flight has
	// its own.
	BindCookie = "__Host-postern-bind"
	// FreshCookie marks a sign-in that the edge started afresh because
	// the browser's session was revoked: if its handoff is revoked too,
	// the browser gets a page, never another redirect.
	FreshCookie = "__Host-postern-fresh"
)

// DenyList tells whether a verified identity (app cookie, command-line
// app token, bearer token) was revoked;
// *revoke.List implements it. Its methods are called on every request to
// a pre-authenticated app: they must be safe for concurrent use and must
// not block (a lock-free lookup).
type DenyList interface {
	// SessionRevoked reports whether sign-in session sid was revoked.
	SessionRevoked(sid string) bool
	// UserRevoked reports whether the user's authentication at authTime
	// (Unix seconds) was revoked.
	UserRevoked(subject string, authTime int64) bool
}

// SessionRevoker ends a session for the whole mesh (a sign-out): every
// app token of session sid is refused at every node from then on, until
// until at least. source names the cause in logs and metrics.
type SessionRevoker interface {
	RevokeSession(ctx context.Context, sid string, until time.Time, source string) error
}

// Reserved paths on every app host.
const (
	CallbackPath = "/.postern/callback"
	LogoutPath   = "/.postern/logout"
	JWKSPath     = "/.postern/jwks.json"
)

// AuthConfig enables pre-authenticated apps at the edge.
type AuthConfig struct {
	// AuthURL is the auth functions' base URL, e.g. https://auth.example.com.
	// Required.
	AuthURL string
	// Verifier checks app tokens against the auth functions' JWKS. Required.
	Verifier *session.Verifier
	// Requests signs, with this node's node key, the app request that a
	// browser carries to the auth functions: they keep no catalogue and
	// learn the app's requirements from it. Required.
	Requests *appreq.Signer
	// Cache sits in front of Verifier for app cookies. Required.
	Cache *session.Cache
	// Assertions signs the identity assertion sent to backends; nil means
	// no assertion header.
	Assertions AssertionSigner
	// AssertionKeys is served at JWKSPath on every app host: the keys of
	// every mesh node's assertions (pkg/nodekeys); nil means no JWKS.
	AssertionKeys JWKSource
	// AssertionTTL is the lifetime of an identity assertion; zero means 5m.
	AssertionTTL time.Duration
	// HandoffMaxAge bounds the age of an app token presented at the
	// callback; zero means 2m.
	HandoffMaxAge time.Duration
	// BindTTL is the lifetime of the bind cookie; zero means 5m.
	BindTTL time.Duration
	// Revoker records sign-outs; nil means a sign-out only clears the
	// browser's cookies.
	Revoker SessionRevoker
}

// AssertionSigner signs the identity assertion of id for the backend of
// the app at audience, valid for ttl; *session.AssertionSigner implements
// it. It is called on the request path and must be safe for concurrent
// use.
type AssertionSigner interface {
	SignAssertion(id session.Identity, audience string, ttl time.Duration) (string, error)
}

// JWKSource returns the JSON Web Key Set that verifies the assertions of
// every mesh node; *nodekeys.Set implements it. It is called for every
// request to JWKSPath and must be safe for concurrent use.
type JWKSource interface {
	JWKS() []byte
}

type auth struct {
	cfg AuthConfig
	now func() time.Time

	mu         sync.Mutex // guards the following
	assertions map[assertionKey]assertion
}

// assertionKey names a cached assertion: a bearer token may be accepted by
// several apps, each with its own audience.
type assertionKey struct{ token, host string }

type assertion struct {
	jwt     string
	expires time.Time
	app     *catalog.App   // the app block was built for
	block   *identityBlock // the identity headers with jwt; shared, read-only
}

func newAuth(cfg *AuthConfig, now func() time.Time) *auth {
	if cfg == nil {
		return nil
	}
	c := *cfg
	if c.AssertionTTL == 0 {
		c.AssertionTTL = 5 * time.Minute
	}
	if c.HandoffMaxAge == 0 {
		c.HandoffMaxAge = 2 * time.Minute
	}
	if c.BindTTL == 0 {
		c.BindTTL = 5 * time.Minute
	}
	c.AuthURL = strings.TrimSuffix(c.AuthURL, "/")
	return &auth{cfg: c, now: now, assertions: make(map[assertionKey]assertion)}
}

// servePostern answers the reserved /.postern/ paths on an app host.
func (h *Handler) servePostern(w http.ResponseWriter, r *http.Request, app *catalog.App, st *reqState) {
	switch {
	case r.URL.Path == JWKSPath && h.auth != nil && h.auth.cfg.AssertionKeys != nil:
		errpage.Harden(w.Header())
		w.Header().Set("Content-Type", "application/json")
		// Short: a backend meeting an unknown kid refetches anyway, and a
		// new node's key should reach caches that do not soon.
		w.Header().Set("Cache-Control", "public, max-age=60")
		w.Write(h.auth.cfg.AssertionKeys.JWKS())
	case r.URL.Path == CallbackPath && h.auth != nil && app.PreAuth != catalog.PreAuthPassthrough:
		h.callback(w, r, app, st)
	case r.URL.Path == LogoutPath && h.auth != nil && app.PreAuth != catalog.PreAuthPassthrough:
		h.logout(w, r, app, st)
	case r.URL.Path == CLILoginPath && h.auth != nil && app.PreAuth != catalog.PreAuthPassthrough:
		h.cliLogin(w, r, app, st)
	case r.URL.Path == catalog.TCPPath && app.Kind == catalog.KindTCP:
		h.serveTCP(w, r, app, st)
	default:
		h.writeUnauth(w, r, st, errpage.Page{Status: http.StatusNotFound, Title: "Not found",
			Reason: "This Postern path does not exist.", RequestID: st.rid})
	}
}

// authenticate returns the identity of a request to a pre-authenticated
// app, or answers the request itself (redirect to sign-in, 401, 403) and
// returns nil. A request carrying a bearer token is authenticated by that
// token alone and never redirected; unless the app forwards the token to
// its backend without accepting it, which then identifies the caller by
// the app cookie, still without a redirect.
func (h *Handler) authenticate(w http.ResponseWriter, r *http.Request, app *catalog.App, st *reqState) *session.Identity {
	tok, present, bad := bearerToken(r.Header)
	if present && !forwardsOnly(app) {
		st.stripAuth = app.Bearer == nil || !app.Bearer.ForwardToken
		if bad != "" {
			h.bearerRefused(w, r, app, st, errors.New(bad))
			return nil
		}
		id, via, err := h.verifyBearer(r, app, st, tok)
		if err != nil {
			h.bearerRefused(w, r, app, st, err)
			return nil
		}
		st.token, st.auth, st.via = tok, h.auth, via
		return h.authorize(w, r, app, st, id)
	}
	if h.auth == nil {
		st.errReason = "pre-authentication not configured on this node"
		st.decision = decision{result: resultDeny, reason: reasonUnconfigured}
		errpage.Write(w, r, errpage.Page{Status: http.StatusServiceUnavailable, Title: "Sign-in unavailable",
			Reason: "Sign-in is not configured on this mesh node.", RequestID: st.rid})
		return nil
	}
	c, claims, fresh := h.appCookie(r, app, st)
	if claims == nil {
		st.decision = decision{result: resultSignIn, reason: reasonNoSession}
		if st.errReason != "" {
			st.decision.reason = reasonCookieRefused
		}
		if fresh {
			st.decision.reason = reasonRevoked
		}
		if present { // the backend's own bearer token: no redirect
			h.bearerRefused(w, r, app, st, errors.New("no valid app cookie beside the application's own bearer token"))
			return nil
		}
		h.signIn(w, r, app, st, r.URL.RequestURI(), fresh)
		return nil
	}
	st.token, st.auth, st.via = c, h.auth, viaCookie
	return h.authorize(w, r, app, st, &claims.Identity)
}

// appCookie returns the app cookie and its verified claims, or nil claims
// (with fresh set when they were revoked) after noting why.
func (h *Handler) appCookie(r *http.Request, app *catalog.App, st *reqState) (string, *session.AppClaims, bool) {
	c, ok := cookieValue(r.Header, AppCookie)
	if !ok || c == "" {
		return "", nil, false
	}
	claims, err := h.auth.cfg.Cache.App(r.Context(), c, app.Host)
	switch {
	case err != nil:
		st.errReason = "app cookie refused: " + err.Error()
	case claims.AppID != app.ID:
		st.errReason = "app cookie is for another app"
	case claims.CLI:
		st.errReason = "app cookie refused: a command-line client's token is not a cookie"
	default:
		if why := h.revoked(&claims.Identity); why != "" {
			st.errReason = "app cookie refused: " + why + " revoked"
			h.metrics.revokedRefusal(why, "cookie")
			return "", nil, true
		}
		return c, claims, false
	}
	return "", nil, false
}

// authorize applies the app's policy to id: it returns id when allowed,
// or answers the request (400, 403, a step-up sign-in for a browser) and
// returns nil.
func (h *Handler) authorize(w http.ResponseWriter, r *http.Request, app *catalog.App, st *reqState, id *session.Identity) *session.Identity {
	st.user = id.Subject
	if app.Policy == nil {
		st.decision = decision{result: resultAllow, reason: reasonSignedIn, principal: id.PrincipalType()}
		return id
	}
	path, raw := r.URL.EscapedPath(), r.RequestURI
	if app.Kind == catalog.KindTCP {
		path, raw = "/", "/" // a TCP app has no paths
	}
	d := app.Policy.Decide(id, policy.Request{RawPath: raw, Path: path, ClientIP: clientAddr(st.clientIP), Now: h.cfg.Now()})
	st.decision = decision{result: resultAllow, reason: reasonPolicy, rule: d.Rule, detail: d.Reason, principal: id.PrincipalType()}
	if d.Allow {
		return id
	}
	st.errReason = "policy: " + d.Reason
	st.decision.result = resultDeny
	if d.BadPath {
		st.decision.reason = reasonBadPath
		errpage.Write(w, r, errpage.Page{Status: http.StatusBadRequest, Title: "Request refused",
			Reason: strings.TrimSuffix(d.Reason, ".") + ".", RequestID: st.rid})
		return nil
	}
	if st.via == viaCookie && len(d.MissingACRs) > 0 && wantsBrowser(r) {
		st.decision.result, st.decision.reason = resultSignIn, reasonStepUp
		h.startSignIn(w, r, app, st, r.URL.RequestURI(), false) // step up: sign in again meeting the contexts
		return nil
	}
	if len(d.MissingScopes) > 0 {
		w.Header().Set("WWW-Authenticate", challenge(app, "insufficient_scope", d.Reason)+`, scope="`+strings.Join(d.MissingScopes, " ")+`"`)
	}
	who := shownUser(id)
	var links []errpage.Link
	if st.via == viaCookie {
		links = []errpage.Link{{Text: "Sign in as someone else", Path: LogoutPath}}
	}
	errpage.Write(w, r, errpage.Page{Status: http.StatusForbidden, Title: "Access denied",
		Reason:    fmt.Sprintf("%s may not use %s: %s.", who, app.Title(), strings.TrimSuffix(d.Reason, ".")),
		RequestID: st.rid, Links: links})
	return nil
}

func clientAddr(ip string) netip.Addr {
	a, _ := netip.ParseAddr(ip)
	return a.Unmap()
}

// wantsBrowser reports whether r is a top-level browser navigation, which
// may be redirected to sign in; anything else gets a 401.
func wantsBrowser(r *http.Request) bool {
	if !strings.Contains(r.Header.Get("Accept"), "text/html") || r.Header.Get("X-Requested-With") != "" {
		return false
	}
	mode := r.Header.Get("Sec-Fetch-Mode")
	return mode == "" || mode == "navigate"
}

// revoked returns what of id is revoked ("session" or "user"), or "". A
// bearer identity has no session, and no auth_time unless the token said:
// a revocation of its user (or application) refuses all its tokens until
// the revocation expires.
func (h *Handler) revoked(c *session.Identity) string {
	d := h.cfg.Denied
	switch {
	case d == nil:
		return ""
	case c.SessionID != "" && d.SessionRevoked(c.SessionID):
		return "session"
	case d.UserRevoked(c.Subject, c.AuthTime):
		return "user"
	}
	return ""
}

// signIn starts the handoff: a bind cookie for this sign-in and a redirect
// to the auth functions, or a 401 for non-browser clients, within the
// client's budget of unauthenticated answers (429 past it). rd is the path
// to return to; fresh asks the auth functions for a new sign-in at the
// provider, ignoring the browser's session with them (it was revoked).
func (h *Handler) signIn(w http.ResponseWriter, r *http.Request, app *catalog.App, st *reqState, rd string, fresh bool) {
	if h.limitedUnauth(w, r, st) {
		return
	}
	h.startSignIn(w, r, app, st, rd, fresh)
}

// startSignIn is signIn without the client's budget, for a signed-in user
// who must sign in again (step-up). Each sign-in gets its own bind cookie,
// named after its binding, so that sign-ins started in several tabs of one
// browser all complete.
func (h *Handler) startSignIn(w http.ResponseWriter, r *http.Request, app *catalog.App, st *reqState, rd string, fresh bool) {
	w.Header().Set("Cache-Control", "no-store")
	errpage.Harden(w.Header())
	if !wantsBrowser(r) {
		w.Header().Set("WWW-Authenticate", fmt.Sprintf("Postern realm=%q", app.ID))
		if app.Bearer.Accepts() {
			w.Header().Add("WWW-Authenticate", challenge(app, "", "")) // RFC 6750 §3: no credentials, no error code
		}
		errpage.Write(w, r, errpage.Page{Status: http.StatusUnauthorized, Title: "Sign-in required",
			Reason: "This application requires signing in with a browser.", RequestID: st.rid})
		return
	}
	if old := session.CookiesWithPrefix(r, BindCookie+"-"); len(old) >= session.MaxFlowCookies {
		for _, c := range old { // abandoned sign-ins: make room
			http.SetCookie(w, &http.Cookie{Name: c.Name, Value: "", Path: "/", MaxAge: -1, Secure: true, HttpOnly: true, SameSite: http.SameSiteLaxMode})
		}
	}
	var b [32]byte
	rand.Read(b[:])
	nonce := base64.RawURLEncoding.EncodeToString(b[:])
	binding := bindHash(nonce)
	rd, err := session.ValidReturnPath(rd)
	if err != nil {
		rd = "/"
	}
	req := h.cfg.Catalog().SignInRequest(app, rd)
	req.Binding, req.Fresh = binding, fresh
	to, ok := h.authorizeURL(w, r, st, req)
	if !ok {
		return
	}
	http.SetCookie(w, &http.Cookie{Name: bindCookieName(binding), Value: nonce, Path: "/", MaxAge: int(h.auth.cfg.BindTTL / time.Second),
		Secure: true, HttpOnly: true, SameSite: http.SameSiteLaxMode})
	if fresh {
		http.SetCookie(w, &http.Cookie{Name: FreshCookie, Value: "1", Path: "/", MaxAge: int(h.auth.cfg.BindTTL / time.Second),
			Secure: true, HttpOnly: true, SameSite: http.SameSiteLaxMode})
	}
	http.Redirect(w, r, to, http.StatusFound)
}

// authorizeURL signs req with this node's key and returns the auth
// functions' /authorize URL that carries it; if it cannot be signed, it
// answers 500 and returns false.
func (h *Handler) authorizeURL(w http.ResponseWriter, r *http.Request, st *reqState, req appreq.Request) (string, bool) {
	signed, err := h.auth.cfg.Requests.Sign(req)
	if err != nil {
		st.errReason = "sign the app request: " + err.Error()
		errpage.Write(w, r, errpage.Page{Status: http.StatusInternalServerError, Title: "Sign-in unavailable",
			Reason: "The sign-in link could not be made.", RequestID: st.rid})
		return "", false
	}
	q := url.Values{"app": {req.AppID}, appreq.Param: {signed}} // app only for the logs
	return h.auth.cfg.AuthURL + "/authorize?" + q.Encode(), true
}

// bindCookieName names the bind cookie of the sign-in whose binding hash
// is binding: BindCookie, "-" and the hash's first 8 characters.
func bindCookieName(binding string) string {
	if len(binding) > 8 {
		binding = binding[:8]
	}
	return BindCookie + "-" + binding
}

// logout signs the browser out of this app and its session out of the
// mesh: it revokes the session of the app cookie (and of a sign-out
// notice from the auth functions, which carry their own session's end
// here), clears the app cookie, and continues to the auth functions'
// logout, which clears the global session. The auth functions send a
// browser that still had a session back here once with a notice; that
// second pass goes on with done=1, so the round trip ends.
func (h *Handler) logout(w http.ResponseWriter, r *http.Request, app *catalog.App, st *reqState) {
	ctx, q := r.Context(), r.URL.Query()
	noticed := false
	if n := q.Get("notice"); n != "" {
		lc, err := h.auth.cfg.Verifier.VerifyLogout(ctx, n, app.Host)
		if err != nil {
			st.errReason = "logout notice refused: " + err.Error()
		} else {
			h.revokeSession(ctx, st, lc.SessionID, time.Unix(lc.Expiry, 0), "auth_logout")
			noticed = true
		}
	}
	if c, err := r.Cookie(AppCookie); err == nil && c.Value != "" {
		if claims, err := h.auth.cfg.Verifier.VerifyApp(ctx, c.Value, app.Host); err == nil {
			st.user = claims.Subject
			h.revokeSession(ctx, st, claims.SessionID, time.Unix(claims.Expiry, 0), "logout")
		}
	}
	for _, name := range []string{AppCookie, FreshCookie} {
		http.SetCookie(w, &http.Cookie{Name: name, Value: "", Path: "/", MaxAge: -1, Secure: true, HttpOnly: true, SameSite: http.SameSiteLaxMode})
	}
	w.Header().Set("Cache-Control", "no-store")
	errpage.Harden(w.Header())
	to := url.Values{"app": {app.ID}}
	if noticed {
		to.Set("done", "1")
	} else if signed, err := h.auth.cfg.Requests.Sign(h.cfg.Catalog().SignInRequest(app, "")); err == nil {
		to.Set(appreq.Param, signed) // where the auth functions send their sign-out notice
	}
	http.Redirect(w, r, h.auth.cfg.AuthURL+"/logout?"+to.Encode(), http.StatusFound)
}

// revokeSession revokes sid for the mesh, if a revoker is configured.
func (h *Handler) revokeSession(ctx context.Context, st *reqState, sid string, until time.Time, source string) {
	if sid == "" || h.auth.cfg.Revoker == nil {
		return
	}
	if err := h.auth.cfg.Revoker.RevokeSession(ctx, sid, until, source); err != nil {
		st.errReason = "sign-out not recorded: " + err.Error()
	}
}

func validNonce(s string) bool {
	b, err := base64.RawURLEncoding.DecodeString(s)
	return err == nil && len(b) == 32
}

func bindHash(nonce string) string {
	sum := sha256.Sum256([]byte(nonce))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

var (
	errRevoked     = errors.New("the session of this sign-in was revoked")
	errNoBind      = errors.New("this sign-in was started in another browser (no binding cookie)")
	errBindingDiff = errors.New("this sign-in link belongs to another browser")
	errStaleToken  = errors.New("the sign-in link is too old; open the application again")
	errWrongApp    = errors.New("the sign-in link is for another application")
)

// callback completes the handoff: it accepts the app token only from the
// browser that holds the matching bind cookie, then sets the app cookie.
func (h *Handler) callback(w http.ResponseWriter, r *http.Request, app *catalog.App, st *reqState) {
	w.Header().Set("Cache-Control", "no-store")
	errpage.Harden(w.Header())
	claims, err := h.checkHandoff(r, app)
	if errors.Is(err, errRevoked) {
		if c, cerr := r.Cookie(FreshCookie); cerr != nil || c.Value != "1" {
			// A session revoked elsewhere (another browser signed out, an
			// admin revoked it) still lives on the auth host: sign in
			// afresh at the provider, once.
			st.errReason = "handoff refused: " + err.Error() + "; signing in afresh"
			h.signIn(w, r, app, st, claims.ReturnPath, true)
			return
		}
		st.errReason = "handoff refused: " + err.Error() + " after a fresh sign-in"
		errpage.Write(w, r, errpage.Page{Status: http.StatusForbidden, Title: "Access revoked",
			Reason: "Your access to this application was revoked. Open the application again to sign in, or ask your administrator.", RequestID: st.rid})
		return
	}
	if err != nil {
		st.errReason = "handoff refused: " + err.Error()
		reason := "The sign-in could not be completed."
		var pub publicError
		if errors.As(err, &pub) {
			reason = pub.Error()
		}
		h.writeUnauth(w, r, st, errpage.Page{Status: http.StatusBadRequest, Title: "Sign-in refused",
			Reason: reason + " Open the application again to sign in.", RequestID: st.rid})
		return
	}
	st.user = claims.Subject
	http.SetCookie(w, &http.Cookie{Name: AppCookie, Value: r.URL.Query().Get("token"), Path: "/",
		Expires: time.Unix(claims.Expiry, 0), Secure: true, HttpOnly: true, SameSite: http.SameSiteLaxMode})
	for _, name := range []string{bindCookieName(claims.Binding), FreshCookie} {
		http.SetCookie(w, &http.Cookie{Name: name, Value: "", Path: "/", MaxAge: -1, Secure: true, HttpOnly: true, SameSite: http.SameSiteLaxMode})
	}
	rd, err := session.ValidReturnPath(claims.ReturnPath)
	if err != nil {
		rd = "/"
	}
	http.Redirect(w, r, rd, http.StatusFound)
}

// publicError marks an error whose text may be shown to the user.
type publicError struct{ error }

func (h *Handler) checkHandoff(r *http.Request, app *catalog.App) (*session.AppClaims, error) {
	tok := r.URL.Query().Get("token")
	if tok == "" || len(r.URL.Query()["token"]) != 1 {
		return nil, publicError{errors.New("the sign-in link carries no token")}
	}
	claims, err := h.auth.cfg.Verifier.VerifyApp(r.Context(), tok, app.Host)
	if err != nil {
		return nil, err
	}
	now := h.cfg.Now()
	switch {
	case claims.AppID != app.ID:
		return nil, publicError{errWrongApp}
	case now.Sub(time.Unix(claims.IssuedAt, 0)) > h.auth.cfg.HandoffMaxAge:
		return nil, publicError{errStaleToken}
	}
	c, err := r.Cookie(bindCookieName(claims.Binding))
	if err != nil || !validNonce(c.Value) {
		return nil, publicError{errNoBind}
	}
	if subtle.ConstantTimeCompare([]byte(bindHash(c.Value)), []byte(claims.Binding)) != 1 {
		return nil, publicError{errBindingDiff}
	}
	if claims.CLI {
		return nil, publicError{errors.New("this sign-in link is for a command-line client")}
	}
	if why := h.revoked(&claims.Identity); why != "" {
		h.metrics.revokedRefusal(why, "handoff")
		return claims, errRevoked
	}
	return claims, nil
}

// identityFor returns st's identity block with a signed identity
// assertion for the backend of st's app, which st's token (an app cookie
// or a bearer token) proved. A block is reused for the same token and app
// while its assertion has more than half its lifetime left; it is shared
// and must not be changed. The assertion always names the principal type.
// A block whose assertion could not be signed has none.
func (a *auth) identityFor(st *reqState) *identityBlock {
	now := a.now()
	key := assertionKey{st.token, st.app.Host}
	a.mu.Lock()
	as, ok := a.assertions[key]
	a.mu.Unlock()
	fresh := ok && as.expires.Sub(now) > a.cfg.AssertionTTL/2
	if fresh && as.app == st.app {
		return as.block
	}
	if !fresh {
		asserted := *st.id
		asserted.Type = st.id.PrincipalType()
		jwt, err := a.cfg.Assertions.SignAssertion(asserted, st.app.Host, a.cfg.AssertionTTL)
		if err != nil {
			b := new(identityBlock)
			buildIdentity(b, st, "")
			return b
		}
		as = assertion{jwt: jwt, expires: now.Add(a.cfg.AssertionTTL)}
	}
	// Built again for a reloaded catalogue's app: its headers may differ.
	as.app, as.block = st.app, new(identityBlock)
	buildIdentity(as.block, st, as.jwt)
	as.block.Digest(st.app.ID) // before it is shared
	a.mu.Lock()
	if len(a.assertions) > 10000 {
		clear(a.assertions)
	}
	a.assertions[key] = as
	a.mu.Unlock()
	return as.block
}
