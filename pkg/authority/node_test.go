package authority

import (
	"crypto/rand"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/postern/postern/pkg/revoke"
	"github.com/postern/postern/pkg/testkit"
)

func newNodeKey(tb testing.TB) Key {
	tb.Helper()
	k, err := GenerateKey()
	if err != nil {
		tb.Fatal(err)
	}
	return k
}

func TestNodeCredentialRoundTrip(t *testing.T) {
	c := testkit.NewClock(t0)
	a, _ := newTestAuthority(t, c)
	wg, nk := newWGKey(t), newNodeKey(t)
	cred, err := a.IssueNodeCredential("mesh-eu-1", "eu-west-1", wg, nk.Public(), DefaultNodeCredentialTTL)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(cred.Bytes()); n > 250 {
		t.Errorf("credential is %d bytes; it must fit the gossip metadata with room to spare", n)
	}
	got, err := a.VerifyNodeCredential(cred.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if got.NodeID != "mesh-eu-1" || got.Region != "eu-west-1" || got.WGKey != wg || !got.NodeKey.Equal(nk.Public()) ||
		!got.Expires.Equal(t0.Add(DefaultNodeCredentialTTL)) {
		t.Fatalf("got %+v", got)
	}
	raw, err := DecodeNodeCredential(cred.String() + "\n")
	if err != nil || string(raw) != string(cred.Bytes()) {
		t.Fatalf("text form does not round-trip: %v", err)
	}
	path := filepath.Join(t.TempDir(), "node.cred")
	if err := SaveNodeCredential(path, cred); err != nil {
		t.Fatal(err)
	}
	if loaded, err := a.LoadNodeCredential(path); err != nil || loaded.NodeID != "mesh-eu-1" {
		t.Fatalf("load: %+v, %v", loaded, err)
	}
	msg := []byte("attachment v7")
	sig := SignAsNode(nk, msg)
	if !got.VerifyNodeSignature(msg, sig) {
		t.Error("the node key's signature does not verify")
	}
	if got.VerifyNodeSignature([]byte("attachment v8"), sig) || got.VerifyNodeSignature(msg, nk.Sign(msg)) {
		t.Error("a signature of another message, or without the context, verifies")
	}
}

func TestNodeCredentialRejects(t *testing.T) {
	c := testkit.NewClock(t0)
	a, _ := newTestAuthority(t, c)
	other, _ := newTestAuthority(t, c)
	wg, nk := newWGKey(t), newNodeKey(t)
	cred, err := a.IssueNodeCredential("n1", "r1", wg, nk.Public(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	good := cred.Bytes()
	// Every single flipped bit is caught.
	for i := range good {
		b := append([]byte(nil), good...)
		b[i] ^= 0x01
		if _, err := a.VerifyNodeCredential(b); err == nil {
			t.Fatalf("flipped bit in byte %d accepted", i)
		}
	}
	fromOther, _ := other.IssueNodeCredential("n1", "r1", wg, nk.Public(), time.Hour)
	garbage := make([]byte, 300)
	rand.Read(garbage)
	tests := []struct {
		name string
		b    []byte
		want error
	}{
		{"empty", nil, ErrMalformed},
		{"truncated", good[:len(good)-1], ErrMalformed},
		{"trailing byte", append(append([]byte(nil), good...), 0), ErrMalformed},
		{"garbage", garbage, ErrMalformed},
		{"another authority", fromOther.Bytes(), ErrUnknownKey},
	}
	for _, tt := range tests {
		if _, err := a.VerifyNodeCredential(tt.b); !errors.Is(err, tt.want) {
			t.Errorf("%s: got %v, want %v", tt.name, err, tt.want)
		}
	}
	c.Set(t0.Add(time.Hour + DefaultSkew + time.Second))
	if _, err := a.VerifyNodeCredential(good); !errors.Is(err, ErrExpired) {
		t.Errorf("expired: got %v", err)
	}
	c.Set(t0.Add(-DefaultSkew - time.Second))
	if _, err := a.VerifyNodeCredential(good); !errors.Is(err, ErrNotYetValid) {
		t.Errorf("not yet valid: got %v", err)
	}
	c.Set(t0)
	for name, f := range map[string]func() error{
		"bad id": func() error { _, err := a.IssueNodeCredential("a b", "r", wg, nk.Public(), time.Hour); return err },
		"long region": func() error {
			_, err := a.IssueNodeCredential("a", strings.Repeat("r", 65), wg, nk.Public(), time.Hour)
			return err
		},
		"no node key": func() error { _, err := a.IssueNodeCredential("a", "r", wg, nil, time.Hour); return err },
		"zero wg key": func() error {
			_, err := a.IssueNodeCredential("a", "r", [32]byte{}, nk.Public(), time.Hour)
			return err
		},
		"ttl too long": func() error {
			_, err := a.IssueNodeCredential("a", "r", wg, nk.Public(), MaxNodeCredentialTTL+time.Hour)
			return err
		},
	} {
		if err := f(); !errors.Is(err, ErrInvalidArgument) {
			t.Errorf("%s: got %v, want %v", name, err, ErrInvalidArgument)
		}
	}
}

func TestNodeCredentialRotation(t *testing.T) {
	c := testkit.NewClock(t0)
	old, oldKey := newTestAuthority(t, c)
	cred, err := old.IssueNodeCredential("n1", "r1", newWGKey(t), newNodeKey(t).Public(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	rotated, _ := newTestAuthority(t, c, oldKey.Public())
	if _, err := rotated.VerifyNodeCredential(cred.Bytes()); err != nil {
		t.Fatalf("a credential of the old key under the rotated authority: %v", err)
	}
}

func TestRevocationRoundTrip(t *testing.T) {
	c := testkit.NewClock(t0)
	a, _ := newTestAuthority(t, c)
	other, _ := newTestAuthority(t, c)
	for _, e := range []revoke.Entry{
		revoke.Session("sid-1", t0, 0),
		revoke.User("tid/oid", t0, t0, 0),
		revoke.Connector("web-01-abcd1234", t0, 0),
	} {
		s, err := a.SignRevocation(e)
		if err != nil {
			t.Fatal(err)
		}
		got, err := a.VerifyRevocation(s)
		if err != nil || got != e {
			t.Fatalf("got %+v, %v; want %+v", got, err, e)
		}
		if _, err := other.VerifyRevocation(s); !errors.Is(err, ErrUnknownKey) {
			t.Errorf("another authority: got %v", err)
		}
		if _, err := a.VerifyEnrollToken(s); !errors.Is(err, ErrWrongType) {
			t.Errorf("revocation as enrolment token: got %v", err)
		}
	}
	tok, _, _ := a.MintEnrollToken("g", time.Hour)
	if _, err := a.VerifyRevocation(tok); !errors.Is(err, ErrWrongType) {
		t.Errorf("enrolment token as revocation: got %v", err)
	}
	if _, err := a.SignRevocation(revoke.Entry{Kind: "app", Subject: "x", Issued: 1, Until: 2}); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("bad entry: got %v", err)
	}
	s, _ := a.SignRevocation(revoke.Session("sid-2", t0, time.Hour))
	c.Set(t0.Add(2 * time.Hour))
	if _, err := a.VerifyRevocation(s); !errors.Is(err, ErrExpired) {
		t.Errorf("expired revocation: got %v", err)
	}
}
