package mint

import (
	"strings"
	"testing"
	"time"

	"github.com/postern/postern/pkg/session"
)

var t0 = time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)

func appClaims() session.AppClaims {
	return session.AppClaims{
		Identity: session.Identity{Subject: "tid-1/oid-1", TenantID: "tid-1", ObjectID: "oid-1"},
		AppID:    "smartmoney", Audience: "smartmoney.localhost", Binding: "bh", ReturnPath: "/x",
		IssuedAt: t0.Unix(), Expiry: t0.Add(8 * time.Hour).Unix(), Issuer: "https://auth.localhost:8443",
	}
}

func newKeyset(tb testing.TB) *session.Keyset {
	tb.Helper()
	ks, err := session.GenerateKeyset()
	if err != nil {
		tb.Fatal(err)
	}
	return ks
}

// TestAppVerifies: a minted app token verifies as one, and only as one.
func TestAppVerifies(t *testing.T) {
	ks := newKeyset(t)
	tok, err := App(ks, appClaims())
	if err != nil {
		t.Fatal(err)
	}
	v := session.NewVerifier(session.VerifierConfig{Static: ks.JWKS(), Now: func() time.Time { return t0 }})
	got, err := v.VerifyApp(t.Context(), tok, "smartmoney.localhost")
	if err != nil || got.AppID != "smartmoney" {
		t.Fatalf("VerifyApp: got %v, %v", got, err)
	}
	if _, err := v.VerifySession(t.Context(), tok, "smartmoney.localhost"); err == nil {
		t.Error("an app token verified as a session token")
	}
}

func TestRefusesIncompleteClaims(t *testing.T) {
	ks := newKeyset(t)
	tests := []struct {
		name string
		f    func(c *session.AppClaims)
	}{
		{"no audience", func(c *session.AppClaims) { c.Audience = "" }},
		{"no issuer", func(c *session.AppClaims) { c.Issuer = "" }},
		{"no expiry", func(c *session.AppClaims) { c.Expiry = 0 }},
		{"no iat", func(c *session.AppClaims) { c.IssuedAt = 0 }},
		{"expiry before iat", func(c *session.AppClaims) { c.Expiry = c.IssuedAt - 1 }},
		{"expiry at iat", func(c *session.AppClaims) { c.Expiry = c.IssuedAt }},
		{"no binding", func(c *session.AppClaims) { c.Binding = "" }},
		{"no subject", func(c *session.AppClaims) { c.Subject = "" }},
		{"no app", func(c *session.AppClaims) { c.AppID = "" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := appClaims()
			tt.f(&c)
			if tok, err := App(ks, c); err == nil {
				t.Errorf("got token %q, want an error", tok)
			}
		})
	}
	c := appClaims()
	sc := session.SessionClaims{Identity: c.Identity, Audience: "auth.localhost", Issuer: c.Issuer, IssuedAt: c.IssuedAt, Expiry: c.Expiry}
	if _, err := Session(ks, sc); err != nil {
		t.Fatalf("complete session claims: %v", err)
	}
	sc.Subject = ""
	if _, err := Session(ks, sc); err == nil || !strings.Contains(err.Error(), "sub is required") {
		t.Errorf("session without subject: got %v, want sub is required", err)
	}
}

func TestLogout(t *testing.T) {
	ks := newKeyset(t)
	c := session.LogoutClaims{SessionID: "sid-1", Subject: "t/o", Audience: "smartmoney.localhost", IssuedAt: t0.Unix(),
		Expiry: t0.Add(20 * time.Hour).Unix(), Issuer: "https://auth.localhost:8443"}
	tok, err := Logout(ks, c)
	if err != nil {
		t.Fatal(err)
	}
	v := session.NewVerifier(session.VerifierConfig{Static: ks.JWKS(), Now: func() time.Time { return t0 }})
	if got, err := v.VerifyLogout(t.Context(), tok, "smartmoney.localhost"); err != nil || *got != c {
		t.Fatalf("got %+v, %v; want %+v", got, err, c)
	}
	c.SessionID = ""
	if _, err := Logout(ks, c); err == nil {
		t.Error("signed a notice without a sid")
	}
	c.SessionID, c.Expiry = "sid-1", c.IssuedAt
	if _, err := Logout(ks, c); err == nil {
		t.Error("signed a notice that expires when issued")
	}
}
