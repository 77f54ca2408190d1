package edge

import (
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/postern/postern/pkg/appreq"
	"github.com/postern/postern/pkg/catalog"
	"github.com/postern/postern/pkg/errpage"
	"github.com/postern/postern/pkg/session"
)

// BindingHeader carries, beside a command-line client's app token in
// "Authorization: Bearer", the nonce whose SHA-256 the token's binding
// holds: only the client that started the sign-in has it. Like every
// X-Postern- header it never reaches a backend.
const BindingHeader = "X-Postern-Binding"

// CLILoginPath starts the sign-in of a command-line client (connectord
// access): the edge sends the browser to the auth functions, which hand
// the app token to the client's loopback listener on port "port", bound
// to the nonce hash "b".
const CLILoginPath = "/.postern/cli-login"

// Ways an identity was verified, for the access log.
const (
	viaCookie = "cookie"
	viaBearer = "bearer"
	viaCLI    = "cli"
)

// bearerToken returns the token of an "Authorization: Bearer" header, and
// whether one was presented; bad says why a presented one is unusable
// (several Authorization headers, an empty token).
func bearerToken(h http.Header) (tok string, present bool, bad string) {
	vals := h["Authorization"]
	for _, v := range vals {
		scheme, rest, _ := strings.Cut(strings.TrimSpace(v), " ")
		if !strings.EqualFold(scheme, "Bearer") {
			continue
		}
		switch {
		case len(vals) > 1:
			return "", true, "several Authorization headers"
		case strings.TrimSpace(rest) == "":
			return "", true, "an empty bearer token"
		}
		return strings.TrimSpace(rest), true, ""
	}
	return "", false, ""
}

// forwardsOnly reports whether app passes the caller's bearer token to its
// backend without accepting any itself.
func forwardsOnly(app *catalog.App) bool {
	return app.Bearer != nil && app.Bearer.ForwardToken && !app.Bearer.Accepts()
}

// verifyBearer verifies a bearer token for app: a command-line client's
// app token (minted by the auth functions, bound to a nonce the request
// must carry) or a token the app accepts in its bearer section. It
// returns the identity and how it was verified.
func (h *Handler) verifyBearer(r *http.Request, app *catalog.App, st *reqState, tok string) (*session.Identity, string, error) {
	var id *session.Identity
	var cached bool
	var err error
	if h.cfg.Bearer != nil && app.Bearer.Accepts() {
		id, cached, err = h.cfg.Bearer.Cached(tok, app) // the hot path: no parsing
	}
	if !cached {
		if tokenType(tok) == session.TypeApp {
			id, err := h.verifyCLI(r, app, tok)
			return id, viaCLI, err
		}
		if h.cfg.Bearer == nil {
			return nil, viaBearer, errors.New("bearer tokens are not configured on this mesh node")
		}
		id, err = h.cfg.Bearer.Verify(r.Context(), tok, st.cat, app)
	}
	if err != nil {
		return nil, viaBearer, err
	}
	if why := h.revoked(id); why != "" {
		h.metrics.revokedRefusal(why, viaBearer)
		return nil, viaBearer, revokedError{fmt.Errorf("the %s was revoked", id.PrincipalType())}
	}
	return id, viaBearer, nil
}

// verifyCLI verifies a command-line client's app token: minted for this
// app's host and marked for a command-line client, with the request
// proving the binding nonce, and not revoked.
func (h *Handler) verifyCLI(r *http.Request, app *catalog.App, tok string) (*session.Identity, error) {
	if h.auth == nil {
		return nil, errors.New("sign-in is not configured on this mesh node")
	}
	claims, err := h.auth.cfg.Cache.App(r.Context(), tok, app.Host)
	switch {
	case err != nil:
		return nil, err
	case claims.AppID != app.ID:
		return nil, errWrongApp
	case !claims.CLI:
		return nil, errors.New("a browser's sign-in is accepted only as its cookie")
	}
	nonce := r.Header.Get(BindingHeader)
	if !validNonce(nonce) {
		return nil, errors.New("no proof of the sign-in's binding (" + BindingHeader + ")")
	}
	if subtle.ConstantTimeCompare([]byte(bindHash(nonce)), []byte(claims.Binding)) != 1 {
		return nil, errors.New("the proof does not match the sign-in's binding")
	}
	if why := h.revoked(&claims.Identity); why != "" {
		h.metrics.revokedRefusal(why, viaCLI)
		return nil, revokedError{fmt.Errorf("the %s of this sign-in was revoked", why)}
	}
	return &claims.Identity, nil
}

