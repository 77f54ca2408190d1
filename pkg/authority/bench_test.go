package authority

import (
	"testing"
	"time"

	"github.com/postern/postern/pkg/testkit"
)

func BenchmarkVerifyCredential(b *testing.B) {
	a, _ := newTestAuthority(b, testkit.NewClock(t0))
	s, _, err := a.IssueCredential("c-1", "g", newWGKey(b), time.Hour)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := a.VerifyCredential(s); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkIssueCredential(b *testing.B) {
	a, _ := newTestAuthority(b, testkit.NewClock(t0))
	pub := newWGKey(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := a.IssueCredential("c-1", "g", pub, time.Hour); err != nil {
			b.Fatal(err)
		}
	}
}
