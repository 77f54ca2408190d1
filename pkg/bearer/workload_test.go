package bearer_test

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/postern/postern/pkg/bearer"
	"github.com/postern/postern/pkg/catalog"
	"github.com/postern/postern/pkg/devidp"
)

// TestVerifyWorkloadJWKSFile: VerifyWorkload, the check of a connector
// group's workload_enrollment, verifies a Kubernetes ServiceAccount token
// of an issuer whose keys are only in a local file (a private cluster's):
// no network fetch at all; it refuses a token of another issuer, the
// wrong audience, an expired token, and one signed by a key the file does
// not hold.
func TestVerifyWorkloadJWKSFile(t *testing.T) {
	e := newEnv(t)
	const iss = "https://kubernetes.default.svc.cluster.local"
	is, err := devidp.NewWorkloadIssuer(iss, e.clock.Now)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "jwks.json")
	rec := httptest.NewRecorder()
	is.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, iss+"/jwks", nil))
	if err := os.WriteFile(path, rec.Body.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	cat, err := catalog.Parse("c.yaml", []byte(fmt.Sprintf(`issuers:
  - {id: cluster, issuer: %q, jwks_file: %q}
connector_groups:
  - id: pods
    workload_enrollment: {issuer: cluster, audiences: [postern], subjects: ["system:serviceaccount:postern:connectord"]}
apps: []
`, iss, path)))
	if err != nil {
		t.Fatal(err)
	}
	g, _ := cat.Group("pods")
	wb := g.Workload.Bearer()
	mint := func(is *devidp.WorkloadIssuer, aud string, ttl time.Duration) string {
		tok, err := is.Mint(devidp.KubernetesClaims("postern", "connectord", "connectord-0", aud), ttl)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	before := e.fetches.Load()
	id, exp, err := e.v.VerifyWorkload(t.Context(), mint(is, "postern", 10*time.Minute), wb)
	if err != nil {
		t.Fatal(err)
	}
	if id.Claims["sub"] != "system:serviceaccount:postern:connectord" || !exp.Equal(e.clock.Now().Add(10*time.Minute).Truncate(time.Second)) {
		t.Errorf("got sub %q, exp %v", id.Claims["sub"], exp)
	}
	impostor, err := devidp.NewWorkloadIssuer(iss, e.clock.Now)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		token string
		want  error
	}{
		{"another issuer", mint(e.gh, "postern", 10*time.Minute), bearer.ErrUnknownIssuer},
		{"wrong audience", mint(is, "https://kubernetes.default.svc", 10*time.Minute), bearer.ErrWrongAudience},
		{"expired", mint(is, "postern", -time.Hour), bearer.ErrExpired},
		{"a key the file does not hold", mint(impostor, "postern", 10*time.Minute), bearer.ErrUnknownKey},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, _, err := e.v.VerifyWorkload(t.Context(), tt.token, wb); !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
		})
	}
	if n := e.fetches.Load() - before; n != 0 {
		t.Errorf("the verifier made %d network fetches for an issuer with a jwks_file, want 0", n)
	}
}
