package session

import (
	"errors"
	"testing"
	"time"
)

func TestLogoutNotice(t *testing.T) {
	ks := newKeyset(t)
	c := LogoutClaims{SessionID: "sid-1", Subject: "t/o", Audience: testAud, IssuedAt: t0.Unix(),
		Expiry: t0.Add(20 * time.Hour).Unix(), Issuer: testIssuer}
	tok, err := ks.Sign(TypeLogout, c)
	if err != nil {
		t.Fatal(err)
	}
	v := staticVerifier(ks, t0)
	got, err := v.VerifyLogout(t.Context(), tok, testAud)
	if err != nil || *got != c {
		t.Fatalf("got %+v, %v; want %+v", got, err, c)
	}
	if _, err := v.VerifyLogout(t.Context(), tok, "other.localhost"); !errors.Is(err, ErrWrongAudience) {
		t.Errorf("another app's host: got %v", err)
	}
	if _, err := v.VerifyApp(t.Context(), tok, testAud); !errors.Is(err, ErrWrongType) {
		t.Errorf("notice as app token: got %v", err)
	}
	if _, err := v.VerifyLogout(t.Context(), signApp(t, ks, appClaims(t0)), testAud); !errors.Is(err, ErrWrongType) {
		t.Errorf("app token as notice: got %v", err)
	}
	if _, err := staticVerifier(newKeyset(t), t0).VerifyLogout(t.Context(), tok, testAud); !errors.Is(err, ErrUnknownKey) {
		t.Errorf("another key set: got %v", err)
	}
	if _, err := staticVerifier(ks, t0.Add(21*time.Hour)).VerifyLogout(t.Context(), tok, testAud); !errors.Is(err, ErrExpired) {
		t.Errorf("expired notice: got %v", err)
	}
}
