package authfn

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
	"unicode"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/postern/postern/pkg/appreq"
	"github.com/postern/postern/pkg/session"
	"github.com/postern/postern/pkg/session/mint"
)

func (s *Service) handleCallback(w http.ResponseWriter, r *http.Request) {
	rid := newRequestID()
	q := r.URL.Query()
	if e := q.Get("error"); e != "" {
		s.fail(w, r, rid, fmt.Errorf("%w: %s", ErrProviderError, printable(e+": "+q.Get("error_description"), 200)))
		return
	}
	f, err := s.openFlow(r)
	if err != nil {
		s.fail(w, r, rid, err)
		return
	}
	h := newHandoff(&f.Req)
	code := q.Get("code")
	if code == "" || len(q["code"]) > 1 {
		s.fail(w, r, rid, fmt.Errorf("%w: missing or repeated code parameter", ErrBadRequest), "app", f.Req.AppID)
		return
	}
	id, groupsUnknown, err := s.signIn(r.Context(), rid, h, f, code)
	if err != nil {
		s.fail(w, r, rid, err, "app", f.Req.AppID)
		return
	}
	now := s.cfg.Now()
	switch h.req.unmetBy(&id, now) {
	case unmetACRs:
		s.fail(w, r, rid, fmt.Errorf("%w: the sign-in did not meet the authentication context %v that app %s requires", ErrForbidden, h.req.acrs, h.app.AppID), "app", f.Req.AppID, "user", id.Subject)
		return
	case unmetMaxAge:
		s.fail(w, r, rid, fmt.Errorf("%w: the identity provider did not re-authenticate you as app %s requires", ErrForbidden, h.app.AppID), "app", f.Req.AppID, "user", id.Subject)
		return
	}
	if groupsUnknown {
		s.handOffWithoutSession(w, r, rid, h, id, now, flowCookieName(f.State))
		return
	}
	sessTok, err := mint.Session(s.cfg.Keys, session.SessionClaims{
		Identity:       id,
		Filter:         h.req.filterDigest,
		NoticeHost:     h.app.Host,
		NoticeLifetime: int64(h.app.NoticeLifetimeDuration() / time.Second),
		Audience:       s.authHost,
		IssuedAt:       now.Unix(),
		Expiry:         now.Add(s.cfg.SessionLifetime).Unix(),
		Issuer:         s.cfg.AuthURL,
	})
	if err != nil {
		s.fail(w, r, rid, fmt.Errorf("sign session: %w", err))
		return
	}
	s.setCookie(w, SessionCookie, sessTok, s.cfg.SessionLifetime)
	s.clearCookie(w, flowCookieName(f.State))
	s.cfg.Logger.Info("auth_signed_in", "request_id", rid, "app", h.app.AppID, "user", id.Subject,
		"groups", len(id.Groups), "roles", len(id.Roles), "acrs", id.ACRs)
	s.handOff(w, r, rid, h, id, now, "sign_in")
}

// handOffWithoutSession finishes a sign-in whose group memberships could
// not be read (Graph failed on overage): a group-gated app is refused with a
// clear page; any other app gets its token, but no global session is kept,
// so that the next app's sign-in reads the groups again instead of going on
// with none.
func (s *Service) handOffWithoutSession(w http.ResponseWriter, r *http.Request, rid string, h *handoff, id session.Identity, now time.Time, flowCookie string) {
	if h.req.groupGated() {
		s.fail(w, r, rid, fmt.Errorf("%w: your group memberships could not be read from Microsoft Graph, and app %s admits users by group; try again in a few minutes", ErrForbidden, h.app.AppID),
			"app", h.app.AppID, "user", id.Subject, "groups_unavailable", true)
		return
	}
	s.clearCookie(w, flowCookie)
	s.cfg.Logger.Info("auth_signed_in", "request_id", rid, "app", h.app.AppID, "user", id.Subject, "groups_unavailable", true, "session", false)
	s.handOff(w, r, rid, h, id, now, "sign_in_without_session")
}

// openFlow reads the flow cookie of the state parameter's sign-in and
// checks it against the parameter.
func (s *Service) openFlow(r *http.Request) (*flowState, error) {
	st := r.URL.Query()
	if len(st["state"]) != 1 || st.Get("state") == "" {
		return nil, fmt.Errorf("%w: missing or repeated state parameter", ErrFlow)
	}
	c, err := r.Cookie(flowCookieName(st.Get("state")))
	if err != nil || c.Value == "" {
		return nil, fmt.Errorf("%w: no sign-in in progress in this browser (flow cookie missing)", ErrFlow)
	}
	var f flowState
	if err := s.sealer.Open(c.Value, &f); err != nil {
		if errors.Is(err, session.ErrExpired) {
			return nil, fmt.Errorf("%w: the sign-in took longer than %s", ErrFlow, FlowLifetime)
		}
		return nil, fmt.Errorf("%w: flow cookie invalid", ErrFlow)
	}
	if f.State == "" || subtle.ConstantTimeCompare([]byte(st.Get("state")), []byte(f.State)) != 1 {
		return nil, fmt.Errorf("%w: state mismatch (a sign-in may have been started in another tab)", ErrFlow)
	}
	return &f, nil
}

