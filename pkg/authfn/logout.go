package authfn

import (
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"time"

	"github.com/postern/postern/pkg/appreq"
	"github.com/postern/postern/pkg/session"
	"github.com/postern/postern/pkg/session/mint"
)

var signedOutPage = template.Must(template.New("out").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>Signed out · Postern</title>
<style>body{font:16px/1.5 system-ui,sans-serif;max-width:40rem;margin:4rem auto;padding:0 1rem;color:#222}h1{font-size:1.4rem}</style></head>
<body><h1>Signed out</h1><p>You are signed out of Postern{{if .}} and of {{.}}{{end}}. Close this window, or open an app again to sign in.</p></body></html>
`))

// handleLogout clears the global session and any flow in progress. When
// the browser had a valid session, it first carries a signed sign-out
// notice to a mesh node (the app's /.postern/logout), which revokes the
// session for the whole mesh and sends the browser back here with done=1:
// the auth functions keep no state and cannot tell the mesh themselves.
// Then it either continues to the provider's end-session endpoint or shows
// a "signed out" page. The post-logout redirect is only ever a registered
// URL.
func (s *Service) handleLogout(w http.ResponseWriter, r *http.Request) {
	rid := newRequestID()
	sc, _ := s.session(r)
	s.clearCookie(w, SessionCookie)
	for _, c := range session.CookiesWithPrefix(r, FlowCookie+"-") {
		s.clearCookie(w, c.Name)
	}
	app := printable(r.URL.Query().Get("app"), 64)
	if sc != nil && r.URL.Query().Get("done") == "" {
		if to, err := s.logoutNotice(sc, r.URL.Query()); err != nil {
			s.cfg.Logger.Warn("auth_logout_notice_failed", "request_id", rid, "error", err.Error())
		} else if to != "" {
			s.cfg.Logger.Info("auth_logout_notice", "request_id", rid, "app", app, "user", sc.Subject, "sid", sc.SessionID)
			redirect(w, to)
			return
		}
	}
	if s.cfg.EndSessionRedirect {
		d, err := s.prov.get(r.Context())
		if err != nil {
			s.cfg.Logger.Warn("auth_logout_end_session_unavailable", "request_id", rid, "error", err.Error())
		} else if d.endSession != "" {
			if to, err := s.endSessionURL(d.endSession, r.URL.Query().Get("to")); err == nil {
				s.cfg.Logger.Info("auth_logout", "request_id", rid, "app", app, "end_session", true)
				redirect(w, to)
				return
			}
		}
	}
	s.cfg.Logger.Info("auth_logout", "request_id", rid, "app", app, "end_session", false)
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'")
	signedOutPage.Execute(w, "")
}

// logoutNotice signs the end of session sc and returns the URL of a mesh
// node's sign-out path that takes it: on the host of the signed app
// request in q (the edge's /.postern/logout sends one), else on the host
// the session was signed in for; "" when there is neither. The notice
// lives until the last app token of the session can expire: the session's
// end plus the catalogue's longest app token lifetime.
func (s *Service) logoutNotice(sc *session.SessionClaims, q url.Values) (string, error) {
	host, longest := sc.NoticeHost, time.Duration(sc.NoticeLifetime)*time.Second
	if q.Get(appreq.Param) != "" {
		r, err := s.verifyRequest(q)
		if err != nil {
			return "", err
		}
		host, longest = r.Host, max(longest, r.NoticeLifetimeDuration())
	}
	longest = max(longest, DefaultAppSessionLifetime)
	if host == "" || sc.SessionID == "" {
		return "", nil
	}
	now := s.cfg.Now()
	tok, err := mint.Logout(s.cfg.Keys, session.LogoutClaims{SessionID: sc.SessionID, Subject: sc.Subject, Audience: host,
		IssuedAt: now.Unix(), Expiry: max(sc.Expiry, now.Unix()) + int64(longest/time.Second), Issuer: s.cfg.AuthURL})
	if err != nil {
		return "", err
	}
	return "https://" + host + s.cfg.AppPort + "/.postern/logout?notice=" + url.QueryEscape(tok), nil
}

// endSessionURL builds the provider's end-session URL; the post-logout
// redirect is to if it is registered exactly, else the first registered
// URL, else none.
func (s *Service) endSessionURL(endpoint, to string) (string, error) {
	u, err := url.Parse(endpoint)
	if err != nil {
		return "", err
	}
	q := u.Query()
	q.Set("client_id", s.cfg.ClientID)
	if len(s.cfg.PostLogoutURLs) > 0 {
		post := s.cfg.PostLogoutURLs[0]
		if slices.Contains(s.cfg.PostLogoutURLs, to) {
			post = to
		}
		q.Set("post_logout_redirect_uri", post)
	}
	u.RawQuery = q.Encode()
	return u.String(), nil
}
