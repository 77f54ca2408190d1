// Package mint issues the tokens of a Postern session: the global session
// token on the auth host, the per-app token handed to a mesh node and the
// sign-out notice that ends the session mesh-wide. Only the auth functions link it (pkg/deptest checks that meshd and
// connectord do not); mesh nodes only verify these tokens.
package mint

import (
	"fmt"

	"github.com/postern/postern/pkg/session"
)

// App signs c as an app token (typ [session.TypeApp]) with the key set's
// active key. The caller sets every field; a token without Audience,
// Issuer, IssuedAt or Expiry, or expiring before it is issued, or without
// app, binding or subject, is refused rather than minted.
func App(k *session.Keyset, c session.AppClaims) (string, error) {
	if err := check(c.Audience, c.Issuer, c.IssuedAt, c.Expiry); err != nil {
		return "", fmt.Errorf("sign app token: %w", err)
	}
	if c.AppID == "" || c.Binding == "" || c.Subject == "" {
		return "", fmt.Errorf("sign app token: app, bh and sub are required")
	}
	return k.Sign(session.TypeApp, c)
}

// Session signs c as a global session token (typ [session.TypeSession])
// with the same checks as [App] (subject required).
func Session(k *session.Keyset, c session.SessionClaims) (string, error) {
	if err := check(c.Audience, c.Issuer, c.IssuedAt, c.Expiry); err != nil {
		return "", fmt.Errorf("sign session token: %w", err)
	}
	if c.Subject == "" {
		return "", fmt.Errorf("sign session token: sub is required")
	}
	return k.Sign(session.TypeSession, c)
}

// Logout signs a sign-out notice (typ [session.TypeLogout]) with the same
// checks as [App] (session id required).
func Logout(k *session.Keyset, c session.LogoutClaims) (string, error) {
	if err := check(c.Audience, c.Issuer, c.IssuedAt, c.Expiry); err != nil {
		return "", fmt.Errorf("sign logout notice: %w", err)
	}
	if c.SessionID == "" {
		return "", fmt.Errorf("sign logout notice: sid is required")
	}
	return k.Sign(session.TypeLogout, c)
}

func check(aud, iss string, iat, exp int64) error {
	switch {
	case aud == "":
		return fmt.Errorf("aud is required")
	case iss == "":
		return fmt.Errorf("iss is required")
	case iat <= 0 || exp <= 0:
		return fmt.Errorf("iat and exp are required")
	case exp <= iat:
		return fmt.Errorf("exp must be after iat")
	}
	return nil
}