// tokenType returns the "typ" header of a compact JWS, or "" when it has
// none or is not one. It decodes only the header.
func tokenType(tok string) string {
	head, _, ok := strings.Cut(tok, ".")
	if !ok || len(head) > 1024 {
		return ""
	}
	raw, err := base64.RawURLEncoding.DecodeString(head)
	if err != nil {
		return ""
	}
	var h struct {
		Typ string `json:"typ"`
	}
	if json.Unmarshal(raw, &h) != nil {
		return ""
	}
	return h.Typ
}

// revokedError is the refusal of a bearer token whose identity was
// revoked: the audit reason is then revoked, not bearer_refused.
type revokedError struct{ error }

func (e revokedError) Unwrap() error { return e.error }

// bearerRefused answers a refused bearer token with 401 and an RFC 6750
// challenge, never a redirect, within the client's budget of
// unauthenticated answers (429 past it).
func (h *Handler) bearerRefused(w http.ResponseWriter, r *http.Request, app *catalog.App, st *reqState, err error) {
	st.errReason = "bearer token refused: " + err.Error()
	if st.decision.result == "" {
		st.decision = decision{result: resultDeny, reason: reasonBearerRefused, detail: err.Error()}
		if errors.As(err, new(revokedError)) {
			st.decision.reason = reasonRevoked
		}
	}
	if h.limitedUnauth(w, r, st) {
		return
	}
	w.Header().Set("WWW-Authenticate", challenge(app, "invalid_token", err.Error()))
	errpage.Write(w, r, errpage.Page{Status: http.StatusUnauthorized, Title: "Invalid token",
		Reason: "The bearer token was refused: " + descriptionSafe(err.Error()) + ".", RequestID: st.rid})
}

// challenge builds a WWW-Authenticate Bearer challenge (RFC 6750 §3) for
// app; code is the error code, or "" for a request without credentials.
func challenge(app *catalog.App, code, description string) string {
	c := `Bearer realm="` + app.ID + `"`
	if code != "" {
		c += `, error="` + code + `", error_description="` + descriptionSafe(description) + `"`
	}
	return c
}

// descriptionSafe keeps the characters RFC 6750 allows in
// error_description (printable ASCII but '"' and '\'), at most 200.
func descriptionSafe(s string) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r > 0x7e || r == '"' || r == '\\' {
			return -1
		}
		return r
	}, s)
	if len(s) > 200 {
		s = s[:200]
	}
	return s
}

// cliLogin starts a command-line client's sign-in: it checks the loopback
// port and the binding hash, signs both into the app request
// (appreq.Request.CLIPort and Binding) and sends the browser to the auth
// functions, which return the app token to
// http://127.0.0.1:<port>/callback.
func (h *Handler) cliLogin(w http.ResponseWriter, r *http.Request, app *catalog.App, st *reqState) {
	w.Header().Set("Cache-Control", "no-store")
	errpage.Harden(w.Header())
	q := r.URL.Query()
	port, err := strconv.Atoi(q.Get("port"))
	b := q.Get("b")
	if err != nil || !appreq.ValidCLIPort(port) || len(q["port"]) != 1 || len(q["b"]) != 1 || !appreq.ValidBinding(b) {
		h.writeUnauth(w, r, st, errpage.Page{Status: http.StatusBadRequest, Title: "Sign-in refused",
			Reason: "A command-line sign-in needs a loopback port (1024-65535) and a binding hash.", RequestID: st.rid})
		return
	}
	if h.limitedUnauth(w, r, st) {
		return
	}
	req := h.cfg.Catalog().SignInRequest(app, "/")
	req.Binding, req.CLIPort = b, port
	if to, ok := h.authorizeURL(w, r, st, req); ok {
		http.Redirect(w, r, to, http.StatusFound)
	}
}
