package authfn

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/postern/postern/pkg/appreq"
	"github.com/postern/postern/pkg/session"
	"github.com/postern/postern/pkg/session/mint"
)

// flowState is the sign-in in progress, sealed into [FlowCookie]. Req is
// the app request verified at /authorize (without its node credential):
// the flow cookie is sealed with the state key, so the callback trusts it
// without the request's short window.
type flowState struct {
	State    string         `json:"st"`
	Nonce    string         `json:"n"`
	Verifier string         `json:"v"`
	Req      appreq.Request `json:"req"`
}

// handoff is a verified sign-in request for an app.
type handoff struct {
	app *appreq.Request
	req appRequirements
	rd  string
	b   string
	cli int // a command-line client's loopback port; 0 for a browser
}

// newHandoff builds the handoff of a verified request.
func newHandoff(r *appreq.Request) *handoff {
	return &handoff{app: r, req: requirementsOf(r), rd: r.ReturnPath, b: r.Binding, cli: r.CLIPort}
}

// parseHandoff verifies the signed app request of an /authorize query.
// A command-line client's loopback port comes from the request alone
// (appreq.Request.CLIPort): a cli parameter beside it is not the mesh's.
func (s *Service) parseHandoff(q url.Values) (*handoff, error) {
	if _, ok := q["cli"]; ok {
		return nil, fmt.Errorf("%w: a cli parameter outside the signed app request", ErrBadRequest)
	}
	r, err := s.verifyRequest(q)
	if err != nil {
		return nil, err
	}
	if r.ReturnPath == "" || r.Binding == "" {
		return nil, fmt.Errorf("%w: the app request has no return path or binding", ErrBadRequest)
	}
	return newHandoff(r), nil
}

// verifyRequest verifies the one signed app request of q.
func (s *Service) verifyRequest(q url.Values) (*appreq.Request, error) {
	switch n := len(q[appreq.Param]); {
	case n > 1:
		return nil, fmt.Errorf("%w: parameter %s given more than once", ErrBadRequest, appreq.Param)
	case n == 0 && q.Get("app") != "":
		return nil, fmt.Errorf("%w: the sign-in link has no signed app request (is the mesh node older than the auth functions?)", ErrAppRequest)
	case n == 0:
		return nil, fmt.Errorf("%w: missing %s parameter", ErrBadRequest, appreq.Param)
	}
	r, err := s.requests.Verify(q.Get(appreq.Param))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrAppRequest, err)
	}
	return r, nil
}

func (s *Service) handleAuthorize(w http.ResponseWriter, r *http.Request) {
	rid := newRequestID()
	h, err := s.parseHandoff(r.URL.Query())
	if err != nil {
		s.fail(w, r, rid, err)
		return
	}
	now := s.cfg.Now()
	var prompt bool
	if h.app.Fresh {
		// The mesh refused this browser's session as revoked: ignore it
		// and have the provider authenticate the user again.
		s.startFlow(w, r, rid, h, true)
		return
	}
	if sc, err := s.session(r); err == nil {
		switch why := h.req.unmet(sc, now); why {
		case unmetNothing:
			s.handOff(w, r, rid, h, sc.Identity, now, "session")
			return
		case unmetMaxAge:
			prompt = true
		}
	}
	s.startFlow(w, r, rid, h, prompt)
}

// session returns the verified global session of r, if any.
func (s *Service) session(r *http.Request) (*session.SessionClaims, error) {
	c, err := r.Cookie(SessionCookie)
	if err != nil {
		return nil, err
	}
	return s.verifier.VerifySession(r.Context(), c.Value, s.authHost)
}

