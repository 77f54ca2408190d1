package authfn

import (
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"

	"github.com/postern/postern/pkg/appreq"
	"github.com/postern/postern/pkg/errpage"
	"github.com/postern/postern/pkg/reqid"
	"github.com/postern/postern/pkg/session"
)

// Cookie names on the auth host.
const (
	// SessionCookie holds the global session token.
	SessionCookie = "__Host-postern-session"
	// FlowCookie, with "-" and 10 characters derived from the sign-in's
	// state appended, names the cookie holding the encrypted state of one
	// sign-in in progress; each sign-in (each tab) has its own.
	FlowCookie = "__Host-postern-flow"
)

// Service is the auth service. It is an [http.Handler] serving
//
//	GET /authorize               start or continue sign-in for an app
//	GET /callback                the OIDC redirect URI
//	GET /logout                  clear the sessions, optionally end the provider's
//	GET /.well-known/jwks.json   the public session keys
//	GET /healthz                 liveness, without network I/O
//
// It keeps no state between requests beyond the cached provider metadata
// and is safe for concurrent use.
type Service struct {
	cfg      Config
	authHost string // audience of the global session
	requests *appreq.Verifier
	sealer   *session.Sealer
	verifier *session.Verifier
	prov     *provider
	mux      *http.ServeMux
}

var _ http.Handler = (*Service)(nil)

// New checks cfg and builds a Service. It does no network I/O: the
// provider is discovered on the first sign-in.
func New(cfg Config) (*Service, error) {
	c, err := cfg.normalize()
	if err != nil {
		return nil, err
	}
	sealer, err := session.NewSealer(c.StateKey, c.Now)
	if err != nil {
		return nil, fmt.Errorf("new auth service: %w: state key: %v", ErrConfig, err)
	}
	u, _ := url.Parse(c.AuthURL)
	requests, err := appreq.NewVerifier(appreq.VerifierConfig{AuthorityKeys: c.MeshAuthorityKeys, Audience: c.AuthURL, Now: c.Now})
	if err != nil {
		return nil, fmt.Errorf("new auth service: %w: %v", ErrConfig, err)
	}
	s := &Service{
		requests: requests,
		cfg:      c,
		authHost: u.Hostname(),
		sealer:   sealer,
		verifier: session.NewVerifier(session.VerifierConfig{Static: c.Keys.JWKS(), Issuer: c.AuthURL, Now: c.Now, Logger: c.Logger}),
	}
	s.prov = &provider{cfg: &s.cfg}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /authorize", s.handleAuthorize)
	mux.HandleFunc("GET /callback", s.handleCallback)
	mux.HandleFunc("GET /logout", s.handleLogout)
	mux.HandleFunc("GET /.well-known/jwks.json", s.handleJWKS)
	mux.HandleFunc("GET /healthz", s.handleHealth)
	mux.HandleFunc("GET /whoami", s.handleWhoami)
	mux.HandleFunc("/", s.handleNotFound)
	s.mux = mux
	return s, nil
}

// ServeHTTP routes r. Every answer is one of Postern's own pages: it
// carries the hardening headers and, on an https auth URL,
// Strict-Transport-Security.
func (s *Service) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	errpage.Harden(h)
	if strings.HasPrefix(s.cfg.AuthURL, "https://") {
		h.Set("Strict-Transport-Security", authHSTS)
	}
	s.mux.ServeHTTP(w, r)
}

// authHSTS is the auth host's Strict-Transport-Security: one year.
const authHSTS = "max-age=31536000"

func (s *Service) handleJWKS(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "public, max-age=300")
	w.Write(s.cfg.Keys.JWKS())
}

func (s *Service) handleHealth(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	fmt.Fprintln(w, "ok")
}

func (s *Service) handleNotFound(w http.ResponseWriter, r *http.Request) {
	rid := newRequestID()
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		s.fail(w, r, rid, fmt.Errorf("%s %s: %w: method not allowed", r.Method, r.URL.Path, ErrBadRequest))
		return
	}
	errpage.Write(w, r, errpage.Page{Status: http.StatusNotFound, Title: "Not found", Reason: "There is nothing at this address.", RequestID: rid})
}

// fail answers with the error page for err and logs it. It sets no cookie.
func (s *Service) fail(w http.ResponseWriter, r *http.Request, rid string, err error, attrs ...any) {
	status, title, reason := describe(err)
	level := slog.LevelInfo
	if status >= 500 {
		level = slog.LevelError
	}
	s.cfg.Logger.Log(r.Context(), level, "auth_refused", append([]any{
		"request_id", rid, "route", r.URL.Path, "status", status, "error", err.Error()}, attrs...)...)
	w.Header().Del("Set-Cookie")
	errpage.Write(w, r, errpage.Page{Status: status, Title: title, Reason: reason, RequestID: rid})
}

// describe maps an error to its status, title and the one line shown to
// the user. Server-side failures show a generic line; the detail is logged.
func describe(err error) (status int, title, reason string) {
	switch {
	case errors.Is(err, ErrAppRequest):
		return http.StatusBadRequest, "Sign-in link invalid or expired", "This sign-in link was not made by the mesh of this sign-in service, or is too old. Open the application again."
	case errors.Is(err, ErrBadRequest):
		return http.StatusBadRequest, "Bad sign-in request", err.Error()
	case errors.Is(err, ErrFlow):
		return http.StatusBadRequest, "Sign-in expired or invalid", err.Error() + ". Open the app again to start a new sign-in."
	case errors.Is(err, ErrCodeRejected):
		return http.StatusBadRequest, "Sign-in code rejected", "The identity provider refused the sign-in code (already used or expired). Open the app again."
	case errors.Is(err, ErrProviderError):
		return http.StatusForbidden, "Sign-in refused", err.Error()
	case errors.Is(err, ErrIDToken):
		return http.StatusBadRequest, "Sign-in response rejected", err.Error()
	case errors.Is(err, ErrForbidden):
		return http.StatusForbidden, "Access denied", err.Error()
	case errors.Is(err, ErrProvider):
		return http.StatusBadGateway, "Identity provider unavailable", "The identity provider could not be reached. Try again in a minute."
	}
	return http.StatusInternalServerError, "Internal error", "The sign-in service failed. Try again in a minute."
}

// newRequestID returns a request id in the format every component uses.
func newRequestID() string { return reqid.New() }

// randomToken returns n random bytes, base64url-encoded without padding.
func randomToken(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return b64(b)
}