// signIn redeems code, verifies the ID token and builds the session
// identity, cut down to what the catalogue's policies name (h's session
// filter).
//
// groupsUnknown is true when the token signalled group overage and Graph
// could not be read: the identity then has no groups at all.
func (s *Service) signIn(ctx context.Context, rid string, h *handoff, f *flowState, code string) (id session.Identity, groupsUnknown bool, err error) {
	filter, err := appreq.ParseFilter(h.req.filter)
	if err != nil {
		return session.Identity{}, false, fmt.Errorf("%w: %w", ErrFlow, err)
	}
	d, err := s.prov.get(ctx)
	if err != nil {
		return session.Identity{}, false, err
	}
	tok, err := d.oauth.Exchange(oidc.ClientContext(ctx, s.cfg.HTTPClient), code, oauth2.VerifierOption(f.Verifier))
	if err != nil {
		var re *oauth2.RetrieveError
		if errors.As(err, &re) && re.Response != nil && re.Response.StatusCode >= 400 && re.Response.StatusCode < 500 {
			return session.Identity{}, false, fmt.Errorf("%w: %s", ErrCodeRejected, printable(re.ErrorCode, 64))
		}
		return session.Identity{}, false, fmt.Errorf("redeem code: %w: %v", ErrProvider, err)
	}
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		return session.Identity{}, false, fmt.Errorf("%w: the token response has no id_token", ErrIDToken)
	}
	idt, err := d.verifier.Verify(ctx, raw)
	if err != nil {
		return session.Identity{}, false, classifyVerifyError(err)
	}
	if subtle.ConstantTimeCompare([]byte(idt.Nonce), []byte(f.Nonce)) != 1 {
		return session.Identity{}, false, fmt.Errorf("%w: nonce mismatch", ErrIDToken)
	}
	var payload json.RawMessage
	if err := idt.Claims(&payload); err != nil {
		return session.Identity{}, false, fmt.Errorf("%w: %v", ErrIDToken, err)
	}
	c, err := parseClaims(payload, s.cfg.Mode, s.cfg.ClaimMapping)
	if err != nil {
		return session.Identity{}, false, err
	}
	if err := checkAudience(idt.Audience, c.AuthorizedParty, s.cfg.ClientID); err != nil {
		return session.Identity{}, false, err
	}
	if err := s.cfg.checkIssuer(c.Issuer, c.TenantID); err != nil {
		return session.Identity{}, false, err
	}
	sub, err := c.subject(s.cfg.Mode)
	if err != nil {
		return session.Identity{}, false, err
	}
	id = session.Identity{
		Subject:   sub,
		Name:      c.Name,
		Username:  c.Username,
		Email:     c.Email,
		Roles:     c.Roles,
		ACRs:      c.ACRs,
		AuthTime:  c.AuthTime,
		SessionID: randomToken(16),
	}
	if s.cfg.Mode == ModeEntra {
		id.TenantID, id.ObjectID = c.TenantID, c.ObjectID
	}
	if id.AuthTime == 0 {
		id.AuthTime = c.IssuedAt // Entra omits auth_time unless configured as an optional claim
	}
	id.Groups = c.Groups
	if s.cfg.Mode != ModeEntra && c.NoGroupsClaim && h.req.groupGated() {
		// The app admits users by group and would deny this one without saying why: say it.
		s.cfg.Logger.Warn("auth_groups_claim_missing", "request_id", rid, "user", sub, "claim", s.cfg.ClaimMapping.Groups,
			"scopes", strings.Join(s.cfg.Scopes, " "),
			"hint", "the provider's ID token has no groups claim, so every group policy denies this user: request the provider's groups scope in POSTERN_OIDC_SCOPES (Dex, Okta: groups) or add a groups mapper to the client (Keycloak), or set POSTERN_OIDC_CLAIM_GROUPS to the claim it uses")
	}
	if c.Overage {
		groups, err := s.overageGroups(ctx, tok.AccessToken, filter)
		if err != nil {
			s.cfg.Logger.Warn("auth_groups_unavailable", "request_id", rid, "user", sub, "error", err.Error())
			groupsUnknown = true
		}
		id.Groups = groups
	}
	id.Groups, id.Roles = filter.Groups(id.Groups), filter.Roles(id.Roles)
	return id, groupsUnknown, nil
}

// overageGroups reads the user's groups from Graph when the ID token had
// too many to carry (Entra only).
func (s *Service) overageGroups(ctx context.Context, accessToken string, filter appreq.Filter) ([]string, error) {
	if s.cfg.Mode != ModeEntra {
		return nil, fmt.Errorf("overage: %w: the provider signalled group overage, which only Entra mode resolves", ErrGraph)
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	return s.memberGroups(ctx, accessToken, filter.Groups)
}

// printable keeps the first n printable characters of s, for echoing
// provider errors.
func printable(s string, n int) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsPrint(r) {
			return r
		}
		return -1
	}, s)
	return truncate(s, n)
}
