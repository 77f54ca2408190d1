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

	"github.com/postern/postern/pkg/catalog"
	"github.com/postern/postern/pkg/session"
	"github.com/postern/postern/pkg/session/mint"
)

// flowState is the sign-in in progress, sealed into [FlowCookie].
type flowState struct {
	State    string   `json:"st"`
	Nonce    string   `json:"n"`
	Verifier string   `json:"v"`
	App      string   `json:"app"`
	RD       string   `json:"rd"`
	Binding  string   `json:"b"`
	ACRs     []string `json:"acrs,omitempty"`
	CLI      int      `json:"cli,omitempty"` // a command-line client's loopback port (cli.go)
}

// handoff is a validated /authorize request.
type handoff struct {
	app *catalog.App
	req appRequirements
	rd  string
	b   string
	cli int // a command-line client's loopback port; 0 for a browser
}

// parseHandoff validates the app, rd and b parameters of q against cat.
func parseHandoff(cat *catalog.Catalog, q url.Values) (*handoff, error) {
	for _, k := range []string{"app", "rd", "b", "cli"} {
		if len(q[k]) > 1 {
			return nil, fmt.Errorf("%w: parameter %s given more than once", ErrBadRequest, k)
		}
	}
	id := q.Get("app")
	if id == "" {
		return nil, fmt.Errorf("%w: missing app parameter", ErrBadRequest)
	}
	app, ok := cat.App(id)
	if !ok {
		return nil, fmt.Errorf("%w: no app %q in the catalogue", ErrUnknownApp, truncate(id, 64))
	}
	if app.PreAuth != catalog.PreAuthEntra && app.PreAuth != catalog.PreAuthOIDC {
		return nil, fmt.Errorf("%w: app %q does not use sign-in (preauth %s)", ErrUnknownApp, app.ID, app.PreAuth)
	}
	rd := q.Get("rd")
	if rd == "" {
		rd = "/"
	}
	rd, err := session.ValidReturnPath(rd)
	if err != nil {
		return nil, fmt.Errorf("%w: rd is not a safe path on the app's host", ErrBadRequest)
	}
	b := q.Get("b")
	if !validBinding(b) {
		return nil, fmt.Errorf("%w: b must be the 43-character base64url SHA-256 of the bind nonce", ErrBadRequest)
	}
	cli, err := parseCLIPort(q)
	if err != nil {
		return nil, err
	}
	return &handoff{app: app, req: requirementsOf(app, rd), rd: rd, b: b, cli: cli}, nil
}

// validBinding reports whether b is an unpadded base64url SHA-256.
func validBinding(b string) bool {
	if len(b) != 43 {
		return false
	}
	raw, err := base64.RawURLEncoding.Strict().DecodeString(b)
	return err == nil && len(raw) == 32
}

func (s *Service) handleAuthorize(w http.ResponseWriter, r *http.Request) {
	rid := newRequestID()
	cat := s.cfg.Catalog.Current()
	h, err := parseHandoff(cat, r.URL.Query())
	if err != nil {
		s.fail(w, r, rid, err)
		return
	}
	now := s.cfg.Now()
	var prompt bool
	if r.URL.Query().Get("fresh") == "1" {
		// The mesh refused this browser's session as revoked: ignore it
		// and have the provider authenticate the user again.
		s.startFlow(w, r, rid, h, true)
		return
	}
	if sc, err := s.session(r); err == nil {
		switch why := h.req.unmet(&sc.Identity, now); why {
		case "":
			s.handOff(w, r, rid, h, sc.Identity, now, "session")
			return
		case unmetMaxAge:
			prompt = true
		case unmetACRs:
			h.req = h.req.stepUp(&sc.Identity, now)
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
		s.fail(w, r, rid, err, "app", h.app.ID)
		return
	}
	f := flowState{
		State:    randomToken(32),
		Nonce:    randomToken(32),
		Verifier: oauth2.GenerateVerifier(),
		App:      h.app.ID,
		RD:       h.rd,
		Binding:  h.b,
		ACRs:     h.req.acrs,
		CLI:      h.cli,
	}
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
	s.cfg.Logger.Info("auth_flow_started", "request_id", rid, "app", h.app.ID, "prompt_login", prompt, "acrs", h.req.acrs)
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
		s.fail(w, r, rid, err, "app", h.app.ID)
		return
	}
	if h.cli != 0 {
		s.cliHandOff(w, r, rid, h, id, tok, exp)
		return
	}
	s.cfg.Logger.Info("auth_handoff", "request_id", rid, "app", h.app.ID, "user", id.Subject, "via", via, "app_exp", exp)
	redirect(w, "https://"+h.app.Host+s.cfg.AppPort+"/.postern/callback?token="+url.QueryEscape(tok))
}

// appToken signs the app token: identity cut to the app's policy, aud the
// app's host, bound to the browser's bind nonce.
func (s *Service) appToken(h *handoff, id session.Identity, now time.Time) (string, int64, error) {
	exp := now.Add(h.req.lifetime).Unix()
	tok, err := mint.App(s.cfg.Keys, session.AppClaims{
		Identity:   id.ForPolicy(h.req.groups, h.req.roles),
		AppID:      h.app.ID,
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
