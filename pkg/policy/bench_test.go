package policy

import (
	"net/netip"
	"testing"
	"time"

	"github.com/postern/postern/pkg/session"
)

// BenchmarkCacheHitWithPolicy measures the mesh's per-request auth cost on
// a cache hit: look up the verified app cookie, then decide the policy of
// a typical app (allow list, acrs, CIDRs, max age, three path rules) for a
// path under a rule. Target: at most 5 µs/op.
func BenchmarkCacheHitWithPolicy(b *testing.B) {
	ks, err := session.GenerateKeyset()
	if err != nil {
		b.Fatal(err)
	}
	v := session.NewVerifier(session.VerifierConfig{Static: ks.JWKS()})
	cache := session.NewCache(v, 10000)
	p := smartMoney(b, true)
	now := time.Now()
	id := session.Identity{
		Subject: "tid/oid", Name: "Ada", Username: "ada@example.com",
		Groups: []string{"g-staff", "g-auditors"}, Roles: []string{"SmartMoney.User", "SmartMoney.Admin"},
		ACRs: []string{"c1", "c2"}, AuthTime: now.Add(-time.Hour).Unix(), SessionID: "sid",
	}
	tok, err := ks.Sign(session.TypeApp, session.AppClaims{
		Identity: id.ForPolicy(p.Groups(), p.Roles()), AppID: "smartmoney", Audience: "smartmoney.localhost",
		Binding: "bh", ReturnPath: "/", IssuedAt: now.Unix(), Expiry: now.Add(8 * time.Hour).Unix(),
		Issuer: "https://auth.localhost",
	})
	if err != nil {
		b.Fatal(err)
	}
	ctx := b.Context()
	if _, err := cache.App(ctx, tok, "smartmoney.localhost"); err != nil {
		b.Fatal(err)
	}
	req := Request{RawPath: "/admin/accounts/42?tab=history", ClientIP: netip.MustParseAddr("10.20.30.40")}
	b.ReportAllocs()
	for b.Loop() {
		c, err := cache.App(ctx, tok, "smartmoney.localhost")
		if err != nil {
			b.Fatal(err)
		}
		req.Now = time.Now()
		if d := p.Decide(&c.Identity, req); !d.Allow {
			b.Fatalf("got %+v, want allow", d)
		}
	}
}