// startFlow redirects to the provider's authorization endpoint, keeping the
// flow state in the flow cookie.
func (s *Service) startFlow(w http.ResponseWriter, r *http.Request, rid string, h *handoff, prompt bool) {
	d, err := s.prov.get(r.Context())
	if err != nil {
		s.fail(w, r, rid, err, "app", h.app.AppID)
		return
	}
	f := flowState{
		State:    randomToken(32),
		Nonce:    randomToken(32),
		Verifier: oauth2.GenerateVerifier(),
		Req:      *h.app,
	}
	f.Req.Credential = "" // verified already; keeps the cookie small
	sealed, err := s.sealer.Seal(f, FlowLifetime)
	if err != nil {
		s.fail(w, r, rid, fmt.Errorf("seal flow state: %w", err))
		return
	}
	opts := []oauth2.AuthCodeOption{oauth2.S256ChallengeOption(f.Verifier), oidc.Nonce(f.Nonce)}
	if len(h.req.acrs) > 0 {
		opts = append(opts, oauth2.SetAuthURLParam("claims", acrsClaimsParam(h.req.acrs)))
	}
	if prompt {
		opts = append(opts, oauth2.SetAuthURLParam("prompt", "login"))
		if h.req.maxAge > 0 {
			opts = append(opts, oauth2.SetAuthURLParam("max_age", strconv.Itoa(int(h.req.maxAge/time.Second))))
		}
	}
	if old := session.CookiesWithPrefix(r, FlowCookie+"-"); len(old) >= session.MaxFlowCookies {
		for _, c := range old { // abandoned sign-ins: make room
			s.clearCookie(w, c.Name)
		}
	}
	s.setCookie(w, flowCookieName(f.State), sealed, FlowLifetime)
	s.cfg.Logger.Info("auth_flow_started", "request_id", rid, "app", h.app.AppID, "prompt_login", prompt, "acrs", h.req.acrs)
	redirect(w, d.oauth.AuthCodeURL(f.State, opts...))
}

// acrsClaimsParam builds the OIDC claims request for authentication
// contexts, as Entra expects it.
func acrsClaimsParam(acrs []string) string {
	type req struct {
		Essential bool     `json:"essential"`
		Values    []string `json:"values"`
	}
	b, _ := json.Marshal(map[string]map[string]req{"id_token": {"acrs": {Essential: true, Values: acrs}}})
	return string(b)
}

// handOff mints the app token for h from id and redirects to the app's
// callback.
func (s *Service) handOff(w http.ResponseWriter, r *http.Request, rid string, h *handoff, id session.Identity, now time.Time, via string) {
	tok, exp, err := s.appToken(h, id, now)
	if err != nil {
		s.fail(w, r, rid, err, "app", h.app.AppID)
		return
	}
	if h.cli != 0 {
		s.cliHandOff(w, r, rid, h, id, tok, exp)
		return
	}
	s.cfg.Logger.Info("auth_handoff", "request_id", rid, "app", h.app.AppID, "user", id.Subject, "via", via, "app_exp", exp)
	redirect(w, "https://"+h.app.Host+s.cfg.AppPort+"/.postern/callback?token="+url.QueryEscape(tok))
}

// appToken signs the app token: identity cut to the app's policy, aud the
// app's host, bound to the browser's bind nonce.
func (s *Service) appToken(h *handoff, id session.Identity, now time.Time) (string, int64, error) {
	exp := now.Add(h.req.lifetime).Unix()
	tok, err := mint.App(s.cfg.Keys, session.AppClaims{
		Identity:   h.req.forApp(id),
		AppID:      h.app.AppID,
		Audience:   h.app.Host,
		Binding:    h.b,
		ReturnPath: h.rd,
		CLI:        h.cli != 0,
		IssuedAt:   now.Unix(),
		NotBefore:  now.Unix(),
		Expiry:     exp,
		Issuer:     s.cfg.AuthURL,
	})
	if err != nil {
		return "", 0, fmt.Errorf("sign app token: %w", err)
	}
	return tok, exp, nil
}

// flowCookieName names the flow cookie of the sign-in with state: each
// sign-in in flight — one per tab — has its own, so that none overwrites
// another.
func flowCookieName(state string) string {
	sum := sha256.Sum256([]byte(state))
	return FlowCookie + "-" + b64(sum[:])[:10]
}

// setCookie sets a __Host- cookie on the auth host.
func (s *Service) setCookie(w http.ResponseWriter, name, value string, ttl time.Duration) {
	http.SetCookie(w, &http.Cookie{
		Name: name, Value: value, Path: "/", MaxAge: int(ttl / time.Second),
		Secure: true, HttpOnly: true, SameSite: http.SameSiteLaxMode,
	})
}

// clearCookie removes a __Host- cookie.
func (s *Service) clearCookie(w http.ResponseWriter, name string) {
	http.SetCookie(w, &http.Cookie{
		Name: name, Value: "", Path: "/", MaxAge: -1,
		Secure: true, HttpOnly: true, SameSite: http.SameSiteLaxMode,
	})
}

func redirect(w http.ResponseWriter, to string) {
	w.Header().Set("Location", to)
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusFound)
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// truncate cuts s to n bytes for messages.
func truncate(s string, n int) string {
	if len(s) > n {
		s = s[:n] + "…"
	}
	return s
}
