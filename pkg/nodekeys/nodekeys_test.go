package nodekeys_test

import (
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/postern/postern/pkg/authority"
	"github.com/postern/postern/pkg/nodecred"
	"github.com/postern/postern/pkg/nodekeys"
	"github.com/postern/postern/pkg/wgkey"
)

// clock is a settable test clock.
type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

// mesh is an authority with a settable clock that mints node credentials.
type mesh struct {
	tb   testing.TB
	clk  *clock
	auth *authority.Authority
}

func newMesh(tb testing.TB, clk *clock) *mesh {
	tb.Helper()
	k, err := authority.GenerateKey()
	if err != nil {
		tb.Fatal(err)
	}
	a, err := authority.New(authority.Config{Key: k, Now: clk.now})
	if err != nil {
		tb.Fatal(err)
	}
	return &mesh{tb: tb, clk: clk, auth: a}
}

// credential mints a credential for node id with a new node key.
func (m *mesh) credential(id string, ttl time.Duration) (authority.NodeCredential, ed25519.PublicKey) {
	m.tb.Helper()
	wg, err := wgkey.Generate()
	if err != nil {
		m.tb.Fatal(err)
	}
	nk, err := authority.GenerateKey()
	if err != nil {
		m.tb.Fatal(err)
	}
	c, err := m.auth.IssueNodeCredential(id, "eu", wg.Public(), nk.Public(), ttl)
	if err != nil {
		m.tb.Fatal(err)
	}
	return c, nk.Public()
}

// kids returns the kids a JWKS document lists, checking its form.
func kids(tb testing.TB, doc []byte) map[string]bool {
	tb.Helper()
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(doc, &set); err != nil {
		tb.Fatalf("JWKS %s: %v", doc, err)
	}
	out := map[string]bool{}
	for _, k := range set.Keys {
		if k.Algorithm != "EdDSA" || k.Use != "sig" || !k.Valid() || !k.IsPublic() {
			tb.Errorf("key %s: want a public EdDSA signing key", k.KeyID)
		}
		out[k.KeyID] = true
	}
	return out
}

func TestSetListsOnlyCertifiedCurrentKeys(t *testing.T) {
	clk := &clock{t: time.Unix(1_800_000_000, 0)}
	m := newMesh(t, clk)
	rogue := newMesh(t, clk) // another authority: its credentials certify nothing here
	set, err := nodekeys.New(nodekeys.Config{Verifier: m.auth, Retain: 10 * time.Minute, Now: clk.now})
	if err != nil {
		t.Fatal(err)
	}
	a, aKey := m.credential("a", time.Hour)
	b, bKey := m.credential("b", 24*time.Hour)
	r, rKey := rogue.credential("r", time.Hour)
	tampered := append([]byte(nil), b.Bytes()...)
	tampered[len(tampered)-100] ^= 1 // inside the signed body: the WireGuard or node key
	err = set.Update([][]byte{a.Bytes(), b.Bytes(), r.Bytes(), tampered, []byte("junk")})
	if !errors.Is(err, authority.ErrUnknownKey) || !errors.Is(err, authority.ErrBadSignature) || !errors.Is(err, authority.ErrMalformed) {
		t.Errorf("update with a rogue, a tampered and a junk credential: got %v, want unknown key, bad signature and malformed", err)
	}
	got := kids(t, set.JWKS())
	if !got[nodecred.KeyID(aKey)] || !got[nodecred.KeyID(bKey)] || got[nodecred.KeyID(rKey)] || len(got) != 2 {
		t.Fatalf("listed %v, want exactly a's and b's keys", got)
	}

	// b departs; a rotates to a new node key. Both old keys stay for the
	// retention, so assertions signed before still verify.
	clk.t = clk.t.Add(time.Minute)
	a2, a2Key := m.credential("a", time.Hour)
	if err := set.Update([][]byte{a2.Bytes()}); err != nil {
		t.Fatal(err)
	}
	got = kids(t, set.JWKS())
	if !got[nodecred.KeyID(aKey)] || !got[nodecred.KeyID(a2Key)] || !got[nodecred.KeyID(bKey)] {
		t.Fatalf("right after b left and a rotated: listed %v, want a's old and new keys and b's", got)
	}
	// Past the retention, only the present key is left, even without an
	// Update (JWKS filters by the clock).
	clk.t = clk.t.Add(10*time.Minute + time.Second)
	got = kids(t, set.JWKS())
	if len(got) != 1 || !got[nodecred.KeyID(a2Key)] {
		t.Fatalf("after the retention: listed %v, want a's new key only", got)
	}
	// A present node's key leaves when its credential ends.
	clk.t = a2.Expires
	if got = kids(t, set.JWKS()); len(got) != 0 {
		t.Fatalf("at the end of a's credential: listed %v, want none", got)
	}
	// The retention never outlives the credential: a node that leaves a
	// second before its credential ends is gone a second later.
	c, cKey := m.credential("c", 2*time.Minute)
	set.Update([][]byte{c.Bytes()})
	clk.t = c.Expires.Add(-time.Second)
	set.Update(nil)
	if got = kids(t, set.JWKS()); !got[nodecred.KeyID(cKey)] {
		t.Fatalf("just before c's credential ends: listed %v, want c's key", got)
	}
	clk.t = c.Expires
	if got = kids(t, set.JWKS()); len(got) != 0 {
		t.Fatalf("at the end of c's credential, c departed: listed %v, want none", got)
	}
	// An expired credential presented again (past the authority's clock
	// skew) is refused, and never listed within the skew either.
	if err := set.Update([][]byte{c.Bytes()}); err != nil || len(kids(t, set.JWKS())) != 0 {
		t.Errorf("expired credential within the skew: got %v, %v, want no error and no key", err, kids(t, set.JWKS()))
	}
	clk.t = c.Expires.Add(authority.DefaultSkew + time.Second)
	if err := set.Update([][]byte{c.Bytes()}); !errors.Is(err, authority.ErrExpired) {
		t.Errorf("expired credential: got %v, want %v", err, authority.ErrExpired)
	}
}

func TestIssuerIsTheMeshsLabel(t *testing.T) {
	if got, want := nodekeys.Issuer(""), "urn:postern:mesh:postern"; got != want {
		t.Errorf("default: got %q, want %q", got, want)
	}
	if got, want := nodekeys.Issuer("prod-eu"), "urn:postern:mesh:prod-eu"; got != want {
		t.Errorf("label: got %q, want %q", got, want)
	}
}
